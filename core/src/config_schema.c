/* config_schema.c - the key table of the engine's configuration and its
 * validators (see config.c for the split). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_p.h"

int mc_cfg_check_size(const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *why, size_t n) {
  char s[80], a[32], b[32];
  uint64_t x;
  mc_cfg_show(v, s, sizeof s);
  if (mc_config_parse_size(v, &x) != 0) {
    snprintf(why, n, "expected %s, got '%s'", SIZE_SYNTAX, s);
    return MC_EINVAL;
  }
  if (x < lo || x > hi) {
    mc_cfg_fmt_size(lo, a, sizeof a);
    mc_cfg_fmt_size(hi, b, sizeof b);
    snprintf(why, n, "expected a size from %s to %s, got '%s'", a, b, s);
    return MC_EINVAL;
  }
  *out = x;
  return 0;
}

int mc_cfg_check_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *why, size_t n) {
  char s[80];
  uint64_t x = 0;
  const char *p = v;
  int ok = isdigit((unsigned char)*p);
  for (; ok && *p; p++) {
    if (!isdigit((unsigned char)*p) || x > hi) {
      ok = 0;
      break;
    }
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (!ok || x < lo || x > hi) {
    mc_cfg_show(v, s, sizeof s);
    snprintf(why, n, "expected an integer %llu..%llu, got '%s'",
             (unsigned long long)lo, (unsigned long long)hi, s);
    return MC_EINVAL;
  }
  *out = x;
  return 0;
}

int mc_cfg_check_level(const char *v, int *out, char *why, size_t n) {
  int lvl = mc_log_parse_level(v);
  if (lvl < 0) {
    char s[80];
    mc_cfg_show(v, s, sizeof s);
    snprintf(why, n, "expected one of error, warn, info, debug, trace, got '%s'",
             s);
    return MC_EINVAL;
  }
  *out = lvl;
  return 0;
}

int mc_cfg_printable_word(const char *v) {
  if (!*v)
    return 0;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if (*p <= 0x20 || *p == 0x7f)
      return 0;
  return 1;
}

/* "host:port" or "[v6]:port", port 0..65535. */
static int check_listen(const char *v, char *why, size_t n) {
  const char *colon = strrchr(v, ':');
  int ok = mc_cfg_printable_word(v) && colon && colon != v && colon[1];
  if (ok && v[0] == '[')
    ok = colon[-1] == ']' && colon - v > 2;
  unsigned long port = 0;
  for (const char *p = colon ? colon + 1 : v; ok && *p; p++) {
    if (!isdigit((unsigned char)*p) || (port = port * 10 + (unsigned long)(*p - '0')) > 65535)
      ok = 0;
  }
  if (!ok) {
    char s[80];
    mc_cfg_show(v, s, sizeof s);
    snprintf(why, n, "expected host:port (port 0 = any), got '%s'", s);
    return MC_EINVAL;
  }
  return 0;
}

#define METADATA_SYNTAX                                                        \
  "p2p, etcd://host:port[,host:port] or http://host:port/path"

/* "p2p" or one of the schemes the metadata front end (metadata.c) knows,
 * so a misspelt scheme is refused here, naming where it was set, rather
 * than when the backend is opened.  Whether the backend was built is the
 * front end's to say. */
static int check_metadata(const char *v, char *why, size_t n) {
  static const char *const schemes[] = {"p2p://", "etcd://", "http://"};
  char s[80];
  mc_cfg_show(v, s, sizeof s);
  if (strcmp(v, "p2p") == 0)
    return 0;
  const char *sep = mc_cfg_printable_word(v) ? strstr(v, "://") : NULL;
  if (!sep) {
    snprintf(why, n, "expected %s, got '%s'", METADATA_SYNTAX, s);
    return MC_EINVAL;
  }
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t l = strlen(schemes[i]);
    if (strncmp(v, schemes[i], l) == 0) {
      if (v[l] || i == 0)
        return 0;
      snprintf(why, n, "expected %s, got '%s' (no address after '%s')",
               METADATA_SYNTAX, s, schemes[i]);
      return MC_EINVAL;
    }
  }
  char scheme[40];
  mc_cfg_show(v, scheme, sizeof scheme);
  scheme[strcspn(scheme, ":")] = '\0';
  snprintf(why, n, "unknown scheme '%s' in '%s' (expected %s)", scheme, s,
           METADATA_SYNTAX);
  return MC_EINVAL;
}

/* Transport names become plugin file names (mc-transport-<name>.so) and
 * variable names (MC_TRANSPORT_<NAME>_<KEY>), so only [a-z0-9_] is
 * allowed: no path separators, and nothing a shell cannot name. */
