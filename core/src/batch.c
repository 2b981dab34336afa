/* Batches, requests and slices.
 *
 * A request is cut into slices of slice_size bytes, each sent on the best
 * candidate transport over a rail picked round robin.  Completions arrive
 * through the host API (any thread); a failed slice is retried by the
 * worker on another rail, then another transport, up to retry_count times.
 * Request and batch state are atomics, so status reads take no lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "net.h"

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

int mc_batch_create(mc_engine *e, uint32_t capacity, mc_batch **out) {
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
  b->engine = e;
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

static void req_set_error(mc_req *r, int err, int32_t vendor) {
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

static void req_slice_finished(mc_req *r) {
  if (atomic_fetch_sub(&r->remaining, 1) != 1)
    return;
  mc_notify_group *g = r->group;
  if (!g) {
    mc_req_finish(r);
    return;
  }
  if (atomic_fetch_sub(&g->remaining, 1) == 1) {
    mc_job *j = calloc(1, sizeof *j);
    if (j) {
      j->kind = MC_JOB_NOTIFY;
      j->group = g;
      mc_worker_push(r->batch->engine, j);
    } else { /* cannot notify: fail the group rather than hang it */
      for (uint32_t i = 0; i < g->nreqs; i++) {
        req_set_error(g->reqs[i], MC_ENOMEM, 0);
        mc_req_finish(g->reqs[i]);
      }
      free(g->reqs);
      free(g);
    }
  }
}

void mc_slice_fail(mc_slice_rec *s, int err, int32_t vendor) {
  req_set_error(s->req, err, vendor);
  req_slice_finished(s->req);
}

static int retryable(int status) {
  return status == MC_EPEER || status == MC_EIO || status == MC_ETIMEDOUT ||
         status == MC_EAGAIN || status == MC_ENODEV;
}

void mc_batch_slice_done(mc_slice_rec *s, int status, uint64_t bytes,
                         int32_t vendor) {
  mc_req *r = s->req;
  mc_engine *e = r->batch->engine;
  mc_slice_account(e, s, -1);
  if (status == 0) {
    atomic_fetch_add(&r->bytes, bytes);
    req_slice_finished(r);
  } else if (retryable(status) && s->attempts < e->cfg->retry_count &&
             !atomic_load(&r->batch->canceled)) {
    mc_transport *t = e->transports[s->transport];
    mc_rails_mark_down(t, s->rail);
    MC_DEBUG(&e->log, COMP, "slice %p of %s failed on %s rail %u: %s; retrying",
             (void *)s, r->view->desc->name, t->plugin->name, s->rail,
             mc_strerror(status));
    mc_job *j = calloc(1, sizeof *j);
    if (!j) {
      mc_slice_fail(s, status, vendor);
      return;
    }
    j->kind = MC_JOB_RETRY;
    j->slice = s;
    /* Short growing pause so a flapping peer is not hammered. */
    j->not_before_ms = mc_now_ms() + 2u * (s->attempts + 1);
    atomic_store(&r->vendor, vendor);
    mc_worker_push(e, j);
  } else {
    /* The target refused the key or the range: its buffers changed since we
     * fetched its descriptor (unregistered, or the peer restarted).  The
     * next request refetches it. */
    if (status == MC_EACCES || status == MC_ERANGE)
      atomic_store(&r->view->seg->stale, 1);
    if (status != MC_ECANCELED)
      MC_DEBUG(&e->log, COMP, "slice of %s failed: %s (vendor %d), attempts %u",
               r->view->desc->name, mc_strerror(status), vendor, s->attempts);
    mc_slice_fail(s, status, vendor);
  }
  if (atomic_load(&e->backlog_waiting))
    mc_worker_kick(e);
}

void mc_slice_fill(const mc_slice_rec *s, void *rmem, mc_slice *out) {
  const mc_req *r = s->req;
  out->token = (uint64_t)(uintptr_t)s;
  out->op = r->r.op;
  out->rail = s->rail;
  out->local_mem = r->lbuf->mem[s->transport];
  out->local_addr = (uint64_t)(uintptr_t)r->r.local + s->offset;
  out->remote_mem = rmem;
  out->remote_addr = r->r.remote + s->offset;
  out->len = s->len;
}

int mc_transport_submit(mc_transport *t, void *ep, const mc_slice *sl,
                        uint32_t n, uint32_t *accepted) {
  int mt = (t->ops->caps & MC_CAP_MT_SUBMIT) != 0;
  *accepted = 0;
  if (!mt)
    pthread_mutex_lock(&t->submit_lock);
  int rc = t->ops->submit(t->ctx, ep, sl, n, accepted);
  if (!mt)
    pthread_mutex_unlock(&t->submit_lock);
  if (*accepted > n) /* a plugin bug must not corrupt our counts */
    *accepted = n;
  return rc;
}

