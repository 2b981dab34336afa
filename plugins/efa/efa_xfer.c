/* efa_xfer.c - moving slices: submit turns each slice into an fi_read or
 * fi_write on the rail it names (or another rail of the peer when that one
 * rests after a failure); one worker thread per rail reads the rail's CQ,
 * posts what the provider pushed back with -FI_EAGAIN, inserts peers'
 * addresses into the AV ahead of their first transfer and fails slices past
 * their deadline.
 *
 * Op life: FREE -> QUEUED (waiting for the AV or after -FI_EAGAIN) ->
 * POSTED (libfabric owns it) -> FREE on its CQ entry.  A connection-level
 * failure sends it back to QUEUED (a retry after a growing gap, within
 * its deadline); after RETRY_MAX of them it waits in PROBING for a probe
 * of its peer: probes are repeated until an answer or the op's deadline
 * (then MC_EPEER); an answer means the connection works, so the op is
 * tried once more, and failing again it was the op itself the target
 * refused (MC_EACCES).  A posted op whose
 * deadline passed (or whose peer disconnected) is completed to the core at
 * once and becomes ABANDONED: it stays out of the free list until
 * libfabric returns it, since the provider still holds its context.
 *
 * Locks: ctx->lock (peers) may be taken before a rail's lock, never after.
 * complete() is called with the rail lock held (the core never re-enters
 * the plugin from it). */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "efa_ctx.h"

#define CQ_BATCH 32
#define SWEEP_MS 5
#define SREAD_MS 5
#define SPIN_ROUNDS 64

static int64_t efa_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t efa_now_ms(void) { return efa_now_ns() / 1000000; }

int efa_err_map(int e) {
  switch (e) {
  case FI_EACCES:
  case FI_EPERM:
  case FI_EKEYREJECTED:
  case FI_ENOKEY:
  case FI_EBADF:
    return MC_EACCES;
  case FI_EINVAL:
  case FI_ETOOSMALL:
  case FI_EMSGSIZE:
    return MC_ERANGE;
  case FI_ETIMEDOUT:
    return MC_ETIMEDOUT;
  case FI_ENOMEM:
    return MC_ENOMEM;
  default:
    return MC_EPEER;
  }
}

int efa_rma_err_class(int e) {
  switch (e) {
  /* What a target's provider answers for a key it does not hold, a range
   * outside the registration or an access the registration does not
   * allow (util providers' ofi_mr_map_verify: FI_EINVAL for an unknown
   * key, FI_EACCES out of bounds; efa: FI_EKEYREJECTED-like codes).  The
   * slice's own bounds were checked at submit, so these are the
   * target's refusals. */
  case FI_EACCES:
  case FI_EPERM:
  case FI_EKEYREJECTED:
  case FI_ENOKEY:
  case FI_EINVAL:
  case FI_EFAULT:
  case FI_EREMOTEIO:
    return EFA_ERR_ACCESS;
  /* The connection under an RDM endpoint (tcp;ofi_rxm) went away or was
   * not up yet.  FI_ECANCELED among them: the plugin never cancels an RMA
   * in the provider, and tcp;ofi_rxm cancels the ops of a connection it
   * drops -- when the peer died, when the target refused one access (it
   * closes the connection then), and now and then while a first
   * connection is set up under load.  Which one it was, the retries and
   * the probe tell. */
  case FI_ECANCELED:
  case FI_ENOTCONN:
  case FI_ECONNRESET:
  case FI_ECONNABORTED:
  case FI_ECONNREFUSED:
  case FI_EHOSTUNREACH:
  case FI_ENETUNREACH:
  case FI_ESHUTDOWN:
  case FI_EAGAIN:
  case FI_EINTR:
    return EFA_ERR_CONN;
  default:
    return EFA_ERR_OTHER;
  }
}

/* ---- op lists (rail lock held) ---- */
static void list_add(efa_list *l, efa_op *op) {
  op->next = NULL;
  op->prev = l->tail;
  if (l->tail)
    l->tail->next = op;
  else
    l->head = op;
  l->tail = op;
  l->n++;
}

static void list_del(efa_list *l, efa_op *op) {
  if (op->prev)
    op->prev->next = op->next;
  else
    l->head = op->next;
  if (op->next)
    op->next->prev = op->prev;
  else
    l->tail = op->prev;
  op->prev = op->next = NULL;
  l->n--;
}

