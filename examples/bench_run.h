/* bench_run.h - the measured paths: mooncake batches, and the baselines. */
#ifndef MC_BENCH_RUN_H
#define MC_BENCH_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "bench_stats.h"
#include "bench_team.h"
#include "mooncake/engine.h"

/* Buffer layout, the same on both sides: request j of thread t uses offset
 * (t * batch + j) * block of the local buffer and of the target buffer. */
typedef struct bench_mc_env {
  mc_engine *engine;
  mc_segment *seg;
  uint8_t *local;       /* registered, >= threads * batch * block */
  uint64_t remote_addr; /* base of the target's buffer */
  uint8_t *scratch;     /* registered, >= batch * block (write read-back) */
  int timeout_ms;       /* per batch wait */
} bench_mc_env;

/* Each worker loops: mc_batch_create, mc_batch_submit(batch requests),
 * mc_batch_wait, mc_batch_destroy.  Latency = submit .. wait return. */
int bench_run_mooncake(const bench_mc_env *env, const bench_point *pt,
                       bench_result *r, char *err, size_t errlen);

/* After a write point: reads every thread's region back and compares it
 * with pt->write_seed's pattern. */
int bench_verify_writes(const bench_mc_env *env, const bench_point *pt,
                        char *err, size_t errlen);

/* TCP baseline: one connection per thread to the target's control port,
 * moving the same blocks between the same buffers (see bench_ctl.h). */
int bench_run_socket(const char *ctl_addr, uint8_t *local,
                     const bench_point *pt, bench_result *r, char *err,
                     size_t errlen);

/* memcpy baseline: one thread copying batch blocks per round between local
 * and a second buffer of this process (pt->threads is ignored: 1), that
 * buffer allocated like the others (mem_kind: see bench_mem.h). */
int bench_run_memcpy(uint8_t *local, const bench_point *pt, int mem_kind,
                     bench_result *r, char *err, size_t errlen);

#endif
