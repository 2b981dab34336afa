/* rdma_dev.c - devices and ports as rails: discovery with an allow/deny
 * list, active ports only, link layer, GID choice (RoCE v2 IPv4-mapped
 * preferred), NUMA node and PCI address from sysfs, one context, PD, CQ and
 * completion channel per rail; rail back-off; async events. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rdma_ctx.h"

uint64_t rd_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* 1 when `name` (or "name:port") is in the comma-separated list. */
static int in_list(const char *list, const char *name, unsigned port) {
  char np[96];
  snprintf(np, sizeof np, "%s:%u", name, port);
  size_t nl = strlen(name), npl = strlen(np);
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ')
      p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ')
      e++;
    size_t l = (size_t)(e - p);
    if ((l == nl && !memcmp(p, name, l)) || (l == npl && !memcmp(p, np, l)))
      return 1;
    p = e;
  }
  return 0;
}

static int read_int_file(const char *path, int dflt) {
  FILE *f = fopen(path, "r");
  int v = dflt;
  if (f) {
    if (fscanf(f, "%d", &v) != 1)
      v = dflt;
    fclose(f);
  }
  return v;
}

/* NUMA node and PCI address of a device, from its sysfs directory. */
static void sysfs_locate(const char *ibdev_path, int *numa, uint32_t *pci) {
  char p[PATH_MAX], real[PATH_MAX];
  snprintf(p, sizeof p, "%s/device/numa_node", ibdev_path);
  *numa = read_int_file(p, -1);
  *pci = 0;
  snprintf(p, sizeof p, "%s/device", ibdev_path);
  if (!realpath(p, real))
    return;
  const char *b = strrchr(real, '/');
  unsigned dom, bus, dev, fn;
  if (b && sscanf(b + 1, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4)
    *pci = (dom << 16) | ((bus & 0xff) << 8) | ((dev & 0x1f) << 3) | (fn & 7);
}

static int gid_is_v4mapped(const union ibv_gid *g) {
  static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return !memcmp(g->raw, pre, sizeof pre);
}

static int gid_is_zero(const union ibv_gid *g) {
  for (int i = 0; i < 16; i++)
    if (g->raw[i])
      return 0;
  return 1;
}

/* 2: RoCE v2, 1: RoCE v1 or IB, 0: unknown. */
static int gid_type(rd_ctx *ctx, rd_rail *r, const char *ibdev_path, int idx) {
  if (ctx->v.query_gid_ex) {
    struct ibv_gid_entry e;
    if (ctx->v.query_gid_ex(r->vctx, r->port, (uint32_t)idx, &e, 0, sizeof e) == 0)
      return e.gid_type == IBV_GID_TYPE_ROCE_V2 ? 2 : 1;
  }
  char p[PATH_MAX], t[32] = "";
  snprintf(p, sizeof p, "%s/ports/%u/gid_attrs/types/%d", ibdev_path, r->port, idx);
  FILE *f = fopen(p, "r");
  if (f) {
    if (!fgets(t, sizeof t, f))
      t[0] = '\0';
    fclose(f);
  }
  return strstr(t, "v2") ? 2 : t[0] ? 1 : 0;
}

/* GID choice: gid_index when set; IB: index 0; RoCE: a v2 IPv4-mapped GID,
 * else any v2, else the first non-zero one.  Into *gid, *gidx: used at
 * open and again after a GID change or a port coming back. */
static int pick_gid(rd_ctx *ctx, rd_rail *r, const char *ibdev_path, int tbl_len,
                    union ibv_gid *gid, int *gidx) {
  if (ctx->cfg.gid_index >= 0) {
    if (ctx->cfg.gid_index >= tbl_len ||
        ctx->v.query_gid(r->vctx, r->port, ctx->cfg.gid_index, gid)) {
      RD_LOG(ctx, MC_LOG_ERROR, "%s: gid_index %d does not exist (table of %d)", r->name,
             ctx->cfg.gid_index, tbl_len);
      return MC_EINVAL;
    }
    *gidx = ctx->cfg.gid_index;
    return 0;
  }
  int best = -1, score = -1;
  for (int i = 0; i < tbl_len && i < 256; i++) {
    union ibv_gid g;
    if (ctx->v.query_gid(r->vctx, r->port, i, &g) || gid_is_zero(&g))
      continue;
    int s = r->link_ib ? 1 : (gid_type(ctx, r, ibdev_path, i) == 2 ? 2 : 0) + gid_is_v4mapped(&g);
    if (s > score) {
      score = s;
      best = i;
      *gid = g;
    }
    if (r->link_ib)
      break;
  }
  if (best < 0) {
    if (r->link_ib) {
      memset(gid, 0, sizeof *gid);
      *gidx = 0;
      return 0;
    }
    RD_LOG(ctx, MC_LOG_WARN, "%s: no usable GID", r->name);
    return MC_ENODEV;
  }
  *gidx = best;
  return 0;
}

void rd_rail_addr(rd_rail *r, union ibv_gid *gid, int *gid_index, uint16_t *lid) {
  pthread_mutex_lock(&r->gid_lock);
  *gid = r->gid;
  *gid_index = r->gid_index;
  *lid = r->lid;
  pthread_mutex_unlock(&r->gid_lock);
}

static uint64_t port_mbps(uint8_t width, uint8_t speed) {
  unsigned lanes = width == 1 ? 1 : width == 2 ? 4 : width == 4 ? 8 : width == 8 ? 12 : width == 16 ? 2 : 0;
  unsigned mbps = speed == 1 ? 2500 : speed == 2 ? 5000 : speed == 4 || speed == 8 ? 10000
                : speed == 16 ? 14000 : speed == 32 ? 25000 : speed == 64 ? 50000
                : speed == 128 ? 100000 : 0;
  return (uint64_t)lanes * mbps;
}

static void rail_free(rd_ctx *ctx, rd_rail *r) {
  if (r->cq)
    ctx->v.destroy_cq(r->cq);
  if (r->ch)
    ctx->v.destroy_comp_channel(r->ch);
  if (r->pd)
    ctx->v.dealloc_pd(r->pd);
  if (r->vctx)
    ctx->v.close_device(r->vctx);
  pthread_mutex_destroy(&r->qtab_lock);
  pthread_mutex_destroy(&r->ptab_lock);
  pthread_mutex_destroy(&r->gid_lock);
  free(r);
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Opens port `port` of device d as a rail: 0, 1 when skipped (not active,
 * no GID), or a negative MC_E*. */
static int rail_open(rd_ctx *ctx, struct ibv_device *d, uint8_t port, rd_rail **out) {
  const char *name = ctx->v.get_device_name(d);
  rd_rail *r = calloc(1, sizeof *r);
  if (!r)
    return MC_ENOMEM;
  pthread_mutex_init(&r->qtab_lock, NULL);
  pthread_mutex_init(&r->ptab_lock, NULL);
  pthread_mutex_init(&r->gid_lock, NULL);
  r->ctx = ctx;
  snprintf(r->ibdev_path, sizeof r->ibdev_path, "%s", d->ibdev_path);
  r->port = port;
  snprintf(r->dev_name, sizeof r->dev_name, "%s", name);
  if (port == 1)
    snprintf(r->name, sizeof r->name, "%s", name);
  else
    snprintf(r->name, sizeof r->name, "%s:%u", name, port);
  int rc = 1;
  struct ibv_device_attr da;
  struct ibv_port_attr pa;
  r->vctx = ctx->v.open_device(d);
  if (!r->vctx || ctx->v.query_device(r->vctx, &da)) {
    RD_LOG(ctx, MC_LOG_WARN, "%s: cannot open or query the device", name);
    goto skip;
  }
  memset(&pa, 0, sizeof pa);
  if (ctx->v.query_port(r->vctx, port, (struct _compat_ibv_port_attr *)(void *)&pa) ||
      pa.state != IBV_PORT_ACTIVE) {
    RD_LOG(ctx, MC_LOG_INFO, "%s: port not active, skipped", r->name);
    goto skip;
  }
  r->link_ib = pa.link_layer != IBV_LINK_LAYER_ETHERNET;
  r->lid = pa.lid;
  uint32_t amtu = (uint32_t)pa.active_mtu;
  r->mtu = (uint8_t)(amtu < ctx->cfg.mtu ? amtu : ctx->cfg.mtu);
  r->max_mr_size = da.max_mr_size ? da.max_mr_size : UINT64_MAX;
  r->rd_atom = (uint8_t)(da.max_qp_rd_atom > 0 && da.max_qp_rd_atom < 16 ? da.max_qp_rd_atom : 16);
  r->init_rd_atom =
      (uint8_t)(da.max_qp_init_rd_atom > 0 && da.max_qp_init_rd_atom < 16 ? da.max_qp_init_rd_atom
                                                                          : 16);
  r->bw_mbps = port_mbps(pa.active_width, pa.active_speed);
  sysfs_locate(d->ibdev_path, &r->numa, &r->pci);
  rc = pick_gid(ctx, r, d->ibdev_path, pa.gid_tbl_len, &r->gid, &r->gid_index);
  if (rc == MC_ENODEV) {
    rc = 1;
    goto skip;
  }
  if (rc)
    goto fail;
  r->cq_size = ctx->cfg.cq_size;
  if ((uint32_t)da.max_cqe < r->cq_size + RD_CQ_SPARE && da.max_cqe > RD_CQ_SPARE)
    r->cq_size = (uint32_t)da.max_cqe - RD_CQ_SPARE;
  r->pd = ctx->v.alloc_pd(r->vctx);
  r->ch = r->pd ? ctx->v.create_comp_channel(r->vctx) : NULL;
  r->cq = r->ch ? ctx->v.create_cq(r->vctx, (int)(r->cq_size + RD_CQ_SPARE), r, r->ch, 0)
                : NULL;
  if (!r->cq) {
    RD_LOG(ctx, MC_LOG_ERROR, "%s: cannot allocate PD, channel or CQ: %s", r->name,
           strerror(errno));
    rc = MC_ENOMEM;
    goto fail;
  }
  set_nonblock(r->ch->fd);
  set_nonblock(r->vctx->async_fd);
  atomic_store(&r->up, 1);
  atomic_store(&r->backoff_ms, (uint32_t)ctx->cfg.backoff_ms);
  *out = r;
  return 0;
skip:
  rail_free(ctx, r);
  return 1;
fail:
  rail_free(ctx, r);
  return rc;
}

int rd_rails_open(rd_ctx *ctx) {
  int n = 0;
  struct ibv_device **l = ctx->v.get_device_list(&n);
  if (!l || n == 0) {
    if (l)
      ctx->v.free_device_list(l);
    ctx->host->log(ctx->host->host, MC_LOG_WARN, "no RDMA device found (library %s)",
                   ctx->cfg.library);
    return MC_ENODEV;
  }
  int rc = 0;
  for (int i = 0; i < n && ctx->nrails < RD_MAX_RAILS; i++) {
    const char *name = ctx->v.get_device_name(l[i]);
    struct ibv_context *probe = ctx->v.open_device(l[i]);
    struct ibv_device_attr da;
    int nports = 0;
    if (probe && !ctx->v.query_device(probe, &da))
      nports = da.phys_port_cnt;
    if (probe)
      ctx->v.close_device(probe);
    for (int p = 1; p <= nports && ctx->nrails < RD_MAX_RAILS; p++) {
      if ((ctx->cfg.devices[0] && !in_list(ctx->cfg.devices, name, (unsigned)p)) ||
          in_list(ctx->cfg.exclude, name, (unsigned)p))
        continue;
      rd_rail *r = NULL;
      rc = rail_open(ctx, l[i], (uint8_t)p, &r);
      if (rc < 0)
        break;
      if (rc == 0) {
        r->idx = ctx->nrails;
        ctx->rails[ctx->nrails++] = r;
        RD_LOG(ctx, MC_LOG_INFO, "rail %u: %s numa %d pci %05x gid index %d %s mtu %u %" PRIu64
               " Mb/s", r->idx, r->name, r->numa, r->pci, r->gid_index,
               r->link_ib ? "IB" : "RoCE", 128u << r->mtu, r->bw_mbps);
      }
      rc = 0;
    }
    if (rc < 0)
      break;
  }
  ctx->v.free_device_list(l);
  if (rc < 0)
    return rc;
  if (ctx->nrails == 0) {
    ctx->host->log(ctx->host->host, MC_LOG_WARN,
                   "no active RDMA port (library %s, devices '%s', exclude '%s')",
                   ctx->cfg.library, ctx->cfg.devices, ctx->cfg.exclude);
    return MC_ENODEV;
  }
  return 0;
}

/* Marks the active QPs of the context in error: those whose verbs QP is
 * `vqp`, or with vqp NULL every READY one on rail r (flushed WRs fail
 * MC_EIO, so the core retries them; the fixer rebuilds the QPs). */
static void qps_fail(rd_ctx *ctx, struct ibv_qp *vqp, rd_rail *r) {
  pthread_mutex_lock(&ctx->lock);
  for (rd_ep *ep = ctx->eps; ep; ep = ep->next)
    for (uint32_t i = 0; i < ep->nqps; i++) {
      rd_qp *q = &ep->qps[i];
      if (vqp ? q->qp != vqp : q->rail != r)
        continue;
      pthread_mutex_lock(&q->lock);
      if (q->qp && (vqp ? q->qp == vqp : 1) && atomic_load(&q->state) == RDQ_READY) {
        if (vqp) {
          atomic_store(&q->state, RDQ_ERROR);
          q->err_ms = rd_now_ms();
          atomic_store(&ep->need_fix, 1);
        } else {
          rd_qp_to_error(q, MC_EIO);
        }
      }
      pthread_mutex_unlock(&q->lock);
    }
  pthread_mutex_unlock(&ctx->lock);
  rd_fixer_kick(ctx);
}

/* Re-reads the port's address (GID by the same rules, LID).  When it
 * changed: new handshakes use the new one, and every QP of the port is
 * rebuilt: the active ones go to ERR (the fixer reconnects them with the
 * new GID), the passive ones too (their peers' WRs fail and the peers
 * reconnect, getting the new GID in CONNECT_OK).  1 when it changed. */
static int rail_requery(rd_rail *r, const char *why) {
  rd_ctx *ctx = r->ctx;
  struct ibv_port_attr pa;
  memset(&pa, 0, sizeof pa);
  if (ctx->v.query_port(r->vctx, r->port, (struct _compat_ibv_port_attr *)(void *)&pa))
    return 0;
  union ibv_gid g;
  int gidx = -1;
  memset(&g, 0, sizeof g);
  if (pick_gid(ctx, r, r->ibdev_path, pa.gid_tbl_len, &g, &gidx)) {
    RD_LOG(ctx, MC_LOG_WARN, "%s: %s: no usable GID now; rail paused", r->name, why);
    atomic_store(&r->up, 0);
    return 0;
  }
  pthread_mutex_lock(&r->gid_lock);
  int changed = memcmp(&g, &r->gid, sizeof g) || gidx != r->gid_index ||
                (r->link_ib && pa.lid != r->lid);
  r->gid = g;
  r->gid_index = gidx;
  if (r->link_ib)
    r->lid = pa.lid;
  pthread_mutex_unlock(&r->gid_lock);
  if (!changed)
    return 0;
  atomic_fetch_add(&r->gid_gen, 1);
  RD_LOG(ctx, MC_LOG_WARN, "%s: %s: address changed (GID index %d); rebuilding its QPs", r->name,
         why, gidx);
  pthread_mutex_lock(&ctx->plock);
  for (rd_passive *p = ctx->passive; p; p = p->next)
    if (p->rail == r) {
      struct ibv_qp_attr m;
      memset(&m, 0, sizeof m);
      m.qp_state = IBV_QPS_ERR;
      ctx->v.modify_qp(p->qp, &m, IBV_QP_STATE);
    }
  pthread_mutex_unlock(&ctx->plock);
  qps_fail(ctx, NULL, r);
  return 1;
}

/* Async events: port down/up, GID change, device fatal, QP fatal; handled
 * without restarting anything. */
static void *async_main(void *arg) {
  rd_rail *r = arg;
  rd_ctx *ctx = r->ctx;
  while (!atomic_load(&ctx->stop)) {
    struct pollfd pfd = {r->vctx->async_fd, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    struct ibv_async_event ev;
    if (ctx->v.get_async_event(r->vctx, &ev))
      continue;
    switch (ev.event_type) {
    case IBV_EVENT_PORT_ERR:
      atomic_store(&r->up, 0);
      RD_LOG(ctx, MC_LOG_WARN, "%s: port down; rail paused", r->name);
      break;
    case IBV_EVENT_PORT_ACTIVE:
      /* The GID may have changed while the link was down. */
      atomic_store(&r->up, 1);
      rail_requery(r, "port active again");
      if (atomic_load(&r->up))
        RD_LOG(ctx, MC_LOG_WARN, "%s: port active again; rail resumed", r->name);
      rd_fixer_kick(ctx);
      break;
    case IBV_EVENT_GID_CHANGE:
      if (!rail_requery(r, "GID change event"))
        RD_LOG(ctx, MC_LOG_INFO, "%s: GID change event; the GID in use (index %d) is the same",
               r->name, r->gid_index);
      break;
    case IBV_EVENT_DEVICE_FATAL:
      atomic_store(&r->up, 0);
      RD_LOG(ctx, MC_LOG_ERROR, "%s: device fatal error; rail out of service", r->name);
      break;
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
      qps_fail(ctx, ev.element.qp, NULL);
      break;
    default:
      break;
    }
    ctx->v.ack_async_event(&ev);
  }
  return NULL;
}

int rd_rails_start(rd_ctx *ctx) {
  for (uint32_t i = 0; i < ctx->nrails; i++) {
    rd_rail *r = ctx->rails[i];
    /* Named (rd-cq:N, rd-async:N): top -H and the bench tell them apart. */
    char nm[16];
    if (pthread_create(&r->async_thread, NULL, async_main, r))
      return MC_ENOMEM;
    r->threads = 1;
    snprintf(nm, sizeof nm, "rd-async:%u", i % 100u); /* rails < 100: fits 15 chars */
    pthread_setname_np(r->async_thread, nm);
  }
  uint32_t n = ctx->cfg.cq_threads && ctx->cfg.cq_threads < ctx->nrails ? ctx->cfg.cq_threads
                                                                         : ctx->nrails;
  for (uint32_t k = 0; k < n; k++) {
    rd_cqpoll *p = &ctx->cqp[k];
    *p = (rd_cqpoll){ctx, k, n, 0, 0};
    if (pthread_create(&p->th, NULL, rd_cq_main, p))
      return MC_ENOMEM;
    p->started = 1;
    ctx->ncqp = k + 1;
    char nm[16];
    snprintf(nm, sizeof nm, "rd-cq:%u", k % 100u);
    pthread_setname_np(p->th, nm);
  }
  return 0;
}

void rd_rails_close(rd_ctx *ctx) {
  atomic_store(&ctx->stop, 1);
  for (uint32_t i = 0; i < ctx->nrails; i++) {
    rd_rail *r = ctx->rails[i];
    if (r->threads >= 1)
      pthread_join(r->async_thread, NULL);
    r->threads = 0;
  }
  for (uint32_t k = 0; k < ctx->ncqp; k++)
    if (ctx->cqp[k].started) {
      pthread_join(ctx->cqp[k].th, NULL);
      ctx->cqp[k].started = 0;
    }
  ctx->ncqp = 0;
  for (uint32_t i = 0; i < ctx->nrails; i++) {
    rd_rail *r = ctx->rails[i];
    RD_LOG(ctx, MC_LOG_DEBUG, "%s: %" PRIu64 " QPs made, %" PRIu64 " bytes, %" PRIu64 " errors",
           r->name, atomic_load(&r->qps_made), atomic_load(&r->bytes), atomic_load(&r->errors));
    rail_free(ctx, r);
  }
  ctx->nrails = 0;
}

int rd_rail_usable(rd_rail *r, uint64_t now) {
  return atomic_load(&r->up) && now >= atomic_load(&r->backoff_until);
}

/* A rail with repeated errors pauses, doubling up to backoff_max_ms. */
void rd_rail_fail(rd_rail *r) {
  atomic_fetch_add(&r->errors, 1);
  uint32_t b = atomic_load(&r->backoff_ms);
  atomic_store(&r->backoff_until, rd_now_ms() + b);
  uint32_t nb = b * 2 > (uint32_t)r->ctx->cfg.backoff_max_ms ? (uint32_t)r->ctx->cfg.backoff_max_ms
                                                              : b * 2;
  atomic_store(&r->backoff_ms, nb);
}

void rd_rail_ok(rd_rail *r) {
  if (atomic_load(&r->backoff_ms) != (uint32_t)r->ctx->cfg.backoff_ms)
    atomic_store(&r->backoff_ms, (uint32_t)r->ctx->cfg.backoff_ms);
}
