/* Checks of mooncake/kv.h shared by the etcd and HTTP tests. */
#include "kv_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "mooncake/errors.h"
#include "mooncake/kv.h"

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

mc_engine *kv_engine(const char *url, const char *name) {
  mc_engine_opts o = {.struct_size = sizeof o, .segment_name = name,
                      .listen = "127.0.0.1:0", .metadata = url, .transports = "tcp"};
  mc_engine *e = NULL;
  char err[512] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc)
    fprintf(stderr, "engine %s on %s: %s (%s)\n", name, url, mc_strerror(rc), err);
  CHECK_RC(rc, 0);
  return e;
}

static void expect_value(mc_kv *kv, const char *key, const char *want, int64_t want_rev) {
  void *v = NULL;
  size_t n = 0;
  int64_t rev = -1;
  CHECK_RC(mc_kv_get(kv, key, &v, &n, &rev), 0);
  CHECK_EQ_U64(n, strlen(want));
  CHECK_STR((const char *)v, want); /* NUL-terminated after len */
  if (want_rev)
    CHECK_EQ_U64((uint64_t)rev, (uint64_t)want_rev);
  CHECK(rev > 0);
  mc_kv_free(v);
}

static void expect_absent(mc_kv *kv, const char *key) {
  void *v = NULL;
  size_t n = 0;
  CHECK_RC(mc_kv_get(kv, key, &v, &n, NULL), MC_ENOENT);
  CHECK_HAS(mc_last_error(), key);
}

/* ---- put / get / delete ---- */

static void check_basic(mc_kv *kv, mc_kv *other) {
  int64_t r1 = 0, r2 = 0;
  CHECK_RC(mc_kv_put(kv, "basic/a", "hello", 5, 0, &r1), 0);
  CHECK(r1 > 0);
  expect_value(kv, "basic/a", "hello", r1);
  expect_value(other, "basic/a", "hello", r1); /* another engine sees it */
  CHECK_RC(mc_kv_put(kv, "basic/a", "world!", 6, 0, &r2), 0);
  CHECK(r2 > r1);
  expect_value(other, "basic/a", "world!", r2);
  /* Binary and empty values. */
  const uint8_t bin[4] = {0, 1, 0, 255};
  CHECK_RC(mc_kv_put(kv, "basic/bin", bin, sizeof bin, 0, NULL), 0);
  void *v = NULL;
  size_t n = 0;
  CHECK_RC(mc_kv_get(kv, "basic/bin", &v, &n, NULL), 0);
  CHECK(n == 4 && memcmp(v, bin, 4) == 0);
  mc_kv_free(v);
  CHECK_RC(mc_kv_put(kv, "basic/empty", NULL, 0, 0, NULL), 0);
  expect_value(kv, "basic/empty", "", 0);
  CHECK_RC(mc_kv_delete(other, "basic/a"), 0);
  expect_absent(kv, "basic/a");
  CHECK_RC(mc_kv_delete(kv, "basic/a"), MC_ENOENT);
  CHECK_HAS(mc_last_error(), "basic/a");
  CHECK_RC(mc_kv_delete(kv, "basic/bin"), 0);
  CHECK_RC(mc_kv_delete(kv, "basic/empty"), 0);
}

/* ---- list ---- */

typedef struct listing {
  int n;
  char keys[16][64];
  char vals[16][64];
  int64_t revs[16];
  int stop_after;
} listing;

static int on_list(void *arg, const char *key, const void *val, size_t len, int64_t rev) {
  listing *l = arg;
  if (l->n < 16) {
    snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
    snprintf(l->vals[l->n], sizeof l->vals[0], "%.*s", (int)len, (const char *)val);
    l->revs[l->n] = rev;
  }
  l->n++;
  return l->stop_after && l->n >= l->stop_after;
}

