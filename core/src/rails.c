/* Rail choice (rails.h).  Transport choice is the request pipeline's
 * (batch.c): among the transports loaded here and published by the peer,
 * those whose caps cover the operation, both memory kinds and the peer's
 * placement, ordered by rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "rails.h"

#define COMP "rails"

int mc_rails_topology_init(const mc_config *cfg, mc_logger *log,
                           mc_topology **out, char *err, size_t errlen) {
  int rc = mc_topo_discover(out, err, errlen);
  if (rc)
    return rc;
  if (cfg->ntopology) {
    rc = mc_topo_apply_config(*out, cfg->topology, cfg->ntopology);
    if (rc) {
      snprintf(err, errlen, "%s: topology section could not be applied: %s",
               cfg->source, mc_strerror(rc));
      return rc;
    }
  }
  MC_DEBUG(log, COMP, "topology from %s: %zu NUMA node(s), %zu device(s)",
           (*out)->source, (*out)->nnuma, (*out)->ndevs);
  return 0;
}

int mc_rails_rank(const mc_tset *set, const mc_topology *topo,
                  const char *location, mc_rail_rank ranks[MC_MAX_TRANSPORTS]) {
  for (int i = 0; i < set->n; i++) {
    mc_transport *t = set->t[i];
    mc_topo_rail *tr = calloc(t->nrails, sizeof *tr);
    uint32_t *pref = calloc(t->nrails, sizeof *pref);
    uint32_t *fb = calloc(t->nrails, sizeof *fb);
    uint32_t *all = calloc(t->nrails, sizeof *all);
    if (!tr || !pref || !fb || !all) {
      free(tr), free(pref), free(fb), free(all);
      return MC_ENOMEM;
    }
    for (uint32_t r = 0; r < t->nrails; r++)
      tr[r] = (mc_topo_rail){t->plugin->name, t->rails[r].name, t->rails[r].numa_node,
                             t->rails[r].pci_bus_id};
    size_t np = 0, nf = 0;
    int rc = topo ? mc_topo_select(topo, location, tr, t->nrails, pref, &np, fb, &nf)
                  : MC_EINVAL;
    if (rc || np + nf == 0) {
      if (!rc)
        MC_WARN(set->log, COMP,
                "topology lists no %s rail for %s; using all of them",
                t->plugin->name, location);
      for (uint32_t r = 0; r < t->nrails; r++)
        pref[r] = r;
      np = t->nrails;
      nf = 0;
    }
    memcpy(all, pref, np * sizeof *all);
    memcpy(all + np, fb, nf * sizeof *all);
    free(ranks[i].rails);
    ranks[i].rails = all;
    ranks[i].npref = (uint32_t)np;
    ranks[i].n = (uint32_t)(np + nf);
    free(tr), free(pref), free(fb);
  }
  return 0;
}

void mc_rails_rank_free(mc_rail_rank ranks[MC_MAX_TRANSPORTS]) {
  for (int i = 0; i < MC_MAX_TRANSPORTS; i++) {
    free(ranks[i].rails);
    ranks[i].rails = NULL;
  }
}

static int rail_up(const mc_transport *t, uint32_t r, uint64_t now) {
  return atomic_load(&t->rail_down_until[r]) <= now;
}

int mc_rails_pick(mc_transport *t, const mc_rail_rank *rk, uint32_t avoid) {
  const uint32_t *rank = rk ? rk->rails : NULL;
  uint32_t n = rank ? rk->n : t->nrails;
  uint32_t npref = rank ? rk->npref : t->nrails;
  uint64_t now = mc_now_ms();
  uint32_t start = atomic_fetch_add(&t->rr, 1);
#define RAIL(i) (rank ? rank[(i)] : (i))
  /* Preferred tier, round robin, up and not the one to avoid. */
  int pick = -1;
  for (uint32_t i = 0; i < npref && pick < 0; i++) {
    uint32_t r = RAIL((start + i) % npref);
    if (r != avoid && rail_up(t, r, now))
      pick = (int)r;
  }
  /* Spill to the least busy fallback rail when the pick is overloaded or
   * no preferred rail is usable. */
  if (n > npref) {
    uint32_t busy = pick >= 0 ? atomic_load(&t->rail_inflight[pick]) : UINT32_MAX;
    if (busy > MC_RAIL_SPILL) {
      for (uint32_t i = npref; i < n; i++) {
        uint32_t r = RAIL(i);
        uint32_t load = atomic_load(&t->rail_inflight[r]);
        if (r != avoid && rail_up(t, r, now) && load < busy / 2) {
          pick = (int)r;
          busy = load;
        }
      }
    }
  }
  if (pick >= 0)
    return pick;
  /* Every rail is backing off or avoided.  A down mark is a preference, not
   * a ban: a dead peer must not stop traffic to the others. */
  for (uint32_t i = 0; i < n; i++) {
    uint32_t r = RAIL((start + i) % n);
    if (r != avoid || n == 1)
      return (int)r;
  }
#undef RAIL
  return (int)(start % t->nrails);
}

void mc_rails_mark_down(mc_transport *t, uint32_t rail) {
  if (rail < t->nrails)
    atomic_store(&t->rail_down_until[rail], mc_now_ms() + MC_RAIL_BACKOFF_MS);
}