static void op_free(efa_rail *r, efa_op *op) {
  op->state = EFA_ST_FREE;
  op->peer = NULL;
  op->next = r->free_ops;
  r->free_ops = op;
}

static void finish(efa_rail *r, efa_op *op, int status) {
  const mc_host_api *h = r->ctx->host;
  h->complete(h->host, op->token, status, status ? 0 : op->len, 0);
}

static ssize_t post(efa_rail *r, efa_op *op, fi_addr_t fa) {
  if (op->op == MC_OP_READ)
    return fi_read(r->ep, (void *)(uintptr_t)op->laddr, op->len, op->ldesc, fa, op->raddr,
                   op->key, &op->fctx);
  return fi_write(r->ep, (const void *)(uintptr_t)op->laddr, op->len, op->ldesc, fa,
                  op->raddr, op->key, &op->fctx);
}

#define RETRY_MAX 3
#define RETRY_GAP_MS 20
#define PING_GAP_MS 50
#define PING_GAP_MAX_MS 1000

/* An RMA op failed with fi_err (rail lock held, op on no list).  Returns
 * 0 when it was queued again or parked for a probe of its peer, else the
 * status to complete it with. */
static int rma_failed(efa_rail *r, efa_op *op, int fi_err) {
  int cls = efa_rma_err_class(fi_err);
  if (cls == EFA_ERR_ACCESS)
    return MC_EACCES;
  if (cls != EFA_ERR_CONN)
    return efa_err_map(fi_err);
  if (op->probed)
    return MC_EACCES; /* the peer answered after this op's failures */
  int64_t now = efa_now_ms();
  int64_t gap = (int64_t)RETRY_GAP_MS << op->retries; /* 20, 40, 80 ms */
  if (op->retries < RETRY_MAX && now + gap < op->deadline_ms) {
    op->retries++;
    op->not_before_ms = now + gap;
    op->state = EFA_ST_QUEUED;
    list_add(&r->queued, op);
  } else {
    op->state = EFA_ST_PROBING;
    list_add(&r->probing, op);
  }
  return 0;
}

/* A probe of p on rail r was answered (rail lock held): p is alive, so its
 * parked ops go once more, marked: failing again, it was the op the
 * target refused.  p is only compared (a disconnect may have freed it). */
static void probe_answered(efa_rail *r, const efa_peer *p) {
  int64_t now = efa_now_ms();
  for (efa_op *op = r->probing.head, *n; op; op = n) {
    n = op->next;
    if (op->peer != p)
      continue;
    list_del(&r->probing, op);
    op->probed = 1;
    op->not_before_ms = now;
    op->state = EFA_ST_QUEUED;
    list_add(&r->queued, op);
  }
}

/* A probe of p failed (rail lock held).  Not final: the probe may have
 * gone out on the very connection being dropped, or while a first
 * connection is still being set up under load.  Its parked ops wait for
 * the next probe (PING_GAP_MS, doubling up to PING_GAP_MAX_MS) until
 * their deadline, where they fail MC_EPEER (efa_op.probe_failed). */
static void probe_failed(efa_rail *r, efa_peer *p) {
  uint32_t f = p->ping_fails[r->idx] < 8 ? p->ping_fails[r->idx]++ : 8;
  int64_t gap = (int64_t)PING_GAP_MS << f;
  if (gap > PING_GAP_MAX_MS)
    gap = PING_GAP_MAX_MS;
  p->ping_after_ms[r->idx] = efa_now_ms() + gap;
  for (efa_op *op = r->probing.head; op; op = op->next)
    if (op->peer == p)
      op->probe_failed = 1;
}

/* Probes the peers of parked ops that have none in flight (rail lock
 * held; efa_ping_post drops it around the provider call). */
static void start_probes(efa_rail *r) {
  for (int round = 0; round < 64; round++) {
    efa_peer *p = NULL;
    int64_t now = efa_now_ms();
    for (efa_op *op = r->probing.head; op && !p; op = op->next)
      if (!op->peer->ping[r->idx] && op->peer->ping_after_ms[r->idx] <= now)
        p = op->peer;
    if (!p)
      return;
    int rc = efa_ping_post(r, p);
    if (rc == -FI_EAGAIN)
      return; /* no send slot or the provider is busy: next round */
    if (rc) {
      EFA_LOG(r->ctx, MC_LOG_DEBUG, "rail %s: probe of a peer not posted: %s", r->ri.name,
              fi_strerror(-rc));
      probe_failed(r, p);
    }
  }
}

