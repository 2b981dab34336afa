/* Batches and requests (pipeline.h): validation, transport choice,
 * slicing, status and waiting.
 *
 * A request is cut into slices of slice_size bytes, each sent on the best
 * candidate transport over a rail picked round robin (slices.c).
 * Completions arrive through the host API (any thread); a failed slice is
 * retried on the job queue on another rail, then another transport, up to
 * retry_count times.  Request and batch state are atomics, so status reads
 * take no lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"
#include "pipeline_p.h"
#include "rails.h"

#define COMP "batch"
#define SUBMIT_CHUNK 64

static int state_error(uint32_t st, int32_t err) {
  switch (st) {
  case MC_XFER_COMPLETED: return 0;
  case MC_XFER_TIMEOUT: return MC_ETIMEDOUT;
  case MC_XFER_CANCELED: return MC_ECANCELED;
  default: return err ? err : MC_EIO;
  }
}

int mc_pipeline_batch_create(mc_pipeline *e, uint32_t capacity, mc_batch **out) {
  if (!e || !out || capacity == 0 || capacity > (1u << 24))
    return MC_EINVAL;
  mc_batch *b = calloc(1, sizeof *b);
  if (!b)
    return MC_ENOMEM;
  b->reqs = calloc(capacity, sizeof *b->reqs);
  if (!b->reqs) {
    free(b);
    return MC_ENOMEM;
  }
  b->pipe = e;
  b->capacity = capacity;
  pthread_mutex_init(&b->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cond, &ca);
  pthread_condattr_destroy(&ca);
  *out = b;
  return 0;
}

uint32_t mc_batch_size(const mc_batch *b) { return b ? atomic_load(&b->count) : 0; }

void mc_req_set_error(mc_req *r, int err, int32_t vendor) {
  int32_t zero = 0;
  if (atomic_compare_exchange_strong(&r->error, &zero, err))
    atomic_store(&r->vendor, vendor);
}

void mc_req_finish(mc_req *r) {
  int32_t err = atomic_load(&r->error);
  uint32_t st = err == 0                ? MC_XFER_COMPLETED
                : err == MC_ETIMEDOUT   ? MC_XFER_TIMEOUT
                : err == MC_ECANCELED   ? MC_XFER_CANCELED
                                        : MC_XFER_FAILED;
  mc_registry_release(r->lbuf);
  mc_view_put_async(r->view); /* may run on a plugin thread */
  r->lbuf = NULL;
  r->view = NULL;
  /* r->slices stays until mc_batch_destroy: slice tokens must not be
   * reused by another allocation while a cancel may still name them. */
  atomic_store(&r->state, st);
  mc_batch *b = r->batch;
  /* Under the lock: once pending reads 0 the waiter may free the batch. */
  pthread_mutex_lock(&b->lock);
  if (atomic_fetch_sub(&b->pending, 1) == 1)
    pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->lock);
}

void mc_req_slice_finished(mc_req *r) {
  if (atomic_fetch_sub(&r->remaining, 1) != 1)
    return;
  mc_notify_group *g = r->group;
  if (!g) {
    mc_req_finish(r);
    return;
  }
  if (atomic_fetch_sub(&g->remaining, 1) == 1)
    mc_notify_group_queue(r->batch->pipe, g);
}

/* Fills req->tcand with the usable transports for the request, best first:
 * among the transports loaded here and published by the peer, those whose
 * caps cover the operation, both memory kinds and the peer's placement
 * (same host or not). */
static int candidates(mc_pipeline *e, mc_req *req) {
  const mc_seg_view *v = req->view;
  const mc_desc_buffer *rb = &mc_view_desc(v)->buffers[req->rbuf];
  uint64_t need = req->r.op == MC_OP_READ ? MC_CAP_READ : MC_CAP_WRITE;
  uint64_t where = mc_view_same_host(v) ? MC_CAP_INTRA_NODE : MC_CAP_INTER_NODE;
  req->ncand = 0;
  for (int i = 0; i < e->set->n; i++) {
    mc_transport *t = e->set->t[i];
    int dti = mc_view_desc_tidx(v, i);
    if (dti < 0 || !mc_lbuf_mem(req->lbuf, i))
      continue;
    const mc_transport_ops *o = t->ops;
    if ((o->caps & need) != need || !(o->caps & where))
      continue;
    if (!(o->local_mem_kinds & mc_lbuf_kind(req->lbuf)) ||
        !(o->remote_mem_kinds & rb->kind))
      continue;
    int has_key = 0;
    for (uint32_t k = 0; k < rb->nkeys; k++)
      has_key |= (int)rb->keys[k].transport == dti;
    if (!has_key)
      continue;
    req->tcand[req->ncand++] = i; /* transports are sorted by rank */
  }
  /* The first candidate may be unable to reach this buffer from this host
   * at all (nvmeof: a file on another host that is no NVMe-oF namespace
   * connected here; its import_mem says MC_ENODEV): the next one (tcp,
   * served by the target) carries the request instead.  Asked only when
   * there is a next one; the answer is remembered per view. */
  while (req->ncand > 1) {
    void *ep, *rmem;
    if (mc_view_route(req->view, e->set->t[req->tcand[0]], req->rbuf, &ep, &rmem) !=
        MC_ENODEV)
      break;
    memmove(req->tcand, req->tcand + 1, (size_t)(req->ncand - 1) * sizeof req->tcand[0]);
    req->ncand--;
  }
  return req->ncand ? 0 : MC_ENOTSUP;
}

