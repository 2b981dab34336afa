/* bench_team.c - runs one measured point on N threads. */
#include "bench_team.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct team {
  const bench_team_ops *ops;
  pthread_mutex_t mu; /* start gate: workers report ready, wait for go */
  pthread_cond_t cv;
  uint32_t ready;
  uint32_t finished; /* workers out of their loop (progress wait) */
  int go;
  atomic_int stop; /* set by the first failing worker */
} team;

typedef struct slot {
  bench_worker w;
  team *t;
  bench_hist hist;
  uint64_t t_start, t_end;
  _Atomic uint64_t done_bytes, done_requests; /* read by the progress line */
  int failed;
  pthread_t th;
} slot;

static void *worker_main(void *arg) {
  slot *s = arg;
  team *t = s->t;
  bench_worker *w = &s->w;
  int ok = !t->ops->setup || t->ops->setup(w) == 0;
  if (!ok) {
    s->failed = 1;
    atomic_store(&t->stop, 1);
  }
  pthread_mutex_lock(&t->mu);
  t->ready++;
  pthread_cond_broadcast(&t->cv);
  while (!t->go)
    pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
  s->t_start = bench_now_ns();
  uint64_t deadline = s->t_start + (uint64_t)(w->pt->duration * 1e9);
  while (ok && !atomic_load_explicit(&t->stop, memory_order_relaxed)) {
    uint64_t lat = 0;
    if (t->ops->step(w, &lat) != 0) {
      s->failed = 1;
      atomic_store(&t->stop, 1);
      break;
    }
    bench_hist_add(&s->hist, lat);
    w->bytes += w->pt->block * w->pt->batch;
    w->requests += w->pt->batch;
    atomic_store_explicit(&s->done_bytes, w->bytes, memory_order_relaxed);
    atomic_store_explicit(&s->done_requests, w->requests, memory_order_relaxed);
    if (bench_now_ns() >= deadline)
      break;
  }
  s->t_end = bench_now_ns();
  pthread_mutex_lock(&t->mu);
  t->finished++;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  if (ok && t->ops->teardown)
    t->ops->teardown(w);
  return NULL;
}

static FILE *progress_out;
static unsigned progress_ms;
static const char *progress_prefix = "bench";

void bench_team_progress(FILE *out, unsigned interval_ms, const char *prefix) {
  progress_out = interval_ms ? out : NULL;
  progress_ms = interval_ms;
  progress_prefix = prefix ? prefix : "bench";
}

/* Waits until every started worker left its loop, printing a progress line
 * every progress_ms meanwhile. */
static void wait_finished(team *t, slot *slots, uint32_t started,
                          const bench_point *pt, uint64_t wall0) {
  pthread_mutex_lock(&t->mu);
  uint64_t next = bench_now_ns() + (uint64_t)progress_ms * 1000000u;
  while (t->finished < started) {
    if (!progress_out) {
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = bench_now_ns(), wait = next > now ? next - now : 0;
    ts.tv_sec += (time_t)(wait / 1000000000u);
    ts.tv_nsec += (long)(wait % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    now = bench_now_ns();
    if (now < next || t->finished >= started)
      continue;
    next = now + (uint64_t)progress_ms * 1000000u;
    uint64_t bytes = 0, reqs = 0;
    for (uint32_t i = 0; i < started; i++) {
      bytes += atomic_load_explicit(&slots[i].done_bytes, memory_order_relaxed);
      reqs += atomic_load_explicit(&slots[i].done_requests, memory_order_relaxed);
    }
    double el = (double)(now - wall0) / 1e9;
    fprintf(progress_out, "%s: progress %.1f/%.1f s: %.2f GB/s, %llu requests so far\n",
            progress_prefix, el, pt->duration, el > 0 ? (double)bytes / el / 1e9 : 0.0,
            (unsigned long long)reqs);
    fflush(progress_out);
  }
  pthread_mutex_unlock(&t->mu);
}

int bench_team_run(const bench_point *pt, const bench_team_ops *ops, void *env,
                   bench_result *r, char *err, size_t errlen) {
  uint32_t n = pt->threads;
  slot *slots = calloc(n, sizeof *slots);
  bench_hist *all = calloc(1, sizeof *all);
  team t = {.ops = ops};
  if (!slots || !all) {
    snprintf(err, errlen, "out of memory for %u workers", n);
    free(slots);
    free(all);
    return -1;
  }
  atomic_init(&t.stop, 0);
  pthread_mutex_init(&t.mu, NULL);
  pthread_cond_init(&t.cv, NULL);
  uint32_t started = 0;
  for (; started < n; started++) {
    slot *s = &slots[started];
    s->t = &t;
    s->w.index = started;
    s->w.pt = pt;
    s->w.env = env;
    atomic_init(&s->done_bytes, 0);
    atomic_init(&s->done_requests, 0);
    if (pthread_create(&s->th, NULL, worker_main, s) != 0)
      break;
  }
  if (started < n) {
    atomic_store(&t.stop, 1); /* the started ones pass the gate and quit */
    snprintf(err, errlen, "cannot start worker thread %u", started);
  }
  pthread_mutex_lock(&t.mu);
  while (t.ready < started)
    pthread_cond_wait(&t.cv, &t.mu);
  t.go = 1;
  pthread_cond_broadcast(&t.cv);
  pthread_mutex_unlock(&t.mu);
  uint64_t cpu0 = bench_self_cpu_ns(), wall0 = bench_now_ns();
  wait_finished(&t, slots, started, pt, wall0);
  for (uint32_t i = 0; i < started; i++)
    pthread_join(slots[i].th, NULL);
  int rc = started == n ? 0 : -1;
  if (rc == 0) {
    uint64_t cpu = bench_self_cpu_ns() - cpu0, wall = bench_now_ns() - wall0;
    uint64_t first = UINT64_MAX, last = 0;
    r->bytes = r->requests = 0;
    for (uint32_t i = 0; i < n; i++) {
      slot *s = &slots[i];
      if (s->failed && rc == 0) {
        snprintf(err, errlen, "thread %u: %s", i, s->w.err);
        rc = -1;
      }
      bench_hist_merge(all, &s->hist);
      r->bytes += s->w.bytes;
      r->requests += s->w.requests;
      if (s->t_start < first)
        first = s->t_start;
      if (s->t_end > last)
        last = s->t_end;
    }
    r->op = pt->op;
    r->block = pt->block;
    r->batch = pt->batch;
    r->threads = n;
    r->wall_s = (double)(last - first) / 1e9;
    r->cpu_pct = wall ? 100.0 * (double)cpu / (double)wall : 0.0;
    bench_result_finish(r, all);
  }
  pthread_cond_destroy(&t.cv);
  pthread_mutex_destroy(&t.mu);
  free(slots);
  free(all);
  return rc;
}
