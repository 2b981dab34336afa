/* The master killed (SIGKILL) and restarted on the same port: clients
 * that stay up remount their segments by themselves (NEED_REMOUNT in the
 * ping answer) without restarting, and the pool works again: puts land in
 * the remounted segments (this process's and a holder process's) and read
 * back byte for byte.  Objects do not survive a master restart (metadata
 * lives in the master only), which the test states too. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_fixture.h"

int main(void) {
  fx_master m;
  fx_master_start(&m, NULL);
  char h[MC_STORE_NAME_MAX];
  pid_t hp = fx_holder_start(&m, 32u << 20, h, sizeof h);
  mc_store *s = fx_client(&m, 32u << 20);
  mc_store *pure = fx_client(&m, 0);
  enum { VSZ = 1 << 20 };
  char *v = malloc(VSZ), *g = malloc(VSZ);
  CHECK(v && g);
  fx_fill(v, VSZ, 1);
  CHECK_EQ_INT(mc_store_put(s, "before", v, VSZ, NULL), 0);
  CHECK_EQ_U64(mc_store_remount_count(s), 0);

  fx_master_stop(&m, SIGKILL);
  /* While it is down: a clear RPC error, no hang. */
  uint64_t t0 = fx_ms();
  int64_t r = mc_store_get(pure, "before", g, VSZ);
  CHECK_MSG(r == MC_STORE_RPC_FAIL || r == MC_STORE_RPC_TIMEOUT, "get with no master: %s",
            mc_store_errname((int)r));
  CHECK(fx_ms() - t0 < 8000);
  sleep(1);
  fx_master_restart(&m);

  /* The ping thread sees NEED_REMOUNT within a few seconds. */
  uint64_t deadline = fx_ms() + 20000;
  while (fx_ms() < deadline && mc_store_remount_count(s) == 0)
    usleep(100000);
  CHECK_MSG(mc_store_remount_count(s) >= 1, "no remount within 20 s");
  mc_store_stats st;
  deadline = fx_ms() + 20000;
  do {
    usleep(100000);
    if (mc_store_stats_get(pure, &st)) /* its channel may still back off */
      st.segments = 0;
  } while (fx_ms() < deadline && st.segments < 2);
  CHECK_EQ_U64(st.segments, 2); /* this process's and the holder's */
  printf("remounted after %u remount(s); pool: %llu segments, %llu bytes\n",
         (unsigned)mc_store_remount_count(s), (unsigned long long)st.segments,
         (unsigned long long)st.capacity);
  CHECK_EQ_INT(mc_store_exist(pure, "before"), 0); /* metadata was the old master's */

  /* Puts into both remounted segments, read back by the pure client. */
  const char *segs[2] = {mc_store_segment_name(s), h};
  char key[32], names[2][MC_STORE_NAME_MAX];
  for (int i = 0; i < 8; i++) {
    snprintf(key, sizeof key, "after-%d", i);
    fx_fill(v, VSZ, 100u + (uint64_t)i);
    mc_store_replicate_config rc = {.preferred_segments = &segs[i % 2], .preferred_count = 1};
    CHECK_EQ_INT(mc_store_put(pure, key, v, VSZ, &rc), 0);
    CHECK_EQ_INT(mc_store_replica_segments(pure, key, names, 2), 1);
    CHECK_STR(names[0], segs[i % 2]);
    memset(g, 0, VSZ);
    CHECK_EQ_INT(mc_store_get(pure, key, g, VSZ), VSZ);
    CHECK(memcmp(g, v, VSZ) == 0);
  }
  printf("put/get into remounted segments: ok\n");
  mc_store_destroy(pure);
  mc_store_destroy(s);
  fx_holder_kill(hp, SIGTERM);
  fx_master_stop(&m, SIGTERM);
  free(v);
  free(g);
  return 0;
}
