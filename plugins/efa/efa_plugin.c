/* efa_plugin.c - entry point and ops table of the efa transport: one-sided
 * READ/WRITE and notifications over libfabric RDM endpoints (provider "efa"
 * by default; any RMA-capable provider such as "tcp;ofi_rxm" or "shm").
 * Rails and endpoints: efa_fabric.c; registrations: efa_mr.c; transfers
 * and the per-rail workers: efa_xfer.c; notifications: efa_notify.c;
 * blobs: efa_blob.c.  RDM endpoints are connectionless: connect only
 * parses the peer's endpoint names, which the rails' workers insert into
 * their address vectors ahead of the first transfer. */
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "efa_ctx.h"

#define EFA_VERSION "1.0.0"

static const mc_param_info efa_params[] = {
    {MC_PARAM_STRING, "provider", "efa",
     "libfabric provider, e.g. efa, \"tcp;ofi_rxm\", shm (',' may stand for ';')", 0, 0},
    {MC_PARAM_STRING, "domain", "",
     "devices (domain names) to use, comma-separated; empty = all but loopback", 0, 0},
    {MC_PARAM_INT, "rails", "8", "most devices (rails) to open", 1, EFAB_MAX_RAILS},
    {MC_PARAM_INT, "timeout_ms", "10000", "per-slice deadline in milliseconds", 1,
     86400000},
    {MC_PARAM_INT, "max_inflight", "1024", "slices queued or in flight per rail", 16, 65536},
    {MC_PARAM_INT, "poll_us", "50",
     "poll period of rails without a CQ wait object (shm), microseconds", 1, 100000},
    {MC_PARAM_INT, "spin_us", "1000",
     "rails without a CQ wait object (shm): how long they keep polling after their last work "
     "before napping poll_us, microseconds", 0, 1000000},
    {MC_PARAM_STRING, "hmem", "auto",
     "ask for FI_HMEM (device memory): true, false, or auto (all providers but shm)", 0, 0},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

static int cfg_int(const mc_host_api *h, const char *key, int64_t *out) {
  int rc = h->config_get_int(h->host, key, out);
  const mc_param_info *p = efa_params;
  while (p->type != MC_PARAM_END && strcmp(p->name, key) != 0)
    p++;
  if (rc == 0 && (*out < p->min || *out > p->max))
    rc = MC_EINVAL;
  if (rc)
    h->log(h->host, MC_LOG_ERROR, "transports.efa.%s: cannot read: %s", key,
           mc_strerror(rc));
  return rc;
}

static int cfg_str(const mc_host_api *h, const char *key, char *out, size_t n) {
  const char *v = NULL;
  out[0] = '\0';
  int rc = h->config_get(h->host, key, &v);
  if (rc == MC_ENOENT) {
    const mc_param_info *p = efa_params;
    while (p->type != MC_PARAM_END && strcmp(p->name, key) != 0)
      p++;
    v = p->default_text;
  } else if (rc) {
    return rc;
  }
  if (v && strlen(v) >= n) {
    h->log(h->host, MC_LOG_ERROR, "transports.efa.%s: longer than %zu bytes", key, n - 1);
    return MC_EINVAL;
  }
  snprintf(out, n, "%s", v ? v : "");
  return 0;
}

static int load_cfg(const mc_host_api *h, efa_cfg *c) {
  int64_t rails, tmo, infl, poll, spin;
  int rc = cfg_int(h, "rails", &rails);
  rc = rc ? rc : cfg_int(h, "timeout_ms", &tmo);
  rc = rc ? rc : cfg_int(h, "max_inflight", &infl);
  rc = rc ? rc : cfg_int(h, "poll_us", &poll);
  rc = rc ? rc : cfg_int(h, "spin_us", &spin);
  char hmem[16];
  rc = rc ? rc : cfg_str(h, "hmem", hmem, sizeof hmem);
  rc = rc ? rc : cfg_str(h, "provider", c->provider, sizeof c->provider);
  rc = rc ? rc : cfg_str(h, "domain", c->domains, sizeof c->domains);
  if (rc)
    return rc;
  /* ';' separates settings in some lists (MC_CONFORMANCE_PARAMS): ','
   * may stand for the ';' of a layered provider name. */
  for (char *p = c->provider; *p; p++)
    if (*p == ',')
      *p = ';';
  if (!c->provider[0]) {
    h->log(h->host, MC_LOG_ERROR, "transports.efa.provider: empty");
    return MC_EINVAL;
  }
  /* auto: not with shm.  libfabric's shm turns its single-copy path (CMA,
   * process_vm_readv) off on an endpoint with FI_HMEM and then copies
   * host memory through bounce buffers on both sides (a 64K write moved
   * 0.7 GB/s instead of 5.2 here), and nobody puts device memory on shm. */
  if (!strcmp(hmem, "auto"))
    c->hmem = strcmp(c->provider, "shm") != 0;
  else if (!strcmp(hmem, "true") || !strcmp(hmem, "1"))
    c->hmem = 1;
  else if (!strcmp(hmem, "false") || !strcmp(hmem, "0"))
    c->hmem = 0;
  else {
    h->log(h->host, MC_LOG_ERROR, "transports.efa.hmem: '%s': want true, false or auto", hmem);
    return MC_EINVAL;
  }
  c->rails = (uint32_t)rails;
  c->timeout_ms = (int)tmo;
  c->max_inflight = (uint32_t)infl;
  c->poll_us = (int)poll;
  c->spin_us = (int)spin;
  return 0;
}

#define DRAIN_MS 1000

/* libfabric 1.17's shm crashes (SIGSEGV in the target's progress) when
 * an initiator endpoint in the same process closes while RMA it posted is
 * still in the target's queue: the target then reads the closed
 * endpoint's region.  So on shm, fini first lets the ops the provider
 * holds finish (bounded: an op whose peer is gone never does), posting
 * nothing new. */
static void drain(efa_ctx *ctx) {
  if (!ctx->drain_on_close)
    return;
  int64_t end = efa_now_ms() + DRAIN_MS;
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    pthread_mutex_lock(&r->lock);
    r->draining = 1;
    pthread_mutex_unlock(&r->lock);
  }
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    for (;;) {
      pthread_mutex_lock(&r->lock);
      int busy = r->posted.n || r->abandoned;
      pthread_mutex_unlock(&r->lock);
      if (!busy || efa_now_ms() >= end || !r->thr_started)
        break;
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
}

static void ctx_free(efa_ctx *ctx) {
  drain(ctx);
  int wedged = efa_workers_stop(ctx) != 0;
  efa_fail_all(ctx, MC_ECANCELED);
  if (wedged) {
    /* A worker is still inside libfabric on one of the endpoints: closing
     * them (or freeing the ops whose contexts the provider holds) under
     * it could crash; every slice was completed just above, and the
     * rest stays allocated on purpose (logged by efa_workers_stop). */
    return;
  }
  /* fi_close of an endpoint ends the provider's use of every op context
   * it was given: from here no CQ entry can name an op, so the op array
   * (freed last, below) is never written after it is freed. */
  efa_fabric_close_eps(ctx);
  while (ctx->mems) {
    efa_mem *m = ctx->mems;
    ctx->mems = m->next;
    efa_mr_close(ctx, m);
  }
  efa_fabric_close(ctx);
  while (ctx->rmems) {
    efa_rmem *r = ctx->rmems;
    ctx->rmems = r->next;
    free(r);
  }
  while (ctx->peers) {
    efa_peer *p = ctx->peers;
    ctx->peers = p->next;
    free(p);
  }
  for (uint32_t k = 0; k < EFAB_MAX_RAILS; k++) {
    efa_rail *r = &ctx->rails[k];
    free(r->ops);
    free(r->note_mem);
    free(r->av_cache);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->post_lock);
    pthread_cond_destroy(&r->cond);
  }
  pthread_mutex_destroy(&ctx->lock);
  pthread_mutex_destroy(&ctx->reap_lock);
  pthread_cond_destroy(&ctx->reap_cond);
  free(ctx);
}