/* The first queued op ready to go (its address resolved, its retry gap
 * over); ops whose address failed are completed on the way. */
#define BLOCKED_MAX 4

static efa_op *next_ready(efa_rail *r, int64_t now, efa_peer *const *blocked, int nblocked) {
  for (efa_op *op = r->queued.head, *n; op; op = n) {
    n = op->next;
    efa_peer *p = op->peer;
    int skip = 0;
    for (int i = 0; i < nblocked && !skip; i++)
      skip = blocked[i] == p;
    if (skip)
      continue;
    if (p->av_state[r->idx] < 0) {
      list_del(&r->queued, op);
      finish(r, op, MC_EPEER);
      op_free(r, op);
    } else if (p->av_state[r->idx] > 0 && op->not_before_ms <= now) {
      return op;
    }
  }
  return NULL;
}

/* Posts queued ops in order while the provider takes them.  Called and
 * returns with the rail lock held, but drops it around every provider
 * call: a provider call may block for good (shm spins on a lock in the
 * shared region of a peer that was killed holding it), and the deadline
 * thread needs this lock to fail the op on time.  While unlocked, the op
 * sits in `posted`, so the deadline thread or a disconnect may complete it
 * and mark it ABANDONED; a CQ entry may even complete and free it when the
 * provider took it.  So after the call, the op is touched only when the
 * provider refused it (no CQ entry will ever name it then). */
static void post_queued(efa_rail *r, int wait) {
  efa_op *op;
  /* Peers whose op the provider pushed back in this pass: their later
   * ops wait too (order kept), other peers' ops still go -- tcp;ofi_rxm
   * answers -FI_EAGAIN for as long as it reconnects to a peer, which
   * must not hold up the rail for the others. */
  efa_peer *blocked[BLOCKED_MAX];
  int nblocked = 0;
  if (r->draining)
    return; /* fini: queued ops are failed, not posted */
  while ((op = next_ready(r, efa_now_ms(), blocked, nblocked)) != NULL) {
    /* A submitter never waits for another poster (which may be stuck in
     * the provider): it leaves the op queued for the worker. */
    if (!wait && pthread_mutex_trylock(&r->post_lock))
      return;
    efa_peer *p = op->peer;
    fi_addr_t fa = p->fa[r->idx];
    int is_read = op->op == MC_OP_READ;
    op->state = EFA_ST_POSTED;
    list_del(&r->queued, op);
    list_add(&r->posted, op);
    pthread_mutex_unlock(&r->lock);
    if (wait)
      pthread_mutex_lock(&r->post_lock);
    ssize_t rc = post(r, op, fa);
    pthread_mutex_unlock(&r->post_lock);
    pthread_mutex_lock(&r->lock);
    if (rc == 0)
      continue; /* libfabric owns it now; its CQ entry completes it */
    if (op->state == EFA_ST_ABANDONED) {
      /* Completed to the core meanwhile (deadline, disconnect); the
       * provider never took it, so it is free now. */
      r->abandoned--;
      op_free(r, op);
      continue;
    }
    list_del(&r->posted, op);
    if (rc == -FI_EAGAIN) {
      op->state = EFA_ST_QUEUED;
      /* Back to the front: keep the order; the provider needs progress
       * (our next CQ read) before it takes more. */
      op->next = r->queued.head;
      op->prev = NULL;
      if (r->queued.head)
        r->queued.head->prev = op;
      else
        r->queued.tail = op;
      r->queued.head = op;
      r->queued.n++;
      blocked[nblocked++] = p;
      if (nblocked == BLOCKED_MAX)
        return;
      continue;
    }
    EFA_LOG(r->ctx, MC_LOG_WARN, "rail %s: peer '%s': %s failed: %s", r->ri.name, p->name,
            is_read ? "fi_read" : "fi_write", fi_strerror((int)-rc));
    /* A connection-level refusal at post time (a first contact under
     * load) is retried like one reported in the CQ. */
    int st = efa_rma_err_class((int)-rc) == EFA_ERR_CONN ? rma_failed(r, op, (int)-rc)
                                                         : efa_err_map((int)-rc);
    if (st) {
      finish(r, op, st);
      op_free(r, op);
    }
  }
}

/* A CQ entry (rail lock held).  Returns 1 when op is a receive buffer to
 * post again, which the worker does after dropping the lock. */
