/* Slices (pipeline.h): sending on a transport's rails, completion, retry on
 * another rail or transport, back-pressure backlogs, notifications after
 * their writes landed, and the job queue hooks that drain the backlogs and
 * drive progress().  Everything that calls into a plugin outside submit
 * runs on the job queue's worker, never in a completion callback (which may
 * not re-enter the plugin). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "pipeline_p.h"
#include "rails.h"

#define COMP "batch"
#define SUBMIT_CHUNK 64
#define DRAIN_CHUNK 64

int mc_pipeline_create(mc_tset *set, mc_registry *reg, mc_jobq *jobs,
                       const mc_config *cfg, mc_pipeline **out) {
  mc_pipeline *p = calloc(1, sizeof *p);
  if (!p)
    return MC_ENOMEM;
  p->set = set;
  p->reg = reg;
  p->jobs = jobs;
  p->cfg = cfg;
  p->log = set->log;
  for (int i = 0; i < MC_MAX_TRANSPORTS; i++)
    pthread_mutex_init(&p->backlog[i].lock, NULL);
  for (int i = 0; i < set->n; i++)
    if (set->t[i]->ops->progress)
      p->progress_needed = 1;
  *out = p;
  return 0;
}

void mc_pipeline_destroy(mc_pipeline *p) {
  if (!p)
    return;
  for (int i = 0; i < MC_MAX_TRANSPORTS; i++)
    pthread_mutex_destroy(&p->backlog[i].lock);
  free(p);
}

int64_t mc_pipeline_inflight(const mc_pipeline *p) {
  return p ? atomic_load(&p->inflight) : 0;
}

void mc_slice_fail(mc_slice_rec *s, int err, int32_t vendor) {
  mc_req_set_error(s->req, err, vendor);
  mc_req_slice_finished(s->req);
}

static int retryable(int status) {
  return status == MC_EPEER || status == MC_EIO || status == MC_ETIMEDOUT ||
         status == MC_EAGAIN || status == MC_ENODEV;
}

static void slice_retry(mc_pipeline *e, mc_slice_rec *s);

static void retry_job(void *arg, int why) {
  mc_slice_rec *s = arg;
  if (why != MC_JOB_RUN) /* shutting down: nothing is retried any more */
    mc_slice_fail(s, MC_ECANCELED, 0);
  else
    slice_retry(s->req->batch->pipe, s);
}

void mc_slice_done(mc_slice_rec *s, int status, uint64_t bytes, int32_t vendor) {
  mc_req *r = s->req;
  mc_pipeline *e = r->batch->pipe;
  mc_slice_account(e, s, -1);
  if (status == 0) {
    atomic_fetch_add(&r->bytes, bytes);
    mc_req_slice_finished(r);
  } else if (retryable(status) && s->attempts < e->cfg->retry_count &&
             !atomic_load(&r->batch->canceled)) {
    mc_transport *t = e->set->t[s->transport];
    mc_rails_mark_down(t, s->rail);
    MC_DEBUG(e->log, COMP, "slice %p of %s failed on %s rail %u: %s; retrying",
             (void *)s, mc_view_desc(r->view)->name, t->plugin->name, s->rail,
             mc_strerror(status));
    atomic_store(&r->vendor, vendor);
    /* Short growing pause so a flapping peer is not hammered. */
    if (mc_jobq_push(e->jobs, retry_job, s, 2u * (s->attempts + 1)))
      mc_slice_fail(s, status, vendor);
  } else {
    /* The target refused the key or the range: its buffers changed since we
     * fetched its descriptor (unregistered, or the peer restarted).  The
     * next request refetches it. */
    if (status == MC_EACCES || status == MC_ERANGE)
      mc_view_mark_stale(r->view);
    if (status != MC_ECANCELED)
      MC_DEBUG(e->log, COMP, "slice of %s failed: %s (vendor %d), attempts %u",
               mc_view_desc(r->view)->name, mc_strerror(status), vendor, s->attempts);
    mc_slice_fail(s, status, vendor);
  }
  if (atomic_load(&e->backlog_waiting))
    mc_jobq_kick(e->jobs);
}