int mc_config_check_name(const char *v, char *why, size_t n) {
  size_t len = v ? strlen(v) : 0;
  int ok = len > 0 && len <= CFG_MAX_NAME;
  for (size_t i = 0; ok && i < len; i++)
    if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
          v[i] == '_'))
      ok = 0;
  if (!ok) {
    char s[80];
    mc_cfg_show(v ? v : "", s, sizeof s);
    snprintf(why, n,
             "transport name '%s' must match [a-z0-9_]+ (1 to %d characters)",
             s, CFG_MAX_NAME);
    return MC_EINVAL;
  }
  return 0;
}

int mc_cfg_check_word(const char *v, const char *what, char *why, size_t n) {
  if (!mc_cfg_printable_word(v)) {
    char s[80];
    mc_cfg_show(v, s, sizeof s);
    snprintf(why, n, "expected %s without spaces, got '%s'", what, s);
    return MC_EINVAL;
  }
  return 0;
}

static int chk_segment(const char *v, char *why, size_t n) {
  return mc_cfg_check_word(v, "a segment name", why, n);
}

static int chk_dir(const char *v, char *why, size_t n) {
  if (*v)
    return 0;
  snprintf(why, n, "expected a directory or .so path, got ''");
  return MC_EINVAL;
}

static int chk_path(const char *v, char *why, size_t n) {
  if (*v)
    return 0;
  snprintf(why, n, "expected a file path, got ''");
  return MC_EINVAL;
}

int mc_cfg_chk_rail(const char *v, char *why, size_t n) {
  return mc_cfg_check_word(v, "a rail like tcp:conn0", why, n);
}

/* ---------- the schema of the engine's own keys ---------- */



/* The order is the order of "expected one of" in messages. */
const cfg_key mc_cfg_keys[] = {
    {"segment_name", "MC_SEGMENT_NAME", OPT(segment_name), KT_TEXT, 0, 0,
     chk_segment, "a segment name", 1, FIELD(segment_name), FK_STR, NO_OFF,
     NO_OFF},
    {"listen", "MC_LISTEN", OPT(listen), KT_TEXT, 0, 0, check_listen,
     "host:port", 0, FIELD(listen), FK_STR, NO_OFF, NO_OFF},
    {"metadata", "MC_METADATA", OPT(metadata), KT_TEXT, 0, 0, check_metadata,
     "a metadata URL", 0, FIELD(metadata), FK_STR, NO_OFF, NO_OFF},
    /* MC_PLUGIN_PATH is the loader's own list, searched before this one. */
    {"plugin_path", NULL, OPT(plugin_path), KT_PATHS, 0, 0, chk_dir,
     "a sequence of directories or a 'dir:dir' string", 1, 0, FK_NONE,
     NO_OFF, NO_OFF},
    {"transports", "MC_TRANSPORTS", OPT(transports), KT_TRANSPORTS, 0, 0,
     mc_config_check_name,
     "'auto', names like \"tcp,shm\", a sequence of names like [tcp, shm] or "
     "a mapping like {tcp: {connections: 4}}",
     1, 0, FK_NONE, NO_OFF, NO_OFF},
    /* No variable: MC_TRANSPORT_ORDER would read as a transport option. */
    {"transport_order", NULL, NO_OPTS, KT_NAMES, 0, 0, mc_config_check_name,
     "a sequence like [shm, tcp] or names like \"shm,tcp\"", 1, 0, FK_NONE,
     NO_OFF, NO_OFF},
    {"slice_size", "MC_SLICE_SIZE", NO_OPTS, KT_SIZE, 1, CFG_MAX_SLICE, NULL,
     "a size like 64K", 0, FIELD(slice_size), FK_U64, FIELD(slice_size_set),
     NO_OFF},
    {"retry_count", "MC_RETRY_COUNT", NO_OPTS, KT_UINT, 0, CFG_MAX_RETRY, NULL,
     NULL, 0, FIELD(retry_count), FK_U32, NO_OFF, NO_OFF},
    {"timeout_ms", "MC_TIMEOUT_MS", NO_OPTS, KT_UINT, 1, CFG_MAX_TIMEOUT, NULL,
     NULL, 0, FIELD(timeout_ms), FK_U32, NO_OFF, NO_OFF},
    {"log_level", "MC_LOG_LEVEL", NO_OPTS, KT_LEVEL, 0, 0, NULL, "a log level",
     0, FIELD(log_level), FK_INT, NO_OFF, NO_OFF},
    {"topology", NULL, NO_OPTS, KT_TOPOLOGY, 0, 0, NULL, NULL, 1, 0, FK_NONE,
     NO_OFF, NO_OFF},
    /* Read at engine creation, not here: parsing touches no files. */
    {"cluster_token_file", "MC_CLUSTER_TOKEN_FILE", NO_OPTS, KT_TEXT, 0, 0,
     chk_path, "a file path", 1, FIELD(cluster_token_file), FK_STR, NO_OFF,
     FIELD(cluster_token_line)},
};
_Static_assert(sizeof mc_cfg_keys / sizeof mc_cfg_keys[0] == MC_CONFIG_NKEYS,
               "MC_CONFIG_NKEYS in config.h");