static int on_done(efa_rail *r, efa_op *op, int status, size_t len, int fi_err) {
  switch (op->kind) {
  case EFA_OP_RECV:
    /* Not once stopping: a worker that comes back from libfabric after a
     * wedged fini (efa_workers_stop) must not call into a gone host. */
    if (!status && !r->stop)
      efa_notify_recv_done(r, op, len);
    return !r->stop && fi_err != FI_ECANCELED;
  case EFA_OP_SEND:
    if (op->ping) {
      efa_peer *p = op->peer; /* NULL once disconnected */
      op->ping = 0;
      op->peer = NULL;
      if (p) {
        /* The probe may go out on the very connection the provider is
         * dropping (tcp;ofi_rxm reports ENOTCONN for it): only PING_MAX
         * failures in a row, PING_GAP_MS apart, mean the peer is gone. */
        p->ping[r->idx] = 0;
        if (status == 0) {
          p->ping_fails[r->idx] = 0;
          probe_answered(r, p);
        } else {
          probe_failed(r, p);
        }
      }
    } else if (status) {
      EFA_LOG(r->ctx, MC_LOG_WARN, "rail %s: a notification was not delivered: %s",
              r->ri.name, mc_strerror(status));
    }
    op->state = EFA_ST_FREE;
    pthread_cond_broadcast(&r->cond);
    return 0;
  default:
    break;
  }
  if (op->state == EFA_ST_ABANDONED) {
    /* Already completed to the core (deadline, disconnect, fini): the
     * provider's late entry only gives the op back. */
    r->abandoned--;
    op_free(r, op);
    return 0;
  }
  if (op->state != EFA_ST_POSTED)
    return 0; /* not ours to complete (cannot happen) */
  list_del(&r->posted, op);
  if (status && (status = rma_failed(r, op, fi_err)) == 0)
    return 0; /* queued again or parked for a probe */
  finish(r, op, status);
  op_free(r, op);
  return 0;
}

static void repost_recv(efa_rail *r, efa_op *op) {
  pthread_mutex_lock(&r->post_lock);
  ssize_t rc = fi_recv(r->ep, op->buf, EFA_NOTE_MAX, r->note_desc, FI_ADDR_UNSPEC, &op->fctx);
  pthread_mutex_unlock(&r->post_lock);
  if (rc)
    EFA_LOG(r->ctx, MC_LOG_WARN, "rail %s: notification buffer not reposted: %s", r->ri.name,
            fi_strerror((int)-rc));
}

/* Deadlines: queued and posted ops past theirs fail with MC_ETIMEDOUT.  An
 * RDM endpoint has no connection to watch: a peer that died without the
 * provider noticing (shm) shows up only as silence.  Run by the context's
 * deadline thread (rail lock held), which never calls into libfabric, so
 * a worker stuck inside a provider call cannot hold deadlines up. */
static void sweep(efa_rail *r, int64_t now) {
  for (efa_op *op = r->queued.head, *n; op; op = n) {
    n = op->next;
    if (op->deadline_ms <= now) {
      list_del(&r->queued, op);
      finish(r, op, MC_ETIMEDOUT);
      op_free(r, op);
    }
  }
  for (efa_op *op = r->posted.head, *n; op; op = n) {
    n = op->next;
    if (op->deadline_ms <= now) {
      list_del(&r->posted, op);
      finish(r, op, MC_ETIMEDOUT);
      op->state = EFA_ST_ABANDONED;
      op->peer = NULL;
      r->abandoned++;
    }
  }
  for (efa_op *op = r->probing.head, *n; op; op = n) {
    n = op->next;
    if (op->deadline_ms <= now) {
      list_del(&r->probing, op);
      finish(r, op, op->probe_failed ? MC_EPEER : MC_ETIMEDOUT);
      op_free(r, op);
    }
  }
}

/* fi_av_insert through the rail's cache of inserted addresses. */
static int av_lookup(efa_rail *r, const uint8_t *addr, uint16_t len, fi_addr_t *fa) {
  for (uint32_t i = 0; i < r->av_n; i++)
    if (r->av_cache[i].len == len && !memcmp(r->av_cache[i].addr, addr, len)) {
      *fa = r->av_cache[i].fa;
      return 1;
    }
  if (r->av_n == r->av_cap) {
    uint32_t cap = r->av_cap ? 2 * r->av_cap : 8;
    efa_av_entry *n = realloc(r->av_cache, cap * sizeof *n);
    if (!n)
      return -FI_ENOMEM;
    r->av_cache = n;
    r->av_cap = cap;
  }
  int n = fi_av_insert(r->av, addr, 1, fa, 0, NULL);
  if (n != 1 || *fa == FI_ADDR_NOTAVAIL)
    return n < 0 ? n : -FI_EADDRNOTAVAIL;
  efa_av_entry *e = &r->av_cache[r->av_n++];
  e->len = len;
  memcpy(e->addr, addr, len);
  e->fa = *fa;
  return 1;
}

