/* Internal: the engine configuration, loaded from YAML (libyaml), then
 * overridden by MC_* env vars, then by mc_engine_opts.
 *
 * File format (see examples/mooncake.yaml for the documented example):
 *   segment_name: "host:port"     # default: the handshake listener address
 *   listen: "127.0.0.1:0"         # handshake listener; port 0 = any free port
 *   metadata: p2p                 # or etcd://h:p[,h:p], http://h:p/path
 *   plugin_path: [dir, file.so]   # or "dir:dir"
 *   transports: auto              # or [tcp, shm], or {tcp: {connections: 4}}
 *   slice_size: 64K
 *   retry_count: 3
 *   timeout_ms: 30000
 *   log_level: warn
 *   topology:
 *     "cpu:0": {preferred: [tcp:conn0], fallback: [tcp:conn1]}
 * Unknown keys and wrong types are errors naming file:line and key.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define MC_CONFIG_ERR_MAX 512

/* One key under transports.<name>: value kept as text with its position. */
typedef struct mc_config_param {
  char *key;
  char *value;
  int line; /* 1-based line in the file; 0 when set from env */
} mc_config_param;

typedef struct mc_config_transport {
  char *name;
  int line;
  mc_config_param *params;
  size_t nparams;
} mc_config_transport;

/* Rail list for one memory location: rails are "transport:rail" or "rail". */
typedef struct mc_config_topo {
  char *location; /* "cpu:0", "cuda:3" */
  char **preferred;
  size_t npreferred;
  char **fallback;
  size_t nfallback;
  int line;
} mc_config_topo;

typedef struct mc_config {
  char *source;       /* file path, "<env>" or "<defaults>"; for messages */
  char *segment_name; /* NULL = derive from listener */
  char *listen;       /* default "127.0.0.1:0" */
  char *metadata;     /* default "p2p" */
  char **plugin_path; /* search entries in order */
  size_t nplugin_path;
  int transports_auto;             /* 1 = load every plugin found */
  mc_config_transport *transports; /* in preference order */
  size_t ntransports;
  char **transport_order; /* optional preference order (selection) */
  size_t ntransport_order;
  uint64_t slice_size;  /* default 65536 */
  int slice_size_set;   /* set by the file or MC_SLICE_SIZE: wins over the
                           transports' own slice_size hints */
  uint32_t retry_count; /* default 3 */
  uint32_t timeout_ms;  /* per-transfer deadline, default 30000 */
  int log_level;        /* default from MC_LOG_LEVEL, else warn */
  mc_config_topo *topology;
  size_t ntopology;
  char *cluster_token_file; /* NULL = no cluster token (token.h) */
  int cluster_token_line;   /* its line in the file; 0 when set from env */
} mc_config;

/* Built-in defaults (transports: [tcp]).  NULL on ENOMEM. */
mc_config *mc_config_new_default(void);

/* Parses a YAML file over the defaults.  On error returns MC_E* and writes
 * "path:line: key: problem" into err. */
int mc_config_load_file(const char *path, mc_config **out, char *err,
                        size_t errlen);

/* Same from a string; name is used in messages in place of a path. */
int mc_config_load_string(const char *yaml, size_t len, const char *name,
                          mc_config **out, char *err, size_t errlen);

/* Applies MC_SEGMENT_NAME, MC_LISTEN, MC_METADATA, MC_CLUSTER_TOKEN_FILE,
 * MC_TRANSPORTS,
 * MC_SLICE_SIZE, MC_RETRY_COUNT, MC_TIMEOUT_MS, MC_LOG_LEVEL and
 * MC_TRANSPORT_<NAME>_<KEY> (per-transport option) from the environment.
 * Errors name the variable. */
int mc_config_apply_env(mc_config *cfg, char *err, size_t errlen);

/* Finds transports.<name>, NULL if absent. */
const mc_config_transport *mc_config_find_transport(const mc_config *cfg,
                                                    const char *name);

/* Adds (or returns) transports.<name>; NULL on ENOMEM. */
mc_config_transport *mc_config_add_transport(mc_config *cfg, const char *name);

/* Parses sizes like "64K", "1M", "4096"; -1 on error. */
int mc_config_parse_size(const char *text, uint64_t *out);

void mc_config_free(mc_config *cfg);

#endif
