/* config.c - the engine configuration's life cycle: defaults, the
 * transports list, freeing, and the small helpers the other parts share.
 * The configuration is split along its schema:
 *   config_schema.c  the key table (one row per key) and its validators,
 *                    the text parser and the commit of one key's value
 *   config_yaml.c    the YAML file: libyaml -> a node tree -> mc_config
 *   config_env.c     MC_* variables and mc_engine_opts over a config
 *   config_params.c  the value parsers and each plugin's params checks
 *
 * Defaults, the YAML file (libyaml), MC_* environment overrides and
 * mc_engine_opts are all three driven by one key table (the schema), plus
 * the checks of each plugin's own keys against its params table.
 *
 * The YAML text is first turned into a small tree of nodes that keep their
 * line numbers (so every message can name file:line and key), then the tree
 * is checked against the schema.  The input is untrusted: it is capped in
 * size, nesting depth, node count, entries per collection and scalar length;
 * aliases are refused (no alias expansion, so no "billion laughs"), and so
 * are multiple documents and duplicate keys.
 *
 * A scalar value, from whichever source, goes through mc_cfg_parse_text()
 * for its key's row and then mc_cfg_commit(): one check and one conversion
 * per key, so the file, the variable and the opts member accept the same
 * values and refuse the others with the same reason.  Only the YAML-only shapes (sequences,
 * mappings, the topology) have parsers of their own, and their items are
 * checked by the same validators.
 *
 * Under `transports: auto` the transports array holds only the transports
 * that were given options (the engine loads every plugin it finds). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_p.h"

/* ---------- small helpers ---------- */

void mc_cfg_free_strv(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void free_transport(mc_config_transport *t) {
  for (size_t i = 0; i < t->nparams; i++) {
    free(t->params[i].key);
    free(t->params[i].value);
    free(t->params[i].var);
  }
  free(t->params);
  free(t->name);
}

void mc_cfg_free_transports(mc_config_transport *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    free_transport(&t[i]);
  free(t);
}

void mc_cfg_free_topology(mc_config_topo *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(t[i].location);
    mc_cfg_free_strv(t[i].preferred, t[i].npreferred);
    mc_cfg_free_strv(t[i].fallback, t[i].nfallback);
  }
  free(t);
}

void mc_config_free(mc_config *cfg) {
  if (!cfg)
    return;
  free(cfg->source);
  free(cfg->segment_name);
  free(cfg->listen);
  free(cfg->metadata);
  free(cfg->cluster_token_file);
  mc_cfg_free_strv(cfg->plugin_path, cfg->nplugin_path);
  mc_cfg_free_transports(cfg->transports, cfg->ntransports);
  mc_cfg_free_strv(cfg->transport_order, cfg->ntransport_order);
  mc_cfg_free_topology(cfg->topology, cfg->ntopology);
  free(cfg);
}

/* Appends s (taking ownership) to a string vector; frees s on failure. */
int mc_cfg_strv_push(char ***v, size_t *n, char *s) {
  if (!s)
    return MC_ENOMEM;
  char **nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv) {
    free(s);
    return MC_ENOMEM;
  }
  nv[(*n)++] = s;
  *v = nv;
  return 0;
}

int mc_cfg_strv_contains(char *const *v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return 1;
  return 0;
}

