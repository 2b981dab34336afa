/* rdma_ep.c - endpoints and their RC queue pairs.
 *
 * An endpoint to a peer has room for qps_per_peer QPs per (local rail,
 * peer rail) pair; a local rail's slices go to peer rail (i mod peer
 * rails).  connect() creates no QP: it only checks that the peer answers
 * (an empty CONNECT).  A pair's QPs are created on the first slice that
 * uses the pair (submit asks the fixer and pushes back meanwhile), so a
 * transfer over one NIC costs QPs on that NIC only.  QP numbers, PSNs,
 * LIDs, GIDs and MTUs travel in one CONNECT request over the core's
 * authenticated control channel (mc_host_api.ctrl_call); the peer's
 * ctrl_handle creates the matching QPs ("passive" ones) and answers with
 * theirs.  The path MTU is the smaller of both ports'.
 *
 * The fixer thread rebuilds what breaks: a QP in error is reset (no more
 * DMA), its remaining WRs failed, then recreated and exchanged again; a
 * QP evicted from the endpoint cache is rebuilt the same way on its next
 * use.  A peer that does not answer marks the endpoint dead, so submit
 * fails fast with MC_EPEER instead of queueing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "rdma_ctx.h"

#define RD_SEQ_SHIFT 40 /* as rdma_io.c: wr_id = tag | slot << 40 | sequence */

/* ---- verbs QP helpers ----------------------------------------------------- */

static struct ibv_qp *qp_new(rd_rail *r, uint32_t send_wr, uint32_t recv_wr, void *qctx) {
  struct ibv_qp_init_attr a;
  memset(&a, 0, sizeof a);
  a.qp_context = qctx;
  a.send_cq = r->cq;
  a.recv_cq = r->cq;
  a.cap.max_send_wr = send_wr;
  a.cap.max_recv_wr = recv_wr;
  a.cap.max_send_sge = 1;
  a.cap.max_recv_sge = 1;
  a.qp_type = IBV_QPT_RC;
  a.sq_sig_all = 0;
  struct ibv_qp *qp = r->ctx->v.create_qp(r->pd, &a);
  if (!qp)
    return NULL;
  struct ibv_qp_attr m;
  memset(&m, 0, sizeof m);
  m.qp_state = IBV_QPS_INIT;
  m.pkey_index = 0;
  m.port_num = r->port;
  m.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  if (r->ctx->v.modify_qp(qp, &m, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
                                        IBV_QP_ACCESS_FLAGS)) {
    r->ctx->v.destroy_qp(qp);
    return NULL;
  }
  return qp;
}

