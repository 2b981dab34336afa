/* Transport and rail choice.
 *
 * Transport: among the transports loaded here and published by the peer,
 * those whose caps cover the operation, both memory kinds and the peer's
 * placement (same host or not), ordered by preference (engine rank).
 * Rail: round robin over the transport's rails, skipping rails that failed
 * recently (they sit out MC_RAIL_BACKOFF_MS, then are tried again). */
#include <string.h>

#include "engine_internal.h"
#include "net.h"

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

int mc_rails_pick(mc_transport *t, const mc_local_buf *lb, uint32_t avoid) {
  (void)lb;
  uint64_t now = mc_now_ms();
  uint32_t start = atomic_fetch_add(&t->rr, 1);
  for (uint32_t i = 0; i < t->nrails; i++) {
    uint32_t r = (start + i) % t->nrails;
    if (t->nrails > 1 && r == avoid)
      continue;
    if (atomic_load(&t->rail_down_until[r]) <= now)
      return (int)r;
  }
  /* Every rail is backing off.  A down mark is a preference, not a ban: a
   * dead peer must not stop traffic to the others on the same rails. */
  uint32_t r = start % t->nrails;
  return (int)(t->nrails > 1 && r == avoid ? (r + 1) % t->nrails : r);
}

void mc_rails_mark_down(mc_transport *t, uint32_t rail) {
  if (rail < t->nrails)
    atomic_store(&t->rail_down_until[rail], mc_now_ms() + MC_RAIL_BACKOFF_MS);
}
