/* See cluster.h. */
#include "cluster.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void sim_cfg_defaults(sim_cfg *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->dir, sizeof c->dir, ".");
  c->prefill = 16;
  c->decode = 8;
  c->cache_blocks = 6000;
  c->ttft_slo_s = 30;
  c->tbt_slo_s = 0.1;
  c->threshold = 1.5;
  c->decode_time_s = 20;
  c->load_limit = 1.0;
  c->noise = 0.1;
  c->sample_s = 10;
  c->spread_ms = 3000;
}

static int num(const char *key, const char *v, double lo, double hi, double *out, char *err,
               size_t errlen) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(d) || d < lo || d > hi) {
    snprintf(err, errlen, "%s: '%s' is not a number in [%g, %g]", key, v, lo, hi);
    return -1;
  }
  *out = d;
  return 0;
}

static int set(sim_cfg *c, const char *key, const char *v, char *err, size_t errlen) {
  double d;
  struct {
    const char *k;
    double lo, hi;
    double *dst;
    long *ldst;
  } keys[] = {
      {"prefill", 1, MC_COND_MAX_INSTANCES / 2 - 1, NULL, &c->prefill},
      {"decode", 1, MC_COND_MAX_INSTANCES / 2 - 1, NULL, &c->decode},
      {"cache_blocks", 0, 1e8, NULL, &c->cache_blocks},
      {"pool_blocks", 0, 1e9, NULL, &c->pool_blocks},
      {"ttft_slo_s", 1e-6, 1e6, &c->ttft_slo_s, NULL},
      {"tbt_slo_s", 1e-6, 1e3, &c->tbt_slo_s, NULL},
      {"kvcache_balancing_threshold", 1, 1e9, &c->threshold, NULL},
      {"decode_time_s", 1e-6, 1e6, &c->decode_time_s, NULL},
      {"load_limit", 1e-6, 1e6, &c->load_limit, NULL},
      {"noise", 0, 0.9, &c->noise, NULL},
      {"sample_s", 1e-3, 1e6, &c->sample_s, NULL},
      {"spread_ms", 0, 1e9, &c->spread_ms, NULL},
  };
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    if (strcmp(keys[i].k, key))
      continue;
    if (num(key, v, keys[i].lo, keys[i].hi, &d, err, errlen))
      return -1;
    if (keys[i].ldst) {
      if (d != floor(d)) {
        snprintf(err, errlen, "%s: '%s' is not a whole number", key, v);
        return -1;
      }
      *keys[i].ldst = (long)d;
    } else {
      *keys[i].dst = d;
    }
    return 0;
  }
  if (!strcmp(key, "decode_load_scope")) {
    if (!strcmp(v, "mean"))
      c->decode_load_scope = MC_COND_SCOPE_MEAN;
    else if (!strcmp(v, "chosen"))
      c->decode_load_scope = MC_COND_SCOPE_CHOSEN;
    else {
      snprintf(err, errlen, "decode_load_scope: '%s' is not mean or chosen", v);
      return -1;
    }
    return 0;
  }
  if (!strcmp(key, "global_pool")) {
    if (!strcmp(v, "true") || !strcmp(v, "1"))
      c->global_pool = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
      c->global_pool = 0;
    else {
      snprintf(err, errlen, "global_pool: '%s' is not true or false", v);
      return -1;
    }
    return 0;
  }
  if (!strcmp(key, "profile") || !strcmp(key, "decode_profile")) {
    char *dst = key[0] == 'p' ? c->profile_path : c->decode_profile_path;
    if (!*v) {
      snprintf(err, errlen, "%s: empty path", key);
      return -1;
    }
    size_t nd = v[0] == '/' ? 0 : strlen(c->dir) + 1, nv = strlen(v);
    if (nd + nv >= sizeof c->profile_path) {
      snprintf(err, errlen, "%s: path too long", key);
      return -1;
    }
    if (nd) {
      memcpy(dst, c->dir, nd - 1);
      dst[nd - 1] = '/';
    }
    memcpy(dst + nd, v, nv + 1);
    c->have_profile = 0;
    return 0;
  }
  snprintf(err, errlen, "unknown key '%s'", key);
  return -1;
}

int sim_cfg_set(sim_cfg *c, const char *kv, char *err, size_t errlen) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv) {
    snprintf(err, errlen, "--set '%s': expected KEY=VALUE", kv);
    return -1;
  }
  char key[128];
  size_t n = (size_t)(eq - kv);
  if (n >= sizeof key) {
    snprintf(err, errlen, "--set: key too long");
    return -1;
  }
  memcpy(key, kv, n);
  key[n] = 0;
  char msg[256];
  if (set(c, key, eq + 1, msg, sizeof msg)) {
    snprintf(err, errlen, "--set: %s", msg);
    return -1;
  }
  return 0;
}

int sim_cfg_load(sim_cfg *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  const char *slash = strrchr(path, '/');
  if (slash && (size_t)(slash - path) < sizeof c->dir) {
    memcpy(c->dir, path, (size_t)(slash - path));
    c->dir[slash - path] = 0;
  }
  yaml_parser_t ps;
  yaml_document_t doc;
  yaml_parser_initialize(&ps);
  yaml_parser_set_input_file(&ps, f);
  int rc = 0;
  if (!yaml_parser_load(&ps, &doc)) {
    snprintf(err, errlen, "%s:%lu: %s", path, (unsigned long)ps.problem_mark.line + 1,
             ps.problem ? ps.problem : "YAML error");
    yaml_parser_delete(&ps);
    fclose(f);
    return -1;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || root->type != YAML_MAPPING_NODE) {
    snprintf(err, errlen, "%s:1: expected a mapping", path);
    rc = -1;
  }
  for (yaml_node_pair_t *p = rc ? NULL : root->data.mapping.pairs.start;
       p && p < root->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(&doc, p->key);
    yaml_node_t *v = yaml_document_get_node(&doc, p->value);
    char msg[256];
    if (!k || !v || k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
      snprintf(err, errlen, "%s:%lu: expected KEY: scalar value", path,
               (unsigned long)(k ? k->start_mark.line : 0) + 1);
      rc = -1;
      break;
    }
    if (set(c, (const char *)k->data.scalar.value, (const char *)v->data.scalar.value, msg,
            sizeof msg)) {
      snprintf(err, errlen, "%s:%lu: %s", path, (unsigned long)k->start_mark.line + 1, msg);
      rc = -1;
      break;
    }
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&ps);
  fclose(f);
  return rc;
}

int sim_cfg_finish(sim_cfg *c, char *err, size_t errlen) {
  if (!c->profile_path[0]) {
    snprintf(err, errlen, "config: missing key 'profile'");
    return -1;
  }
  if (mc_cond_profile_load(c->profile_path, &c->prof, err, errlen))
    return -1;
  c->dprof = c->prof;
  if (c->decode_profile_path[0] &&
      mc_cond_profile_load(c->decode_profile_path, &c->dprof, err, errlen))
    return -1;
  c->have_profile = 1;
  if (!c->pool_blocks)
    c->pool_blocks = c->prefill * c->cache_blocks;
  return 0;
}