static void mark_invalid(mc_req *r, int err, const char *why) {
  mc_pipeline *e = r->batch->pipe;
  atomic_store(&r->error, err);
  atomic_store(&r->state, MC_XFER_INVALID);
  MC_DEBUG(e->log, COMP, "request %u rejected: %s: %s", r->index, why,
           mc_strerror(err));
}

/* Cuts r into slices of its first candidate's slice size, each on a rail
 * of that transport; MC_ENOMEM. */
static int req_slice(mc_pipeline *e, mc_req *r) {
  const mc_request *q = &r->r;
  uint64_t ss = e->set->t[r->tcand[0]]->slice_size;
  uint64_t ns = (q->len + ss - 1) / ss;
  r->slices = ns == 1 ? &r->one : calloc(ns, sizeof *r->slices);
  if (!r->slices)
    return MC_ENOMEM;
  r->nslices = (uint32_t)ns;
  atomic_store(&r->remaining, (uint32_t)ns);
  int t0 = r->tcand[0];
  atomic_store(&r->transport_used, t0);
  mc_transport *t = e->set->t[t0];
  const mc_rail_rank *rank = mc_lbuf_rank(r->lbuf, t0);
  for (uint64_t i = 0; i < ns; i++) {
    mc_slice_rec *s = &r->slices[i];
    s->req = r;
    s->offset = i * ss;
    s->len = q->len - s->offset < ss ? q->len - s->offset : ss;
    s->transport = t0;
    s->rail = (uint32_t)mc_rails_pick(t, rank, UINT32_MAX);
  }
  return 0;
}

/* Validates and prepares request r; returns 1 if it is now PENDING. */
static int req_prepare(mc_batch *b, mc_req *r) {
  mc_pipeline *e = b->pipe;
  const mc_request *q = &r->r;
  atomic_store(&r->transport_used, -1);
  if (q->op != MC_OP_READ && q->op != MC_OP_WRITE) {
    mark_invalid(r, MC_EINVAL, "op must be MC_OP_READ or MC_OP_WRITE");
    return 0;
  }
  if (!q->segment || !q->local) {
    mark_invalid(r, MC_EINVAL, "NULL segment or local address");
    return 0;
  }
  if (q->len == 0) {
    atomic_store(&r->state, MC_XFER_COMPLETED);
    return 0;
  }
  uint64_t la = (uint64_t)(uintptr_t)q->local;
  if (q->remote + q->len < q->remote || la + q->len < la) {
    mark_invalid(r, MC_ERANGE, "address range wraps");
    return 0;
  }
  r->lbuf = mc_registry_acquire(e->reg, la, q->len);
  if (!r->lbuf) {
    MC_WARN(e->log, COMP, "request %u: local range 0x%llx+%llu is not registered memory",
            r->index, (unsigned long long)la, (unsigned long long)q->len);
    mark_invalid(r, MC_ERANGE, "local range not registered");
    return 0;
  }
  int err = 0;
  r->view = mc_segment_view_for(q->segment, q->remote, q->len, &r->rbuf, &err);
  if (!r->view) {
    if (err == MC_ERANGE)
      MC_WARN(e->log, COMP,
              "request %u: remote range 0x%llx+%llu is outside every buffer of segment %s",
              r->index, (unsigned long long)q->remote, (unsigned long long)q->len,
              mc_segment_name(q->segment));
    mc_registry_release(r->lbuf);
    r->lbuf = NULL;
    mark_invalid(r, err, "remote range not in segment");
    return 0;
  }
  if (candidates(e, r)) {
    MC_WARN(e->log, COMP,
            "request %u: no loaded transport can %s %s memory of segment %s from %s",
            r->index, q->op == MC_OP_READ ? "read" : "write",
            mc_view_same_host(r->view) ? "same-host" : "remote",
            mc_segment_name(q->segment), mc_lbuf_location(r->lbuf));
    mc_registry_release(r->lbuf);
    mc_view_put(r->view);
    r->lbuf = NULL;
    r->view = NULL;
    mark_invalid(r, MC_ENOTSUP, "no transport");
    return 0;
  }
  if (req_slice(e, r)) {
    mc_registry_release(r->lbuf);
    mc_view_put(r->view);
    r->lbuf = NULL;
    r->view = NULL;
    mark_invalid(r, MC_ENOMEM, "slice table");
    return 0;
  }
  atomic_store(&r->state, MC_XFER_PENDING);
  atomic_fetch_add(&b->pending, 1);
  return 1;
}

