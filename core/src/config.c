/* config.c - the engine configuration: defaults, the YAML file (libyaml) and
 * MC_* environment overrides.
 *
 * The YAML text is first turned into a small tree of nodes that keep their
 * line numbers (so every message can name file:line and key), then the tree
 * is checked against the schema in config.h.  The input is untrusted: it is
 * capped in size, nesting depth, node count, entries per collection and
 * scalar length; aliases are refused (no alias expansion, so no "billion
 * laughs"), and so are multiple documents and duplicate keys.
 *
 * Under `transports: auto` the transports array holds only the transports
 * that were given options (the engine loads every plugin it finds). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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
#define CFG_MAX_NAME 63       /* transport name length */
#define CFG_MAX_SLICE (1ull << 30)
#define CFG_MAX_RETRY 64
#define CFG_MAX_TIMEOUT 2147483647ull /* fits an int for poll() and friends */

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

/* ---------- value checkers shared by the file and the environment ----------
 * Each returns 0, or MC_EINVAL with "expected ..., got '...'" in why. */

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
  /* Accept the common spellings 64K, 64KB, 64KiB and 4096B. */
  if (shift && *p == 'i')
    p++;
  if (*p == 'B' || *p == 'b')
    p++;
  if (*p != '\0')
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = v << shift;
  return 0;
}

