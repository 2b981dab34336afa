/* The engine worker: one thread per engine that does what must not run
 * inside a plugin's completion callback (which may not re-enter the
 * plugin): retries, draining back-pressure backlogs, sending notifications
 * after their writes landed, and driving progress() for transports without
 * their own threads. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "net.h"

#define COMP "worker"
#define DRAIN_CHUNK 64

void mc_worker_kick(mc_engine *e) {
  pthread_mutex_lock(&e->job_lock);
  pthread_cond_signal(&e->job_cond);
  pthread_mutex_unlock(&e->job_lock);
}

void mc_worker_push(mc_engine *e, mc_job *job) {
  pthread_mutex_lock(&e->job_lock);
  if (e->stop) {
    pthread_mutex_unlock(&e->job_lock);
    /* Shutting down: nothing is retried or sent any more. */
    if (job->kind == MC_JOB_RETRY) {
      mc_slice_fail(job->slice, MC_ECANCELED, 0);
    } else if (job->kind == MC_JOB_VIEW) {
      mc_view_free(job->view);
    } else {
      mc_notify_group *g = job->group;
      for (uint32_t i = 0; i < g->nreqs; i++)
        mc_req_finish(g->reqs[i]);
      free(g->reqs);
      free(g);
    }
    free(job);
    return;
  }
  job->next = e->jobs;
  e->jobs = job;
  pthread_cond_signal(&e->job_cond);
  pthread_mutex_unlock(&e->job_lock);
}

void mc_backlog_push(mc_transport *t, mc_slice_rec *first) {
  mc_slice_rec *last = first;
  uint32_t n = 1;
  while (last->next) {
    last = last->next;
    n++;
  }
  pthread_mutex_lock(&t->backlog_lock);
  if (t->backlog_tail)
    t->backlog_tail->next = first;
  else
    t->backlog_head = first;
  t->backlog_tail = last;
  atomic_fetch_add(&t->backlog_len, n);
  pthread_mutex_unlock(&t->backlog_lock);
  atomic_store(&t->engine->backlog_waiting, 1);
  mc_worker_kick(t->engine);
}

static mc_slice_rec *backlog_take(mc_transport *t, uint32_t max) {
  pthread_mutex_lock(&t->backlog_lock);
  mc_slice_rec *head = t->backlog_head, *cur = head, *prev = NULL;
  uint32_t n = 0;
  while (cur && n < max) {
    prev = cur;
    cur = cur->next;
    n++;
  }
  if (prev)
    prev->next = NULL;
  t->backlog_head = cur;
  if (!cur)
    t->backlog_tail = NULL;
  atomic_fetch_sub(&t->backlog_len, n);
  pthread_mutex_unlock(&t->backlog_lock);
  return head;
}

static void backlog_return(mc_transport *t, mc_slice_rec *list) {
  if (!list)
    return;
  mc_slice_rec *last = list;
  uint32_t n = 1;
  while (last->next) {
    last = last->next;
    n++;
  }
  pthread_mutex_lock(&t->backlog_lock);
  last->next = t->backlog_head;
  t->backlog_head = list;
  if (!t->backlog_tail)
    t->backlog_tail = last;
  atomic_fetch_add(&t->backlog_len, n);
  pthread_mutex_unlock(&t->backlog_lock);
}

/* Tries to hand backlogged slices to the plugin.  Returns 1 if some
 * backlog remains (the plugin is still pushing back). */
static int drain_backlog(mc_engine *e, mc_transport *t, int stopping) {
  uint64_t now = mc_now_ms();
  while (atomic_load(&t->backlog_len) > 0) {
    mc_slice_rec *list = backlog_take(t, DRAIN_CHUNK);
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
        mc_batch_slice_done(s, rc, 0, 0);
        continue;
      }
      mc_slice sl;
      mc_slice_fill(s, rmem, &sl);
      uint32_t acc = 0;
      mc_slice_account(e, s, 1);
      rc = mc_transport_submit(t, ep, &sl, 1, &acc);
      if (acc == 1)
        continue;
      if (rc && rc != MC_EAGAIN) {
        mc_batch_slice_done(s, rc, 0, 0);
        continue;
      }
      mc_slice_account(e, s, -1);
      s->next = list; /* still pushing back: keep order, try later */
      backlog_return(t, s);
      return 1;
    }
  }
  return 0;
}

