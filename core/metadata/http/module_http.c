/* The HTTP metadata backend module (mc-metadata-http.so): the primitive
 * operations of backend.h as requests to mooncake-metadata-server
 * (protocol in http_proto.h, client in http_client.c).  Publishing, TTL
 * refresh and republishing are the core's (core/src/md_store.c).
 *
 * URL: http://host:port/path[?ttl=SECONDS]   (ttl default 10, 0 = never
 * expire).  Descriptors are PUT with the TTL and refreshed with a cheap POST
 * (touch); a key the server lost answers 404 and the core PUTs it again.
 * There is no watch (HTTP has no push): the engine refetches on demand.
 * Each request uses its own curl easy handle, so calls from several threads
 * do not contend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "backend.h"
#include "http/http_proto.h"
#include "log.h"
#include "mooncake/errors.h"
#include "token.h"

#define MAX_TTL_S 3600

typedef struct http_md {
  char base[512];
  char auth[MC_TOKEN_MAX + 32]; /* "Authorization: ..." or "" (token.h) */
} http_md;

static int key_ok(const char *key, char *err, size_t errlen) {
  if (key && *key && strlen(key) <= MC_HTTP_KEY_MAX)
    return 0;
  mc_seterr(err, errlen, "key of %zu bytes (1..%d allowed)", key ? strlen(key) : 0,
            MC_HTTP_KEY_MAX);
  return MC_EINVAL;
}

static int http_open(const mc_md_host *host, const mc_md_open_args *args, void **ctx,
                     mc_md_conf *conf, char *err, size_t errlen) {
  mc_md_module_set_host(host);
  const char *url = args->url;
  const char *q = strchr(url, '?');
  size_t n = q ? (size_t)(q - url) : strlen(url);
  const char *hostpart = url + strlen("http://");
  http_md *m = calloc(1, sizeof(*m));
  if (!m)
    return MC_ENOMEM;
  int rc = 0;
  if (n >= sizeof(m->base) || n <= strlen("http://") || *hostpart == '/' ||
      !memchr(hostpart, '/', n - strlen("http://"))) {
    mc_seterr(err, errlen, "metadata '%s': want http://host:port/path", url);
    rc = MC_EINVAL;
  } else if (args->token && mc_http_auth_header(args->token, m->auth, sizeof m->auth)) {
    mc_seterr(err, errlen, "cluster token longer than %d bytes", MC_TOKEN_MAX);
    rc = MC_EINVAL;
  } else if (q) {
    char *end = NULL;
    long v = -1;
    if (strncmp(q, "?ttl=", 5) == 0)
      v = strtol(q + 5, &end, 10);
    if (v < 0 || v > MAX_TTL_S || !end || *end) {
      mc_seterr(err, errlen, "metadata '%s': the only parameter is ttl=0..%d (seconds)", url,
                MAX_TTL_S);
      rc = MC_EINVAL;
    } else {
      conf->ttl_s = (int)v;
    }
  }
  if (rc) {
    free(m);
    return rc;
  }
  memcpy(m->base, url, n);
  m->base[n] = 0;
  snprintf(conf->prefix, sizeof conf->prefix, "%s", "mooncake/");
  curl_global_init(CURL_GLOBAL_DEFAULT); /* refcounted; thread-safe in curl >= 7.84 */
  *ctx = m;
  return 0;
}

static void http_close(void *ctx) {
  if (!ctx)
    return;
  free(ctx);
  curl_global_cleanup();
}

static int http_put(void *ctx, const char *key, const void *val, size_t len, int64_t lease,
                    int ttl_s, int timeout_ms, char *err, size_t errlen) {
  http_md *m = ctx;
  (void)lease;
  int rc = key_ok(key, err, errlen);
  return rc ? rc
            : mc_http_request(m->base, m->auth, "PUT", "key", key, ttl_s > 0 ? ttl_s : -1, val,
                              len, timeout_ms, NULL, NULL, err, errlen);
}

static int http_get(void *ctx, const char *key, void **val, size_t *len, int timeout_ms,
                    char *err, size_t errlen) {
  http_md *m = ctx;
  char *body = NULL;
  int rc = key_ok(key, err, errlen);
  if (rc == 0)
    rc = mc_http_request(m->base, m->auth, "GET", "key", key, -1, NULL, 0, timeout_ms, &body,
                         len, err, errlen);
  if (rc == 0)
    *val = body;
  return rc;
}

