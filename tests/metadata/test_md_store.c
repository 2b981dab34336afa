/* The publish / keep-alive / republish / watch logic the core runs for every
 * key/value metadata module (core/src/md_store.c), against an in-process
 * fake module (a backend.h table over a small key list) whose faults the
 * test switches: an expired lease, a lost key, an outage.  The real modules
 * are tested against real servers in tests/etcd and tests/http. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h" /* tests/common */
#include "testutil.h"
#include "descriptor.h"
#include "md_store.h"

/* ---- the fake store ---- */

#define NKEYS 16

typedef struct fake {
  pthread_mutex_t mu;
  char key[NKEYS][256];
  char val[NKEYS][4096];
  size_t len[NKEYS];
  int64_t key_lease[NKEYS];
  int used[NKEYS];
  int64_t next_lease, live_lease;
  int down;     /* every call: MC_EPEER */
  int puts, grants, keepalives, touches, revokes, dels;
  int events;   /* watch: pending PUT events to deliver for key[0] */
} fake;

static fake F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int find(const char *key) {
  for (int i = 0; i < NKEYS; i++)
    if (F.used[i] && strcmp(F.key[i], key) == 0)
      return i;
  return -1;
}

static int f_open(const mc_md_host *h, const mc_md_open_args *a, void **ctx, mc_md_conf *conf,
                  char *err, size_t errlen) {
  snprintf(conf->prefix, sizeof conf->prefix, "/t/");
  if (strstr(a->url, "ttl=1"))
    conf->ttl_s = 1;
  *ctx = &F;
  return 0;
}
static void f_close(void *ctx) {}

static int f_put(void *ctx, const char *key, const void *val, size_t len, int64_t lease, int ttl_s,
                 int timeout_ms, char *err, size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int rc = 0;
  if (F.down) {
    snprintf(err, errlen, "fake: down");
    rc = MC_EPEER;
  } else if (lease && lease != F.live_lease) {
    snprintf(err, errlen, "fake: no lease %lld", (long long)lease);
    rc = MC_ENOENT;
  } else {
    int i = find(key);
    for (int j = 0; i < 0 && j < NKEYS; j++)
      if (!F.used[j])
        i = j;
    CHECK(i >= 0 && len < sizeof F.val[0]);
    snprintf(F.key[i], sizeof F.key[i], "%s", key);
    memcpy(F.val[i], val, len);
    F.len[i] = len;
    F.key_lease[i] = lease;
    F.used[i] = 1;
    F.puts++;
  }
  pthread_mutex_unlock(&F.mu);
  return rc;
}

static int f_get(void *ctx, const char *key, void **val, size_t *len, int timeout_ms, char *err,
                 size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int i = F.down ? -2 : find(key);
  int rc = i == -2 ? MC_EPEER : i < 0 ? MC_ENOENT : 0;
  if (rc == 0) {
    *val = malloc(F.len[i]);
    memcpy(*val, F.val[i], F.len[i]);
    *len = F.len[i];
  } else {
    snprintf(err, errlen, "fake: %s", mc_strerror(rc));
  }
  pthread_mutex_unlock(&F.mu);
  return rc;
}

static int f_del(void *ctx, const char *key, int timeout_ms, char *err, size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int i = find(key);
  if (i >= 0)
    F.used[i] = 0;
  F.dels++;
  pthread_mutex_unlock(&F.mu);
  return i >= 0 ? 0 : MC_ENOENT;
}

static int f_grant(void *ctx, int ttl_s, int64_t *lease, int timeout_ms, char *err,
                   size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int rc = F.down ? MC_EPEER : 0;
  if (rc == 0) {
    *lease = F.live_lease = ++F.next_lease;
    F.grants++;
  }
  pthread_mutex_unlock(&F.mu);
  return rc;
}

static int f_keepalive(void *ctx, int64_t lease, int timeout_ms, char *err, size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int rc = F.down ? MC_EPEER : lease == F.live_lease ? 0 : MC_ENOENT;
  F.keepalives++;
  snprintf(err, errlen, "fake: keepalive %s", mc_strerror(rc));
  pthread_mutex_unlock(&F.mu);
  return rc;
}

static int f_revoke(void *ctx, int64_t lease, int timeout_ms, char *err, size_t errlen) {
  pthread_mutex_lock(&F.mu);
  for (int i = 0; i < NKEYS; i++)
    if (F.used[i] && F.key_lease[i] == lease)
      F.used[i] = 0;
  F.revokes++;
  pthread_mutex_unlock(&F.mu);
  return 0;
}

