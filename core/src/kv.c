/* The public key/value API (mooncake/kv.h) over the engine's metadata
 * store module (backend.h): key validation and namespacing (<prefix>kv/),
 * revisions and compare-and-swap through the ABI 1.1 operations (get_rev,
 * list, put_if), leases (the module's, or emulated with per-key TTLs and
 * touch for modules without leases: HTTP), and watches (one thread per
 * watch driving watch_next, reopening a broken watch after the last
 * revision delivered). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "engine_md.h"
#include "log.h"
#include "metadata.h"
#include "mooncake/errors.h"
#include "mooncake/kv.h"
#include "net.h"
#include "token.h"

#define COMP "kv"
#define WATCH_WAIT_MS 100
#define WATCH_RETRY_MS 500
#define MAX_LEASE_TTL_S 3600
#define FULL_KEY_MAX 1024

/* A lease emulated with per-key TTLs (modules without lease_grant). */
typedef struct elease {
  struct elease *next;
  int64_t id;
  int ttl_s;
  uint64_t expires_ms;
  char **keys; /* full keys written with the lease */
  size_t n, cap;
} elease;

struct mc_kv {
  const mc_md_backend *be;
  void *ctx;
  const mc_logger *log;
  char prefix[300]; /* "<prefix>kv/" */
  size_t plen;
  int timeout_ms;
  pthread_mutex_t mu; /* guards leases, next_lease, watches */
  elease *leases;
  int64_t next_lease;
  mc_kv_watcher *watches;
  mc_metadata *own_md; /* mc_kv_open_url's store, closed with the handle */
};

struct mc_kv_watcher {
  mc_kv_watcher *next;
  mc_kv *kv;
  char prefix[FULL_KEY_MAX];
  mc_kv_watch_fn fn;
  void *arg;
  void *w;      /* the module's watch, NULL while broken */
  int64_t rev;  /* last revision delivered */
  atomic_int stop;
  pthread_t thread;
};

