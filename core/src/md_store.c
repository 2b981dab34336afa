/* Metadata over a key/value store module (backend.h): the publish, lease,
 * refresh and watch logic, written once for every store backend (etcd,
 * HTTP), which provide only primitive operations.
 *
 * Keys (prefix from the module, e.g. "/mooncake/"):
 *   <prefix>segments/<segment name>  segment descriptor JSON, kept alive
 *   <prefix>kv/<key>                 generic keys (kv_put/get/delete)
 *
 * Publishing keeps the descriptor as desired state and writes it at once;
 * a background thread (started on the first publish or watch) keeps it
 * alive every TTL/3:
 *   - modules with leases (lease_grant): one lease per handle, granted on
 *     the first publish, renewed by lease_keepalive; descriptors are put
 *     with it, so a crashed engine's segment disappears within the TTL.
 *     A lost lease (expired during an outage) is re-granted and every
 *     descriptor republished;
 *   - modules with per-key TTLs: each descriptor is touched; one the store
 *     lost (restart, expiry during an outage) is put again.
 * A write that fails is retried every RETRY_MS until it succeeds.  With
 * watch_open, the thread also watches <prefix>segments/ once a segment is
 * watched and calls on_change for watched names on every event (and for
 * all of them after the watch was re-established, since events may have
 * been missed).  close revokes the lease (or deletes the published keys)
 * so peers see the segment go at once.  Fetched descriptors are validated
 * (mc_desc_decode); a malformed value is MC_EPROTO with a log line naming
 * the key. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descriptor.h"
#include "md_store.h"
#include "mooncake/errors.h"
#include "net.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_TTL_S 10
#define RETRY_MS 500 /* pause between background retries when the store is down */
#define WATCH_POLL_MS 100

typedef struct pub {
  struct pub *next;
  char *segment;
  char *json;
  size_t len;
  int dirty;   /* not yet written (with the current lease) */
  int written; /* the store has (or had) a key for it: unpublish must delete */
} pub;

typedef struct watched {
  struct watched *next;
  char *name;
} watched;

struct mc_md_store {
  const mc_md_backend *be; /* the module's normalized table (owned by caller) */
  void *ctx;
  const char *comp; /* log component: the module's name */
  const mc_logger *log;
  int timeout_ms;
  int ttl_s;
  char seg_prefix[300];
  char kv_prefix[300];
  void (*on_change)(void *, const char *);
  void *on_change_arg;

  pthread_mutex_t mu; /* guards everything below; held across lease ops */
  pthread_cond_t cv;
  int64_t lease; /* 0: none granted (or lost) */
  int dirty;     /* published state not (fully) in the store yet */
  int degraded;  /* last background round failed (log once) */
  pub *pubs;
  watched *watches;
  int want_watch;
  int stop;
  int thread_running;
  pthread_t thread;
};

static int has_lease(const mc_md_store *m) { return m->be->lease_grant != NULL; }

static int seg_key(mc_md_store *m, const char *segment, char *key, size_t len) {
  if (!segment || !*segment || strlen(segment) >= MC_NAME_MAX)
    return MC_EINVAL;
  int n = snprintf(key, len, "%s%s", m->seg_prefix, segment);
  return n < 0 || (size_t)n >= len ? MC_EINVAL : 0;
}

static int kv_key(mc_md_store *m, const char *k, char *key, size_t len) {
  if (!k || !*k)
    return MC_EINVAL;
  int n = snprintf(key, len, "%s%s", m->kv_prefix, k);
  return n < 0 || (size_t)n >= len ? MC_EINVAL : 0;
}

/* Grants a lease if the module has leases and none is held, then writes
 * every dirty descriptor (all of them after a new lease).  Called with mu
 * held. */
