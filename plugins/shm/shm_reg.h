/* shm transport: the registration table peers check before every access.
 *
 * Each ctx owns one sealed memfd (the "ident" file): page 0 holds the proof
 * of identity (magic, nonce, pid) read by connect(); from page 1 on, a table
 * of slots {secret, base, len}.  register_mem fills a slot with a fresh
 * random secret, carried in the rkey; deregister_mem zeroes it.  Importers
 * map the table read-only at connect and check the slot at import and
 * before every slice: a plain load, no syscall.  So a forged key is refused
 * and a revoked registration stops being reachable by slices started after
 * deregister_mem returns, even for pool memory peers still have mapped. */
#ifndef MC_SHM_REG_H
#define MC_SHM_REG_H

#include <stdatomic.h>
#include <stdint.h>

#define SHM_REG_SLOTS 16384u
#define SHM_REG_HDR 4096u
#define SHM_REG_SIZE (SHM_REG_HDR + SHM_REG_SLOTS * 32u)

typedef struct shm_slot {
  _Atomic uint64_t secret; /* 0 = free */
  uint64_t base, len;
  uint64_t pad;
} shm_slot;

typedef struct shm_reg_owner {
  int fd;
  uint8_t *map;    /* whole file: header page, then slots */
  shm_slot *slots;
  uint32_t hint;   /* next slot to try */
  uint64_t seed, counter;
} shm_reg_owner;

/* Creates the memfd with the identity blob (magic, nonce, pid) and maps
 * the table.  0 or MC_E*. */
int shm_reg_create(shm_reg_owner *o, const uint8_t nonce[16], uint32_t pid,
                   uint64_t seed);
void shm_reg_destroy(shm_reg_owner *o);

/* Publishes [base, +len); returns the slot and its secret. MC_ENOMEM full. */
int shm_reg_add(shm_reg_owner *o, uint64_t base, uint64_t len, uint32_t *slot,
                uint64_t *secret);
void shm_reg_remove(shm_reg_owner *o, uint32_t slot);

/* Importer: maps a peer's table read-only from an fd opened on its ident
 * memfd.  NULL on failure. */
const shm_slot *shm_reg_map_peer(int fd);
void shm_reg_unmap_peer(const shm_slot *slots);

/* Marks the table closed and revokes every slot (fini): importers then see
 * MC_EPEER.  A process that dies without fini leaves its slots live, so
 * pools peers still map stay usable. */
void shm_reg_close(shm_reg_owner *o);

/* Did the owner close its table? */
static inline int shm_reg_closed(const shm_slot *t) {
  const _Atomic uint32_t *flag =
      (const _Atomic uint32_t *)((const uint8_t *)t - SHM_REG_HDR + 64);
  return atomic_load_explicit((_Atomic uint32_t *)flag, memory_order_acquire) != 0;
}

/* Is (slot, secret) a live registration? */
static inline int shm_reg_live(const shm_slot *t, uint32_t slot, uint64_t secret) {
  return t && slot < SHM_REG_SLOTS && secret &&
         atomic_load_explicit((_Atomic uint64_t *)&t[slot].secret,
                              memory_order_acquire) == secret;
}

#endif
