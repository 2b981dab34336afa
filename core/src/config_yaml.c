/* config_yaml.c - the YAML file (see config.c for the split). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcntl.h>
#include <unistd.h>

#include <yaml.h>

#include "config_p.h"

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
    mc_cfg_show(key, k, sizeof k);
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
    mc_cfg_show((const char *)ev->data.alias.anchor, a, sizeof a);
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
  mc_cfg_show(v->text, s, sizeof s);
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
    if (unique && mc_cfg_strv_contains(list, n, s)) {
      char d[80];
      mc_cfg_show(s, d, sizeof d);
      rc = fail(c, it->line, key, "'%s' is listed twice", d);
      break;
    }
    if (mc_cfg_strv_push(&list, &n, strdup(s)) != 0)
      rc = oom(c);
  }
  if (rc) {
    mc_cfg_free_strv(list, n);
    return rc;
  }
  mc_cfg_free_strv(*outv, *outn);
  *outv = list;
  *outn = n;
  return 0;
}

static int parse_option(pctx *c, mc_config_transport *t, const ynode *k,
                        const ynode *v) {
  char path[160];
  snprintf(path, sizeof path, "transports.%s.%s", t->name, k->text);
  if (!mc_cfg_printable_word(k->text))
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
      mc_cfg_show(v->text, s, sizeof s);
      return fail(c, v->line, path, "expected %s, got '%s'", BOOL_SYNTAX, s);
    }
    return mc_cfg_transport_set(t, k->text, strdup(v->text), k->line, NULL) ? oom(c)
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
  return mc_cfg_transport_set(t, k->text, joined, k->line, NULL) ? oom(c) : 0;
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
 * text forms "auto" and "tcp,shm" go through mc_cfg_parse_text). */
static int parse_transports(pctx *c, const ynode *v) {
  mc_config *cfg = c->cfg;
  /* {}: keep the defaults. */
  if (v->type == YN_MAP && v->n == 0)
    return 0;
  mc_cfg_free_transports(cfg->transports, cfg->ntransports);
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
  if (mc_cfg_check_word(k->text, "a memory location like cpu:0 or cuda:3", why,
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
      rc = parse_list(c, sv, sub, mc_cfg_chk_rail, 1, &topo.preferred,
                      &topo.npreferred);
    else if (strcmp(sk->text, "fallback") == 0)
      rc = parse_list(c, sv, sub, mc_cfg_chk_rail, 1, &topo.fallback,
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
  mc_cfg_free_strv(topo.preferred, topo.npreferred);
  mc_cfg_free_strv(topo.fallback, topo.nfallback);
  return rc;
}

static int parse_topology(pctx *c, const ynode *v) {
  mc_config *cfg = c->cfg;
  mc_cfg_free_topology(cfg->topology, cfg->ntopology);
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
 * Scalars go through mc_cfg_parse_text (as the variables and opts members do);
 * the YAML-only shapes have their own parsers. */
static int parse_top_key(pctx *c, const ynode *k, const ynode *v) {
  mc_config *cfg = c->cfg;
  const char *key = k->text;
  const cfg_key *row = mc_cfg_find_key(key);
  if (!row) {
    char expected[256];
    size_t off = 0;
    for (size_t i = 0; i < N_KEYS; i++)
      off += (size_t)snprintf(expected + off, sizeof expected - off, "%s%s",
                              i ? ", " : "", mc_cfg_keys[i].key);
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
      rc = mc_cfg_commit(cfg, row, &val, MC_SRC_FILE, v->line) ? oom(c) : 0;
  } else if (v->type == YN_SCALAR && v->null && row->reset) {
    /* Back to the built-in value: NULL, an empty list, the default
     * transports (the configuration is fresh, so that is leaving it). */
    if (row->type != KT_TRANSPORTS)
      rc = mc_cfg_commit(cfg, row, &val, MC_SRC_FILE, v->line) ? oom(c) : 0;
  } else {
    const char *text = NULL;
    char what[160], why[256];
    if ((rc = want_text(c, v, key, mc_cfg_key_what(row, what, sizeof what),
                        &text)) != 0)
      return rc;
    rc = mc_cfg_parse_text(row, text, &val, why, sizeof why);
    if (rc == MC_EINVAL)
      rc = fail(c, v->line, key, "%s", why);
    else if (rc)
      rc = oom(c);
    else
      rc = mc_cfg_commit(cfg, row, &val, MC_SRC_FILE, v->line) ? oom(c) : 0;
  }
  mc_cfg_kval_free(&val);
  if (rc == 0)
    cfg->origin[row - mc_cfg_keys] = (mc_config_origin){MC_SRC_FILE, v->line};
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