void mc_pipeline_complete(uint64_t token, int status, uint64_t bytes,
                          int32_t vendor) {
  mc_slice_done((mc_slice_rec *)(uintptr_t)token, status, bytes, vendor);
}

/* Builds the ABI slice for s on its current transport and rail. */
static void slice_fill(const mc_slice_rec *s, void *rmem, mc_slice *out) {
  const mc_req *r = s->req;
  out->token = (uint64_t)(uintptr_t)s;
  out->op = r->r.op;
  out->rail = s->rail;
  out->local_mem = mc_lbuf_mem(r->lbuf, s->transport);
  out->local_addr = (uint64_t)(uintptr_t)r->r.local + s->offset;
  out->remote_mem = rmem;
  out->remote_addr = r->r.remote + s->offset;
  out->len = s->len;
}

/* Queues slices first..last (linked) the plugin did not accept. */
static void backlog_push(mc_pipeline *e, mc_transport *t, mc_slice_rec *first) {
  mc_backlog *bl = &e->backlog[t->index];
  mc_slice_rec *last = first;
  uint32_t n = 1;
  while (last->next) {
    last = last->next;
    n++;
  }
  pthread_mutex_lock(&bl->lock);
  if (bl->tail)
    bl->tail->next = first;
  else
    bl->head = first;
  bl->tail = last;
  atomic_fetch_add(&bl->len, n);
  pthread_mutex_unlock(&bl->lock);
  atomic_store(&e->backlog_waiting, 1);
  mc_jobq_kick(e->jobs);
}

static mc_slice_rec *backlog_take(mc_backlog *bl, uint32_t max) {
  pthread_mutex_lock(&bl->lock);
  mc_slice_rec *head = bl->head, *cur = head, *prev = NULL;
  uint32_t n = 0;
  while (cur && n < max) {
    prev = cur;
    cur = cur->next;
    n++;
  }
  if (prev)
    prev->next = NULL;
  bl->head = cur;
  if (!cur)
    bl->tail = NULL;
  atomic_fetch_sub(&bl->len, n);
  pthread_mutex_unlock(&bl->lock);
  return head;
}

static void backlog_return(mc_backlog *bl, mc_slice_rec *list) {
  if (!list)
    return;
  mc_slice_rec *last = list;
  uint32_t n = 1;
  while (last->next) {
    last = last->next;
    n++;
  }
  pthread_mutex_lock(&bl->lock);
  last->next = bl->head;
  bl->head = list;
  if (!bl->tail)
    bl->tail = last;
  atomic_fetch_add(&bl->len, n);
  pthread_mutex_unlock(&bl->lock);
}

/* Submits one chunk; what the plugin refuses outright fails through the
 * retry path.  Returns how many were accepted, or UINT32_MAX when the
 * endpoint is unusable (the rest were failed). */
static uint32_t submit_chunk(mc_pipeline *e, mc_transport *t, void *ep, void *rmem,
                             mc_slice_rec **recs, uint32_t k, uint32_t n) {
  mc_slice sl[SUBMIT_CHUNK];
  for (uint32_t i = 0; i < k; i++)
    slice_fill(recs[i], rmem, &sl[i]);
  uint32_t acc = 0;
  /* Counted before the call: completions may arrive inside it. */
  for (uint32_t i = 0; i < k; i++)
    mc_slice_account(e, recs[i], 1);
  int rc = mc_transport_submit(t, ep, sl, k, &acc);
  for (uint32_t i = acc; i < k; i++)
    mc_slice_account(e, recs[i], -1);
  if (acc < k && rc && rc != MC_EAGAIN && acc == 0) {
    /* Endpoint unusable: fail these (and the rest) through the retry path. */
    for (uint32_t i = 0; i < n; i++) {
      mc_slice_account(e, recs[i], 1);
      mc_slice_done(recs[i], rc, 0, 0);
    }
    return UINT32_MAX;
  }
  return acc;
}

