/* The master's state under concurrency, in-process (no RPC): 4 threads
 * put, upsert, read, remove and revoke random keys while another mounts
 * and unmounts segments and the eviction thread runs at a low watermark.
 * Afterwards, with every object removed and every lease over, the usage
 * counter is back to zero and each allocator is empty: no space leaked or
 * freed twice.  Bounded to about 3 s.  (Run it under
 * -Db_sanitize=thread for the data-race check.) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "master.h"

static mcs_master *m;
static uint8_t cid[MCS_CLIENT_ID_LEN] = {0x57, 0x12};
static atomic_int stop;
static atomic_long ops, refused;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void *worker(void *arg) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(uintptr_t)arg + 1;
  char key[32];
  mcs_rep_out out[MCS_MAX_REPLICAS];
  while (!atomic_load(&stop)) {
    int n = 0;
    snprintf(key, sizeof key, "k%llu", (unsigned long long)(rnd(&s) % 2000));
    size_t kl = strlen(key);
    mcs_put_cfg cfg = {.replica_num = 1 + (uint32_t)(rnd(&s) % 3),
                       .soft_pin = rnd(&s) % 10 == 0};
    int rc = 0;
    switch (rnd(&s) % 8) {
    case 0:
    case 1:
      rc = mcs_put_start(m, cid, key, kl, 1 + rnd(&s) % 200000, &cfg, 0, out, &n);
      mcs_reps_release(out, n);
      if (!rc)
        rc = rnd(&s) % 4 ? mcs_put_end(m, cid, key, kl) : mcs_put_revoke(m, cid, key, kl);
      break;
    case 2:
      rc = mcs_put_start(m, cid, key, kl, 1 + rnd(&s) % 100000, &cfg, 1, out, &n);
      mcs_reps_release(out, n);
      if (!rc)
        rc = mcs_put_end(m, cid, key, kl);
      break;
    case 3:
    case 4:
      rc = mcs_get_replicas(m, key, kl, out, &n);
      for (int i = 0; i < n; i++)
        CHECK(out[i].size > 0 && out[i].addr >= out[i].seg->base &&
              out[i].addr + out[i].size <= out[i].seg->base + out[i].seg->size);
      mcs_reps_release(out, n);
      break;
    case 5:
      rc = mcs_remove(m, key, kl, (int)(rnd(&s) % 2));
      break;
    default: {
      int ex;
      rc = mcs_exist(m, key, kl, &ex);
      break;
    }
    }
    atomic_fetch_add(&ops, 1);
    if (rc)
      atomic_fetch_add(&refused, 1);
  }
  return NULL;
}

static void *churn(void *arg) {
  /* segments 10..13 come and go; 0..3 stay */
  int k = 0;
  while (!atomic_load(&stop)) {
    uint8_t sid[MCS_CLIENT_ID_LEN] = {0xee, (uint8_t)(10 + k % 4)};
    char name[16];
    snprintf(name, sizeof name, "churn%d", k % 4);
    CHECK_EQ_INT(mcs_mount(m, cid, sid, name, "hc", "tcp", (uint64_t)(20 + k % 4) << 30, 8 << 20), 0);
    usleep(20 * 1000);
    CHECK_EQ_INT(mcs_unmount(m, cid, sid), 0);
    k++;
  }
  return NULL;
}

int main(void) {
  mcs_master_config cfg;
  mcs_config_defaults(&cfg);
  cfg.client_ttl_ms = 3600000;
  cfg.default_kv_lease_ttl_ms = 50;
  cfg.eviction_high_watermark_ratio = 0.6;
  cfg.eviction_ratio = 0.1;
  cfg.put_start_discard_timeout_ms = 1;
  cfg.put_start_release_timeout_ms = 100;
  CHECK_OK(mcs_master_create(&cfg, &m));
  CHECK_OK(mcs_master_start(m));
  int st;
  mcs_ping(m, cid, 0, &st);
  const char *hosts[] = {"h0", "h0", "h1", "h2"};
  for (int i = 0; i < 4; i++) {
    uint8_t sid[MCS_CLIENT_ID_LEN] = {0xaa, (uint8_t)i};
    char name[16];
    snprintf(name, sizeof name, "seg%d", i);
    CHECK_EQ_INT(mcs_mount(m, cid, sid, name, hosts[i], "tcp", (uint64_t)(i + 1) << 30, 16 << 20), 0);
  }
  pthread_t t[5];
  for (long i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, worker, (void *)(i + 1));
  pthread_create(&t[4], NULL, churn, NULL);
  sleep(3);
  atomic_store(&stop, 1);
  for (int i = 0; i < 5; i++)
    pthread_join(t[i], NULL);
  /* Drain: leases and release timeouts end, then remove everything. */
  usleep(300 * 1000);
  uint64_t removed = 0;
  CHECK_EQ_INT(mcs_remove_many(m, NULL, 1, &removed), 0);
  usleep(300 * 1000); /* pending puts and deferred frees are reclaimed */
  mcs_reclaim(m);
  CHECK_EQ_U64(atomic_load(&m->nobjects), 0);
  CHECK_EQ_U64(atomic_load(&m->npending), 0);
  CHECK_EQ_U64(atomic_load(&m->used), 0);
  CHECK_EQ_U64(atomic_load(&m->capacity), 4ull * (16 << 20));
  for (uint32_t i = 0; i < m->nsegs; i++) {
    char why[200] = "";
    CHECK_EQ_U64(mcs_alloc_used(m->segs[i]->alloc), 0);
    CHECK_MSG(mcs_alloc_check(m->segs[i]->alloc, why, sizeof why) == 0, "%s", why);
    CHECK_EQ_U64(mcs_alloc_free_ranges(m->segs[i]->alloc), 1);
    CHECK_EQ_INT(atomic_load(&m->segs[i]->refs), 1); /* the registry's only */
  }
  printf("master stress: %ld operations (%ld refused as expected under contention), "
         "%llu evicted, usage back to 0\n",
         atomic_load(&ops), atomic_load(&refused), (unsigned long long)atomic_load(&m->evicted));
  CHECK(atomic_load(&ops) > 1000);
  CHECK(atomic_load(&m->evicted) > 0);
  mcs_master_destroy(m);
  return 0;
}