/* Hands run[0..k) to the plugin; what cannot be routed fails through the
 * retry path. */
static void run_send(mc_pipeline *e, mc_transport *t, mc_slice_rec **run, uint32_t k) {
  int rc = mc_slices_send(e, t, run, k);
  if (rc) {
    /* No route (peer down): every unsent slice goes the retry path. */
    for (uint32_t j = 0; j < k; j++) {
      mc_slice_account(e, run[j], 1);
      mc_slice_done(run[j], rc, 0, 0);
    }
  }
}

/* Starts the slices of the pending requests among [first, first+n).
 * Consecutive requests for the same transport and remote buffer go to the
 * plugin together, SUBMIT_CHUNK slices per submit call: a batch of small
 * requests costs the plugin one call (and one wake-up of its thread) per
 * chunk rather than one per request.  A run's first slice is always still
 * unsent, so its request (whose view routes the run) cannot have finished;
 * a request's transport, view and buffer are read before any of its
 * slices is sent. */
static void reqs_start(mc_batch *b, uint32_t first, uint32_t n) {
  mc_pipeline *e = b->pipe;
  mc_slice_rec *run[SUBMIT_CHUNK];
  uint32_t k = 0;
  mc_transport *rt = NULL;
  const mc_seg_view *rv = NULL;
  long rbuf = 0;
  for (uint32_t i = 0; i < n; i++) {
    mc_req *r = &b->reqs[first + i];
    if (atomic_load(&r->state) != MC_XFER_PENDING)
      continue;
    uint32_t ns = r->nslices;
    mc_slice_rec *base = r->slices;
    mc_transport *t = e->set->t[base[0].transport];
    if (k && (t != rt || r->view != rv || r->rbuf != rbuf)) {
      run_send(e, rt, run, k);
      k = 0;
    }
    rt = t;
    rv = r->view;
    rbuf = r->rbuf;
    for (uint32_t j = 0; j < ns; j++) {
      if (k == SUBMIT_CHUNK) {
        run_send(e, rt, run, k);
        k = 0;
      }
      run[k++] = &base[j];
    }
  }
  if (k)
    run_send(e, rt, run, k);
}

static int submit_common(mc_batch *b, const mc_request *reqs, uint32_t n,
                         mc_notify_group *g) {
  uint32_t first = atomic_load(&b->count);
  if (n > b->capacity - first)
    return MC_ENOSPC;
  /* Prepare all first so a group's count is final before any completes. */
  int any_invalid = 0;
  for (uint32_t i = 0; i < n; i++) {
    mc_req *r = &b->reqs[first + i];
    memset(r, 0, sizeof *r);
    r->batch = b;
    r->index = first + i;
    r->r = reqs[i];
    if (g)
      g->reqs[i] = r;
  }
  for (uint32_t i = 0; i < n; i++) {
    mc_req *r = &b->reqs[first + i];
    int ok = req_prepare(b, r);
    any_invalid |= !ok && atomic_load(&r->state) != MC_XFER_COMPLETED;
  }
  atomic_store(&b->count, first + n);
  if (g) {
    /* Only live requests are held back; the message is dropped (and the
     * requests failed) when any of them was invalid. */
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
      if (atomic_load(&g->reqs[i]->state) == MC_XFER_PENDING)
        g->reqs[k++] = g->reqs[i];
    g->nreqs = k;
    atomic_store(&g->remaining, k);
    if (k == 0 || any_invalid) {
      free(g->reqs);
      free(g);
      g = NULL;
      if (any_invalid)
        MC_WARN(b->pipe->log, COMP,
                "notification not sent: a request of its batch was invalid");
    }
    for (uint32_t i = 0; g && i < k; i++)
      g->reqs[i]->group = g;
  }
  reqs_start(b, first, n);
  return 0;
}

