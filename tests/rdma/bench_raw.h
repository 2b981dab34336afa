/* bench_raw.h - the rdma bench's figures and its raw-verbs baseline. */
#ifndef MC_RDMA_BENCH_RAW_H
#define MC_RDMA_BENCH_RAW_H

#include <stdint.h>

typedef struct bench_result {
  uint64_t slices, wall_ns;
  uint64_t cpu_ns;         /* process CPU minus the soft NIC engines' */
  uint64_t p50_ns, p99_ns; /* per batch, submit to last completion */
  uint64_t post_ns;        /* the posting thread's CPU inside submit/post */
} bench_result;

#define RAW_MAX_NICS 8

/* Raw verbs over libsoftverbs (no plugin): nslices WRITEs of len bytes in
 * batches of `batch`, striped over the first nnic NICs (batch % nnic ==
 * 0).  0, or -1. */
int bench_raw(const char *lib, uint32_t nslices, uint32_t batch, uint32_t len, uint32_t nnic,
              uint64_t (*engine_cpu)(void), bench_result *out);
/* Sorts lat[0..n) and fills out's percentiles. */
void bench_percentiles(uint64_t *lat, uint32_t n, bench_result *out);

#endif
