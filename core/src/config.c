/* config.c - the engine configuration: defaults, the YAML file (libyaml),
 * MC_* environment overrides and mc_engine_opts, all three driven by one
 * key table (the schema, below), plus the checks of each plugin's own keys
 * against its params table.
 *
 * The YAML text is first turned into a small tree of nodes that keep their
 * line numbers (so every message can name file:line and key), then the tree
 * is checked against the schema.  The input is untrusted: it is capped in
 * size, nesting depth, node count, entries per collection and scalar length;
 * aliases are refused (no alias expansion, so no "billion laughs"), and so
 * are multiple documents and duplicate keys.
 *
 * A scalar value, from whichever source, goes through parse_text() for its
 * key's row and then commit(): one check and one conversion per key, so the
 * file, the variable and the opts member accept the same values and refuse
 * the others with the same reason.  Only the YAML-only shapes (sequences,
 * mappings, the topology) have parsers of their own, and their items are
 * checked by the same validators.
 *
 * Under `transports: auto` the transports array holds only the transports
 * that were given options (the engine loads every plugin it finds). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "log.h"
#include "mooncake/errors.h"

#define CFG_MAX_INPUT (1u << 20) /* bytes of YAML */
#define CFG_MAX_DEPTH 16         /* the schema needs 4 levels */
#define CFG_MAX_NODES 65536
#define CFG_MAX_ENTRIES 1024  /* items of one sequence or mapping */
#define CFG_MAX_SCALAR 4096   /* bytes of one scalar */
#define CFG_MAX_JOINED 64     /* items of an option value given as a list */
#define CFG_MAX_NAME MC_CONFIG_NAME_MAX
#define CFG_MAX_SLICE (1ull << 30)
#define CFG_MAX_RETRY 64
#define CFG_MAX_TIMEOUT 2147483647ull /* fits an int for poll() and friends */
#define CFG_OPTIONAL "optional"       /* core-reserved key of transports.<t> */

/* ---------- small helpers ---------- */

