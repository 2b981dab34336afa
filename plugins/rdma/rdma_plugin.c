/* rdma_plugin.c - entry point, params and ops table of the RDMA transport
 * (libibverbs, loaded at run time; see rdma_ctx.h for the modules). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "rdma_ctx.h"

#define RDMA_VERSION "1.0.0"

static const mc_param_info rdma_params[] = {
    {MC_PARAM_STRING, "library", "libibverbs.so.1",
     "verbs library to dlopen (a path or a soname)", 0, 0},
    {MC_PARAM_STRING, "cuda_library", "libcuda.so.1",
     "CUDA driver to dlopen for CUDA memory (dma-buf export for ibv_reg_dmabuf_mr)", 0, 0},
    {MC_PARAM_STRING, "devices", "",
     "comma-separated devices (or dev:port) to use; empty = all", 0, 0},
    {MC_PARAM_STRING, "exclude_devices", "", "comma-separated devices (or dev:port) to skip", 0, 0},
    {MC_PARAM_INT, "gid_index", "-1",
     "GID index for RoCE; -1 = automatic (RoCE v2 IPv4-mapped preferred)", -1, 255},
    {MC_PARAM_INT, "qps_per_peer", "2",
     "RC queue pairs per (local NIC, peer NIC) pair, made on the pair's first use", 1, 16},
    {MC_PARAM_INT, "max_send_wr", "256", "outstanding work requests per QP", 16, 16384},
    {MC_PARAM_INT, "signal_every", "16", "request a completion every N work requests", 1, 1024},
    {MC_PARAM_INT, "cq_size", "8192", "completion queue entries per NIC (bounds its WRs)", 64,
     1048576},
    {MC_PARAM_INT, "max_endpoints", "1024",
     "peers with live QPs; the least recently used idle one is evicted", 1, 65536},
    {MC_PARAM_INT, "max_peer_qps", "1024", "QPs one peer may open on this engine", 1, 65536},
    {MC_PARAM_INT, "timeout_ms", "30000", "per-slice deadline in milliseconds", 10, 86400000},
    {MC_PARAM_INT, "ctrl_timeout_ms", "5000", "QP exchange deadline in milliseconds", 10,
     600000},
    {MC_PARAM_INT, "mtu", "4096", "largest path MTU to use (256..4096)", 256, 4096},
    {MC_PARAM_SIZE, "max_mr_chunk", "0",
     "register buffers in MRs of at most this size; 0 = device max_mr_size", 0, 0},
    {MC_PARAM_INT, "busy_poll_us", "50", "CQ busy-poll time before sleeping on events", 0,
     1000000},
    {MC_PARAM_INT, "cq_threads", "1",
     "completion threads, each polling a share of the rails' CQs; 0 = one per rail", 0, 32},
    {MC_PARAM_INT, "backoff_ms", "100", "first pause of a rail after an error", 1, 600000},
    {MC_PARAM_INT, "backoff_max_ms", "5000", "longest pause of a failing rail", 1, 3600000},
    {MC_PARAM_INT, "retry_cnt", "7", "QP transport retries (IB retry_cnt)", 0, 7},
    {MC_PARAM_INT, "ack_timeout", "14", "QP local ACK timeout exponent (4.096 us * 2^N)", 1, 31},
    {MC_PARAM_INT, "traffic_class", "0", "GRH traffic class (RoCE DSCP << 2)", 0, 255},
    {MC_PARAM_INT, "service_level", "0", "IB service level", 0, 15},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

static int cfg_int(const mc_host_api *h, const char *key, int64_t *out) {
  int rc = h->config_get_int(h->host, key, out);
  for (const mc_param_info *p = rdma_params; p->type != MC_PARAM_END; p++)
    if (!strcmp(p->name, key) && rc == 0 && (*out < p->min || *out > p->max))
      rc = MC_EINVAL;
  if (rc)
    h->log(h->host, MC_LOG_ERROR, "transports.rdma.%s: cannot read: %s", key, mc_strerror(rc));
  return rc;
}

static int cfg_str(const mc_host_api *h, const char *key, char *out, size_t cap,
                   const char *dflt) {
  const char *v = NULL;
  if (h->config_get(h->host, key, &v) || !v)
    v = dflt;
  if (strlen(v) >= cap) {
    h->log(h->host, MC_LOG_ERROR, "transports.rdma.%s: longer than %zu bytes", key, cap - 1);
    return MC_EINVAL;
  }
  snprintf(out, cap, "%s", v);
  return 0;
}

static uint32_t mtu_enum(int64_t v) {
  return v >= 4096 ? IBV_MTU_4096 : v >= 2048 ? IBV_MTU_2048 : v >= 1024 ? IBV_MTU_1024
         : v >= 512 ? IBV_MTU_512 : IBV_MTU_256;
}

static int load_cfg(const mc_host_api *h, rd_cfg *c) {
  int64_t v[19];
  static const char *const keys[] = {"gid_index", "qps_per_peer", "max_send_wr", "signal_every",
                                     "cq_size", "max_endpoints", "max_peer_qps", "timeout_ms",
                                     "ctrl_timeout_ms", "mtu", "busy_poll_us", "backoff_ms",
                                     "backoff_max_ms", "retry_cnt", "ack_timeout",
                                     "traffic_class", "service_level", "cq_threads"};
  int rc = 0;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !rc; i++)
    rc = cfg_int(h, keys[i], &v[i]);
  rc = rc ? rc : cfg_str(h, "library", c->library, sizeof c->library, "libibverbs.so.1");
  rc = rc ? rc : cfg_str(h, "cuda_library", c->cuda_library, sizeof c->cuda_library,
                         "libcuda.so.1");
  rc = rc ? rc : cfg_str(h, "devices", c->devices, sizeof c->devices, "");
  rc = rc ? rc : cfg_str(h, "exclude_devices", c->exclude, sizeof c->exclude, "");
  if (!rc && (rc = h->config_get_size(h->host, "max_mr_chunk", &c->max_mr_chunk)))
    h->log(h->host, MC_LOG_ERROR, "transports.rdma.max_mr_chunk: cannot read: %s",
           mc_strerror(rc));
  if (rc)
    return rc;
  c->gid_index = (int)v[0];
  c->qps_per_peer = (uint32_t)v[1];
  c->max_send_wr = (uint32_t)v[2];
  c->signal_every = (uint32_t)v[3];
  c->cq_size = (uint32_t)v[4];
  c->max_endpoints = (uint32_t)v[5];
  c->max_peer_qps = (uint32_t)v[6];
  c->timeout_ms = (int)v[7];
  c->ctrl_timeout_ms = (int)v[8];
  c->mtu = mtu_enum(v[9]);
  c->busy_poll_us = (int)v[10];
  c->backoff_ms = (int)v[11];
  c->backoff_max_ms = (int)v[12] < c->backoff_ms ? c->backoff_ms : (int)v[12];
  c->retry_cnt = (uint32_t)v[13];
  c->ack_timeout = (uint32_t)v[14];
  c->traffic_class = (uint32_t)v[15];
  c->service_level = (uint32_t)v[16];
  c->cq_threads = (uint32_t)v[17];
  if (c->signal_every > c->max_send_wr)
    c->signal_every = c->max_send_wr;
  /* Smaller MRs would split ordinary slices into more WRs than a QP
   * holds. */
  if (c->max_mr_chunk && c->max_mr_chunk < (1u << 20)) {
    h->log(h->host, MC_LOG_WARN, "transports.rdma.max_mr_chunk %" PRIu64 " raised to 1 MiB",
           c->max_mr_chunk);
    c->max_mr_chunk = 1u << 20;
  }
  return 0;
}