static int http_del(void *ctx, const char *key, int timeout_ms, char *err, size_t errlen) {
  http_md *m = ctx;
  int rc = key_ok(key, err, errlen);
  return rc ? rc
            : mc_http_request(m->base, m->auth, "DELETE", "key", key, -1, NULL, 0, timeout_ms,
                              NULL, NULL, err, errlen);
}

static int http_touch(void *ctx, const char *key, int ttl_s, int timeout_ms, char *err,
                      size_t errlen) {
  http_md *m = ctx;
  int rc = key_ok(key, err, errlen);
  return rc ? rc
            : mc_http_request(m->base, m->auth, "POST", "key", key, ttl_s, NULL, 0, timeout_ms,
                              NULL, NULL, err, errlen);
}

static int http_get_rev(void *ctx, const char *key, void **val, size_t *len, int64_t *rev,
                        int timeout_ms, char *err, size_t errlen) {
  http_md *m = ctx;
  char *body = NULL;
  int rc = key_ok(key, err, errlen);
  if (rc == 0)
    rc = mc_http_request_ex(m->base, m->auth, "GET", "key", key, -1, NULL, NULL, 0, timeout_ms,
                            &body, len, rev, err, errlen);
  if (rc == 0)
    *val = body;
  return rc;
}

typedef struct list_ctx {
  http_md *m;
  mc_md_kv_fn fn;
  void *arg;
  int timeout_ms;
  int rc;
  char *err;
  size_t errlen;
} list_ctx;

static int on_listed(void *arg, const char *key, size_t klen, int64_t rev) {
  list_ctx *l = arg;
  void *val = NULL;
  size_t len = 0;
  (void)rev; /* the GET answers the current one */
  int rc = http_get_rev(l->m, key, &val, &len, &rev, l->timeout_ms, l->err, l->errlen);
  if (rc == MC_ENOENT) /* deleted or expired since the listing */
    return 0;
  if (rc) {
    l->rc = rc;
    return 1;
  }
  int stop = l->fn(l->arg, key, klen, val, len, rev);
  free(val);
  return stop;
}

static int http_list(void *ctx, const char *prefix, mc_md_kv_fn fn, void *arg, int timeout_ms,
                     char *err, size_t errlen) {
  http_md *m = ctx;
  char *body = NULL;
  size_t len = 0;
  int rc = mc_http_request(m->base, m->auth, "GET", "prefix", prefix, -1, NULL, 0, timeout_ms,
                           &body, &len, err, errlen);
  if (rc)
    return rc;
  list_ctx l = {m, fn, arg, timeout_ms, 0, err, errlen};
  rc = mc_http_parse_keys_rev(body, len, on_listed, &l, err, errlen);
  free(body);
  return rc ? rc : l.rc;
}

static int http_put_if(void *ctx, const char *key, int64_t expect_rev, const void *val,
                       size_t len, int64_t lease, int ttl_s, int64_t *new_rev, int timeout_ms,
                       char *err, size_t errlen) {
  http_md *m = ctx;
  (void)lease;
  char extra[40] = "";
  if (expect_rev >= 0)
    snprintf(extra, sizeof extra, "&rev=%lld", (long long)expect_rev);
  int rc = key_ok(key, err, errlen);
  return rc ? rc
            : mc_http_request_ex(m->base, m->auth, "PUT", "key", key, ttl_s > 0 ? ttl_s : -1,
                                 extra, val, len, timeout_ms, NULL, NULL, new_rev, err, errlen);
}

static const char *const schemes[] = {"http", NULL};

static const mc_md_backend http_backend = {
    .abi_major = MC_MD_ABI_MAJOR,
    .abi_minor = MC_MD_ABI_MINOR,
    .struct_size = sizeof(mc_md_backend),
    .name = "http",
    .schemes = schemes,
    .description = "mooncake-metadata-server over HTTP, per-key TTL (http://host:port/path)",
    .open = http_open,
    .close = http_close,
    .put = http_put,
    .get = http_get,
    .del = http_del,
    .touch = http_touch,
    .get_rev = http_get_rev,
    .list = http_list,
    .put_if = http_put_if,
};

__attribute__((visibility("default"))) const mc_md_backend *mc_metadata_backend_v1(void);
const mc_md_backend *mc_metadata_backend_v1(void) { return &http_backend; }