const cfg_key *mc_cfg_find_key(const char *key) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(mc_cfg_keys[i].key, key) == 0)
      return &mc_cfg_keys[i];
  return NULL;
}

const cfg_key *mc_cfg_key_of_type(int type) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (mc_cfg_keys[i].type == type)
      return &mc_cfg_keys[i];
  return NULL;
}

/* "expected <what>" for a key's YAML value of the wrong shape. */
const char *mc_cfg_key_what(const cfg_key *k, char *buf, size_t n) {
  if (k->what)
    return k->what;
  snprintf(buf, n, "an integer %llu..%llu", (unsigned long long)k->lo,
           (unsigned long long)k->hi);
  return buf;
}



void mc_cfg_kval_free(kval *v) {
  free(v->s);
  mc_cfg_free_strv(v->v, v->n);
  memset(v, 0, sizeof *v);
}

/* Adds one checked transport name to a list; MC_EINVAL or MC_ENOMEM. */
static int names_add(const cfg_key *k, const char *nm, char ***v, size_t *n,
                     char *why, size_t whylen) {
  if (k->check(nm, why, whylen))
    return MC_EINVAL;
  if (mc_cfg_strv_contains(*v, *n, nm)) {
    char s[80];
    mc_cfg_show(nm, s, sizeof s);
    snprintf(why, whylen, "'%s' is listed twice", s);
    return MC_EINVAL;
  }
  return mc_cfg_strv_push(v, n, strdup(nm));
}

/* "a,b": names separated by ',' with optional blanks around them. */
static int split_names(const cfg_key *k, const char *text, kval *out,
                       char *why, size_t whylen) {
  for (const char *p = text;;) {
    size_t len = strcspn(p, ",");
    const char *b = p, *e = p + len;
    while (b < e && (*b == ' ' || *b == '\t'))
      b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    if (b == e) {
      char s[80];
      mc_cfg_show(text, s, sizeof s);
      snprintf(why, whylen, "expected %stransport names like tcp,shm, got '%s'",
               k->type == KT_TRANSPORTS ? "'auto' or " : "", s);
      return MC_EINVAL;
    }
    char *nm = strndup(b, (size_t)(e - b));
    if (!nm)
      return MC_ENOMEM;
    int rc = names_add(k, nm, &out->v, &out->n, why, whylen);
    free(nm);
    if (rc)
      return rc;
    p += len;
    if (!*p)
      return 0;
    p++;
  }
}

/* Parses and checks the text form of key k.  0, MC_EINVAL with the reason
 * in why, or MC_ENOMEM.  On error *out holds nothing. */
int mc_cfg_parse_text(const cfg_key *k, const char *text, kval *out, char *why,
                      size_t whylen) {
  memset(out, 0, sizeof *out);
  int rc = 0;
  switch (k->type) {
  case KT_TEXT:
    if (k->check && k->check(text, why, whylen))
      return MC_EINVAL;
    return (out->s = strdup(text)) ? 0 : MC_ENOMEM;
  case KT_SIZE:
    return mc_cfg_check_size(text, k->lo, k->hi, &out->u, why, whylen);
  case KT_UINT:
    return mc_cfg_check_uint(text, k->lo, k->hi, &out->u, why, whylen);
  case KT_LEVEL:
    return mc_cfg_check_level(text, &out->i, why, whylen);
  case KT_TRANSPORTS:
    if (strcmp(text, "auto") == 0) {
      out->is_auto = 1;
      return 0;
    }
    rc = split_names(k, text, out, why, whylen);
    break;
  case KT_NAMES:
    rc = split_names(k, text, out, why, whylen);
    break;
  case KT_PATHS:
    /* "dir:dir": empty entries are skipped, as in $PATH handling. */
    for (const char *p = text; rc == 0 && *p;) {
      size_t len = strcspn(p, ":");
      if (len)
        rc = mc_cfg_strv_push(&out->v, &out->n, strndup(p, len));
      p += len;
      if (*p == ':')
        p++;
    }
    break;
  default:
    snprintf(why, whylen, "expected %s", k->what ? k->what : "a mapping");
    return MC_EINVAL;
  }
  if (rc)
    mc_cfg_kval_free(out);
  return rc;
}