/* INIT -> RTR -> RTS towards the remote QP described by e. */
static int qp_connect(rd_rail *r, struct ibv_qp *qp, const rdw_qp *e, uint8_t mtu,
                      int remote_ib, uint32_t my_psn) {
  rd_ctx *ctx = r->ctx;
  struct ibv_qp_attr m;
  memset(&m, 0, sizeof m);
  m.qp_state = IBV_QPS_RTR;
  m.path_mtu = (enum ibv_mtu)mtu;
  m.dest_qp_num = e->qpn;
  m.rq_psn = e->psn;
  m.max_dest_rd_atomic = r->rd_atom; /* READs this QP serves at once */
  m.min_rnr_timer = 12;
  m.ah_attr.port_num = r->port;
  m.ah_attr.sl = (uint8_t)ctx->cfg.service_level;
  if (!r->link_ib || !remote_ib) {
    union ibv_gid g;
    int gidx;
    uint16_t lid;
    rd_rail_addr(r, &g, &gidx, &lid);
    m.ah_attr.is_global = 1;
    memcpy(m.ah_attr.grh.dgid.raw, e->gid, 16);
    m.ah_attr.grh.sgid_index = (uint8_t)gidx;
    m.ah_attr.grh.hop_limit = 64;
    m.ah_attr.grh.traffic_class = (uint8_t)ctx->cfg.traffic_class;
  } else {
    m.ah_attr.dlid = e->lid;
  }
  int rc = ctx->v.modify_qp(qp, &m, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
                                        IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  if (rc)
    return rc;
  memset(&m, 0, sizeof m);
  m.qp_state = IBV_QPS_RTS;
  m.sq_psn = my_psn;
  m.timeout = (uint8_t)ctx->cfg.ack_timeout;
  m.retry_cnt = (uint8_t)ctx->cfg.retry_cnt;
  m.rnr_retry = 7;
  m.max_rd_atomic = r->init_rd_atom; /* READs it issues at once */
  return ctx->v.modify_qp(qp, &m, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
                                      IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                                      IBV_QP_MAX_QP_RD_ATOMIC);
}

static uint32_t rand_psn(void) {
  uint32_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
    v = (uint32_t)time(NULL);
  return v & 0xffffffu;
}

static void fill_addr(rd_rail *r, rdw_qp *e) {
  union ibv_gid g;
  int gidx;
  rd_rail_addr(r, &g, &gidx, &e->lid);
  memcpy(e->gid, g.raw, 16);
  e->mtu = r->mtu;
}

/* ---- active QPs --------------------------------------------------------------- */

static int qtab_add(rd_qp *q) {
  rd_rail *r = q->rail;
  int rc = MC_ENOMEM;
  pthread_mutex_lock(&r->qtab_lock);
  for (uint32_t i = 1; i < RD_QTAB; i++)
    if (!r->qtab[i]) {
      r->qtab[i] = q;
      q->slot = (uint16_t)i;
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&r->qtab_lock);
  return rc;
}

static void qtab_del(rd_qp *q) {
  if (!q->slot)
    return;
  pthread_mutex_lock(&q->rail->qtab_lock);
  q->rail->qtab[q->slot] = NULL;
  pthread_mutex_unlock(&q->rail->qtab_lock);
  q->slot = 0;
}

/* Takes q down: RESET, then destroy, after which the NIC no longer touches
 * its WRs' memory; only then do the WRs still in the ring complete with
 * `status` (the application may reuse a READ's buffer at once).  q->lock
 * held. */
static void qp_teardown_locked(rd_qp *q, int status) {
  rd_ctx *ctx = q->ep->ctx;
  if (q->qp) {
    struct ibv_qp_attr m;
    memset(&m, 0, sizeof m);
    m.qp_state = IBV_QPS_RESET;
    ctx->v.modify_qp(q->qp, &m, IBV_QP_STATE);
    ctx->v.destroy_qp(q->qp);
  }
  q->qp = NULL;
  rd_qp_fail_ring(q, status);
  atomic_store(&q->state, RDQ_DOWN);
}

static void qp_teardown(rd_qp *q, int status) {
  pthread_mutex_lock(&q->lock);
  qp_teardown_locked(q, status);
  pthread_mutex_unlock(&q->lock);
  qtab_del(q);
}

int rd_qp_to_error(rd_qp *q, int flush_status) {
  struct ibv_qp_attr m;
  memset(&m, 0, sizeof m);
  m.qp_state = IBV_QPS_ERR;
  q->flush_status = flush_status;
  atomic_store(&q->state, RDQ_ERROR);
  q->err_ms = rd_now_ms();
  atomic_store(&q->ep->need_fix, 1);
  return q->qp ? q->ep->ctx->v.modify_qp(q->qp, &m, IBV_QP_STATE) : 0;
}

static int errno_to_mc(int e) { return e == ENOMEM ? MC_ENOMEM : MC_EIO; }

/* Brings the DOWN QPs in `which` (indexes into ep->qps) up with one
 * CONNECT exchange.  Blocking (ctrl_call): connect() or the fixer only. */
static int ep_establish(rd_ep *ep, const uint32_t *which, uint32_t n) {
  rd_ctx *ctx = ep->ctx;
  rdw_ctrl *req = calloc(2, sizeof *req);
  uint8_t *buf = malloc(2 * MC_CTRL_MAX);
  uint32_t *psn = calloc(n ? n : 1, sizeof *psn);
  if (!req || !buf || !psn) {
    free(req);
    free(buf);
    free(psn);
    return MC_ENOMEM;
  }
  rdw_ctrl *resp = req + 1;
  int rc = 0;
  req->type = RDW_CONNECT;
  req->init_nonce = ctx->nonce;
  req->target_nonce = ep->rdesc.nonce;
  req->ep_id = ep->id;
  for (uint32_t i = 0; i < n && !rc; i++) {
    rd_qp *q = &ep->qps[which[i]];
    if (!q->ring && !(q->ring = calloc(q->cap, sizeof *q->ring))) {
      rc = MC_ENOMEM;
      break;
    }
    /* One send slot beyond the ring: a notification's SEND. */
    q->qp = qp_new(q->rail, ctx->cfg.max_send_wr + 1, 1, q);
    if (!q->qp) {
      RD_LOG(ctx, MC_LOG_WARN, "%s: cannot create a QP: %s", q->rail->name, strerror(errno));
      rc = errno_to_mc(errno);
      break;
    }
    atomic_fetch_add(&q->rail->qps_made, 1);
    rc = qtab_add(q);
    rdw_qp *e = &req->qps[req->nqps++];
    e->qidx = q->qidx;
    e->lrail = (uint8_t)q->rail->idx;
    e->rrail = (uint8_t)q->rrail;
    e->qpn = q->qp->qp_num;
    /* The first QP of each pair carries notifications. */
    e->flags = q->qidx % ctx->cfg.qps_per_peer == 0 ? RDW_QP_NOTIFY : 0;
    psn[i] = e->psn = rand_psn();
    fill_addr(q->rail, e);
  }
  size_t len = MC_CTRL_MAX, rlen = MC_CTRL_MAX;
  if (!rc)
    rc = rdw_ctrl_encode(req, buf, &len);
  if (!rc)
    rc = ctx->host->ctrl_call(ctx->host->host, ep->peer, buf, len, buf + MC_CTRL_MAX, &rlen,
                              (uint32_t)ctx->cfg.ctrl_timeout_ms);
  if (rc) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': QP exchange failed: %s", ep->peer, mc_strerror(rc));
  } else if (rdw_ctrl_decode(buf + MC_CTRL_MAX, rlen, resp) || resp->type != RDW_CONNECT_OK ||
             resp->nqps != n) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': malformed QP exchange reply", ep->peer);
    rc = MC_EPROTO;
  }
  for (uint32_t i = 0; i < n && !rc; i++) {
    rd_qp *q = &ep->qps[which[i]];
    const rdw_qp *e = &resp->qps[i];
    uint8_t mtu = e->mtu < q->rail->mtu ? e->mtu : q->rail->mtu;
    if (e->qidx != q->qidx) {
      rc = MC_EPROTO;
      break;
    }
    int r = qp_connect(q->rail, q->qp, e, mtu, ep->rdesc.rails[q->rrail].link_ib, psn[i]);
    if (r) {
      RD_LOG(ctx, MC_LOG_WARN, "%s: cannot connect QP to peer '%s': %s", q->rail->name,
             ep->peer, strerror(r));
      rc = MC_EIO;
    }
  }
  for (uint32_t i = 0; i < n; i++) {
    rd_qp *q = &ep->qps[which[i]];
    pthread_mutex_lock(&q->lock);
    if (rc) {
      if (q->qp)
        ctx->v.destroy_qp(q->qp);
      q->qp = NULL;
      atomic_store(&q->state, RDQ_DOWN);
    } else {
      q->flush_status = MC_EIO;
      q->since_signal = 0;
      atomic_store(&q->state, RDQ_READY);
    }
    atomic_store(&q->pending, 0); /* tried: submit spills from now on if down */
    pthread_mutex_unlock(&q->lock);
    if (rc)
      qtab_del(q);
  }
  free(req);
  free(buf);
  free(psn);
  return rc;
}

