/* Replicas and client death: three segment holders (two processes and
 * this one); replicas of one object land on distinct segments, a preferred
 * segment is honoured; then a holder is killed with SIGKILL while it holds
 * replicas: objects with another replica stay readable (at once, by
 * failing over, and after the master expired the client), objects whose
 * only replica was there disappear (OBJECT_NOT_FOUND), never half-read. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_fixture.h"

enum { N = 30, VSZ = 300000 };

int main(void) {
  fx_master m;
  fx_master_start(&m, "--client_ttl=2", NULL);
  char h1[MC_STORE_NAME_MAX], h2[MC_STORE_NAME_MAX];
  pid_t p1 = fx_holder_start(&m, 64u << 20, h1, sizeof h1);
  pid_t p2 = fx_holder_start(&m, 64u << 20, h2, sizeof h2);
  mc_store *s = fx_client(&m, 64u << 20);
  const char *me = mc_store_segment_name(s);
  char *v = malloc(VSZ), *g = malloc(VSZ);
  CHECK(v && g);

  /* Three replicas on three distinct segments. */
  int nboth = 0, nsolo = 0;
  char names[4][MC_STORE_NAME_MAX], key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "r3-%d", i);
    fx_fill(v, VSZ, (uint64_t)i);
    mc_store_replicate_config rc = {.replica_num = 3};
    CHECK_EQ_INT(mc_store_put(s, key, v, VSZ, &rc), 0);
    CHECK_EQ_INT(mc_store_replica_segments(s, key, names, 4), 3);
    CHECK(strcmp(names[0], names[1]) && strcmp(names[0], names[2]) &&
          strcmp(names[1], names[2]));
    nboth++;
  }
  /* More replicas than segments: best effort, one per segment. */
  mc_store_replicate_config r5 = {.replica_num = 5};
  CHECK_EQ_INT(mc_store_put(s, "r5", v, VSZ, &r5), 0);
  CHECK_EQ_INT(mc_store_replica_segments(s, "r5", names, 4), 3);
  /* Preferred segment: one replica, on holder 1. */
  const char *pref[1] = {h1};
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "solo-%d", i);
    fx_fill(v, VSZ, 1000u + (uint64_t)i);
    mc_store_replicate_config rc = {.replica_num = 1, .preferred_segments = pref,
                                    .preferred_count = 1};
    CHECK_EQ_INT(mc_store_put(s, key, v, VSZ, &rc), 0);
    CHECK_EQ_INT(mc_store_replica_segments(s, key, names, 4), 1);
    CHECK_STR(names[0], h1);
    nsolo++;
  }
  /* Two replicas, one of them on holder 1 (preferred), one elsewhere. */
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "r2-%d", i);
    fx_fill(v, VSZ, 2000u + (uint64_t)i);
    mc_store_replicate_config rc = {.replica_num = 2, .preferred_segments = pref,
                                    .preferred_count = 1};
    CHECK_EQ_INT(mc_store_put(s, key, v, VSZ, &rc), 0);
    CHECK_EQ_INT(mc_store_replica_segments(s, key, names, 4), 2);
    CHECK(!strcmp(names[0], h1) || !strcmp(names[1], h1));
  }
  printf("placement: %d x3 distinct, %d preferred: ok (me %s, holders %s %s)\n", nboth, nsolo,
         me, h1, h2);

  /* kill -9 holder 1 while it holds replicas. */
  fx_holder_kill(p1, SIGKILL);
  /* At once: two-replica objects are read from the survivor (the dead
   * replica fails over); one-replica objects fail cleanly. */
  int ok2 = 0, gone = 0;
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "r2-%d", i);
    fx_fill(v, VSZ, 2000u + (uint64_t)i);
    memset(g, 0, VSZ);
    CHECK_EQ_INT(mc_store_get(s, key, g, VSZ), VSZ);
    CHECK(memcmp(g, v, VSZ) == 0);
    ok2++;
  }
  snprintf(key, sizeof key, "solo-0");
  int64_t r = mc_store_get(s, key, g, VSZ);
  CHECK_MSG(r == MC_STORE_TRANSFER_FAIL || r == MC_STORE_OBJECT_NOT_FOUND,
            "get of a dead-only replica: %s", mc_store_errname((int)r));
  /* After --client_ttl the master drops holder 1's segment. */
  uint64_t deadline = fx_ms() + 15000;
  while (fx_ms() < deadline && mc_store_exist(s, "solo-0") != 0)
    usleep(200000);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "solo-%d", i);
    CHECK_EQ_INT(mc_store_exist(s, key), 0);
    CHECK_EQ_INT(mc_store_get(s, key, g, VSZ), MC_STORE_OBJECT_NOT_FOUND);
    gone++;
    snprintf(key, sizeof key, "r2-%d", i);
    fx_fill(v, VSZ, 2000u + (uint64_t)i);
    CHECK_EQ_INT(mc_store_replica_segments(s, key, names, 4), 1);
    CHECK(strcmp(names[0], h1) != 0);
    CHECK_EQ_INT(mc_store_get(s, key, g, VSZ), VSZ);
    CHECK(memcmp(g, v, VSZ) == 0);
    snprintf(key, sizeof key, "r3-%d", i);
    fx_fill(v, VSZ, (uint64_t)i);
    CHECK_EQ_INT(mc_store_replica_segments(s, key, names, 4), 2);
    CHECK_EQ_INT(mc_store_get(s, key, g, VSZ), VSZ);
    CHECK(memcmp(g, v, VSZ) == 0);
  }
  mc_store_stats st;
  CHECK_EQ_INT(mc_store_stats_get(s, &st), 0);
  CHECK(st.expired_clients >= 1);
  CHECK_EQ_U64(st.segments, 2);
  printf("after kill -9: %d two-replica objects readable, %d one-replica objects gone, "
         "%llu client(s) expired\n", ok2, gone, (unsigned long long)st.expired_clients);
  /* New puts go to the survivors only. */
  CHECK_EQ_INT(mc_store_put(s, "after", v, VSZ, &r5), 0);
  CHECK_EQ_INT(mc_store_replica_segments(s, "after", names, 4), 2);

  mc_store_destroy(s);
  fx_holder_kill(p2, SIGTERM);
  fx_master_stop(&m, SIGTERM);
  free(v);
  free(g);
  return 0;
}
