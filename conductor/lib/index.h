/* The global prefix index: block id -> the set of instances holding it.
 *
 * Entries live in an arena, in the order their blocks were first stored:
 * 16 bytes each, four to a cache line, holding the key and, inline, up to
 * seven holder ids (an id fits a byte: MC_COND_MAX_INSTANCES is 256).  A
 * block held by more instances keeps its holders in a bitset of a side
 * pool and the entry says which one.  A hash table (open addressing,
 * linear probing, backward-shift deletion) maps a key to its entry; its
 * 8-byte slots carry the key's hash, so probing and deletion never touch
 * the arena.
 *
 * Why the arena: a request's blocks form a chain, and an instance stores
 * a chain in one event, block after block, so the entries of a chain sit
 * next to each other.  A match looks at the entry after the previous
 * block's first (a hit when its key is the next block: exact, the key is
 * compared) and only goes through the hash table when that fails.  A
 * 250-block match then reads ~63 consecutive cache lines instead of 250
 * random slots of a table of tens of MB.  Freed entries are left as holes
 * and the arena is compacted (order kept) when it fills up. */
#ifndef MC_COND_INDEX_H
#define MC_COND_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mooncake/conductor.h"

#define MC_COND_W (MC_COND_MAX_INSTANCES / 64)
/* Holders kept in the slot itself. */
#define MC_COND_INLINE 7
/* The count of a slot whose holders are in the side pool. */
#define MC_COND_BIG 0xff

_Static_assert(MC_COND_MAX_INSTANCES <= 256, "holder ids are stored in a byte");

typedef struct mc_cond_set {
  uint64_t w[MC_COND_W];
} mc_cond_set;

typedef struct mc_cond_slot {
  uint64_t key;
  /* n <= MC_COND_INLINE: the holders; n == MC_COND_BIG: the first four
   * bytes are the pool index (mc_cond_slot_big) */
  uint8_t ids[MC_COND_INLINE];
  uint8_t n; /* 0: a free entry */
} mc_cond_slot;

_Static_assert(sizeof(mc_cond_slot) == 16, "four entries to a cache line");

/* A hash table slot: the entry's arena index + 1 (0: empty) and the low
 * 32 bits of its key's hash (the table has at most 2^31 slots). */
typedef struct mc_cond_tslot {
  uint32_t ent, hash;
} mc_cond_tslot;

typedef struct mc_cond_index {
  mc_cond_tslot *tab;
  size_t cap;         /* table slots, a power of two */
  size_t n;           /* keys (entries in use) */
  mc_cond_slot *ent;  /* the arena */
  uint32_t n_ent;     /* entries used or freed since the last compaction */
  uint32_t cap_ent;
  /* the side pool: bitsets of blocks with more than MC_COND_INLINE
   * holders, and the free ones among them */
  mc_cond_set *big;
  uint32_t n_big, cap_big;
  uint32_t *free_big;
  uint32_t n_free_big;
} mc_cond_index;

/* Sized for HINT blocks; MC_ENOMEM. */
int mc_cond_index_init(mc_cond_index *x, size_t hint);
void mc_cond_index_free(mc_cond_index *x);
/* 1 when ID did not hold KEY before, 0 when it did, MC_ENOMEM. */
int mc_cond_index_add(mc_cond_index *x, uint64_t key, int id);
/* 1 when ID held KEY, 0 when not. */
int mc_cond_index_del(mc_cond_index *x, uint64_t key, int id);
/* Drops every entry of ID; returns how many it had. */
uint64_t mc_cond_index_drop(mc_cond_index *x, int id);

static inline uint64_t mc_cond_index_hash(uint64_t key) {
  /* splitmix64's finalizer (keys may be small consecutive integers). */
  uint64_t h = key + 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

/* Starts loading KEY's home slot of the table into the cache (a request's
 * keys are all known up front, so their misses can overlap). */
static inline void mc_cond_index_prefetch(const mc_cond_index *x, uint64_t key) {
  const void *p = &x->tab[(size_t)mc_cond_index_hash(key) & (x->cap - 1)];
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

/* Starts loading arena entry E. */
static inline void mc_cond_index_prefetch_ent(const mc_cond_index *x, uint32_t e) {
  const void *p = &x->ent[e];
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#elif defined(__aarch64__)
  __asm__ volatile("prfm pldl1keep, %0" : : "Q"(*(const char *)p));
#else
  __builtin_prefetch(p);
#endif
}

static inline uint32_t mc_cond_slot_big(const mc_cond_slot *s) {
  uint32_t b;
  memcpy(&b, s->ids, sizeof b);
  return b;
}

/* KEY's entry (its arena index in *AT), or NULL.  Tried first: the entry
 * at HINT (the one after the previous block's; UINT32_MAX: none). */
static inline const mc_cond_slot *mc_cond_index_find(const mc_cond_index *x, uint64_t key,
                                                     uint32_t hint, uint32_t *at) {
  if (hint < x->n_ent && x->ent[hint].n && x->ent[hint].key == key) {
    *at = hint;
    return &x->ent[hint];
  }
  uint64_t h = mc_cond_index_hash(key);
  size_t mask = x->cap - 1, i = (size_t)h & mask;
  for (;;) {
    const mc_cond_tslot *t = &x->tab[i];
    if (!t->ent)
      return NULL;
    if (t->hash == (uint32_t)h && x->ent[t->ent - 1].key == key) {
      *at = t->ent - 1;
      return &x->ent[t->ent - 1];
    }
    i = (i + 1) & mask;
  }
}

static inline int mc_cond_set_has(const mc_cond_set *s, int id) {
  return (int)((s->w[id >> 6] >> (id & 63)) & 1);
}
static inline int mc_cond_set_empty(const mc_cond_set *s) {
  uint64_t a = 0;
  for (int i = 0; i < MC_COND_W; i++)
    a |= s->w[i];
  return a == 0;
}

#endif
