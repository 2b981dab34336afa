/* mooncake-master's settings: upstream mooncake_master's flag names and
 * defaults, given on the command line (--name=value, --name value, --name
 * / --noname for booleans) or in a YAML file (--config_path FILE: a
 * mapping of the same names; the command line wins).  --help lists each
 * with its default. */
#ifndef MCS_MASTER_CONFIG_H
#define MCS_MASTER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mcs_master_config {
  char rpc_address[128];
  int rpc_port;
  int rpc_thread_num;                    /* 0: one per CPU (at most 16) */
  uint64_t default_kv_lease_ttl_ms;
  uint64_t default_kv_soft_pin_ttl_ms;
  uint64_t max_kv_soft_pin_ttl_ms;
  int allow_evict_soft_pinned_objects;
  double eviction_ratio;
  double eviction_high_watermark_ratio;
  uint64_t client_ttl_ms;
  uint64_t put_start_discard_timeout_ms;
  uint64_t put_start_release_timeout_ms;
  char memory_allocator[32];
  char allocation_strategy[32];
  char cluster_id[128];
  int metrics_port;
  int enable_metric_reporting;
  char auth_token_file[512];
  char config_path[512];
  int log_stats_interval_s;              /* summary line period; 0: never */
  int enable_ha, enable_snapshot, enable_offload, enable_http_metadata_server;
  int offload_on_evict;                  /* evict to an SSD tier when one is mounted */
  uint64_t offload_task_timeout_ms;      /* an unreported offload task is given up */
} mcs_master_config;

/* Upstream's defaults. */
void mcs_config_defaults(mcs_master_config *c);

/* Applies --config_path's YAML (if any), then the other arguments.
 * Returns 0; 1 when --help was printed to out; MC_EINVAL / MC_ENOTSUP /
 * MC_EIO with err saying which argument, or which file and line. */
int mcs_config_parse(mcs_master_config *c, int argc, char **argv, FILE *out,
                     char *err, size_t errlen);

/* Loads one YAML file into c (a flat mapping name: value). */
int mcs_config_load_yaml(mcs_master_config *c, const char *path, char *err,
                         size_t errlen);

/* Sets one setting from text, as the command line would. */
int mcs_config_set(mcs_master_config *c, const char *name, const char *value,
                   char *err, size_t errlen);

/* Writes --help. */
void mcs_config_usage(FILE *out, const char *prog);

#endif
