/* rdma_mem.c - registrations and imports.
 *
 * A buffer gets one MR per (rail, chunk): chunks of min(max_mr_size of every
 * rail, max_mr_chunk) so a buffer larger than a device's max_mr_size still
 * registers.  Rails are registered in parallel threads (pinning 100 GB takes
 * seconds per device).  The remote key carries every rail's rkeys, so a
 * peer can reach the buffer through any of this engine's NICs.
 *
 * CUDA memory is registered through its dma-buf (rdma_cuda.c) with
 * ibv_reg_dmabuf_mr, each MR's iova being the buffer's address, so WRs
 * address it exactly as host memory.  Without a driver that exports it, or
 * a verbs library without ibv_reg_dmabuf_mr, it is MC_ENOTSUP (logged with
 * the reason); other device kinds are MC_ENOTSUP. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rdma_ctx.h"

#define RD_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

typedef struct reg_job {
  rd_ctx *ctx;
  rd_mr *m;
  uint32_t rail;
  int rc;
  pthread_t th;
} reg_job;

static void *reg_rail(void *arg) {
  reg_job *j = arg;
  rd_mr *m = j->m;
  rd_rail *r = j->ctx->rails[j->rail];
  for (uint32_t c = 0; c < m->nchunks; c++) {
    uint64_t off = (uint64_t)c * m->chunk;
    uint64_t l = m->len - off < m->chunk ? m->len - off : m->chunk;
    struct ibv_mr *mr =
        m->dmabuf_fd >= 0
            ? j->ctx->v.reg_dmabuf_mr(r->pd, m->base + off - m->dmabuf_base, l, m->base + off,
                                      m->dmabuf_fd, RD_ACCESS)
            : j->ctx->v.reg_mr(r->pd, (void *)(uintptr_t)(m->base + off), l, RD_ACCESS);
    if (!mr) {
      int e = errno;
      j->rc = e == ENOMEM || e == EAGAIN               ? MC_ENOMEM
              : m->dmabuf_fd >= 0 && (e == EOPNOTSUPP || e == ENOSYS) ? MC_ENOTSUP
                                                                       : MC_EIO;
      RD_LOG(j->ctx, MC_LOG_ERROR, "%s: %s of %" PRIu64 " bytes failed: %s%s", r->name,
             m->dmabuf_fd >= 0 ? "ibv_reg_dmabuf_mr" : "ibv_reg_mr", l, strerror(e),
             e == ENOMEM ? " (check ulimit -l)" : "");
      return NULL;
    }
    m->mrs[j->rail * m->nchunks + c] = mr;
  }
  return NULL;
}

static void mr_free(rd_ctx *ctx, rd_mr *m) {
  for (uint32_t i = 0; i < m->nrails * m->nchunks; i++)
    if (m->mrs[i])
      ctx->v.dereg_mr(m->mrs[i]);
  free(m->mrs);
  free(m);
}

int rd_mem_register(rd_ctx *ctx, const mc_mem_desc *d, rd_mr **out, void *rkey,
                    size_t *rkey_len) {
  if (d->kind != MC_MEM_CPU && d->kind != MC_MEM_CUDA) {
    /* HIP, NPU memory and files: no dma-buf exporter wired here. */
    RD_LOG(ctx, MC_LOG_WARN, "memory kind 0x%x (%s) is not supported by the rdma transport "
           "(host and CUDA memory are)", d->kind, d->location ? d->location : "?");
    return MC_ENOTSUP;
  }
  uint64_t chunk = ctx->cfg.max_mr_chunk ? ctx->cfg.max_mr_chunk : UINT64_MAX;
  for (uint32_t i = 0; i < ctx->nrails; i++)
    if (ctx->rails[i]->max_mr_size < chunk)
      chunk = ctx->rails[i]->max_mr_size;
  if (chunk > d->len)
    chunk = d->len;
  uint64_t nchunks = (d->len - 1) / chunk + 1;
  if (nchunks * ctx->nrails > RDW_RKEY_MAX_KEYS) {
    RD_LOG(ctx, MC_LOG_ERROR, "buffer of %" PRIu64 " bytes needs %" PRIu64 " MRs on %u rails; "
           "the remote key holds %u: raise max_mr_chunk or register smaller buffers",
           d->len, nchunks * ctx->nrails, ctx->nrails, (unsigned)RDW_RKEY_MAX_KEYS);
    return MC_ENOTSUP;
  }
  size_t need = rdw_rkey_size((uint32_t)nchunks * ctx->nrails);
  if (!rkey || *rkey_len < need) {
    *rkey_len = need;
    return MC_ENOSPC;
  }
  int dfd = -1;
  uint64_t dbase = 0;
  if (d->kind == MC_MEM_CUDA) {
    char why[768];
    int rc = MC_ENOTSUP;
    if (!ctx->v.reg_dmabuf_mr)
      snprintf(why, sizeof why, "%s has no ibv_reg_dmabuf_mr (rdma-core >= 34 needed)",
               ctx->cfg.library);
    else
      rc = rd_cuda_dmabuf(ctx, d->addr, d->len, &dfd, &dbase, why, sizeof why);
    if (rc) {
      RD_LOG(ctx, MC_LOG_WARN, "CUDA memory %s at 0x%" PRIx64 " not registered: %s",
             d->location ? d->location : "?", d->addr, why);
      return rc;
    }
  }
  rd_mr *m = calloc(1, sizeof *m);
  if (!m) {
    if (dfd >= 0)
      close(dfd);
    return MC_ENOMEM;
  }
  m->dmabuf_fd = dfd;
  m->dmabuf_base = dbase;
  m->base = d->addr;
  m->len = d->len;
  m->chunk = chunk;
  m->nchunks = (uint32_t)nchunks;
  m->nrails = ctx->nrails;
  m->mrs = calloc((size_t)m->nrails * m->nchunks, sizeof *m->mrs);
  reg_job jobs[RD_MAX_RAILS];
  if (!m->mrs) {
    if (dfd >= 0)
      close(dfd);
    free(m);
    return MC_ENOMEM;
  }
  int rc = 0;
  for (uint32_t i = 0; i < m->nrails; i++) {
    jobs[i] = (reg_job){ctx, m, i, 0, 0};
    /* Rail 0 runs here; the others in threads. */
    if (i == 0 || pthread_create(&jobs[i].th, NULL, reg_rail, &jobs[i])) {
      jobs[i].th = 0;
      reg_rail(&jobs[i]);
    }
  }
  for (uint32_t i = 0; i < m->nrails; i++) {
    if (jobs[i].th)
      pthread_join(jobs[i].th, NULL);
    if (jobs[i].rc && !rc)
      rc = jobs[i].rc;
  }
  /* The MRs hold the dma-buf: the fd is not needed any more. */
  if (dfd >= 0)
    close(dfd);
  m->dmabuf_fd = -1;
  rdw_rkey k;
  memset(&k, 0, sizeof k);
  k.nonce = ctx->nonce;
  k.base = m->base;
  k.len = m->len;
  k.chunk = m->chunk;
  k.nrails = m->nrails;
  k.nchunks = m->nchunks;
  for (uint32_t i = 0; !rc && i < m->nrails * m->nchunks; i++)
    k.keys[i] = m->mrs[i]->rkey;
  if (!rc)
    rc = rdw_rkey_encode(&k, rkey, rkey_len);
  if (rc) {
    mr_free(ctx, m);
    return rc;
  }
  pthread_mutex_lock(&ctx->lock);
  m->next = ctx->mrs;
  ctx->mrs = m;
  pthread_mutex_unlock(&ctx->lock);
  *out = m;
  return 0;
}

