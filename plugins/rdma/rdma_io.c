/* rdma_io.c - the data path.
 *
 * submit() turns each slice into RDMA READ/WRITE work requests (split at
 * MR chunk boundaries on either side), appends them to a per-QP chain and
 * posts each chain with one ibv_post_send.  Signaling is selective: every
 * signal_every-th WR and the last of each chain ask for a completion; RC
 * completes in order, so a completion retires every earlier WR of its QP.
 * Outstanding WRs are bounded per QP (max_send_wr) and per CQ (cq_size,
 * counting unsignaled ones, which come back on a flush).
 *
 * A CQ thread per rail busy-polls for busy_poll_us, then arms the CQ and
 * sleeps on its completion channel.  It also enforces the slice deadline:
 * a QP whose oldest WR is older than timeout_ms is moved to ERR, which
 * flushes its WRs back (MC_ETIMEDOUT) and hands the QP to the fixer. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rdma_ctx.h"

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define RD_CHAIN 64             /* WRs per ibv_post_send */
#define RD_BUCKETS 8            /* distinct QPs one submit call fills at once */
#define RD_SEQ_BITS 40
#define RD_SEQ_MASK ((1ull << RD_SEQ_BITS) - 1)
#define RD_MAX_WR_BYTES (1ull << 30)

int rd_wc_status(int st) {
  switch (st) {
  case IBV_WC_SUCCESS: return 0;
  case IBV_WC_REM_ACCESS_ERR: return MC_EACCES;
  case IBV_WC_REM_INV_REQ_ERR: return MC_ERANGE;
  case IBV_WC_LOC_PROT_ERR:
  case IBV_WC_LOC_LEN_ERR: return MC_EINVAL;
  case IBV_WC_RETRY_EXC_ERR:
  case IBV_WC_RNR_RETRY_EXC_ERR: return MC_EPEER;
  default: return MC_EIO;
  }
}

/* Completions gathered under a QP's lock, handed to the core after it is
 * let go (the core's complete() may wake a submitter that wants it). */
typedef struct rd_done {
  uint64_t token, bytes;
  int32_t status, vendor;
} rd_done;
typedef struct rd_dbuf {
  rd_done *d;
  uint32_t n, cap;
} rd_dbuf;

/* Retires the ring's head entry with `status` (q->lock held); the slice's
 * completion goes to db (or straight to the core without one). */
static void retire_head_to(rd_qp *q, int status, int32_t vendor, rd_dbuf *db) {
  rd_ctx *ctx = q->ep->ctx;
  rd_pend *p = &q->ring[q->head];
  if (status && !q->slice_status)
    q->slice_status = status;
  q->slice_bytes += p->len;
  q->head = (q->head + 1) % q->cap;
  q->n--;
  q->seq = (q->seq + 1) & RD_SEQ_MASK;
  atomic_fetch_sub(&q->rail->outstanding, 1);
  if (p->last) {
    int st = q->slice_status;
    if (!st)
      atomic_fetch_add(&q->rail->bytes, q->slice_bytes);
    if (db && db->n < db->cap)
      db->d[db->n++] = (rd_done){p->token, st ? 0 : q->slice_bytes, st, st ? vendor : 0};
    else
      ctx->host->complete(ctx->host->host, p->token, st, st ? 0 : q->slice_bytes,
                          st ? vendor : 0);
    q->slice_status = 0;
    q->slice_bytes = 0;
  }
}

static void retire_head(rd_qp *q, int status, int32_t vendor) {
  retire_head_to(q, status, vendor, NULL);
}

void rd_qp_fail_ring(rd_qp *q, int status) {
  while (q->n)
    retire_head(q, status, 0);
  q->slice_status = 0;
  q->slice_bytes = 0;
}

/* ---- submit ------------------------------------------------------------------- */

typedef struct bucket {
  rd_qp *q;
  uint32_t n;
  struct ibv_send_wr wr[RD_CHAIN];
  struct ibv_sge sge[RD_CHAIN];
} bucket;