/* Stores a parsed value (taking what it owns) and records its origin.
 * Only KT_TRANSPORTS and KT_PATHS allocate; they fail (MC_ENOMEM) leaving
 * cfg as it was, except that the file's transports list is already gone
 * (the load fails as a whole then). */
int mc_cfg_commit(mc_config *cfg, const cfg_key *k, kval *v, int src,
                  int line) {
  char *base = (char *)cfg;
  switch (k->type) {
  case KT_TRANSPORTS:
    if (src == MC_SRC_FILE) {
      /* The file's list replaces the built-in one, options and all. */
      mc_cfg_free_transports(cfg->transports, cfg->ntransports);
      cfg->transports = NULL;
      cfg->ntransports = 0;
    }
    if (v->is_auto) {
      cfg->transports_auto = 1; /* every transport keeps its options */
    } else {
      int rc = mc_cfg_replace_transports(cfg, v->v, v->n);
      if (rc)
        return rc;
      cfg->transports_auto = 0;
      for (size_t i = 0; src == MC_SRC_FILE && i < cfg->ntransports; i++)
        cfg->transports[i].line = line;
    }
    break;
  case KT_NAMES:
    mc_cfg_free_strv(cfg->transport_order, cfg->ntransport_order);
    cfg->transport_order = v->v;
    cfg->ntransport_order = v->n;
    v->v = NULL;
    v->n = 0;
    break;
  case KT_PATHS:
    if (src == MC_SRC_OPTS && cfg->nplugin_path) {
      /* The caller's entries are searched before the file's. */
      char **nv = realloc(v->v, (v->n + cfg->nplugin_path) * sizeof *nv);
      if (!nv)
        return MC_ENOMEM;
      memcpy(nv + v->n, cfg->plugin_path, cfg->nplugin_path * sizeof *nv);
      v->v = nv;
      v->n += cfg->nplugin_path;
      free(cfg->plugin_path);
    } else {
      mc_cfg_free_strv(cfg->plugin_path, cfg->nplugin_path);
    }
    cfg->plugin_path = v->v;
    cfg->nplugin_path = v->n;
    v->v = NULL;
    v->n = 0;
    break;
  default:
    break;
  }
  switch (k->fkind) {
  case FK_STR: {
    char **dst = (char **)(base + k->field);
    free(*dst);
    *dst = v->s;
    v->s = NULL;
    break;
  }
  case FK_U64:
    *(uint64_t *)(base + k->field) = v->u;
    break;
  case FK_U32:
    *(uint32_t *)(base + k->field) = (uint32_t)v->u;
    break;
  case FK_INT:
    *(int *)(base + k->field) = v->i;
    break;
  default:
    break;
  }
  if (k->set_flag != NO_OFF)
    *(int *)(base + k->set_flag) = 1;
  if (k->line_field != NO_OFF)
    *(int *)(base + k->line_field) = src == MC_SRC_FILE ? line : 0;
  cfg->origin[k - mc_cfg_keys] = (mc_config_origin){src, src == MC_SRC_FILE ? line : 0};
  return 0;
}

int mc_config_src(const mc_config *cfg, const char *key) {
  const cfg_key *k = key ? mc_cfg_find_key(key) : NULL;
  return cfg && k ? cfg->origin[k - mc_cfg_keys].src : MC_SRC_DEFAULT;
}

void mc_config_where(const mc_config *cfg, const char *key, char *buf,
                     size_t len) {
  const cfg_key *k = key ? mc_cfg_find_key(key) : NULL;
  if (!buf || !len)
    return;
  if (!cfg || !k) {
    snprintf(buf, len, "%s", key ? key : "?");
    return;
  }
  const mc_config_origin *o = &cfg->origin[k - mc_cfg_keys];
  switch (o->src) {
  case MC_SRC_FILE:
    snprintf(buf, len, "%s:%d: key '%s'", cfg->source, o->line, k->key);
    break;
  case MC_SRC_ENV:
    snprintf(buf, len, "%s", k->env);
    break;
  case MC_SRC_OPTS:
    snprintf(buf, len, "mc_engine_opts.%s", k->opt);
    break;
  default:
    snprintf(buf, len, "%s (default)", k->key);
    break;
  }
}