static int peer_gone(int rc) {
  return rc == MC_EPEER || rc == MC_ENOENT || rc == MC_ETIMEDOUT || rc == MC_EACCES ||
         rc == MC_ENOTSUP;
}

/* ---- endpoint cache --------------------------------------------------------- */

static int ep_live(rd_ep *ep) {
  for (uint32_t i = 0; i < ep->nqps; i++)
    if (atomic_load(&ep->qps[i].state) != RDQ_DOWN)
      return 1;
  return 0;
}

static int ep_idle(rd_ep *ep) {
  for (uint32_t i = 0; i < ep->nqps; i++)
    if (ep->qps[i].n)
      return 0;
  return 1;
}

static void send_disconnect(rd_ep *ep) {
  rd_ctx *ctx = ep->ctx;
  rdw_ctrl m;
  memset(&m, 0, sizeof m);
  m.type = RDW_DISCONNECT;
  m.init_nonce = ctx->nonce;
  m.target_nonce = ep->rdesc.nonce;
  m.ep_id = ep->id;
  uint8_t buf[RDW_CTRL_HDR], resp[64];
  size_t len = sizeof buf, rlen = sizeof resp;
  if (!rdw_ctrl_encode(&m, buf, &len))
    ctx->host->ctrl_call(ctx->host->host, ep->peer, buf, len, resp, &rlen,
                         (uint32_t)ctx->cfg.ctrl_timeout_ms);
}

/* Keeps fewer than max_endpoints endpoints with QPs (leaving room for one
 * more): the least recently used idle one other than `keep` loses its QPs
 * (its handle stays valid; the fixer rebuilds it on its next use).
 * fix_lock held (the fixer may be rebuilding the victim), ctx->lock not. */
static void ep_cache_evict_locked(rd_ctx *ctx, rd_ep *keep) {
  for (;;) {
    uint32_t live = 0;
    rd_ep *victim = NULL;
    pthread_mutex_lock(&ctx->lock);
    for (rd_ep *e = ctx->eps; e; e = e->next)
      if (e != keep && ep_live(e)) {
        live++;
        if (ep_idle(e) && (!victim || atomic_load(&e->last_use) < atomic_load(&victim->last_use)))
          victim = e;
      }
    pthread_mutex_unlock(&ctx->lock);
    if (live < ctx->cfg.max_endpoints || !victim)
      return;
    RD_LOG(ctx, MC_LOG_INFO, "endpoint cache full (%u): evicting the QPs to '%s'", live,
           victim->peer);
    for (uint32_t i = 0; i < victim->nqps; i++) {
      atomic_store(&victim->qps[i].want, 0); /* rebuilt lazily, pair by pair */
      qp_teardown(&victim->qps[i], MC_ECANCELED);
    }
    send_disconnect(victim);
  }
}

/* An empty CONNECT: the peer answers (with the nonce of the engine we hold
 * a descriptor of) or it is unusable.  No QP is made. */
static int ep_hello(rd_ep *ep) {
  rd_ctx *ctx = ep->ctx;
  rdw_ctrl *m = calloc(2, sizeof *m);
  uint8_t buf[RDW_CTRL_HDR], resp[RDW_CTRL_HDR + 64];
  if (!m)
    return MC_ENOMEM;
  m->type = RDW_CONNECT;
  m->init_nonce = ctx->nonce;
  m->target_nonce = ep->rdesc.nonce;
  m->ep_id = ep->id;
  size_t len = sizeof buf, rlen = sizeof resp;
  int rc = rdw_ctrl_encode(m, buf, &len);
  if (!rc)
    rc = ctx->host->ctrl_call(ctx->host->host, ep->peer, buf, len, resp, &rlen,
                              (uint32_t)ctx->cfg.ctrl_timeout_ms);
  if (rc)
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': endpoint check failed: %s", ep->peer, mc_strerror(rc));
  else if (rdw_ctrl_decode(resp, rlen, m + 1) || m[1].type != RDW_CONNECT_OK || m[1].nqps)
    rc = MC_EPROTO;
  free(m);
  return rc;
}

