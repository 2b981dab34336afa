/* Two-level segregated-fit allocator of segment offsets (alloc.h). */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"

#define SL_BITS 5
#define SL_COUNT (1u << SL_BITS)
#define FL_COUNT 58 /* units are 64 B: classes cover up to 2^63 bytes */
#define SCAN_LIMIT 64 /* blocks looked at in the fallback scan */
#define NODES_PER_CHUNK 256

struct mcs_block {
  uint64_t off, size;               /* bytes */
  mcs_block *phys_prev, *phys_next; /* address order */
  mcs_block *free_prev, *free_next; /* class list, when free */
  int is_free;
};

typedef struct node_chunk {
  struct node_chunk *next;
  mcs_block nodes[NODES_PER_CHUNK];
} node_chunk;

struct mcs_alloc {
  uint64_t capacity, used, nfree;
  uint64_t fl_bitmap;
  uint32_t sl_bitmap[FL_COUNT];
  mcs_block *heads[FL_COUNT][SL_COUNT];
  mcs_block *spare; /* unused handles */
  node_chunk *chunks;
};

static int log2_floor(uint64_t v) { return 63 - __builtin_clzll(v); }

/* Class of a free block of u units: every block of class (fl, sl) has at
 * least the class's lower bound. */
static void class_of(uint64_t u, int *fl, int *sl) {
  if (u < SL_COUNT) {
    *fl = 0;
    *sl = (int)u;
    return;
  }
  int l = log2_floor(u);
  *fl = l - SL_BITS + 1;
  *sl = (int)((u >> (l - SL_BITS)) - SL_COUNT);
}

/* The smallest class all of whose blocks hold u units. */
static int class_fit(uint64_t u, int *fl, int *sl) {
  if (u >= SL_COUNT) {
    int l = log2_floor(u);
    uint64_t step = (uint64_t)1 << (l - SL_BITS);
    u += step - 1;
  }
  class_of(u, fl, sl);
  return *fl < FL_COUNT;
}

static mcs_block *node_new(mcs_alloc *a) {
  if (!a->spare) {
    node_chunk *c = malloc(sizeof(*c));
    if (!c)
      return NULL;
    c->next = a->chunks;
    a->chunks = c;
    for (int i = 0; i < NODES_PER_CHUNK; i++) {
      c->nodes[i].free_next = a->spare;
      a->spare = &c->nodes[i];
    }
  }
  mcs_block *b = a->spare;
  a->spare = b->free_next;
  memset(b, 0, sizeof(*b));
  return b;
}

static void node_del(mcs_alloc *a, mcs_block *b) {
  b->free_next = a->spare;
  a->spare = b;
}

static void list_insert(mcs_alloc *a, mcs_block *b) {
  int fl, sl;
  class_of(b->size / MCS_ALLOC_ALIGN, &fl, &sl);
  b->free_prev = NULL;
  b->free_next = a->heads[fl][sl];
  if (b->free_next)
    b->free_next->free_prev = b;
  a->heads[fl][sl] = b;
  a->fl_bitmap |= 1ull << fl;
  a->sl_bitmap[fl] |= 1u << sl;
  b->is_free = 1;
  a->nfree++;
}

static void list_remove(mcs_alloc *a, mcs_block *b) {
  int fl, sl;
  class_of(b->size / MCS_ALLOC_ALIGN, &fl, &sl);
  if (b->free_prev)
    b->free_prev->free_next = b->free_next;
  else
    a->heads[fl][sl] = b->free_next;
  if (b->free_next)
    b->free_next->free_prev = b->free_prev;
  if (!a->heads[fl][sl]) {
    a->sl_bitmap[fl] &= ~(1u << sl);
    if (!a->sl_bitmap[fl])
      a->fl_bitmap &= ~(1ull << fl);
  }
  b->is_free = 0;
  b->free_prev = b->free_next = NULL;
  a->nfree--;
}

int mcs_alloc_create(uint64_t size, mcs_alloc **out) {
  size -= size % MCS_ALLOC_ALIGN;
  if (size == 0)
    return MC_EINVAL;
  mcs_alloc *a = calloc(1, sizeof(*a));
  if (!a)
    return MC_ENOMEM;
  a->capacity = size;
  mcs_block *b = node_new(a);
  if (!b) {
    free(a);
    return MC_ENOMEM;
  }
  b->off = 0;
  b->size = size;
  list_insert(a, b);
  *out = a;
  return 0;
}

void mcs_alloc_destroy(mcs_alloc *a) {
  if (!a)
    return;
  while (a->chunks) {
    node_chunk *c = a->chunks;
    a->chunks = c->next;
    free(c);
  }
  free(a);
}

/* First block of the smallest non-empty class >= (fl, sl). */
static mcs_block *find_class(mcs_alloc *a, int fl, int sl) {
  uint32_t sm = a->sl_bitmap[fl] & (~0u << sl);
  if (!sm) {
    uint64_t fm = fl + 1 < 64 ? a->fl_bitmap & (~0ull << (fl + 1)) : 0;
    if (!fm)
      return NULL;
    fl = __builtin_ctzll(fm);
    sm = a->sl_bitmap[fl];
  }
  sl = __builtin_ctz(sm);
  return a->heads[fl][sl];
}