static void check_list(mc_kv *kv, mc_engine *e) {
  /* The engine publishes a segment descriptor: it must never be listed. */
  static char buf[1 << 16];
  CHECK_RC(mc_register(e, buf, sizeof buf, "cpu:0"), 0);
  int64_t rb = 0;
  CHECK_RC(mc_kv_put(kv, "ls/b", "2", 1, 0, &rb), 0);
  CHECK_RC(mc_kv_put(kv, "ls/a", "1", 1, 0, NULL), 0);
  CHECK_RC(mc_kv_put(kv, "ls/c/d", "3", 1, 0, NULL), 0);
  CHECK_RC(mc_kv_put(kv, "lsx", "4", 1, 0, NULL), 0);
  listing l = {0};
  CHECK_RC(mc_kv_list(kv, "ls/", on_list, &l), 0);
  CHECK_EQ_INT(l.n, 3);
  CHECK_STR(l.keys[0], "ls/a");
  CHECK_STR(l.keys[1], "ls/b");
  CHECK_STR(l.keys[2], "ls/c/d");
  CHECK_STR(l.vals[0], "1");
  CHECK_STR(l.vals[2], "3");
  CHECK_EQ_U64((uint64_t)l.revs[1], (uint64_t)rb);
  /* Everything: the kv keys only, no segment descriptor. */
  memset(&l, 0, sizeof l);
  CHECK_RC(mc_kv_list(kv, "", on_list, &l), 0);
  CHECK_EQ_INT(l.n, 4);
  for (int i = 0; i < l.n && i < 16; i++)
    CHECK_MSG(strstr(l.keys[i], "seg") == NULL && strncmp(l.keys[i], "ls", 2) == 0,
              "listed '%s'", l.keys[i]);
  /* The callback stops the listing. */
  memset(&l, 0, sizeof l);
  l.stop_after = 2;
  CHECK_RC(mc_kv_list(kv, "", on_list, &l), 0);
  CHECK_EQ_INT(l.n, 2);
  /* A prefix nobody uses. */
  memset(&l, 0, sizeof l);
  CHECK_RC(mc_kv_list(kv, "nothing/", on_list, &l), 0);
  CHECK_EQ_INT(l.n, 0);
  for (const char *const *k = (const char *const[]){"ls/a", "ls/b", "ls/c/d", "lsx", NULL}; *k;
       k++)
    CHECK_RC(mc_kv_delete(kv, *k), 0);
  CHECK_RC(mc_unregister(e, buf), 0);
}

/* ---- compare-and-swap ---- */

typedef struct racer {
  mc_kv *kv;
  int64_t expect;
  int id;
  atomic_int *go;
  int rc;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  while (!atomic_load(r->go))
    ;
  char v[16];
  snprintf(v, sizeof v, "racer-%d", r->id);
  r->rc = mc_kv_cas(r->kv, "cas/race", r->expect, v, strlen(v), 0, NULL);
  return NULL;
}

/* n racers over two handles with the same expected revision: exactly one
 * wins, the others get MC_EAGAIN.  Returns the winner's id. */
static int run_race(mc_kv *a, mc_kv *b, int64_t expect) {
  enum { N = 6 };
  racer rs[N];
  pthread_t th[N];
  atomic_int go = 0;
  for (int i = 0; i < N; i++) {
    rs[i] = (racer){i % 2 ? b : a, expect, i, &go, 1};
    CHECK(pthread_create(&th[i], NULL, race, &rs[i]) == 0);
  }
  atomic_store(&go, 1);
  int wins = 0, winner = -1;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    if (rs[i].rc == 0) {
      wins++;
      winner = i;
    } else {
      CHECK_RC(rs[i].rc, MC_EAGAIN);
    }
  }
  CHECK_EQ_INT(wins, 1);
  return winner;
}