int rd_ep_connect(rd_ctx *ctx, const char *peer, const void *desc, size_t len, rd_ep **out) {
  rd_ep *ep = calloc(1, sizeof *ep);
  if (!ep)
    return MC_ENOMEM;
  if (rdw_desc_decode(desc, len, &ep->rdesc) || ep->rdesc.nrails == 0) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': malformed endpoint descriptor (%zu bytes)", peer, len);
    free(ep);
    return MC_EPROTO;
  }
  ep->ctx = ctx;
  snprintf(ep->peer, sizeof ep->peer, "%s", peer);
  uint32_t qpp = ctx->cfg.qps_per_peer;
  ep->prn = ep->rdesc.nrails;
  ep->nqps = ctx->nrails * ep->prn * qpp;
  ep->qps = calloc(ep->nqps, sizeof *ep->qps);
  if (!ep->qps) {
    free(ep);
    return MC_ENOMEM;
  }
  for (uint32_t i = 0; i < ep->nqps; i++) {
    rd_qp *q = &ep->qps[i];
    uint32_t pair = i / qpp;
    q->ep = ep;
    q->rail = ctx->rails[pair / ep->prn];
    q->rrail = pair % ep->prn;
    q->qidx = (uint16_t)i;
    q->cap = ctx->cfg.max_send_wr;
    q->flush_status = MC_EIO;
    pthread_mutex_init(&q->lock, NULL);
  }
  pthread_mutex_init(&ep->wq_lock, NULL);
  pthread_mutex_lock(&ctx->lock);
  ep->id = ++ctx->next_ep_id;
  pthread_mutex_unlock(&ctx->lock);
  atomic_store(&ep->last_use, rd_now_ms());
  ep->fix_backoff_ms = (uint32_t)ctx->cfg.backoff_ms;
  int rc = ep_hello(ep);
  /* The peer gone, refusing or answering nonsense: the endpoint is
   * unusable for now, which the core knows as MC_EPEER. */
  if (rc && rc != MC_ENOMEM)
    rc = MC_EPEER;
  if (rc) {
    for (uint32_t i = 0; i < ep->nqps; i++)
      pthread_mutex_destroy(&ep->qps[i].lock);
    pthread_mutex_destroy(&ep->wq_lock);
    free(ep->qps);
    free(ep);
    return rc;
  }
  pthread_mutex_lock(&ctx->lock);
  ep->next = ctx->eps;
  ctx->eps = ep;
  pthread_mutex_unlock(&ctx->lock);
  *out = ep;
  return 0;
}

int rd_pair_request(rd_ep *ep, rd_qp *pq) {
  uint32_t qpp = ep->ctx->cfg.qps_per_peer;
  if (atomic_load(&pq->want)) {
    if (!atomic_load(&pq->pending))
      return 0;
    atomic_store(&ep->need_fix, 1); /* still waiting: make sure the fixer knows */
    rd_fixer_kick(ep->ctx);
    return 1;
  }
  for (uint32_t k = 0; k < qpp; k++) {
    atomic_store(&pq[k].pending, 1);
    atomic_store(&pq[k].want, 1);
  }
  atomic_store(&ep->need_fix, 1);
  rd_fixer_kick(ep->ctx);
  return 1;
}

/* Unlinks and frees ep; its WRs in flight complete MC_ECANCELED first. */
void rd_ep_destroy(rd_ep *ep, int notify_peer) {
  rd_ctx *ctx = ep->ctx;
  pthread_mutex_lock(&ctx->lock);
  for (rd_ep **p = &ctx->eps; *p; p = &(*p)->next)
    if (*p == ep) {
      *p = ep->next;
      break;
    }
  pthread_mutex_unlock(&ctx->lock);
  /* The fixer may be rebuilding this endpoint: wait for it. */
  pthread_mutex_lock(&ctx->fix_lock);
  pthread_mutex_unlock(&ctx->fix_lock);
  int had = ep_live(ep);
  for (uint32_t i = 0; i < ep->wq_n; i++)
    ctx->host->complete(ctx->host->host, ep->wq[i].token, MC_ECANCELED, 0, 0);
  free(ep->wq);
  pthread_mutex_destroy(&ep->wq_lock);
  for (uint32_t i = 0; i < ep->nqps; i++) {
    qp_teardown(&ep->qps[i], MC_ECANCELED);
    free(ep->qps[i].ring);
    pthread_mutex_destroy(&ep->qps[i].lock);
  }
  if (notify_peer && had)
    send_disconnect(ep);
  for (uint32_t r = 0; r < RD_MAX_RAILS; r++)
    if (ep->nmr[r])
      ctx->v.dereg_mr(ep->nmr[r]);
  free(ep->nbuf);
  free(ep->qps);
  free(ep);
}

/* ---- the fixer thread ------------------------------------------------------- */

/* Never blocks: submit calls it holding QP locks the fixer may wait for.
 * When the fixer is busy (holds fix_lock) it sees the flag on its next
 * round, at most 50 ms later. */
void rd_fixer_kick(rd_ctx *ctx) {
  /* The fixer itself (posting waiting slices) passes again within 50 ms:
   * a kick from it would only make it spin. */
  if (ctx->fixer_started && pthread_equal(pthread_self(), ctx->fixer))
    return;
  atomic_store(&ctx->fix_kick, 1);
  if (pthread_mutex_trylock(&ctx->fix_lock) == 0) {
    pthread_cond_signal(&ctx->fix_cond);
    pthread_mutex_unlock(&ctx->fix_lock);
  }
}

