/* bench_iperf.h - iperf3 (Debian's iperf3 binary) run beside the bench as
 * a baseline: the same number of streams as initiator threads, the same
 * direction (read: -R, the data flows from the server as from a target),
 * over loopback, in the same run. */
#ifndef MC_BENCH_IPERF_H
#define MC_BENCH_IPERF_H

#include <stddef.h>

#include "bench_stats.h"
#include "bench_team.h"

/* 1 when `iperf3 --version` runs. */
int bench_iperf_available(void);

/* Runs iperf3 for pt (threads streams, ceil(duration) s, -l min(block,
 * 1M)): fills r with its throughput, the client's CPU as cpu_pct and the
 * server's as target_cpu_pct, latencies -1 (a stream has no batches).
 * Returns 0, or -1 with err. */
int bench_run_iperf3(const bench_point *pt, bench_result *r, char *err, size_t errlen);

#endif
