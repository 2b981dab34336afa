/* Internal: the engine configuration.  One schema (the key table in
 * config.c: key, variable, type, range, validator, field) drives the three
 * ways to set the engine's own keys, applied in this order:
 *   1. the YAML file (mc_engine_opts.config_path, else $MC_CONFIG),
 *   2. the MC_* environment variables,
 *   3. the mc_engine_opts members,
 * so a value is checked by the same code, and a bad one gets the same
 * reason, whichever way it came; only the place differs: "file:line: key
 * 'k'", the variable's name, or "mc_engine_opts.<member>".
 *
 * File format (see examples/mooncake.yaml for the documented example):
 *   segment_name: "host:port"     # MC_SEGMENT_NAME, opts.segment_name
 *   listen: "127.0.0.1:0"         # MC_LISTEN, opts.listen; port 0 = any
 *   metadata: p2p                 # MC_METADATA, opts.metadata; or
 *                                 #   etcd://h:p[,h:p], http://h:p/path
 *   plugin_path: [dir, file.so]   # opts.plugin_path (searched first); or
 *                                 #   "dir:dir"
 *   cluster_token_file: /path     # MC_CLUSTER_TOKEN_FILE
 *   transports: auto              # MC_TRANSPORTS, opts.transports; or
 *                                 #   "tcp,shm", [tcp, shm],
 *                                 #   {tcp: {connections: 4}}
 *   transport_order: [shm, tcp]   # or "shm,tcp"
 *   slice_size: 64K               # MC_SLICE_SIZE, 1..1G
 *   retry_count: 3                # MC_RETRY_COUNT, 0..64
 *   timeout_ms: 30000             # MC_TIMEOUT_MS
 *   log_level: warn               # MC_LOG_LEVEL
 *   topology:
 *     "cpu:0": {preferred: [tcp:conn0], fallback: [tcp:conn1]}
 * Unknown keys and wrong types are errors naming file:line and key.  An
 * empty variable and a NULL or "" opts member count as unset.
 *
 * Transport names are [a-z0-9_]+ (at most 63 characters): they name plugin
 * files (mc-transport-<name>.so) and variables (MC_TRANSPORT_<NAME>_<KEY>).
 *
 * Per-transport keys (transports.<name>.<key>, or the variable
 * MC_TRANSPORT_<NAME>_<KEY>, which wins) are kept as text here; once the
 * plugin is loaded, mc_config_check_plugin() checks each against the
 * plugin's params (known key, type, range) before init().
 *
 * Optional transports.  A transport the configuration names must start,
 * or engine creation fails naming it, its plugin path and the reason.  The
 * core-reserved key `optional` (a bool, like the plugin's own keys) relaxes
 * that for one transport, so it is used when it can start and skipped
 * (with a warning) when its plugin is missing, refused, or its init fails:
 *     transports: {tcp: {}, rdma: {optional: true}}
 *     MC_TRANSPORT_RDMA_OPTIONAL=1
 * `transports: auto` treats every plugin found as optional.  A bad value
 * for an optional transport's keys is still an error: the file is wrong.
 *
 * Sizes (mc_config_parse_size): decimal digits, optionally followed by one
 * multiplier K, M, G or T (either case; binary: 1K = 1024) and then
 * optionally "B" or "iB": 4096, 4096B, 64K, 64k, 64KB, 64KiB, 1M, 2G.  The
 * unit is an upper-case B only: "64kb" is refused, since a lower-case b
 * reads as bits.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/engine.h"    /* mc_engine_opts */
#include "mooncake/transport.h" /* mc_param_info, mc_transport_ops */

#define MC_CONFIG_ERR_MAX 512
#define MC_CONFIG_NAME_MAX 63 /* transport name length */
#define MC_CONFIG_NKEYS 12    /* rows of the key table in config.c */

/* Where a value of the engine's own keys came from. */
enum mc_config_src {
  MC_SRC_DEFAULT = 0,
  MC_SRC_FILE,
  MC_SRC_ENV,
  MC_SRC_OPTS,
};

typedef struct mc_config_origin {
  int src;  /* enum mc_config_src */
  int line; /* MC_SRC_FILE: 1-based line of the value */
} mc_config_origin;

/* One key under transports.<name>: value kept as text with its position. */
typedef struct mc_config_param {
  char *key;
  char *value;
  int line;  /* 1-based line in the file; 0 when set from env */
  char *var; /* the MC_TRANSPORT_<NAME>_<KEY> variable that set it, as
                spelled in the environment; NULL when set by the file */
} mc_config_param;