/* Fails with rc, recording "kv <op> '<key>': <why>" as mc_last_error(). */
__attribute__((format(printf, 4, 5))) static int fail(int rc, const char *op,
                                                     const char *key, const char *fmt,
                                                     ...) {
  char why[MC_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (key)
    mc_last_error_set("kv %s '%.600s': %s", op, key, why);
  else
    mc_last_error_set("kv %s: %s", op, why);
  return rc;
}

static int check_text(const char *s, int allow_empty, const char *what, const char *op,
                      size_t *len) {
  if (!s)
    return fail(MC_EINVAL, op, NULL, "%s is NULL", what);
  size_t n = strlen(s);
  if (n == 0 && !allow_empty)
    return fail(MC_EINVAL, op, NULL, "empty %s", what);
  if (n > MC_KV_KEY_MAX)
    return fail(MC_EINVAL, op, NULL, "%s of %zu bytes (at most %d)", what, n, MC_KV_KEY_MAX);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return fail(MC_EINVAL, op, NULL, "%s has a control character (byte %zu)", what, i);
  *len = n;
  return 0;
}

/* Validates key and writes <prefix>kv/<key> into full. */
static int full_key(mc_kv *kv, const char *key, int allow_empty, const char *what,
                    const char *op, char *full) {
  size_t n = 0;
  int rc = check_text(key, allow_empty, what, op, &n);
  if (rc)
    return rc;
  memcpy(full, kv->prefix, kv->plen);
  memcpy(full + kv->plen, key, n + 1);
  return 0;
}

static int check_value(const void *val, size_t len, const char *op, const char *key) {
  if (!val && len)
    return fail(MC_EINVAL, op, key, "value is NULL with length %zu", len);
  if (len > MC_KV_VALUE_MAX)
    return fail(MC_EINVAL, op, key, "value of %zu bytes (at most %u)", len, MC_KV_VALUE_MAX);
  return 0;
}

/* ---- handle ---- */

/* A handle on md's store; url names it in messages. */
static int kv_init(mc_metadata *md, const char *url, mc_kv **out) {
  const mc_md_backend *be = NULL;
  void *ctx = NULL;
  const char *prefix = NULL;
  int timeout_ms = 0;
  const mc_logger *log = NULL;
  int rc = mc_metadata_kv_backend(md, &be, &ctx, &prefix, &timeout_ms, &log);
  if (rc == MC_ENOTSUP)
    return fail(rc, "open", NULL,
                "kv needs a shared metadata store: etcd:// or http:// (metadata '%s' has "
                "none)",
                url);
  if (rc)
    return fail(rc, "open", NULL, "no metadata store (%s)", mc_strerror(rc));
  if (strlen(prefix) >= sizeof(((mc_kv *)0)->prefix) ||
      strlen(prefix) + MC_KV_KEY_MAX >= FULL_KEY_MAX)
    return fail(MC_EINVAL, "open", NULL, "metadata key prefix '%s' too long", prefix);
  mc_kv *kv = calloc(1, sizeof *kv);
  if (!kv)
    return fail(MC_ENOMEM, "open", NULL, "out of memory");
  kv->be = be;
  kv->ctx = ctx;
  kv->log = log;
  kv->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
  snprintf(kv->prefix, sizeof kv->prefix, "%s", prefix);
  kv->plen = strlen(kv->prefix);
  kv->next_lease = 1;
  pthread_mutex_init(&kv->mu, NULL);
  *out = kv;
  return 0;
}

int mc_kv_open(mc_engine *engine, mc_kv **out) {
  if (out)
    *out = NULL;
  if (!engine || !out)
    return fail(MC_EINVAL, "open", NULL, "%s is NULL", engine ? "out" : "engine");
  return kv_init(mc_engine_metadata(engine), mc_engine_metadata_url(engine), out);
}

int mc_kv_open_url(const char *url, const char *token_file, mc_kv **out) {
  if (out)
    *out = NULL;
  if (!url || !out)
    return fail(MC_EINVAL, "open", NULL, "%s is NULL", url ? "out" : "url");
  if (strcmp(url, "p2p") == 0 || strncmp(url, "p2p://", 6) == 0 || !*url)
    return fail(MC_ENOTSUP, "open", NULL,
                "kv needs a shared metadata store: etcd:// or http:// (metadata '%s' has "
                "none)",
                *url ? url : "p2p");
  char token[MC_TOKEN_MAX + 1] = "", err[MC_ERR_MAX] = "";
  if (token_file && mc_token_load(token_file, token, err, sizeof err) != 0)
    return fail(MC_EINVAL, "open", NULL, "cluster token: %s", err);
  mc_metadata_args args = {.url = url, .token = token[0] ? token : NULL};
  mc_metadata *md = NULL;
  int rc = mc_metadata_open(&args, &md, err, sizeof err);
  if (rc)
    return fail(rc, "open", NULL, "%s", err[0] ? err : mc_strerror(rc));
  rc = kv_init(md, url, out);
  if (rc) {
    mc_metadata_close(md);
    return rc;
  }
  (*out)->own_md = md;
  return 0;
}

static void free_lease(elease *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->keys[i]);
  free(l->keys);
  free(l);
}

void mc_kv_close(mc_kv *kv) {
  if (!kv)
    return;
  for (;;) {
    pthread_mutex_lock(&kv->mu);
    mc_kv_watcher *w = kv->watches;
    pthread_mutex_unlock(&kv->mu);
    if (!w)
      break;
    mc_kv_unwatch(w);
  }
  for (elease *l = kv->leases, *n; l; l = n) {
    n = l->next;
    free_lease(l);
  }
  pthread_mutex_destroy(&kv->mu);
  mc_metadata_close(kv->own_md);
  free(kv);
}

/* ---- emulated leases (modules without lease_grant) ---- */

static int emulated(const mc_kv *kv) { return kv->be->lease_grant == NULL; }

/* Drops full key from every emulated lease.  mu held. */
static void detach_key_locked(mc_kv *kv, const char *full) {
  for (elease *l = kv->leases; l; l = l->next)
    for (size_t i = 0; i < l->n; i++)
      if (strcmp(l->keys[i], full) == 0) {
        free(l->keys[i]);
        l->keys[i] = l->keys[--l->n];
        break;
      }
}

/* The live emulated lease id, or NULL (an expired one is dropped).  mu held. */
static elease *find_lease_locked(mc_kv *kv, int64_t id) {
  for (elease **pp = &kv->leases; *pp; pp = &(*pp)->next) {
    elease *l = *pp;
    if (l->id != id)
      continue;
    if (mc_now_ms() >= l->expires_ms) {
      *pp = l->next;
      free_lease(l);
      return NULL;
    }
    return l;
  }
  return NULL;
}

static int attach_key_locked(elease *l, const char *full) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **k = realloc(l->keys, cap * sizeof *k);
    if (!k)
      return MC_ENOMEM;
    l->keys = k;
    l->cap = cap;
  }
  if (!(l->keys[l->n] = strdup(full)))
    return MC_ENOMEM;
  l->n++;
  return 0;
}

