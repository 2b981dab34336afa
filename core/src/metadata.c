/* Metadata front end: picks a backend by the URL's scheme and forwards
 * calls to it, answering MC_ENOTSUP for optional operations a backend does
 * not implement. */
#include "metadata.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"

struct mc_metadata {
  const mc_metadata_ops *ops;
  void *ctx;
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
  } else if (strncmp(url, "etcd://", 7) == 0) {
#ifdef MC_HAVE_ETCD
    ops = &mc_metadata_etcd_ops;
#else
    return set_err(err, errlen, MC_ENOTSUP,
                   "metadata '%s': etcd metadata backend not built "
                   "(libgrpc-dev/protobuf-c missing at build time)",
                   url);
#endif
  } else if (strncmp(url, "http://", 7) == 0) {
#ifdef MC_HAVE_HTTP_METADATA
    ops = &mc_metadata_http_ops;
#else
    return set_err(err, errlen, MC_ENOTSUP,
                   "metadata '%s': http metadata backend not built "
                   "(libcurl/libmicrohttpd missing at build time)",
                   url);
#endif
  } else {
    char scheme[64];
    size_t n = scheme_len(url);
    snprintf(scheme, sizeof scheme, "%.*s", (int)(n ? n : strlen(url)), url);
    return set_err(err, errlen, MC_EINVAL,
                   "metadata '%s': unknown scheme '%s' (expected p2p, "
                   "etcd://host:port or http://host:port/path)",
                   url, scheme);
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

void mc_metadata_close(mc_metadata *md) {
  if (!md)
    return;
  md->ops->close(md->ctx);
  free(md);
}

/* Forwards an optional op, or answers MC_ENOTSUP when the backend lacks it. */
#define FORWARD(md, op, ...)                                                   \
  ((md) == NULL          ? MC_EINVAL                                           \
   : (md)->ops->op == NULL ? MC_ENOTSUP                                        \
                         : (md)->ops->op((md)->ctx, __VA_ARGS__))

int mc_metadata_local_name(mc_metadata *md, char *buf, size_t len) {
  return FORWARD(md, local_name, buf, len);
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
