/* mooncake-master's flags and YAML file (master_config.h).  One table
 * drives the command line, the YAML keys, the validation and --help, so
 * the three cannot disagree. */
#include "master_config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "mooncake/errors.h"

enum ftype { F_STR, F_INT, F_BOOL, F_DOUBLE, F_MS, F_SEC, F_OFF };

typedef struct flag {
  const char *name;
  enum ftype type;
  size_t off;
  size_t size;      /* strings */
  const char *dflt; /* as text, also shown by --help */
  double lo, hi;    /* numeric range */
  const char *help;
} flag;

#define O(f) offsetof(mcs_master_config, f)
#define S(f) sizeof(((mcs_master_config *)0)->f)

static const flag flags[] = {
    {"rpc_address", F_STR, O(rpc_address), S(rpc_address), "0.0.0.0", 0, 0,
     "address the RPC service listens on"},
    {"rpc_port", F_INT, O(rpc_port), 0, "50051", 0, 65535,
     "RPC port (0: any free port, printed at start)"},
    {"rpc_thread_num", F_INT, O(rpc_thread_num), 0, "0", 0, 16,
     "RPC worker threads (0: one per CPU, at most 16)"},
    {"default_kv_lease_ttl", F_MS, O(default_kv_lease_ttl_ms), 0, "10000", 1, 86400000.0 * 7,
     "read lease granted by GetReplicaList/ExistKey (ms; or with a unit: 500ms, 10s, 1m, 1h)"},
    {"default_kv_soft_pin_ttl", F_MS, O(default_kv_soft_pin_ttl_ms), 0, "1800000", 1, 86400000.0 * 365,
     "soft pin lifetime when a put asks for none (ms or with a unit)"},
    {"max_kv_soft_pin_ttl", F_MS, O(max_kv_soft_pin_ttl_ms), 0, "86400000", 1, 86400000.0 * 365,
     "longest soft pin a put may ask for (ms or with a unit)"},
    {"allow_evict_soft_pinned_objects", F_BOOL, O(allow_evict_soft_pinned_objects), 0, "true", 0, 0,
     "evict soft-pinned objects (after all others) when that is not enough"},
    {"eviction_ratio", F_DOUBLE, O(eviction_ratio), 0, "0.05", 0, 1,
     "share of capacity freed by one eviction round"},
    {"eviction_high_watermark_ratio", F_DOUBLE, O(eviction_high_watermark_ratio), 0, "0.90", 0, 1,
     "usage share above which eviction runs (1.0: only when an allocation fails)"},
    {"client_ttl", F_SEC, O(client_ttl_ms), 0, "10", 0.001, 86400,
     "a client silent (no Ping) this long is expired: segments unmounted, puts revoked (s or with a unit)"},
    {"put_start_discard_timeout_sec", F_SEC, O(put_start_discard_timeout_ms), 0, "30", 0, 86400,
     "a PutStart unfinished this long may be pre-empted by a new PutStart of the key (s)"},
    {"put_start_release_timeout_sec", F_SEC, O(put_start_release_timeout_ms), 0, "600", 0, 86400 * 7,
     "space of a pre-empted or abandoned put is reclaimed this long after its PutStart (s)"},
    {"memory_allocator", F_STR, O(memory_allocator), S(memory_allocator), "offset", 0, 0,
     "segment allocator: offset (two-level segregated fit; cachelib is not supported)"},
    {"allocation_strategy", F_STR, O(allocation_strategy), S(allocation_strategy), "random", 0, 0,
     "replica placement: random (preferred segments first, then a random start, distinct hosts first)"},
    {"cluster_id", F_STR, O(cluster_id), S(cluster_id), "mooncake_cluster", 0, 0,
     "cluster name (shown in logs)"},
    {"metrics_port", F_INT, O(metrics_port), 0, "9003", 0, 65535,
     "accepted for upstream compatibility; this master serves no HTTP metrics (see GetStats)"},
    {"enable_metric_reporting", F_BOOL, O(enable_metric_reporting), 0, "true", 0, 0,
     "log a summary line (capacity, usage, objects, clients) every log_stats_interval seconds"},
    {"log_stats_interval", F_INT, O(log_stats_interval_s), 0, "10", 0, 86400,
     "seconds between summary lines (0: none)"},
    {"auth_token_file", F_STR, O(auth_token_file), S(auth_token_file), "", 0, 0,
     "file holding a shared secret every request must carry (RequestHeader.token); empty: none"},
    {"config_path", F_STR, O(config_path), S(config_path), "", 0, 0,
     "YAML file with any of these settings (name: value); the command line wins"},
    {"enable_ha", F_OFF, O(enable_ha), 0, "false", 0, 0,
     "high availability (etcd leader election): not supported, must stay false"},
    {"enable_snapshot", F_OFF, O(enable_snapshot), 0, "false", 0, 0,
     "metadata snapshots: not supported, must stay false"},
    {"enable_offload", F_BOOL, O(enable_offload), 0, "true", 0, 0,
     "accept SSD tier segments (clients started with --ssd-offload-dir); false: refused (NOT_SUPPORTED)"},
    {"offload_on_evict", F_BOOL, O(offload_on_evict), 0, "true", 0, 0,
     "an eviction victim is first copied to a client's SSD tier when one is mounted (false: dropped)"},
    {"offload_task_timeout", F_SEC, O(offload_task_timeout_ms), 0, "60", 0.001, 86400,
     "an offload task not reported done this long is given up; the object stays in memory (s or with a unit)"},
    {"enable_http_metadata_server", F_OFF, O(enable_http_metadata_server), 0, "false", 0, 0,
     "embedded HTTP metadata server: not supported here (use mooncake-metadata-server)"},
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static const flag *find_flag(const char *name, size_t len) {
  for (size_t i = 0; i < NFLAGS; i++)
    if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
      return &flags[i];
  return NULL;
}

static int parse_bool(const char *v, int *out) {
  if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
    *out = 1;
  else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
    *out = 0;
  else
    return MC_EINVAL;
  return 0;
}

/* "250", "250ms", "10s", "1.5m", "1h" -> ms; a bare number is in unit_ms. */
static int parse_duration(const char *v, double unit_ms, double *ms) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || errno || !isfinite(x) || x < 0)
    return MC_EINVAL;
  if (!strcmp(end, ""))
    *ms = x * unit_ms;
  else if (!strcmp(end, "ms"))
    *ms = x;
  else if (!strcmp(end, "s"))
    *ms = x * 1000;
  else if (!strcmp(end, "m"))
    *ms = x * 60000;
  else if (!strcmp(end, "h"))
    *ms = x * 3600000;
  else
    return MC_EINVAL;
  return 0;
}