/* Posts the slices ep keeps for pairs that were being made: those whose
 * pair is up now go out (rd_submit), those still waiting stay, all of
 * them fail MC_EPEER when the peer is gone or MC_ETIMEDOUT after
 * timeout_ms in the queue.  Fixer thread, no ctx->lock held. */
static void wq_service(rd_ctx *ctx, rd_ep *ep) {
  pthread_mutex_lock(&ep->wq_lock);
  mc_slice *s = ep->wq;
  uint32_t n = ep->wq_n;
  uint64_t since = ep->wq_since;
  if (n) {
    ep->wq = NULL;
    ep->wq_n = ep->wq_cap = 0;
  }
  pthread_mutex_unlock(&ep->wq_lock);
  if (!n)
    return;
  uint64_t now = rd_now_ms();
  int fail = atomic_load(&ep->dead) ? MC_EPEER
             : now - since > (uint64_t)ctx->cfg.timeout_ms ? MC_ETIMEDOUT
                                                            : 0;
  uint32_t acc = 0;
  /* While the endpoint's rebuilds back off, the slices just wait. */
  if (!fail && now >= ep->next_fix_ms && rd_submit(ctx, ep, s, n, &acc) && acc == 0 &&
      atomic_load(&ep->dead))
    fail = MC_EPEER;
  /* Back-pressure: the rest waits for the next pass. */
  for (uint32_t i = acc; i < n && !fail; i++)
    if (rd_wq_add(ep, &s[i], now))
      ctx->host->complete(ctx->host->host, s[i].token, MC_EAGAIN, 0, 0);
  if (fail) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': %u slices waited for QPs that did not come up: %s",
           ep->peer, n - acc, mc_strerror(fail));
    for (uint32_t i = acc; i < n; i++)
      ctx->host->complete(ctx->host->host, s[i].token, fail, 0, 0);
  }
  pthread_mutex_lock(&ep->wq_lock);
  if (ep->wq_n && since < ep->wq_since)
    ep->wq_since = since; /* requeued ones keep their age */
  if (ep->wq_n)
    atomic_store(&ep->need_fix, 1);
  pthread_mutex_unlock(&ep->wq_lock);
  free(s);
}

/* One endpoint's repairs (fix_pass, ctx->lock held, dropped around the
 * exchange). */
static void fix_ep(rd_ctx *ctx, rd_ep *ep, uint64_t now) {
  /* Cleared before the scan: a request made during this pass (a pair's
   * first use) sets it again and is seen on the next one. */
  atomic_store(&ep->need_fix, 0);
  uint32_t *which = calloc(ep->nqps, sizeof *which);
  if (!which) {
    atomic_store(&ep->need_fix, 1);
    return;
  }
  uint32_t n = 0, pending = 0;
  for (uint32_t i = 0; i < ep->nqps; i++) {
    rd_qp *q = &ep->qps[i];
    pthread_mutex_lock(&q->lock);
    int st = atomic_load(&q->state);
    if (st == RDQ_ERROR && (q->n == 0 || now - q->err_ms > 2000)) {
      qp_teardown_locked(q, q->flush_status);
      st = RDQ_DOWN;
      pthread_mutex_unlock(&q->lock);
      qtab_del(q);
    } else {
      pthread_mutex_unlock(&q->lock);
    }
    if (st == RDQ_DOWN && !atomic_load(&q->want))
      continue; /* a pair never used (or evicted): built on its first use */
    if (st == RDQ_ERROR)
      pending++;
    else if (st == RDQ_DOWN && (rd_rail_usable(q->rail, now) ||
                                (atomic_load(&q->pending) && atomic_load(&q->rail->up))))
      which[n++] = i; /* a first use waits for no back-off: submit pushes back */
    else if (st == RDQ_DOWN)
      pending++; /* its rail is paused: try again later */
  }
  int rc = 0;
  if (n) {
    /* ctrl_call blocks: drop ctx->lock; the endpoint cannot go away
     * while fix_lock is held (rd_ep_destroy takes it). */
    pthread_mutex_unlock(&ctx->lock);
    if (!ep_live(ep))
      ep_cache_evict_locked(ctx, ep); /* it comes back: make room */
    rc = ep_establish(ep, which, n);
    pthread_mutex_lock(&ctx->lock);
    if (rc) {
      if (peer_gone(rc))
        atomic_store(&ep->dead, 1);
      ep->next_fix_ms = rd_now_ms() + ep->fix_backoff_ms;
      ep->fix_backoff_ms = ep->fix_backoff_ms * 2 > (uint32_t)ctx->cfg.backoff_max_ms
                               ? (uint32_t)ctx->cfg.backoff_max_ms
                               : ep->fix_backoff_ms * 2;
    } else {
      atomic_store(&ep->dead, 0);
      ep->fix_backoff_ms = (uint32_t)ctx->cfg.backoff_ms;
      RD_LOG(ctx, MC_LOG_INFO, "peer '%s': %u QPs rebuilt", ep->peer, n);
    }
  }
  if (rc || pending)
    atomic_store(&ep->need_fix, 1);
  free(which);
}

/* Resets QPs in error once their flushed WRs came back (or after a grace
 * period), then rebuilds the DOWN QPs on usable rails of endpoints that
 * asked (need_fix).  fix_lock held: rd_ep_destroy waits for a pass. */