/* ibv_dereg_mr returns once the NIC no longer reaches the range: the
 * rkeys published for it are dead from then on. */
void rd_mem_deregister(rd_ctx *ctx, rd_mr *m) {
  pthread_mutex_lock(&ctx->lock);
  for (rd_mr **p = &ctx->mrs; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  pthread_mutex_unlock(&ctx->lock);
  mr_free(ctx, m);
}

int rd_mem_import(rd_ctx *ctx, rd_ep *ep, uint64_t base, uint64_t len, const void *rkey,
                  size_t rkey_len, rd_rmem **out) {
  rd_rmem *r = calloc(1, sizeof *r);
  if (!r)
    return MC_ENOMEM;
  if (rdw_rkey_decode(rkey, rkey_len, &r->key) || r->key.nrails != ep->rdesc.nrails ||
      len == 0 || base < r->key.base || base + len < base ||
      base + len > r->key.base + r->key.len) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': malformed remote key for [0x%" PRIx64 ", +%" PRIu64 ")",
           ep->peer, base, len);
    free(r);
    return MC_EPROTO;
  }
  r->ep = ep;
  r->base = base;
  r->len = len;
  pthread_mutex_lock(&ctx->lock);
  r->next = ctx->rmems;
  ctx->rmems = r;
  pthread_mutex_unlock(&ctx->lock);
  *out = r;
  return 0;
}