static int f_touch(void *ctx, const char *key, int ttl_s, int timeout_ms, char *err,
                   size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int rc = F.down ? MC_EPEER : find(key) >= 0 ? 0 : MC_ENOENT;
  F.touches++;
  pthread_mutex_unlock(&F.mu);
  return rc;
}

static int f_watch_open(void *ctx, const char *prefix, int64_t rev, void **w, int timeout_ms,
                        char *err, size_t errlen) {
  *w = &F;
  return 0;
}
static int f_watch_next(void *w, mc_md_event_fn fn, void *arg, int64_t *rev, int wait_ms,
                        char *err, size_t errlen) {
  pthread_mutex_lock(&F.mu);
  int n = F.events;
  F.events = 0;
  pthread_mutex_unlock(&F.mu);
  for (int i = 0; i < n; i++)
    fn(arg, MC_MD_EVENT_PUT, "/t/segments/seg-a", strlen("/t/segments/seg-a"), ++*rev);
  if (!n) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return n;
}
static void f_watch_close(void *w) {}

static const char *const schemes[] = {"fake", NULL};

static void base_table(mc_md_backend *t) {
  memset(t, 0, sizeof *t);
  t->abi_major = MC_MD_ABI_MAJOR;
  t->struct_size = sizeof *t;
  t->name = "fake";
  t->schemes = schemes;
  t->open = f_open;
  t->close = f_close;
  t->put = f_put;
  t->get = f_get;
  t->del = f_del;
}

static void reset(void) {
  pthread_mutex_lock(&F.mu);
  memset(F.used, 0, sizeof F.used);
  F.next_lease = F.live_lease = 0;
  F.down = 0;
  F.puts = F.grants = F.keepalives = F.touches = F.revokes = F.dels = F.events = 0;
  pthread_mutex_unlock(&F.mu);
}

static int count(int *field) {
  pthread_mutex_lock(&F.mu);
  int v = *field;
  pthread_mutex_unlock(&F.mu);
  return v;
}

/* Waits up to ms for cond. */
#define WAIT_FOR(cond, ms)                                                     \
  do {                                                                         \
    for (int w_ = 0; w_ < (ms) / 10 && !(cond); w_++) {                        \
      struct timespec ts_ = {0, 10 * 1000000L};                                \
      nanosleep(&ts_, NULL);                                                   \
    }                                                                          \
    CHECK(cond);                                                               \
  } while (0)

static const char *desc_json(void) {
  static char buf[1024];
  mc_seg_desc d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "seg-a");
  char *json = NULL;
  size_t len = 0;
  CHECK_RC(mc_desc_encode(&d, &json, &len), 0);
  CHECK(len < sizeof buf);
  memcpy(buf, json, len);
  buf[len] = 0;
  free(json);
  return buf;
}

static atomic_int changes;
static void on_change(void *arg, const char *seg) {
  if (strcmp(seg, "seg-a") == 0)
    atomic_fetch_add(&changes, 1);
}

