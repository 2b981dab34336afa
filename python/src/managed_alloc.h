/* managed_alloc.h - the managed buffers of TransferEngine
 * (allocate_managed_buffer / free_managed_buffer).
 *
 * As upstream: power-of-two size classes from 8 KiB to 256 MiB carved
 * buddy-style out of large slabs registered once with the engine, so a
 * serving engine's many small allocations cost no descriptor update each;
 * larger requests get a region of their own, registered alone.  Slabs are
 * anonymous mmap(MAP_NORESERVE) memory: pages cost nothing until touched.
 * Unlike upstream, frees are checked: an address this allocator did not
 * hand out, a length of another class, or a second free is refused
 * (MC_EINVAL / MC_ENOENT) instead of corrupting the free lists.
 *
 * Thread-safe (own mutex); calls block (mc_register) and are made
 * without the GIL. */
#ifndef MCPY_MANAGED_ALLOC_H
#define MCPY_MANAGED_ALLOC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mooncake/engine.h"

#define MCPY_NCLASSES 16 /* 8 KiB << 0 .. 8 KiB << 15 = 256 MiB */

typedef struct mcpy_ulist {
  uintptr_t *v;
  size_t n, cap;
} mcpy_ulist;

typedef struct mcpy_alloc {
  pthread_mutex_t mu;
  mc_engine *eng;
  size_t slab_size;                /* bytes per slab (a multiple of 256 MiB) */
  mcpy_ulist free_list[MCPY_NCLASSES];
  mcpy_ulist slabs;                /* slab base addresses */
  mcpy_ulist used_addr, used_len;  /* live allocations: address, class or -(bytes) */
} mcpy_alloc;

/* Prepares an empty allocator over eng (no memory is taken yet). */
void mcpy_alloc_init(mcpy_alloc *a, mc_engine *eng, size_t slab_size);

/* Allocates len bytes (len > 0) of registered memory; 0 on failure. */
uintptr_t mcpy_alloc_get(mcpy_alloc *a, size_t len);

/* Returns a block: 0, MC_ENOENT (not handed out, or freed already) or
 * MC_EINVAL (len names another size class than the allocation's). */
int mcpy_alloc_put(mcpy_alloc *a, uintptr_t addr, size_t len);

/* Unmaps everything.  The engine must be destroyed first (or the memory
 * unregistered), so no transport still references it. */
void mcpy_alloc_fini(mcpy_alloc *a);

#endif