int mc_slices_send(mc_pipeline *e, mc_transport *t, mc_slice_rec **recs,
                   uint32_t n) {
  void *ep, *rmem;
  int rc = mc_view_route(recs[0]->req->view, t, recs[0]->req->rbuf, &ep, &rmem);
  if (rc)
    return rc;
  uint32_t done = 0;
  if (atomic_load(&e->backlog[t->index].len) == 0) {
    while (done < n) {
      uint32_t k = n - done < SUBMIT_CHUNK ? n - done : SUBMIT_CHUNK;
      uint32_t acc = submit_chunk(e, t, ep, rmem, recs + done, k, n - done);
      if (acc == UINT32_MAX)
        return 0;
      done += acc;
      if (acc < k)
        break;
    }
  }
  if (done < n) {
    uint64_t now = mc_now_ms();
    for (uint32_t i = done; i < n; i++) {
      recs[i]->queued_ms = now;
      recs[i]->next = i + 1 < n ? recs[i + 1] : NULL;
    }
    backlog_push(e, t, recs[done]);
  }
  return 0;
}

static void slice_retry(mc_pipeline *e, mc_slice_rec *s) {
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
  mc_transport *t = e->set->t[s->transport];
  s->rail = (uint32_t)mc_rails_pick(t, mc_lbuf_rank(r->lbuf, s->transport), avoid);
  atomic_store(&r->transport_used, s->transport);
  s->next = NULL;
  int rc = mc_slices_send(e, t, &s, 1);
  if (rc) {
    mc_slice_account(e, s, 1);
    mc_slice_done(s, rc, 0, 0);
  }
}

/* Tries to hand t's backlogged slices to the plugin.  Returns 1 if some
 * backlog remains (the plugin is still pushing back). */
static int drain_backlog(mc_pipeline *e, mc_transport *t, int stopping) {
  mc_backlog *bl = &e->backlog[t->index];
  uint64_t now = mc_now_ms();
  while (atomic_load(&bl->len) > 0) {
    mc_slice_rec *list = backlog_take(bl, DRAIN_CHUNK);
    while (list) {
      mc_slice_rec *s = list;
      list = s->next;
      s->next = NULL;
      mc_req *r = s->req;
      if (stopping || atomic_load(&r->batch->canceled)) {
        mc_slice_fail(s, MC_ECANCELED, 0);
        continue;
      }
      if (now - s->queued_ms > e->cfg->timeout_ms) {
        mc_slice_fail(s, MC_ETIMEDOUT, 0);
        continue;
      }
      void *ep, *rmem;
      int rc = mc_view_route(r->view, t, r->rbuf, &ep, &rmem);
      if (rc) {
        mc_slice_account(e, s, 1);
        mc_slice_done(s, rc, 0, 0);
        continue;
      }
      mc_slice sl;
      slice_fill(s, rmem, &sl);
      uint32_t acc = 0;
      mc_slice_account(e, s, 1);
      rc = mc_transport_submit(t, ep, &sl, 1, &acc);
      if (acc == 1)
        continue;
      if (rc && rc != MC_EAGAIN) {
        mc_slice_done(s, rc, 0, 0);
        continue;
      }
      mc_slice_account(e, s, -1);
      s->next = list; /* still pushing back: keep order, try later */
      backlog_return(bl, s);
      return 1;
    }
  }
  return 0;
}

/* Order in which to try transports for a group's notification: the one
 * that carried the data, the other candidates, then any the peer has. */
static int notify_order(mc_pipeline *e, const mc_req *r, int *order) {
  int used = atomic_load(&r->transport_used);
  int n = 0;
  if (used >= 0)
    order[n++] = used;
  for (int i = 0; i < r->ncand; i++)
    if (r->tcand[i] != used)
      order[n++] = r->tcand[i];
  for (int i = 0; i < e->set->n && n < MC_MAX_TRANSPORTS; i++) {
    int seen = 0;
    for (int j = 0; j < n; j++)
      seen |= order[j] == i;
    if (!seen && mc_view_desc_tidx(r->view, i) >= 0)
      order[n++] = i;
  }
  return n;
}

