/* shm transport: shared pools this process owns (alloc_mem).
 *
 * Two backings:
 *  - memfd (default): every allocation is its own sealed memfd (F_SEAL_SHRINK,
 *    so no process can truncate it under a peer's mapping: no SIGBUS), mapped
 *    MAP_SHARED here and by peers through /proc/<pid>/fd/<fd>.
 *  - file (pool_path: a CXL/DAX device /dev/daxX.Y or any file): one window
 *    [pool_offset, +pool_size) of the file is mapped once and carved into
 *    allocations by a first-fit allocator.  Peers map the same window by
 *    path (checked by device and inode) or through /proc.  Caveat: a regular
 *    file can be truncated by anyone with write access, which would SIGBUS
 *    every mapper; keep pool files private to the serving processes.
 *
 * Only control calls (serialized by the core) touch this table. */
#ifndef MC_SHM_POOL_H
#define MC_SHM_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "shm_blob.h"

typedef struct shm_extent {
  uint64_t off, len;
} shm_extent;

typedef struct shm_pool {
  struct shm_pool *next;
  uint64_t id;
  uint32_t kind; /* SHM_RKEY_MEMFD or SHM_RKEY_FILE */
  int fd;
  uint8_t *base; /* mapping of [file_off, +size) */
  uint64_t size;
  uint64_t file_off;
  uint64_t dev, ino;
  uint64_t secret;
  uint64_t align;   /* file pools: allocation alignment */
  shm_extent *ext;  /* file pools: extents in use, sorted by off */
  size_t n_ext, cap;
} shm_pool;

typedef struct shm_pools {
  shm_pool *head;
  shm_pool *file; /* the file window, opened on first allocation */
  uint64_t next_id;
  uint64_t secret_seed;
  char path[SHM_PATH_MAX + 1]; /* "" = memfd */
  uint64_t window_off, window_size;
  int populate;
} shm_pools;

/* Allocates len bytes near location ("cpu:N" binds memfd pages to node N,
 * preferred policy).  0, MC_ENOMEM/MC_EIO/MC_ENOTSUP with err filled. */
int shm_pools_alloc(shm_pools *ps, uint64_t len, const char *location,
                    void **addr, char *err, size_t errlen);

/* Frees an allocation; MC_ENOENT if addr is not one. */
int shm_pools_free(shm_pools *ps, void *addr, uint64_t len);

/* The pool holding all of [addr, +len), or NULL. */
const shm_pool *shm_pools_find(const shm_pools *ps, uint64_t addr,
                               uint64_t len);

/* Expected memfd name for a pool (for the importer's check). */
void shm_pool_memfd_name(uint64_t id, uint64_t secret, char *buf, size_t len);

/* Unmaps and closes everything. */
void shm_pools_fini(shm_pools *ps);

/* Prefaults [addr, +len) for writing; best effort. */
void shm_populate(void *addr, uint64_t len);

#endif
