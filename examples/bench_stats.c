/* bench_stats.c - latency histogram, clocks and result output. */
#include "bench_stats.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_opts.h"
#include "mooncake/transport.h"

static unsigned hist_index(uint64_t v) {
  if (v < BENCH_HIST_SUB)
    return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 5 */
  unsigned sub = (unsigned)(v >> (e - 5)) - BENCH_HIST_SUB;
  return (e - 4) * BENCH_HIST_SUB + sub;
}

static uint64_t hist_value(unsigned idx) {
  if (idx < BENCH_HIST_SUB)
    return idx;
  unsigned e = idx / BENCH_HIST_SUB + 4, sub = idx % BENCH_HIST_SUB;
  uint64_t lower = (uint64_t)(BENCH_HIST_SUB + sub) << (e - 5);
  return lower + ((1ull << (e - 5)) >> 1); /* bucket midpoint */
}

void bench_hist_add(bench_hist *h, uint64_t ns) {
  h->bucket[hist_index(ns)]++;
  h->count++;
  if (ns > h->max_ns)
    h->max_ns = ns;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src) {
  for (unsigned i = 0; i < BENCH_HIST_N; i++)
    dst->bucket[i] += src->bucket[i];
  dst->count += src->count;
  if (src->max_ns > dst->max_ns)
    dst->max_ns = src->max_ns;
}

uint64_t bench_hist_pct(const bench_hist *h, double pct) {
  if (h->count == 0)
    return 0;
  uint64_t want = (uint64_t)ceil(pct / 100.0 * (double)h->count);
  if (want == 0)
    want = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < BENCH_HIST_N; i++) {
    seen += h->bucket[i];
    if (seen >= want) {
      uint64_t v = hist_value(i);
      return v < h->max_ns ? v : h->max_ns;
    }
  }
  return h->max_ns;
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_self_cpu_ns(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             1000000000ull +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

void bench_result_finish(bench_result *r, const bench_hist *h) {
  r->batches = h->count;
  r->p50_us = (double)bench_hist_pct(h, 50.0) / 1000.0;
  r->p99_us = (double)bench_hist_pct(h, 99.0) / 1000.0;
  r->max_us = (double)h->max_ns / 1000.0;
}

static double gbps(const bench_result *r) {
  return r->wall_s > 0 ? (double)r->bytes / r->wall_s / 1e9 : 0.0;
}

static double reqps(const bench_result *r) {
  return r->wall_s > 0 ? (double)r->requests / r->wall_s : 0.0;
}

double bench_cpu_s_per_gb(const bench_result *r) {
  double cpu = r->cpu_pct + (r->target_cpu_pct > 0 ? r->target_cpu_pct : 0);
  return r->bytes ? cpu / 100.0 * r->wall_s / ((double)r->bytes / 1e9) : 0.0;
}

double bench_gbps(const bench_result *r) { return gbps(r); }

static const char *op_name(uint32_t op) {
  return op == MC_OP_WRITE ? "write" : "read";
}

/* Names come from the command line: escape what JSON requires. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

void bench_print_header(FILE *f) {
  fprintf(f, "%-8s %-8s %-5s %6s %5s %4s %8s %10s %10s %10s %7s %7s %8s %s\n",
          "kind", "path", "op", "block", "batch", "thr", "GB/s", "req/s",
          "p50_us", "p99_us", "cpu%", "tgtcpu%", "cpu_s/GB", "check");
}

void bench_print_result(FILE *f, const bench_result *r, int json) {
  if (json) {
    fputs("{\"kind\":", f);
    json_str(f, r->kind);
    fputs(",\"transport\":", f);
    json_str(f, r->path);
    fprintf(f,
            ",\"op\":\"%s\",\"block_size\":%" PRIu64 ",\"batch_size\":%" PRIu32
            ",\"threads\":%" PRIu32 ",\"duration_s\":%.3f,\"bytes\":%" PRIu64
            ",\"requests\":%" PRIu64 ",\"batches\":%" PRIu64
            ",\"gb_per_s\":%.4f,\"requests_per_s\":%.1f"
            ",\"latency\":\"batch_round_trip\",\"lat_p50_us\":%.2f"
            ",\"lat_p99_us\":%.2f,\"lat_max_us\":%.2f,\"cpu_pct\":%.1f"
            ",\"cpu_s_per_gb\":%.4f",
            op_name(r->op), r->block, r->batch, r->threads, r->wall_s, r->bytes,
            r->requests, r->batches, gbps(r), reqps(r), r->p50_us, r->p99_us,
            r->max_us, r->cpu_pct, bench_cpu_s_per_gb(r));
    if (r->target_cpu_pct >= 0)
      fprintf(f, ",\"target_cpu_pct\":%.1f", r->target_cpu_pct);
    else
      fputs(",\"target_cpu_pct\":null", f);
    fprintf(f, ",\"verified\":%s}\n", r->verified ? "true" : "false");
  } else {
    char bs[32], tc[16], p50[24], p99[24];
    bench_format_size(r->block, bs, sizeof bs);
    if (r->target_cpu_pct >= 0)
      snprintf(tc, sizeof tc, "%.1f", r->target_cpu_pct);
    else
      snprintf(tc, sizeof tc, "-");
    /* A stream baseline (iperf3) has no batch round trips: -1 prints "-". */
    snprintf(p50, sizeof p50, r->p50_us < 0 ? "-" : "%.1f", r->p50_us);
    snprintf(p99, sizeof p99, r->p99_us < 0 ? "-" : "%.1f", r->p99_us);
    fprintf(f,
            "%-8s %-8s %-5s %6s %5" PRIu32 " %4" PRIu32
            " %8.3f %10.0f %10s %10s %7.1f %7s %8.3f %s\n",
            r->kind, r->path, op_name(r->op), bs, r->batch, r->threads,
            gbps(r), reqps(r), p50, p99, r->cpu_pct, tc, bench_cpu_s_per_gb(r),
            r->verified ? "ok" : "-");
  }
  fflush(f);
}

