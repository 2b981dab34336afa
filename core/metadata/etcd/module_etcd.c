/* The etcd metadata backend module (mc-metadata-etcd.so): the primitive
 * operations of backend.h over the etcd v3 client (etcd_client.c, gRPC
 * through libmooncake-rpc).  Publishing, leases, keep-alive, republishing
 * and watch dispatch are the core's (core/src/md_store.c).
 *
 * URL: etcd://host:port[,host:port...][?ttl=SECONDS&prefix=/PATH]
 *   ttl     lifetime of the engine's lease (default 10 s, 1..3600): a
 *           crashed engine's segment disappears within it
 *   prefix  key prefix (default /mooncake): descriptors under
 *           <prefix>/segments/<name>, generic keys under <prefix>/kv/<key> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "etcd/etcd_client.h"
#include "log.h"
#include "mooncake/errors.h"

#define MAX_TTL_S 3600

typedef struct etcd_md {
  mc_etcd *e;
  const mc_logger *log;
} etcd_md;

static int parse_url(const char *url, mc_md_conf *conf, char **endpoints,
                     char *err, size_t errlen) {
  const char *p = url + strlen("etcd://");
  const char *q = strchr(p, '?');
  size_t n = q ? (size_t)(q - p) : strlen(p);
  while (n > 0 && p[n - 1] == '/') /* tolerate "etcd://h:p/" */
    n--;
  if (n == 0) {
    mc_seterr(err, errlen, "metadata '%s': no endpoint (want etcd://host:port[,host:port])", url);
    return MC_EINVAL;
  }
  char prefix[200] = "/mooncake";
  while (q && *q) {
    q++;
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len > 4 && strncmp(q, "ttl=", 4) == 0) {
      char *end;
      long v = strtol(q + 4, &end, 10);
      if (end != q + len || v < 1 || v > MAX_TTL_S) {
        mc_seterr(err, errlen, "metadata '%s': ttl must be 1..%d seconds", url, MAX_TTL_S);
        return MC_EINVAL;
      }
      conf->ttl_s = (int)v;
    } else if (len > 7 && strncmp(q, "prefix=", 7) == 0 && q[7] == '/' &&
               len - 7 < sizeof(prefix)) {
      snprintf(prefix, sizeof(prefix), "%.*s", (int)(len - 7), q + 7);
      size_t pl = strlen(prefix);
      while (pl > 1 && prefix[pl - 1] == '/')
        prefix[--pl] = 0;
    } else {
      mc_seterr(err, errlen, "metadata '%s': unknown or bad parameter '%.*s' "
                "(known: ttl=SECONDS, prefix=/PATH)", url, (int)len, q);
      return MC_EINVAL;
    }
    q = amp;
  }
  snprintf(conf->prefix, sizeof conf->prefix, "%s/", strcmp(prefix, "/") ? prefix : "");
  if (!(*endpoints = strndup(p, n)))
    return MC_ENOMEM;
  return 0;
}

static int etcd_open(const mc_md_host *host, const mc_md_open_args *args, void **ctx,
                     mc_md_conf *conf, char *err, size_t errlen) {
  mc_md_module_set_host(host);
  etcd_md *m = calloc(1, sizeof(*m));
  if (!m)
    return MC_ENOMEM;
  m->log = args->log;
  char *endpoints = NULL;
  int rc = parse_url(args->url, conf, &endpoints, err, errlen);
  if (rc == 0) {
    rc = mc_etcd_create(endpoints, m->log, &m->e, err, errlen);
    free(endpoints);
  }
  if (rc) {
    free(m);
    return rc;
  }
  *ctx = m;
  return 0;
}

static void etcd_close(void *ctx) {
  etcd_md *m = ctx;
  if (!m)
    return;
  mc_etcd_destroy(m->e);
  free(m);
}

static int etcd_put(void *ctx, const char *key, const void *val, size_t len, int64_t lease,
                    int ttl_s, int timeout_ms, char *err, size_t errlen) {
  etcd_md *m = ctx;
  (void)ttl_s;
  return mc_etcd_put(m->e, key, val, len, lease, timeout_ms, err, errlen);
}

static int etcd_get(void *ctx, const char *key, void **val, size_t *len, int timeout_ms,
                    char *err, size_t errlen) {
  etcd_md *m = ctx;
  return mc_etcd_get(m->e, key, val, len, NULL, timeout_ms, err, errlen);
}

