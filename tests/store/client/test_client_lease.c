/* Leases seen from the client: a read lease blocks remove (unless forced);
 * a get whose lease ran out before its read finished returns
 * LEASE_EXPIRED and no data (master with a 1 ms lease and a 32 MiB value
 * read from another process's segment, which takes longer). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_fixture.h"

enum { VSZ = 32 << 20 };

int main(void) {
  char *v = malloc(VSZ), *g = malloc(VSZ);
  CHECK(v && g);
  fx_fill(v, VSZ, 3);

  /* 1. A lease (default 10 s here: 3 s) blocks remove. */
  fx_master m;
  fx_master_start(&m, "--default_kv_lease_ttl=3000", NULL);
  mc_store *s = fx_client(&m, 64u << 20);
  CHECK_EQ_INT(mc_store_put(s, "leased", v, 1000, NULL), 0);
  CHECK_EQ_INT(mc_store_remove(s, "leased", 0), 0); /* no reader yet: removable */
  CHECK_EQ_INT(mc_store_put(s, "leased", v, 1000, NULL), 0);
  CHECK_EQ_INT(mc_store_get(s, "leased", g, VSZ), 1000);
  CHECK_EQ_INT(mc_store_remove(s, "leased", 0), MC_STORE_OBJECT_HAS_LEASE);
  CHECK_HAS(mc_store_last_error(), "leased");
  CHECK_EQ_INT(mc_store_exist(s, "leased"), 1);
  CHECK_EQ_INT(mc_store_remove_all(s, 0), 0);
  CHECK_EQ_INT(mc_store_remove(s, "leased", 1), 0); /* forced */
  CHECK_EQ_INT(mc_store_exist(s, "leased"), 0);
  /* ... and ends with the lease. */
  CHECK_EQ_INT(mc_store_put(s, "later", v, 1000, NULL), 0);
  CHECK_EQ_INT(mc_store_get(s, "later", g, VSZ), 1000);
  CHECK_EQ_INT(mc_store_remove(s, "later", 0), MC_STORE_OBJECT_HAS_LEASE);
  sleep(4);
  CHECK_EQ_INT(mc_store_remove(s, "later", 0), 0);
  mc_store_destroy(s);
  fx_master_stop(&m, SIGTERM);
  printf("lease blocks remove: ok\n");

  /* 2. A lease shorter than the read: LEASE_EXPIRED, no data. */
  fx_master_start(&m, "--default_kv_lease_ttl=1", NULL);
  char h[MC_STORE_NAME_MAX];
  pid_t hp = fx_holder_start(&m, 64u << 20, h, sizeof h);
  s = fx_client(&m, 0);
  const char *pref[1] = {h};
  mc_store_replicate_config rc = {.preferred_segments = pref, .preferred_count = 1};
  CHECK_EQ_INT(mc_store_put(s, "slow", v, VSZ, &rc), 0);
  void *val = NULL;
  size_t len = 12345;
  CHECK_EQ_INT(mc_store_get_alloc(s, "slow", &val, &len), MC_STORE_LEASE_EXPIRED);
  CHECK(val == NULL && len == 12345);
  CHECK_HAS(mc_store_last_error(), "lease ran out");
  CHECK_EQ_INT(mc_store_get(s, "slow", g, VSZ), MC_STORE_LEASE_EXPIRED);
  mc_store_destroy(s);
  fx_holder_kill(hp, SIGTERM);
  fx_master_stop(&m, SIGTERM);
  printf("expired lease: LEASE_EXPIRED, no data: ok\n");
  free(v);
  free(g);
  return 0;
}