static void check_cas(mc_kv *a, mc_kv *b) {
  int64_t r1 = 0, r2 = 0, r3 = 0;
  CHECK_RC(mc_kv_cas(a, "cas/k", 0, "v1", 2, 0, &r1), 0); /* create */
  CHECK(r1 > 0);
  CHECK_RC(mc_kv_cas(b, "cas/k", 0, "v2", 2, 0, NULL), MC_EAGAIN); /* exists */
  CHECK_HAS(mc_last_error(), "cas/k");
  expect_value(a, "cas/k", "v1", r1);
  CHECK_RC(mc_kv_cas(b, "cas/k", r1, "v2", 2, 0, &r2), 0);
  CHECK(r2 > r1);
  CHECK_RC(mc_kv_cas(a, "cas/k", r1, "v3", 2, 0, NULL), MC_EAGAIN); /* stale */
  expect_value(a, "cas/k", "v2", r2);
  CHECK_RC(mc_kv_put(a, "cas/k", "v4", 2, 0, &r3), 0);
  CHECK_RC(mc_kv_cas(b, "cas/k", r2, "v5", 2, 0, NULL), MC_EAGAIN);
  CHECK_RC(mc_kv_delete(a, "cas/k"), 0);
  CHECK_RC(mc_kv_cas(b, "cas/k", r3, "v6", 2, 0, NULL), MC_EAGAIN); /* deleted */
  CHECK_RC(mc_kv_cas(b, "cas/k", -1, "v6", 2, 0, NULL), MC_EINVAL);

  /* Racing creators, then racing updaters from the same revision. */
  int w = run_race(a, b, 0);
  char want[16];
  snprintf(want, sizeof want, "racer-%d", w);
  void *v = NULL;
  size_t n = 0;
  int64_t rev = 0;
  CHECK_RC(mc_kv_get(b, "cas/race", &v, &n, &rev), 0);
  CHECK_STR((const char *)v, want);
  mc_kv_free(v);
  w = run_race(a, b, rev);
  snprintf(want, sizeof want, "racer-%d", w);
  expect_value(a, "cas/race", want, 0);
  CHECK_RC(mc_kv_delete(a, "cas/race"), 0);
}

/* ---- leases ---- */

static int wait_absent(mc_kv *kv, const char *key, unsigned max_ms) {
  uint64_t end = now_ms() + max_ms;
  while (now_ms() < end) {
    void *v = NULL;
    size_t n = 0;
    int rc = mc_kv_get(kv, key, &v, &n, NULL);
    if (rc == MC_ENOENT)
      return 1;
    CHECK_RC(rc, 0);
    mc_kv_free(v);
    sleep_ms(200);
  }
  return 0;
}

static void check_leases(mc_kv *kv, mc_kv *other) {
  int64_t lease = 0;
  CHECK_RC(mc_kv_lease_grant(kv, 2, &lease), 0);
  CHECK(lease != 0);
  CHECK_RC(mc_kv_put(kv, "lease/a", "x", 1, lease, NULL), 0);
  CHECK_RC(mc_kv_cas(kv, "lease/b", 0, "y", 1, lease, NULL), 0);
  CHECK_RC(mc_kv_put(kv, "lease/plain", "z", 1, 0, NULL), 0);
  /* Kept alive for 4 s (twice the TTL): the keys stay. */
  for (int i = 0; i < 8; i++) {
    sleep_ms(500);
    CHECK_RC(mc_kv_lease_keepalive(kv, lease), 0);
  }
  expect_value(other, "lease/a", "x", 0);
  expect_value(other, "lease/b", "y", 0);
  /* Not kept alive: the keys go, the plain key stays. */
  CHECK_MSG(wait_absent(other, "lease/a", 10000), "lease/a outlived its lease");
  CHECK(wait_absent(other, "lease/b", 2000));
  expect_value(other, "lease/plain", "z", 0);
  CHECK_RC(mc_kv_lease_keepalive(kv, lease), MC_ENOENT);
  CHECK_HAS(mc_last_error(), "lease");
  CHECK_RC(mc_kv_put(kv, "lease/a", "x", 1, lease, NULL), MC_ENOENT);

  /* Revoking deletes the lease's keys at once. */
  CHECK_RC(mc_kv_lease_grant(kv, 30, &lease), 0);
  CHECK_RC(mc_kv_put(kv, "lease/r", "x", 1, lease, NULL), 0);
  expect_value(other, "lease/r", "x", 0);
  CHECK_RC(mc_kv_lease_revoke(kv, lease), 0);
  expect_absent(other, "lease/r");
  CHECK_RC(mc_kv_lease_revoke(kv, lease), MC_ENOENT);
  CHECK_RC(mc_kv_lease_grant(kv, 0, &lease), MC_EINVAL);
  CHECK_RC(mc_kv_delete(kv, "lease/plain"), 0);
}

