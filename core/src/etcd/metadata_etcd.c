/* The etcd metadata backend (mc_metadata_etcd_ops).
 *
 * URL: etcd://host:port[,host:port...][?ttl=SECONDS&prefix=/PATH]
 *
 * Key layout (prefix defaults to "/mooncake"):
 *   <prefix>/segments/<segment name>  segment descriptor JSON, attached to
 *                                     this engine's lease
 *   <prefix>/kv/<key>                 generic keys (kv_put/get/delete), no
 *                                     lease
 *
 * The engine's lease (TTL default 10 s) is granted on the first publish and
 * renewed every TTL/3 by a background thread, so a crashed engine's segment
 * disappears from etcd within TTL.  The same thread keeps a Watch on
 * <prefix>/segments/ once a segment is watched, and calls on_change for
 * watched names on every PUT/DELETE (and for all of them after a watch
 * reconnect, since events may have been missed).  If etcd is unreachable
 * for longer than the TTL and the lease is gone when it returns, the thread
 * grants a new lease and republishes the last descriptors it published.
 * Fetched descriptors are validated (mc_desc_decode); a malformed value is
 * MC_EPROTO with a log line naming the etcd key. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descriptor.h"
#include "etcd/etcd_client.h"
#include "metadata.h"
#include "mooncake/errors.h"
#include "net.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_TTL_S 10
#define MAX_TTL_S 3600
#define RETRY_MS 500  /* pause between background retries when etcd is down */
#define WATCH_POLL_MS 100

typedef struct pub {
  struct pub *next;
  char *segment;
  char *json;
  size_t len;
  int dirty;   /* not yet written with the current lease */
  int written; /* etcd has (or had) a key for it: unpublish must delete */
} pub;

typedef struct watched {
  struct watched *next;
  char *name;
} watched;

typedef struct etcd_md {
  mc_etcd *e;
  const mc_logger *log;
  int timeout_ms;
  int ttl_s;
  char prefix[128];
  char seg_prefix[160];
  void (*on_change)(void *, const char *);
  void *on_change_arg;

  pthread_mutex_t mu; /* guards everything below; held across lease ops */
  int64_t lease;      /* 0: none granted (or lost) */
  int dirty;          /* published state not (fully) in etcd yet */
  int degraded;       /* last background round failed (log once) */
  pub *pubs;
  watched *watches;
  int want_watch;
  int stop;
  int thread_running;
  pthread_t thread;
} etcd_md;

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int parse_url(etcd_md *m, const char *url, char **endpoints) {
  const char *p = url + strlen("etcd://");
  const char *q = strchr(p, '?');
  size_t n = q ? (size_t)(q - p) : strlen(p);
  while (n > 0 && p[n - 1] == '/') /* tolerate "etcd://h:p/" */
    n--;
  if (n == 0) {
    MC_ERROR(m->log, "etcd", "metadata '%s': no endpoint (want etcd://host:port[,host:port])", url);
    return MC_EINVAL;
  }
  if (!(*endpoints = strndup(p, n)))
    return MC_ENOMEM;
  while (q && *q) {
    q++;
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len > 4 && strncmp(q, "ttl=", 4) == 0) {
      char *end;
      long v = strtol(q + 4, &end, 10);
      if (end != q + len || v < 1 || v > MAX_TTL_S) {
        MC_ERROR(m->log, "etcd", "metadata '%s': ttl must be 1..%d seconds", url, MAX_TTL_S);
        goto bad;
      }
      m->ttl_s = (int)v;
    } else if (len > 7 && strncmp(q, "prefix=", 7) == 0 && q[7] == '/' &&
               len - 7 < sizeof(m->prefix)) {
      snprintf(m->prefix, sizeof(m->prefix), "%.*s", (int)(len - 7), q + 7);
      size_t pl = strlen(m->prefix);
      while (pl > 1 && m->prefix[pl - 1] == '/')
        m->prefix[--pl] = 0;
    } else {
      MC_ERROR(m->log, "etcd", "metadata '%s': unknown or bad parameter '%.*s' "
               "(known: ttl=SECONDS, prefix=/PATH)", url, (int)len, q);
      goto bad;
    }
    q = amp;
  }
  return 0;
bad:
  free(*endpoints);
  *endpoints = NULL;
  return MC_EINVAL;
}

