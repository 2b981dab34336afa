/* bench_team.c - runs one measured point on N threads. */
#include "bench_team.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct team {
  const bench_team_ops *ops;
  pthread_mutex_t mu; /* start gate: workers report ready, wait for go */
  pthread_cond_t cv;
  uint32_t ready;
  int go;
  atomic_int stop; /* set by the first failing worker */
} team;

typedef struct slot {
  bench_worker w;
  team *t;
  bench_hist hist;
  uint64_t t_start, t_end;
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
    if (bench_now_ns() >= deadline)
      break;
  }
  s->t_end = bench_now_ns();
  if (ok && t->ops->teardown)
    t->ops->teardown(w);
  return NULL;
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