static int send_notify(mc_pipeline *e, mc_notify_group *g) {
  mc_req *r = g->reqs[0];
  int order[MC_MAX_TRANSPORTS + 1];
  int n = notify_order(e, r, order), rc = MC_ENOTSUP;
  int where = mc_view_same_host(r->view) ? MC_CAP_INTRA_NODE : MC_CAP_INTER_NODE;
  for (int i = 0; i < n && rc; i++) {
    mc_transport *t = e->set->t[order[i]];
    if (!(t->ops->caps & MC_CAP_NOTIFY) || !t->ops->send_notify)
      continue;
    if (!(t->ops->caps & where))
      continue;
    void *ep, *rmem;
    rc = mc_view_route(r->view, t, r->rbuf, &ep, &rmem);
    if (rc)
      continue;
    pthread_mutex_lock(&t->ctl_lock);
    rc = t->ops->send_notify(t->ctx, ep, g->msg, g->len);
    pthread_mutex_unlock(&t->ctl_lock);
  }
  if (rc) {
    MC_WARN(e->log, COMP, "notification to %s failed: %s",
            mc_view_desc(r->view)->name, mc_strerror(rc));
    for (uint32_t i = 0; i < g->nreqs; i++) {
      int32_t zero = 0;
      atomic_compare_exchange_strong(&g->reqs[i]->error, &zero, rc);
    }
  }
  return rc;
}

static void group_finish(mc_notify_group *g) {
  for (uint32_t i = 0; i < g->nreqs; i++)
    mc_req_finish(g->reqs[i]);
  free(g->reqs);
  free(g);
}

static void notify_job(void *arg, int why) {
  mc_notify_group *g = arg;
  if (why == MC_JOB_DROPPED) { /* the queue is gone: finish unsent */
    group_finish(g);
    return;
  }
  int rc = 0;
  for (uint32_t i = 0; i < g->nreqs && !rc; i++)
    rc = atomic_load(&g->reqs[i]->error);
  if (!rc)
    send_notify(g->reqs[0]->batch->pipe, g);
  group_finish(g);
}

void mc_notify_group_queue(mc_pipeline *p, mc_notify_group *g) {
  if (mc_jobq_push(p->jobs, notify_job, g, 0) == 0)
    return;
  /* cannot notify: fail the group rather than hang it */
  for (uint32_t i = 0; i < g->nreqs; i++)
    mc_req_set_error(g->reqs[i], MC_ENOMEM, 0);
  group_finish(g);
}

static int any_backlog(const mc_pipeline *e) {
  for (int i = 0; i < e->set->n; i++)
    if (atomic_load(&e->backlog[i].len))
      return 1;
  return 0;
}

static int hook_busy(void *arg) {
  mc_pipeline *e = arg;
  return any_backlog(e) || (e->progress_needed && atomic_load(&e->inflight) > 0);
}

static int hook_poll(void *arg, int stopping) {
  mc_pipeline *e = arg;
  int pushing_back = 0;
  for (int i = 0; i < e->set->n; i++)
    pushing_back |= drain_backlog(e, e->set->t[i], stopping);
  int more = any_backlog(e);
  atomic_store(&e->backlog_waiting, more);
  int progressed = 0;
  for (int i = 0; i < e->set->n; i++) {
    mc_transport *t = e->set->t[i];
    if (t->ops->progress && atomic_load(&e->inflight) > 0) {
      int n = t->ops->progress(t->ctx, 256);
      progressed += n > 0 ? n : 0;
    }
  }
  return (more ? MC_JOBQ_MORE : 0) | (pushing_back ? MC_JOBQ_PUSHBACK : 0) |
         (progressed ? MC_JOBQ_PROGRESSED : 0) |
         (e->progress_needed ? MC_JOBQ_SPIN : 0);
}

mc_jobq_hooks mc_pipeline_hooks(mc_pipeline *p) {
  return (mc_jobq_hooks){.busy = hook_busy, .poll = hook_poll, .arg = p};
}