static int seg_key(etcd_md *m, const char *segment, char *key, size_t len) {
  if (!segment || !*segment || strlen(segment) >= MC_NAME_MAX)
    return MC_EINVAL;
  int n = snprintf(key, len, "%s%s", m->seg_prefix, segment);
  return n < 0 || (size_t)n >= len ? MC_EINVAL : 0;
}

static int kv_key(etcd_md *m, const char *k, char *key, size_t len) {
  if (!k || !*k)
    return MC_EINVAL;
  int n = snprintf(key, len, "%s/kv/%s", m->prefix, k);
  return n < 0 || (size_t)n >= len ? MC_EINVAL : 0;
}

/* Grants a lease if none is held and writes every dirty descriptor with
 * it (all of them after a new lease).  Called with mu held. */
static int sync_locked(etcd_md *m, int timeout_ms, char *err, size_t errlen) {
  uint64_t deadline = mc_now_ms() + (uint64_t)timeout_ms;
  for (int round = 0; round < 2; round++) {
    if (m->lease == 0) {
      int rc = mc_etcd_lease_grant(m->e, m->ttl_s, &m->lease, timeout_ms, err, errlen);
      if (rc)
        return rc;
      for (pub *p = m->pubs; p; p = p->next)
        p->dirty = 1;
      MC_DEBUG(m->log, "etcd", "granted lease %llx (ttl %d s)", (unsigned long long)m->lease, m->ttl_s);
    }
    int rc = 0;
    for (pub *p = m->pubs; p && rc == 0; p = p->next) {
      char key[512];
      uint64_t now = mc_now_ms();
      int left = now < deadline ? (int)(deadline - now) : 1;
      if (!p->dirty || seg_key(m, p->segment, key, sizeof(key)) != 0)
        continue;
      rc = mc_etcd_put(m->e, key, p->json, p->len, m->lease, left, err, errlen);
      if (rc == 0) {
        p->dirty = 0;
        p->written = 1;
      }
    }
    if (rc == MC_ENOENT) { /* "requested lease not found": it expired */
      MC_WARN(m->log, "etcd", "lease %llx expired; granting a new one and republishing",
              (unsigned long long)m->lease);
      m->lease = 0;
      continue;
    }
    if (rc == 0)
      m->dirty = 0;
    return rc;
  }
  return MC_EIO;
}

/* ---- background thread: keepalive, re-grant, watch ---- */

static void on_event(void *arg, int type, const char *key, size_t klen,
                     const void *val, size_t vlen, int64_t rev) {
  etcd_md *m = arg;
  size_t pl = strlen(m->seg_prefix);
  if (klen <= pl || klen - pl >= MC_NAME_MAX || memcmp(key, m->seg_prefix, pl) != 0)
    return;
  char name[MC_NAME_MAX];
  memcpy(name, key + pl, klen - pl);
  name[klen - pl] = 0;
  int hit = 0;
  pthread_mutex_lock(&m->mu);
  for (watched *w = m->watches; w; w = w->next)
    if (strcmp(w->name, name) == 0)
      hit = 1;
  pthread_mutex_unlock(&m->mu);
  MC_DEBUG(m->log, "etcd", "watch: %s %s (rev %lld)%s",
           type == MC_ETCD_PUT ? "PUT" : "DELETE", name, (long long)rev,
           hit ? "" : " (not watched)");
  (void)val;
  (void)vlen;
  if (hit && m->on_change)
    m->on_change(m->on_change_arg, name);
}

static void notify_all_watched(etcd_md *m) {
  if (!m->on_change)
    return;
  char **names = NULL;
  size_t n = 0;
  pthread_mutex_lock(&m->mu);
  for (watched *w = m->watches; w; w = w->next)
    n++;
  names = n ? calloc(n, sizeof(*names)) : NULL;
  size_t i = 0;
  for (watched *w = m->watches; w && names; w = w->next)
    names[i++] = strdup(w->name);
  pthread_mutex_unlock(&m->mu);
  for (i = 0; names && i < n; i++) {
    if (names[i])
      m->on_change(m->on_change_arg, names[i]);
    free(names[i]);
  }
  free(names);
}