int mc_batch_submit(mc_batch *b, const mc_request *reqs, uint32_t n) {
  if (!b || (!reqs && n))
    return MC_EINVAL;
  return submit_common(b, reqs, n, NULL);
}

int mc_batch_submit_notify(mc_batch *b, const mc_request *reqs, uint32_t n,
                           const void *msg, size_t len) {
  if (!b || !reqs || n == 0 || (!msg && len) || len > MC_NOTIFY_MAX)
    return MC_EINVAL;
  for (uint32_t i = 0; i < n; i++)
    if (reqs[i].op != MC_OP_WRITE || reqs[i].segment != reqs[0].segment)
      return MC_EINVAL;
  mc_notify_group *g = calloc(1, sizeof *g + len);
  if (!g)
    return MC_ENOMEM;
  g->reqs = calloc(n, sizeof *g->reqs);
  if (!g->reqs) {
    free(g);
    return MC_ENOMEM;
  }
  g->len = len;
  memcpy(g->msg, msg, len);
  int rc = submit_common(b, reqs, n, g);
  if (rc) {
    free(g->reqs);
    free(g);
  }
  return rc;
}

int mc_batch_status(mc_batch *b, uint32_t i, mc_transfer_status *st) {
  if (!b || !st || i >= atomic_load(&b->count))
    return MC_EINVAL;
  mc_req *r = &b->reqs[i];
  memset(st, 0, sizeof *st);
  st->state = atomic_load(&r->state);
  st->bytes = atomic_load(&r->bytes);
  st->error = st->state == MC_XFER_COMPLETED ? 0 : atomic_load(&r->error);
  if (st->state == MC_XFER_PENDING)
    st->error = 0;
  st->vendor_error = atomic_load(&r->vendor);
  int t = atomic_load(&r->transport_used);
  if (t >= 0 && t < b->pipe->set->n)
    snprintf(st->transport, sizeof st->transport, "%.31s",
             b->pipe->set->t[t]->plugin->name);
  return 0;
}

int mc_batch_wait(mc_batch *b, int timeout_ms) {
  if (!b)
    return MC_EINVAL;
  struct timespec ts;
  mc_deadline_ts(&ts, timeout_ms >= 0 ? (uint64_t)timeout_ms : 0);
  pthread_mutex_lock(&b->lock);
  while (atomic_load(&b->pending) > 0) {
    if (timeout_ms < 0)
      pthread_cond_wait(&b->cond, &b->lock);
    else if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) == ETIMEDOUT)
      break;
  }
  int pending = atomic_load(&b->pending) > 0;
  pthread_mutex_unlock(&b->lock);
  if (pending)
    return MC_ETIMEDOUT;
  uint32_t n = atomic_load(&b->count);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t st = atomic_load(&b->reqs[i].state);
    if (st != MC_XFER_COMPLETED)
      return state_error(st, atomic_load(&b->reqs[i].error));
  }
  return 0;
}

void mc_batch_destroy(mc_batch *b) {
  if (!b)
    return;
  mc_pipeline *e = b->pipe;
  atomic_store(&b->canceled, 1);
  if (atomic_load(&b->pending) > 0) {
    /* Best effort: ask the transports to drop what is still queued.  No
     * lock is held: a plugin may complete the slice inside cancel(). */
    uint32_t n = atomic_load(&b->count);
    for (int t = 0; t < e->set->n; t++) {
      mc_transport *tr = e->set->t[t];
      if (!tr->ops->cancel)
        continue;
      for (uint32_t i = 0; i < n; i++) {
        mc_req *r = &b->reqs[i];
        if (atomic_load(&r->state) != MC_XFER_PENDING)
          continue;
        for (uint32_t s = 0; s < r->nslices; s++)
          tr->ops->cancel(tr->ctx, (uint64_t)(uintptr_t)&r->slices[s]);
      }
    }
    mc_jobq_kick(e->jobs);
  }
  /* Transports complete every accepted slice (bounded by their timeouts). */
  pthread_mutex_lock(&b->lock);
  while (atomic_load(&b->pending) > 0)
    pthread_cond_wait(&b->cond, &b->lock);
  pthread_mutex_unlock(&b->lock);
  pthread_mutex_destroy(&b->lock);
  pthread_cond_destroy(&b->cond);
  uint32_t count = atomic_load(&b->count);
  for (uint32_t i = 0; i < count; i++)
    if (b->reqs[i].slices != &b->reqs[i].one)
      free(b->reqs[i].slices);
  free(b->reqs);
  free(b);
}