/* Posts b's chain; q->lock held.  A refused post moves the QP to ERR: the
 * WRs not posted stay in the ring and are failed when the fixer resets it. */
static void bucket_post(bucket *b) {
  if (!b->n)
    return;
  rd_qp *q = b->q;
  /* Links are set here: buckets move (memmove) while they fill. */
  for (uint32_t k = 0; k < b->n; k++) {
    b->wr[k].sg_list = &b->sge[k];
    b->wr[k].next = k + 1 < b->n ? &b->wr[k + 1] : NULL;
  }
  b->wr[b->n - 1].send_flags |= IBV_SEND_SIGNALED;
  q->since_signal = 0;
  struct ibv_send_wr *bad = NULL;
  int rc = ibv_post_send(q->qp, b->wr, &bad);
  if (rc) {
    RD_LOG(q->ep->ctx, MC_LOG_WARN, "%s: ibv_post_send failed: %s", q->rail->name, strerror(rc));
    rd_qp_to_error(q, MC_EIO);
    rd_fixer_kick(q->ep->ctx);
  }
  b->n = 0;
}

static void bucket_add(bucket *b, uint64_t wr_id, int op, uint64_t laddr, uint32_t lkey,
                       uint64_t raddr, uint32_t rkey, uint32_t len, uint32_t signal_every) {
  struct ibv_send_wr *w = &b->wr[b->n];
  struct ibv_sge *g = &b->sge[b->n];
  g->addr = laddr;
  g->length = len;
  g->lkey = lkey;
  memset(w, 0, sizeof *w);
  w->wr_id = wr_id;
  w->num_sge = 1;
  w->opcode = op == MC_OP_WRITE ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
  w->wr.rdma.remote_addr = raddr;
  w->wr.rdma.rkey = rkey;
  if (++b->q->since_signal >= signal_every) {
    w->send_flags = IBV_SEND_SIGNALED;
    b->q->since_signal = 0;
  }
  b->n++;
  if (b->n == RD_CHAIN)
    bucket_post(b);
}

static uint64_t min3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t m = a < b ? a : b;
  return m < c ? m : c;
}

/* Work requests slice s needs: split at local and remote chunk edges. */
static uint32_t count_wrs(const rd_mr *m, const rd_rmem *rm, const mc_slice *s) {
  uint64_t off = 0;
  uint32_t n = 0;
  while (off < s->len) {
    uint64_t lo = s->local_addr + off - m->base, ro = s->remote_addr + off - rm->key.base;
    off += min3(m->chunk - lo % m->chunk, rm->key.chunk - ro % rm->key.chunk,
                s->len - off < RD_MAX_WR_BYTES ? s->len - off : RD_MAX_WR_BYTES);
    n++;
  }
  return n;
}

static int range_in(uint64_t a, uint64_t l, uint64_t base, uint64_t blen) {
  return a >= base && l <= blen && a - base <= blen - l;
}

/* A QP of ep for a slice preferring rail `want` with room for nwr WRs:
 * *full = 1 when a READY QP exists but has no room (back-pressure), 2
 * when the pair is being made for its first use (the slice waits in the
 * endpoint's queue). */
