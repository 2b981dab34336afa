/* bench_team.h - runs one measured point on N threads.
 *
 * Every worker prepares (setup), meets the others at a barrier, then repeats
 * rounds until the duration passes or any worker fails, then cleans up.  A
 * round is one batch: step() moves batch x block bytes and reports the
 * latency it measured for that round trip. */
#ifndef MC_BENCH_TEAM_H
#define MC_BENCH_TEAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench_stats.h"

typedef struct bench_point {
  uint32_t op;      /* MC_OP_READ / MC_OP_WRITE */
  uint64_t block;   /* bytes per request */
  uint32_t batch;   /* requests per round */
  uint32_t threads;
  uint32_t depth;   /* batches in flight per thread (mooncake path); 0 = 1 */
  double duration;  /* seconds */
  int verify;       /* check data after every read round */
  uint64_t write_seed; /* pattern the initiator writes */
} bench_point;

typedef struct bench_worker {
  uint32_t index;          /* 0 .. threads-1 */
  const bench_point *pt;
  void *env;               /* the caller's, shared by all workers */
  void *state;             /* the worker's own, from setup */
  uint64_t bytes, requests;
  char err[512];           /* set by a failing hook */
} bench_worker;

typedef struct bench_team_ops {
  int (*setup)(bench_worker *w);                 /* 0 or -1 with w->err; may be NULL */
  int (*step)(bench_worker *w, uint64_t *lat_ns); /* one round; 0 or -1 */
  void (*teardown)(bench_worker *w);             /* may be NULL */
} bench_team_ops;

/* Progress lines while a point runs: every interval_ms, one line on out
 * ("<prefix>: <label> 4.0/10.0 s: 1.23 GB/s, 5120 requests so far") so a
 * long point does not look hung.  out NULL (the default) turns them off.
 * Not thread-safe: set it before running points. */
void bench_team_progress(FILE *out, unsigned interval_ms, const char *prefix);

/* Runs the point; fills r's counters, wall time, latency and cpu_pct (the
 * other fields are the caller's).  Returns 0, or -1 with the first failing
 * worker's message in err. */
int bench_team_run(const bench_point *pt, const bench_team_ops *ops, void *env,
                   bench_result *r, char *err, size_t errlen);

#endif
