/* See index.h. */
#include "index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cond_util.h"

/* Tables of 2 MiB and more are mapped with transparent huge pages asked
 * for: a request's lookups land on random slots of a table that can be
 * ~100 MB, and with 4 KiB pages each one also misses the TLB.  Anonymous
 * memory comes zeroed, as calloc's does. */
#define BIG_TABLE ((size_t)2 << 20)

static mc_cond_ient *tab_alloc(size_t cap) {
  size_t bytes = cap * sizeof(mc_cond_ient);
  if (bytes < BIG_TABLE)
    return calloc(cap, sizeof(mc_cond_ient));
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

static void tab_free(mc_cond_ient *t, size_t cap) {
  if (!t)
    return;
  if (cap * sizeof(mc_cond_ient) < BIG_TABLE)
    free(t);
  else
    munmap(t, cap * sizeof(mc_cond_ient));
}

static size_t home(const mc_cond_index *x, uint64_t key) {
  return (size_t)mc_cond_mix64(key) & (x->cap - 1);
}

int mc_cond_index_init(mc_cond_index *x, size_t hint) {
  size_t cap = 1024;
  while (cap < hint + hint / 2 && cap < ((size_t)1 << 40))
    cap <<= 1;
  x->tab = tab_alloc(cap);
  if (!x->tab)
    return MC_ENOMEM;
  x->cap = cap;
  x->n = 0;
  return 0;
}

void mc_cond_index_free(mc_cond_index *x) {
  tab_free(x->tab, x->cap);
  memset(x, 0, sizeof *x);
}

static size_t find(const mc_cond_index *x, uint64_t key, int *found) {
  size_t i = home(x, key), mask = x->cap - 1;
  for (;;) {
    const mc_cond_ient *e = &x->tab[i];
    if (mc_cond_set_empty(&e->holders)) {
      *found = 0;
      return i;
    }
    if (e->key == key) {
      *found = 1;
      return i;
    }
    i = (i + 1) & mask;
  }
}

static int grow(mc_cond_index *x) {
  mc_cond_index y;
  y.cap = x->cap * 2;
  y.n = 0;
  y.tab = tab_alloc(y.cap);
  if (!y.tab)
    return MC_ENOMEM;
  for (size_t i = 0; i < x->cap; i++) {
    if (mc_cond_set_empty(&x->tab[i].holders))
      continue;
    int f;
    size_t j = find(&y, x->tab[i].key, &f);
    y.tab[j] = x->tab[i];
    y.n++;
  }
  tab_free(x->tab, x->cap);
  *x = y;
  return 0;
}

int mc_cond_index_add(mc_cond_index *x, uint64_t key, int id) {
  if ((x->n + 1) * 10 > x->cap * 7 && grow(x))
    return MC_ENOMEM;
  int f;
  size_t i = find(x, key, &f);
  mc_cond_ient *e = &x->tab[i];
  if (!f) {
    memset(e, 0, sizeof *e);
    e->key = key;
    x->n++;
  } else if (mc_cond_set_has(&e->holders, id)) {
    return 0;
  }
  e->holders.w[id >> 6] |= 1ull << (id & 63);
  return 1;
}

/* Empties slot I and shifts later entries of its probe run back. */
static void remove_at(mc_cond_index *x, size_t i) {
  size_t mask = x->cap - 1, j = i;
  for (;;) {
    j = (j + 1) & mask;
    mc_cond_ient *e = &x->tab[j];
    if (mc_cond_set_empty(&e->holders))
      break;
    size_t k = home(x, e->key);
    /* Move e back to i unless its home lies cyclically in (i, j]. */
    int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      x->tab[i] = *e;
      i = j;
    }
  }
  memset(&x->tab[i], 0, sizeof x->tab[i]);
  x->n--;
}

int mc_cond_index_del(mc_cond_index *x, uint64_t key, int id) {
  int f;
  size_t i = find(x, key, &f);
  if (!f || !mc_cond_set_has(&x->tab[i].holders, id))
    return 0;
  x->tab[i].holders.w[id >> 6] &= ~(1ull << (id & 63));
  if (mc_cond_set_empty(&x->tab[i].holders)) {
    x->tab[i].holders.w[0] = 1; /* still "in use" while remove_at shifts */
    remove_at(x, i);
  }
  return 1;
}

const mc_cond_set *mc_cond_index_get(const mc_cond_index *x, uint64_t key) {
  int f;
  size_t i = find(x, key, &f);
  return f ? &x->tab[i].holders : NULL;
}

uint64_t mc_cond_index_drop(mc_cond_index *x, int id) {
  /* One pass in slot order: clear the bit; an entry left empty is removed
   * at once (backward shift), and the slot is looked at again because an
   * entry from later in the run moved into it.  Entries not yet visited
   * still carry their bits, so no probe run is cut early; an entry shifted
   * across the wrap into a visited slot was visited already.  O(capacity);
   * gaps and unregistrations are rare. */
  uint64_t had = 0;
  uint64_t bit = 1ull << (id & 63);
  for (size_t i = 0; i < x->cap;) {
    mc_cond_ient *e = &x->tab[i];
    if (!(e->holders.w[id >> 6] & bit)) {
      i++;
      continue;
    }
    had++;
    e->holders.w[id >> 6] &= ~bit;
    if (!mc_cond_set_empty(&e->holders)) {
      i++;
      continue;
    }
    e->holders.w[id >> 6] |= bit; /* in use while remove_at shifts */
    remove_at(x, i);
  }
  return had;
}