#define AV_RETRY_MS 100

/* Warm-up: resolves the addresses of peers connected since the last round
 * (fi_av_insert can be slow, so it runs here and not in connect).  A
 * failed insert is tried again every AV_RETRY_MS for timeout_ms (ops to
 * the peer wait for it, within their own deadlines) before the peer is
 * given up on this rail (MC_EPEER). */
static void resolve_peers(efa_rail *r) {
  efa_ctx *ctx = r->ctx;
  int64_t now = efa_now_ms(), retry = 0;
  pthread_mutex_lock(&ctx->lock);
  for (efa_peer *p = ctx->peers; p; p = p->next) {
    if (p->av_state[r->idx] != 0)
      continue;
    if (p->av_after_ms[r->idx] > now) {
      if (!retry || p->av_after_ms[r->idx] < retry)
        retry = p->av_after_ms[r->idx];
      continue;
    }
    uint32_t pr = r->idx % p->desc.nrails;
    fi_addr_t fa = FI_ADDR_NOTAVAIL;
    int n = av_lookup(r, p->desc.addr[pr], p->desc.addr_len[pr], &fa);
    pthread_mutex_lock(&r->lock);
    if (n == 1) {
      p->fa[r->idx] = fa;
      p->av_state[r->idx] = 1;
    } else {
      if (!p->av_first_fail_ms[r->idx])
        p->av_first_fail_ms[r->idx] = now;
      int give_up = now - p->av_first_fail_ms[r->idx] >= ctx->cfg.timeout_ms;
      EFA_LOG(ctx, MC_LOG_WARN, "rail %s: peer '%s': fi_av_insert failed: %s%s", r->ri.name,
              p->name, fi_strerror(-n), give_up ? "; peer given up on this rail" : "; retrying");
      if (give_up) {
        p->av_state[r->idx] = MC_EPEER;
      } else {
        p->av_after_ms[r->idx] = now + AV_RETRY_MS;
        if (!retry || now + AV_RETRY_MS < retry)
          retry = now + AV_RETRY_MS;
      }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
  }
  pthread_mutex_unlock(&ctx->lock);
  pthread_mutex_lock(&r->lock);
  r->av_retry_ms = retry;
  pthread_mutex_unlock(&r->lock);
}

/* A rail without a CQ wait object (shm) progresses RMA -- its own and the
 * peers' into this process -- only while its worker polls.  After the last
 * sign of work (a completion, a submit, the remote-access counter moving)
 * it keeps polling, yielding the core between polls, for spin_us; only
 * then does it nap poll_us (at most 20 us with ops posted).  A nap costs
 * tens of microseconds however short it is asked to be, and a shm read
 * takes several round trips through both processes' progress (its bounce
 * buffers), so napping between them held 64K reads to ~0.6 GB/s here. */
static void *worker(void *arg) {
  efa_rail *r = arg;
  struct fi_cq_data_entry ent[CQ_BATCH];
  efa_op *rearm[CQ_BATCH];
  int idle = 0;
  int64_t last_work = efa_now_ns();
  const int64_t spin_ns = (int64_t)r->ctx->cfg.spin_us * 1000;
  uint64_t rcntr_seen = r->rcntr ? fi_cntr_read(r->rcntr) : 0;
  /* Naps of poll_us mean poll_us, not poll_us plus the default 50 us of
   * timer slack. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  for (;;) {
    pthread_mutex_lock(&r->lock);
    int stop = r->stop, av_work = r->av_work || (r->av_retry_ms && efa_now_ms() >= r->av_retry_ms);
    int busy = r->posted.n || r->queued.n || r->probing.n;
    int64_t submitted = r->last_submit_ns;
    r->av_work = 0;
    pthread_mutex_unlock(&r->lock);
    if (stop)
      break;
    if (av_work)
      resolve_peers(r);
    ssize_t n;
    /* Sleep in the provider's wait object once idle for a while; manual
     * progress providers progress inside fi_cq_sread too.  Polling longer
     * (spin_us, as rails without a wait object do) did not pay over
     * tcp;ofi_rxm here: the spinning worker took the core the kernel's
     * socket work and the peer needed (64K reads 2.0 -> 1.5 GB/s). */
    if (r->cq_wait && idle > SPIN_ROUNDS)
      n = fi_cq_sread(r->cq, ent, CQ_BATCH, NULL, SREAD_MS);
    else
      n = fi_cq_read(r->cq, ent, CQ_BATCH);
    uint32_t nrearm = 0;
    pthread_mutex_lock(&r->lock);
    if (n > 0) {
      for (ssize_t i = 0; i < n; i++) {
        efa_op *op = ent[i].op_context;
        if (on_done(r, op, 0, ent[i].len, 0))
          rearm[nrearm++] = op;
      }
    } else if (n == -FI_EAVAIL) {
      struct fi_cq_err_entry e;
      memset(&e, 0, sizeof e);
      pthread_mutex_unlock(&r->lock);
      ssize_t got = fi_cq_readerr(r->cq, &e, 0);
      pthread_mutex_lock(&r->lock);
      if (got == 1 && e.op_context) {
        int st = efa_err_map(e.err);
        if (st == 0)
          st = MC_EPEER; /* an error entry is never a success */
        if (r->ctx->host->log_enabled(r->ctx->host->host, MC_LOG_DEBUG))
          EFA_LOG(r->ctx, MC_LOG_DEBUG, "rail %s: completion error %s (%s, provider %d)",
                  r->ri.name, mc_errname(st), fi_strerror(e.err), e.prov_errno);
        if (on_done(r, e.op_context, st, 0, e.err))
          rearm[nrearm++] = e.op_context;
      }
      n = 1;
    }
    if (r->queued.n)
      post_queued(r, 1); /* drops the lock around each provider call */
    if (r->probing.n)
      start_probes(r); /* likewise */
    pthread_mutex_unlock(&r->lock);
    for (uint32_t i = 0; i < nrearm; i++)
      repost_recv(r, rearm[i]);
    int worked = n > 0;
    if (!worked && r->rcntr) {
      /* Peers' RMA into this process leave no CQ entry: the counter. */
      uint64_t c = fi_cntr_read(r->rcntr);
      worked = c != rcntr_seen;
      rcntr_seen = c;
    }
    if (worked) {
      idle = 0;
      last_work = efa_now_ns();
    } else if (++idle > SPIN_ROUNDS && !r->cq_wait) {
      int64_t now = efa_now_ns();
      if (submitted > last_work)
        last_work = submitted;
      if (now - last_work < spin_ns) {
        sched_yield();
        continue;
      }
      /* Nothing for spin_us: poll every poll_us.  Without a counter the
       * peers' RMA into this process are invisible here, so an "idle"
       * target may well be busy: poll_us bounds the latency peers see
       * after a pause, at the cost of wake-ups. */
      long us = r->ctx->cfg.poll_us;
      if (busy && us > 20)
        us = 20;
      struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
  }
  pthread_mutex_lock(&r->lock);
  r->exited = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

/* The context's deadline thread: every SWEEP_MS, fails the ops of every
 * rail past their deadline.  It takes only the rail locks, which nobody
 * holds across a libfabric call, and calls nothing in libfabric itself:
 * whatever the provider does (a call that never returns, an endpoint that
 * reports nothing more), every accepted slice completes by its deadline. */
static void *reaper(void *arg) {
  efa_ctx *ctx = arg;
  pthread_mutex_lock(&ctx->reap_lock);
  while (!ctx->reap_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += SWEEP_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&ctx->reap_cond, &ctx->reap_lock, &ts);
    if (ctx->reap_stop)
      break;
    pthread_mutex_unlock(&ctx->reap_lock);
    int64_t now = efa_now_ms();
    for (uint32_t k = 0; k < ctx->nrails; k++) {
      efa_rail *r = &ctx->rails[k];
      pthread_mutex_lock(&r->lock);
      sweep(r, now);
      pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_lock(&ctx->reap_lock);
  }
  pthread_mutex_unlock(&ctx->reap_lock);
  return NULL;
}

/* ---- submit ---- */

static int slice_check(efa_ctx *ctx, efa_peer *peer, const mc_slice *s) {
  const efa_mem *m = s->local_mem;
  const efa_rmem *rm = s->remote_mem;
  if (!m || !rm || rm->peer != peer || (s->op != MC_OP_READ && s->op != MC_OP_WRITE) ||
      s->len == 0)
    return MC_EINVAL;
  if (s->local_addr < m->base || s->len > m->len || s->local_addr - m->base > m->len - s->len)
    return MC_ERANGE;
  if (s->remote_addr < rm->base || s->len > rm->len ||
      s->remote_addr - rm->base > rm->len - s->len)
    return MC_ERANGE;
  if (s->len > ctx->rails[0].info->ep_attr->max_msg_size)
    return MC_EINVAL;
  return 0;
}

/* The rail for slice s: the one it names unless the peer's address could
 * not be resolved there; then the next one that has it.  -1 when none.
 * A rail that failed or timed out is not avoided here: the core retries
 * the slice on another rail (MC_EPEER, MC_ETIMEDOUT) and rests the rail
 * itself, and some providers reconnect on the next operation. */
static int pick_rail(efa_ctx *ctx, efa_peer *p, uint32_t want) {
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    uint32_t i = (want + k) % ctx->nrails;
    if (p->av_state[i] >= 0)
      return (int)i;
  }
  return -1;
}

int efa_submit(efa_ctx *ctx, efa_peer *peer, const mc_slice *sl, uint32_t n,
               uint32_t *accepted) {
  const mc_host_api *h = ctx->host;
  int64_t now_ns = efa_now_ns(), now = now_ns / 1000000;
  uint32_t i = 0;
  for (; i < n; i++) {
    const mc_slice *s = &sl[i];
    int st = slice_check(ctx, peer, s);
    int ri = st ? -1 : pick_rail(ctx, peer, s->rail);
    if (!st && ri < 0)
      st = MC_EPEER;
    if (st) {
      h->complete(h->host, s->token, st, 0, 0);
      continue;
    }
    efa_rail *r = &ctx->rails[ri];
    const efa_rmem *rm = s->remote_mem;
    const efa_mem *m = s->local_mem;
    uint32_t pr = (uint32_t)ri % peer->desc.nrails;
    if (pr >= rm->k.nrails) {
      h->complete(h->host, s->token, MC_EINVAL, 0, 0);
      continue;
    }
    pthread_mutex_lock(&r->lock);
    efa_op *op = r->free_ops;
    if (!op) {
      pthread_mutex_unlock(&r->lock);
      break; /* back-pressure: the core resubmits the rest */
    }
    r->free_ops = op->next;
    op->kind = EFA_OP_RMA;
    op->op = s->op;
    op->token = s->token;
    op->laddr = s->local_addr;
    op->len = s->len;
    op->ldesc = m->desc[ri];
    op->key = rm->k.key[pr];
    /* Providers without FI_MR_VIRT_ADDR (tcp;ofi_rxm) take offsets into
     * the registration; the target's provider bounds them by its length. */
    op->raddr = (rm->k.flags & EFAB_RKEY_VIRT) ? s->remote_addr : s->remote_addr - rm->k.base;
    op->peer = peer;
    op->prail = pr;
    op->deadline_ms = now + ctx->cfg.timeout_ms;
    op->not_before_ms = 0;
    op->retries = 0;
    op->probed = 0;
    op->probe_failed = 0;
    op->state = EFA_ST_QUEUED;
    list_add(&r->queued, op);
    r->last_submit_ns = now_ns;
    int wake = 0;
    if (r->queued.n == 1)
      post_queued(r, 0); /* straight to the provider when nothing waits */
    wake = r->queued.n > 0;
    pthread_mutex_unlock(&r->lock);
    if (wake && r->cq_wait)
      fi_cq_signal(r->cq);
  }
  *accepted = i;
  return (i == 0 && n > 0) ? MC_EAGAIN : 0;
}

/* Completes every op of `peer` now (disconnect): queued ones are freed,
 * posted ones abandoned until libfabric returns them. */
void efa_peer_cancel_all(efa_ctx *ctx, efa_peer *peer, int status) {
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    pthread_mutex_lock(&r->lock);
    for (efa_op *op = r->queued.head, *n; op; op = n) {
      n = op->next;
      if (op->peer == peer) {
        list_del(&r->queued, op);
        finish(r, op, status);
        op_free(r, op);
      }
    }
    for (efa_op *op = r->posted.head, *n; op; op = n) {
      n = op->next;
      if (op->peer == peer) {
        list_del(&r->posted, op);
        finish(r, op, status);
        op->state = EFA_ST_ABANDONED;
        op->peer = NULL;
        r->abandoned++;
      }
    }
    for (efa_op *op = r->probing.head, *n; op; op = n) {
      n = op->next;
      if (op->peer == peer) {
        list_del(&r->probing, op);
        finish(r, op, status);
        op_free(r, op);
      }
    }
    /* A probe of it still with the provider answers nobody. */
    for (uint32_t i = 0; i < EFA_SEND_SLOTS; i++)
      if (r->send_ops[i].peer == peer)
        r->send_ops[i].peer = NULL;
    pthread_mutex_unlock(&r->lock);
  }
}