static rd_qp *pick_qp(rd_ep *ep, uint32_t want, uint32_t nwr, uint64_t now, uint32_t rr,
                      int *full) {
  rd_ctx *ctx = ep->ctx;
  uint32_t qpp = ctx->cfg.qps_per_peer, nr = ctx->nrails;
  /* Pass 0: usable rails (the wanted one first); pass 1: rails in back-off
   * but up (a back-off is a preference, not a ban). */
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t j = 0; j < nr; j++) {
      rd_rail *r = ctx->rails[(want + j) % nr];
      if (pass == 0 ? !rd_rail_usable(r, now) : !atomic_load(&r->up))
        continue;
      rd_qp *pq = rd_ep_pair(ep, r->idx, rd_ep_rrail(ep, r->idx));
      uint32_t down = 0;
      for (uint32_t k = 0; k < qpp; k++) {
        rd_qp *q = &pq[(rr + k) % qpp];
        int st = atomic_load(&q->state);
        if (st != RDQ_READY) {
          down += st == RDQ_DOWN;
          continue;
        }
        if (q->n + nwr > q->cap ||
            atomic_load(&r->outstanding) + nwr > r->cq_size) {
          *full = 1;
          continue;
        }
        return q;
      }
      /* A healthy rail that is only busy pushes back: spilling to other
       * rails is the core's choice (rails.c), not ours.  So does a pair
       * being built for its first use; one that was tried and is down
       * (the fixer rebuilds it) lets the slice go to the next rail. */
      if (*full)
        return NULL;
      if (down == qpp && rd_pair_request(ep, pq)) {
        *full = 2;
        return NULL;
      }
    }
  return NULL;
}

int rd_wq_add(rd_ep *ep, const mc_slice *s, uint64_t now) {
  int rc = 0;
  pthread_mutex_lock(&ep->wq_lock);
  if (ep->wq_n == ep->wq_cap) {
    uint32_t cap = ep->wq_cap ? ep->wq_cap * 2 : 64;
    mc_slice *w = cap <= RD_WAITQ ? realloc(ep->wq, cap * sizeof *w) : NULL;
    if (w) {
      ep->wq = w;
      ep->wq_cap = cap;
    } else {
      rc = -1;
    }
  }
  if (!rc) {
    if (!ep->wq_n)
      ep->wq_since = now;
    ep->wq[ep->wq_n++] = *s;
  }
  pthread_mutex_unlock(&ep->wq_lock);
  return rc;
}