static void fix_pass(rd_ctx *ctx) {
  uint64_t now = rd_now_ms();
  pthread_mutex_lock(&ctx->lock);
  for (rd_ep *ep = ctx->eps; ep; ep = ep->next) {
    if (atomic_load(&ep->need_fix) && now >= ep->next_fix_ms)
      fix_ep(ctx, ep, now);
    pthread_mutex_lock(&ep->wq_lock);
    int queued = ep->wq_n != 0;
    pthread_mutex_unlock(&ep->wq_lock);
    if (queued) {
      /* rd_submit and complete() run without ctx->lock (fix_lock keeps
       * ep alive). */
      pthread_mutex_unlock(&ctx->lock);
      wq_service(ctx, ep);
      pthread_mutex_lock(&ctx->lock);
    }
  }
  pthread_mutex_unlock(&ctx->lock);
}

static void *fixer_main(void *arg) {
  rd_ctx *ctx = arg;
  pthread_mutex_lock(&ctx->fix_lock);
  while (!atomic_load(&ctx->stop)) {
    if (!atomic_exchange(&ctx->fix_kick, 0)) {
      struct timespec dl;
      clock_gettime(CLOCK_REALTIME, &dl);
      dl.tv_nsec += 50 * 1000000L;
      if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&ctx->fix_cond, &ctx->fix_lock, &dl);
      atomic_store(&ctx->fix_kick, 0);
    }
    if (!atomic_load(&ctx->stop))
      fix_pass(ctx);
  }
  pthread_mutex_unlock(&ctx->fix_lock);
  return NULL;
}

int rd_fixer_start(rd_ctx *ctx) {
  if (pthread_create(&ctx->fixer, NULL, fixer_main, ctx))
    return MC_ENOMEM;
  pthread_setname_np(ctx->fixer, "rd-fixer");
  ctx->fixer_started = 1;
  return 0;
}

void rd_fixer_stop(rd_ctx *ctx) {
  if (!ctx->fixer_started)
    return;
  atomic_store(&ctx->stop, 1);
  rd_fixer_kick(ctx);
  pthread_join(ctx->fixer, NULL);
  ctx->fixer_started = 0;
}

/* ---- the target side: ctrl_handle ------------------------------------------- */

static void passive_free(rd_ctx *ctx, rd_passive *p) {
  if (p->pslot) {
    pthread_mutex_lock(&p->rail->ptab_lock);
    p->rail->ptab[p->pslot] = NULL;
    pthread_mutex_unlock(&p->rail->ptab_lock);
  }
  ctx->v.destroy_qp(p->qp);
  if (p->rmr)
    ctx->v.dereg_mr(p->rmr);
  free(p->rbuf);
  free(p);
}

static int post_note_recv(rd_passive *p, uint32_t i) {
  struct ibv_sge g = {(uintptr_t)p->rbuf + (uint64_t)i * RD_NOTE_BUF, RD_NOTE_BUF, p->rmr->lkey};
  struct ibv_recv_wr w, *bad = NULL;
  memset(&w, 0, sizeof w);
  w.wr_id = RD_WR_RECV | ((uint64_t)p->pslot << 40) | i;
  w.sg_list = &g;
  w.num_sge = 1;
  return ibv_post_recv(p->qp, &w, &bad);
}

/* Receive buffers for a notify QP: registered, posted, and the QP entered
 * in its rail's ptab so the CQ thread finds it.  0 or MC_E*. */
static int passive_arm(rd_ctx *ctx, rd_passive *p) {
  rd_rail *r = p->rail;
  p->rbuf = aligned_alloc(4096, (size_t)RD_NOTE_RECVS * RD_NOTE_BUF);
  if (!p->rbuf)
    return MC_ENOMEM;
  p->rmr = ctx->v.reg_mr(r->pd, p->rbuf, (size_t)RD_NOTE_RECVS * RD_NOTE_BUF,
                         IBV_ACCESS_LOCAL_WRITE);
  if (!p->rmr)
    return MC_ENOMEM;
  int rc = MC_ENOSPC;
  pthread_mutex_lock(&r->ptab_lock);
  for (uint32_t i = 1; i < RD_QTAB; i++)
    if (!r->ptab[i]) {
      r->ptab[i] = p;
      p->pslot = (uint16_t)i;
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&r->ptab_lock);
  for (uint32_t i = 0; i < RD_NOTE_RECVS && !rc; i++)
    if (post_note_recv(p, i))
      rc = MC_EIO;
  return rc;
}

void rd_passive_recv(rd_rail *r, const struct ibv_wc *wc) {
  rd_ctx *ctx = r->ctx;
  uint32_t slot = (uint32_t)((wc->wr_id & ~RD_WR_RECV) >> 40) & 0xffffu;
  uint32_t i = (uint32_t)(wc->wr_id & 0xffu);
  if (slot == 0 || slot >= RD_QTAB || i >= RD_NOTE_RECVS)
    return;
  pthread_mutex_lock(&r->ptab_lock);
  rd_passive *p = r->ptab[slot];
  if (p && p->qp->qp_num == wc->qp_num && wc->status == IBV_WC_SUCCESS) {
    size_t len = wc->byte_len <= MC_NOTIFY_MAX ? wc->byte_len : MC_NOTIFY_MAX;
    /* The peer is the endpoint's owner the core authenticated when the QP
     * was exchanged, never a name from the message. */
    ctx->host->notify_recv(ctx->host->host, p->peer, p->rbuf + (size_t)i * RD_NOTE_BUF, len);
    if (post_note_recv(p, i))
      RD_LOG(ctx, MC_LOG_WARN, "%s: cannot repost a notification receive for '%s'", r->name,
             p->peer);
  }
  pthread_mutex_unlock(&r->ptab_lock);
}