static int set_flag(mcs_master_config *c, const flag *f, const char *v, char *err,
                    size_t errlen) {
  char *p = (char *)c + f->off;
  char *end;
  switch (f->type) {
  case F_STR:
    if (strlen(v) >= f->size) {
      snprintf(err, errlen, "%s: value longer than %zu bytes", f->name, f->size - 1);
      return MC_EINVAL;
    }
    strcpy(p, v);
    return 0;
  case F_INT: {
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < f->lo || x > f->hi) {
      snprintf(err, errlen, "%s: '%s' is not an integer in [%g, %g]", f->name, v, f->lo, f->hi);
      return MC_EINVAL;
    }
    *(int *)p = (int)x;
    return 0;
  }
  case F_BOOL:
  case F_OFF: {
    int b;
    if (parse_bool(v, &b)) {
      snprintf(err, errlen, "%s: '%s' is not a boolean (true/false)", f->name, v);
      return MC_EINVAL;
    }
    if (f->type == F_OFF && b) {
      snprintf(err, errlen, "%s: not supported by this master (%s)", f->name, f->help);
      return MC_ENOTSUP;
    }
    *(int *)p = b;
    return 0;
  }
  case F_DOUBLE: {
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= f->lo && x <= f->hi)) {
      snprintf(err, errlen, "%s: '%s' is not a number in [%g, %g]", f->name, v, f->lo, f->hi);
      return MC_EINVAL;
    }
    *(double *)p = x;
    return 0;
  }
  case F_MS:
  case F_SEC: {
    double ms;
    double unit = f->type == F_MS ? 1 : 1000;
    if (parse_duration(v, unit, &ms) || ms / unit < f->lo || ms / unit > f->hi) {
      snprintf(err, errlen, "%s: '%s' is not a duration in [%g, %g] %s (units: ms, s, m, h)",
               f->name, v, f->lo, f->hi, f->type == F_MS ? "ms" : "s");
      return MC_EINVAL;
    }
    *(uint64_t *)p = (uint64_t)llround(ms);
    return 0;
  }
  }
  return MC_EINVAL;
}

static int validate(const mcs_master_config *c, char *err, size_t errlen) {
  if (strcmp(c->memory_allocator, "offset") != 0) {
    snprintf(err, errlen, "memory_allocator: '%s' is not supported (only 'offset')",
             c->memory_allocator);
    return MC_ENOTSUP;
  }
  if (strcmp(c->allocation_strategy, "random") != 0) {
    snprintf(err, errlen, "allocation_strategy: '%s' is not supported (only 'random')",
             c->allocation_strategy);
    return MC_ENOTSUP;
  }
  if (c->default_kv_soft_pin_ttl_ms > c->max_kv_soft_pin_ttl_ms) {
    snprintf(err, errlen, "default_kv_soft_pin_ttl is above max_kv_soft_pin_ttl");
    return MC_EINVAL;
  }
  return 0;
}

void mcs_config_defaults(mcs_master_config *c) {
  char err[256];
  memset(c, 0, sizeof(*c));
  for (size_t i = 0; i < NFLAGS; i++)
    (void)set_flag(c, &flags[i], flags[i].dflt, err, sizeof err);
}