int rd_submit(rd_ctx *ctx, rd_ep *ep, const mc_slice *sl, uint32_t n, uint32_t *accepted) {
  bucket b[RD_BUCKETS];
  uint32_t nb = 0, i = 0;
  int rc = 0;
  uint64_t now = rd_now_ms();
  atomic_store(&ep->last_use, now);
  /* The QPs of a pair are taken in turn per call, not per slice: one
   * call's slices to a rail make one chain (one post, one signaled WR per
   * signal_every), and concurrent callers still spread over the QPs. */
  uint32_t rr = atomic_fetch_add(&ep->rr, 1);
  for (; i < n; i++) {
    const mc_slice *s = &sl[i];
    const rd_mr *m = s->local_mem;
    const rd_rmem *rm = s->remote_mem;
    if (!m || !rm || rm->ep != ep || (s->op != MC_OP_READ && s->op != MC_OP_WRITE) ||
        s->len == 0) {
      ctx->host->complete(ctx->host->host, s->token, MC_EINVAL, 0, 0);
      continue;
    }
    if (!range_in(s->local_addr, s->len, m->base, m->len) ||
        !range_in(s->remote_addr, s->len, rm->base, rm->len)) {
      ctx->host->complete(ctx->host->host, s->token, MC_ERANGE, 0, 0);
      continue;
    }
    uint32_t nwr = count_wrs(m, rm, s);
    if (nwr > ctx->cfg.max_send_wr / 2) {
      /* It would never fit a QP's queue: refuse it rather than push back
       * forever. */
      RD_LOG(ctx, MC_LOG_WARN, "a slice of %" PRIu64 " bytes needs %u work requests (MR chunks "
             "of %" PRIu64 " bytes): refused; raise max_mr_chunk or max_send_wr", s->len, nwr,
             m->chunk);
      ctx->host->complete(ctx->host->host, s->token, MC_ENOTSUP, 0, 0);
      continue;
    }
    int full = 0;
    rd_qp *q = NULL;
    /* A QP already locked by this call (in a bucket) is usable as is. */
    q = pick_qp(ep, s->rail < ctx->nrails ? s->rail : 0, nwr, now, rr, &full);
    if (!q && full == 2) {
      if (rd_wq_add(ep, s, now))
        break; /* the queue is full: back-pressure */
      continue;
    }
    if (!q) {
      if (!full) {
        int any_ready = 0;
        for (uint32_t k = 0; k < ep->nqps; k++)
          any_ready |= atomic_load(&ep->qps[k].state) == RDQ_READY;
        if (!any_ready) {
          atomic_store(&ep->need_fix, 1);
          rd_fixer_kick(ctx);
          if (atomic_load(&ep->dead) && i == 0)
            rc = MC_EPEER;
        }
      }
      break;
    }
    bucket *bk = NULL;
    for (uint32_t k = 0; k < nb; k++)
      if (b[k].q == q)
        bk = &b[k];
    if (!bk) {
      if (nb == RD_BUCKETS) {
        bucket_post(&b[0]);
        pthread_mutex_unlock(&b[0].q->lock);
        memmove(&b[0], &b[1], sizeof b[0] * (RD_BUCKETS - 1));
        nb--;
      }
      /* Never wait for a QP while holding others: another submitter (or
       * the fixer posting waiting slices) may hold them in another order.
       * When q is busy, post and let go of what this call holds first. */
      if (nb && pthread_mutex_trylock(&q->lock)) {
        for (uint32_t k = 0; k < nb; k++) {
          bucket_post(&b[k]);
          pthread_mutex_unlock(&b[k].q->lock);
        }
        nb = 0;
        pthread_mutex_lock(&q->lock);
      } else if (!nb) {
        pthread_mutex_lock(&q->lock);
      }
      bk = &b[nb++];
      bk->q = q;
      bk->n = 0;
      /* Re-check under the lock: the CQ thread or fixer may have moved it. */
      if (atomic_load(&q->state) != RDQ_READY || q->n + nwr > q->cap) {
        pthread_mutex_unlock(&q->lock);
        nb--;
        break;
      }
    }
    atomic_fetch_add(&q->rail->outstanding, nwr);
    uint32_t lr = q->rail->idx, rrl = q->rrail;
    uint64_t off = 0;
    for (uint32_t w = 0; w < nwr; w++) {
      uint64_t lo = s->local_addr + off - m->base, ro = s->remote_addr + off - rm->key.base;
      uint64_t l = min3(m->chunk - lo % m->chunk, rm->key.chunk - ro % rm->key.chunk,
                        s->len - off < RD_MAX_WR_BYTES ? s->len - off : RD_MAX_WR_BYTES);
      uint32_t lkey = m->mrs[lr * m->nchunks + lo / m->chunk]->lkey;
      uint32_t rkey = rm->key.keys[rrl * rm->key.nchunks + ro / rm->key.chunk];
      rd_pend *p = &q->ring[(q->head + q->n) % q->cap];
      p->token = s->token;
      p->len = l;
      p->last = w + 1 == nwr;
      p->t_ms = now;
      uint64_t seq = (q->seq + q->n) & RD_SEQ_MASK;
      q->n++;
      bucket_add(bk, ((uint64_t)q->slot << RD_SEQ_BITS) | seq, (int)s->op, s->local_addr + off,
                 lkey, s->remote_addr + off, rkey, (uint32_t)l, ctx->cfg.signal_every);
      off += l;
    }
  }
  for (uint32_t k = 0; k < nb; k++) {
    bucket_post(&b[k]);
    pthread_mutex_unlock(&b[k].q->lock);
  }
  *accepted = i;
  if (i == 0 && n)
    return rc ? rc : MC_EAGAIN;
  return 0;
}

/* ---- completions ------------------------------------------------------------ */