static int check_size(const char *v, uint64_t *out, char *why, size_t n) {
  char s[80];
  uint64_t x;
  show(v, s, sizeof s);
  if (mc_config_parse_size(v, &x) != 0) {
    snprintf(why, n, "expected a size like 64K, got '%s'", s);
    return MC_EINVAL;
  }
  if (x == 0 || x > CFG_MAX_SLICE) {
    snprintf(why, n, "expected a size from 1 to 1G, got '%s'", s);
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

/* "p2p" or "scheme://rest"; the metadata module decides which schemes exist. */
static int check_metadata(const char *v, char *why, size_t n) {
  int ok = strcmp(v, "p2p") == 0;
  if (!ok && printable_word(v)) {
    const char *sep = strstr(v, "://");
    ok = sep && sep != v && sep[3];
    for (const char *p = v; ok && p < sep; p++)
      if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
        ok = 0;
  }
  if (!ok) {
    char s[80];
    show(v, s, sizeof s);
    snprintf(why, n,
             "expected p2p, etcd://host:port[,host:port] or "
             "http://host:port/path, got '%s'",
             s);
    return MC_EINVAL;
  }
  return 0;
}

/* Transport names become plugin file names (mc-transport-<name>.so), so
 * only [A-Za-z0-9_-] is allowed: no path separators. */
static int check_name(const char *v, char *why, size_t n) {
  size_t len = strlen(v);
  int ok = len > 0 && len <= CFG_MAX_NAME;
  for (size_t i = 0; ok && i < len; i++)
    if (!isalnum((unsigned char)v[i]) && v[i] != '_' && v[i] != '-')
      ok = 0;
  if (!ok) {
    char s[80];
    show(v, s, sizeof s);
    snprintf(why, n,
             "expected a transport name (letters, digits, '_', '-'), got '%s'",
             s);
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

/* Sets (or replaces) transports.<t>.<key>; takes ownership of value. */
static int transport_set(mc_config_transport *t, const char *key, char *value,
                         int line) {
  if (!value)
    return MC_ENOMEM;
  for (size_t i = 0; i < t->nparams; i++) {
    if (strcmp(t->params[i].key, key) == 0) {
      free(t->params[i].value);
      t->params[i].value = value;
      t->params[i].line = line;
      return 0;
    }
  }
  char *k = strdup(key);
  mc_config_param *np =
      k ? realloc(t->params, (t->nparams + 1) * sizeof *np) : NULL;
  if (!np) {
    free(k);
    free(value);
    return MC_ENOMEM;
  }
  t->params = np;
  np[t->nparams++] = (mc_config_param){k, value, line};
  return 0;
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

static int parse_plugin_path(pctx *c, const ynode *v) {
  mc_config *cfg = c->cfg;
  if (v->type == YN_SEQ)
    return parse_list(c, v, "plugin_path", chk_dir, 0, &cfg->plugin_path,
                      &cfg->nplugin_path);
  char **list = NULL;
  size_t n = 0;
  if (v->type == YN_SCALAR && !v->null) {
    /* "dir:dir": empty entries are skipped, as in $PATH handling. */
    for (const char *p = v->text; *p;) {
      size_t len = strcspn(p, ":");
      if (len && strv_push(&list, &n, strndup(p, len)) != 0) {
        free_strv(list, n);
        return oom(c);
      }
      p += len;
      if (*p == ':')
        p++;
    }
  } else if (!v->null) {
    char d[96];
    return fail(c, v->line, "plugin_path",
                "expected a sequence of directories or a 'dir:dir' string, "
                "got %s",
                describe(v, d, sizeof d));
  }
  free_strv(cfg->plugin_path, cfg->nplugin_path);
  cfg->plugin_path = list;
  cfg->nplugin_path = n;
  return 0;
}

/* transports.<t>.<key>: a scalar, or a short list joined by ','. */
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
    return transport_set(t, k->text, strdup(v->text), k->line) ? oom(c) : 0;
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
  return transport_set(t, k->text, joined, k->line) ? oom(c) : 0;
}

static int add_named_transport(pctx *c, const ynode *nm,
                               mc_config_transport **out) {
  char why[256];
  const char *name = NULL;
  int rc = want_text(c, nm, "transports", "a transport name", &name);
  if (rc)
    return rc;
  if (check_name(name, why, sizeof why))
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

static int parse_transports(pctx *c, const ynode *v) {
  mc_config *cfg = c->cfg;
  /* null or {}: keep the defaults. */
  if ((v->type == YN_SCALAR && v->null) || (v->type == YN_MAP && v->n == 0))
    return 0;
  free_transports(cfg->transports, cfg->ntransports);
  cfg->transports = NULL;
  cfg->ntransports = 0;
  cfg->transports_auto = 0;
  if (v->type == YN_SCALAR) {
    if (strcmp(v->text, "auto") == 0) {
      cfg->transports_auto = 1;
      return 0;
    }
    char d[96];
    return fail(c, v->line, "transports",
                "expected 'auto', a sequence of names like [tcp, shm] or a "
                "mapping like {tcp: {connections: 4}}, got %s",
                describe(v, d, sizeof d));
  }
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
static int set_text(pctx *c, const ynode *v, const char *key, const char *what,
                    int (*chk)(const char *, char *, size_t), char **dst) {
  const char *s = NULL;
  char why[256];
  int rc = want_text(c, v, key, what, &s);
  if (rc)
    return rc;
  if (chk && chk(s, why, sizeof why))
    return fail(c, v->line, key, "%s", why);
  char *copy = strdup(s);
  if (!copy)
    return oom(c);
  free(*dst);
  *dst = copy;
  return 0;
}

static int chk_segment(const char *v, char *why, size_t n) {
  return check_word(v, "a segment name", why, n);
}

static int parse_uint_key(pctx *c, const ynode *v, const char *key,
                          uint64_t lo, uint64_t hi, uint64_t *out) {
  const char *s = NULL;
  char why[256], what[64];
  snprintf(what, sizeof what, "an integer %llu..%llu", (unsigned long long)lo,
           (unsigned long long)hi);
  int rc = want_text(c, v, key, what, &s);
  if (rc)
    return rc;
  if (check_uint(s, lo, hi, out, why, sizeof why))
    return fail(c, v->line, key, "%s", why);
  return 0;
}

static const char *const top_keys[] = {
    "segment_name", "listen",      "metadata",   "plugin_path",
    "transports",   "transport_order", "slice_size", "retry_count",
    "timeout_ms",   "log_level",   "topology",   "cluster_token_file",
};
#define N_TOP_KEYS (sizeof top_keys / sizeof top_keys[0])

static int parse_top_key(pctx *c, const ynode *k, const ynode *v) {
  mc_config *cfg = c->cfg;
  const char *key = k->text;
  char why[256];
  uint64_t x;
  int rc;
  if (strcmp(key, "segment_name") == 0) {
    if (v->type == YN_SCALAR && v->null) {
      free(cfg->segment_name);
      cfg->segment_name = NULL;
      return 0;
    }
    return set_text(c, v, key, "a segment name", chk_segment,
                    &cfg->segment_name);
  }
  if (strcmp(key, "listen") == 0)
    return set_text(c, v, key, "host:port", check_listen, &cfg->listen);
  if (strcmp(key, "metadata") == 0)
    return set_text(c, v, key, "a metadata URL", check_metadata,
                    &cfg->metadata);
  if (strcmp(key, "plugin_path") == 0)
    return parse_plugin_path(c, v);
  if (strcmp(key, "cluster_token_file") == 0) {
    if (v->type == YN_SCALAR && v->null) {
      free(cfg->cluster_token_file);
      cfg->cluster_token_file = NULL;
      return 0;
    }
    /* Read at engine creation, not here: parsing touches no files. */
    if ((rc = set_text(c, v, key, "a file path", chk_path,
                       &cfg->cluster_token_file)) == 0)
      cfg->cluster_token_line = v->line;
    return rc;
  }
  if (strcmp(key, "transports") == 0)
    return parse_transports(c, v);
  if (strcmp(key, "transport_order") == 0) {
    if (v->type == YN_SCALAR && v->null) {
      free_strv(cfg->transport_order, cfg->ntransport_order);
      cfg->transport_order = NULL;
      cfg->ntransport_order = 0;
      return 0;
    }
    return parse_list(c, v, key, check_name, 1, &cfg->transport_order,
                      &cfg->ntransport_order);
  }
  if (strcmp(key, "slice_size") == 0) {
    const char *s = NULL;
    if ((rc = want_text(c, v, key, "a size like 64K", &s)) != 0)
      return rc;
    if (check_size(s, &x, why, sizeof why))
      return fail(c, v->line, key, "%s", why);
    cfg->slice_size = x;
    cfg->slice_size_set = 1;
    return 0;
  }
  if (strcmp(key, "retry_count") == 0) {
    if ((rc = parse_uint_key(c, v, key, 0, CFG_MAX_RETRY, &x)) == 0)
      cfg->retry_count = (uint32_t)x;
    return rc;
  }
  if (strcmp(key, "timeout_ms") == 0) {
    if ((rc = parse_uint_key(c, v, key, 1, CFG_MAX_TIMEOUT, &x)) == 0)
      cfg->timeout_ms = (uint32_t)x;
    return rc;
  }
  if (strcmp(key, "log_level") == 0) {
    const char *s = NULL;
    if ((rc = want_text(c, v, key, "a log level", &s)) != 0)
      return rc;
    if (check_level(s, &cfg->log_level, why, sizeof why))
      return fail(c, v->line, key, "%s", why);
    return 0;
  }
  if (strcmp(key, "topology") == 0)
    return parse_topology(c, v);
  char expected[256];
  size_t off = 0;
  for (size_t i = 0; i < N_TOP_KEYS; i++)
    off += (size_t)snprintf(expected + off, sizeof expected - off, "%s%s",
                            i ? ", " : "", top_keys[i]);
  return fail(c, k->line, key, "unknown key (expected one of: %s)", expected);
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
  char *name, *key, *value;
} env_opt;

static void env_opts_free(env_opt *o, size_t n) {
  for (size_t i = 0; i < n; i++) {
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

/* Splits "MC_TRANSPORT_<NAME>_<KEY>=v".  Names may hold '_', so a name
 * from `names` that matches wins (longest first); else the name ends at the
 * first '_'. */
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
  if (!namelen || namelen + 1 >= restlen) {
    snprintf(err, errlen, "%.*s: expected MC_TRANSPORT_<NAME>_<KEY>=value",
             (int)(eq - var) > 120 ? 120 : (int)(eq - var), var);
    return MC_EINVAL;
  }
  o->name = lower_dup(rest, namelen);
  o->key = lower_dup(rest + namelen + 1, restlen - namelen - 1);
  o->value = strdup(eq + 1);
  return o->name && o->key && o->value ? 0 : MC_ENOMEM;
}

static int check_env_opt(const char *var, const env_opt *o, char *const *names,
                         size_t nnames, int is_auto, char *err, size_t errlen) {
  char why[256];
  int vlen = (int)(strchr(var, '=') - var);
  if (vlen > 120)
    vlen = 120;
  if (check_name(o->name, why, sizeof why)) {
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

/* Parses MC_TRANSPORTS into a name list; *is_auto set for "auto". */
static int parse_env_transports(const char *v, char ***names, size_t *n,
                                int *is_auto, char *err, size_t errlen) {
  if (strcmp(v, "auto") == 0) {
    *is_auto = 1;
    return 0;
  }
  for (const char *p = v;;) {
    size_t len = strcspn(p, ",");
    char *nm = strndup(p, len);
    char why[256];
    if (!nm)
      return MC_ENOMEM;
    if (check_name(nm, why, sizeof why)) {
      snprintf(err, errlen,
               "MC_TRANSPORTS: expected 'auto' or names like tcp,shm: %s", why);
      free(nm);
      return MC_EINVAL;
    }
    if (strv_contains(*names, *n, nm)) {
      snprintf(err, errlen, "MC_TRANSPORTS: '%s' is listed twice", nm);
      free(nm);
      return MC_EINVAL;
    }
    if (strv_push(names, n, nm))
      return MC_ENOMEM;
    p += len;
    if (!*p)
      break;
    p++;
  }
  return 0;
}

/* Rebuilds the transport list from names, keeping options of those named. */
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

static const char *env_val(const char *var) {
  const char *v = getenv(var);
  return v && *v ? v : NULL; /* empty = unset */
}

static int env_fail(char *err, size_t errlen, const char *var,
                    const char *why) {
  if (err && errlen)
    snprintf(err, errlen, "%s: %s", var, why);
  return MC_EINVAL;
}

int mc_config_apply_env(mc_config *cfg, char *err, size_t errlen) {
  char why[256], scratch[MC_CONFIG_ERR_MAX];
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
  const char *seg = env_val("MC_SEGMENT_NAME");
  const char *lis = env_val("MC_LISTEN");
  const char *md = env_val("MC_METADATA");
  const char *tok = env_val("MC_CLUSTER_TOKEN_FILE");
  const char *tr = env_val("MC_TRANSPORTS");
  const char *ss = env_val("MC_SLICE_SIZE");
  const char *rc_ = env_val("MC_RETRY_COUNT");
  const char *to = env_val("MC_TIMEOUT_MS");
  const char *ll = env_val("MC_LOG_LEVEL");
  uint64_t slice = 0, retry = 0, timeout = 0;
  int level = 0;
  if (seg && check_word(seg, "a segment name", why, sizeof why))
    return env_fail(err, errlen, "MC_SEGMENT_NAME", why);
  if (lis && check_listen(lis, why, sizeof why))
    return env_fail(err, errlen, "MC_LISTEN", why);
  if (md && check_metadata(md, why, sizeof why))
    return env_fail(err, errlen, "MC_METADATA", why);
  if (ss && check_size(ss, &slice, why, sizeof why))
    return env_fail(err, errlen, "MC_SLICE_SIZE", why);
  if (rc_ && check_uint(rc_, 0, CFG_MAX_RETRY, &retry, why, sizeof why))
    return env_fail(err, errlen, "MC_RETRY_COUNT", why);
  if (to && check_uint(to, 1, CFG_MAX_TIMEOUT, &timeout, why, sizeof why))
    return env_fail(err, errlen, "MC_TIMEOUT_MS", why);
  if (ll && check_level(ll, &level, why, sizeof why))
    return env_fail(err, errlen, "MC_LOG_LEVEL", why);

  char **names = NULL;
  size_t nnames = 0;
  int is_auto = cfg->transports_auto, rc = 0;
  if (tr) {
    is_auto = 0;
    rc = parse_env_transports(tr, &names, &nnames, &is_auto, err, errlen);
  }
  /* Without a new list (or with auto), the configured names stay valid. */
  if (!tr || is_auto)
    for (size_t i = 0; rc == 0 && i < cfg->ntransports; i++)
      rc = strv_push(&names, &nnames, strdup(cfg->transports[i].name));
  env_opt *opts = NULL;
  size_t nopts = 0;
  if (rc == 0)
    rc = collect_env_opts(names, nnames, is_auto, &opts, &nopts, err,
                          errlen);

  /* Commit.  Only allocation can fail from here on. */
  char *dup_seg = NULL, *dup_lis = NULL, *dup_md = NULL, *dup_tok = NULL;
  if (rc == 0 && ((seg && !(dup_seg = strdup(seg))) ||
                  (lis && !(dup_lis = strdup(lis))) ||
                  (md && !(dup_md = strdup(md))) ||
                  (tok && !(dup_tok = strdup(tok)))))
    rc = MC_ENOMEM;
  if (rc == 0 && tr) {
    if (is_auto)
      cfg->transports_auto = 1; /* keep every transport's options */
    else if ((rc = replace_transports(cfg, names, nnames)) == 0)
      cfg->transports_auto = 0;
  }
  for (size_t i = 0; rc == 0 && i < nopts; i++) {
    mc_config_transport *t = mc_config_add_transport(cfg, opts[i].name);
    if (!t) {
      rc = MC_ENOMEM;
      break;
    }
    rc = transport_set(t, opts[i].key, opts[i].value, 0);
    opts[i].value = NULL; /* transport_set took it, or freed it */
  }
  if (rc == 0) {
    if (dup_seg) {
      free(cfg->segment_name);
      cfg->segment_name = dup_seg;
      dup_seg = NULL;
    }
    if (dup_lis) {
      free(cfg->listen);
      cfg->listen = dup_lis;
      dup_lis = NULL;
    }
    if (dup_md) {
      free(cfg->metadata);
      cfg->metadata = dup_md;
      dup_md = NULL;
    }
    if (dup_tok) {
      free(cfg->cluster_token_file);
      cfg->cluster_token_file = dup_tok;
      cfg->cluster_token_line = 0;
      dup_tok = NULL;
    }
    if (ss) {
      cfg->slice_size = slice;
      cfg->slice_size_set = 1;
    }
    if (rc_)
      cfg->retry_count = (uint32_t)retry;
    if (to)
      cfg->timeout_ms = (uint32_t)timeout;
    if (ll)
      cfg->log_level = level;
  }
  free(dup_seg);
  free(dup_lis);
  free(dup_md);
  free(dup_tok);
  free_strv(names, nnames);
  env_opts_free(opts, nopts);
  if (rc == MC_ENOMEM)
    snprintf(err, errlen, "environment: out of memory");
  return rc;
}
