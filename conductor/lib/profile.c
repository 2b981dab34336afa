/* Instance performance profiles: the YAML reader and the three models
 * (prefill polynomial, remote KV transfer, decode step). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "mooncake/conductor.h"
#include "cond_util.h"

/* x^n for the small whole powers of a profile (pow() would dominate a
 * scheduling decision: it runs for every term of every candidate). */
static double ipow(double x, unsigned n) {
  double r = 1;
  while (n--)
    r *= x;
  return r;
}

double mc_cond_prefill_time(const mc_cond_profile *p, double input, double prefix) {
  if (!p)
    return 0;
  if (prefix > input)
    prefix = input;
  double t = 0;
  for (unsigned i = 0; i < p->n_terms && i < MC_COND_MAX_TERMS; i++) {
    const mc_cond_term *k = &p->prefill[i];
    t += k->coef * ipow(input, k->len_pow) * ipow(prefix, k->prefix_pow);
  }
  return t > 0 ? t : 0;
}

double mc_cond_transfer_time(const mc_cond_profile *p, double blocks) {
  if (!p || blocks <= 0 || p->link_gbps <= 0)
    return 0;
  double bytes = blocks * p->block_tokens * p->bytes_per_token;
  return p->transfer_setup_s + bytes * 8 / (p->link_gbps * 1e9);
}

double mc_cond_decode_step(const mc_cond_profile *p, double batch, double tokens) {
  if (!p)
    return 0;
  return p->decode_base_s + p->decode_per_seq_s * batch + p->decode_per_token_s * tokens;
}

/* ------------------------------------------------------------ YAML reader */

typedef struct {
  const char *name;
  char *err;
  size_t errlen;
  yaml_document_t *doc;
} pctx;

MC_COND_FMT(3, 4)
static int perr(pctx *x, const yaml_node_t *n, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n)
    mc_cond_seterr(x->err, x->errlen, "%s:%lu: %s", x->name,
                   (unsigned long)n->start_mark.line + 1, msg);
  else
    mc_cond_seterr(x->err, x->errlen, "%s: %s", x->name, msg);
  return MC_EINVAL;
}

static int num(pctx *x, const yaml_node_t *n, const char *key, double *out) {
  if (!n || n->type != YAML_SCALAR_NODE)
    return perr(x, n, "%s: expected a number", key);
  const char *s = (const char *)n->data.scalar.value;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v))
    return perr(x, n, "%s: '%s' is not a number", key, s);
  *out = v;
  return 0;
}

static int nonneg(pctx *x, const yaml_node_t *n, const char *key, double *out) {
  int rc = num(x, n, key, out);
  if (rc == 0 && *out < 0)
    return perr(x, n, "%s: must not be negative", key);
  return rc;
}

static int parse_terms(pctx *x, yaml_node_t *n, mc_cond_profile *p) {
  if (n->type != YAML_SEQUENCE_NODE)
    return perr(x, n, "prefill_time: expected a list of [coef, len_pow, prefix_pow]");
  p->n_terms = 0;
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
       it++) {
    yaml_node_t *t = yaml_document_get_node(x->doc, *it);
    if (!t || t->type != YAML_SEQUENCE_NODE ||
        t->data.sequence.items.top - t->data.sequence.items.start != 3)
      return perr(x, t ? t : n, "prefill_time: each term is [coef, len_pow, prefix_pow]");
    if (p->n_terms == MC_COND_MAX_TERMS)
      return perr(x, t, "prefill_time: more than %d terms", MC_COND_MAX_TERMS);
    double v[3];
    for (int i = 0; i < 3; i++) {
      int rc = num(x, yaml_document_get_node(x->doc, t->data.sequence.items.start[i]),
                   "prefill_time", &v[i]);
      if (rc)
        return rc;
    }
    if (v[1] < 0 || v[2] < 0 || v[1] > 4 || v[2] > 4 || v[1] != floor(v[1]) ||
        v[2] != floor(v[2]))
      return perr(x, t, "prefill_time: powers must be whole numbers 0..4");
    p->prefill[p->n_terms++] = (mc_cond_term){v[0], (unsigned)v[1], (unsigned)v[2]};
  }
  if (!p->n_terms)
    return perr(x, n, "prefill_time: no terms");
  return 0;
}

static int parse_decode(pctx *x, yaml_node_t *n, mc_cond_profile *p) {
  if (n->type != YAML_MAPPING_NODE)
    return perr(x, n, "decode_step: expected a mapping (base_s, per_seq_s, per_token_s)");
  int seen = 0;
  for (yaml_node_pair_t *kv = n->data.mapping.pairs.start; kv < n->data.mapping.pairs.top;
       kv++) {
    yaml_node_t *k = yaml_document_get_node(x->doc, kv->key);
    yaml_node_t *v = yaml_document_get_node(x->doc, kv->value);
    if (!k || k->type != YAML_SCALAR_NODE)
      return perr(x, k ? k : n, "decode_step: keys must be scalars");
    const char *key = (const char *)k->data.scalar.value;
    double *dst = !strcmp(key, "base_s")      ? &p->decode_base_s
                  : !strcmp(key, "per_seq_s") ? &p->decode_per_seq_s
                  : !strcmp(key, "per_token_s") ? &p->decode_per_token_s
                                                : NULL;
    if (!dst)
      return perr(x, k, "decode_step: unknown key '%s'", key);
    int rc = nonneg(x, v, key, dst);
    if (rc)
      return rc;
    seen++;
  }
  if (seen != 3)
    return perr(x, n, "decode_step: needs base_s, per_seq_s and per_token_s");
  return 0;
}