static void handle_wc(rd_rail *r, const struct ibv_wc *wc, rd_dbuf *db) {
  rd_ctx *ctx = r->ctx;
  if (wc->wr_id & RD_WR_RECV) {
    rd_passive_recv(r, wc);
    return;
  }
  uint32_t slot = (uint32_t)((wc->wr_id & ~(RD_WR_RECV | RD_WR_NOTE)) >> RD_SEQ_BITS);
  uint64_t seq = wc->wr_id & RD_SEQ_MASK;
  if (slot == 0 || slot >= RD_QTAB)
    return;
  pthread_mutex_lock(&r->qtab_lock);
  rd_qp *q = r->qtab[slot];
  if (!q) {
    pthread_mutex_unlock(&r->qtab_lock);
    return;
  }
  pthread_mutex_lock(&q->lock);
  if (wc->wr_id & RD_WR_NOTE) {
    /* A notification's SEND: not in the ring (RC order still holds). */
    int nst = wc->status == IBV_WC_SUCCESS ? 0 : rd_wc_status(wc->status);
    if (nst)
      RD_LOG(ctx, MC_LOG_DEBUG, "%s: notification SEND to '%s' completed with status %d", r->name,
             q->ep->peer, (int)wc->status);
    if (nst && q->qp && q->qp->qp_num == wc->qp_num && atomic_load(&q->state) == RDQ_READY) {
      atomic_store(&q->state, RDQ_ERROR);
      q->err_ms = rd_now_ms();
      atomic_store(&q->ep->need_fix, 1);
    }
    rd_notify_done(q, wc->wr_id, nst);
    pthread_mutex_unlock(&q->lock);
    pthread_mutex_unlock(&r->qtab_lock);
    if (nst)
      rd_fixer_kick(ctx);
    return;
  }
  uint64_t d = (seq - q->seq) & RD_SEQ_MASK;
  /* A completion of an earlier incarnation of this slot, or of a QP reset
   * since, matches nothing in the ring. */
  if (!q->qp || q->qp->qp_num != wc->qp_num || d >= q->n) {
    pthread_mutex_unlock(&q->lock);
    pthread_mutex_unlock(&r->qtab_lock);
    return;
  }
  for (uint64_t k = 0; k < d; k++)
    retire_head_to(q, 0, 0, db); /* in order: every earlier WR succeeded */
  int st = wc->status == IBV_WC_SUCCESS       ? 0
           : wc->status == IBV_WC_WR_FLUSH_ERR ? q->flush_status
                                               : rd_wc_status(wc->status);
  if (wc->status != IBV_WC_SUCCESS && wc->status != IBV_WC_WR_FLUSH_ERR) {
    if (atomic_load(&q->state) == RDQ_READY) {
      atomic_store(&q->state, RDQ_ERROR);
      q->err_ms = rd_now_ms();
      atomic_store(&q->ep->need_fix, 1);
    }
    /* A refused key is the peer's registration, not this rail's health. */
    if (st != MC_EACCES && st != MC_ERANGE)
      rd_rail_fail(r);
    RD_LOG(ctx, MC_LOG_WARN, "%s: work completion error to '%s': %s (vendor 0x%x)", r->name,
           q->ep->peer, mc_strerror(st), wc->vendor_err);
  } else if (wc->status == IBV_WC_WR_FLUSH_ERR && atomic_load(&q->state) == RDQ_READY) {
    atomic_store(&q->state, RDQ_ERROR);
    q->err_ms = rd_now_ms();
    atomic_store(&q->ep->need_fix, 1);
  } else if (!st) {
    rd_rail_ok(r);
  }
  retire_head_to(q, st, (int32_t)wc->vendor_err, db);
  int kick = st != 0;
  pthread_mutex_unlock(&q->lock);
  pthread_mutex_unlock(&r->qtab_lock);
  if (kick)
    rd_fixer_kick(ctx);
}

/* Slice deadline: a QP whose oldest WR waits longer than timeout_ms goes to
 * ERR; its WRs come back flushed and fail with MC_ETIMEDOUT. */