typedef struct mc_config_transport {
  char *name;
  int line;
  mc_config_param *params; /* the plugin's keys (never `optional`) */
  size_t nparams;
  int optional; /* the core's `optional` key: skip it if it cannot start */
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
  int cluster_token_line;   /* its line in the file; 0 when set otherwise */
  mc_config_origin origin[MC_CONFIG_NKEYS]; /* per key, see mc_config_where */
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
 * Errors name the variable as spelled in the environment.  Every variable
 * is checked before any is applied: on MC_EINVAL cfg is unchanged. */
int mc_config_apply_env(mc_config *cfg, char *err, size_t errlen);
/* As mc_config_apply_env, for an engine whose mc_engine_opts.transports
 * (opts_transports, NULL or "" when unset) will replace the list: then
 * MC_TRANSPORT_<NAME>_* may name the transports of that list. */
int mc_config_apply_env_for(mc_config *cfg, const char *opts_transports, char *err,
                            size_t errlen);

/* Applies the members of o (segment_name, listen, metadata, transports,
 * plugin_path; config_path is the caller's to load) with the same checks;
 * errors name "mc_engine_opts.<member>".  transports replaces the list as
 * MC_TRANSPORTS does ("auto" keeps every transport's options); plugin_path
 * entries are searched before the file's.  On MC_EINVAL cfg is unchanged.
 * o == NULL is a no-op. */
int mc_config_apply_opts(mc_config *cfg, const mc_engine_opts *o, char *err,
                         size_t errlen);

/* Writes where the engine key `key` (a top-level YAML key, e.g. "metadata")
 * was set, for messages about its value found later (a metadata backend
 * that cannot open, a token file that cannot be read):
 * "mooncake.yaml:4: key 'metadata'", "MC_METADATA",
 * "mc_engine_opts.metadata", or "metadata (default)". */
void mc_config_where(const mc_config *cfg, const char *key, char *buf,
                     size_t len);

/* Where `key` was set: enum mc_config_src (MC_SRC_DEFAULT when never, or
 * when key is not an engine key). */
int mc_config_src(const mc_config *cfg, const char *key);

/* 0 when name is a transport name ([a-z0-9_]+, 1..63 characters), else
 * MC_EINVAL with "transport name '...' must match [a-z0-9_]+ ..." in why. */
int mc_config_check_name(const char *name, char *why, size_t whylen);

/* Finds transports.<name>, NULL if absent. */
const mc_config_transport *mc_config_find_transport(const mc_config *cfg,
                                                    const char *name);

/* Adds (or returns) transports.<name>; NULL on ENOMEM. */
mc_config_transport *mc_config_add_transport(mc_config *cfg, const char *name);

/* The value parsers (mc_config_parse_size/_int/_bool) live in
 * config_value.h, a module of their own so the conformance tool can link
 * them without the rest of the core. */
#include "config_value.h"

/* ---- plugin params (mc_transport_ops.params) ----
 * The array is read with the plugin's stride: param_info_size, or
 * MC_PARAM_INFO_V1_SIZE when it is 0 (a 1.0 plugin).  Each entry is copied
 * (min(stride, sizeof)) into a zeroed mc_param_info, so a 1.0 entry reads
 * with min = max = 0 (no range) and a newer, longer entry's tail is
 * ignored. */

/* Copies entry i of ops->params into *out.  Returns 1 for an entry, 0 at
 * the MC_PARAM_END entry (or when params is NULL).  The caller walks from
 * i = 0 and stops at 0; mc_config_check_plugin has checked the table
 * (stride, END within MC_PARAM_MAX entries) before anyone else reads it. */
#define MC_PARAM_MAX 256
int mc_param_read(const mc_transport_ops *ops, size_t i, mc_param_info *out);

/* Finds `key` in ops->params: 0 and *out, or MC_ENOENT. */
int mc_param_find(const mc_transport_ops *ops, const char *key,
                  mc_param_info *out);

/* Checks text against a param's type and range: 0, or MC_EINVAL with the
 * reason ("expected an integer 1..64, got '100'") in why. */
int mc_param_check_value(const mc_param_info *pi, const char *text, char *why,
                         size_t whylen);

/* Checks transport `name`'s plugin (loaded from `path`) against the
 * configuration, before its init():
 *   - its params table: the stride (a table of ABI minor >= 1 must set
 *     param_info_size), an END within MC_PARAM_MAX entries, names
 *     [a-z0-9_]+ and unique and not the core's `optional`, known types,
 *     min <= max, and every default_text well typed and in range:
 *     MC_EABI, "plugin 'shm' (path): ...";
 *   - every configured key of transports.<name>: known to the plugin, well
 *     typed and in range: MC_EINVAL naming "file:line: key
 *     'transports.<name>.<key>'" or the variable, and the reason, e.g.
 *     "MC_TRANSPORT_TCP_BOGUS: unknown key 'bogus' for transport tcp
 *     (known: connections, port, ...)". */
int mc_config_check_plugin(const mc_config *cfg, const char *name,
                           const char *path, const mc_transport_ops *ops,
                           char *err, size_t errlen);

void mc_config_free(mc_config *cfg);

#endif