int main(void) {
  const char *json = desc_json();
  size_t jl = strlen(json);
  mc_metadata_args args = {.url = "fake://x?ttl=1", .timeout_ms = 500,
                           .on_change = on_change};
  char err[256];

  /* Leases: publish grants one and puts with it; a lost lease is
   * re-granted and the descriptor republished by the keep-alive thread. */
  {
    reset();
    mc_md_backend t;
    base_table(&t);
    t.lease_grant = f_grant;
    t.lease_keepalive = f_keepalive;
    t.lease_revoke = f_revoke;
    t.watch_open = f_watch_open;
    t.watch_next = f_watch_next;
    t.watch_close = f_watch_close;
    mc_md_store *m = NULL;
    CHECK_RC(mc_md_store_open(&t, &args, &m, err, sizeof err), 0);
    CHECK_RC(mc_md_store_publish(m, "seg-a", json, jl), 0);
    CHECK(count(&F.grants) == 1 && count(&F.puts) == 1);
    char *got = NULL;
    size_t gl = 0;
    CHECK_RC(mc_md_store_fetch(m, "seg-a", &got, &gl), 0);
    CHECK(gl == jl && memcmp(got, json, jl) == 0);
    free(got);
    CHECK_RC(mc_md_store_fetch(m, "nope", &got, &gl), MC_ENOENT);
    WAIT_FOR(count(&F.keepalives) >= 1, 2000);
    /* The lease expires (say, during an outage): a new one, republished. */
    pthread_mutex_lock(&F.mu);
    F.live_lease = 999;
    memset(F.used, 0, sizeof F.used);
    pthread_mutex_unlock(&F.mu);
    WAIT_FOR(count(&F.grants) == 2 && count(&F.puts) == 2, 3000);
    CHECK_RC(mc_md_store_fetch(m, "seg-a", &got, &gl), 0);
    free(got);
    /* An outage: keep-alive fails, nothing is lost; back, it goes on. */
    pthread_mutex_lock(&F.mu);
    F.down = 1;
    int ka = F.keepalives;
    pthread_mutex_unlock(&F.mu);
    WAIT_FOR(count(&F.keepalives) >= ka + 2, 3000);
    pthread_mutex_lock(&F.mu);
    F.down = 0;
    ka = F.keepalives;
    pthread_mutex_unlock(&F.mu);
    WAIT_FOR(count(&F.keepalives) >= ka + 1, 3000);
    CHECK(count(&F.grants) == 2);
    /* Watch: an event for a watched segment reaches on_change. */
    CHECK_RC(mc_md_store_watch(m, "seg-a"), 0);
    pthread_mutex_lock(&F.mu);
    F.events = 2;
    pthread_mutex_unlock(&F.mu);
    WAIT_FOR(atomic_load(&changes) >= 2, 3000);
    /* kv keys live beside the segments, without the lease. */
    CHECK_RC(mc_md_store_kv_put(m, "k", "v", 1), 0);
    void *v = NULL;
    size_t vl = 0;
    CHECK_RC(mc_md_store_kv_get(m, "k", &v, &vl), 0);
    CHECK(vl == 1 && memcmp(v, "v", 1) == 0);
    free(v);
    CHECK(find("/t/kv/k") >= 0 && F.key_lease[find("/t/kv/k")] == 0);
    CHECK_RC(mc_md_store_kv_delete(m, "k"), 0);
    CHECK_RC(mc_md_store_kv_delete(m, "k"), MC_ENOENT);
    /* Close revokes the lease: the segment goes at once. */
    mc_md_store_close(m);
    CHECK(count(&F.revokes) == 1 && find("/t/segments/seg-a") < 0);
  }

  /* Per-key TTLs: refreshed by touch; a key the store lost is put again;
   * no watch offered. */
  {
    reset();
    mc_md_backend t;
    base_table(&t);
    t.touch = f_touch;
    mc_md_store *m = NULL;
    CHECK_RC(mc_md_store_open(&t, &args, &m, err, sizeof err), 0);
    CHECK_RC(mc_md_store_watch(m, "seg-a"), MC_ENOTSUP);
    CHECK_RC(mc_md_store_publish(m, "seg-a", json, jl), 0);
    WAIT_FOR(count(&F.touches) >= 1, 2000);
    pthread_mutex_lock(&F.mu);
    memset(F.used, 0, sizeof F.used); /* the server restarted empty */
    pthread_mutex_unlock(&F.mu);
    WAIT_FOR(find("/t/segments/seg-a") >= 0, 3000);
    CHECK(count(&F.puts) >= 2);
    /* Unpublish deletes; close deletes nothing more. */
    CHECK_RC(mc_md_store_unpublish(m, "seg-a"), 0);
    CHECK(find("/t/segments/seg-a") < 0);
    CHECK_RC(mc_md_store_publish(m, "seg-a", json, jl), 0);
    mc_md_store_close(m);
    CHECK(find("/t/segments/seg-a") < 0);
  }

  /* Down from the start: publish reports it, keeps the descriptor and
   * writes it when the store answers. */
  {
    reset();
    mc_md_backend t;
    base_table(&t);
    t.touch = f_touch;
    F.down = 1;
    mc_md_store *m = NULL;
    CHECK_RC(mc_md_store_open(&t, &args, &m, err, sizeof err), 0);
    CHECK_RC(mc_md_store_publish(m, "seg-a", json, jl), MC_EPEER);
    pthread_mutex_lock(&F.mu);
    F.down = 0;
    pthread_mutex_unlock(&F.mu);
    WAIT_FOR(find("/t/segments/seg-a") >= 0, 3000);
    /* A malformed value under a segment key is refused, naming the key. */
    pthread_mutex_lock(&F.mu);
    int i = find("/t/segments/seg-a");
    memcpy(F.val[i], "{oops", 5);
    F.len[i] = 5;
    pthread_mutex_unlock(&F.mu);
    char *got = NULL;
    size_t gl = 0;
    CHECK_RC(mc_md_store_fetch(m, "seg-a", &got, &gl), MC_EPROTO);
    mc_md_store_close(m);
  }
  printf("md_store tests passed\n");
  return 0;
}