static int efa_init(const mc_host_api *host, const mc_init_args *args, void **out) {
  if (!host || !args || !out)
    return MC_EINVAL;
  if (host->abi_major != MC_TRANSPORT_ABI_MAJOR ||
      host->struct_size < offsetof(mc_host_api, notify_recv) + sizeof host->notify_recv ||
      !host->log || !host->log_enabled || !host->config_get || !host->complete ||
      !host->notify_recv)
    return MC_EABI;
  if (!MC_HOST_HAS(host, config_get_int) || !MC_HOST_HAS(host, config_get_bool)) {
    host->log(host->host, MC_LOG_ERROR,
              "host ABI %u.%u lacks the typed config getters of ABI 1.1", host->abi_major,
              host->abi_minor);
    return MC_EABI;
  }
  /* libfabric does not undo its global set-up (providers, their
   * allocations) when it is unloaded, so unloading this plugin -- its
   * only user -- would lose that memory on every reload: pin it. */
  if (!dlopen("libfabric.so.1", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
    host->log(host->host, MC_LOG_DEBUG, "cannot pin libfabric.so.1: %s", dlerror());
  efa_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return MC_ENOMEM;
  ctx->host = host;
  pthread_mutex_init(&ctx->lock, NULL);
  pthread_mutex_init(&ctx->reap_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ctx->reap_cond, &ca);
  pthread_condattr_destroy(&ca);
  for (uint32_t k = 0; k < EFAB_MAX_RAILS; k++) {
    pthread_mutex_init(&ctx->rails[k].lock, NULL);
    pthread_mutex_init(&ctx->rails[k].post_lock, NULL);
    pthread_cond_init(&ctx->rails[k].cond, NULL);
  }
  int rc = load_cfg(host, &ctx->cfg);
  const char *seg = args->segment_name && args->segment_name[0] ? args->segment_name : "unnamed";
  if (!rc && strlen(seg) >= MC_NAME_MAX)
    rc = MC_EINVAL;
  if (!rc) {
    snprintf(ctx->segment, sizeof ctx->segment, "%s", seg);
    if (efa_fill_random(ctx->secret, sizeof ctx->secret))
      rc = MC_EIO;
  }
  if (!rc)
    rc = efa_fabric_open(ctx);
  if (!rc)
    rc = efa_workers_start(ctx);
  if (rc) {
    ctx_free(ctx);
    return rc;
  }
  EFA_LOG(ctx, MC_LOG_INFO, "provider %s, %u rail(s) (first: %s), MR mode 0x%" PRIx64
          ", %s", ctx->rails[0].info->fabric_attr->prov_name, ctx->nrails,
          ctx->rails[0].ri.name, ctx->mr_mode,
          ctx->rails[0].cq_wait ? "CQ wait object" : "CQ polled with backoff");
  *out = ctx;
  return 0;
}

static int efa_fini(void *vctx) {
  if (!vctx)
    return MC_EINVAL;
  ctx_free(vctx);
  return 0;
}

static int efa_query_rails(void *vctx, mc_rail_info *out, uint32_t *n) {
  efa_ctx *ctx = vctx;
  if (!ctx || !n)
    return MC_EINVAL;
  uint32_t cap = *n;
  *n = ctx->nrails;
  if (!out || cap < ctx->nrails)
    return MC_ENOSPC;
  for (uint32_t i = 0; i < ctx->nrails; i++)
    out[i] = ctx->rails[i].ri;
  return 0;
}

static int efa_local_desc(void *vctx, void *buf, size_t *len) {
  efa_ctx *ctx = vctx;
  if (!ctx || !len)
    return MC_EINVAL;
  efab_desc *d = calloc(1, sizeof *d);
  if (!d)
    return MC_ENOMEM;
  d->nrails = ctx->nrails;
  d->addr_format = (uint16_t)ctx->rails[0].info->addr_format;
  memcpy(d->secret, ctx->secret, sizeof d->secret);
  snprintf(d->prov, sizeof d->prov, "%s", ctx->rails[0].info->fabric_attr->prov_name);
  for (uint32_t i = 0; i < ctx->nrails; i++) {
    d->addr_len[i] = (uint16_t)ctx->rails[i].addr_len;
    memcpy(d->addr[i], ctx->rails[i].addr, ctx->rails[i].addr_len);
  }
  int rc = efab_desc_encode(d, buf, len);
  free(d);
  return rc;
}

static int efa_register_mem(void *vctx, const mc_mem_desc *d, void **mem, void *rkey,
                            size_t *rkey_len) {
  efa_ctx *ctx = vctx;
  if (!ctx || !d || !mem || !rkey_len || d->len == 0 || d->addr + d->len < d->addr)
    return MC_EINVAL;
  size_t need = EFAB_RKEY_LEN(ctx->nrails);
  if (!rkey || *rkey_len < need) {
    *rkey_len = need;
    return MC_ENOSPC;
  }
  efa_mem *m = NULL;
  int rc = efa_mr_register(ctx, d, &m);
  if (rc)
    return rc;
  efab_rkey k = {.nrails = ctx->nrails, .base = m->base, .len = m->len,
                 .flags = (ctx->mr_mode & FI_MR_VIRT_ADDR) ? EFAB_RKEY_VIRT : 0};
  memcpy(k.key, m->key, sizeof k.key);
  k.tag = efab_rkey_tag(ctx->secret, &k);
  rc = efab_rkey_encode(&k, rkey, rkey_len);
  if (rc) {
    efa_mr_close(ctx, m);
    return rc;
  }
  pthread_mutex_lock(&ctx->lock);
  m->next = ctx->mems;
  ctx->mems = m;
  pthread_mutex_unlock(&ctx->lock);
  *mem = m;
  return 0;
}

static int efa_deregister_mem(void *vctx, void *mem) {
  efa_ctx *ctx = vctx;
  if (!ctx || !mem)
    return MC_EINVAL;
  int found = 0;
  pthread_mutex_lock(&ctx->lock);
  for (efa_mem **p = &ctx->mems; *p; p = &(*p)->next)
    if (*p == mem) {
      *p = (*p)->next;
      found = 1;
      break;
    }
  pthread_mutex_unlock(&ctx->lock);
  if (!found)
    return MC_EINVAL;
  efa_mr_close(ctx, mem);
  return 0;
}

/* Is addr (len bytes, from a peer's descriptor) an address of format fmt
 * that fi_av_insert can take?  libfabric 1.17's tcp;ofi_rxm crashes
 * (SIGSEGV inside fi_av_insert) on a socket address of an unknown family,
 * so socket addresses are checked here: family and length must agree.
 * A string address must be NUL-terminated and printable; any other format
 * must have the length of this engine's own address of that format. */
static int addr_ok(uint32_t fmt, const uint8_t *addr, size_t len, size_t own_len) {
  sa_family_t fam = 0;
  if (len >= sizeof fam)
    memcpy(&fam, addr, sizeof fam);
  switch (fmt) {
  case FI_SOCKADDR_IN:
    return len == sizeof(struct sockaddr_in) && fam == AF_INET;
  case FI_SOCKADDR_IN6:
    return len == sizeof(struct sockaddr_in6) && fam == AF_INET6;
  case FI_SOCKADDR:
    return (len == sizeof(struct sockaddr_in) && fam == AF_INET) ||
           (len == sizeof(struct sockaddr_in6) && fam == AF_INET6);
  case FI_ADDR_STR:
    if (len == 0 || addr[len - 1] != '\0')
      return 0;
    for (size_t i = 0; i + 1 < len; i++)
      if (addr[i] < 0x20 || addr[i] > 0x7e)
        return 0;
    return 1;
  default:
    return len == own_len;
  }
}

static int efa_connect(void *vctx, const char *peer, const void *desc, size_t len,
                       void **out) {
  efa_ctx *ctx = vctx;
  if (!ctx || !peer || !out)
    return MC_EINVAL;
  efa_peer *p = calloc(1, sizeof *p);
  if (!p)
    return MC_ENOMEM;
  if (efab_desc_decode(desc, len, &p->desc)) {
    EFA_LOG(ctx, MC_LOG_WARN, "peer '%s': malformed endpoint descriptor (%zu bytes)", peer,
            len);
    free(p);
    return MC_EPROTO;
  }
  const struct fi_info *i = ctx->rails[0].info;
  if (strcmp(p->desc.prov, i->fabric_attr->prov_name) ||
      p->desc.addr_format != (uint16_t)i->addr_format) {
    EFA_LOG(ctx, MC_LOG_WARN, "peer '%s' runs provider %s (address format %u), this engine %s "
            "(%u): no common path", peer, p->desc.prov, p->desc.addr_format,
            i->fabric_attr->prov_name, (unsigned)i->addr_format);
    free(p);
    return MC_EPEER;
  }
  for (uint32_t k = 0; k < p->desc.nrails; k++)
    if (!addr_ok(i->addr_format, p->desc.addr[k], p->desc.addr_len[k], ctx->rails[0].addr_len)) {
      EFA_LOG(ctx, MC_LOG_WARN, "peer '%s': rail %u address is not a valid address of "
              "format %u (%u bytes)", peer, k, (unsigned)i->addr_format,
              (unsigned)p->desc.addr_len[k]);
      free(p);
      return MC_EPROTO;
    }
  p->ctx = ctx;
  snprintf(p->name, sizeof p->name, "%s", peer);
  for (uint32_t k = 0; k < EFAB_MAX_RAILS; k++)
    p->fa[k] = FI_ADDR_NOTAVAIL;
  pthread_mutex_lock(&ctx->lock);
  p->next = ctx->peers;
  ctx->peers = p;
  pthread_mutex_unlock(&ctx->lock);
  /* Warm-up: each rail's worker inserts the address now, ahead of the
   * first transfer, off this (control) thread. */
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    pthread_mutex_lock(&r->lock);
    r->av_work = 1;
    pthread_mutex_unlock(&r->lock);
    if (r->cq_wait)
      fi_cq_signal(r->cq);
  }
  *out = p;
  return 0;
}

static int efa_disconnect(void *vctx, void *vep) {
  efa_ctx *ctx = vctx;
  if (!ctx || !vep)
    return MC_EINVAL;
  int found = 0;
  pthread_mutex_lock(&ctx->lock);
  for (efa_peer **p = &ctx->peers; *p; p = &(*p)->next)
    if (*p == vep) {
      *p = (*p)->next;
      found = 1;
      break;
    }
  pthread_mutex_unlock(&ctx->lock);
  if (!found)
    return MC_EINVAL;
  efa_peer_cancel_all(ctx, vep, MC_ECANCELED);
  /* Imports made on it stay valid handles for release_mem, unlinked from
   * the peer (guide, section 4). */
  pthread_mutex_lock(&ctx->lock);
  for (efa_rmem *r = ctx->rmems; r; r = r->next)
    if (r->peer == vep)
      r->peer = NULL;
  pthread_mutex_unlock(&ctx->lock);
  free(vep);
  return 0;
}

static int efa_import_mem(void *vctx, void *ep, uint64_t base, uint64_t len,
                          const void *rkey, size_t rkey_len, void **out) {
  efa_ctx *ctx = vctx;
  if (!ctx || !ep || !out)
    return MC_EINVAL;
  efa_rmem *r = calloc(1, sizeof *r);
  if (!r)
    return MC_ENOMEM;
  efa_peer *p = ep;
  /* The key must be the target's own (its tag, under the secret of the
   * peer's descriptor: offset-addressed providers take base from this
   * blob, so a changed base would move accesses), cover the view, and
   * name a key for every rail of the peer.  The target's provider checks
   * the key and the registration's bounds on every access. */
  int bad = efab_rkey_decode(rkey, rkey_len, &r->k);
  const char *why = "malformed";
  if (!bad && r->k.tag != efab_rkey_tag(p->desc.secret, &r->k)) {
    bad = 1;
    why = "not made by this peer (tag mismatch)";
  } else if (!bad && (len == 0 || base + len < base || base < r->k.base || len > r->k.len ||
                      base - r->k.base > r->k.len - len || r->k.nrails != p->desc.nrails)) {
    bad = 1;
    why = "not covering the view";
  }
  if (bad) {
    EFA_LOG(ctx, MC_LOG_WARN, "peer '%s': remote key for [0x%" PRIx64 ", +%" PRIu64 ") %s",
            p->name, base, len, why);
    free(r);
    return MC_EPROTO;
  }
  r->peer = p;
  r->base = base;
  r->len = len;
  pthread_mutex_lock(&ctx->lock);
  r->next = ctx->rmems;
  ctx->rmems = r;
  pthread_mutex_unlock(&ctx->lock);
  *out = r;
  return 0;
}

static int efa_release_mem(void *vctx, void *rmem) {
  efa_ctx *ctx = vctx;
  if (!ctx || !rmem)
    return MC_EINVAL;
  int found = 0;
  pthread_mutex_lock(&ctx->lock);
  for (efa_rmem **p = &ctx->rmems; *p; p = &(*p)->next)
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

static int efa_submit_op(void *vctx, void *ep, const mc_slice *slices, uint32_t n,
                         uint32_t *accepted) {
  if (!vctx || !ep || !accepted || (n && !slices))
    return MC_EINVAL;
  return efa_submit(vctx, ep, slices, n, accepted);
}

static int efa_cancel(void *vctx, uint64_t token) {
  if (!vctx)
    return MC_EINVAL;
  efa_cancel_token(vctx, token);
  return 0;
}

static int efa_send_notify(void *vctx, void *ep, const void *msg, size_t len) {
  if (!vctx || !ep || (len && !msg) || len > MC_NOTIFY_MAX)
    return MC_EINVAL;
  return efa_notify_send(vctx, ep, msg, len);
}

static const char *efa_vendor_strerror(void *ctx, int32_t err) {
  (void)ctx;
  return fi_strerror(err < 0 ? -err : err);
}

static const mc_transport_ops efa_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "efa",
    .version = EFA_VERSION,
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_NOTIFY | MC_CAP_INTRA_NODE |
            MC_CAP_INTER_NODE | MC_CAP_OWN_THREADS | MC_CAP_MT_SUBMIT | MC_CAP_CANCEL,
    /* CUDA memory only where the provider granted FI_HMEM: register_mem
     * answers MC_ENOTSUP otherwise. */
    .local_mem_kinds = MC_MEM_CPU | MC_MEM_CUDA,
    .remote_mem_kinds = MC_MEM_CPU | MC_MEM_CUDA,
    .params = efa_params,
    .param_info_size = sizeof(mc_param_info),
    .init = efa_init,
    .fini = efa_fini,
    .query_rails = efa_query_rails,
    .local_desc = efa_local_desc,
    .register_mem = efa_register_mem,
    .deregister_mem = efa_deregister_mem,
    .connect = efa_connect,
    .disconnect = efa_disconnect,
    .import_mem = efa_import_mem,
    .release_mem = efa_release_mem,
    .submit = efa_submit_op,
    .progress = NULL,
    .cancel = efa_cancel,
    .send_notify = efa_send_notify,
    .vendor_strerror = efa_vendor_strerror,
    /* RMA on RDM endpoints: large slices amortise per-op costs (tcp's
     * rendezvous, EFA's segmentation inside the provider). */
    .slice_size = 1u << 20,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) { return &efa_ops; }