/* Copies text for a message: printable ASCII only, cut to fit outlen. */
void mc_cfg_show(const char *text, char *out, size_t outlen) {
  size_t i = 0, j = 0;
  for (; text[i] && j + 4 < outlen; i++) {
    unsigned char ch = (unsigned char)text[i];
    out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  if (text[i]) {
    memcpy(out + j, "...", 3);
    j += 3;
  }
  out[j] = '\0';
}

/* A size for messages: "64K", "1G", "4097". */
void mc_cfg_fmt_size(uint64_t v, char *out, size_t n) {
  static const char units[] = "KMGTPE";
  int u = -1;
  while (v && v % 1024 == 0 && u < 5) {
    v /= 1024;
    u++;
  }
  if (u < 0)
    snprintf(out, n, "%" PRIu64, v);
  else
    snprintf(out, n, "%" PRIu64 "%c", v, units[u]);
}

/* ---------- defaults and transports ---------- */

mc_config *mc_config_new_default(void) {
  mc_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg)
    return NULL;
  cfg->source = strdup("<defaults>");
  cfg->listen = strdup("127.0.0.1:0");
  cfg->metadata = strdup("p2p");
  cfg->slice_size = 65536;
  cfg->retry_count = 3;
  cfg->timeout_ms = 30000;
  cfg->log_level = mc_log_env_level();
  if (!cfg->source || !cfg->listen || !cfg->metadata ||
      !mc_config_add_transport(cfg, "tcp")) {
    mc_config_free(cfg);
    return NULL;
  }
  return cfg;
}

const mc_config_transport *mc_config_find_transport(const mc_config *cfg,
                                                    const char *name) {
  for (size_t i = 0; cfg && name && i < cfg->ntransports; i++)
    if (strcmp(cfg->transports[i].name, name) == 0)
      return &cfg->transports[i];
  return NULL;
}

mc_config_transport *mc_config_add_transport(mc_config *cfg, const char *name) {
  if (!cfg || !name)
    return NULL;
  for (size_t i = 0; i < cfg->ntransports; i++)
    if (strcmp(cfg->transports[i].name, name) == 0)
      return &cfg->transports[i];
  char *copy = strdup(name);
  mc_config_transport *nt =
      copy ? realloc(cfg->transports, (cfg->ntransports + 1) * sizeof *nt)
           : NULL;
  if (!nt) {
    free(copy);
    return NULL;
  }
  cfg->transports = nt;
  mc_config_transport *t = &nt[cfg->ntransports++];
  memset(t, 0, sizeof *t);
  t->name = copy;
  return t;
}

/* Sets (or replaces) transports.<t>.<key>; takes ownership of value and
 * var (the variable's name, NULL from the file), freeing them on failure. */
int mc_cfg_transport_set(mc_config_transport *t, const char *key, char *value,
                         int line, char *var) {
  if (!value) {
    free(var);
    return MC_ENOMEM;
  }
  for (size_t i = 0; i < t->nparams; i++) {
    if (strcmp(t->params[i].key, key) == 0) {
      free(t->params[i].value);
      free(t->params[i].var);
      t->params[i].value = value;
      t->params[i].line = line;
      t->params[i].var = var;
      return 0;
    }
  }
  char *k = strdup(key);
  mc_config_param *np =
      k ? realloc(t->params, (t->nparams + 1) * sizeof *np) : NULL;
  if (!np) {
    free(k);
    free(value);
    free(var);
    return MC_ENOMEM;
  }
  t->params = np;
  np[t->nparams++] = (mc_config_param){k, value, line, var};
  return 0;
}

/* Rebuilds the transport list from names, keeping the options (and line)
 * of those already configured. */
int mc_cfg_replace_transports(mc_config *cfg, char *const *names, size_t n) {
  mc_config_transport *nt = calloc(n ? n : 1, sizeof *nt);
  if (!nt)
    return MC_ENOMEM;
  /* New names first, so a failed allocation leaves cfg untouched. */
  for (size_t i = 0; i < n; i++) {
    if (!mc_config_find_transport(cfg, names[i]) &&
        !(nt[i].name = strdup(names[i]))) {
      mc_cfg_free_transports(nt, n);
      return MC_ENOMEM;
    }
  }
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; !nt[i].name && j < cfg->ntransports; j++) {
      mc_config_transport *old = &cfg->transports[j];
      if (old->name && strcmp(old->name, names[i]) == 0) {
        nt[i] = *old; /* move, options and line included */
        memset(old, 0, sizeof *old);
      }
    }
  }
  mc_cfg_free_transports(cfg->transports, cfg->ntransports);
  cfg->transports = nt;
  cfg->ntransports = n;
  return 0;
}