/* ---- writes ---- */

static int write_key(mc_kv *kv, const char *op, const char *key, int64_t expect,
                     const void *val, size_t len, int64_t lease, int64_t *rev) {
  char full[FULL_KEY_MAX];
  int rc = full_key(kv, key, 0, "key", op, full);
  if (rc || (rc = check_value(val, len, op, key)))
    return rc;
  if (lease < 0)
    return fail(MC_EINVAL, op, key, "bad lease id %lld", (long long)lease);
  if (expect >= 0 && !kv->be->put_if)
    return fail(MC_ENOTSUP, op, key,
                "the metadata module '%s' (ABI %u.%u) has no compare-and-swap (needs 1.1)",
                kv->be->name, kv->be->abi_major, kv->be->abi_minor);
  char err[MC_ERR_MAX] = "";
  int64_t new_rev = 0, be_lease = lease;
  int ttl_s = 0;
  /* Emulated leases: the lookup, the write and the key's attachment happen
   * under mu, so a concurrent keep-alive or revoke sees the key or not at
   * all.  Native leases need no lock. */
  const int emu = emulated(kv);
  if (emu)
    pthread_mutex_lock(&kv->mu);
  elease *el = NULL;
  if (emu) {
    be_lease = 0;
    if (lease) {
      if (!(el = find_lease_locked(kv, lease))) {
        pthread_mutex_unlock(&kv->mu);
        return fail(MC_ENOENT, op, key, "lease %llx has expired or was revoked",
                    (unsigned long long)lease);
      }
      ttl_s = el->ttl_s;
    }
  }
  if (kv->be->put_if)
    rc = kv->be->put_if(kv->ctx, full, expect, val, len, be_lease, ttl_s, &new_rev,
                        kv->timeout_ms, err, sizeof err);
  else
    rc = kv->be->put(kv->ctx, full, val, len, be_lease, ttl_s, kv->timeout_ms, err, sizeof err);
  if (rc == 0 && emu) {
    detach_key_locked(kv, full);
    if (el && attach_key_locked(el, full) != 0)
      MC_WARN(kv->log, COMP, "'%s': out of memory attaching it to lease %llx (it expires "
              "after %d s unless written again)", key, (unsigned long long)lease, ttl_s);
  }
  if (emu)
    pthread_mutex_unlock(&kv->mu);
  if (rc == MC_EAGAIN)
    return fail(rc, op, key, "not at revision %lld (changed by someone else)",
                (long long)expect);
  if (rc == MC_ENOENT && lease)
    return fail(rc, op, key, "lease %llx is gone: %s", (unsigned long long)lease, err);
  if (rc)
    return fail(rc, op, key, "%s", err[0] ? err : mc_strerror(rc));
  if (rev)
    *rev = new_rev;
  return 0;
}

int mc_kv_put(mc_kv *kv, const char *key, const void *val, size_t len, int64_t lease,
              int64_t *rev) {
  if (!kv)
    return fail(MC_EINVAL, "put", NULL, "kv handle is NULL");
  return write_key(kv, "put", key, -1, val, len, lease, rev);
}

int mc_kv_cas(mc_kv *kv, const char *key, int64_t expected_rev, const void *val, size_t len,
              int64_t lease, int64_t *new_rev) {
  if (!kv)
    return fail(MC_EINVAL, "cas", NULL, "kv handle is NULL");
  if (expected_rev < 0)
    return fail(MC_EINVAL, "cas", key, "expected revision %lld < 0", (long long)expected_rev);
  return write_key(kv, "cas", key, expected_rev, val, len, lease, new_rev);
}

int mc_kv_get(mc_kv *kv, const char *key, void **val, size_t *len, int64_t *rev) {
  char full[FULL_KEY_MAX];
  if (!kv || !val || !len)
    return fail(MC_EINVAL, "get", key, "%s is NULL", !kv ? "kv handle" : !val ? "val" : "len");
  int rc = full_key(kv, key, 0, "key", "get", full);
  if (rc)
    return rc;
  char err[MC_ERR_MAX] = "";
  void *v = NULL;
  size_t n = 0;
  int64_t r = 0;
  if (kv->be->get_rev)
    rc = kv->be->get_rev(kv->ctx, full, &v, &n, &r, kv->timeout_ms, err, sizeof err);
  else
    rc = kv->be->get(kv->ctx, full, &v, &n, kv->timeout_ms, err, sizeof err);
  if (rc == MC_ENOENT)
    return fail(rc, "get", key, "no such key");
  if (rc)
    return fail(rc, "get", key, "%s", err[0] ? err : mc_strerror(rc));
  /* NUL-terminate for text values (modules do not promise it). */
  char *p = realloc(v, n + 1);
  if (!p) {
    free(v);
    return fail(MC_ENOMEM, "get", key, "out of memory");
  }
  p[n] = 0;
  *val = p;
  *len = n;
  if (rev)
    *rev = r;
  return 0;
}

