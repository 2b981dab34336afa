/* One handle shared by several threads (store.h: every call may be made
 * from any thread concurrently): each thread puts, reads back (copying and
 * zero-copy) and removes its own keys, values up to 3 MiB so the copying
 * calls contend for the staging slots (16 MiB: four); a holder process takes half the
 * replicas, so remote and local reads interleave. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_fixture.h"

enum { NT = 4, ROUNDS = 25 };

static mc_store *g_s;
static char g_holder[MC_STORE_NAME_MAX];
static _Atomic int g_ops;

static void *run(void *arg) {
  int id = (int)(intptr_t)arg;
  size_t max = 3u << 20;
  char *v = malloc(max), *g = malloc(max), *z = malloc(max);
  CHECK(v && g && z);
  CHECK_EQ_INT(mc_store_register_buffer(g_s, z, max), 0);
  const char *pref[1] = {g_holder};
  char key[32];
  for (int i = 0; i < ROUNDS; i++) {
    size_t n = 1 + ((size_t)(id * 7919 + i * 104729) * 4099u) % max;
    snprintf(key, sizeof key, "t%d-%d", id, i);
    fx_fill(v, n, (uint64_t)(id * 1000 + i));
    mc_store_replicate_config rc = {.preferred_segments = pref, .preferred_count = i % 2};
    int prc = mc_store_put(g_s, key, v, n, &rc);
    if (prc) {
      mc_store_stats st = {0};
      mc_store_stats_get(g_s, &st);
      fprintf(stderr, "put %s (%zu bytes): %s; used %llu of %llu, %llu objects\n", key, n,
              mc_store_last_error(), (unsigned long long)st.used,
              (unsigned long long)st.capacity, (unsigned long long)st.objects);
    }
    CHECK_EQ_INT(prc, 0);
    /* LEASE_EXPIRED (a read slower than the short lease on a loaded
     * machine) delivers no data by contract: read again. */
    int64_t got;
    int tries = 0;
    do
      got = mc_store_get(g_s, key, g, max);
    while (got == MC_STORE_LEASE_EXPIRED && ++tries < 10);
    if (got != (int64_t)n) {
      char nm[4][MC_STORE_NAME_MAX];
      mc_store_stats st = {0};
      mc_store_stats_get(g_s, &st);
      fprintf(stderr, "get %s: %s; exist %d; replicas %d; size %zu; evicted %llu\n", key,
              mc_store_last_error(), mc_store_exist(g_s, key),
              mc_store_replica_segments(g_s, key, nm, 4), n,
              (unsigned long long)st.evicted_objects);
    }
    CHECK_EQ_INT(got, n);
    CHECK(memcmp(g, v, n) == 0);
    memset(z, 0, n);
    tries = 0;
    do
      got = mc_store_get_into(g_s, key, z, max);
    while (got == MC_STORE_LEASE_EXPIRED && ++tries < 10);
    CHECK_EQ_INT(got, n);
    CHECK(memcmp(z, v, n) == 0);
    CHECK_EQ_INT(mc_store_remove(g_s, key, 1), 0);
    g_ops += 4;
  }
  CHECK_EQ_INT(mc_store_unregister_buffer(g_s, z), 0);
  free(v);
  free(g);
  free(z);
  return NULL;
}

int main(void) {
  fx_master m;
  /* Short leases: a forced remove keeps the space of a leased object until
   * its lease ends, and with 10 s leases these rounds would fill the pool
   * and make the master evict. */
  fx_master_start(&m, "--default_kv_lease_ttl=500", NULL);
  pid_t h = fx_holder_start(&m, 128u << 20, g_holder, sizeof g_holder);
  g_s = fx_client(&m, 128u << 20);
  pthread_t t[NT];
  for (int i = 0; i < NT; i++)
    CHECK(pthread_create(&t[i], NULL, run, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NT; i++)
    pthread_join(t[i], NULL);
  printf("%d threads, %d calls on one handle: ok\n", NT, (int)g_ops);
  CHECK_EQ_INT(mc_store_list(g_s, NULL, 0, NULL, NULL), 0);
  mc_store_destroy(g_s);
  fx_holder_kill(h, SIGTERM);
  fx_master_stop(&m, SIGTERM);
  return 0;
}