/* Frees the passive QPs of `peer` matching (nonce, ep_id); with
 * other_nonces, every one of that peer NOT from init_nonce (a restarted
 * peer).  plock held. */
static void passive_drop(rd_ctx *ctx, const char *peer, uint64_t nonce, uint64_t ep_id,
                         int qidx, int other_nonces) {
  for (rd_passive **pp = &ctx->passive; *pp;) {
    rd_passive *p = *pp;
    int match = !strcmp(p->peer, peer) &&
                (other_nonces ? p->init_nonce != nonce
                              : p->init_nonce == nonce && p->ep_id == ep_id &&
                                    (qidx < 0 || p->qidx == qidx));
    if (match) {
      *pp = p->next;
      ctx->npassive--;
      passive_free(ctx, p);
    } else {
      pp = &p->next;
    }
  }
}

static uint32_t passive_count(rd_ctx *ctx, const char *peer) {
  uint32_t n = 0;
  for (rd_passive *p = ctx->passive; p; p = p->next)
    n += !strcmp(p->peer, peer);
  return n;
}

static int handle_connect(rd_ctx *ctx, const char *peer, const rdw_ctrl *m, void *resp,
                          size_t *resp_len) {
  rdw_ctrl *out = calloc(1, sizeof *out);
  if (!out)
    return MC_ENOMEM;
  out->type = RDW_CONNECT_OK;
  out->init_nonce = m->init_nonce;
  out->target_nonce = ctx->nonce;
  out->ep_id = m->ep_id;
  int rc = 0;
  pthread_mutex_lock(&ctx->plock);
  passive_drop(ctx, peer, m->init_nonce, 0, -1, 1);
  for (uint32_t i = 0; i < m->nqps; i++)
    passive_drop(ctx, peer, m->init_nonce, m->ep_id, m->qps[i].qidx, 0);
  /* Bounded per peer and in all: a peer (even an authenticated one) cannot
   * take every QP of the NICs. */
  if (passive_count(ctx, peer) + m->nqps > ctx->cfg.max_peer_qps ||
      ctx->npassive + m->nqps > RD_MAX_PASSIVE) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s' asks for more than %u QPs (%u served in all): refused",
           peer, ctx->cfg.max_peer_qps, ctx->npassive);
    rc = MC_ENOSPC;
  }
  rd_passive *made = NULL;
  for (uint32_t i = 0; i < m->nqps && !rc; i++) {
    const rdw_qp *e = &m->qps[i];
    if (e->rrail >= ctx->nrails) {
      rc = MC_EPROTO;
      break;
    }
    rd_rail *r = ctx->rails[e->rrail];
    rd_passive *p = calloc(1, sizeof *p);
    if (!p) {
      rc = MC_ENOMEM;
      break;
    }
    p->qp = qp_new(r, 1, (e->flags & RDW_QP_NOTIFY) ? RD_NOTE_RECVS : 1, NULL);
    uint8_t mtu = e->mtu < r->mtu ? e->mtu : r->mtu;
    uint32_t psn = rand_psn();
    int link_ib = r->link_ib && e->lid ? 1 : 0;
    if (!p->qp || qp_connect(r, p->qp, e, mtu, link_ib, psn)) {
      if (p->qp)
        ctx->v.destroy_qp(p->qp);
      free(p);
      RD_LOG(ctx, MC_LOG_WARN, "%s: cannot serve a QP for peer '%s'", r->name, peer);
      rc = MC_EIO;
      break;
    }
    snprintf(p->peer, sizeof p->peer, "%s", peer);
    p->init_nonce = m->init_nonce;
    p->ep_id = m->ep_id;
    p->qidx = e->qidx;
    p->rail = r;
    p->next = made;
    made = p;
    if ((e->flags & RDW_QP_NOTIFY) && (rc = passive_arm(ctx, p)) != 0) {
      RD_LOG(ctx, MC_LOG_WARN, "%s: cannot post notification receives for peer '%s'", r->name,
             peer);
      break;
    }
    rdw_qp *o = &out->qps[out->nqps++];
    *o = *e;
    o->qpn = p->qp->qp_num;
    o->psn = psn;
    o->mtu = mtu;
    fill_addr(r, o);
  }
  if (rc) {
    while (made) {
      rd_passive *p = made;
      made = p->next;
      passive_free(ctx, p);
    }
  } else {
    while (made) {
      rd_passive *p = made;
      made = p->next;
      p->next = ctx->passive;
      ctx->passive = p;
      ctx->npassive++;
    }
  }
  pthread_mutex_unlock(&ctx->plock);
  if (!rc)
    rc = rdw_ctrl_encode(out, resp, resp_len);
  free(out);
  return rc;
}

