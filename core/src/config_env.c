/* config_env.c - MC_* variables and mc_engine_opts (see config.c for the
 * split). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_p.h"

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
  if (!mc_cfg_printable_word(o->key)) {
    snprintf(err, errlen, "%.*s: expected an option name", vlen, var);
    return MC_EINVAL;
  }
  if (!*o->value) {
    snprintf(err, errlen, "%.*s: expected a value", vlen, var);
    return MC_EINVAL;
  }
  if (!is_auto && !mc_cfg_strv_contains(names, nnames, o->name)) {
    snprintf(err, errlen,
             "%.*s: transport '%s' is not configured (add it to transports "
             "or MC_TRANSPORTS)",
             vlen, var, o->name);
    return MC_EINVAL;
  }
  if (strcmp(o->key, CFG_OPTIONAL) == 0 &&
      mc_config_parse_bool(o->value, &o->optional) != 0) {
    char s[80];
    mc_cfg_show(o->value, s, sizeof s);
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
      if (set[i] && (mc_cfg_keys[i].type == KT_TRANSPORTS) == (pass == 0))
        rc = mc_cfg_commit(cfg, &mc_cfg_keys[i], &vals[i], src, 0);
  return rc;
}

int mc_config_apply_env(mc_config *cfg, char *err, size_t errlen) {
  return mc_config_apply_env_for(cfg, NULL, err, errlen);
}

int mc_config_apply_env_for(mc_config *cfg, const char *opts_transports, char *err,
                            size_t errlen) {
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
    const char *v = mc_cfg_keys[i].env ? env_val(mc_cfg_keys[i].env) : NULL;
    char why[256];
    if (!v)
      continue;
    rc = mc_cfg_parse_text(&mc_cfg_keys[i], v, &vals[i], why, sizeof why);
    if (rc == MC_EINVAL)
      snprintf(err, errlen, "%s: %s", mc_cfg_keys[i].env, why);
    set[i] = rc == 0;
  }

  /* The transports MC_TRANSPORT_* may name: the new list, or (without one,
   * or with auto) the configured ones. */
  const cfg_key *tk = mc_cfg_key_of_type(KT_TRANSPORTS);
  const kval *tv = &vals[tk - mc_cfg_keys];
  int tset = set[tk - mc_cfg_keys];
  /* mc_engine_opts.transports, applied after the variables, overrides
   * them: its list is the one MC_TRANSPORT_<NAME>_* must name.  A bad list
   * is left for mc_config_apply_opts to report under its own name. */
  kval ov;
  memset(&ov, 0, sizeof ov);
  if (rc == 0 && opts_transports && *opts_transports) {
    char why[256];
    if (mc_cfg_parse_text(tk, opts_transports, &ov, why, sizeof why) == 0) {
      tv = &ov;
      tset = 1;
    }
  }
  int has_list = tset && !tv->is_auto;
  int is_auto = tset ? tv->is_auto : cfg->transports_auto;
  char **names = NULL;
  size_t nnames = 0;
  for (size_t i = 0; rc == 0 && i < (has_list ? tv->n : cfg->ntransports); i++)
    rc = mc_cfg_strv_push(&names, &nnames,
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
    rc = mc_cfg_transport_set(t, opts[i].key, opts[i].value, 0, opts[i].var);
    opts[i].value = NULL; /* mc_cfg_transport_set took them, or freed them */
    opts[i].var = NULL;
  }
  for (size_t i = 0; i < N_KEYS; i++)
    mc_cfg_kval_free(&vals[i]);
  mc_cfg_kval_free(&ov);
  mc_cfg_free_strv(names, nnames);
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
    if (!mc_cfg_keys[i].opt)
      continue;
    const char *v = *(const char *const *)((const char *)o + mc_cfg_keys[i].opt_off);
    char why[256];
    if (!v || !*v) /* NULL or "": unset, as an empty variable */
      continue;
    rc = mc_cfg_parse_text(&mc_cfg_keys[i], v, &vals[i], why, sizeof why);
    if (rc == MC_EINVAL)
      snprintf(err, errlen, "mc_engine_opts.%s: %s", mc_cfg_keys[i].opt, why);
    set[i] = rc == 0;
  }
  if (rc == 0)
    rc = commit_all(cfg, vals, set, MC_SRC_OPTS);
  for (size_t i = 0; i < N_KEYS; i++)
    mc_cfg_kval_free(&vals[i]);
  if (rc == MC_ENOMEM)
    snprintf(err, errlen, "mc_engine_opts: out of memory");
  return rc;
}
