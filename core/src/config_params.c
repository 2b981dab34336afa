/* config_params.c - the value parsers (shared by the engine's keys, the
 * plugins' keys and the typed getters) and the checks of each plugin's
 * params table and configured keys (see config.c for the split). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_p.h"

/* A size within lo..hi. */
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
  mc_cfg_show(text ? text : "", s, sizeof s);
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
    mc_cfg_fmt_size((uint64_t)pi->min, a, sizeof a);
    mc_cfg_fmt_size((uint64_t)pi->max, b, sizeof b);
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
    mc_cfg_show(pi.name ? pi.name : "(null)", nm, sizeof nm);
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
    mc_cfg_show(cp->key, key, sizeof key);
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