int rd_ctrl_handle(rd_ctx *ctx, const char *peer, const void *req, size_t req_len, void *resp,
                   size_t *resp_len) {
  if (atomic_load(&ctx->stop))
    return MC_EPEER;
  rdw_ctrl *m = malloc(sizeof *m);
  if (!m)
    return MC_ENOMEM;
  int rc = rdw_ctrl_decode(req, req_len, m);
  if (rc) {
    RD_LOG(ctx, MC_LOG_WARN, "peer '%s': malformed control message (%zu bytes)", peer, req_len);
  } else if (m->target_nonce != ctx->nonce) {
    /* The peer holds a descriptor of an earlier engine at this name. */
    rc = MC_EPEER;
  } else if (m->type == RDW_CONNECT) {
    rc = handle_connect(ctx, peer, m, resp, resp_len);
  } else if (m->type == RDW_DISCONNECT) {
    pthread_mutex_lock(&ctx->plock);
    passive_drop(ctx, peer, m->init_nonce, m->ep_id, -1, 0);
    pthread_mutex_unlock(&ctx->plock);
    *resp_len = 0;
  } else if (m->type == RDW_NOTIFY) {
    if (m->payload_len > MC_NOTIFY_MAX) {
      rc = MC_EINVAL;
    } else {
      /* `peer` is the name the core vouches for, never one from the message. */
      ctx->host->notify_recv(ctx->host->host, peer, m->payload, m->payload_len);
      *resp_len = 0;
    }
  } else {
    rc = MC_EPROTO;
  }
  free(m);
  return rc;
}

void rd_passive_free_all(rd_ctx *ctx) {
  pthread_mutex_lock(&ctx->plock);
  while (ctx->passive) {
    rd_passive *p = ctx->passive;
    ctx->passive = p->next;
    passive_free(ctx, p);
  }
  ctx->npassive = 0;
  pthread_mutex_unlock(&ctx->plock);
}

/* ---- notifications as SENDs -------------------------------------------------- */

void rd_notify_done(rd_qp *q, uint64_t wr_id, int status) {
  rd_ctx *ctx = q->ep->ctx;
  pthread_mutex_lock(&ctx->nlock);
  if ((uint32_t)(wr_id & 0xffffffffu) == q->ep->nseq) {
    q->ep->nstatus = status;
    q->ep->ndone = 1;
    pthread_cond_broadcast(&ctx->ncond);
  }
  pthread_mutex_unlock(&ctx->nlock);
}

/* A SEND on the notify QP (the first) of a usable rail, after every WR
 * already completed on ep: RC delivers it after their data.  Waits for its
 * completion, so a 0 means it reached the peer's receive queue. */
int rd_notify_send(rd_ctx *ctx, rd_ep *ep, const void *msg, size_t len) {
  uint64_t now = rd_now_ms();
  uint32_t qpp = ctx->cfg.qps_per_peer;
  rd_qp *q = NULL;
  /* The first QP of a built pair (it has the peer's receives). */
  for (uint32_t i = 0; i < ep->nqps && !q; i += qpp)
    if (rd_rail_usable(ep->qps[i].rail, now) && atomic_load(&ep->qps[i].state) == RDQ_READY)
      q = &ep->qps[i];
  if (!q)
    return MC_EAGAIN;
  uint32_t ri = q->rail->idx;
  if (!ep->nbuf && !(ep->nbuf = aligned_alloc(4096, RD_NOTE_BUF)))
    return MC_ENOMEM;
  if (!ep->nmr[ri] &&
      !(ep->nmr[ri] = ctx->v.reg_mr(q->rail->pd, ep->nbuf, RD_NOTE_BUF, IBV_ACCESS_LOCAL_WRITE)))
    return MC_ENOMEM;
  if (len)
    memcpy(ep->nbuf, msg, len);
  pthread_mutex_lock(&ctx->nlock);
  uint32_t seq = ++ep->nseq;
  ep->ndone = 0;
  pthread_mutex_unlock(&ctx->nlock);
  struct ibv_sge g = {(uintptr_t)ep->nbuf, (uint32_t)len, ep->nmr[ri]->lkey};
  struct ibv_send_wr w, *bad = NULL;
  memset(&w, 0, sizeof w);
  w.sg_list = &g;
  w.num_sge = 1;
  w.opcode = IBV_WR_SEND;
  w.send_flags = IBV_SEND_SIGNALED;
  int rc = MC_EAGAIN;
  pthread_mutex_lock(&q->lock);
  if (atomic_load(&q->state) == RDQ_READY && q->qp) {
    w.wr_id = RD_WR_NOTE | ((uint64_t)q->slot << RD_SEQ_SHIFT) | seq;
    rc = ibv_post_send(q->qp, &w, &bad) ? MC_EIO : 0;
  }
  pthread_mutex_unlock(&q->lock);
  if (rc)
    return rc;
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ctx->cfg.ctrl_timeout_ms / 1000;
  dl.tv_nsec += (long)(ctx->cfg.ctrl_timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&ctx->nlock);
  int w_rc = 0;
  while (!ep->ndone && w_rc == 0)
    w_rc = pthread_cond_timedwait(&ctx->ncond, &ctx->nlock, &dl);
  rc = ep->ndone ? ep->nstatus : MC_ETIMEDOUT;
  pthread_mutex_unlock(&ctx->nlock);
  if (rc == MC_ETIMEDOUT) {
    /* Flush it: the buffer is reused by the next notification. */
    pthread_mutex_lock(&q->lock);
    rd_qp_to_error(q, MC_EIO);
    pthread_mutex_unlock(&q->lock);
    rd_fixer_kick(ctx);
  }
  return rc;
}