static void check_deadlines(rd_rail *r, uint64_t now) {
  pthread_mutex_lock(&r->qtab_lock);
  for (uint32_t i = 1; i < RD_QTAB; i++) {
    rd_qp *q = r->qtab[i];
    if (!q)
      continue;
    pthread_mutex_lock(&q->lock);
    if (q->n && atomic_load(&q->state) == RDQ_READY &&
        now - q->ring[q->head].t_ms > (uint64_t)r->ctx->cfg.timeout_ms) {
      RD_LOG(r->ctx, MC_LOG_WARN, "%s: slices to '%s' older than %d ms: QP flushed", r->name,
             q->ep->peer, r->ctx->cfg.timeout_ms);
      rd_qp_to_error(q, MC_ETIMEDOUT);
      rd_rail_fail(r);
    }
    pthread_mutex_unlock(&q->lock);
  }
  pthread_mutex_unlock(&r->qtab_lock);
}

static void dbuf_flush(rd_ctx *ctx, rd_dbuf *db) {
  for (uint32_t i = 0; i < db->n; i++)
    ctx->host->complete(ctx->host->host, db->d[i].token, db->d[i].status, db->d[i].bytes,
                        db->d[i].vendor);
  db->n = 0;
}

/* Takes what rail r's CQ holds: the number of completions handled. */
static int drain(rd_rail *r, struct ibv_wc *wc, rd_dbuf *db) {
  int total = 0, n;
  while ((n = ibv_poll_cq(r->cq, 64, wc)) > 0) {
    for (int i = 0; i < n; i++) {
      handle_wc(r, &wc[i], db);
      dbuf_flush(r->ctx, db); /* no lock held here */
    }
    total += n;
    if (n < 64)
      break;
  }
  return total;
}

/* A completion thread over the rails k, k + n, ...: busy-polls their CQs
 * for busy_poll_us, then arms them all and sleeps on their completion
 * channels at once, so completions of several rails arriving together
 * cost one wake-up, not one per rail. */
void *rd_cq_main(void *arg) {
  rd_cqpoll *cp = arg;
  rd_ctx *ctx = cp->ctx;
  rd_rail *rails[RD_MAX_RAILS];
  struct pollfd pfd[RD_MAX_RAILS];
  uint32_t nr = 0;
  for (uint32_t i = cp->k; i < ctx->nrails; i += cp->n)
    rails[nr++] = ctx->rails[i];
  struct ibv_wc wc[64];
  /* One WC retires at most a QP's ring: room for that many slices. */
  rd_dbuf db = {calloc(ctx->cfg.max_send_wr, sizeof(rd_done)), 0, ctx->cfg.max_send_wr};
  if (!db.d)
    db.cap = 0; /* completions go to the core under the lock, as before */
  uint64_t last_scan = rd_now_ms(), idle_since = 0;
  while (!atomic_load(&ctx->stop)) {
    int n = 0;
    for (uint32_t i = 0; i < nr; i++)
      n += drain(rails[i], wc, &db);
    uint64_t us = now_us();
    if (us / 1000 - last_scan >= 50) {
      for (uint32_t i = 0; i < nr; i++)
        check_deadlines(rails[i], rd_now_ms());
      last_scan = us / 1000;
    }
    if (n > 0) {
      idle_since = 0;
      continue;
    }
    if (!idle_since)
      idle_since = us;
    if (us - idle_since < (uint64_t)ctx->cfg.busy_poll_us)
      continue;
    /* Arm, then look once more: a completion that came before the arm
     * raises no event. */
    for (uint32_t i = 0; i < nr; i++)
      ibv_req_notify_cq(rails[i]->cq, 0);
    for (uint32_t i = 0; i < nr; i++)
      n += drain(rails[i], wc, &db);
    if (n > 0)
      continue;
    for (uint32_t i = 0; i < nr; i++)
      pfd[i] = (struct pollfd){rails[i]->ch->fd, POLLIN, 0};
    if (poll(pfd, nr, 20) > 0)
      for (uint32_t i = 0; i < nr; i++)
        if (pfd[i].revents & POLLIN) {
          struct ibv_cq *cq;
          void *cctx;
          if (ctx->v.get_cq_event(rails[i]->ch, &cq, &cctx) == 0)
            ctx->v.ack_cq_events(cq, 1);
        }
    idle_since = 0;
  }
  free(db.d);
  return NULL;
}