static int parse_root(pctx *x, yaml_node_t *root, mc_cond_profile *p) {
  if (!root || root->type != YAML_MAPPING_NODE)
    return perr(x, root, "expected a mapping at the top");
  enum { F_BLOCK = 1, F_BPT = 2, F_PREFILL = 4, F_DECODE = 8, F_KV = 16, F_LINK = 32 };
  unsigned seen = 0;
  for (yaml_node_pair_t *kv = root->data.mapping.pairs.start;
       kv < root->data.mapping.pairs.top; kv++) {
    yaml_node_t *k = yaml_document_get_node(x->doc, kv->key);
    yaml_node_t *v = yaml_document_get_node(x->doc, kv->value);
    if (!k || k->type != YAML_SCALAR_NODE || !v)
      return perr(x, k ? k : root, "keys must be scalars");
    const char *key = (const char *)k->data.scalar.value;
    int rc = 0;
    double d;
    if (!strcmp(key, "name")) {
      if (v->type != YAML_SCALAR_NODE)
        return perr(x, v, "name: expected a string");
      snprintf(p->name, sizeof p->name, "%s", (const char *)v->data.scalar.value);
    } else if (!strcmp(key, "block_tokens")) {
      if ((rc = num(x, v, key, &d)) == 0 && (d < 1 || d > 1 << 20 || d != floor(d)))
        rc = perr(x, v, "block_tokens: must be a whole number 1..1048576");
      p->block_tokens = (uint32_t)d;
      seen |= F_BLOCK;
    } else if (!strcmp(key, "bytes_per_token")) {
      rc = nonneg(x, v, key, &p->bytes_per_token);
      seen |= F_BPT;
    } else if (!strcmp(key, "prefill_time")) {
      rc = parse_terms(x, v, p);
      seen |= F_PREFILL;
    } else if (!strcmp(key, "decode_step")) {
      rc = parse_decode(x, v, p);
      seen |= F_DECODE;
    } else if (!strcmp(key, "kv_capacity_tokens")) {
      if ((rc = nonneg(x, v, key, &p->kv_capacity_tokens)) == 0 && p->kv_capacity_tokens <= 0)
        rc = perr(x, v, "kv_capacity_tokens: must be positive");
      seen |= F_KV;
    } else if (!strcmp(key, "link_gbps")) {
      if ((rc = nonneg(x, v, key, &p->link_gbps)) == 0 && p->link_gbps <= 0)
        rc = perr(x, v, "link_gbps: must be positive");
      seen |= F_LINK;
    } else if (!strcmp(key, "transfer_setup_s")) {
      rc = nonneg(x, v, key, &p->transfer_setup_s);
    } else {
      return perr(x, k, "unknown key '%s'", key);
    }
    if (rc)
      return rc;
  }
  static const char *const need[] = {"block_tokens", "bytes_per_token", "prefill_time",
                                     "decode_step", "kv_capacity_tokens", "link_gbps"};
  for (unsigned i = 0; i < 6; i++)
    if (!(seen & (1u << i)))
      return perr(x, NULL, "missing key '%s'", need[i]);
  return 0;
}

int mc_cond_profile_parse(const char *text, size_t len, const char *name, mc_cond_profile *out,
                          char *err, size_t errlen) {
  if (!text || !out)
    return MC_EINVAL;
  pctx x = {name ? name : "profile", err, errlen, NULL};
  yaml_parser_t ps;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&ps))
    return MC_ENOMEM;
  yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
  if (!yaml_parser_load(&ps, &doc)) {
    mc_cond_seterr(err, errlen, "%s:%lu: %s", x.name, (unsigned long)ps.problem_mark.line + 1,
                   ps.problem ? ps.problem : "YAML error");
    yaml_parser_delete(&ps);
    return MC_EINVAL;
  }
  x.doc = &doc;
  mc_cond_profile p;
  memset(&p, 0, sizeof p);
  int rc = parse_root(&x, yaml_document_get_root_node(&doc), &p);
  yaml_document_delete(&doc);
  yaml_parser_delete(&ps);
  if (rc == 0)
    *out = p;
  return rc;
}

int mc_cond_profile_load(const char *path, mc_cond_profile *out, char *err, size_t errlen) {
  if (!path || !out)
    return MC_EINVAL;
  size_t n;
  char *text = mc_cond_read_file(path, &n);
  if (!text) {
    mc_cond_seterr(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    return errno == ENOMEM ? MC_ENOMEM : MC_ENOENT;
  }
  int rc = mc_cond_profile_parse(text, n, path, out, err, errlen);
  free(text);
  return rc;
}