void mc_kv_free(void *val) { free(val); }

int mc_kv_delete(mc_kv *kv, const char *key) {
  char full[FULL_KEY_MAX];
  if (!kv)
    return fail(MC_EINVAL, "delete", key, "kv handle is NULL");
  int rc = full_key(kv, key, 0, "key", "delete", full);
  if (rc)
    return rc;
  char err[MC_ERR_MAX] = "";
  rc = kv->be->del(kv->ctx, full, kv->timeout_ms, err, sizeof err);
  if (emulated(kv)) {
    pthread_mutex_lock(&kv->mu);
    detach_key_locked(kv, full);
    pthread_mutex_unlock(&kv->mu);
  }
  if (rc == MC_ENOENT)
    return fail(rc, "delete", key, "no such key");
  if (rc)
    return fail(rc, "delete", key, "%s", err[0] ? err : mc_strerror(rc));
  return 0;
}

/* ---- list ---- */

typedef struct list_ctx {
  mc_kv *kv;
  mc_kv_list_fn fn;
  void *arg;
} list_ctx;

static int on_listed(void *arg, const char *key, size_t klen, const void *val, size_t vlen,
                     int64_t rev) {
  list_ctx *l = arg;
  size_t pl = l->kv->plen;
  if (klen <= pl || klen - pl >= FULL_KEY_MAX)
    return 0;
  char k[FULL_KEY_MAX];
  memcpy(k, key + pl, klen - pl);
  k[klen - pl] = 0;
  return l->fn(l->arg, k, val, vlen, rev);
}

int mc_kv_list(mc_kv *kv, const char *prefix, mc_kv_list_fn fn, void *arg) {
  char full[FULL_KEY_MAX];
  if (!kv || !fn)
    return fail(MC_EINVAL, "list", prefix, "%s is NULL", !kv ? "kv handle" : "callback");
  int rc = full_key(kv, prefix, 1, "prefix", "list", full);
  if (rc)
    return rc;
  if (!kv->be->list)
    return fail(MC_ENOTSUP, "list", prefix,
                "the metadata module '%s' (ABI %u.%u) cannot list keys (needs 1.1)",
                kv->be->name, kv->be->abi_major, kv->be->abi_minor);
  char err[MC_ERR_MAX] = "";
  list_ctx l = {kv, fn, arg};
  rc = kv->be->list(kv->ctx, full, on_listed, &l, kv->timeout_ms, err, sizeof err);
  if (rc)
    return fail(rc, "list", prefix, "%s", err[0] ? err : mc_strerror(rc));
  return 0;
}

/* ---- leases ---- */

int mc_kv_lease_grant(mc_kv *kv, int ttl_s, int64_t *lease) {
  if (!kv || !lease)
    return fail(MC_EINVAL, "lease_grant", NULL, "%s is NULL", !kv ? "kv handle" : "lease");
  if (ttl_s < 1 || ttl_s > MAX_LEASE_TTL_S)
    return fail(MC_EINVAL, "lease_grant", NULL, "ttl %d s (1..%d allowed)", ttl_s,
                MAX_LEASE_TTL_S);
  if (!emulated(kv)) {
    char err[MC_ERR_MAX] = "";
    int rc = kv->be->lease_grant(kv->ctx, ttl_s, lease, kv->timeout_ms, err, sizeof err);
    if (rc)
      return fail(rc, "lease_grant", NULL, "%s", err[0] ? err : mc_strerror(rc));
    return 0;
  }
  if (!kv->be->touch)
    return fail(MC_ENOTSUP, "lease_grant", NULL,
                "the metadata module '%s' has neither leases nor per-key TTLs", kv->be->name);
  elease *l = calloc(1, sizeof *l);
  if (!l)
    return fail(MC_ENOMEM, "lease_grant", NULL, "out of memory");
  l->ttl_s = ttl_s;
  l->expires_ms = mc_now_ms() + (uint64_t)ttl_s * 1000;
  pthread_mutex_lock(&kv->mu);
  l->id = kv->next_lease++;
  l->next = kv->leases;
  kv->leases = l;
  *lease = l->id;
  pthread_mutex_unlock(&kv->mu);
  return 0;
}