static void *bg_main(void *arg) {
  etcd_md *m = arg;
  mc_etcd_watch *w = NULL;
  int watch_opened_before = 0;
  int64_t watch_rev = 0;
  uint64_t next_ka = mc_now_ms() + (uint64_t)m->ttl_s * 1000 / 3;
  uint64_t next_watch_try = 0;
  /* A background round never waits longer than this, so close() and
   * lease renewal stay timely while etcd is down. */
  int bg_timeout = m->ttl_s * 1000 / 3;
  if (bg_timeout > m->timeout_ms)
    bg_timeout = m->timeout_ms;
  if (bg_timeout < 200)
    bg_timeout = 200;
  char err[512];
  for (;;) {
    pthread_mutex_lock(&m->mu);
    if (m->stop) {
      pthread_mutex_unlock(&m->mu);
      break;
    }
    uint64_t now = mc_now_ms();
    if (now >= next_ka && (m->lease || m->dirty)) {
      int rc = 0;
      if (m->lease && !m->dirty) {
        int64_t ttl = 0;
        rc = mc_etcd_lease_keepalive(m->e, m->lease, &ttl, bg_timeout, err, sizeof(err));
        if (rc == MC_ENOENT) {
          MC_WARN(m->log, "etcd", "%s; granting a new lease and republishing", err);
          m->lease = 0;
          m->dirty = 1;
        }
      }
      if (m->dirty && rc != MC_EPEER && rc != MC_ETIMEDOUT)
        rc = sync_locked(m, bg_timeout, err, sizeof(err));
      if (rc == 0) {
        if (m->degraded)
          MC_INFO(m->log, "etcd", "etcd reachable again via %s; lease %llx live",
                  mc_etcd_current_endpoint(m->e), (unsigned long long)m->lease);
        m->degraded = 0;
        next_ka = mc_now_ms() + (uint64_t)m->ttl_s * 1000 / 3;
      } else {
        if (!m->degraded)
          MC_WARN(m->log, "etcd", "keeping the segment lease alive failed: %s (%s); retrying every %d ms",
                  err, mc_strerror(rc), RETRY_MS);
        m->degraded = 1;
        next_ka = mc_now_ms() + RETRY_MS;
      }
    }
    int want_watch = m->want_watch;
    pthread_mutex_unlock(&m->mu);

    now = mc_now_ms();
    if (want_watch && !w && now >= next_watch_try) {
      int rc = mc_etcd_watch_open(m->e, m->seg_prefix, watch_opened_before ? watch_rev + 1 : 0,
                                  &w, bg_timeout, err, sizeof(err));
      if (rc == MC_EPEER && watch_opened_before) {
        /* Resuming at watch_rev failed (compacted?): start from now. */
        rc = mc_etcd_watch_open(m->e, m->seg_prefix, 0, &w, bg_timeout, err, sizeof(err));
      }
      if (rc) {
        MC_DEBUG(m->log, "etcd", "watch not (re)opened: %s", err);
        next_watch_try = mc_now_ms() + RETRY_MS;
      } else if (watch_opened_before) {
        MC_INFO(m->log, "etcd", "watch on %s re-established", m->seg_prefix);
        notify_all_watched(m); /* events may have been missed */
      } else {
        watch_opened_before = 1;
      }
    }
    int wait = WATCH_POLL_MS;
    uint64_t t = mc_now_ms();
    if (next_ka > t && next_ka - t < (uint64_t)wait)
      wait = (int)(next_ka - t);
    if (w) {
      int rc = mc_etcd_watch_next(w, on_event, m, &watch_rev, wait, err, sizeof(err));
      if (rc < 0) {
        MC_WARN(m->log, "etcd", "%s; reconnecting the watch", err);
        mc_etcd_watch_close(w);
        w = NULL;
        next_watch_try = mc_now_ms() + (rc == MC_EPEER ? 50 : RETRY_MS);
      }
    } else {
      sleep_ms((unsigned)(wait > 0 ? wait : 1));
    }
  }
  mc_etcd_watch_close(w);
  return NULL;
}

static int ensure_thread(etcd_md *m) {
  if (m->thread_running)
    return 0;
  if (pthread_create(&m->thread, NULL, bg_main, m) != 0)
    return MC_ENOMEM;
  m->thread_running = 1;
  return 0;
}

/* ---- ops ---- */

static void etcd_close(void *ctx);

