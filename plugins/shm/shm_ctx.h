/* shm transport: context, endpoints and memory handles. */
#ifndef MC_SHM_CTX_H
#define MC_SHM_CTX_H

#include <stdatomic.h>
#include <stdint.h>

#include "mooncake/transport.h"
#include "shm_blob.h"
#include "shm_pool.h"
#include "shm_reg.h"

/* A local registration (handle used as mc_slice.local_mem). */
typedef struct shm_lmem {
  struct shm_lmem *next;
  uint64_t addr, len;
  uint32_t slot; /* in our registration table */
} shm_lmem;

/* A peer's pool mapped here; shared by every import of that pool. */
typedef struct shm_map {
  struct shm_map *next;
  uint32_t kind;
  uint64_t pool_id;
  uint8_t *base;
  uint64_t size;
  int refs;
} shm_map;

struct shm_ep;

/* An imported remote buffer (handle used as mc_slice.remote_mem). */
typedef struct shm_rmem {
  struct shm_rmem *next;
  struct shm_ep *ep;
  uint64_t base, len; /* the peer's addresses */
  uint8_t *ptr;       /* pool imports: our address of base; NULL = vm mode */
  uint32_t slot;      /* the owner's registration, checked per slice */
  uint64_t reg_secret;
  shm_map *map;
} shm_rmem;

typedef struct shm_ep {
  struct shm_ep *next;
  char peer_name[MC_NAME_MAX];
  shm_desc peer;
  int proven;   /* nonce read back through /proc: same pid namespace */
  int pidfd;    /* to notice the peer's death in vm mode; -1 if none */
  atomic_int dead;
  atomic_int warned; /* one log line per endpoint for refused vm access */
  const shm_slot *table; /* peer's registration table; NULL if unproven */
  shm_map *maps;
  shm_rmem *rmems;
  uint32_t jobs; /* slices in the copy workers (their lock): disconnect waits */
} shm_ep;

struct shm_workers;

typedef struct shm_ctx {
  const mc_host_api *host;
  shm_desc self;
  shm_reg_owner reg;
  shm_pools pools;
  int allow_vm;
  int huge_pages; /* advise/collapse THP on plain registrations */
  int populate;
  shm_lmem *lmems;
  shm_ep *eps;
  uint64_t copy_chunk;         /* vm slices split at peer addresses aligned
                                  to this (power of two) */
  struct shm_workers *workers; /* NULL: vm slices are copied inside submit */
} shm_ctx;

#define SHM_LOG(c, lvl, ...) (c)->host->log((c)->host->host, (lvl), __VA_ARGS__)

/* shm_import.c */
int shm_import(shm_ctx *c, shm_ep *ep, uint64_t base, uint64_t len,
               const void *rkey, size_t rkey_len, shm_rmem **out);
void shm_release(shm_ctx *c, shm_rmem *rm);

/* shm_copy.c */

/* One contiguous range of a process_vm copy (peer addresses in raddr). */
typedef struct shm_seg {
  uint64_t laddr, raddr, len;
} shm_seg;

/* Ranges one process_vm call carries at most (small slices batched). */
#define SHM_IOV_MAX 16

/* Checks a slice against its registration and import, and that the owner
 * has not revoked the registration: 0 or MC_E*. */
int shm_check_slice(const shm_ep *ep, const mc_slice *s);
/* The revocation part alone (reloaded before each chunk). */
int shm_check_live(const shm_ep *ep, uint32_t slot, uint64_t secret);
/* memcpy of a checked slice whose import is a mapped pool. */
void shm_pool_copy(const mc_slice *s);
/* Copies seg[0..n) in direction op with as few process_vm calls as the
 * iovec cap allows.  Returns 0, or the MC_E* of seg[*failed] (with errno in
 * *verr); the segments before it were copied, those after it were not. */
int shm_vm_copy(shm_ctx *c, shm_ep *ep, uint32_t op, const shm_seg *seg,
                uint32_t n, uint32_t *failed, int32_t *verr);
/* Notices a dead peer (its pidfd); cheap enough once per submit or chunk. */
int shm_ep_alive(shm_ep *ep);

#endif