int mc_kv_lease_keepalive(mc_kv *kv, int64_t lease) {
  if (!kv || lease <= 0)
    return fail(MC_EINVAL, "lease_keepalive", NULL, "%s",
                !kv ? "kv handle is NULL" : "lease id must be > 0");
  char err[MC_ERR_MAX] = "";
  if (!emulated(kv)) {
    if (!kv->be->lease_keepalive)
      return fail(MC_ENOTSUP, "lease_keepalive", NULL, "module '%s' has no keep-alive",
                  kv->be->name);
    int rc = kv->be->lease_keepalive(kv->ctx, lease, kv->timeout_ms, err, sizeof err);
    if (rc)
      return fail(rc, "lease_keepalive", NULL, "lease %llx: %s", (unsigned long long)lease,
                  err[0] ? err : mc_strerror(rc));
    return 0;
  }
  pthread_mutex_lock(&kv->mu);
  elease *l = find_lease_locked(kv, lease);
  int rc = l ? 0 : MC_ENOENT;
  for (size_t i = 0; l && i < l->n;) {
    int t = kv->be->touch(kv->ctx, l->keys[i], l->ttl_s, kv->timeout_ms, err, sizeof err);
    if (t == MC_ENOENT) { /* deleted or expired on the server: no longer ours */
      free(l->keys[i]);
      l->keys[i] = l->keys[--l->n];
      continue;
    }
    if (t) {
      rc = t;
      break;
    }
    i++;
  }
  if (rc == 0)
    l->expires_ms = mc_now_ms() + (uint64_t)l->ttl_s * 1000;
  pthread_mutex_unlock(&kv->mu);
  if (rc == MC_ENOENT)
    return fail(rc, "lease_keepalive", NULL, "lease %llx has expired or was revoked",
                (unsigned long long)lease);
  if (rc)
    return fail(rc, "lease_keepalive", NULL, "lease %llx: %s", (unsigned long long)lease,
                err[0] ? err : mc_strerror(rc));
  return 0;
}

int mc_kv_lease_revoke(mc_kv *kv, int64_t lease) {
  if (!kv || lease <= 0)
    return fail(MC_EINVAL, "lease_revoke", NULL, "%s",
                !kv ? "kv handle is NULL" : "lease id must be > 0");
  char err[MC_ERR_MAX] = "";
  if (!emulated(kv)) {
    if (!kv->be->lease_revoke)
      return fail(MC_ENOTSUP, "lease_revoke", NULL, "module '%s' cannot revoke leases",
                  kv->be->name);
    int rc = kv->be->lease_revoke(kv->ctx, lease, kv->timeout_ms, err, sizeof err);
    if (rc)
      return fail(rc, "lease_revoke", NULL, "lease %llx: %s", (unsigned long long)lease,
                  err[0] ? err : mc_strerror(rc));
    return 0;
  }
  pthread_mutex_lock(&kv->mu);
  elease *l = NULL;
  for (elease **pp = &kv->leases; *pp; pp = &(*pp)->next)
    if ((*pp)->id == lease) {
      l = *pp;
      *pp = l->next;
      break;
    }
  int rc = 0;
  if (!l) {
    rc = MC_ENOENT;
  } else if (mc_now_ms() >= l->expires_ms) {
    rc = MC_ENOENT; /* expired: the server has dropped its keys already */
  } else {
    for (size_t i = 0; i < l->n; i++) {
      int d = kv->be->del(kv->ctx, l->keys[i], kv->timeout_ms, err, sizeof err);
      if (d && d != MC_ENOENT && rc == 0)
        rc = d; /* the rest still expire with their TTL */
    }
  }
  if (l)
    free_lease(l);
  pthread_mutex_unlock(&kv->mu);
  if (rc == MC_ENOENT)
    return fail(rc, "lease_revoke", NULL, "lease %llx has expired or was revoked",
                (unsigned long long)lease);
  if (rc)
    return fail(rc, "lease_revoke", NULL, "lease %llx: %s (its other keys expire after its TTL)",
                (unsigned long long)lease, err);
  return 0;
}

/* ---- watch ---- */

