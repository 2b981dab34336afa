/* Rail choice: each registered buffer carries, per transport, that
 * transport's rails ranked for the buffer's memory location by the topology
 * (preferred tier, then fallback).  Slices go round robin over the preferred
 * rails that are up; a rail with more than MC_RAIL_SPILL slices in flight
 * spills to a less busy fallback rail; a failed rail sits out
 * MC_RAIL_BACKOFF_MS and is then tried again. */
#ifndef MC_RAILS_H
#define MC_RAILS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "topology.h"
#include "transports.h"

#define MC_RAIL_BACKOFF_MS 1000 /* a failed rail sits out this long */
#define MC_RAIL_SPILL 32        /* slices in flight on a rail before spilling */

/* One transport's rails ranked for one location: rails[0..npref) are
 * preferred, rails[npref..n) the fallback. */
typedef struct mc_rail_rank {
  uint32_t *rails;
  uint32_t npref, n;
} mc_rail_rank;

/* Builds the engine's topology: discovery, then the config's section. */
int mc_rails_topology_init(const mc_config *cfg, mc_logger *log,
                           mc_topology **out, char *err, size_t errlen);
/* Ranks every transport of set for `location` into ranks[i] (i: the
 * transport's index); topo NULL ranks every rail as preferred.  On
 * MC_ENOMEM some entries may be filled: mc_rails_rank_free frees them. */
int mc_rails_rank(const mc_tset *set, const mc_topology *topo,
                  const char *location, mc_rail_rank ranks[MC_MAX_TRANSPORTS]);
void mc_rails_rank_free(mc_rail_rank ranks[MC_MAX_TRANSPORTS]);
/* Picks a rail of t, preferring rails not marked down and different from
 * `avoid` (UINT32_MAX for none); rank NULL: all of t's rails alike. */
int mc_rails_pick(mc_transport *t, const mc_rail_rank *rank, uint32_t avoid);
void mc_rails_mark_down(mc_transport *t, uint32_t rail);

#endif
