/* Metadata front end: picks a backend by the URL's scheme and forwards
 * calls to it, answering MC_ENOTSUP for optional operations a backend does
 * not implement.  p2p is built in (core/metadata/p2p/); any other scheme X
 * is served by the loadable module mc-metadata-X.so (md_module.c: search
 * rules; backend.h: the module interface), driven by md_store.c, which
 * holds the publish/lease/refresh logic for every store backend. */
#include "metadata.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_module.h"
#include "md_store.h"
#include "mooncake/errors.h"

struct mc_metadata {
  const mc_metadata_ops *ops; /* built-in backend, or NULL */
  void *ctx;
  mc_md_module *mod; /* module backend, driven through store */
  mc_md_store *store;
};

__attribute__((format(printf, 4, 5))) static int
set_err(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* Length of the scheme in "scheme://...", or 0 if url has none. */
static size_t scheme_len(const char *url) {
  const char *sep = strstr(url, "://");
  return sep ? (size_t)(sep - url) : 0;
}

int mc_metadata_open(const mc_metadata_args *args, mc_metadata **out, char *err,
                     size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  if (!args || !out)
    return MC_EINVAL;
  *out = NULL;
  /* No URL means the embedded default. */
  const char *url = args->url && *args->url ? args->url : "p2p";
  const mc_metadata_ops *ops = NULL;
  if (strcmp(url, "p2p") == 0 || strcmp(url, "p2p://") == 0) {
    ops = &mc_metadata_p2p_ops;
  } else if (scheme_len(url) > 0 && scheme_len(url) <= 32) {
    char scheme[40];
    snprintf(scheme, sizeof scheme, "%.*s", (int)scheme_len(url), url);
    for (char *c = scheme; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '+'))
        return set_err(err, errlen, MC_EINVAL, "metadata '%s': bad scheme '%s'", url, scheme);
    mc_md_module *mod = NULL;
    int rc = mc_md_module_load(args->log, scheme, url, &mod, err, errlen);
    if (rc == MC_ENOENT && strcmp(scheme, "etcd") != 0 && strcmp(scheme, "http") != 0)
      return set_err(err, errlen, MC_EINVAL,
                     "metadata '%s': unknown scheme '%s' (expected p2p, "
                     "etcd://host:port or http://host:port/path, or a module "
                     "mc-metadata-%s.so)",
                     url, scheme, scheme);
    if (rc == MC_ENOENT)
      return MC_ENOTSUP; /* err says which module, where it was looked for */
    if (rc)
      return rc;
    mc_metadata *md = calloc(1, sizeof *md);
    if (!md) {
      mc_md_module_unload(mod);
      return MC_ENOMEM;
    }
    md->mod = mod;
    char why[512] = "";
    rc = mc_md_store_open(&mod->ops, args, &md->store, why, sizeof why);
    if (rc) {
      mc_md_module_unload(mod);
      free(md);
      return set_err(err, errlen, rc, "metadata '%s': %s backend failed to open: %s", url,
                     scheme, why[0] ? why : mc_strerror(rc));
    }
    *out = md;
    return 0;
  } else {
    return set_err(err, errlen, MC_EINVAL,
                   "metadata '%s': unknown scheme '%s' (expected p2p, "
                   "etcd://host:port or http://host:port/path)",
                   url, url);
  }
  mc_metadata *md = calloc(1, sizeof *md);
  if (!md)
    return MC_ENOMEM;
  md->ops = ops;
  int rc = ops->open(args, &md->ctx);
  if (rc) {
    free(md);
    return set_err(err, errlen, rc, "metadata '%s': %s backend failed to open: %s",
                   url, ops->scheme, mc_strerror(rc));
  }
  *out = md;
  return 0;
}

void mc_metadata_quiesce(mc_metadata *md) {
  if (md && md->store)
    mc_md_store_quiesce(md->store);
}

void mc_metadata_close(mc_metadata *md) {
  if (!md)
    return;
  if (md->store)
    mc_md_store_close(md->store);
  else
    md->ops->close(md->ctx);
  mc_md_module_unload(md->mod);
  free(md);
}

/* Forwards an optional op, or answers MC_ENOTSUP when the backend lacks it. */
#define FORWARD(md, op, ...)                                                   \
  ((md) == NULL            ? MC_EINVAL                                         \
   : (md)->store           ? mc_md_store_##op((md)->store, __VA_ARGS__)        \
   : (md)->ops->op == NULL ? MC_ENOTSUP                                        \
                           : (md)->ops->op((md)->ctx, __VA_ARGS__))

int mc_metadata_local_name(mc_metadata *md, char *buf, size_t len) {
  /* Store backends have no opinion on the local segment's name. */
  if (md && md->store)
    return MC_ENOTSUP;
  return md == NULL ? MC_EINVAL
         : md->ops->local_name == NULL ? MC_ENOTSUP
                                       : md->ops->local_name(md->ctx, buf, len);
}

int mc_metadata_publish(mc_metadata *md, const char *segment, const char *json,
                        size_t len) {
  return FORWARD(md, publish, segment, json, len);
}

int mc_metadata_unpublish(mc_metadata *md, const char *segment) {
  return FORWARD(md, unpublish, segment);
}

int mc_metadata_fetch(mc_metadata *md, const char *segment, char **json,
                      size_t *len) {
  return FORWARD(md, fetch, segment, json, len);
}

int mc_metadata_watch(mc_metadata *md, const char *segment) {
  return FORWARD(md, watch, segment);
}

int mc_metadata_kv_put(mc_metadata *md, const char *key, const void *val,
                       size_t len) {
  return FORWARD(md, kv_put, key, val, len);
}

int mc_metadata_kv_get(mc_metadata *md, const char *key, void **val,
                       size_t *len) {
  return FORWARD(md, kv_get, key, val, len);
}

int mc_metadata_kv_delete(mc_metadata *md, const char *key) {
  return FORWARD(md, kv_delete, key);
}

int mc_metadata_kv_backend(mc_metadata *md, const struct mc_md_backend **be, void **ctx,
                           const char **kv_prefix, int *timeout_ms, const mc_logger **log) {
  if (!md)
    return MC_EINVAL;
  if (!md->store)
    return MC_ENOTSUP;
  mc_md_store_kv_backend(md->store, be, ctx, kv_prefix, timeout_ms, log);
  return 0;
}

/* ---- public: mc-info's view of the modules ---- */

int mc_metadata_modules(mc_plugin_info *out, uint32_t *n, char *search_path,
                        size_t len) {
  return mc_md_module_report(out, n, search_path, len);
}