/* Submits n prepared slices of one request on transport t; what the plugin
 * does not take goes to its backlog.  Returns 0 or the routing error. */
static int send_run(mc_engine *e, mc_transport *t, mc_slice_rec **recs,
                    uint32_t n) {
  void *ep, *rmem;
  int rc = mc_view_route(recs[0]->req->view, t, recs[0]->req->rbuf, &ep, &rmem);
  if (rc)
    return rc;
  mc_slice sl[SUBMIT_CHUNK];
  uint32_t done = 0;
  if (atomic_load(&t->backlog_len) == 0) {
    while (done < n) {
      uint32_t k = n - done < SUBMIT_CHUNK ? n - done : SUBMIT_CHUNK;
      for (uint32_t i = 0; i < k; i++)
        mc_slice_fill(recs[done + i], rmem, &sl[i]);
      uint32_t acc = 0;
      /* Counted before the call: completions may arrive inside it. */
      for (uint32_t i = 0; i < k; i++)
        mc_slice_account(e, recs[done + i], 1);
      rc = mc_transport_submit(t, ep, sl, k, &acc);
      for (uint32_t i = acc; i < k; i++)
        mc_slice_account(e, recs[done + i], -1);
      done += acc;
      if (acc < k) {
        if (rc && rc != MC_EAGAIN && acc == 0) {
          /* Endpoint unusable: fail these through the retry path. */
          for (uint32_t i = done; i < n; i++) {
            mc_slice_account(e, recs[i], 1);
            mc_batch_slice_done(recs[i], rc, 0, 0);
          }
          return 0;
        }
        break;
      }
    }
  }
  if (done < n) {
    uint64_t now = mc_now_ms();
    for (uint32_t i = done; i < n; i++) {
      recs[i]->queued_ms = now;
      recs[i]->next = i + 1 < n ? recs[i + 1] : NULL;
    }
    mc_backlog_push(t, recs[done]);
  }
  return 0;
}

int mc_slice_send(mc_engine *e, mc_slice_rec *s) {
  mc_transport *t = e->transports[s->transport];
  s->next = NULL;
  return send_run(e, t, &s, 1);
}

void mc_slice_retry(mc_engine *e, mc_slice_rec *s) {
  mc_req *r = s->req;
  if (atomic_load(&r->batch->canceled)) {
    mc_slice_fail(s, MC_ECANCELED, 0);
    return;
  }
  s->attempts++;
  int pos = 0;
  while (pos < r->ncand && r->tcand[pos] != s->transport)
    pos++;
  /* Every other retry moves on to the next transport, if there is one. */
  uint32_t avoid = s->rail;
  if (r->ncand > 1 && (s->attempts % 2) == 0) {
    s->transport = r->tcand[(pos + 1) % r->ncand];
    avoid = UINT32_MAX;
  }
  mc_transport *t = e->transports[s->transport];
  s->rail = (uint32_t)mc_rails_pick(t, r->lbuf, avoid);
  atomic_store(&r->transport_used, s->transport);
  int rc = mc_slice_send(e, s);
  if (rc) {
    mc_slice_account(e, s, 1);
    mc_batch_slice_done(s, rc, 0, 0);
  }
}

static void mark_invalid(mc_req *r, int err, const char *why) {
  mc_engine *e = r->batch->engine;
  atomic_store(&r->error, err);
  atomic_store(&r->state, MC_XFER_INVALID);
  MC_DEBUG(&e->log, COMP, "request %u rejected: %s: %s", r->index, why,
           mc_strerror(err));
}

