/* The trace replay: a discrete-event simulation of P prefill and D decode
 * instances, with libmooncake-conductor making every decision. */
#ifndef MC_SIM_SIM_H
#define MC_SIM_SIM_H

#include <stdint.h>
#include <stdio.h>

#include "cluster.h"
#include "trace.h"

typedef struct sim_opts {
  const char *policy;     /* prefill policy name */
  const char *admission;  /* admission policy name */
  uint64_t seed;
  FILE *csv;              /* load curves, or NULL */
} sim_opts;

typedef struct sim_result {
  uint64_t requests, served, rejected;
  uint64_t rej_reason[6];          /* by enum mc_cond_reject */
  uint64_t slo_attained;
  double ttft_mean_s, ttft_p50_s, ttft_p99_s, tbt_p90_s;
  double prefix_hit_ratio;         /* reused blocks / blocks prefilled */
  double prefill_gpu_s;            /* prefill compute time, all instances */
  double wasted_prefill_s;         /* of requests refused at decode */
  double fetched_blocks;           /* blocks fetched from another instance */
  double end_s;                    /* simulated time at the last event */
  double decode_mean_s;            /* mean time from decode admission to the last token */
  double decode_biased_s;          /* length-biased mean, sum T^2 / sum T: the mean
                                      duration of a request found decoding at a
                                      random instant */
} sim_result;

/* 0, or -1 with ERR. */
int sim_run(const sim_cfg *cfg, const sim_trace *t, const sim_opts *o, sim_result *res,
            char *err, size_t errlen);

#endif
