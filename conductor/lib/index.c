/* See index.h. */
#include "index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cond_util.h"

/* Tables of 2 MiB and more are mapped with transparent huge pages asked
 * for: the first block of a request is looked up at a random slot of a
 * table that can be tens of MB, and with 4 KiB pages that also misses the
 * TLB.  Anonymous memory comes zeroed, as calloc's does. */
#define BIG_TABLE ((size_t)2 << 20)
/* The table's slot count is kept below 2^31 (slots carry 32 bits of hash)
 * and the arena's below 2^32 - 1 (entries are named by index + 1). */
#define MAX_CAP ((size_t)1 << 31)
#define MAX_ENT ((uint32_t)1 << 31)

static mc_cond_tslot *tab_alloc(size_t cap) {
  size_t bytes = cap * sizeof(mc_cond_tslot);
  if (bytes < BIG_TABLE)
    return calloc(cap, sizeof(mc_cond_tslot));
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

static void tab_free(mc_cond_tslot *t, size_t cap) {
  if (!t)
    return;
  if (cap * sizeof(mc_cond_tslot) < BIG_TABLE)
    free(t);
  else
    munmap(t, cap * sizeof(mc_cond_tslot));
}

int mc_cond_index_init(mc_cond_index *x, size_t hint) {
  memset(x, 0, sizeof *x);
  size_t cap = 1024;
  while (cap < hint + hint / 2 && cap < MAX_CAP)
    cap <<= 1;
  uint32_t cap_ent = 1024;
  while (cap_ent < hint && cap_ent < MAX_ENT)
    cap_ent <<= 1;
  x->tab = tab_alloc(cap);
  x->ent = malloc((size_t)cap_ent * sizeof *x->ent);
  if (!x->tab || !x->ent) {
    tab_free(x->tab, cap);
    free(x->ent);
    x->tab = NULL;
    x->ent = NULL;
    return MC_ENOMEM;
  }
  x->cap = cap;
  x->cap_ent = cap_ent;
  return 0;
}

void mc_cond_index_free(mc_cond_index *x) {
  tab_free(x->tab, x->cap);
  free(x->ent);
  free(x->big);
  free(x->free_big);
  memset(x, 0, sizeof *x);
}

/* The table slot of KEY (hash H): *FOUND 1, or the empty slot where it
 * would go. */
static size_t find(const mc_cond_index *x, uint64_t key, uint64_t h, int *found) {
  size_t mask = x->cap - 1, i = (size_t)h & mask;
  for (;;) {
    const mc_cond_tslot *t = &x->tab[i];
    if (!t->ent) {
      *found = 0;
      return i;
    }
    if (t->hash == (uint32_t)h && x->ent[t->ent - 1].key == key) {
      *found = 1;
      return i;
    }
    i = (i + 1) & mask;
  }
}

/* A fresh table of CAP slots over the arena's entries in use. */
static int rebuild(mc_cond_index *x, size_t cap) {
  mc_cond_tslot *t = tab_alloc(cap);
  if (!t)
    return MC_ENOMEM;
  tab_free(x->tab, x->cap);
  x->tab = t;
  x->cap = cap;
  size_t mask = cap - 1;
  for (uint32_t e = 0; e < x->n_ent; e++) {
    if (!x->ent[e].n)
      continue;
    uint64_t h = mc_cond_index_hash(x->ent[e].key);
    size_t i = (size_t)h & mask;
    while (t[i].ent)
      i = (i + 1) & mask;
    t[i].ent = e + 1;
    t[i].hash = (uint32_t)h;
  }
  return 0;
}

/* Room for one more key: the table below 70% full, a free entry at the
 * arena's end (compacting it, keeping the order, or growing it first when
 * more than half of it is in use). */
static int make_room(mc_cond_index *x) {
  if ((x->n + 1) * 10 > x->cap * 7) {
    if (x->cap >= MAX_CAP || rebuild(x, x->cap * 2))
      return MC_ENOMEM;
  }
  if (x->n_ent < x->cap_ent)
    return 0;
  if (x->n >= x->cap_ent / 2) {
    if (x->cap_ent >= MAX_ENT)
      return MC_ENOMEM;
    mc_cond_slot *ne = realloc(x->ent, (size_t)x->cap_ent * 2 * sizeof *ne);
    if (!ne)
      return MC_ENOMEM;
    x->ent = ne;
    x->cap_ent *= 2;
    if (x->n_ent < x->cap_ent)
      return 0;
  }
  uint32_t j = 0;
  for (uint32_t e = 0; e < x->n_ent; e++)
    if (x->ent[e].n)
      x->ent[j++] = x->ent[e];
  x->n_ent = j;
  /* Every entry moved: the table is made again (same size).  Amortized:
   * at least half the arena was freed since the last time. */
  return rebuild(x, x->cap);
}

/* A free bitset of the side pool, zeroed; UINT32_MAX when out of memory. */
static uint32_t big_new(mc_cond_index *x) {
  uint32_t b;
  if (x->n_free_big) {
    b = x->free_big[--x->n_free_big];
  } else {
    if (x->n_big == x->cap_big) {
      if (x->cap_big >= UINT32_MAX / 2)
        return UINT32_MAX;
      uint32_t cap = x->cap_big ? x->cap_big * 2 : 64;
      mc_cond_set *nb = realloc(x->big, (size_t)cap * sizeof *nb);
      if (!nb)
        return UINT32_MAX;
      x->big = nb;
      uint32_t *nf = realloc(x->free_big, (size_t)cap * sizeof *nf);
      if (!nf)
        return UINT32_MAX;
      x->free_big = nf;
      x->cap_big = cap;
    }
    b = x->n_big++;
  }
  memset(&x->big[b], 0, sizeof x->big[b]);
  return b;
}

static int set_count(const mc_cond_set *s) {
  int n = 0;
  for (int w = 0; w < MC_COND_W; w++)
    n += __builtin_popcountll(s->w[w]);
  return n;
}

/* Entry S (its holders in the pool) back inline once they fit. */
static void maybe_inline(mc_cond_index *x, mc_cond_slot *s) {
  uint32_t b = mc_cond_slot_big(s);
  const mc_cond_set *set = &x->big[b];
  int n = set_count(set);
  if (n > MC_COND_INLINE)
    return;
  int k = 0;
  for (int w = 0; w < MC_COND_W; w++)
    for (uint64_t m = set->w[w]; m; m &= m - 1)
      s->ids[k++] = (uint8_t)(w * 64 + __builtin_ctzll(m));
  s->n = (uint8_t)n;
  x->free_big[x->n_free_big++] = b;
}

int mc_cond_index_add(mc_cond_index *x, uint64_t key, int id) {
  uint64_t h = mc_cond_index_hash(key);
  int f;
  size_t i = find(x, key, h, &f);
  if (!f) {
    if (make_room(x))
      return MC_ENOMEM;
    i = find(x, key, h, &f); /* the table may have been made again */
    uint32_t e = x->n_ent++;
    mc_cond_slot *s = &x->ent[e];
    memset(s, 0, sizeof *s);
    s->key = key;
    s->ids[0] = (uint8_t)id;
    s->n = 1;
    x->tab[i].ent = e + 1;
    x->tab[i].hash = (uint32_t)h;
    x->n++;
    return 1;
  }
  mc_cond_slot *s = &x->ent[x->tab[i].ent - 1];
  if (s->n == MC_COND_BIG) {
    mc_cond_set *set = &x->big[mc_cond_slot_big(s)];
    if (mc_cond_set_has(set, id))
      return 0;
    set->w[id >> 6] |= 1ull << (id & 63);
    return 1;
  }
  for (int k = 0; k < s->n; k++)
    if (s->ids[k] == id)
      return 0;
  if (s->n < MC_COND_INLINE) {
    s->ids[s->n++] = (uint8_t)id;
    return 1;
  }
  /* An eighth holder: the set moves to the pool. */
  uint32_t b = big_new(x);
  if (b == UINT32_MAX)
    return MC_ENOMEM;
  mc_cond_set *set = &x->big[b];
  for (int k = 0; k < s->n; k++)
    set->w[s->ids[k] >> 6] |= 1ull << (s->ids[k] & 63);
  set->w[id >> 6] |= 1ull << (id & 63);
  memcpy(s->ids, &b, sizeof b);
  s->n = MC_COND_BIG;
  return 1;
}

/* Empties table slot I and shifts later slots of its probe run back. */
static void remove_at(mc_cond_index *x, size_t i) {
  size_t mask = x->cap - 1, j = i;
  for (;;) {
    j = (j + 1) & mask;
    mc_cond_tslot *t = &x->tab[j];
    if (!t->ent)
      break;
    size_t k = t->hash & mask;
    /* Move t back to i unless its home lies cyclically in (i, j]. */
    int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      x->tab[i] = *t;
      i = j;
    }
  }
  x->tab[i].ent = 0;
  x->tab[i].hash = 0;
}

