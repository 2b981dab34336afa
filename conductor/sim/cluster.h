/* The simulated cluster's configuration (a YAML mapping of scalars, see
 * examples/conductor/cluster.yaml) with --set KEY=VALUE overrides. */
#ifndef MC_SIM_CLUSTER_H
#define MC_SIM_CLUSTER_H

#include <stddef.h>

#include "mooncake/conductor.h"

typedef struct sim_cfg {
  char dir[4096];              /* the config file's folder */
  char profile_path[4096];
  mc_cond_profile prof;
  char decode_profile_path[4096]; /* optional: decode instances' own */
  mc_cond_profile dprof;          /* = prof when not given */
  int have_profile;
  long prefill, decode;        /* instances */
  long cache_blocks;           /* per prefill instance (LRU) */
  int global_pool;             /* one shared pool instead of private caches */
  long pool_blocks;            /* 0: prefill * cache_blocks */
  double ttft_slo_s, tbt_slo_s;
  double threshold;            /* kvcache_balancing_threshold */
  double decode_time_s;        /* t_d of the prediction */
  double load_limit;
  int decode_load_scope;       /* MC_COND_SCOPE_MEAN or _CHOSEN */
  double noise;                /* +- relative error of real prefill time */
  double sample_s;             /* CSV sampling period */
  double spread_ms;            /* longest spread of a timestamp bucket */
} sim_cfg;

void sim_cfg_defaults(sim_cfg *c);
/* Reads PATH; 0 or -1 with ERR (file:line: key: why). */
int sim_cfg_load(sim_cfg *c, const char *path, char *err, size_t errlen);
/* Applies "KEY=VALUE"; 0 or -1 with ERR. */
int sim_cfg_set(sim_cfg *c, const char *kv, char *err, size_t errlen);
/* Loads the profile and checks the whole; 0 or -1 with ERR. */
int sim_cfg_finish(sim_cfg *c, char *err, size_t errlen);

#endif
