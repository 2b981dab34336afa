/* The global prefix index: block id -> the set of instances holding it.
 * Open addressing with linear probing and backward-shift deletion; an
 * entry is in use iff its holder set is not empty, so no key is reserved
 * (the traces use block id 0). */
#ifndef MC_COND_INDEX_H
#define MC_COND_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/conductor.h"

#define MC_COND_W (MC_COND_MAX_INSTANCES / 64)

typedef struct mc_cond_set {
  uint64_t w[MC_COND_W];
} mc_cond_set;

typedef struct mc_cond_ient {
  uint64_t key;
  mc_cond_set holders;
} mc_cond_ient;

typedef struct mc_cond_index {
  mc_cond_ient *tab;
  size_t cap; /* a power of two */
  size_t n;   /* entries in use */
} mc_cond_index;

/* Sized for HINT blocks; MC_ENOMEM. */
int mc_cond_index_init(mc_cond_index *x, size_t hint);
void mc_cond_index_free(mc_cond_index *x);
/* 1 when ID did not hold KEY before, 0 when it did, MC_ENOMEM. */
int mc_cond_index_add(mc_cond_index *x, uint64_t key, int id);
/* 1 when ID held KEY, 0 when not. */
int mc_cond_index_del(mc_cond_index *x, uint64_t key, int id);
/* The holders of KEY, or NULL. */
const mc_cond_set *mc_cond_index_get(const mc_cond_index *x, uint64_t key);
/* Drops every entry of ID; returns how many it had. */
uint64_t mc_cond_index_drop(mc_cond_index *x, int id);

/* Starts loading KEY's home slot into the cache (a request's keys are all
 * known up front, so their misses can overlap). */
static inline void mc_cond_index_prefetch(const mc_cond_index *x, uint64_t key) {
  uint64_t h = key + 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  const void *p = &x->tab[(size_t)h & (x->cap - 1)];
  /* GCC 12 deletes a __builtin_prefetch whose address comes out of this
   * arithmetic (the whole loop around it goes), so the instruction is
   * spelled out where we know it. */
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#elif defined(__aarch64__)
  __asm__ volatile("prfm pldl1keep, %0" : : "Q"(*(const char *)p));
#else
  __builtin_prefetch(p);
#endif
}

static inline int mc_cond_set_has(const mc_cond_set *s, int id) {
  return (int)((s->w[id >> 6] >> (id & 63)) & 1);
}
static inline int mc_cond_set_empty(const mc_cond_set *s) {
  for (int i = 0; i < MC_COND_W; i++)
    if (s->w[i])
      return 0;
  return 1;
}

#endif