/* Withdraws a slice still queued (not yet with the provider). */
int efa_cancel_token(efa_ctx *ctx, uint64_t token) {
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    pthread_mutex_lock(&r->lock);
    for (efa_op *op = r->queued.head; op; op = op->next)
      if (op->token == token) {
        list_del(&r->queued, op);
        finish(r, op, MC_ECANCELED);
        op_free(r, op);
        pthread_mutex_unlock(&r->lock);
        return 1;
      }
    pthread_mutex_unlock(&r->lock);
  }
  return 0;
}

/* fini, workers stopped: every op not yet completed to the core is now. */
void efa_fail_all(efa_ctx *ctx, int status) {
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    pthread_mutex_lock(&r->lock);
    while (r->queued.head) {
      efa_op *op = r->queued.head;
      list_del(&r->queued, op);
      finish(r, op, status);
      op_free(r, op);
    }
    while (r->posted.head) {
      efa_op *op = r->posted.head;
      list_del(&r->posted, op);
      finish(r, op, status);
      op->state = EFA_ST_ABANDONED;
    }
    while (r->probing.head) {
      efa_op *op = r->probing.head;
      list_del(&r->probing, op);
      finish(r, op, status);
      op_free(r, op);
    }
    pthread_mutex_unlock(&r->lock);
  }
}