static int rdma_fini(void *vctx);

static int rdma_init(const mc_host_api *host, const mc_init_args *args, void **out) {
  if (!host || !args || !out)
    return MC_EINVAL;
  if (host->abi_major != MC_TRANSPORT_ABI_MAJOR ||
      host->struct_size < offsetof(mc_host_api, notify_recv) + sizeof host->notify_recv ||
      !host->log || !host->log_enabled || !host->config_get || !host->complete ||
      !host->notify_recv)
    return MC_EABI;
  if (!MC_HOST_HAS(host, config_get_size) || !MC_HOST_HAS(host, config_get_int)) {
    host->log(host->host, MC_LOG_ERROR, "host ABI %u.%u lacks the typed config getters (1.1)",
              host->abi_major, host->abi_minor);
    return MC_EABI;
  }
  /* QP numbers travel over the core's control channel (ABI 1.2). */
  if (!MC_HOST_HAS(host, ctrl_call)) {
    host->log(host->host, MC_LOG_ERROR,
              "host ABI %u.%u has no control channel (ctrl_call, ABI 1.2): cannot exchange QPs",
              host->abi_major, host->abi_minor);
    return MC_ENOTSUP;
  }
  rd_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return MC_ENOMEM;
  ctx->host = host;
  pthread_mutex_init(&ctx->lock, NULL);
  pthread_mutex_init(&ctx->plock, NULL);
  pthread_mutex_init(&ctx->fix_lock, NULL);
  pthread_cond_init(&ctx->fix_cond, NULL);
  pthread_mutex_init(&ctx->nlock, NULL);
  pthread_cond_init(&ctx->ncond, NULL);
  snprintf(ctx->segment, sizeof ctx->segment, "%s",
           args->segment_name ? args->segment_name : "");
  int rc = load_cfg(host, &ctx->cfg);
  char err[512];
  if (!rc && (rc = rd_verbs_load(&ctx->v, ctx->cfg.library, err, sizeof err)))
    host->log(host->host, MC_LOG_WARN, "%s", err);
  if (!rc && getrandom(&ctx->nonce, sizeof ctx->nonce, 0) != (ssize_t)sizeof ctx->nonce)
    rc = MC_EIO;
  if (!rc)
    rc = rd_rails_open(ctx);
  if (!rc)
    rc = rd_rails_start(ctx);
  if (!rc)
    rc = rd_fixer_start(ctx);
  if (rc) {
    rdma_fini(ctx);
    return rc;
  }
  RD_LOG(ctx, MC_LOG_INFO, "%u rails over %s", ctx->nrails, ctx->cfg.library);
  *out = ctx;
  return 0;
}