/* The opening of a JSON object comparing mc with base: kind, both paths
 * and the point (the caller adds its fields and the closing brace). */
static void json_pair_head(FILE *f, const char *kind, const bench_result *mc,
                           const bench_result *base) {
  fprintf(f, "{\"kind\":\"%s\",\"transport\":", kind);
  json_str(f, mc->path);
  fputs(",\"baseline\":", f);
  json_str(f, base->path);
  fprintf(f,
          ",\"op\":\"%s\",\"block_size\":%" PRIu64 ",\"batch_size\":%" PRIu32
          ",\"threads\":%" PRIu32,
          op_name(mc->op), mc->block, mc->batch, mc->threads);
}

void bench_print_ratio(FILE *f, const bench_result *mc, const bench_result *base,
                       int json) {
  double b = gbps(base);
  double ratio = b > 0 ? gbps(mc) / b : 0.0;
  double bc = bench_cpu_s_per_gb(base);
  double cratio = bc > 0 ? bench_cpu_s_per_gb(mc) / bc : 0.0;
  if (json) {
    json_pair_head(f, "ratio", mc, base);
    fprintf(f, ",\"gb_per_s_ratio\":%.4f,\"cpu_s_per_gb_ratio\":%.4f}\n", ratio, cratio);
  } else {
    fprintf(f, "ratio    %s/%s GB/s = %.3f, cpu_s/GB = %.3f\n", mc->path, base->path,
            ratio, cratio);
  }
  fflush(f);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print_median(FILE *f, const bench_result *mc, const bench_result *base,
                        size_t n, int json) {
  if (n == 0 || n > BENCH_MEDIAN_MAX)
    return;
  double g[BENCH_MEDIAN_MAX], c[BENCH_MEDIAN_MAX];
  size_t ng = 0, nc = 0;
  for (size_t i = 0; i < n; i++) {
    double b = gbps(&base[i]), bc = bench_cpu_s_per_gb(&base[i]);
    if (b > 0)
      g[ng++] = gbps(&mc[i]) / b;
    if (bc > 0)
      c[nc++] = bench_cpu_s_per_gb(&mc[i]) / bc;
  }
  if (!ng)
    return;
  double gmed = bench_median(g, ng), cmed = nc ? bench_median(c, nc) : 0.0;
  if (json) {
    json_pair_head(f, "median", mc, base);
    fprintf(f,
            ",\"runs\":%zu,\"gb_per_s_ratio\":%.4f,\"gb_per_s_ratio_min\":%.4f"
            ",\"gb_per_s_ratio_max\":%.4f,\"cpu_s_per_gb_ratio\":%.4f}\n",
            ng, gmed, g[0], g[ng - 1], cmed);
  } else {
    char bs[32];
    bench_format_size(mc->block, bs, sizeof bs);
    fprintf(f,
            "median   %s/%s %s %s x%" PRIu32 " %" PRIu32 " thr over %zu runs: GB/s = %.3f"
            " (%.3f..%.3f), cpu_s/GB = %.3f (%.3f..%.3f)\n",
            mc->path, base->path, op_name(mc->op), bs, mc->batch, mc->threads, ng, gmed,
            g[0], g[ng - 1], cmed, nc ? c[0] : 0.0, nc ? c[nc - 1] : 0.0);
  }
  fflush(f);
}