static void on_event(void *arg, int type, const char *key, size_t klen, int64_t rev) {
  mc_kv_watcher *w = arg;
  size_t pl = w->kv->plen;
  /* Several events may share a revision (one transaction, a revoked lease's
   * keys); a reopened watch starts after the last revision seen. */
  if (rev > w->rev)
    w->rev = rev;
  if (atomic_load(&w->stop) || klen <= pl || klen - pl >= FULL_KEY_MAX)
    return;
  char k[FULL_KEY_MAX];
  memcpy(k, key + pl, klen - pl);
  k[klen - pl] = 0;
  w->fn(w->arg, type == MC_MD_EVENT_DELETE ? MC_KV_EVENT_DELETE : MC_KV_EVENT_PUT, k, rev);
}

static void sleep_50ms(void) {
  struct timespec ts = {0, 50 * 1000000L};
  nanosleep(&ts, NULL);
}

static void *watch_main(void *arg) {
  mc_kv_watcher *w = arg;
  mc_kv *kv = w->kv;
  char err[MC_ERR_MAX];
  while (!atomic_load(&w->stop)) {
    if (!w->w) {
      err[0] = 0;
      void *nw = NULL;
      int rc = kv->be->watch_open(kv->ctx, w->prefix, w->rev > 0 ? w->rev + 1 : 0, &nw,
                                  kv->timeout_ms, err, sizeof err);
      if (rc) {
        MC_DEBUG(kv->log, COMP, "watch %s: reopen failed: %s", w->prefix, err);
        for (int i = 0; i < WATCH_RETRY_MS / 50 && !atomic_load(&w->stop); i++)
          sleep_50ms();
        continue;
      }
      w->w = nw;
      MC_DEBUG(kv->log, COMP, "watch %s: resumed after revision %lld", w->prefix,
               (long long)w->rev);
    }
    int64_t rev = 0;
    err[0] = 0;
    int rc = kv->be->watch_next(w->w, on_event, w, &rev, WATCH_WAIT_MS, err, sizeof err);
    if (rc < 0) {
      MC_WARN(kv->log, COMP, "watch %s broke (%s); reconnecting", w->prefix,
              err[0] ? err : mc_strerror(rc));
      kv->be->watch_close(w->w);
      w->w = NULL;
    }
  }
  return NULL;
}

int mc_kv_watch(mc_kv *kv, const char *prefix, mc_kv_watch_fn fn, void *arg,
                mc_kv_watcher **out) {
  if (out)
    *out = NULL;
  if (!kv || !fn || !out)
    return fail(MC_EINVAL, "watch", prefix, "%s is NULL",
                !kv ? "kv handle" : !fn ? "callback" : "out");
  mc_kv_watcher *w = calloc(1, sizeof *w);
  if (!w)
    return fail(MC_ENOMEM, "watch", prefix, "out of memory");
  int rc = full_key(kv, prefix, 1, "prefix", "watch", w->prefix);
  if (rc) {
    free(w);
    return rc;
  }
  if (!kv->be->watch_open || !kv->be->watch_next || !kv->be->watch_close) {
    free(w);
    return fail(MC_ENOTSUP, "watch", prefix,
                "the '%s' metadata backend has no watch (use etcd://)", kv->be->name);
  }
  w->kv = kv;
  w->fn = fn;
  w->arg = arg;
  char err[MC_ERR_MAX] = "";
  /* Opened here so that every change after we return is seen. */
  rc = kv->be->watch_open(kv->ctx, w->prefix, 0, &w->w, kv->timeout_ms, err, sizeof err);
  if (rc) {
    free(w);
    return fail(rc, "watch", prefix, "%s", err[0] ? err : mc_strerror(rc));
  }
  if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
    kv->be->watch_close(w->w);
    free(w);
    return fail(MC_ENOMEM, "watch", prefix, "cannot start the watch thread");
  }
  pthread_mutex_lock(&kv->mu);
  w->next = kv->watches;
  kv->watches = w;
  pthread_mutex_unlock(&kv->mu);
  *out = w;
  return 0;
}

void mc_kv_unwatch(mc_kv_watcher *w) {
  if (!w)
    return;
  mc_kv *kv = w->kv;
  pthread_mutex_lock(&kv->mu);
  for (mc_kv_watcher **pp = &kv->watches; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  pthread_mutex_unlock(&kv->mu);
  atomic_store(&w->stop, 1);
  pthread_join(w->thread, NULL);
  if (w->w)
    kv->be->watch_close(w->w);
  free(w);
}