int efa_workers_start(efa_ctx *ctx) {
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    r->ops = calloc(ctx->cfg.max_inflight, sizeof *r->ops);
    if (!r->ops)
      return MC_ENOMEM;
    for (uint32_t i = ctx->cfg.max_inflight; i-- > 0;)
      op_free(r, &r->ops[i]);
    int rc = efa_notify_post_recvs(r);
    if (rc)
      return rc;
    if (pthread_create(&r->thr, NULL, worker, r))
      return MC_ENOMEM;
    r->thr_started = 1;
  }
  if (pthread_create(&ctx->reap_thr, NULL, reaper, ctx))
    return MC_ENOMEM;
  ctx->reap_started = 1;
  return 0;
}

/* How long fini waits for a worker to come back from libfabric. */
#define STOP_WAIT_MS 3000

int efa_workers_stop(efa_ctx *ctx) {
  int rc = 0;
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (!r->thr_started)
      continue;
    if (r->cq_wait)
      fi_cq_signal(r->cq);
    /* A worker stuck for good inside a provider call (shm spinning on the
     * lock of a peer killed holding it) would hang fini: wait a bounded
     * time, then leave the thread and everything it may touch alone. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += STOP_WAIT_MS / 1000;
    pthread_mutex_lock(&r->lock);
    while (!r->exited)
      if (pthread_cond_timedwait(&r->cond, &r->lock, &ts))
        break;
    int exited = r->exited;
    pthread_mutex_unlock(&r->lock);
    if (exited) {
      pthread_join(r->thr, NULL);
    } else {
      EFA_LOG(ctx, MC_LOG_ERROR, "rail %s: worker stuck in a libfabric call for %d ms; "
              "its resources are left allocated", r->ri.name, STOP_WAIT_MS);
      pthread_detach(r->thr);
      ctx->wedged = 1;
      rc = MC_EBUSY;
    }
    r->thr_started = 0;
  }
  if (ctx->reap_started) {
    pthread_mutex_lock(&ctx->reap_lock);
    ctx->reap_stop = 1;
    pthread_cond_broadcast(&ctx->reap_cond);
    pthread_mutex_unlock(&ctx->reap_lock);
    pthread_join(ctx->reap_thr, NULL);
    ctx->reap_started = 0;
  }
  return rc;
}