static int sync_locked(mc_md_store *m, int timeout_ms, char *err, size_t errlen) {
  uint64_t deadline = mc_now_ms() + (uint64_t)timeout_ms;
  for (int round = 0; round < 2; round++) {
    if (has_lease(m) && m->lease == 0) {
      int rc = m->be->lease_grant(m->ctx, m->ttl_s, &m->lease, timeout_ms, err, errlen);
      if (rc)
        return rc;
      for (pub *p = m->pubs; p; p = p->next)
        p->dirty = 1;
      MC_DEBUG(m->log, m->comp, "granted lease %llx (ttl %d s)", (unsigned long long)m->lease,
               m->ttl_s);
    }
    int rc = 0;
    for (pub *p = m->pubs; p && rc == 0; p = p->next) {
      char key[512];
      uint64_t now = mc_now_ms();
      int left = now < deadline ? (int)(deadline - now) : 1;
      if (!p->dirty || seg_key(m, p->segment, key, sizeof(key)) != 0)
        continue;
      rc = m->be->put(m->ctx, key, p->json, p->len, m->lease, m->ttl_s, left, err, errlen);
      if (rc == 0) {
        p->dirty = 0;
        p->written = 1;
      }
    }
    if (rc == MC_ENOENT && has_lease(m)) { /* the lease expired */
      MC_WARN(m->log, m->comp, "lease %llx expired; granting a new one and republishing",
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

/* One keep-alive round, with mu held: renew the lease, or touch every
 * descriptor (marking the ones the store lost dirty). */
static int refresh_locked(mc_md_store *m, int timeout_ms, char *err, size_t errlen) {
  if (has_lease(m)) {
    if (!m->lease || !m->be->lease_keepalive)
      return 0;
    int rc = m->be->lease_keepalive(m->ctx, m->lease, timeout_ms, err, errlen);
    if (rc == MC_ENOENT) {
      MC_WARN(m->log, m->comp, "%s; granting a new lease and republishing", err);
      m->lease = 0;
      m->dirty = 1;
      return 0;
    }
    return rc;
  }
  if (m->ttl_s <= 0 || !m->be->touch)
    return 0;
  for (pub *p = m->pubs; p && !m->stop; p = p->next) {
    char key[512];
    if (p->dirty || seg_key(m, p->segment, key, sizeof(key)) != 0)
      continue;
    int rc = m->be->touch(m->ctx, key, m->ttl_s, timeout_ms, err, errlen);
    if (rc == MC_ENOENT) {
      MC_DEBUG(m->log, m->comp, "segment '%s' was lost by the store; putting it again",
               p->segment);
      p->dirty = 1;
      m->dirty = 1;
    } else if (rc) {
      return rc;
    }
  }
  return 0;
}

/* ---- background thread: keep-alive, republish, watch ---- */

static void on_event(void *arg, int type, const char *key, size_t klen, int64_t rev) {
  mc_md_store *m = arg;
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
  MC_DEBUG(m->log, m->comp, "watch: %s %s (rev %lld)%s",
           type == MC_MD_EVENT_PUT ? "PUT" : "DELETE", name, (long long)rev,
           hit ? "" : " (not watched)");
  if (hit && m->on_change)
    m->on_change(m->on_change_arg, name);
}

static void notify_all_watched(mc_md_store *m) {
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

/* Waits up to ms on cv (mu held), waking early on close. */
static void wait_locked(mc_md_store *m, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  if (!m->stop)
    pthread_cond_timedwait(&m->cv, &m->mu, &ts);
}

static void *bg_main(void *arg) {
  mc_md_store *m = arg;
  void *w = NULL;
  int watch_opened_before = 0;
  int64_t watch_rev = 0;
  int period = m->ttl_s > 0 ? m->ttl_s * 1000 / 3 : 1000;
  uint64_t next_ka = mc_now_ms() + (uint64_t)period;
  uint64_t next_watch_try = 0;
  /* A background round never waits longer than this, so close() and
   * keep-alive stay timely while the store is down. */
  int bg_timeout = period;
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
    if (now >= next_ka && (m->pubs || m->dirty)) {
      err[0] = 0;
      int rc = 0;
      if (!m->dirty)
        rc = refresh_locked(m, bg_timeout, err, sizeof(err));
      if (m->dirty && rc != MC_EPEER && rc != MC_ETIMEDOUT)
        rc = sync_locked(m, bg_timeout, err, sizeof(err));
      if (rc == 0) {
        if (m->degraded)
          MC_INFO(m->log, m->comp, "metadata store reachable again; published segments live");
        m->degraded = 0;
        next_ka = mc_now_ms() + (uint64_t)period;
      } else {
        if (!m->degraded)
          MC_WARN(m->log, m->comp,
                  "keeping the published segments alive failed: %s (%s); retrying every %d ms",
                  err, mc_strerror(rc), RETRY_MS);
        m->degraded = 1;
        next_ka = mc_now_ms() + RETRY_MS;
      }
    }
    int want_watch = m->want_watch && m->be->watch_open;
    if (!want_watch) {
      uint64_t t = mc_now_ms();
      int wait = next_ka > t ? (int)(next_ka - t) : 1;
      wait_locked(m, wait < 1 ? 1 : wait);
      pthread_mutex_unlock(&m->mu);
      continue;
    }
    pthread_mutex_unlock(&m->mu);

    now = mc_now_ms();
    if (!w && now >= next_watch_try) {
      int rc = m->be->watch_open(m->ctx, m->seg_prefix, watch_opened_before ? watch_rev + 1 : 0,
                                 &w, bg_timeout, err, sizeof(err));
      if (rc == MC_EPEER && watch_opened_before) /* resuming failed (compacted?): from now */
        rc = m->be->watch_open(m->ctx, m->seg_prefix, 0, &w, bg_timeout, err, sizeof(err));
      if (rc) {
        w = NULL;
        MC_DEBUG(m->log, m->comp, "watch not (re)opened: %s", err);
        next_watch_try = mc_now_ms() + RETRY_MS;
      } else if (watch_opened_before) {
        MC_INFO(m->log, m->comp, "watch on %s re-established", m->seg_prefix);
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
      int rc = m->be->watch_next(w, on_event, m, &watch_rev, wait, err, sizeof(err));
      if (rc < 0) {
        MC_WARN(m->log, m->comp, "%s; reconnecting the watch", err);
        m->be->watch_close(w);
        w = NULL;
        next_watch_try = mc_now_ms() + (rc == MC_EPEER ? 50 : RETRY_MS);
      }
    } else {
      pthread_mutex_lock(&m->mu);
      wait_locked(m, wait > 0 ? wait : 1);
      pthread_mutex_unlock(&m->mu);
    }
  }
  if (w)
    m->be->watch_close(w);
  return NULL;
}

static int ensure_thread(mc_md_store *m) {
  if (m->thread_running || m->stop)
    return 0;
  if (pthread_create(&m->thread, NULL, bg_main, m) != 0)
    return MC_ENOMEM;
  m->thread_running = 1;
  return 0;
}

/* ---- the metadata operations ---- */

static void host_log(const void *lg, int level, const char *component, const char *msg) {
  mc_log(lg, level, component, "%s", msg);
}

static int host_log_enabled(const void *lg, int level) { return mc_log_enabled(lg, level); }

static void host_set_last_error(const char *msg) { mc_last_error_set("%s", msg); }

static const mc_md_host md_host = {
    .abi_major = MC_MD_ABI_MAJOR,
    .abi_minor = MC_MD_ABI_MINOR,
    .struct_size = sizeof(mc_md_host),
    .log = host_log,
    .log_enabled = host_log_enabled,
    .set_last_error = host_set_last_error,
};

int mc_md_store_open(const mc_md_backend *be, const mc_metadata_args *args, mc_md_store **out,
                     char *err, size_t errlen) {
  mc_md_store *m = calloc(1, sizeof(*m));
  if (!m)
    return MC_ENOMEM;
  m->be = be;
  m->comp = be->name;
  m->log = args->log;
  m->on_change = args->on_change;
  m->on_change_arg = args->on_change_arg;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&m->mu, NULL);
  mc_md_conf conf = {.ttl_s = DEFAULT_TTL_S, .timeout_ms = DEFAULT_TIMEOUT_MS};
  mc_md_open_args oa = {.url = args->url, .timeout_ms = args->timeout_ms,
                        .token = args->token, .log = args->log};
  int rc = be->open(&md_host, &oa, &m->ctx, &conf, err, errlen);
  if (rc) {
    MC_ERROR(m->log, m->comp, "%s", err && *err ? err : mc_strerror(rc));
    m->ctx = NULL;
    mc_md_store_close(m);
    return rc;
  }
  conf.prefix[sizeof conf.prefix - 1] = 0;
  m->ttl_s = conf.ttl_s < 0 ? 0 : conf.ttl_s;
  if (has_lease(m) && m->ttl_s < 1)
    m->ttl_s = 1;
  m->timeout_ms = args->timeout_ms ? (int)args->timeout_ms
                  : conf.timeout_ms ? (int)conf.timeout_ms : DEFAULT_TIMEOUT_MS;
  snprintf(m->seg_prefix, sizeof m->seg_prefix, "%ssegments/", conf.prefix);
  snprintf(m->kv_prefix, sizeof m->kv_prefix, "%skv/", conf.prefix);
  MC_INFO(m->log, m->comp, "metadata backend on %s, key prefix %s, %s %d s", args->url,
          conf.prefix, has_lease(m) ? "lease ttl" : "key ttl", m->ttl_s);
  *out = m;
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

void mc_md_store_quiesce(mc_md_store *m) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (m->thread_running)
    pthread_join(m->thread, NULL);
  m->thread_running = 0;
}

void mc_md_store_close(mc_md_store *m) {
  if (!m)
    return;
  mc_md_store_quiesce(m);
  char err[512];
  int t = m->timeout_ms < 2000 ? m->timeout_ms : 2000;
  if (m->ctx && m->lease && m->be->lease_revoke) {
    /* Revoking deletes our segment keys at once instead of after the TTL. */
    if (m->be->lease_revoke(m->ctx, m->lease, t, err, sizeof(err)) != 0)
      MC_WARN(m->log, m->comp, "revoking lease on close failed (keys expire after %d s): %s",
              m->ttl_s, err);
  } else if (m->ctx && !has_lease(m)) {
    /* Remove what we published now rather than after the TTL. */
    for (pub *p = m->pubs; p; p = p->next) {
      char key[512];
      if (p->written && seg_key(m, p->segment, key, sizeof(key)) == 0)
        (void)m->be->del(m->ctx, key, t, err, sizeof(err));
    }
  }
  if (m->ctx)
    m->be->close(m->ctx);
  free_pubs(m->pubs);
  while (m->watches) {
    watched *n = m->watches->next;
    free(m->watches->name);
    free(m->watches);
    m->watches = n;
  }
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

int mc_md_store_publish(mc_md_store *m, const char *segment, const char *json, size_t len) {
  char key[512];
  if (seg_key(m, segment, key, sizeof(key)) != 0 || !json || len == 0 ||
      len > MC_DESC_JSON_MAX) {
    MC_ERROR(m->log, m->comp, "publish: bad segment name or descriptor (segment '%s', %zu bytes)",
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
  /* Kept as desired state even if the store is down now: the background
   * thread writes it when the store answers again. */
  m->dirty = 1;
  char err[512] = "";
  int rc = sync_locked(m, m->timeout_ms, err, sizeof(err));
  int trc = ensure_thread(m);
  pthread_mutex_unlock(&m->mu);
  if (rc) {
    MC_ERROR(m->log, m->comp, "publishing segment '%s' failed: %s", segment, err);
    return rc;
  }
  return trc;
}

int mc_md_store_unpublish(mc_md_store *m, const char *segment) {
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
  /* A segment never written (the store was down from the start) has no key
   * to delete: do not wait for the store again. */
  if (found && !written)
    return 0;
  int rc = m->be->del(m->ctx, key, m->timeout_ms, err, sizeof(err));
  if (rc == MC_ENOENT)
    rc = 0;
  if (rc)
    MC_WARN(m->log, m->comp, "unpublishing segment '%s' failed: %s", segment, err);
  return rc;
}

int mc_md_store_fetch(mc_md_store *m, const char *segment, char **json, size_t *len) {
  char key[512], err[512] = "";
  if (seg_key(m, segment, key, sizeof(key)) != 0)
    return MC_EINVAL;
  void *val = NULL;
  size_t vlen = 0;
  int rc = m->be->get(m->ctx, key, &val, &vlen, m->timeout_ms, err, sizeof(err));
  if (rc == MC_ENOENT) {
    MC_DEBUG(m->log, m->comp, "segment '%s' not found (key %s)", segment, key);
    return rc;
  }
  if (rc) {
    MC_WARN(m->log, m->comp, "fetching segment '%s' failed: %s", segment, err);
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
    MC_ERROR(m->log, m->comp, "%s key %s holds a malformed segment descriptor: %s", m->comp, key,
             why);
    free(val);
    return MC_EPROTO;
  }
  *json = val;
  *len = vlen;
  return 0;
}

int mc_md_store_watch(mc_md_store *m, const char *segment) {
  if (!m->be->watch_open || !m->be->watch_next || !m->be->watch_close)
    return MC_ENOTSUP;
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
  pthread_cond_broadcast(&m->cv);
  if (rc == 0)
    rc = ensure_thread(m);
  pthread_mutex_unlock(&m->mu);
  return rc;
}

int mc_md_store_kv_put(mc_md_store *m, const char *k, const void *val, size_t len) {
  char key[1400], err[512] = "";
  if (kv_key(m, k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = m->be->put(m->ctx, key, val, len, 0, 0, m->timeout_ms, err, sizeof(err));
  if (rc)
    MC_WARN(m->log, m->comp, "kv put '%s' failed: %s", k, err);
  return rc;
}

int mc_md_store_kv_get(mc_md_store *m, const char *k, void **val, size_t *len) {
  char key[1400], err[512] = "";
  if (kv_key(m, k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = m->be->get(m->ctx, key, val, len, m->timeout_ms, err, sizeof(err));
  if (rc && rc != MC_ENOENT)
    MC_WARN(m->log, m->comp, "kv get '%s' failed: %s", k, err);
  return rc;
}

int mc_md_store_kv_delete(mc_md_store *m, const char *k) {
  char key[1400], err[512] = "";
  if (kv_key(m, k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = m->be->del(m->ctx, key, m->timeout_ms, err, sizeof(err));
  if (rc && rc != MC_ENOENT)
    MC_WARN(m->log, m->comp, "kv delete '%s' failed: %s", k, err);
  return rc;
}

void mc_md_store_kv_backend(mc_md_store *m, const mc_md_backend **be, void **ctx,
                            const char **kv_prefix, int *timeout_ms,
                            const mc_logger **log) {
  *be = m->be;
  *ctx = m->ctx;
  *kv_prefix = m->kv_prefix;
  *timeout_ms = m->timeout_ms;
  *log = m->log;
}