static void run_notify(mc_engine *e, mc_notify_group *g) {
  int rc = 0;
  for (uint32_t i = 0; i < g->nreqs && !rc; i++)
    rc = atomic_load(&g->reqs[i]->error);
  if (!rc) {
    mc_req *r = g->reqs[0];
    rc = MC_ENOTSUP;
    /* Prefer the transport that carried the data, else any with NOTIFY. */
    int used = atomic_load(&r->transport_used);
    int order[MC_MAX_TRANSPORTS + 1], n = 0;
    if (used >= 0)
      order[n++] = used;
    for (int i = 0; i < r->ncand; i++)
      if (r->tcand[i] != used)
        order[n++] = r->tcand[i];
    for (int i = 0; i < e->ntransports && n < MC_MAX_TRANSPORTS; i++) {
      int seen = 0;
      for (int j = 0; j < n; j++)
        seen |= order[j] == i;
      if (!seen && r->view->desc_tidx[i] >= 0)
        order[n++] = i;
    }
    for (int i = 0; i < n && rc; i++) {
      mc_transport *t = e->transports[order[i]];
      if (!(t->ops->caps & MC_CAP_NOTIFY) || !t->ops->send_notify)
        continue;
      if (!(t->ops->caps & (r->view->same_host ? MC_CAP_INTRA_NODE : MC_CAP_INTER_NODE)))
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
      MC_WARN(&e->log, COMP, "notification to %s failed: %s", r->view->desc->name,
              mc_strerror(rc));
      for (uint32_t i = 0; i < g->nreqs; i++) {
        int32_t zero = 0;
        atomic_compare_exchange_strong(&g->reqs[i]->error, &zero, rc);
      }
    }
  }
  for (uint32_t i = 0; i < g->nreqs; i++)
    mc_req_finish(g->reqs[i]);
  free(g->reqs);
  free(g);
}

static void run_job(mc_engine *e, mc_job *j) {
  if (j->kind == MC_JOB_RETRY)
    mc_slice_retry(e, j->slice);
  else if (j->kind == MC_JOB_VIEW)
    mc_view_free(j->view);
  else
    run_notify(e, j->group);
  free(j);
}

static int any_backlog(mc_engine *e) {
  for (int i = 0; i < e->ntransports; i++)
    if (atomic_load(&e->transports[i]->backlog_len))
      return 1;
  return 0;
}

static void *worker_main(void *arg) {
  mc_engine *e = arg;
  for (;;) {
    pthread_mutex_lock(&e->job_lock);
    uint64_t now = mc_now_ms();
    /* Take the jobs that are due; remember when the next one is. */
    mc_job *due = NULL, **pp = &e->jobs;
    uint64_t next = UINT64_MAX;
    while (*pp) {
      mc_job *j = *pp;
      if (j->not_before_ms <= now || e->stop) {
        *pp = j->next;
        j->next = due;
        due = j;
      } else {
        if (j->not_before_ms < next)
          next = j->not_before_ms;
        pp = &j->next;
      }
    }
    int stop = e->stop;
    int busy = due || any_backlog(e) ||
               (atomic_load(&e->progress_needed) && atomic_load(&e->inflight) > 0);
    if (!busy && !stop) {
      struct timespec ts;
      uint64_t wait = next == UINT64_MAX ? 100 : next - now;
      mc_deadline_ts(&ts, wait > 100 ? 100 : wait);
      pthread_cond_timedwait(&e->job_cond, &e->job_lock, &ts);
      pthread_mutex_unlock(&e->job_lock);
      continue;
    }
    pthread_mutex_unlock(&e->job_lock);

    /* Run due jobs oldest first. */
    mc_job *rev = NULL;
    while (due) {
      mc_job *n = due->next;
      due->next = rev;
      rev = due;
      due = n;
    }
    while (rev) {
      mc_job *n = rev->next;
      if (stop && rev->kind == MC_JOB_RETRY) {
        mc_slice_fail(rev->slice, MC_ECANCELED, 0);
        free(rev);
      } else {
        run_job(e, rev);
      }
      rev = n;
    }
    int pushing_back = 0;
    for (int i = 0; i < e->ntransports; i++)
      pushing_back |= drain_backlog(e, e->transports[i], stop);
    atomic_store(&e->backlog_waiting, any_backlog(e));
    int progressed = 0;
    for (int i = 0; i < e->ntransports; i++) {
      mc_transport *t = e->transports[i];
      if (t->ops->progress && atomic_load(&e->inflight) > 0) {
        int n = t->ops->progress(t->ctx, 256);
        progressed += n > 0 ? n : 0;
      }
    }
    if (stop) {
      pthread_mutex_lock(&e->job_lock);
      int more = e->jobs != NULL;
      pthread_mutex_unlock(&e->job_lock);
      if (!more && !any_backlog(e))
        break;
      continue;
    }
    if (pushing_back && !progressed) {
      /* The plugin is full: wait for a completion to kick us (or 1 ms). */
      pthread_mutex_lock(&e->job_lock);
      struct timespec ts;
      mc_deadline_ts(&ts, 1);
      if (!e->jobs && !e->stop)
        pthread_cond_timedwait(&e->job_cond, &e->job_lock, &ts);
      pthread_mutex_unlock(&e->job_lock);
    } else if (atomic_load(&e->progress_needed) && !progressed) {
      sched_yield();
    }
  }
  return NULL;
}

int mc_worker_start(mc_engine *e) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_destroy(&e->job_cond);
  pthread_cond_init(&e->job_cond, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&e->worker, NULL, worker_main, e))
    return MC_ENOMEM;
  e->worker_started = 1;
  return 0;
}

void mc_worker_stop(mc_engine *e) {
  if (!e->worker_started)
    return;
  pthread_mutex_lock(&e->job_lock);
  e->stop = 1;
  pthread_cond_signal(&e->job_cond);
  pthread_mutex_unlock(&e->job_lock);
  pthread_join(e->worker, NULL);
  e->worker_started = 0;
}
