/* mc-conductor-sim: replays a Mooncake trace over a simulated P+D cluster
 * with libmooncake-conductor making every decision, and prints per policy
 * the requests served within both SLOs, rejected, TTFT, TBT, prefix hit
 * ratio and prefill GPU time.  Deterministic for a seed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "sim.h"
#include "trace.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: mc-conductor-sim --trace FILE --config YAML\n"
          "         --policy random|load-balance|cache-local|cache-global\n"
          "         --admission baseline|early|predicted [--speed X] [--seed N] [--json]\n"
          "         [--limit N] [--set KEY=VALUE]... [--csv FILE]\n"
          "  --speed X      replay X times faster than the trace (default 1)\n"
          "  --seed N       seeds the random policy and the prefill-time noise (default 1)\n"
          "  --json         one JSON object on stdout instead of text\n"
          "  --limit N      only the first N requests of the trace\n"
          "  --set K=V      overrides a key of the cluster config\n"
          "  --csv FILE     load curves over time (t_s,prefill_load,decode_load,...)\n");
}

static int need(int argc, char **argv, int i) {
  if (i + 1 >= argc) {
    fprintf(stderr, "mc-conductor-sim: %s needs a value\n", argv[i]);
    usage(stderr);
    exit(2);
  }
  return i + 1;
}

static double parse_num(const char *opt, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end || errno || !(d >= lo && d <= hi)) {
    fprintf(stderr, "mc-conductor-sim: %s: '%s' is not a number in [%g, %g]\n", opt, v, lo, hi);
    exit(2);
  }
  return d;
}

int main(int argc, char **argv) {
  const char *trace = NULL, *config = NULL, *csv = NULL;
  sim_opts o = {.policy = NULL, .admission = NULL, .seed = 1};
  double speed = 1;
  size_t limit = 0;
  int json = 0;
  const char *sets[64];
  int nsets = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--trace"))
      trace = argv[i = need(argc, argv, i)];
    else if (!strcmp(a, "--config"))
      config = argv[i = need(argc, argv, i)];
    else if (!strcmp(a, "--policy"))
      o.policy = argv[i = need(argc, argv, i)];
    else if (!strcmp(a, "--admission"))
      o.admission = argv[i = need(argc, argv, i)];
    else if (!strcmp(a, "--speed"))
      speed = parse_num(a, argv[i = need(argc, argv, i)], 1e-3, 1e4);
    else if (!strcmp(a, "--seed"))
      o.seed = (uint64_t)parse_num(a, argv[i = need(argc, argv, i)], 0, 9007199254740992.0);
    else if (!strcmp(a, "--limit"))
      limit = (size_t)parse_num(a, argv[i = need(argc, argv, i)], 1, 1e9);
    else if (!strcmp(a, "--json"))
      json = 1;
    else if (!strcmp(a, "--csv"))
      csv = argv[i = need(argc, argv, i)];
    else if (!strcmp(a, "--set")) {
      i = need(argc, argv, i);
      if (nsets == 64) {
        fprintf(stderr, "mc-conductor-sim: too many --set\n");
        return 2;
      }
      sets[nsets++] = argv[i];
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "mc-conductor-sim: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!trace || !config || !o.policy || !o.admission) {
    fprintf(stderr, "mc-conductor-sim: --trace, --config, --policy and --admission are needed\n");
    usage(stderr);
    return 2;
  }
  if (!mc_cond_prefill_policy(o.policy)) {
    fprintf(stderr, "mc-conductor-sim: unknown policy '%s'\n", o.policy);
    return 2;
  }
  if (!mc_cond_admit_policy(o.admission)) {
    fprintf(stderr, "mc-conductor-sim: unknown admission '%s'\n", o.admission);
    return 2;
  }
  char err[512] = "";
  sim_cfg cfg;
  sim_cfg_defaults(&cfg);
  if (sim_cfg_load(&cfg, config, err, sizeof err)) {
    fprintf(stderr, "mc-conductor-sim: %s\n", err);
    return 1;
  }
  for (int k = 0; k < nsets; k++)
    if (sim_cfg_set(&cfg, sets[k], err, sizeof err)) {
      fprintf(stderr, "mc-conductor-sim: %s\n", err);
      return 2;
    }
  if (sim_cfg_finish(&cfg, err, sizeof err)) {
    fprintf(stderr, "mc-conductor-sim: %s\n", err);
    return 1;
  }
  sim_trace t;
  if (sim_trace_load(trace, limit, speed, cfg.spread_ms, &t, err, sizeof err)) {
    fprintf(stderr, "mc-conductor-sim: %s\n", err);
    return 1;
  }
  FILE *cf = NULL;
  if (csv && !(cf = fopen(csv, "w"))) {
    fprintf(stderr, "mc-conductor-sim: %s: %s\n", csv, strerror(errno));
    sim_trace_free(&t);
    return 1;
  }
  o.csv = cf;
  sim_result r;
  int rc = sim_run(&cfg, &t, &o, &r, err, sizeof err);
  sim_trace_free(&t);
  if (cf && fclose(cf) && !rc) {
    snprintf(err, sizeof err, "%s: write error", csv);
    rc = -1;
  }
  if (rc) {
    fprintf(stderr, "mc-conductor-sim: %s\n", err);
    return 1;
  }
  if (json) {
    printf("{\"policy\": \"%s\", \"admission\": \"%s\", \"seed\": %llu, \"speed\": %g, "
           "\"prefill_instances\": %ld, \"decode_instances\": %ld, \"cache_blocks\": %ld, "
           "\"global_pool\": %s, "
           "\"requests\": %llu, \"served\": %llu, \"rejected\": %llu, "
           "\"rejected_ttft\": %llu, \"rejected_decode_early\": %llu, "
           "\"rejected_predicted\": %llu, \"rejected_at_decode\": %llu, "
           "\"slo_attained\": %llu, \"slo_attained_ratio\": %.6f, "
           "\"ttft_mean_s\": %.6f, \"ttft_p50_s\": %.6f, \"ttft_p99_s\": %.6f, "
           "\"tbt_p90_s\": %.6f, \"prefix_hit_ratio\": %.6f, \"prefill_gpu_s\": %.3f, "
           "\"wasted_prefill_s\": %.3f, \"fetched_blocks\": %.0f, \"decode_mean_s\": %.3f, "
           "\"decode_biased_s\": %.3f, \"sim_end_s\": %.3f}\n",
           o.policy, o.admission, (unsigned long long)o.seed, speed, cfg.prefill, cfg.decode,
           cfg.cache_blocks, cfg.global_pool ? "true" : "false",
           (unsigned long long)r.requests, (unsigned long long)r.served,
           (unsigned long long)r.rejected, (unsigned long long)r.rej_reason[MC_COND_REJ_TTFT],
           (unsigned long long)r.rej_reason[MC_COND_REJ_DECODE],
           (unsigned long long)r.rej_reason[MC_COND_REJ_PREDICTED],
           (unsigned long long)r.rej_reason[MC_COND_REJ_DECODE_LOCAL],
           (unsigned long long)r.slo_attained,
           r.requests ? (double)r.slo_attained / (double)r.requests : 0.0, r.ttft_mean_s,
           r.ttft_p50_s, r.ttft_p99_s, r.tbt_p90_s, r.prefix_hit_ratio, r.prefill_gpu_s,
           r.wasted_prefill_s, r.fetched_blocks, r.decode_mean_s, r.decode_biased_s, r.end_s);
  } else {
    printf("policy %s, admission %s, seed %llu, speed %g: %ldP + %ldD, cache %ld blocks%s\n",
           o.policy, o.admission, (unsigned long long)o.seed, speed, cfg.prefill, cfg.decode,
           cfg.cache_blocks, cfg.global_pool ? " (global pool)" : "");
    printf("  requests %llu, served %llu, rejected %llu (ttft %llu, decode %llu, predicted %llu, "
           "at decode %llu)\n",
           (unsigned long long)r.requests, (unsigned long long)r.served,
           (unsigned long long)r.rejected, (unsigned long long)r.rej_reason[MC_COND_REJ_TTFT],
           (unsigned long long)r.rej_reason[MC_COND_REJ_DECODE],
           (unsigned long long)r.rej_reason[MC_COND_REJ_PREDICTED],
           (unsigned long long)r.rej_reason[MC_COND_REJ_DECODE_LOCAL]);
    printf("  within both SLOs %llu (%.1f%%)\n", (unsigned long long)r.slo_attained,
           r.requests ? 100.0 * (double)r.slo_attained / (double)r.requests : 0.0);
    printf("  TTFT mean %.3f s, p50 %.3f s, p99 %.3f s; TBT p90 %.4f s\n", r.ttft_mean_s,
           r.ttft_p50_s, r.ttft_p99_s, r.tbt_p90_s);
    printf("  prefix hit ratio %.4f, prefill GPU time %.1f s (wasted %.1f s), fetched %.0f blocks\n",
           r.prefix_hit_ratio, r.prefill_gpu_s, r.wasted_prefill_s, r.fetched_blocks);
  }
  return 0;
}
