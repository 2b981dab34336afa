/* The job queue on its own (core/src/jobs.h), without an engine: due order
 * and delays, jobs pushed from jobs, the poll hook (busy, MORE on stop),
 * stop running delayed jobs at once with MC_JOB_STOPPING, pushes after stop
 * running inline with MC_JOB_DROPPED, and a queue never started. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_test_util.h"
#include "jobs.h"
#include "mooncake/errors.h"
#include "net.h"

typedef struct rec {
  pthread_mutex_t lock;
  int order[16];
  int why[16];
  uint64_t at[16];
  int n;
} rec;

typedef struct item {
  rec *r;
  int id;
  mc_jobq *q; /* pushes item `child` when set */
  struct item *child;
} item;

static void job(void *arg, int why) {
  item *it = arg;
  pthread_mutex_lock(&it->r->lock);
  int n = it->r->n++;
  it->r->order[n] = it->id;
  it->r->why[n] = why;
  it->r->at[n] = mc_now_ms();
  pthread_mutex_unlock(&it->r->lock);
  if (it->q && it->child)
    mc_jobq_push(it->q, job, it->child, 0);
}

static int wait_for(rec *r, int n, int ms) {
  for (int i = 0; i < ms; i++) {
    pthread_mutex_lock(&r->lock);
    int have = r->n;
    pthread_mutex_unlock(&r->lock);
    if (have >= n)
      return 1;
    usleep(1000);
  }
  return 0;
}

static void test_due_order(void) {
  rec r = {.lock = PTHREAD_MUTEX_INITIALIZER};
  mc_jobq *q = NULL;
  CHECK_MSG(mc_jobq_create(&q) == 0, "create");
  CHECK_MSG(mc_jobq_start(q, NULL) == 0, "start");
  item a = {&r, 1}, b = {&r, 2}, c = {&r, 3};
  uint64_t t0 = mc_now_ms();
  mc_jobq_push(q, job, &a, 60);
  mc_jobq_push(q, job, &b, 20);
  mc_jobq_push(q, job, &c, 0);
  CHECK_MSG(wait_for(&r, 3, 3000), "only %d of 3 jobs ran", r.n);
  CHECK_MSG(r.order[0] == 3 && r.order[1] == 2 && r.order[2] == 1,
        "order %d %d %d, expected 3 2 1", r.order[0], r.order[1], r.order[2]);
  CHECK_MSG(r.at[1] - t0 >= 20, "20 ms job ran after %llu ms", (unsigned long long)(r.at[1] - t0));
  CHECK_MSG(r.at[2] - t0 >= 60, "60 ms job ran after %llu ms", (unsigned long long)(r.at[2] - t0));
  for (int i = 0; i < 3; i++)
    CHECK_MSG(r.why[i] == MC_JOB_RUN, "job %d ran with why=%d", i, r.why[i]);
  /* A job that pushes another. */
  item child = {&r, 5};
  item parent = {&r, 4, q, &child};
  mc_jobq_push(q, job, &parent, 0);
  CHECK_MSG(wait_for(&r, 5, 3000), "pushed-from-job did not run");
  CHECK_MSG(r.order[3] == 4 && r.order[4] == 5, "parent/child order %d %d", r.order[3], r.order[4]);
  mc_jobq_destroy(q);
}

static void test_stop(void) {
  rec r = {.lock = PTHREAD_MUTEX_INITIALIZER};
  mc_jobq *q = NULL;
  mc_jobq_create(&q);
  mc_jobq_start(q, NULL);
  item late = {&r, 1}, after = {&r, 2};
  mc_jobq_push(q, job, &late, 10000);
  uint64_t t0 = mc_now_ms();
  mc_jobq_stop(q);
  uint64_t took = mc_now_ms() - t0;
  CHECK_MSG(r.n == 1 && r.why[0] == MC_JOB_STOPPING, "delayed job at stop: n=%d why=%d", r.n,
        r.why[0]);
  CHECK_MSG(took < 1000, "stop waited %llu ms for a delayed job", (unsigned long long)took);
  CHECK_MSG(mc_jobq_push(q, job, &after, 0) == 0, "push after stop");
  CHECK_MSG(r.n == 2 && r.order[1] == 2 && r.why[1] == MC_JOB_DROPPED,
        "push after stop: n=%d why=%d", r.n, r.why[1]);
  mc_jobq_stop(q); /* idempotent */
  mc_jobq_destroy(q);
  mc_jobq_destroy(NULL);

  /* Never started: what was queued is run (stopping) by stop. */
  rec r2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
  item x = {&r2, 7};
  mc_jobq_create(&q);
  mc_jobq_push(q, job, &x, 5);
  mc_jobq_destroy(q);
  CHECK_MSG(r2.n == 1 && r2.why[0] == MC_JOB_STOPPING, "unstarted queue: n=%d", r2.n);
}

typedef struct owner {
  _Atomic int backlog;   /* work the poll hook drains, one per call */
  _Atomic int polls, stopping_polls;
} owner;

static int o_busy(void *arg) {
  owner *o = arg;
  return atomic_load(&o->backlog) > 0;
}

static int o_poll(void *arg, int stopping) {
  owner *o = arg;
  atomic_fetch_add(&o->polls, 1);
  if (stopping)
    atomic_fetch_add(&o->stopping_polls, 1);
  int left = atomic_load(&o->backlog);
  if (left > 0)
    left = atomic_fetch_sub(&o->backlog, 1) - 1;
  return (left > 0 ? MC_JOBQ_MORE : 0) | MC_JOBQ_PROGRESSED;
}

static void test_hooks(void) {
  owner o = {0};
  mc_jobq *q = NULL;
  mc_jobq_create(&q);
  mc_jobq_hooks h = {.busy = o_busy, .poll = o_poll, .arg = &o};
  CHECK_MSG(mc_jobq_start(q, &h) == 0, "start with hooks");
  CHECK_MSG(mc_jobq_start(q, &h) == MC_EINVAL, "second start");
  atomic_store(&o.backlog, 50);
  mc_jobq_kick(q);
  for (int i = 0; i < 3000 && atomic_load(&o.backlog) > 0; i++)
    usleep(1000);
  CHECK_MSG(atomic_load(&o.backlog) == 0, "poll hook left %d", atomic_load(&o.backlog));
  CHECK_MSG(atomic_load(&o.polls) >= 50, "polled %d times", atomic_load(&o.polls));
  /* On stop, the hook is polled until it reports no MORE. */
  atomic_store(&o.backlog, 20);
  mc_jobq_stop(q);
  CHECK_MSG(atomic_load(&o.backlog) == 0, "stop left backlog %d", atomic_load(&o.backlog));
  CHECK_MSG(atomic_load(&o.stopping_polls) >= 1, "no poll with stopping set");
  mc_jobq_destroy(q);
}

int main(void) {
  mc_check_keep_going(1);
  test_due_order();
  test_stop();
  test_hooks();
  if (!mc_check_failures())
    printf("jobs: ok\n");
  return mc_check_exit_status();
}