static int rdma_fini(void *vctx) {
  rd_ctx *ctx = vctx;
  if (!ctx)
    return MC_EINVAL;
  rd_fixer_stop(ctx);
  atomic_store(&ctx->stop, 1);
  /* Endpoints first: their WRs in flight complete MC_ECANCELED. */
  while (ctx->eps)
    rd_ep_destroy(ctx->eps, 0);
  while (ctx->rmems) {
    rd_rmem *r = ctx->rmems;
    ctx->rmems = r->next;
    free(r);
  }
  rd_passive_free_all(ctx);
  while (ctx->mrs)
    rd_mem_deregister(ctx, ctx->mrs);
  rd_rails_close(ctx);
  pthread_cond_destroy(&ctx->fix_cond);
  pthread_mutex_destroy(&ctx->fix_lock);
  pthread_cond_destroy(&ctx->ncond);
  pthread_mutex_destroy(&ctx->nlock);
  pthread_mutex_destroy(&ctx->plock);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
  return 0;
}

static int rdma_query_rails(void *vctx, mc_rail_info *out, uint32_t *n) {
  rd_ctx *ctx = vctx;
  if (!ctx || !n)
    return MC_EINVAL;
  uint32_t cap = *n;
  *n = ctx->nrails;
  if (!out || cap < ctx->nrails)
    return MC_ENOSPC;
  for (uint32_t i = 0; i < ctx->nrails; i++) {
    rd_rail *r = ctx->rails[i];
    memset(&out[i], 0, sizeof out[i]);
    snprintf(out[i].name, sizeof out[i].name, "%s", r->name);
    out[i].numa_node = r->numa;
    out[i].pci_bus_id = r->pci;
    out[i].bandwidth_mbps = r->bw_mbps;
  }
  return 0;
}

static int rdma_local_desc(void *vctx, void *buf, size_t *len) {
  rd_ctx *ctx = vctx;
  if (!ctx || !len)
    return MC_EINVAL;
  rdw_desc d;
  memset(&d, 0, sizeof d);
  d.nonce = ctx->nonce;
  d.nrails = ctx->nrails;
  for (uint32_t i = 0; i < ctx->nrails; i++) {
    union ibv_gid g;
    int gidx;
    rd_rail_addr(ctx->rails[i], &g, &gidx, &d.rails[i].lid);
    memcpy(d.rails[i].gid, g.raw, 16);
    d.rails[i].link_ib = ctx->rails[i]->link_ib;
    d.rails[i].mtu = ctx->rails[i]->mtu;
  }
  return rdw_desc_encode(&d, buf, len);
}

static int rdma_register_mem(void *vctx, const mc_mem_desc *d, void **mem, void *rkey,
                             size_t *rkey_len) {
  rd_ctx *ctx = vctx;
  if (!ctx || !d || !mem || !rkey_len || d->len == 0 || d->addr + d->len < d->addr)
    return MC_EINVAL;
  return rd_mem_register(ctx, d, (rd_mr **)mem, rkey, rkey_len);
}

static int rdma_deregister_mem(void *vctx, void *mem) {
  if (!vctx || !mem)
    return MC_EINVAL;
  rd_mem_deregister(vctx, mem);
  return 0;
}

static int rdma_connect(void *vctx, const char *peer, const void *desc, size_t len, void **ep) {
  if (!vctx || !peer || !ep)
    return MC_EINVAL;
  return rd_ep_connect(vctx, peer, desc, len, (rd_ep **)ep);
}

static int rdma_disconnect(void *vctx, void *ep) {
  if (!vctx || !ep)
    return MC_EINVAL;
  rd_ep_destroy(ep, 1);
  return 0;
}

static int rdma_import_mem(void *vctx, void *ep, uint64_t base, uint64_t len, const void *rkey,
                           size_t rkey_len, void **rmem) {
  if (!vctx || !ep || !rmem)
    return MC_EINVAL;
  return rd_mem_import(vctx, ep, base, len, rkey, rkey_len, (rd_rmem **)rmem);
}