mcs_block *mcs_alloc_get(mcs_alloc *a, uint64_t size, uint64_t *offset) {
  if (size == 0 || size > a->capacity)
    return NULL;
  uint64_t need = (size + MCS_ALLOC_ALIGN - 1) / MCS_ALLOC_ALIGN * MCS_ALLOC_ALIGN;
  uint64_t u = need / MCS_ALLOC_ALIGN;
  int fl, sl;
  mcs_block *b = NULL;
  if (class_fit(u, &fl, &sl))
    b = find_class(a, fl, sl);
  if (!b) {
    /* Near full: a block of the request's own class may still fit. */
    class_of(u, &fl, &sl);
    int n = 0;
    for (mcs_block *c = a->heads[fl][sl]; c && n < SCAN_LIMIT; c = c->free_next, n++)
      if (c->size >= need) {
        b = c;
        break;
      }
    if (!b)
      return NULL;
  }
  if (b->size > need) {
    /* Split first: a missing handle must leave the block intact. */
    mcs_block *rest = node_new(a);
    if (!rest)
      return NULL;
    list_remove(a, b);
    rest->off = b->off + need;
    rest->size = b->size - need;
    rest->phys_prev = b;
    rest->phys_next = b->phys_next;
    if (b->phys_next)
      b->phys_next->phys_prev = rest;
    b->phys_next = rest;
    b->size = need;
    list_insert(a, rest);
  } else {
    list_remove(a, b);
  }
  a->used += b->size;
  *offset = b->off;
  return b;
}

void mcs_alloc_put(mcs_alloc *a, mcs_block *b) {
  a->used -= b->size;
  mcs_block *p = b->phys_prev, *n = b->phys_next;
  if (p && p->is_free) {
    list_remove(a, p);
    p->size += b->size;
    p->phys_next = n;
    if (n)
      n->phys_prev = p;
    node_del(a, b);
    b = p;
  }
  if (n && n->is_free) {
    list_remove(a, n);
    b->size += n->size;
    b->phys_next = n->phys_next;
    if (n->phys_next)
      n->phys_next->phys_prev = b;
    node_del(a, n);
  }
  list_insert(a, b);
}

uint64_t mcs_alloc_used(const mcs_alloc *a) { return a->used; }
uint64_t mcs_alloc_block_size(const mcs_block *b) { return b->size; }
uint64_t mcs_alloc_capacity(const mcs_alloc *a) { return a->capacity; }
uint64_t mcs_alloc_free_ranges(const mcs_alloc *a) { return a->nfree; }

uint64_t mcs_alloc_largest_free(const mcs_alloc *a) {
  if (!a->fl_bitmap)
    return 0;
  int fl = log2_floor(a->fl_bitmap);
  int sl = log2_floor(a->sl_bitmap[fl]);
  uint64_t best = 0;
  for (const mcs_block *c = a->heads[fl][sl]; c; c = c->free_next)
    if (c->size > best)
      best = c->size;
  return best;
}

int mcs_alloc_check(const mcs_alloc *a, char *why, int whylen) {
  /* Walk from the first block: find it through any block of the lists or
   * by following phys_prev from one.  The chain must tile [0, capacity),
   * free blocks never adjacent, sums matching. */
  const mcs_block *any = NULL;
  for (int f = 0; f < FL_COUNT && !any; f++)
    for (int s = 0; s < (int)SL_COUNT && !any; s++)
      any = a->heads[f][s];
  if (!any) {
    if (a->used != a->capacity) {
      snprintf(why, (size_t)whylen, "no free block but used %llu != capacity %llu",
               (unsigned long long)a->used, (unsigned long long)a->capacity);
      return MC_EPROTO;
    }
    return 0;
  }
  while (any->phys_prev)
    any = any->phys_prev;
  uint64_t off = 0, used = 0, nfree = 0;
  int prev_free = 0;
  for (const mcs_block *b = any; b; b = b->phys_next) {
    if (b->off != off) {
      snprintf(why, (size_t)whylen, "gap or overlap at offset %llu", (unsigned long long)off);
      return MC_EPROTO;
    }
    if (b->is_free && prev_free) {
      snprintf(why, (size_t)whylen, "two adjacent free blocks at %llu", (unsigned long long)off);
      return MC_EPROTO;
    }
    if (b->is_free) {
      int fl, sl, found = 0;
      class_of(b->size / MCS_ALLOC_ALIGN, &fl, &sl);
      for (const mcs_block *c = a->heads[fl][sl]; c; c = c->free_next)
        found |= c == b;
      if (!found) {
        snprintf(why, (size_t)whylen, "free block at %llu not in its class list",
                 (unsigned long long)b->off);
        return MC_EPROTO;
      }
      nfree++;
    } else {
      used += b->size;
    }
    prev_free = b->is_free;
    off += b->size;
  }
  if (off != a->capacity || used != a->used || nfree != a->nfree) {
    snprintf(why, (size_t)whylen, "totals: end %llu cap %llu used %llu/%llu free %llu/%llu",
             (unsigned long long)off, (unsigned long long)a->capacity,
             (unsigned long long)used, (unsigned long long)a->used,
             (unsigned long long)nfree, (unsigned long long)a->nfree);
    return MC_EPROTO;
  }
  return 0;
}