int mcs_config_set(mcs_master_config *c, const char *name, const char *value,
                   char *err, size_t errlen) {
  const flag *f = find_flag(name, strlen(name));
  if (!f) {
    snprintf(err, errlen, "unknown setting '%s' (see --help)", name);
    return MC_EINVAL;
  }
  return set_flag(c, f, value, err, errlen);
}

int mcs_config_load_yaml(mcs_master_config *c, const char *path, char *err,
                         size_t errlen) {
  FILE *fp = fopen(path, "r");
  if (!fp) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return MC_EIO;
  }
  yaml_parser_t p;
  yaml_document_t doc;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_file(&p, fp);
  int rc = 0;
  if (!yaml_parser_load(&p, &doc)) {
    snprintf(err, errlen, "%s:%zu: YAML error: %s", path, p.problem_mark.line + 1,
             p.problem ? p.problem : "parse error");
    yaml_parser_delete(&p);
    fclose(fp);
    return MC_EINVAL;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (root && root->type != YAML_MAPPING_NODE) {
    snprintf(err, errlen, "%s:%zu: expected a mapping of setting: value", path,
             root->start_mark.line + 1);
    rc = MC_EINVAL;
  }
  for (yaml_node_pair_t *pr = root && !rc ? root->data.mapping.pairs.start : NULL;
       pr && pr < root->data.mapping.pairs.top && !rc; pr++) {
    yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
    yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
    if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
      snprintf(err, errlen, "%s:%zu: setting names and values must be scalars", path,
               k->start_mark.line + 1);
      rc = MC_EINVAL;
      break;
    }
    const char *name = (const char *)k->data.scalar.value;
    if (!strcmp(name, "config_path")) {
      snprintf(err, errlen, "%s:%zu: config_path cannot be set inside a config file", path,
               k->start_mark.line + 1);
      rc = MC_EINVAL;
      break;
    }
    char why[300];
    rc = mcs_config_set(c, name, (const char *)v->data.scalar.value, why, sizeof why);
    if (rc)
      snprintf(err, errlen, "%s:%zu: %s", path, k->start_mark.line + 1, why);
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&p);
  fclose(fp);
  return rc;
}

void mcs_config_usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--setting=value | --setting value | --bool_setting | --nobool_setting]...\n"
          "Mooncake Store master: keeps the object metadata of the pool (segments, replicas,\n"
          "leases, eviction, client liveness) and serves it over gRPC (store/proto/master.proto).\n"
          "Every setting may also be given in a YAML file (--config_path); the command line wins.\n\n",
          prog);
  for (size_t i = 0; i < NFLAGS; i++)
    fprintf(out, "  --%-32s %s (default: %s)\n", flags[i].name, flags[i].help,
            *flags[i].dflt ? flags[i].dflt : "\"\"");
  fprintf(out, "  --%-32s %s\n", "help", "print this and exit");
}

int mcs_config_parse(mcs_master_config *c, int argc, char **argv, FILE *out,
                     char *err, size_t errlen) {
  /* The YAML file first, so that the command line overrides it. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *path = NULL;
    if (!strncmp(a, "--config_path=", 14) || !strncmp(a, "-config_path=", 13))
      path = strchr(a, '=') + 1;
    else if ((!strcmp(a, "--config_path") || !strcmp(a, "-config_path")) && i + 1 < argc)
      path = argv[i + 1];
    if (path && *path) {
      int rc = mcs_config_load_yaml(c, path, err, errlen);
      if (rc)
        return rc;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-help") || !strcmp(a, "-h")) {
      mcs_config_usage(out, argv[0]);
      return 1;
    }
    if (a[0] != '-') {
      snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
      return MC_EINVAL;
    }
    a += a[1] == '-' ? 2 : 1;
    const char *eq = strchr(a, '=');
    size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
    const flag *f = find_flag(a, nlen);
    const char *val = eq ? eq + 1 : NULL;
    if (!f && !eq && nlen > 2 && !strncmp(a, "no", 2)) {
      f = find_flag(a + 2, nlen - 2); /* --noflag */
      if (f && (f->type == F_BOOL || f->type == F_OFF))
        val = "false";
      else
        f = NULL;
    }
    if (!f) {
      snprintf(err, errlen, "unknown flag '%s' (see --help)", argv[i]);
      return MC_EINVAL;
    }
    if (!val) {
      if (f->type == F_BOOL || f->type == F_OFF) {
        val = "true";
      } else if (i + 1 < argc) {
        val = argv[++i];
      } else {
        snprintf(err, errlen, "%s: missing value", f->name);
        return MC_EINVAL;
      }
    }
    int rc = set_flag(c, f, val, err, errlen);
    if (rc)
      return rc;
  }
  return validate(c, err, errlen);
}