static int rdma_release_mem(void *vctx, void *rmem) {
  rd_ctx *ctx = vctx;
  if (!ctx || !rmem)
    return MC_EINVAL;
  int found = 0;
  pthread_mutex_lock(&ctx->lock);
  for (rd_rmem **p = &ctx->rmems; *p; p = &(*p)->next)
    if (*p == rmem) {
      *p = (*p)->next;
      found = 1;
      break;
    }
  pthread_mutex_unlock(&ctx->lock);
  if (!found)
    return MC_EINVAL;
  free(rmem);
  return 0;
}

static int rdma_submit(void *vctx, void *ep, const mc_slice *s, uint32_t n, uint32_t *accepted) {
  if (!vctx || !ep || !accepted || (n && !s))
    return MC_EINVAL;
  return rd_submit(vctx, ep, s, n, accepted);
}

/* A SEND on the endpoint's notify QP (rd_notify_send), which RC delivers
 * after the data of every WR before it; when no notify QP is usable (or
 * the SEND fails), the control channel, which holds the order too: every
 * slice completed before this call has its data in the peer's memory. */
static int rdma_send_notify(void *vctx, void *vep, const void *msg, size_t len) {
  rd_ctx *ctx = vctx;
  rd_ep *ep = vep;
  if (!ctx || !ep || (len && !msg) || len > MC_NOTIFY_MAX)
    return MC_EINVAL;
  if (len + RDW_CTRL_HDR > MC_CTRL_MAX)
    return MC_EINVAL;
  int src = rd_notify_send(ctx, ep, msg, len);
  if (src == 0)
    return 0;
  RD_LOG(ctx, MC_LOG_DEBUG, "peer '%s': notification SEND: %s; using the control channel",
         ep->peer, mc_strerror(src));
  rdw_ctrl *m = calloc(1, sizeof *m);
  uint8_t *buf = malloc(MC_CTRL_MAX);
  if (!m || !buf) {
    free(m);
    free(buf);
    return MC_ENOMEM;
  }
  m->type = RDW_NOTIFY;
  m->init_nonce = ctx->nonce;
  m->target_nonce = ep->rdesc.nonce;
  m->ep_id = ep->id;
  m->payload = msg;
  m->payload_len = len;
  size_t blen = MC_CTRL_MAX, rlen = 0;
  uint8_t resp[16];
  rlen = sizeof resp;
  int rc = rdw_ctrl_encode(m, buf, &blen);
  if (!rc)
    rc = ctx->host->ctrl_call(ctx->host->host, ep->peer, buf, blen, resp, &rlen,
                              (uint32_t)ctx->cfg.ctrl_timeout_ms);
  free(m);
  free(buf);
  return rc;
}

static const char *rdma_vendor_strerror(void *vctx, int32_t code) {
  (void)vctx;
  (void)code;
  return "verbs vendor syndrome (see the NIC vendor's documentation)";
}

static int rdma_ctrl_handle(void *vctx, const char *peer, const void *req, size_t req_len,
                            void *resp, size_t *resp_len) {
  if (!vctx || !peer || !req || !resp || !resp_len)
    return MC_EINVAL;
  return rd_ctrl_handle(vctx, peer, req, req_len, resp, resp_len);
}

static const mc_transport_ops rdma_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "rdma",
    .version = RDMA_VERSION,
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_NOTIFY | MC_CAP_INTRA_NODE |
            MC_CAP_INTER_NODE | MC_CAP_OWN_THREADS,
    /* CUDA memory when the driver exports it as a dma-buf (else register
     * says MC_ENOTSUP, and the core uses another transport for it). */
    .local_mem_kinds = MC_MEM_CPU | MC_MEM_CUDA,
    .remote_mem_kinds = MC_MEM_CPU | MC_MEM_CUDA,
    .params = rdma_params,
    .param_info_size = sizeof(mc_param_info),
    .init = rdma_init,
    .fini = rdma_fini,
    .query_rails = rdma_query_rails,
    .local_desc = rdma_local_desc,
    .register_mem = rdma_register_mem,
    .deregister_mem = rdma_deregister_mem,
    .connect = rdma_connect,
    .disconnect = rdma_disconnect,
    .import_mem = rdma_import_mem,
    .release_mem = rdma_release_mem,
    .submit = rdma_submit,
    .progress = NULL,
    .cancel = NULL,
    .send_notify = rdma_send_notify,
    .vendor_strerror = rdma_vendor_strerror,
    /* 64 KiB: a handful of MTU-sized packets per WR keeps every NIC's
     * pipeline full without making one slice a long tail on a failing rail. */
    .slice_size = 64u << 10,
    .ctrl_handle = rdma_ctrl_handle,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) { return &rdma_ops; }
