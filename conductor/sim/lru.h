/* A simulated KV cache: CAP block ids under LRU. */
#ifndef MC_SIM_LRU_H
#define MC_SIM_LRU_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_lru_node {
  uint64_t key;
  uint32_t prev, next; /* UINT32_MAX: none */
} sim_lru_node;

typedef struct sim_lru {
  size_t cap, n;
  sim_lru_node *node;
  uint32_t head, tail, free_head; /* head: most recent */
  uint32_t *tab;                  /* node index + 1, 0 empty */
  size_t tmask;
} sim_lru;

int sim_lru_init(sim_lru *l, size_t cap);
void sim_lru_free(sim_lru *l);
int sim_lru_has(const sim_lru *l, uint64_t key);
/* Marks KEY most recently used; 0 if absent. */
int sim_lru_touch(sim_lru *l, uint64_t key);
/* Inserts KEY (or touches it).  Returns 1 and *EVICTED when an entry had to
 * go, 2 when KEY was new and nothing went, 0 when it was present, -1 when
 * the cache holds nothing (cap 0). */
int sim_lru_insert(sim_lru *l, uint64_t key, uint64_t *evicted);
/* Longest prefix of BLOCKS held. */
uint32_t sim_lru_prefix(const sim_lru *l, const uint64_t *blocks, uint32_t n);

#endif
