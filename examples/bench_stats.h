/* bench_stats.h - latency histogram, clocks and result output. */
#ifndef MC_BENCH_STATS_H
#define MC_BENCH_STATS_H

#include <stdint.h>
#include <stdio.h>

/* Log-linear histogram of nanoseconds: exact below 32 ns, then 32 buckets
 * per power of two (<= 3% relative error), bounded memory whatever the run
 * length. */
#define BENCH_HIST_SUB 32
#define BENCH_HIST_N (60 * BENCH_HIST_SUB)

typedef struct bench_hist {
  uint64_t count;
  uint64_t max_ns;
  uint64_t bucket[BENCH_HIST_N];
} bench_hist;

void bench_hist_add(bench_hist *h, uint64_t ns);
void bench_hist_merge(bench_hist *dst, const bench_hist *src);
/* Value (ns) below which pct percent of the samples fall; 0 when empty. */
uint64_t bench_hist_pct(const bench_hist *h, double pct);

uint64_t bench_now_ns(void);        /* CLOCK_MONOTONIC */
uint64_t bench_self_cpu_ns(void);   /* user+system time of this process */

/* One measured point. */
typedef struct bench_result {
  const char *kind;   /* "mooncake" or "baseline" */
  char path[32];      /* transport name, or "socket" / "memcpy" */
  uint32_t op;        /* MC_OP_READ / MC_OP_WRITE */
  uint64_t block;
  uint32_t batch, threads;
  double wall_s;      /* first thread start .. last thread end */
  uint64_t bytes, requests, batches;
  double p50_us, p99_us, max_us; /* per-batch round trip; < 0: none */
  double cpu_pct;     /* initiator process, 100 = one core busy */
  double target_cpu_pct; /* target process; < 0 when unknown */
  int verified;       /* 1: data checked and correct; 0: not checked */
} bench_result;

/* Fills the latency and rate fields from a merged histogram. */
void bench_result_finish(bench_result *r, const bench_hist *h);

void bench_print_header(FILE *f);
void bench_print_result(FILE *f, const bench_result *r, int json);
/* CPU seconds (initiator + target when known) per GB moved. */
double bench_cpu_s_per_gb(const bench_result *r);
/* GB/s of a result. */
double bench_gbps(const bench_result *r);
/* mooncake/baseline throughput (and CPU per GB) ratio, as a line or a JSON object. */
void bench_print_ratio(FILE *f, const bench_result *mc, const bench_result *base,
                       int json);

/* Over n paired runs (mc[i] beside base[i], run one after the other): the
 * median, least and greatest of the per-pair ratios, as a line or a JSON
 * object.  Pairing cancels the slow drift of a shared machine that a ratio
 * of separately taken medians would keep.  n <= BENCH_MEDIAN_MAX. */
#define BENCH_MEDIAN_MAX 16
/* Median of v[0..n), n > 0 (sorts v: v[0] and v[n-1] are then the least
 * and the greatest); the mean of the middle two when n is even. */
double bench_median(double *v, size_t n);
void bench_print_median(FILE *f, const bench_result *mc, const bench_result *base,
                        size_t n, int json);

#endif