static int etcd_del(void *ctx, const char *key, int timeout_ms, char *err, size_t errlen) {
  etcd_md *m = ctx;
  int64_t n = 0;
  int rc = mc_etcd_delete(m->e, key, 0, &n, timeout_ms, err, errlen);
  if (rc == 0 && n == 0) {
    mc_seterr(err, errlen, "etcd: no key '%s'", key);
    rc = MC_ENOENT;
  }
  return rc;
}

static int etcd_lease_grant(void *ctx, int ttl_s, int64_t *lease, int timeout_ms, char *err,
                            size_t errlen) {
  etcd_md *m = ctx;
  return mc_etcd_lease_grant(m->e, ttl_s, lease, timeout_ms, err, errlen);
}

static int etcd_lease_keepalive(void *ctx, int64_t lease, int timeout_ms, char *err,
                                size_t errlen) {
  etcd_md *m = ctx;
  int64_t ttl = 0;
  return mc_etcd_lease_keepalive(m->e, lease, &ttl, timeout_ms, err, errlen);
}

static int etcd_lease_revoke(void *ctx, int64_t lease, int timeout_ms, char *err,
                             size_t errlen) {
  etcd_md *m = ctx;
  return mc_etcd_lease_revoke(m->e, lease, timeout_ms, err, errlen);
}

typedef struct ev_adapt {
  mc_md_event_fn fn;
  void *arg;
} ev_adapt;

static void on_etcd_event(void *arg, int type, const char *key, size_t klen, const void *val,
                          size_t vlen, int64_t rev) {
  ev_adapt *a = arg;
  (void)val;
  (void)vlen;
  a->fn(a->arg, type == MC_ETCD_PUT ? MC_MD_EVENT_PUT : MC_MD_EVENT_DELETE, key, klen, rev);
}

static int etcd_watch_open(void *ctx, const char *prefix, int64_t start_rev, void **w,
                           int timeout_ms, char *err, size_t errlen) {
  etcd_md *m = ctx;
  mc_etcd_watch *ew = NULL;
  int rc = mc_etcd_watch_open(m->e, prefix, start_rev, &ew, timeout_ms, err, errlen);
  if (rc == 0)
    *w = ew;
  return rc;
}

static int etcd_watch_next(void *w, mc_md_event_fn fn, void *arg, int64_t *rev, int wait_ms,
                           char *err, size_t errlen) {
  ev_adapt a = {fn, arg};
  return mc_etcd_watch_next(w, on_etcd_event, &a, rev, wait_ms, err, errlen);
}

static void etcd_watch_close(void *w) { mc_etcd_watch_close(w); }

static int etcd_get_rev(void *ctx, const char *key, void **val, size_t *len, int64_t *rev,
                        int timeout_ms, char *err, size_t errlen) {
  etcd_md *m = ctx;
  return mc_etcd_get(m->e, key, val, len, rev, timeout_ms, err, errlen);
}

static int etcd_list(void *ctx, const char *prefix, mc_md_kv_fn fn, void *arg, int timeout_ms,
                     char *err, size_t errlen) {
  etcd_md *m = ctx;
  return mc_etcd_list_rev(m->e, prefix, fn, arg, timeout_ms, err, errlen);
}

static int etcd_put_if(void *ctx, const char *key, int64_t expect_rev, const void *val,
                       size_t len, int64_t lease, int ttl_s, int64_t *new_rev, int timeout_ms,
                       char *err, size_t errlen) {
  etcd_md *m = ctx;
  (void)ttl_s;
  return mc_etcd_put_if(m->e, key, expect_rev, val, len, lease, new_rev, timeout_ms, err,
                        errlen);
}

static const char *const schemes[] = {"etcd", NULL};

static const mc_md_backend etcd_backend = {
    .abi_major = MC_MD_ABI_MAJOR,
    .abi_minor = MC_MD_ABI_MINOR,
    .struct_size = sizeof(mc_md_backend),
    .name = "etcd",
    .schemes = schemes,
    .description = "etcd v3 over gRPC, leases and watch (etcd://host:port[,host:port])",
    .open = etcd_open,
    .close = etcd_close,
    .put = etcd_put,
    .get = etcd_get,
    .del = etcd_del,
    .lease_grant = etcd_lease_grant,
    .lease_keepalive = etcd_lease_keepalive,
    .lease_revoke = etcd_lease_revoke,
    .watch_open = etcd_watch_open,
    .watch_next = etcd_watch_next,
    .watch_close = etcd_watch_close,
    .get_rev = etcd_get_rev,
    .list = etcd_list,
    .put_if = etcd_put_if,
};

__attribute__((visibility("default"))) const mc_md_backend *mc_metadata_backend_v1(void);
const mc_md_backend *mc_metadata_backend_v1(void) { return &etcd_backend; }
