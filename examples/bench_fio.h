/* bench_fio.h - fio (Debian's fio binary) run beside the bench as the
 * baseline of a --file point: the same file, block size, direction and
 * O_DIRECT, ioengine=io_uring, one job per initiator thread over that
 * thread's region (offset_increment = batch x block) with iodepth = batch
 * (the requests a mooncake thread has in flight), in the same run. */
#ifndef MC_BENCH_FIO_H
#define MC_BENCH_FIO_H

#include <stddef.h>

#include "bench_stats.h"
#include "bench_team.h"

/* 1 when `fio --version` runs. */
int bench_fio_available(void);

/* Runs fio for pt on path: fills r with its throughput, its completion
 * latency percentiles (per I/O, not per batch), and its CPU (from its
 * rusage) as cpu_pct; target_cpu_pct -1.  0, or -1 with err. */
int bench_run_fio(const char *path, const bench_point *pt, bench_result *r, char *err,
                  size_t errlen);

#endif
