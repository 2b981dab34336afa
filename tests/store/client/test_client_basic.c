/* Store client against a real master: put/get from 1 byte to 64 MiB with
 * byte checks, read by another client (remote reads over tcp/shm) and by
 * the writer (local replica); get_into, get_into_ranges, batch forms,
 * upsert, hard and soft pins, exist, get_size, list, remove,
 * remove_by_regex, remove_all. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sc_fixture.h"

static int count_key(void *arg, const char *key, uint64_t size) {
  (void)key;
  (void)size;
  ++*(int *)arg;
  return 0;
}

int main(void) {
  fx_master m;
  fx_master_start(&m, NULL);
  char hname[MC_STORE_NAME_MAX];
  /* A second process holds a segment too: objects land in either. */
  pid_t holder = fx_holder_start(&m, 160u << 20, hname, sizeof hname);
  mc_store *w = fx_client(&m, 160u << 20); /* writer, with a segment */
  mc_store *r = fx_client(&m, 0);          /* pure reader */
  printf("writer %s, holder %s\n", mc_store_segment_name(w), hname);

  static const size_t sizes[] = {1, 7, 4096, 65537, 1u << 20, (16u << 20) + 3, 64u << 20};
  size_t maxn = 64u << 20;
  char *v = malloc(maxn), *g = malloc(maxn);
  CHECK(v && g);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char key[64];
    snprintf(key, sizeof key, "obj-%zu", n);
    fx_fill(v, n, n);
    /* Alternate placement between the two segments. */
    const char *pref[1] = {i % 2 ? hname : mc_store_segment_name(w)};
    mc_store_replicate_config rc = {.replica_num = 1, .preferred_segments = pref,
                                    .preferred_count = 1};
    CHECK_EQ_INT(mc_store_put(w, key, v, n, &rc), 0);
    CHECK_EQ_INT(mc_store_put(w, key, v, n, &rc), MC_STORE_OBJECT_ALREADY_EXISTS);
    char seg[2][MC_STORE_NAME_MAX];
    CHECK_EQ_INT(mc_store_replica_segments(r, key, seg, 2), 1);
    CHECK_STR(seg[0], pref[0]);
    CHECK_EQ_INT(mc_store_get_size(r, key), n);
    CHECK_EQ_INT(mc_store_exist(r, key), 1);
    memset(g, 0, n);
    CHECK_EQ_INT(mc_store_get(r, key, g, maxn), n);
    CHECK_MSG(memcmp(v, g, n) == 0, "remote read of %zu bytes differs", n);
    memset(g, 0, n);
    CHECK_EQ_INT(mc_store_get(w, key, g, maxn), n);
    CHECK_MSG(memcmp(v, g, n) == 0, "writer's read of %zu bytes differs", n);
    if (n > 1)
      CHECK_EQ_INT(mc_store_get(r, key, g, n - 1), MC_STORE_BUFFER_OVERFLOW);
    void *a;
    size_t an;
    CHECK_EQ_INT(mc_store_get_alloc(r, key, &a, &an), 0);
    CHECK(an == n && memcmp(a, v, n) == 0);
    mc_store_free(a);
  }
  printf("put/get 1 B .. 64 MiB: ok\n");

  /* Zero-copy: registered buffers, and ranges of one object. */
  size_t zn = 8u << 20;
  char *zb = malloc(zn), *zg = malloc(zn);
  CHECK(zb && zg);
  CHECK_EQ_INT(mc_store_register_buffer(r, zb, zn), 0);
  CHECK_EQ_INT(mc_store_register_buffer(r, zg, zn), 0);
  fx_fill(zb, zn, 77);
  CHECK_EQ_INT(mc_store_put_from(r, "zc", zb, zn, NULL), 0);
  CHECK_EQ_INT(mc_store_get(w, "zc", g, zn), zn); /* copying read on the other */
  CHECK(memcmp(g, zb, zn) == 0);
  memset(zg, 0, zn);
  CHECK_EQ_INT(mc_store_get_into(r, "zc", zg, zn), zn);
  CHECK(memcmp(zg, zb, zn) == 0);
  mc_store_range rg[3] = {{0, 10, zg}, {4u << 20, 4096, zg + 100}, {zn - 1, 1, zg + 9000}};
  memset(zg, 0, 10000);
  CHECK_EQ_INT(mc_store_get_into_ranges(r, "zc", rg, 3), 10 + 4096 + 1);
  CHECK(memcmp(zg, zb, 10) == 0 && memcmp(zg + 100, zb + (4u << 20), 4096) == 0 &&
        zg[9000] == zb[zn - 1]);
  mc_store_range bad = {zn - 1, 2, zg};
  CHECK_EQ_INT(mc_store_get_into_ranges(r, "zc", &bad, 1), MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_get_into(r, "zc", g, zn), MC_STORE_INVALID_PARAMS); /* g unregistered */
  CHECK_EQ_INT(mc_store_put_from(r, "zc2", g, 100, NULL), MC_STORE_INVALID_PARAMS);
  printf("zero-copy and ranges: ok\n");

  /* Batch forms. */
  enum { NB = 40 };
  char kb[NB][32];
  const char *keys[NB];
  const void *vals[NB];
  void *bufs[NB];
  size_t bsz[NB], gsz[NB];
  int res[NB], ex[NB];
  int64_t gres[NB];
  for (int i = 0; i < NB; i++) {
    snprintf(kb[i], sizeof kb[i], "batch-%02d", i);
    keys[i] = kb[i];
    bsz[i] = 1000 + (size_t)i * 3001;
    vals[i] = v + i * 100;
    bufs[i] = malloc(bsz[i]);
    gsz[i] = bsz[i];
  }
  fx_fill(v, 1u << 20, 5);
  CHECK_EQ_INT(mc_store_batch_put(w, keys, vals, bsz, NB, NULL, res), 0);
  for (int i = 0; i < NB; i++)
    CHECK_EQ_INT(res[i], 0);
  CHECK_EQ_INT(mc_store_batch_get(r, keys, bufs, gsz, NB, gres), 0);
  for (int i = 0; i < NB; i++) {
    CHECK_EQ_INT(gres[i], bsz[i]);
    CHECK(memcmp(bufs[i], vals[i], bsz[i]) == 0);
  }
  const char *ek[3] = {"batch-00", "nope", "batch-39"};
  CHECK_EQ_INT(mc_store_batch_exist(r, ek, 3, ex), 0);
  CHECK(ex[0] == 1 && ex[1] == 0 && ex[2] == 1);
  int nk = 0;
  CHECK_EQ_INT(mc_store_list(r, "^batch-", 0, count_key, &nk), NB);
  CHECK_EQ_INT(nk, NB);
  printf("batch put/get/exist, list: ok\n");

  /* Upsert replaces; a missing key is put. */
  CHECK_EQ_INT(mc_store_upsert(w, "batch-00", "new value", 9, NULL), 0);
  char small[64];
  CHECK_EQ_INT(mc_store_get(r, "batch-00", small, sizeof small), 9);
  CHECK(memcmp(small, "new value", 9) == 0);
  CHECK_EQ_INT(mc_store_upsert(w, "fresh", "abc", 3, NULL), 0);
  CHECK_EQ_INT(mc_store_get(r, "fresh", small, sizeof small), 3);

  /* Pins travel with the put: a hard-pinned value cannot be upserted nor
   * removed without force. */
  mc_store_replicate_config hard = {.with_hard_pin = 1};
  CHECK_EQ_INT(mc_store_put(w, "pinned", "p", 1, &hard), 0);
  int prm = mc_store_remove(w, "pinned", 0);
  CHECK_MSG(prm < 0, "remove of a hard-pinned object without force: %d", prm);
  CHECK_EQ_INT(mc_store_upsert(w, "pinned", "q", 1, NULL), MC_STORE_INVALID_WRITE);
  CHECK_EQ_INT(mc_store_exist(r, "pinned"), 1);
  CHECK_EQ_INT(mc_store_remove(w, "pinned", 1), 0);
  mc_store_replicate_config soft = {.with_soft_pin = 1};
  CHECK_EQ_INT(mc_store_put(w, "soft", "s", 1, &soft), 0);
  CHECK_EQ_INT(mc_store_remove(w, "soft", 0), 0);

  /* Removal (force: the gets above left leases). */
  CHECK_EQ_INT(mc_store_remove(w, "fresh", 1), 0);
  CHECK_EQ_INT(mc_store_exist(r, "fresh"), 0);
  CHECK_EQ_INT(mc_store_get(r, "fresh", small, sizeof small), MC_STORE_OBJECT_NOT_FOUND);
  CHECK_EQ_INT(mc_store_remove(w, "fresh", 1), MC_STORE_OBJECT_NOT_FOUND);
  CHECK_EQ_INT(mc_store_remove_by_regex(w, "^batch-1[0-9]$", 1), 10);
  CHECK_EQ_INT(mc_store_exist(r, "batch-15"), 0);
  CHECK_EQ_INT(mc_store_exist(r, "batch-25"), 1);
  int64_t left = mc_store_remove_all(w, 1);
  CHECK_MSG(left == NB - 10 + 7 + 1, "remove_all removed %lld", (long long)left);
  nk = 0;
  CHECK_EQ_INT(mc_store_list(r, NULL, 0, count_key, &nk), 0);
  printf("upsert, remove, remove_by_regex, remove_all: ok\n");

  for (int i = 0; i < NB; i++)
    free(bufs[i]);
  CHECK_EQ_INT(mc_store_unregister_buffer(r, zb), 0);
  CHECK_EQ_INT(mc_store_unregister_buffer(r, zb), MC_STORE_INVALID_PARAMS);
  mc_store_destroy(r);
  mc_store_destroy(w);
  free(zb);
  free(zg);
  free(v);
  free(g);
  fx_holder_kill(holder, SIGTERM);
  fx_master_stop(&m, SIGTERM);
  return 0;
}