/* Takes ID out of entry S's holders: 1 when it was one, 0 when not.
 * *EMPTIED when it was the last (the caller removes the key). */
static int take(mc_cond_index *x, mc_cond_slot *s, int id, int *emptied) {
  *emptied = 0;
  if (s->n == MC_COND_BIG) {
    mc_cond_set *set = &x->big[mc_cond_slot_big(s)];
    if (!mc_cond_set_has(set, id))
      return 0;
    set->w[id >> 6] &= ~(1ull << (id & 63));
    maybe_inline(x, s); /* more than MC_COND_INLINE before: never empty */
    return 1;
  }
  for (int k = 0; k < s->n; k++) {
    if (s->ids[k] != id)
      continue;
    s->ids[k] = s->ids[s->n - 1];
    if (--s->n == 0)
      *emptied = 1;
    return 1;
  }
  return 0;
}

/* Removes the key of entry S, which just became empty (a hole in the
 * arena until the next compaction). */
static void forget(mc_cond_index *x, const mc_cond_slot *s) {
  int f;
  size_t i = find(x, s->key, mc_cond_index_hash(s->key), &f);
  if (f)
    remove_at(x, i);
  x->n--;
}

int mc_cond_index_del(mc_cond_index *x, uint64_t key, int id) {
  uint64_t h = mc_cond_index_hash(key);
  int f, emptied;
  size_t i = find(x, key, h, &f);
  if (!f)
    return 0;
  mc_cond_slot *s = &x->ent[x->tab[i].ent - 1];
  if (!take(x, s, id, &emptied))
    return 0;
  if (emptied) {
    remove_at(x, i);
    x->n--;
  }
  return 1;
}

uint64_t mc_cond_index_drop(mc_cond_index *x, int id) {
  /* A pass over the arena (gaps and unregistrations are rare). */
  uint64_t had = 0;
  for (uint32_t e = 0; e < x->n_ent; e++) {
    mc_cond_slot *s = &x->ent[e];
    int emptied;
    if (!s->n || !take(x, s, id, &emptied))
      continue;
    had++;
    if (emptied)
      forget(x, s);
  }
  return had;
}