static int etcd_open(const mc_metadata_args *args, void **ctx) {
  etcd_md *m = calloc(1, sizeof(*m));
  if (!m)
    return MC_ENOMEM;
  m->log = args->log;
  m->timeout_ms = args->timeout_ms ? (int)args->timeout_ms : DEFAULT_TIMEOUT_MS;
  m->ttl_s = DEFAULT_TTL_S;
  strcpy(m->prefix, "/mooncake");
  m->on_change = args->on_change;
  m->on_change_arg = args->on_change_arg;
  pthread_mutex_init(&m->mu, NULL);
  char *endpoints = NULL;
  int rc = parse_url(m, args->url, &endpoints);
  if (rc) {
    etcd_close(m);
    return rc;
  }
  snprintf(m->seg_prefix, sizeof(m->seg_prefix), "%s/segments/", m->prefix);
  char err[512];
  rc = mc_etcd_create(endpoints, m->log, &m->e, err, sizeof(err));
  free(endpoints);
  if (rc) {
    MC_ERROR(m->log, "etcd", "metadata '%s': %s", args->url, err);
    etcd_close(m);
    return rc;
  }
  MC_INFO(m->log, "etcd", "metadata backend on %s, key prefix %s, lease ttl %d s",
          args->url, m->prefix, m->ttl_s);
  *ctx = m;
  return 0;
}

static void free_pubs(pub *p) {
  while (p) {
    pub *n = p->next;
    free(p->segment);
    free(p->json);
    free(p);
    p = n;
  }
}

static void etcd_close(void *ctx) {
  etcd_md *m = ctx;
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_mutex_unlock(&m->mu);
  if (m->thread_running)
    pthread_join(m->thread, NULL);
  if (m->e && m->lease) {
    /* Revoking deletes our segment keys at once instead of after TTL. */
    char err[512];
    int t = m->timeout_ms < 2000 ? m->timeout_ms : 2000;
    if (mc_etcd_lease_revoke(m->e, m->lease, t, err, sizeof(err)) != 0)
      MC_WARN(m->log, "etcd", "revoking lease on close failed (keys expire after %d s): %s",
              m->ttl_s, err);
  }
  mc_etcd_destroy(m->e);
  free_pubs(m->pubs);
  while (m->watches) {
    watched *n = m->watches->next;
    free(m->watches->name);
    free(m->watches);
    m->watches = n;
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static int etcd_local_name(void *ctx, char *buf, size_t len) {
  (void)ctx;
  (void)buf;
  (void)len;
  return MC_ENOTSUP;
}

static int etcd_publish(void *ctx, const char *segment, const char *json, size_t len) {
  etcd_md *m = ctx;
  char key[512];
  if (seg_key(m, segment, key, sizeof(key)) != 0 || !json || len == 0 ||
      len > MC_DESC_JSON_MAX) {
    MC_ERROR(m->log, "etcd", "publish: bad segment name or descriptor (segment '%s', %zu bytes)",
             segment ? segment : "(null)", len);
    return MC_EINVAL;
  }
  pub *np = calloc(1, sizeof(*np));
  char *copy = malloc(len);
  if (!np || !copy || !(np->segment = strdup(segment))) {
    free(np);
    free(copy);
    return MC_ENOMEM;
  }
  memcpy(copy, json, len);
  np->json = copy;
  np->len = len;
  np->dirty = 1;
  pthread_mutex_lock(&m->mu);
  /* Replace an earlier publication of the same segment. */
  for (pub **pp = &m->pubs; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->segment, segment) == 0) {
      pub *old = *pp;
      *pp = old->next;
      old->next = NULL;
      np->written = old->written;
      free_pubs(old);
      break;
    }
  }
  np->next = m->pubs;
  m->pubs = np;
  /* Kept as desired state even if etcd is down now: the background thread
   * publishes it when etcd answers again. */
  m->dirty = 1;
  char err[512] = "";
  int rc = sync_locked(m, m->timeout_ms, err, sizeof(err));
  int trc = ensure_thread(m);
  pthread_mutex_unlock(&m->mu);
  if (rc) {
    MC_ERROR(m->log, "etcd", "publishing segment '%s' failed: %s", segment, err);
    return rc;
  }
  return trc;
}

static int etcd_unpublish(void *ctx, const char *segment) {
  etcd_md *m = ctx;
  char key[512], err[512] = "";
  if (seg_key(m, segment, key, sizeof(key)) != 0)
    return MC_EINVAL;
  pthread_mutex_lock(&m->mu);
  int found = 0, written = 0;
  for (pub **pp = &m->pubs; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->segment, segment) == 0) {
      pub *old = *pp;
      *pp = old->next;
      old->next = NULL;
      found = 1;
      written = old->written;
      free_pubs(old);
      break;
    }
  }
  pthread_mutex_unlock(&m->mu);
  /* A segment this client never got into etcd (it was down from the
   * start) has no key to delete: do not wait for etcd again. */
  if (found && !written)
    return 0;
  int rc = mc_etcd_delete(m->e, key, 0, NULL, m->timeout_ms, err, sizeof(err));
  if (rc)
    MC_WARN(m->log, "etcd", "unpublishing segment '%s' failed: %s", segment, err);
  return rc;
}

