/* Rail choice on its own (core/src/rails.h), without an engine: one fake
 * transport with four rails.  Round robin over the preferred tier, a rail
 * to avoid, a rail marked down sitting out, spill to a less busy fallback
 * rail above MC_RAIL_SPILL slices in flight, every rail down still picks
 * one, and ranking without a topology (every rail preferred). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_test_util.h"
#include "rails.h"

static mc_logger lg;
static mc_tset set;
static mc_plugin plugin;
static mc_transport t;
static mc_rail_info rails[4];
static _Atomic uint64_t down[4];
static _Atomic uint32_t inflight[4];

int main(void) {
  mc_check_keep_going(1);
  lg.level = mc_log_env_level();
  set.log = &lg;
  set.n = 1;
  set.t[0] = &t;
  snprintf(plugin.name, sizeof plugin.name, "fake");
  t.set = &set;
  t.plugin = &plugin;
  t.ops = &plugin.ops;
  t.rails = rails;
  t.nrails = 4;
  t.rail_down_until = down;
  t.rail_inflight = inflight;
  for (int i = 0; i < 4; i++)
    snprintf(rails[i].name, sizeof rails[i].name, "r%d", i);

  /* Without a topology every rail is preferred, in order. */
  mc_rail_rank rk[MC_MAX_TRANSPORTS];
  memset(rk, 0, sizeof rk);
  CHECK_MSG(mc_rails_rank(&set, NULL, "cpu:0", rk) == 0, "rank");
  CHECK_MSG(rk[0].n == 4 && rk[0].npref == 4 && rk[0].rails[3] == 3, "rank n=%u npref=%u",
        rk[0].n, rk[0].npref);
  mc_rails_rank_free(rk);
  CHECK_MSG(rk[0].rails == NULL, "rank_free");

  /* Preferred {2, 0}, fallback {1, 3}. */
  uint32_t order[4] = {2, 0, 1, 3};
  mc_rail_rank r = {order, 2, 4};
  int seen[4] = {0};
  for (int i = 0; i < 100; i++)
    seen[mc_rails_pick(&t, &r, UINT32_MAX)]++;
  CHECK_MSG(seen[2] == 50 && seen[0] == 50 && !seen[1] && !seen[3],
        "round robin over the preferred tier: %d %d %d %d", seen[0], seen[1], seen[2], seen[3]);
  for (int i = 0; i < 10; i++)
    CHECK_MSG(mc_rails_pick(&t, &r, 2) == 0, "avoiding rail 2");
  mc_rails_mark_down(&t, 0);
  for (int i = 0; i < 10; i++)
    CHECK_MSG(mc_rails_pick(&t, &r, UINT32_MAX) == 2, "rail 0 is down");
  mc_rails_mark_down(&t, 99); /* out of range: ignored */
  atomic_store(&down[0], 0);

  /* Spill: rail 2 and 0 overloaded, fallback 3 idle and 1 busy. */
  atomic_store(&inflight[2], MC_RAIL_SPILL + 10);
  atomic_store(&inflight[0], MC_RAIL_SPILL + 10);
  atomic_store(&inflight[1], MC_RAIL_SPILL);
  for (int i = 0; i < 10; i++)
    CHECK_MSG(mc_rails_pick(&t, &r, UINT32_MAX) == 3, "spill to the idle fallback rail");
  memset((void *)inflight, 0, sizeof inflight);

  /* Every rail down: still one, never the avoided one when there are others. */
  for (uint32_t i = 0; i < 4; i++)
    mc_rails_mark_down(&t, i);
  for (int i = 0; i < 20; i++) {
    int p = mc_rails_pick(&t, &r, 2);
    CHECK_MSG(p >= 0 && p < 4 && p != 2, "all down: picked %d", p);
  }
  /* No ranking: the transport's rails alike. */
  memset((void *)down, 0, sizeof down);
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < 40; i++)
    seen[mc_rails_pick(&t, NULL, UINT32_MAX)]++;
  CHECK_MSG(seen[0] == 10 && seen[1] == 10 && seen[2] == 10 && seen[3] == 10,
        "unranked: %d %d %d %d", seen[0], seen[1], seen[2], seen[3]);
  if (!mc_check_failures())
    printf("rails: ok\n");
  return mc_check_exit_status();
}
