/* The registry: the local buffers an engine exposes, each registered with
 * every transport that can serve its memory kind (its per-transport handle
 * and remote key), ranked rails per transport, and a count of the requests
 * using it.  Lookups take a read lock; plugins are called without the
 * registry's lock (a registration reserves its range first, so overlaps are
 * refused, and publishes it when every plugin said yes).  After a change the
 * registry calls its owner's publish callback (the engine republishes its
 * segment descriptor, which reads the buffers back with
 * mc_registry_fill_desc). */
#ifndef MC_REGISTRY_H
#define MC_REGISTRY_H

#include <stdint.h>

#include "descriptor.h"
#include "rails.h"
#include "topology.h"
#include "transports.h"
#include "mooncake/engine.h"

typedef struct mc_registry mc_registry;
typedef struct mc_local_buf mc_local_buf;

/* Republishes the owner's segment; 0 or MC_E*. */
typedef int (*mc_registry_publish_fn)(void *arg);

/* set and topo (may be NULL: every rail preferred) outlive the registry. */
int mc_registry_create(mc_tset *set, const mc_topology *topo,
                       mc_registry_publish_fn publish, void *arg,
                       mc_registry **out);
/* Frees every buffer (deregistering unless set->closing; frees what
 * mc_registry_alloc_shared allocated) and the registry; NULL is a no-op. */
void mc_registry_destroy(mc_registry *r);

/* The engine.h calls (mc_register_batch, ...), on this registry. */
int mc_registry_register(mc_registry *r, const mc_region *regions, uint32_t n,
                         uint32_t *failed);
int mc_registry_unregister(mc_registry *r, void *const *addrs, uint32_t n,
                           uint32_t *failed);
int mc_registry_alloc_shared(mc_registry *r, size_t len, const char *location,
                             void **addr);
int mc_registry_free_shared(mc_registry *r, void *addr);
int mc_registry_register_file(mc_registry *r, const char *path, uint64_t offset,
                              uint64_t len, uint32_t flags, void **addr);

/* The buffer containing [addr, addr+len), counted as in use until
 * mc_registry_release (unregistering it meanwhile is MC_EBUSY); NULL if
 * the range is not (yet) registered. */
mc_local_buf *mc_registry_acquire(mc_registry *r, uint64_t addr, uint64_t len);
void mc_registry_release(mc_local_buf *b); /* NULL is a no-op */
/* d->buffers (calloc'd, keys too) from the registered buffers. */
int mc_registry_fill_desc(mc_registry *r, mc_seg_desc *d);

/* An acquired buffer's properties. */
void *mc_lbuf_mem(const mc_local_buf *b, int transport); /* NULL: not served */
uint32_t mc_lbuf_kind(const mc_local_buf *b);
const char *mc_lbuf_location(const mc_local_buf *b);
const mc_rail_rank *mc_lbuf_rank(const mc_local_buf *b, int transport);

#endif