static void free_strv(char **v, size_t n) {
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

static void free_transports(mc_config_transport *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    free_transport(&t[i]);
  free(t);
}

static void free_topology(mc_config_topo *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(t[i].location);
    free_strv(t[i].preferred, t[i].npreferred);
    free_strv(t[i].fallback, t[i].nfallback);
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
  free_strv(cfg->plugin_path, cfg->nplugin_path);
  free_transports(cfg->transports, cfg->ntransports);
  free_strv(cfg->transport_order, cfg->ntransport_order);
  free_topology(cfg->topology, cfg->ntopology);
  free(cfg);
}

/* Appends s (taking ownership) to a string vector; frees s on failure. */
static int strv_push(char ***v, size_t *n, char *s) {
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

static int strv_contains(char *const *v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return 1;
  return 0;
}

/* Copies text for a message: printable ASCII only, cut to fit outlen. */
static void show(const char *text, char *out, size_t outlen) {
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
static void fmt_size(uint64_t v, char *out, size_t n) {
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

/* ---------- value parsers and checkers ----------
 * One parser per type, shared by the engine's keys, the plugins' keys (the
 * core checks those before init) and the typed getters of mc_host_api.
 * The checkers return 0, or MC_EINVAL with "expected ..., got '...'" in
 * why. */

int mc_config_parse_size(const char *text, uint64_t *out) {
  if (!text || !isdigit((unsigned char)text[0]))
    return -1;
  uint64_t v = 0;
  const char *p = text;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  unsigned shift = 0;
  switch (*p) {
  case 'k': case 'K': shift = 10; p++; break;
  case 'm': case 'M': shift = 20; p++; break;
  case 'g': case 'G': shift = 30; p++; break;
  case 't': case 'T': shift = 40; p++; break;
  default: break;
  }
  /* Accept the common spellings 64K, 64KB, 64KiB and 4096B.  The unit is
   * an upper-case B only: "64kb" would be kilobits to many readers, so it
   * is refused rather than guessed. */
  if (shift && *p == 'i')
    p++;
  if (*p == 'B')
    p++;
  if (*p != '\0')
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = v << shift;
  return 0;
}

int mc_config_parse_int(const char *text, int64_t *out) {
  if (!text)
    return -1;
  const char *p = text;
  int neg = *p == '-';
  if (neg)
    p++;
  if (!isdigit((unsigned char)*p))
    return -1;
  /* Accumulate the magnitude as unsigned, so INT64_MIN parses too. */
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (lim - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (*p)
    return -1;
  *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v)
             : (int64_t)v;
  return 0;
}

int mc_config_parse_bool(const char *text, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; text && i < 4; i++) {
    if (strcasecmp(text, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(text, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

#define SIZE_SYNTAX "a size like 64K or 1M (K, M, G, T = 1024^n, then B or iB)"
#define BOOL_SYNTAX "true or false (or yes/no, on/off, 1/0)"

/* A size within lo..hi. */
static int check_size(const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *why, size_t n) {
  char s[80], a[32], b[32];
  uint64_t x;
  show(v, s, sizeof s);
  if (mc_config_parse_size(v, &x) != 0) {
    snprintf(why, n, "expected %s, got '%s'", SIZE_SYNTAX, s);
    return MC_EINVAL;
  }
  if (x < lo || x > hi) {
    fmt_size(lo, a, sizeof a);
    fmt_size(hi, b, sizeof b);
    snprintf(why, n, "expected a size from %s to %s, got '%s'", a, b, s);
    return MC_EINVAL;
  }
  *out = x;
  return 0;
}

static int check_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
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
    show(v, s, sizeof s);
    snprintf(why, n, "expected an integer %llu..%llu, got '%s'",
             (unsigned long long)lo, (unsigned long long)hi, s);
    return MC_EINVAL;
  }
  *out = x;
  return 0;
}

static int check_level(const char *v, int *out, char *why, size_t n) {
  int lvl = mc_log_parse_level(v);
  if (lvl < 0) {
    char s[80];
    show(v, s, sizeof s);
    snprintf(why, n, "expected one of error, warn, info, debug, trace, got '%s'",
             s);
    return MC_EINVAL;
  }
  *out = lvl;
  return 0;
}

static int printable_word(const char *v) {
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
  int ok = printable_word(v) && colon && colon != v && colon[1];
  if (ok && v[0] == '[')
    ok = colon[-1] == ']' && colon - v > 2;
  unsigned long port = 0;
  for (const char *p = colon ? colon + 1 : v; ok && *p; p++) {
    if (!isdigit((unsigned char)*p) || (port = port * 10 + (unsigned long)(*p - '0')) > 65535)
      ok = 0;
  }
  if (!ok) {
    char s[80];
    show(v, s, sizeof s);
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
  show(v, s, sizeof s);
  if (strcmp(v, "p2p") == 0)
    return 0;
  const char *sep = printable_word(v) ? strstr(v, "://") : NULL;
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
  show(v, scheme, sizeof scheme);
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
    show(v ? v : "", s, sizeof s);
    snprintf(why, n,
             "transport name '%s' must match [a-z0-9_]+ (1 to %d characters)",
             s, CFG_MAX_NAME);
    return MC_EINVAL;
  }
  return 0;
}

static int check_word(const char *v, const char *what, char *why, size_t n) {
  if (!printable_word(v)) {
    char s[80];
    show(v, s, sizeof s);
    snprintf(why, n, "expected %s without spaces, got '%s'", what, s);
    return MC_EINVAL;
  }
  return 0;
}

static int chk_segment(const char *v, char *why, size_t n) {
  return check_word(v, "a segment name", why, n);
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

static int chk_rail(const char *v, char *why, size_t n) {
  return check_word(v, "a rail like tcp:conn0", why, n);
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
static int transport_set(mc_config_transport *t, const char *key, char *value,
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
static int replace_transports(mc_config *cfg, char *const *names, size_t n) {
  mc_config_transport *nt = calloc(n ? n : 1, sizeof *nt);
  if (!nt)
    return MC_ENOMEM;
  /* New names first, so a failed allocation leaves cfg untouched. */
  for (size_t i = 0; i < n; i++) {
    if (!mc_config_find_transport(cfg, names[i]) &&
        !(nt[i].name = strdup(names[i]))) {
      free_transports(nt, n);
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
  free_transports(cfg->transports, cfg->ntransports);
  cfg->transports = nt;
  cfg->ntransports = n;
  return 0;
}

/* ---------- the schema of the engine's own keys ---------- */

enum key_type {
  KT_TEXT,       /* one value checked by `check` */
  KT_SIZE,       /* a size, lo..hi */
  KT_UINT,       /* a decimal integer, lo..hi */
  KT_LEVEL,      /* a log level */
  KT_TRANSPORTS, /* "auto" or names "a,b"; YAML also [a, b], {a: {...}} */
  KT_NAMES,      /* names "a,b"; YAML also [a, b] */
  KT_PATHS,      /* "dir:dir" (empty entries skipped); YAML also [a, b] */
  KT_TOPOLOGY,   /* YAML only: a mapping of locations */
};

enum field_kind { FK_NONE, FK_STR, FK_U64, FK_U32, FK_INT };

#define NO_OFF ((size_t)-1)
#define OPT(m) #m, offsetof(mc_engine_opts, m)
#define NO_OPTS NULL, NO_OFF
#define FIELD(m) offsetof(mc_config, m)

typedef struct cfg_key {
  const char *key; /* YAML key */
  const char *env; /* MC_* variable; NULL: none */
  const char *opt; /* mc_engine_opts member; NULL: none */
  size_t opt_off;  /* its offset (a const char *) */
  int type;        /* enum key_type */
  uint64_t lo, hi; /* KT_SIZE, KT_UINT: accepted range */
  /* KT_TEXT: the value; KT_NAMES, KT_PATHS: each item (KT_TRANSPORTS and
   * KT_NAMES items are also transport names). */
  int (*check)(const char *v, char *why, size_t n);
  const char *what; /* "expected <what>" when a YAML value has the wrong
                       shape; NULL: derived from the type */
  int reset;        /* a YAML null resets it to its default */
  size_t field;     /* FK_*: where the value goes in mc_config */
  int fkind;
  size_t set_flag;   /* an int set to 1 when the key is set, or NO_OFF */
  size_t line_field; /* an int set to the file line (0 otherwise), NO_OFF */
} cfg_key;

/* The order is the order of "expected one of" in messages. */
static const cfg_key keys[] = {
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
#define N_KEYS (sizeof keys / sizeof keys[0])
_Static_assert(N_KEYS == MC_CONFIG_NKEYS, "MC_CONFIG_NKEYS in config.h");

static const cfg_key *find_key(const char *key) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(keys[i].key, key) == 0)
      return &keys[i];
  return NULL;
}

static const cfg_key *key_of_type(int type) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (keys[i].type == type)
      return &keys[i];
  return NULL;
}

/* "expected <what>" for a key's YAML value of the wrong shape. */
static const char *key_what(const cfg_key *k, char *buf, size_t n) {
  if (k->what)
    return k->what;
  snprintf(buf, n, "an integer %llu..%llu", (unsigned long long)k->lo,
           (unsigned long long)k->hi);
  return buf;
}

/* A parsed value of one key, before it is committed. */
typedef struct kval {
  char *s;     /* KT_TEXT: owned copy; NULL resets */
  uint64_t u;  /* KT_SIZE, KT_UINT */
  int i;       /* KT_LEVEL */
  int is_auto; /* KT_TRANSPORTS */
  char **v;    /* KT_TRANSPORTS, KT_NAMES, KT_PATHS: owned */
  size_t n;
} kval;

static void kval_free(kval *v) {
  free(v->s);
  free_strv(v->v, v->n);
  memset(v, 0, sizeof *v);
}

/* Adds one checked transport name to a list; MC_EINVAL or MC_ENOMEM. */
static int names_add(const cfg_key *k, const char *nm, char ***v, size_t *n,
                     char *why, size_t whylen) {
  if (k->check(nm, why, whylen))
    return MC_EINVAL;
  if (strv_contains(*v, *n, nm)) {
    char s[80];
    show(nm, s, sizeof s);
    snprintf(why, whylen, "'%s' is listed twice", s);
    return MC_EINVAL;
  }
  return strv_push(v, n, strdup(nm));
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
      show(text, s, sizeof s);
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
static int parse_text(const cfg_key *k, const char *text, kval *out, char *why,
                      size_t whylen) {
  memset(out, 0, sizeof *out);
  int rc = 0;
  switch (k->type) {
  case KT_TEXT:
    if (k->check && k->check(text, why, whylen))
      return MC_EINVAL;
    return (out->s = strdup(text)) ? 0 : MC_ENOMEM;
  case KT_SIZE:
    return check_size(text, k->lo, k->hi, &out->u, why, whylen);
  case KT_UINT:
    return check_uint(text, k->lo, k->hi, &out->u, why, whylen);
  case KT_LEVEL:
    return check_level(text, &out->i, why, whylen);
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
        rc = strv_push(&out->v, &out->n, strndup(p, len));
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
    kval_free(out);
  return rc;
}

/* Stores a parsed value (taking what it owns) and records its origin.
 * Only KT_TRANSPORTS and KT_PATHS allocate; they fail (MC_ENOMEM) leaving
 * cfg as it was, except that the file's transports list is already gone
 * (the load fails as a whole then). */
static int commit(mc_config *cfg, const cfg_key *k, kval *v, int src,
                  int line) {
  char *base = (char *)cfg;
  switch (k->type) {
  case KT_TRANSPORTS:
    if (src == MC_SRC_FILE) {
      /* The file's list replaces the built-in one, options and all. */
      free_transports(cfg->transports, cfg->ntransports);
      cfg->transports = NULL;
      cfg->ntransports = 0;
    }
    if (v->is_auto) {
      cfg->transports_auto = 1; /* every transport keeps its options */
    } else {
      int rc = replace_transports(cfg, v->v, v->n);
      if (rc)
        return rc;
      cfg->transports_auto = 0;
      for (size_t i = 0; src == MC_SRC_FILE && i < cfg->ntransports; i++)
        cfg->transports[i].line = line;
    }
    break;
  case KT_NAMES:
    free_strv(cfg->transport_order, cfg->ntransport_order);
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
      free_strv(cfg->plugin_path, cfg->nplugin_path);
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
  cfg->origin[k - keys] = (mc_config_origin){src, src == MC_SRC_FILE ? line : 0};
  return 0;
}

int mc_config_src(const mc_config *cfg, const char *key) {
  const cfg_key *k = key ? find_key(key) : NULL;
  return cfg && k ? cfg->origin[k - keys].src : MC_SRC_DEFAULT;
}

void mc_config_where(const mc_config *cfg, const char *key, char *buf,
                     size_t len) {
  const cfg_key *k = key ? find_key(key) : NULL;
  if (!buf || !len)
    return;
  if (!cfg || !k) {
    snprintf(buf, len, "%s", key ? key : "?");
    return;
  }
  const mc_config_origin *o = &cfg->origin[k - keys];
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

/* ---------- YAML text -> node tree ---------- */

enum { YN_SCALAR, YN_SEQ, YN_MAP };

typedef struct ynode ynode;
struct ynode {
  int type;
  int line; /* 1-based */
  int null; /* plain scalar spelled "", "~" or "null" */
  char *text;     /* scalars */
  ynode **kids;   /* sequence items; mapping key, value, key, value... */
  size_t n, cap;
};

static void ynode_free(ynode *nd) {
  if (!nd)
    return;
  for (size_t i = 0; i < nd->n; i++)
    ynode_free(nd->kids[i]);
  free(nd->kids);
  free(nd->text);
  free(nd);
}

typedef struct pctx {
  const char *name; /* file path or the caller's name, for messages */
  char *err;
  size_t errlen;
  size_t nodes;
  mc_config *cfg;
} pctx;

static void set_err(pctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(pctx *c, const char *fmt, ...) {
  if (!c->err || !c->errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->errlen, fmt, ap);
  va_end(ap);
}

/* "name:line: key 'k': msg"; returns MC_EINVAL. */
static int fail(pctx *c, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(pctx *c, int line, const char *key, const char *fmt, ...) {
  if (!c->err || !c->errlen)
    return MC_EINVAL;
  char msg[MC_CONFIG_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char k[160];
  if (key) {
    show(key, k, sizeof k);
    snprintf(c->err, c->errlen, "%s:%d: key '%s': %s", c->name, line, k, msg);
  } else {
    snprintf(c->err, c->errlen, "%s:%d: %s", c->name, line, msg);
  }
  return MC_EINVAL;
}

static int oom(pctx *c) {
  set_err(c, "%s: out of memory", c->name);
  return MC_ENOMEM;
}

static int plain_null(const char *s, size_t len) {
  return len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
         strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int syntax_error(pctx *c, const yaml_parser_t *p,
                        const unsigned char *buf, size_t len) {
  if (p->error == YAML_MEMORY_ERROR)
    return oom(c);
  size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
  if (p->error == YAML_READER_ERROR) {
    /* The reader reports a byte offset, not a mark. */
    line = 1;
    col = 1;
    for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
      if (buf[i] == '\n') {
        line++;
        col = 0;
      }
  }
  const char *problem = p->problem ? p->problem : "malformed input";
  if (p->context) /* where the enclosing construct began helps most */
    set_err(c, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)", c->name,
            line, col, problem, p->context, p->context_mark.line + 1);
  else
    set_err(c, "%s:%zu:%zu: YAML syntax error: %s", c->name, line, col,
            problem);
  return MC_EINVAL;
}

static int attach(ynode *parent, ynode *kid) {
  if (parent->n == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 4;
    ynode **nk = realloc(parent->kids, cap * sizeof *nk);
    if (!nk)
      return MC_ENOMEM;
    parent->kids = nk;
    parent->cap = cap;
  }
  parent->kids[parent->n++] = kid;
  return 0;
}

/* Handles one event, building the tree in *root with the open collections
 * on stack.  Returns 0, 1 at the end of the stream, or MC_E*. */
static int on_event(pctx *c, const yaml_event_t *ev, ynode **root,
                    ynode **stack, int *depth, int *ndocs) {
  int line = (int)ev->start_mark.line + 1;
  switch (ev->type) {
  case YAML_STREAM_END_EVENT:
    return 1;
  case YAML_DOCUMENT_START_EVENT:
    if (++*ndocs > 1)
      return fail(c, line, NULL, "multiple YAML documents are not supported");
    return 0;
  case YAML_ALIAS_EVENT: {
    char a[80];
    show((const char *)ev->data.alias.anchor, a, sizeof a);
    return fail(c, line, NULL,
                "YAML aliases (*%s) are not supported; write the value out", a);
  }
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    if (*depth > 0)
      --*depth;
    return 0;
  case YAML_SCALAR_EVENT:
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT:
    break;
  default:
    return 0;
  }

  if (++c->nodes > CFG_MAX_NODES)
    return fail(c, line, NULL, "too many YAML nodes (more than %d)",
                CFG_MAX_NODES);
  ynode *parent = *depth > 0 ? stack[*depth - 1] : NULL;
  if (parent && parent->n >= (parent->type == YN_MAP ? 2 : 1) * CFG_MAX_ENTRIES)
    return fail(c, line, NULL, "too many entries in one collection (max %d)",
                CFG_MAX_ENTRIES);
  if (ev->type != YAML_SCALAR_EVENT && *depth >= CFG_MAX_DEPTH)
    return fail(c, line, NULL, "nesting deeper than %d levels", CFG_MAX_DEPTH);

  ynode *nd = calloc(1, sizeof *nd);
  if (!nd)
    return oom(c);
  nd->line = line;
  if (ev->type == YAML_SCALAR_EVENT) {
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    nd->type = YN_SCALAR;
    if (len > CFG_MAX_SCALAR) {
      free(nd);
      return fail(c, line, NULL, "value longer than %d bytes", CFG_MAX_SCALAR);
    }
    if (memchr(v, '\0', len)) {
      free(nd);
      return fail(c, line, NULL, "value contains a NUL character");
    }
    nd->text = strndup(v, len);
    if (!nd->text) {
      free(nd);
      return oom(c);
    }
    nd->null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               plain_null(nd->text, len);
  } else {
    nd->type = ev->type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ;
  }

  if (parent) {
    if (attach(parent, nd) != 0) {
      ynode_free(nd);
      return oom(c);
    }
  } else if (!*root) {
    *root = nd;
  } else { /* a second root cannot happen in one document; be safe */
    ynode_free(nd);
    return fail(c, line, NULL, "unexpected second top-level value");
  }
  if (nd->type != YN_SCALAR)
    stack[(*depth)++] = nd;
  return 0;
}

static int build_tree(pctx *c, const unsigned char *buf, size_t len,
                      ynode **out) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return oom(c);
  yaml_parser_set_input_string(&p, buf, len);
  ynode *root = NULL, *stack[CFG_MAX_DEPTH];
  int depth = 0, ndocs = 0, rc = 0;
  while (rc == 0) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      rc = syntax_error(c, &p, buf, len);
      break;
    }
    rc = on_event(c, &ev, &root, stack, &depth, &ndocs);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  if (rc < 0) {
    ynode_free(root);
    return rc;
  }
  *out = root;
  return 0;
}

/* ---------- node tree -> mc_config ---------- */

static const char *describe(const ynode *v, char *buf, size_t n) {
  if (v->type == YN_MAP)
    return "a mapping";
  if (v->type == YN_SEQ)
    return "a sequence";
  if (v->null)
    return "an empty value";
  char s[80];
  show(v->text, s, sizeof s);
  snprintf(buf, n, "'%s'", s);
  return buf;
}

/* The value as text, or an error "expected <what>, got ...". */
static int want_text(pctx *c, const ynode *v, const char *key,
                     const char *what, const char **out) {
  if (v->type != YN_SCALAR || v->null) {
    char d[96];
    return fail(c, v->line, key, "expected %s, got %s", what,
                describe(v, d, sizeof d));
  }
  *out = v->text;
  return 0;
}

/* Checks keys of a mapping: scalars, no duplicates. */
static int check_map(pctx *c, const ynode *m, const char *path) {
  for (size_t i = 0; i < m->n; i += 2) {
    const ynode *k = m->kids[i];
    if (k->type != YN_SCALAR) {
      char d[96];
      return fail(c, k->line, path, "expected a plain key, got %s",
                  describe(k, d, sizeof d));
    }
    for (size_t j = 0; j < i; j += 2)
      if (strcmp(m->kids[j]->text, k->text) == 0) {
        char key[MC_CONFIG_ERR_MAX / 2];
        snprintf(key, sizeof key, "%s%s%s", path ? path : "", path ? "." : "",
                 k->text);
        return fail(c, k->line, key, "duplicate key (first at line %d)",
                    m->kids[j]->line);
      }
  }
  return 0;
}

/* Fills a string vector from a sequence of scalars, each checked by chk
 * (NULL = any text).  Replaces *outv. */
static int parse_list(pctx *c, const ynode *v, const char *key,
                      int (*chk)(const char *, char *, size_t), int unique,
                      char ***outv, size_t *outn) {
  if (v->type != YN_SEQ) {
    char d[96];
    return fail(c, v->line, key, "expected a sequence like [a, b], got %s",
                describe(v, d, sizeof d));
  }
  char **list = NULL;
  size_t n = 0;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < v->n; i++) {
    const ynode *it = v->kids[i];
    const char *s = NULL;
    char why[256];
    if ((rc = want_text(c, it, key, "a string", &s)) != 0)
      break;
    if (chk && (rc = chk(s, why, sizeof why)) != 0) {
      rc = fail(c, it->line, key, "%s", why);
      break;
    }
    if (unique && strv_contains(list, n, s)) {
      char d[80];
      show(s, d, sizeof d);
      rc = fail(c, it->line, key, "'%s' is listed twice", d);
      break;
    }
    if (strv_push(&list, &n, strdup(s)) != 0)
      rc = oom(c);
  }
  if (rc) {
    free_strv(list, n);
    return rc;
  }
  free_strv(*outv, *outn);
  *outv = list;
  *outn = n;
  return 0;
}

static int parse_option(pctx *c, mc_config_transport *t, const ynode *k,
                        const ynode *v) {
  char path[160];
  snprintf(path, sizeof path, "transports.%s.%s", t->name, k->text);
  if (!printable_word(k->text))
    return fail(c, k->line, path, "expected an option name without spaces");
  if (v->type == YN_SCALAR) {
    if (v->null)
      return fail(c, v->line, path,
                  "expected a value (leave the key out for the default)");
    if (strcmp(k->text, CFG_OPTIONAL) == 0) {
      /* The core's own key: never handed to the plugin. */
      char s[80];
      if (mc_config_parse_bool(v->text, &t->optional) == 0)
        return 0;
      show(v->text, s, sizeof s);
      return fail(c, v->line, path, "expected %s, got '%s'", BOOL_SYNTAX, s);
    }
    return transport_set(t, k->text, strdup(v->text), k->line, NULL) ? oom(c)
                                                                      : 0;
  }
  if (strcmp(k->text, CFG_OPTIONAL) == 0) {
    char d[96];
    return fail(c, v->line, path, "expected %s, got %s", BOOL_SYNTAX,
                describe(v, d, sizeof d));
  }
  if (v->type != YN_SEQ || v->n == 0 || v->n > CFG_MAX_JOINED) {
    char d[96];
    return fail(c, v->line, path,
                "expected a value or a list of up to %d values, got %s",
                CFG_MAX_JOINED, v->type == YN_SEQ && v->n == 0
                                    ? "an empty sequence"
                                    : describe(v, d, sizeof d));
  }
  size_t total = 1;
  for (size_t i = 0; i < v->n; i++) {
    const char *s = NULL;
    int rc = want_text(c, v->kids[i], path, "a scalar list item", &s);
    if (rc)
      return rc;
    if (strchr(s, ','))
      return fail(c, v->kids[i]->line, path,
                  "list items cannot contain ',' (they are joined by ',')");
    total += strlen(s) + 1;
  }
  char *joined = malloc(total);
  if (!joined)
    return oom(c);
  size_t off = 0;
  for (size_t i = 0; i < v->n; i++) {
    size_t len = strlen(v->kids[i]->text);
    if (i)
      joined[off++] = ',';
    memcpy(joined + off, v->kids[i]->text, len);
    off += len;
  }
  joined[off] = '\0';
  return transport_set(t, k->text, joined, k->line, NULL) ? oom(c) : 0;
}

static int add_named_transport(pctx *c, const ynode *nm,
                               mc_config_transport **out) {
  char why[256];
  const char *name = NULL;
  int rc = want_text(c, nm, "transports", "a transport name", &name);
  if (rc)
    return rc;
  if (mc_config_check_name(name, why, sizeof why))
    return fail(c, nm->line, "transports", "%s", why);
  if (mc_config_find_transport(c->cfg, name))
    return fail(c, nm->line, "transports", "'%s' is listed twice", name);
  mc_config_transport *t = mc_config_add_transport(c->cfg, name);
  if (!t)
    return oom(c);
  t->line = nm->line;
  *out = t;
  return 0;
}

/* The YAML-only forms of `transports`: [tcp, shm] and {tcp: {...}} (the
 * text forms "auto" and "tcp,shm" go through parse_text). */
static int parse_transports(pctx *c, const ynode *v) {
  mc_config *cfg = c->cfg;
  /* {}: keep the defaults. */
  if (v->type == YN_MAP && v->n == 0)
    return 0;
  free_transports(cfg->transports, cfg->ntransports);
  cfg->transports = NULL;
  cfg->ntransports = 0;
  cfg->transports_auto = 0;
  if (v->type == YN_SEQ) {
    if (v->n == 0)
      return fail(c, v->line, "transports",
                  "expected at least one transport (or 'auto')");
    for (size_t i = 0; i < v->n; i++) {
      mc_config_transport *t;
      if (v->kids[i]->type == YN_MAP)
        return fail(c, v->kids[i]->line, "transports",
                    "expected a transport name, got a mapping (give options "
                    "as transports: {tcp: {connections: 4}})");
      int rc = add_named_transport(c, v->kids[i], &t);
      if (rc)
        return rc;
    }
    return 0;
  }
  int rc = check_map(c, v, "transports");
  for (size_t i = 0; rc == 0 && i < v->n; i += 2) {
    const ynode *k = v->kids[i], *opts = v->kids[i + 1];
    mc_config_transport *t;
    if ((rc = add_named_transport(c, k, &t)) != 0)
      break;
    if (opts->type == YN_SCALAR && opts->null)
      continue;
    if (opts->type != YN_MAP) {
      char path[96], d[96];
      snprintf(path, sizeof path, "transports.%s", t->name);
      return fail(c, opts->line, path,
                  "expected a mapping of options like {connections: 4}, got %s",
                  describe(opts, d, sizeof d));
    }
    char path[96];
    snprintf(path, sizeof path, "transports.%s", t->name);
    if ((rc = check_map(c, opts, path)) != 0)
      break;
    /* t may move when another transport is added: options come first. */
    for (size_t j = 0; rc == 0 && j < opts->n; j += 2)
      rc = parse_option(c, t, opts->kids[j], opts->kids[j + 1]);
  }
  return rc;
}

static int parse_topo_entry(pctx *c, const ynode *k, const ynode *v) {
  mc_config *cfg = c->cfg;
  char path[MC_CONFIG_ERR_MAX / 2], why[256];
  snprintf(path, sizeof path, "topology.%s", k->text);
  if (check_word(k->text, "a memory location like cpu:0 or cuda:3", why,
                 sizeof why))
    return fail(c, k->line, path, "%s", why);
  if (v->type != YN_MAP) {
    char d[96];
    return fail(c, v->line, path,
                "expected a mapping {preferred: [rails], fallback: [rails]}, "
                "got %s",
                describe(v, d, sizeof d));
  }
  int rc = check_map(c, v, path);
  if (rc)
    return rc;
  mc_config_topo topo = {0};
  topo.line = k->line;
  for (size_t i = 0; rc == 0 && i < v->n; i += 2) {
    const ynode *sk = v->kids[i], *sv = v->kids[i + 1];
    char sub[MC_CONFIG_ERR_MAX / 2 + 16];
    snprintf(sub, sizeof sub, "%s.%s", path, sk->text);
    if (strcmp(sk->text, "preferred") == 0)
      rc = parse_list(c, sv, sub, chk_rail, 1, &topo.preferred,
                      &topo.npreferred);
    else if (strcmp(sk->text, "fallback") == 0)
      rc = parse_list(c, sv, sub, chk_rail, 1, &topo.fallback,
                      &topo.nfallback);
    else
      rc = fail(c, sk->line, sub,
                "unknown key (expected one of: preferred, fallback)");
  }
  if (rc == 0 && topo.npreferred + topo.nfallback == 0)
    rc = fail(c, k->line, path, "expected at least one rail in preferred or "
                                "fallback");
  if (rc == 0) {
    topo.location = strdup(k->text);
    mc_config_topo *nt =
        topo.location
            ? realloc(cfg->topology, (cfg->ntopology + 1) * sizeof *nt)
            : NULL;
    if (!nt) {
      rc = oom(c);
    } else {
      cfg->topology = nt;
      nt[cfg->ntopology++] = topo;
      return 0;
    }
  }
  free(topo.location);
  free_strv(topo.preferred, topo.npreferred);
  free_strv(topo.fallback, topo.nfallback);
  return rc;
}

static int parse_topology(pctx *c, const ynode *v) {
  mc_config *cfg = c->cfg;
  free_topology(cfg->topology, cfg->ntopology);
  cfg->topology = NULL;
  cfg->ntopology = 0;
  if (v->type == YN_SCALAR && v->null)
    return 0;
  if (v->type != YN_MAP) {
    char d[96];
    return fail(c, v->line, "topology",
                "expected a mapping of memory locations like "
                "\"cpu:0\": {preferred: [tcp:conn0]}, got %s",
                describe(v, d, sizeof d));
  }
  int rc = check_map(c, v, "topology");
  for (size_t i = 0; rc == 0 && i < v->n; i += 2)
    rc = parse_topo_entry(c, v->kids[i], v->kids[i + 1]);
  return rc;
}

/* Replaces *dst by a copy of the checked text of v. */

/* One top-level key: its row of the schema decides how the value is read.
 * Scalars go through parse_text (as the variables and opts members do);
 * the YAML-only shapes have their own parsers. */
static int parse_top_key(pctx *c, const ynode *k, const ynode *v) {
  mc_config *cfg = c->cfg;
  const char *key = k->text;
  const cfg_key *row = find_key(key);
  if (!row) {
    char expected[256];
    size_t off = 0;
    for (size_t i = 0; i < N_KEYS; i++)
      off += (size_t)snprintf(expected + off, sizeof expected - off, "%s%s",
                              i ? ", " : "", keys[i].key);
    return fail(c, k->line, key, "unknown key (expected one of: %s)",
                expected);
  }
  kval val = {0};
  int rc = 0;
  if (row->type == KT_TOPOLOGY) {
    rc = parse_topology(c, v);
  } else if (row->type == KT_TRANSPORTS &&
             (v->type == YN_SEQ || v->type == YN_MAP)) {
    rc = parse_transports(c, v);
  } else if ((row->type == KT_NAMES || row->type == KT_PATHS) &&
             v->type == YN_SEQ) {
    /* Items are checked one by one, with their own lines. */
    if ((rc = parse_list(c, v, key, row->check, row->type == KT_NAMES,
                         &val.v, &val.n)) == 0)
      rc = commit(cfg, row, &val, MC_SRC_FILE, v->line) ? oom(c) : 0;
  } else if (v->type == YN_SCALAR && v->null && row->reset) {
    /* Back to the built-in value: NULL, an empty list, the default
     * transports (the configuration is fresh, so that is leaving it). */
    if (row->type != KT_TRANSPORTS)
      rc = commit(cfg, row, &val, MC_SRC_FILE, v->line) ? oom(c) : 0;
  } else {
    const char *text = NULL;
    char what[160], why[256];
    if ((rc = want_text(c, v, key, key_what(row, what, sizeof what),
                        &text)) != 0)
      return rc;
    rc = parse_text(row, text, &val, why, sizeof why);
    if (rc == MC_EINVAL)
      rc = fail(c, v->line, key, "%s", why);
    else if (rc)
      rc = oom(c);
    else
      rc = commit(cfg, row, &val, MC_SRC_FILE, v->line) ? oom(c) : 0;
  }
  kval_free(&val);
  if (rc == 0)
    cfg->origin[row - keys] = (mc_config_origin){MC_SRC_FILE, v->line};
  return rc;
}

/* transport_order names must be loaded transports (unless auto). */
static int check_order(pctx *c, const ynode *root) {
  const mc_config *cfg = c->cfg;
  if (cfg->transports_auto)
    return 0;
  for (size_t i = 0; i < cfg->ntransport_order; i++) {
    const char *nm = cfg->transport_order[i];
    if (mc_config_find_transport(cfg, nm))
      continue;
    int line = 0;
    for (size_t j = 0; j < root->n; j += 2)
      if (strcmp(root->kids[j]->text, "transport_order") == 0)
        line = root->kids[j]->line;
    return fail(c, line, "transport_order",
                "'%s' is not one of the configured transports", nm);
  }
  return 0;
}

static int apply_tree(pctx *c, const ynode *root) {
  if (!root || (root->type == YN_SCALAR && root->null))
    return 0; /* empty file, comments only, or "---": defaults */
  if (root->type != YN_MAP) {
    char d[96];
    return fail(c, root->line, NULL,
                "expected a mapping of keys at the top level, got %s",
                describe(root, d, sizeof d));
  }
  int rc = check_map(c, root, NULL);
  for (size_t i = 0; rc == 0 && i < root->n; i += 2)
    rc = parse_top_key(c, root->kids[i], root->kids[i + 1]);
  if (rc == 0)
    rc = check_order(c, root);
  return rc;
}

int mc_config_load_string(const char *yaml, size_t len, const char *name,
                          mc_config **out, char *err, size_t errlen) {
  pctx c = {.name = name ? name : "<string>", .err = err, .errlen = errlen};
  if (err && errlen)
    err[0] = '\0';
  if (!out || (!yaml && len)) {
    set_err(&c, "%s: invalid arguments", c.name);
    return MC_EINVAL;
  }
  *out = NULL;
  if (len > CFG_MAX_INPUT) {
    set_err(&c, "%s: larger than %u bytes", c.name, CFG_MAX_INPUT);
    return MC_EINVAL;
  }
  ynode *root = NULL;
  int rc = build_tree(&c, (const unsigned char *)(yaml ? yaml : ""), len,
                      &root);
  if (rc)
    return rc;
  c.cfg = mc_config_new_default();
  if (!c.cfg) {
    ynode_free(root);
    return oom(&c);
  }
  char *src = strdup(c.name);
  if (!src) {
    rc = oom(&c);
  } else {
    free(c.cfg->source);
    c.cfg->source = src;
    rc = apply_tree(&c, root);
  }
  ynode_free(root);
  if (rc) {
    mc_config_free(c.cfg);
    return rc;
  }
  *out = c.cfg;
  return 0;
}

int mc_config_load_file(const char *path, mc_config **out, char *err,
                        size_t errlen) {
  pctx c = {.name = path ? path : "<null>", .err = err, .errlen = errlen};
  if (err && errlen)
    err[0] = '\0';
  if (!path || !out) {
    set_err(&c, "%s: invalid arguments", c.name);
    return MC_EINVAL;
  }
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    set_err(&c, "%s: cannot open: %s", path, strerror(e));
    return e == ENOENT ? MC_ENOENT : e == EACCES ? MC_EACCES : MC_EIO;
  }
  /* Read at most one byte past the cap, so oversize is detected without
   * trusting st_size (pipes, /proc files). */
  char *buf = malloc(CFG_MAX_INPUT + 1);
  if (!buf) {
    close(fd);
    return oom(&c);
  }
  size_t len = 0;
  int rc = 0;
  while (len <= CFG_MAX_INPUT) {
    ssize_t r = read(fd, buf + len, CFG_MAX_INPUT + 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      set_err(&c, "%s: cannot read: %s", path, strerror(errno));
      rc = MC_EIO;
      break;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  if (rc == 0 && len > CFG_MAX_INPUT) {
    set_err(&c, "%s: larger than %u bytes", path, CFG_MAX_INPUT);
    rc = MC_EINVAL;
  }
  if (rc == 0)
    rc = mc_config_load_string(buf, len, path, out, err, errlen);
  free(buf);
  return rc;
}

/* ---------- environment overrides ---------- */

/* One MC_TRANSPORT_<NAME>_<KEY> setting, checked before anything changes. */
typedef struct env_opt {
  char *var; /* the variable's name as spelled in the environment */
  char *name, *key, *value;
  int optional; /* key is the core's `optional`: its parsed value */
} env_opt;

static void env_opts_free(env_opt *o, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(o[i].var);
    free(o[i].name);
    free(o[i].key);
    free(o[i].value);
  }
  free(o);
}

static char *lower_dup(const char *s, size_t len) {
  char *d = strndup(s, len);
  for (size_t i = 0; d && d[i]; i++)
    d[i] = (char)tolower((unsigned char)d[i]);
  return d;
}

/* The variable's name of "NAME=value", cut for messages. */
static int var_len(const char *var) {
  size_t l = strcspn(var, "=");
  return l > 120 ? 120 : (int)l;
}

/* Splits "MC_TRANSPORT_<NAME>_<KEY>=v".  Names may hold '_', so a name
 * from `names` that matches wins (longest first); else the name ends at the
 * first '_'.  Both parts are matched without regard to case and kept in
 * lower case, the case of names and keys. */
static int split_env_opt(const char *var, char *const *names, size_t nnames,
                         env_opt *o, char *err, size_t errlen) {
  const char *eq = strchr(var, '=');
  const char *rest = var + strlen("MC_TRANSPORT_");
  size_t restlen = (size_t)(eq - rest), namelen = 0;
  for (size_t i = 0; i < nnames; i++) {
    size_t l = strlen(names[i]);
    if (l > namelen && l < restlen && rest[l] == '_' &&
        strncasecmp(rest, names[i], l) == 0)
      namelen = l;
  }
  if (!namelen) {
    const char *us = memchr(rest, '_', restlen);
    namelen = us ? (size_t)(us - rest) : 0;
  }
  if (!(o->var = strndup(var, (size_t)(eq - var))))
    return MC_ENOMEM;
  if (!namelen || namelen + 1 >= restlen) {
    snprintf(err, errlen, "%.*s: expected MC_TRANSPORT_<NAME>_<KEY>=value",
             var_len(var), var);
    return MC_EINVAL;
  }
  o->name = lower_dup(rest, namelen);
  o->key = lower_dup(rest + namelen + 1, restlen - namelen - 1);
  o->value = strdup(eq + 1);
  return o->name && o->key && o->value ? 0 : MC_ENOMEM;
}

static int check_env_opt(const char *var, env_opt *o, char *const *names,
                         size_t nnames, int is_auto, char *err, size_t errlen) {
  char why[256];
  int vlen = var_len(var);
  if (mc_config_check_name(o->name, why, sizeof why)) {
    snprintf(err, errlen, "%.*s: %s", vlen, var, why);
    return MC_EINVAL;
  }
  if (!printable_word(o->key)) {
    snprintf(err, errlen, "%.*s: expected an option name", vlen, var);
    return MC_EINVAL;
  }
  if (!*o->value) {
    snprintf(err, errlen, "%.*s: expected a value", vlen, var);
    return MC_EINVAL;
  }
  if (!is_auto && !strv_contains(names, nnames, o->name)) {
    snprintf(err, errlen,
             "%.*s: transport '%s' is not configured (add it to transports "
             "or MC_TRANSPORTS)",
             vlen, var, o->name);
    return MC_EINVAL;
  }
  if (strcmp(o->key, CFG_OPTIONAL) == 0 &&
      mc_config_parse_bool(o->value, &o->optional) != 0) {
    char s[80];
    show(o->value, s, sizeof s);
    snprintf(err, errlen, "%.*s: expected %s, got '%s'", vlen, var,
             BOOL_SYNTAX, s);
    return MC_EINVAL;
  }
  return 0;
}

static int collect_env_opts(char *const *names,
                            size_t nnames, int is_auto, env_opt **out,
                            size_t *nout, char *err, size_t errlen) {
  env_opt *opts = NULL;
  size_t n = 0;
  int rc = 0;
  for (char **e = environ; rc == 0 && e && *e; e++) {
    if (strncmp(*e, "MC_TRANSPORT_", 13) != 0 || !strchr(*e, '='))
      continue;
    env_opt o = {0};
    env_opt *no = realloc(opts, (n + 1) * sizeof *no);
    if (!no) {
      rc = MC_ENOMEM;
      break;
    }
    opts = no;
    rc = split_env_opt(*e, names, nnames, &o, err, errlen);
    if (rc == 0)
      rc = check_env_opt(*e, &o, names, nnames, is_auto, err, errlen);
    opts[n++] = o; /* freed with the rest, even on error */
  }
  if (rc) {
    env_opts_free(opts, n);
    return rc;
  }
  *out = opts;
  *nout = n;
  return 0;
}

static const char *env_val(const char *var) {
  const char *v = getenv(var);
  return v && *v ? v : NULL; /* empty = unset */
}

/* Commits parsed values of the key table: the transport list first (it may
 * fail for memory, before anything else changed), then the rest. */
static int commit_all(mc_config *cfg, kval *vals, const int *set, int src) {
  int rc = 0;
  for (int pass = 0; pass < 2 && rc == 0; pass++)
    for (size_t i = 0; i < N_KEYS && rc == 0; i++)
      if (set[i] && (keys[i].type == KT_TRANSPORTS) == (pass == 0))
        rc = commit(cfg, &keys[i], &vals[i], src, 0);
  return rc;
}

int mc_config_apply_env(mc_config *cfg, char *err, size_t errlen) {
  char scratch[MC_CONFIG_ERR_MAX];
  if (!err || !errlen) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = '\0';
  if (!cfg) {
    snprintf(err, errlen, "environment: no configuration");
    return MC_EINVAL;
  }
  /* Check every variable first so a bad one changes nothing. */
  kval vals[N_KEYS];
  int set[N_KEYS] = {0}, rc = 0;
  memset(vals, 0, sizeof vals);
  for (size_t i = 0; rc == 0 && i < N_KEYS; i++) {
    const char *v = keys[i].env ? env_val(keys[i].env) : NULL;
    char why[256];
    if (!v)
      continue;
    rc = parse_text(&keys[i], v, &vals[i], why, sizeof why);
    if (rc == MC_EINVAL)
      snprintf(err, errlen, "%s: %s", keys[i].env, why);
    set[i] = rc == 0;
  }

  /* The transports MC_TRANSPORT_* may name: the new list, or (without one,
   * or with auto) the configured ones. */
  const cfg_key *tk = key_of_type(KT_TRANSPORTS);
  const kval *tv = &vals[tk - keys];
  int has_list = set[tk - keys] && !tv->is_auto;
  int is_auto = set[tk - keys] ? tv->is_auto : cfg->transports_auto;
  char **names = NULL;
  size_t nnames = 0;
  for (size_t i = 0; rc == 0 && i < (has_list ? tv->n : cfg->ntransports); i++)
    rc = strv_push(&names, &nnames,
                   strdup(has_list ? tv->v[i] : cfg->transports[i].name));
  env_opt *opts = NULL;
  size_t nopts = 0;
  if (rc == 0)
    rc = collect_env_opts(names, nnames, is_auto, &opts, &nopts, err, errlen);

  /* Commit.  Only allocation can fail from here on. */
  if (rc == 0)
    rc = commit_all(cfg, vals, set, MC_SRC_ENV);
  for (size_t i = 0; rc == 0 && i < nopts; i++) {
    mc_config_transport *t = mc_config_add_transport(cfg, opts[i].name);
    if (!t) {
      rc = MC_ENOMEM;
      break;
    }
    if (strcmp(opts[i].key, CFG_OPTIONAL) == 0) {
      t->optional = opts[i].optional;
      continue;
    }
    rc = transport_set(t, opts[i].key, opts[i].value, 0, opts[i].var);
    opts[i].value = NULL; /* transport_set took them, or freed them */
    opts[i].var = NULL;
  }
  for (size_t i = 0; i < N_KEYS; i++)
    kval_free(&vals[i]);
  free_strv(names, nnames);
  env_opts_free(opts, nopts);
  if (rc == MC_ENOMEM)
    snprintf(err, errlen, "environment: out of memory");
  return rc;
}

/* ---------- mc_engine_opts ---------- */

int mc_config_apply_opts(mc_config *cfg, const mc_engine_opts *o, char *err,
                         size_t errlen) {
  char scratch[MC_CONFIG_ERR_MAX];
  if (!err || !errlen) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = '\0';
  if (!cfg) {
    snprintf(err, errlen, "mc_engine_opts: no configuration");
    return MC_EINVAL;
  }
  if (!o)
    return 0;
  kval vals[N_KEYS];
  int set[N_KEYS] = {0}, rc = 0;
  memset(vals, 0, sizeof vals);
  for (size_t i = 0; rc == 0 && i < N_KEYS; i++) {
    if (!keys[i].opt)
      continue;
    const char *v = *(const char *const *)((const char *)o + keys[i].opt_off);
    char why[256];
    if (!v || !*v) /* NULL or "": unset, as an empty variable */
      continue;
    rc = parse_text(&keys[i], v, &vals[i], why, sizeof why);
    if (rc == MC_EINVAL)
      snprintf(err, errlen, "mc_engine_opts.%s: %s", keys[i].opt, why);
    set[i] = rc == 0;
  }
  if (rc == 0)
    rc = commit_all(cfg, vals, set, MC_SRC_OPTS);
  for (size_t i = 0; i < N_KEYS; i++)
    kval_free(&vals[i]);
  if (rc == MC_ENOMEM)
    snprintf(err, errlen, "mc_engine_opts: out of memory");
  return rc;
}

/* ---------- plugin params ---------- */

/* The stride of ops->params, 0 when the table cannot be read. */
static size_t param_stride(const mc_transport_ops *ops) {
  size_t s = ops->param_info_size ? ops->param_info_size
                                  : MC_PARAM_INFO_V1_SIZE;
  return s < MC_PARAM_INFO_V1_SIZE ? 0 : s;
}

int mc_param_read(const mc_transport_ops *ops, size_t i, mc_param_info *out) {
  memset(out, 0, sizeof *out);
  size_t stride = ops && ops->params ? param_stride(ops) : 0;
  if (!stride || i >= MC_PARAM_MAX)
    return 0;
  /* memcpy, not a cast: the entry's layout is the plugin's, and a stride
   * that is not a multiple of the alignment must not make this UB. */
  memcpy(out, (const unsigned char *)ops->params + i * stride,
         stride < sizeof *out ? stride : sizeof *out);
  return out->type != MC_PARAM_END;
}

int mc_param_find(const mc_transport_ops *ops, const char *key,
                  mc_param_info *out) {
  mc_param_info pi;
  for (size_t i = 0; key && mc_param_read(ops, i, &pi) == 1; i++) {
    if (pi.name && strcmp(pi.name, key) == 0) {
      if (out)
        *out = pi;
      return 0;
    }
  }
  return MC_ENOENT;
}

static int has_range(const mc_param_info *pi) { return pi->min || pi->max; }

int mc_param_check_value(const mc_param_info *pi, const char *text, char *why,
                         size_t n) {
  char s[80], a[32], b[32];
  show(text ? text : "", s, sizeof s);
  switch (pi->type) {
  case MC_PARAM_BOOL: {
    int x;
    if (mc_config_parse_bool(text, &x) == 0)
      return 0;
    snprintf(why, n, "expected %s, got '%s'", BOOL_SYNTAX, s);
    return MC_EINVAL;
  }
  case MC_PARAM_INT: {
    int64_t x;
    int ok = mc_config_parse_int(text, &x) == 0;
    if (ok && (!has_range(pi) || (x >= pi->min && x <= pi->max)))
      return 0;
    if (has_range(pi))
      snprintf(why, n, "expected an integer %" PRId64 "..%" PRId64 ", got '%s'",
               pi->min, pi->max, s);
    else
      snprintf(why, n, "expected an integer, got '%s'", s);
    return MC_EINVAL;
  }
  case MC_PARAM_SIZE: {
    uint64_t x;
    if (mc_config_parse_size(text, &x) != 0) {
      snprintf(why, n, "expected %s, got '%s'", SIZE_SYNTAX, s);
      return MC_EINVAL;
    }
    /* The table check made 0 <= min <= max. */
    if (!has_range(pi) || (x >= (uint64_t)pi->min && x <= (uint64_t)pi->max))
      return 0;
    fmt_size((uint64_t)pi->min, a, sizeof a);
    fmt_size((uint64_t)pi->max, b, sizeof b);
    snprintf(why, n, "expected a size from %s to %s, got '%s'", a, b, s);
    return MC_EINVAL;
  }
  case MC_PARAM_STRING:
    if (text)
      return 0;
    snprintf(why, n, "expected a value");
    return MC_EINVAL;
  default:
    snprintf(why, n, "has an unknown type %u", pi->type);
    return MC_EINVAL;
  }
}

/* Checks the params table itself: a defect is the plugin's, MC_EABI. */
static int check_param_table(const char *name, const char *path,
                             const mc_transport_ops *ops, char *err,
                             size_t errlen) {
  char why[400] = ""; /* holds a key (80) and a value's reason (200) */
  mc_param_info pi;
  size_t i = 0;
  if (!ops->params)
    return 0;
  if (ops->abi_minor >= 1 && ops->param_info_size == 0) {
    /* Built against a 1.1 header, its entries have min and max: reading
     * them with the 1.0 stride would take min/max for pointers. */
    snprintf(why, sizeof why,
             "an ABI 1.%u table with params must set param_info_size "
             "(= sizeof(mc_param_info))",
             ops->abi_minor);
  } else if (!param_stride(ops)) {
    snprintf(why, sizeof why,
             "param_info_size %u is smaller than a 1.0 entry (%zu bytes)",
             ops->param_info_size, (size_t)MC_PARAM_INFO_V1_SIZE);
  }
  for (; !why[0] && mc_param_read(ops, i, &pi) == 1; i++) {
    char nm[80];
    show(pi.name ? pi.name : "(null)", nm, sizeof nm);
    if (!pi.name || mc_config_check_name(pi.name, why, sizeof why)) {
      snprintf(why, sizeof why, "params[%zu]: key '%s' is not [a-z0-9_]+", i,
               nm);
      break;
    }
    if (strcmp(pi.name, CFG_OPTIONAL) == 0) {
      snprintf(why, sizeof why, "params[%zu]: key '%s' is reserved by the core",
               i, nm);
      break;
    }
    for (size_t j = 0; j < i; j++) {
      mc_param_info pj;
      mc_param_read(ops, j, &pj);
      if (strcmp(pj.name, pi.name) == 0) {
        snprintf(why, sizeof why, "params[%zu]: key '%s' is listed twice", i,
                 nm);
        break;
      }
    }
    if (why[0])
      break;
    if (pi.type < MC_PARAM_BOOL || pi.type > MC_PARAM_STRING) {
      snprintf(why, sizeof why, "params[%zu]: key '%s' has unknown type %u", i,
               nm, pi.type);
      break;
    }
    if ((pi.type == MC_PARAM_INT || pi.type == MC_PARAM_SIZE) &&
        has_range(&pi) &&
        (pi.min > pi.max || (pi.type == MC_PARAM_SIZE && pi.min < 0))) {
      snprintf(why, sizeof why,
               "params[%zu]: key '%s' has the range %" PRId64 "..%" PRId64, i,
               nm, pi.min, pi.max);
      break;
    }
    /* The typed getters return the default when the key is unset: it is
     * checked as a configured value would be. */
    char vwhy[200];
    if (pi.type != MC_PARAM_STRING && pi.default_text && pi.default_text[0] &&
        mc_param_check_value(&pi, pi.default_text, vwhy, sizeof vwhy)) {
      snprintf(why, sizeof why, "params[%zu]: default of key '%s': %s", i, nm,
               vwhy);
      break;
    }
  }
  if (!why[0] && i >= MC_PARAM_MAX)
    snprintf(why, sizeof why, "params has no MC_PARAM_END entry within %d",
             MC_PARAM_MAX);
  if (!why[0])
    return 0;
  snprintf(err, errlen, "plugin '%s' (%s): %s", name, path ? path : "?", why);
  return MC_EABI;
}

int mc_config_check_plugin(const mc_config *cfg, const char *name,
                           const char *path, const mc_transport_ops *ops,
                           char *err, size_t errlen) {
  char scratch[MC_CONFIG_ERR_MAX];
  if (!err || !errlen) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = '\0';
  if (!cfg || !name || !ops)
    return MC_EINVAL;
  int rc = check_param_table(name, path, ops, err, errlen);
  const mc_config_transport *ct = mc_config_find_transport(cfg, name);
  for (size_t i = 0; rc == 0 && ct && i < ct->nparams; i++) {
    const mc_config_param *cp = &ct->params[i];
    char where[400], why[256], key[80];
    show(cp->key, key, sizeof key);
    if (cp->var)
      snprintf(where, sizeof where, "%.120s", cp->var);
    else
      snprintf(where, sizeof where, "%.200s:%d: key 'transports.%.63s.%s'",
               cfg->source, cp->line, name, key);
    mc_param_info pi;
    if (mc_param_find(ops, cp->key, &pi) != 0) {
      char known[256] = "";
      size_t off = 0;
      for (size_t j = 0; mc_param_read(ops, j, &pi) == 1; j++) {
        int k = snprintf(known + off, sizeof known - off, "%s%s",
                         off ? ", " : "", pi.name);
        if (k < 0 || (size_t)k >= sizeof known - off) {
          /* Cut at a whole name, and say so. */
          snprintf(known + off, sizeof known - off, "%s...", off ? ", " : "");
          break;
        }
        off += (size_t)k;
      }
      snprintf(err, errlen, "%s: unknown key '%s' for transport %s (known: %s)",
               where, key, name, known[0] ? known : "none");
      return MC_EINVAL;
    }
    if (mc_param_check_value(&pi, cp->value, why, sizeof why)) {
      snprintf(err, errlen, "%s: %s", where, why);
      return MC_EINVAL;
    }
  }
  return rc;
}