/* ---- watch ---- */

typedef struct events {
  pthread_mutex_t mu;
  int n;
  int type[16];
  char key[16][64];
  int64_t rev[16];
} events;

static void on_event(void *arg, int type, const char *key, int64_t rev) {
  events *ev = arg;
  pthread_mutex_lock(&ev->mu);
  if (ev->n < 16) {
    ev->type[ev->n] = type;
    snprintf(ev->key[ev->n], sizeof ev->key[0], "%s", key);
    ev->rev[ev->n] = rev;
  }
  ev->n++;
  pthread_mutex_unlock(&ev->mu);
}

static int count(events *ev) {
  pthread_mutex_lock(&ev->mu);
  int n = ev->n;
  pthread_mutex_unlock(&ev->mu);
  return n;
}

static void check_watch(mc_kv *kv, mc_kv *other, int has_watch) {
  events ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
  mc_kv_watcher *w = NULL;
  if (!has_watch) {
    CHECK_RC(mc_kv_watch(kv, "w/", on_event, &ev, &w), MC_ENOTSUP);
    CHECK_HAS(mc_last_error(), "no watch");
    CHECK(w == NULL);
    return;
  }
  CHECK_RC(mc_kv_watch(kv, "w/", on_event, &ev, &w), 0);
  int64_t r1 = 0, r2 = 0;
  CHECK_RC(mc_kv_put(other, "w/x", "1", 1, 0, &r1), 0);
  CHECK_RC(mc_kv_put(other, "other/y", "1", 1, 0, NULL), 0); /* not watched */
  CHECK_RC(mc_kv_put(other, "w/x", "2", 1, 0, &r2), 0);
  CHECK_RC(mc_kv_delete(other, "w/x"), 0);
  uint64_t end = now_ms() + 10000;
  while (count(&ev) < 3 && now_ms() < end)
    sleep_ms(20);
  sleep_ms(300); /* nothing more may come */
  CHECK_EQ_INT(count(&ev), 3);
  /* A revoked lease deletes its keys in one revision: an event for each. */
  int64_t lease = 0;
  CHECK_RC(mc_kv_lease_grant(other, 30, &lease), 0);
  CHECK_RC(mc_kv_put(other, "w/l1", "1", 1, lease, NULL), 0);
  CHECK_RC(mc_kv_put(other, "w/l2", "1", 1, lease, NULL), 0);
  CHECK_RC(mc_kv_lease_revoke(other, lease), 0);
  end = now_ms() + 10000;
  while (count(&ev) < 7 && now_ms() < end)
    sleep_ms(20);
  sleep_ms(300);
  mc_kv_unwatch(w);
  CHECK_EQ_INT(count(&ev), 7);
  CHECK(ev.type[5] == MC_KV_EVENT_DELETE && ev.type[6] == MC_KV_EVENT_DELETE);
  CHECK(ev.rev[5] == ev.rev[6]);
  CHECK((strcmp(ev.key[5], "w/l1") == 0 && strcmp(ev.key[6], "w/l2") == 0) ||
        (strcmp(ev.key[5], "w/l2") == 0 && strcmp(ev.key[6], "w/l1") == 0));
  CHECK(ev.type[0] == MC_KV_EVENT_PUT && ev.type[1] == MC_KV_EVENT_PUT &&
        ev.type[2] == MC_KV_EVENT_DELETE);
  for (int i = 0; i < 3; i++)
    CHECK_STR(ev.key[i], "w/x");
  CHECK_EQ_U64((uint64_t)ev.rev[0], (uint64_t)r1);
  CHECK_EQ_U64((uint64_t)ev.rev[1], (uint64_t)r2);
  CHECK(ev.rev[2] > r2);
  /* After unwatch nothing is delivered. */
  CHECK_RC(mc_kv_put(other, "w/x", "3", 1, 0, NULL), 0);
  sleep_ms(300);
  CHECK_EQ_INT(count(&ev), 7);
  CHECK_RC(mc_kv_delete(other, "w/x"), 0);
  CHECK_RC(mc_kv_delete(other, "other/y"), 0);
  /* A watch left open is stopped by mc_kv_close (the caller's close). */
  static events left = {.mu = PTHREAD_MUTEX_INITIALIZER};
  CHECK_RC(mc_kv_watch(kv, "", on_event, &left, &w), 0);
}