/* Validates and prepares request r; returns 1 if it is now PENDING. */
static int req_prepare(mc_batch *b, mc_req *r) {
  mc_engine *e = b->engine;
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
  r->lbuf = mc_registry_acquire(e, la, q->len);
  if (!r->lbuf) {
    MC_WARN(&e->log, COMP, "request %u: local range 0x%llx+%llu is not registered memory",
            r->index, (unsigned long long)la, (unsigned long long)q->len);
    mark_invalid(r, MC_ERANGE, "local range not registered");
    return 0;
  }
  int err = 0;
  r->view = mc_segment_view_for(q->segment, q->remote, q->len, &r->rbuf, &err);
  if (!r->view) {
    if (err == MC_ERANGE)
      MC_WARN(&e->log, COMP,
              "request %u: remote range 0x%llx+%llu is outside every buffer of segment %s",
              r->index, (unsigned long long)q->remote, (unsigned long long)q->len,
              q->segment->name);
    mc_registry_release(r->lbuf);
    r->lbuf = NULL;
    mark_invalid(r, err, "remote range not in segment");
    return 0;
  }
  if (mc_rails_candidates(e, r)) {
    MC_WARN(&e->log, COMP,
            "request %u: no loaded transport can %s %s memory of segment %s from %s",
            r->index, q->op == MC_OP_READ ? "read" : "write",
            r->view->same_host ? "same-host" : "remote", q->segment->name,
            r->lbuf->location);
    mc_registry_release(r->lbuf);
    mc_view_put(r->view);
    r->lbuf = NULL;
    r->view = NULL;
    mark_invalid(r, MC_ENOTSUP, "no transport");
    return 0;
  }
  uint64_t ss = e->transports[r->tcand[0]]->slice_size;
  uint64_t ns = (q->len + ss - 1) / ss;
  r->slices = calloc(ns, sizeof *r->slices);
  if (!r->slices) {
    mc_registry_release(r->lbuf);
    mc_view_put(r->view);
    r->lbuf = NULL;
    r->view = NULL;
    mark_invalid(r, MC_ENOMEM, "slice table");
    return 0;
  }
  r->nslices = (uint32_t)ns;
  atomic_store(&r->remaining, (uint32_t)ns);
  int t0 = r->tcand[0];
  atomic_store(&r->transport_used, t0);
  mc_transport *t = e->transports[t0];
  for (uint64_t i = 0; i < ns; i++) {
    mc_slice_rec *s = &r->slices[i];
    s->req = r;
    s->offset = i * ss;
    s->len = q->len - s->offset < ss ? q->len - s->offset : ss;
    s->transport = t0;
    s->rail = (uint32_t)mc_rails_pick(t, r->lbuf, UINT32_MAX);
  }
  atomic_store(&r->state, MC_XFER_PENDING);
  atomic_fetch_add(&b->pending, 1);
  return 1;
}

static void req_start(mc_req *r) {
  mc_engine *e = r->batch->engine;
  mc_transport *t = e->transports[r->slices[0].transport];
  /* Snapshot: completions may finish (and free) the request while we
   * are still submitting its later slices. */
  uint32_t n = r->nslices;
  mc_slice_rec *base = r->slices;
  mc_slice_rec *run[SUBMIT_CHUNK];
  for (uint32_t i = 0; i < n;) {
    uint32_t k = n - i < SUBMIT_CHUNK ? n - i : SUBMIT_CHUNK;
    for (uint32_t j = 0; j < k; j++)
      run[j] = &base[i + j];
    i += k;
    int rc = send_run(e, t, run, k);
    if (rc) {
      /* No route (peer down): every unsent slice goes the retry path. */
      for (uint32_t j = 0; j < k; j++) {
        mc_slice_account(e, run[j], 1);
        mc_batch_slice_done(run[j], rc, 0, 0);
      }
    }
  }
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
        MC_WARN(&b->engine->log, COMP,
                "notification not sent: a request of its batch was invalid");
    }
    for (uint32_t i = 0; g && i < k; i++)
      g->reqs[i]->group = g;
  }
  for (uint32_t i = 0; i < n; i++) {
    mc_req *r = &b->reqs[first + i];
    if (atomic_load(&r->state) == MC_XFER_PENDING)
      req_start(r);
  }
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
  if (t >= 0 && t < b->engine->ntransports)
    snprintf(st->transport, sizeof st->transport, "%.31s",
             b->engine->transports[t]->plugin->name);
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
  mc_engine *e = b->engine;
  atomic_store(&b->canceled, 1);
  if (atomic_load(&b->pending) > 0) {
    /* Best effort: ask the transports to drop what is still queued.  No
     * lock is held: a plugin may complete the slice inside cancel(). */
    uint32_t n = atomic_load(&b->count);
    for (int t = 0; t < e->ntransports; t++) {
      mc_transport *tr = e->transports[t];
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
    mc_worker_kick(e);
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
    free(b->reqs[i].slices);
  free(b->reqs);
  free(b);
}

int mc_transfer_sync(mc_engine *e, const mc_request *reqs, uint32_t n,
                     int timeout_ms) {
  if (!e || !reqs || n == 0)
    return MC_EINVAL;
  mc_batch *b;
  int rc = mc_batch_create(e, n, &b);
  if (rc)
    return rc;
  rc = mc_batch_submit(b, reqs, n);
  if (!rc)
    rc = mc_batch_wait(b, timeout_ms);
  mc_batch_destroy(b);
  return rc;
}