static int etcd_fetch(void *ctx, const char *segment, char **json, size_t *len) {
  etcd_md *m = ctx;
  char key[512], err[512] = "";
  if (seg_key(m, segment, key, sizeof(key)) != 0)
    return MC_EINVAL;
  void *val = NULL;
  size_t vlen = 0;
  int rc = mc_etcd_get(m->e, key, &val, &vlen, NULL, m->timeout_ms, err, sizeof(err));
  if (rc == MC_ENOENT) {
    MC_DEBUG(m->log, "etcd", "segment '%s' not found (key %s)", segment, key);
    return rc;
  }
  if (rc) {
    MC_WARN(m->log, "etcd", "fetching segment '%s' failed: %s", segment, err);
    mc_last_error_set("fetching segment '%s' failed: %s", segment, err);
    return rc;
  }
  /* Values come from a shared store anyone may write: validate before the
   * engine trusts them, and say which key is bad. */
  mc_seg_desc *d = NULL;
  char why[256] = "";
  if (vlen > MC_DESC_JSON_MAX) {
    snprintf(why, sizeof(why), "%zu bytes exceeds the %u byte limit", vlen, MC_DESC_JSON_MAX);
    rc = MC_EPROTO;
  } else {
    rc = mc_desc_decode(val, vlen, &d, why, sizeof(why));
    mc_desc_free(d);
  }
  if (rc) {
    MC_ERROR(m->log, "etcd", "etcd key %s holds a malformed segment descriptor: %s",
             key, why);
    free(val);
    return MC_EPROTO;
  }
  *json = val;
  *len = vlen;
  return 0;
}

static int etcd_watch(void *ctx, const char *segment) {
  etcd_md *m = ctx;
  if (!segment || !*segment || strlen(segment) >= MC_NAME_MAX)
    return MC_EINVAL;
  pthread_mutex_lock(&m->mu);
  int found = 0;
  for (watched *w = m->watches; w; w = w->next)
    if (strcmp(w->name, segment) == 0)
      found = 1;
  int rc = 0;
  if (!found) {
    watched *w = calloc(1, sizeof(*w));
    if (!w || !(w->name = strdup(segment))) {
      free(w);
      rc = MC_ENOMEM;
    } else {
      w->next = m->watches;
      m->watches = w;
    }
  }
  m->want_watch = 1;
  if (rc == 0)
    rc = ensure_thread(m);
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int etcd_kv_put(void *ctx, const char *k, const void *val, size_t len) {
  etcd_md *m = ctx;
  char key[512], err[512] = "";
  if (kv_key(m, k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = mc_etcd_put(m->e, key, val, len, 0, m->timeout_ms, err, sizeof(err));
  if (rc)
    MC_WARN(m->log, "etcd", "kv put '%s' failed: %s", k, err);
  return rc;
}

static int etcd_kv_get(void *ctx, const char *k, void **val, size_t *len) {
  etcd_md *m = ctx;
  char key[512], err[512] = "";
  if (kv_key(m, k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = mc_etcd_get(m->e, key, val, len, NULL, m->timeout_ms, err, sizeof(err));
  if (rc && rc != MC_ENOENT)
    MC_WARN(m->log, "etcd", "kv get '%s' failed: %s", k, err);
  return rc;
}

static int etcd_kv_delete(void *ctx, const char *k) {
  etcd_md *m = ctx;
  char key[512], err[512] = "";
  if (kv_key(m, k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int64_t n = 0;
  int rc = mc_etcd_delete(m->e, key, 0, &n, m->timeout_ms, err, sizeof(err));
  if (rc)
    MC_WARN(m->log, "etcd", "kv delete '%s' failed: %s", k, err);
  else if (n == 0)
    rc = MC_ENOENT;
  return rc;
}

const mc_metadata_ops mc_metadata_etcd_ops = {
    .scheme = "etcd",
    .open = etcd_open,
    .close = etcd_close,
    .local_name = etcd_local_name,
    .publish = etcd_publish,
    .unpublish = etcd_unpublish,
    .fetch = etcd_fetch,
    .watch = etcd_watch,
    .kv_put = etcd_kv_put,
    .kv_get = etcd_kv_get,
    .kv_delete = etcd_kv_delete,
};
