/* Eviction in mooncake-master: when usage passes the high watermark
 * (0.90) the least recently used objects go, leased, hard-pinned and
 * soft-pinned ones are spared; soft-pinned ones go (last) only when an
 * allocation cannot be met otherwise; hard-pinned never.  One 4 MiB
 * segment, 64 KiB objects (64 slots).  argv[1]: the master. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master_fixture.h"

#define E(x) MCSTORE__ERROR_CODE__##x
#define KiB 1024u
#define CAP (4u * 1024u * 1024u)
#define OBJ (64u * KiB)

static int put_cfg(mf_client *c, const char *key, uint64_t size, int soft, int hard) {
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  cfg.replica_num = 1;
  cfg.with_soft_pin = soft;
  cfg.with_hard_pin = hard;
  int rc = mf_put_start_cfg(c, key, size, &cfg, 0, NULL);
  return rc ? rc : mf_key_call(c, "PutEnd", key, 0);
}

static int present(mf_client *c, const char *key) {
  int ex = 0;
  CHECK_EQ_INT(mf_exist(c, key, &ex), 0);
  return ex;
}

int main(int argc, char **argv) {
  if (argc < 2)
    SKIP("usage: test_master_evict MASTER");
  const char *extra[] = {"--default_kv_lease_ttl=3s", "--eviction_high_watermark_ratio=0.90",
                         "--eviction_ratio=0.05", NULL};
  mf_master m;
  CHECK_OK(mf_start(&m, argv[1], 0, extra));
  mf_client c;
  mf_client_open(&c, m.target);
  uint8_t sid[MCS_CLIENT_ID_LEN];
  mf_sid(sid, 1);
  CHECK_EQ_INT(mf_mount(&c, sid, "seg", "h1", 0x10000000, CAP), 0);
  char key[64];
  /* Hard pins first (lowest offsets), then soft pins, leased, plain. */
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "hard-%d", i);
    CHECK_EQ_INT(put_cfg(&c, key, OBJ, 0, 1), 0);
  }
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "soft-%d", i);
    CHECK_EQ_INT(put_cfg(&c, key, OBJ, 1, 0), 0);
  }
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "leased-%d", i);
    CHECK_EQ_INT(put_cfg(&c, key, OBJ, 0, 0), 0);
  }
  for (int i = 0; i < 40; i++) {
    snprintf(key, sizeof key, "plain-%02d", i);
    CHECK_EQ_INT(put_cfg(&c, key, OBJ, 0, 0), 0);
  }
  /* 55 of 64 slots (86 %): below the watermark, nothing goes. */
  usleep(200 * 1000);
  Mcstore__GetStatsResponse *s = mf_stats(&c);
  CHECK_EQ_U64(s->evicted_objects, 0);
  CHECK_EQ_U64(s->used, 55ull * OBJ);
  MF_FREE(s);
  /* plain-00 becomes recently used (its lease then ends); the leased-*
   * objects get a lease that is still running during the eviction. */
  CHECK_EQ_INT(mf_get(&c, "plain-00", NULL), 0);
  usleep(3100 * 1000);
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "leased-%d", i);
    CHECK_EQ_INT(mf_get(&c, key, NULL), 0);
  }
  /* Past the watermark: 60 slots (93.75 %). */
  for (int i = 40; i < 45; i++) {
    snprintf(key, sizeof key, "plain-%02d", i);
    CHECK_EQ_INT(put_cfg(&c, key, OBJ, 0, 0), 0);
  }
  uint64_t evicted = 0, used = 0;
  for (int i = 0; i < 100; i++) {
    s = mf_stats(&c);
    evicted = s->evicted_objects;
    used = s->used;
    MF_FREE(s);
    if (evicted && used <= CAP * 0.90)
      break;
    usleep(20 * 1000);
  }
  printf("eviction: %llu objects evicted, usage now %.1f %%\n", (unsigned long long)evicted,
         100.0 * (double)used / CAP);
  CHECK(evicted >= 3);
  CHECK(used <= CAP * 0.90);
  /* Spared: pinned, leased, and the recently used plain-00. */
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "hard-%d", i);
    CHECK_MSG(present(&c, key), "%s was evicted", key);
    snprintf(key, sizeof key, "soft-%d", i);
    CHECK_MSG(present(&c, key), "%s was evicted", key);
    snprintf(key, sizeof key, "leased-%d", i);
    CHECK_MSG(present(&c, key), "%s was evicted", key);
  }
  CHECK_MSG(present(&c, "plain-00"), "the recently used plain-00 was evicted");
  /* The evicted ones are the least recently used: plain-01..plain-NN. */
  int gone = 0;
  for (int i = 1; i < 45; i++) {
    snprintf(key, sizeof key, "plain-%02d", i);
    int p = present(&c, key);
    if (i <= (int)evicted)
      CHECK_MSG(!p, "%s (old) survived while newer ones were evicted", key);
    else
      CHECK_MSG(p, "%s (recent) was evicted", key);
    gone += !p;
  }
  CHECK_EQ_INT(gone, (int)evicted);

  /* Soft pins go last, and only when needed: drop everything unpinned,
   * then ask for 3.5 MiB in one piece.  Free: 3.375 MiB after the ten
   * pinned objects; evicting the five soft-pinned (above the hard ones)
   * makes 3.6875 MiB contiguous. */
  usleep(3100 * 1000); /* leases end */
  for (int i = 0; i < 45; i++) {
    snprintf(key, sizeof key, "plain-%02d", i);
    (void)mf_key_call(&c, "Remove", key, 0);
  }
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "leased-%d", i);
    CHECK_EQ_INT(mf_key_call(&c, "Remove", key, 0), 0);
  }
  s = mf_stats(&c);
  CHECK_EQ_U64(s->used, 10ull * OBJ);
  uint64_t ev0 = s->evicted_objects;
  MF_FREE(s);
  CHECK_EQ_INT(put_cfg(&c, "big", 3584 * KiB, 0, 0), 0);
  s = mf_stats(&c);
  CHECK_EQ_U64(s->evicted_objects, ev0 + 5);
  MF_FREE(s);
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "soft-%d", i);
    CHECK_MSG(!present(&c, key), "%s survived", key);
    snprintf(key, sizeof key, "hard-%d", i);
    CHECK_MSG(present(&c, key), "hard-pinned %s was evicted", key);
  }
  /* Hard pins never go: an allocation that would need their space fails
   * (3800 KiB > the 3776 KiB beside them), though "big" is evicted trying. */
  CHECK_EQ_INT(put_cfg(&c, "too-big", 3800 * KiB, 0, 0), E(NO_AVAILABLE_HANDLE));
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "hard-%d", i);
    CHECK(present(&c, key));
  }
  mf_client_close(&c);
  CHECK_EQ_INT(mf_stop(&m, SIGTERM), 0);
  printf("eviction: all checks passed\n");
  return 0;
}
