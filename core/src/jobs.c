/* The generic job and timer queue (jobs.h): one worker thread, a list of
 * timed jobs, and the owner's poll hook. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "jobs.h"
#include "mooncake/errors.h"
#include "net.h"

typedef struct job {
  mc_job_fn fn;
  void *arg;
  uint64_t not_before_ms;
  struct job *next;
} job;

struct mc_jobq {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  job *jobs;
  int stop;
  int started;
  pthread_t thread;
  mc_jobq_hooks hooks;
};

int mc_jobq_create(mc_jobq **out) {
  mc_jobq *q = calloc(1, sizeof *q);
  if (!q)
    return MC_ENOMEM;
  pthread_mutex_init(&q->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cond, &ca);
  pthread_condattr_destroy(&ca);
  *out = q;
  return 0;
}

void mc_jobq_kick(mc_jobq *q) {
  pthread_mutex_lock(&q->lock);
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
}

int mc_jobq_push(mc_jobq *q, mc_job_fn fn, void *arg, uint64_t delay_ms) {
  job *j = calloc(1, sizeof *j);
  if (!j)
    return MC_ENOMEM;
  pthread_mutex_lock(&q->lock);
  if (q->stop) {
    pthread_mutex_unlock(&q->lock);
    free(j);
    fn(arg, MC_JOB_DROPPED); /* shutting down: nothing is queued any more */
    return 0;
  }
  j->fn = fn;
  j->arg = arg;
  j->not_before_ms = delay_ms ? mc_now_ms() + delay_ms : 0;
  j->next = q->jobs;
  q->jobs = j;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
  return 0;
}

/* Takes the jobs that are due (all when stopping), oldest first; *next
 * gets when the next one is due.  Under the lock. */
static job *take_due(mc_jobq *q, uint64_t now, uint64_t *next) {
  job *due = NULL, **pp = &q->jobs;
  *next = UINT64_MAX;
  while (*pp) {
    job *j = *pp;
    if (j->not_before_ms <= now || q->stop) {
      *pp = j->next;
      j->next = due; /* the list is newest first: this reverses it */
      due = j;
    } else {
      if (j->not_before_ms < *next)
        *next = j->not_before_ms;
      pp = &j->next;
    }
  }
  return due;
}

static void run_list(job *j, int why) {
  while (j) {
    job *n = j->next;
    j->fn(j->arg, why);
    free(j);
    j = n;
  }
}

/* Sleeps until a kick, a job is due, or 100 ms; under the lock. */
static void idle_wait(mc_jobq *q, uint64_t now, uint64_t next) {
  struct timespec ts;
  uint64_t wait = next == UINT64_MAX ? 100 : next - now;
  mc_deadline_ts(&ts, wait > 100 ? 100 : wait);
  pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

static void *worker_main(void *arg) {
  mc_jobq *q = arg;
  const mc_jobq_hooks *h = &q->hooks;
  for (;;) {
    pthread_mutex_lock(&q->lock);
    uint64_t now = mc_now_ms(), next;
    job *due = take_due(q, now, &next);
    int stop = q->stop;
    if (!due && !stop && !(h->busy && h->busy(h->arg))) {
      idle_wait(q, now, next);
      pthread_mutex_unlock(&q->lock);
      continue;
    }
    pthread_mutex_unlock(&q->lock);
    run_list(due, stop ? MC_JOB_STOPPING : MC_JOB_RUN);
    int r = h->poll ? h->poll(h->arg, stop) : 0;
    if (stop) {
      pthread_mutex_lock(&q->lock);
      int more = q->jobs != NULL;
      pthread_mutex_unlock(&q->lock);
      if (!more && !(r & MC_JOBQ_MORE))
        break;
      continue;
    }
    if ((r & MC_JOBQ_PUSHBACK) && !(r & MC_JOBQ_PROGRESSED)) {
      /* The consumer is full: wait for a kick (or 1 ms). */
      pthread_mutex_lock(&q->lock);
      struct timespec ts;
      mc_deadline_ts(&ts, 1);
      if (!q->jobs && !q->stop)
        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
      pthread_mutex_unlock(&q->lock);
    } else if ((r & MC_JOBQ_SPIN) && !(r & MC_JOBQ_PROGRESSED)) {
      sched_yield();
    }
  }
  return NULL;
}

int mc_jobq_start(mc_jobq *q, const mc_jobq_hooks *hooks) {
  if (q->started)
    return MC_EINVAL;
  if (hooks)
    q->hooks = *hooks;
  if (pthread_create(&q->thread, NULL, worker_main, q))
    return MC_ENOMEM;
  q->started = 1;
  return 0;
}

void mc_jobq_stop(mc_jobq *q) {
  if (!q)
    return;
  pthread_mutex_lock(&q->lock);
  q->stop = 1;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
  if (q->started) {
    pthread_join(q->thread, NULL);
    q->started = 0;
  }
  /* Never started (or raced in before the stop): cancel what is left. */
  pthread_mutex_lock(&q->lock);
  job *left = q->jobs;
  q->jobs = NULL;
  pthread_mutex_unlock(&q->lock);
  run_list(left, MC_JOB_STOPPING);
}

void mc_jobq_destroy(mc_jobq *q) {
  if (!q)
    return;
  mc_jobq_stop(q);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->cond);
  free(q);
}
