/* Transport and rail choice.
 *
 * Transport: among the transports loaded here and published by the peer,
 * those whose caps cover the operation, both memory kinds and the peer's
 * placement (same host or not), ordered by preference (engine rank).
 * Rail: each registered buffer carries its transports' rails ranked for its
 * memory location by the topology (preferred tier, then fallback).  Slices
 * go round robin over the preferred rails that are up; a rail with more
 * than MC_RAIL_SPILL slices in flight spills to a fallback rail that is
 * less busy; a failed rail sits out MC_RAIL_BACKOFF_MS and is then tried
 * again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "net.h"
#include "topology.h"

#define COMP "rails"

int mc_rails_topology_init(mc_engine *e, char *err, size_t errlen) {
  int rc = mc_topo_discover(&e->topo, err, errlen);
  if (rc)
    return rc;
  if (e->cfg->ntopology) {
    rc = mc_topo_apply_config(e->topo, e->cfg->topology, e->cfg->ntopology);
    if (rc) {
      snprintf(err, errlen, "%s: topology section could not be applied: %s",
               e->cfg->source, mc_strerror(rc));
      return rc;
    }
  }
  MC_DEBUG(&e->log, COMP, "topology from %s: %zu NUMA node(s), %zu device(s)",
           e->topo->source, e->topo->nnuma, e->topo->ndevs);
  return 0;
}

int mc_rails_rank_buffer(mc_engine *e, mc_local_buf *b) {
  for (int i = 0; i < e->ntransports; i++) {
    mc_transport *t = e->transports[i];
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
    int rc = e->topo ? mc_topo_select(e->topo, b->location, tr, t->nrails, pref, &np,
                                      fb, &nf)
                     : MC_EINVAL;
    if (rc || np + nf == 0) {
      if (!rc)
        MC_WARN(&e->log, COMP,
                "topology lists no %s rail for %s; using all of them",
                t->plugin->name, b->location);
      for (uint32_t r = 0; r < t->nrails; r++)
        pref[r] = r;
      np = t->nrails;
      nf = 0;
    }
    memcpy(all, pref, np * sizeof *all);
    memcpy(all + np, fb, nf * sizeof *all);
    free(b->rails[i]);
    b->rails[i] = all;
    b->npref[i] = (uint32_t)np;
    b->nrails[i] = (uint32_t)(np + nf);
    free(tr), free(pref), free(fb);
  }
  return 0;
}

int mc_rails_candidates(mc_engine *e, mc_req *req) {
  const mc_seg_view *v = req->view;
  const mc_desc_buffer *rb = &v->desc->buffers[req->rbuf];
  uint64_t need = req->r.op == MC_OP_READ ? MC_CAP_READ : MC_CAP_WRITE;
  uint64_t where = v->same_host ? MC_CAP_INTRA_NODE : MC_CAP_INTER_NODE;
  req->ncand = 0;
  for (int i = 0; i < e->ntransports; i++) {
    mc_transport *t = e->transports[i];
    int dti = v->desc_tidx[i];
    if (dti < 0 || !req->lbuf->mem[i])
      continue;
    const mc_transport_ops *o = t->ops;
    if ((o->caps & need) != need || !(o->caps & where))
      continue;
    if (!(o->local_mem_kinds & req->lbuf->kind) || !(o->remote_mem_kinds & rb->kind))
      continue;
    int has_key = 0;
    for (uint32_t k = 0; k < rb->nkeys; k++)
      has_key |= (int)rb->keys[k].transport == dti;
    if (!has_key)
      continue;
    req->tcand[req->ncand++] = i; /* transports are sorted by rank */
  }
  return req->ncand ? 0 : MC_ENOTSUP;
}

static int rail_up(const mc_transport *t, uint32_t r, uint64_t now) {
  return atomic_load(&t->rail_down_until[r]) <= now;
}

int mc_rails_pick(mc_transport *t, const mc_local_buf *lb, uint32_t avoid) {
  int ti = t->index;
  const uint32_t *rank = lb ? lb->rails[ti] : NULL;
  uint32_t n = rank ? lb->nrails[ti] : t->nrails;
  uint32_t npref = rank ? lb->npref[ti] : t->nrails;
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
