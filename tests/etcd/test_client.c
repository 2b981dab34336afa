/* The etcd v3 client against a real etcd: Put/Range/DeleteRange, prefix
 * listing, Txn compare-and-swap, leases (grant, keepalive, revoke, expiry
 * deleting attached keys) and Watch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd_client.h"
#include "etcd_fixture.h"
#include "net.h"
#include "md_util.h"

typedef struct {
  int n;
  char keys[16][64];
} listing;

static int collect(void *arg, const char *key, size_t klen, const void *val,
                   size_t vlen) {
  listing *l = arg;
  CHECK(l->n < 16 && klen < 64);
  memcpy(l->keys[l->n], key, klen);
  l->keys[l->n][klen] = 0;
  l->n++;
  return 0;
}

typedef struct {
  int puts, dels;
  char last[64];
} events;

static void on_ev(void *arg, int type, const char *key, size_t klen,
                  const void *val, size_t vlen, int64_t rev) {
  events *e = arg;
  if (type == MC_ETCD_PUT)
    e->puts++;
  else
    e->dels++;
  snprintf(e->last, sizeof e->last, "%.*s", (int)klen, key);
}

int main(void) {
  etcd_cluster c;
  if (etcd_cluster_start(&c, 1) != 0)
    return 77;
  mc_etcd *e;
  char err[512];
  CHECK_RC(mc_etcd_create("127.0.0.1", NULL, &e, err, sizeof err), MC_EINVAL);
  printf("bad endpoint: %s\n", err);
  CHECK_RC(mc_etcd_create(c.endpoints, NULL, &e, err, sizeof err), 0);

  /* KV */
  CHECK_RC(mc_etcd_put(e, "/t/a", "1", 1, 0, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_put(e, "/t/b", "22", 2, 0, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_put(e, "/u/c", "3", 1, 0, 2000, err, sizeof err), 0);
  void *v;
  size_t vl;
  int64_t rev = 0;
  CHECK_RC(mc_etcd_get(e, "/t/b", &v, &vl, &rev, 2000, err, sizeof err), 0);
  CHECK(vl == 2 && memcmp(v, "22", 2) == 0 && rev > 0);
  free(v);
  CHECK_RC(mc_etcd_get(e, "/t/zz", &v, &vl, NULL, 2000, err, sizeof err), MC_ENOENT);
  listing l = {0};
  CHECK_RC(mc_etcd_list(e, "/t/", collect, &l, NULL, 2000, err, sizeof err), 0);
  CHECK(l.n == 2 && strcmp(l.keys[0], "/t/a") == 0 && strcmp(l.keys[1], "/t/b") == 0);

  /* CAS: create-if-absent, then swap on the right revision only. */
  int sw = -1;
  CHECK_RC(mc_etcd_cas(e, "/t/lock", 0, "me", 2, 0, &sw, 2000, err, sizeof err), 0);
  CHECK(sw == 1);
  CHECK_RC(mc_etcd_cas(e, "/t/lock", 0, "you", 3, 0, &sw, 2000, err, sizeof err), 0);
  CHECK(sw == 0);
  CHECK_RC(mc_etcd_get(e, "/t/lock", &v, &vl, &rev, 2000, err, sizeof err), 0);
  free(v);
  CHECK_RC(mc_etcd_cas(e, "/t/lock", rev, "you", 3, 0, &sw, 2000, err, sizeof err), 0);
  CHECK(sw == 1);
  CHECK_RC(mc_etcd_cas(e, "/t/lock", rev, "again", 5, 0, &sw, 2000, err, sizeof err), 0);
  CHECK(sw == 0);

  /* Delete one key and a prefix. */
  int64_t n = 0;
  CHECK_RC(mc_etcd_delete(e, "/u/c", 0, &n, 2000, err, sizeof err), 0);
  CHECK(n == 1);
  CHECK_RC(mc_etcd_delete(e, "/t/", 1, &n, 2000, err, sizeof err), 0);
  CHECK(n == 3);

  /* Watch sees puts and deletes under its prefix only. */
  mc_etcd_watch *w;
  CHECK_RC(mc_etcd_watch_open(e, "/w/", 0, &w, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_put(e, "/w/x", "1", 1, 0, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_put(e, "/other", "1", 1, 0, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_delete(e, "/w/x", 0, NULL, 2000, err, sizeof err), 0);
  events ev = {0};
  uint64_t deadline = mc_now_ms() + 5000;
  while (ev.puts + ev.dels < 2 && mc_now_ms() < deadline)
    CHECK(mc_etcd_watch_next(w, on_ev, &ev, &rev, 200, err, sizeof err) >= 0);
  CHECK(ev.puts == 1 && ev.dels == 1 && strcmp(ev.last, "/w/x") == 0);
  mc_etcd_watch_close(w);

  /* Leases: keepalive renews; a key attached to an expired lease goes. */
  int64_t lease = 0, ttl = 0;
  CHECK_RC(mc_etcd_lease_grant(e, 2, &lease, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_put(e, "/l/k", "v", 1, lease, 2000, err, sizeof err), 0);
  for (int i = 0; i < 4; i++) { /* 3 s of keepalives keep it */
    CHECK_RC(mc_etcd_lease_keepalive(e, lease, &ttl, 2000, err, sizeof err), 0);
    CHECK(ttl > 0);
    tu_sleep_ms(750);
  }
  CHECK_RC(mc_etcd_get(e, "/l/k", &v, &vl, NULL, 2000, err, sizeof err), 0);
  free(v);
  tu_sleep_ms(3200); /* no keepalive: expires */
  CHECK_RC(mc_etcd_get(e, "/l/k", &v, &vl, NULL, 2000, err, sizeof err), MC_ENOENT);
  CHECK_RC(mc_etcd_lease_keepalive(e, lease, &ttl, 2000, err, sizeof err), MC_ENOENT);
  printf("expired: %s\n", err);
  /* Put with the dead lease: NOT_FOUND maps to MC_ENOENT. */
  CHECK_RC(mc_etcd_put(e, "/l/k", "v", 1, lease, 2000, err, sizeof err), MC_ENOENT);
  printf("dead lease put: %s\n", err);
  /* Revoke deletes at once. */
  CHECK_RC(mc_etcd_lease_grant(e, 30, &lease, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_put(e, "/l/k2", "v", 1, lease, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_lease_revoke(e, lease, 2000, err, sizeof err), 0);
  CHECK_RC(mc_etcd_get(e, "/l/k2", &v, &vl, NULL, 2000, err, sizeof err), MC_ENOENT);

  mc_etcd_destroy(e);
  etcd_cluster_destroy(&c);
  printf("etcd client ok\n");
  return 0;
}