/* ---- bad input ---- */

static void check_bad_input(mc_kv *kv) {
  char longkey[MC_KV_KEY_MAX + 2];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = 0;
  void *v = NULL;
  size_t n = 0;
  int64_t lease = 0;
  mc_kv_watcher *w = NULL;
  CHECK_RC(mc_kv_put(NULL, "k", "v", 1, 0, NULL), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "NULL");
  CHECK_RC(mc_kv_put(kv, NULL, "v", 1, 0, NULL), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "key is NULL");
  CHECK_RC(mc_kv_put(kv, "", "v", 1, 0, NULL), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "empty key");
  CHECK_RC(mc_kv_put(kv, longkey, "v", 1, 0, NULL), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "at most 512");
  CHECK_RC(mc_kv_put(kv, "a\nb", "v", 1, 0, NULL), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "control character");
  CHECK_RC(mc_kv_put(kv, "k", NULL, 3, 0, NULL), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "value is NULL");
  CHECK_RC(mc_kv_put(kv, "k", "v", (size_t)MC_KV_VALUE_MAX + 1, 0, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_get(kv, "", &v, &n, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_get(kv, "k", NULL, &n, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_get(kv, longkey, &v, &n, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_delete(kv, ""), MC_EINVAL);
  CHECK_RC(mc_kv_delete(kv, "\x7f"), MC_EINVAL);
  CHECK_RC(mc_kv_cas(kv, "", 0, "v", 1, 0, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_list(kv, NULL, on_list, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_list(kv, "p", NULL, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_list(kv, "a\tb", on_list, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_lease_grant(kv, 10, NULL), MC_EINVAL);
  CHECK_RC(mc_kv_lease_grant(kv, 100000, &lease), MC_EINVAL);
  CHECK_RC(mc_kv_lease_keepalive(kv, 0), MC_EINVAL);
  CHECK_RC(mc_kv_lease_revoke(kv, -1), MC_EINVAL);
  CHECK_RC(mc_kv_watch(kv, "p", NULL, NULL, &w), MC_EINVAL);
  CHECK_RC(mc_kv_watch(kv, NULL, on_event, NULL, &w), MC_EINVAL);
  CHECK_RC(mc_kv_open(NULL, NULL), MC_EINVAL);
  mc_kv_close(NULL);
  mc_kv_unwatch(NULL);
  mc_kv_free(NULL);
}

/* A handle opened on the URL, without an engine, shares the keys. */
static void check_open_url(const char *url, mc_kv *a) {
  mc_kv *c = NULL;
  CHECK_RC(mc_kv_open_url(url, NULL, &c), 0);
  int64_t rev = 0;
  CHECK_RC(mc_kv_put(c, "url/k", "from-url", 8, 0, &rev), 0);
  expect_value(a, "url/k", "from-url", rev);
  CHECK_RC(mc_kv_cas(a, "url/k", rev, "from-a", 6, 0, &rev), 0);
  expect_value(c, "url/k", "from-a", rev);
  CHECK_RC(mc_kv_delete(c, "url/k"), 0);
  mc_kv_close(c);
  CHECK_RC(mc_kv_open_url(url, "/nonexistent/token", &c), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "cluster token");
  CHECK(c == NULL);
}

void kv_check_all(const char *url, int has_watch) {
  mc_engine *ea = kv_engine(url, "kv-a"), *eb = kv_engine(url, "kv-b");
  mc_kv *a = NULL, *b = NULL;
  CHECK_RC(mc_kv_open(ea, &a), 0);
  CHECK_RC(mc_kv_open(eb, &b), 0);
  check_open_url(url, a);
  check_bad_input(a);
  check_basic(a, b);
  check_list(a, ea);
  check_cas(a, b);
  check_watch(a, b, has_watch);
  check_leases(a, b);
  mc_kv_close(a);
  mc_kv_close(b);
  mc_engine_destroy(ea);
  mc_engine_destroy(eb);
}
