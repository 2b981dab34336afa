/* efa_mr.c - registrations: one fi_mr per rail's domain, honouring the
 * provider's FI_MR_* mode bits.  The target's provider checks every
 * incoming RMA against these keys and ranges (docs/plugin-guide.md,
 * section 2), so a key is the registration's secret: without
 * FI_MR_PROV_KEY it is drawn at random (as wide as mr_key_size allows),
 * so a key of a revoked registration is not reused by a new one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "efa_ctx.h"

int efa_fill_random(void *p, size_t n) {
  uint8_t *c = p;
  while (n) {
    ssize_t k = getrandom(c, n, 0);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

static uint64_t random_key(const efa_ctx *ctx) {
  uint64_t k = 0;
  if (efa_fill_random(&k, sizeof k))
    k = (uint64_t)efa_now_ms() * 0x9e3779b97f4a7c15ull;
  if (ctx->key_size > 0 && ctx->key_size < 8)
    k &= (1ull << (8 * ctx->key_size)) - 1;
  return k;
}

static int reg_one(efa_ctx *ctx, efa_rail *r, const mc_mem_desc *d, efa_mem *m) {
  uint64_t access = FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE |
                    FI_SEND | FI_RECV;
  struct iovec iov = {.iov_base = (void *)(uintptr_t)d->addr, .iov_len = d->len};
  struct fi_mr_attr a = {.mr_iov = &iov, .iov_count = 1, .access = access};
  if (d->kind != MC_MEM_CPU) {
    a.iface = FI_HMEM_CUDA;
    a.device.cuda = d->device;
  }
  int rc = -FI_ENOKEY;
  /* A drawn key may collide with a live one in the domain: draw again. */
  for (int tries = 0; tries < 8 && rc == -FI_ENOKEY; tries++) {
    a.requested_key = (ctx->mr_mode & FI_MR_PROV_KEY) ? 0 : random_key(ctx);
    rc = fi_mr_regattr(r->domain, &a, 0, &m->mr[r->idx]);
  }
  if (!rc && (ctx->mr_mode & FI_MR_ENDPOINT)) {
    rc = fi_mr_bind(m->mr[r->idx], &r->ep->fid, 0);
    if (!rc)
      rc = fi_mr_enable(m->mr[r->idx]);
  }
  if (rc) {
    EFA_LOG(ctx, MC_LOG_ERROR, "rail %s: fi_mr_reg of %llu bytes: %s", r->ri.name,
            (unsigned long long)d->len, fi_strerror(-rc));
    return rc == -FI_ENOMEM ? MC_ENOMEM : MC_EIO;
  }
  m->key[r->idx] = fi_mr_key(m->mr[r->idx]);
  if (m->key[r->idx] == FI_KEY_NOTAVAIL) {
    EFA_LOG(ctx, MC_LOG_ERROR, "rail %s: the provider's key does not fit 64 bits", r->ri.name);
    return MC_ENOTSUP;
  }
  m->desc[r->idx] = fi_mr_desc(m->mr[r->idx]);
  return 0;
}

int efa_mr_register(efa_ctx *ctx, const mc_mem_desc *d, efa_mem **out) {
  if (d->kind != MC_MEM_CPU && !(d->kind == MC_MEM_CUDA && ctx->hmem))
    return MC_ENOTSUP;
  efa_mem *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  m->base = d->addr;
  m->len = d->len;
  int rc = 0;
  for (uint32_t i = 0; i < ctx->nrails && !rc; i++)
    rc = reg_one(ctx, &ctx->rails[i], d, m);
  if (rc) {
    efa_mr_close(ctx, m);
    return rc;
  }
  *out = m;
  return 0;
}

/* fi_close of the MR revokes it in the provider: an RMA arriving later is
 * refused by the target's provider with a key error. */
void efa_mr_close(efa_ctx *ctx, efa_mem *m) {
  for (uint32_t i = 0; i < ctx->nrails; i++)
    if (m->mr[i])
      fi_close(&m->mr[i]->fid);
  free(m);
}
