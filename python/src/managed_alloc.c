/* See managed_alloc.h. */
#include "managed_alloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CLASS0 ((size_t)8 << 10)
#define CLASS_MAX (CLASS0 << (MCPY_NCLASSES - 1)) /* 256 MiB */

static int push(mcpy_ulist *l, uintptr_t v) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    uintptr_t *nv = realloc(l->v, cap * sizeof *nv);
    if (!nv)
      return MC_ENOMEM;
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = v;
  return 0;
}

static void drop_at(mcpy_ulist *l, size_t i) { l->v[i] = l->v[--l->n]; }

/* The smallest class holding len bytes, or -1 when larger than 256 MiB. */
static int class_of(size_t len) {
  for (int c = 0; c < MCPY_NCLASSES; c++)
    if (len <= CLASS0 << c)
      return c;
  return -1;
}

static void *map(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void mcpy_alloc_init(mcpy_alloc *a, mc_engine *eng, size_t slab_size) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  a->eng = eng;
  a->slab_size = slab_size < CLASS_MAX ? CLASS_MAX : slab_size / CLASS_MAX * CLASS_MAX;
}

/* Makes class c non-empty: a new slab for the top class, else a split. */
static int refill(mcpy_alloc *a, int c) {
  if (c == MCPY_NCLASSES - 1) {
    void *p = map(a->slab_size);
    if (!p)
      return MC_ENOMEM;
    int rc = mc_register(a->eng, p, a->slab_size, NULL);
    if (rc) {
      munmap(p, a->slab_size);
      return rc;
    }
    if (push(&a->slabs, (uintptr_t)p)) {
      mc_unregister(a->eng, p);
      munmap(p, a->slab_size);
      return MC_ENOMEM;
    }
    for (size_t off = a->slab_size; off > 0; off -= CLASS_MAX)
      if (push(&a->free_list[c], (uintptr_t)p + off - CLASS_MAX))
        return MC_ENOMEM;
    return 0;
  }
  if (a->free_list[c + 1].n == 0) {
    int rc = refill(a, c + 1);
    if (rc)
      return rc;
  }
  mcpy_ulist *up = &a->free_list[c + 1];
  uintptr_t b = up->v[--up->n];
  if (push(&a->free_list[c], b + (CLASS0 << c)) || push(&a->free_list[c], b)) {
    up->n++; /* put the parent back whole */
    return MC_ENOMEM;
  }
  return 0;
}

uintptr_t mcpy_alloc_get(mcpy_alloc *a, size_t len) {
  if (len == 0)
    return 0;
  pthread_mutex_lock(&a->mu);
  uintptr_t out = 0;
  int c = class_of(len);
  if (c < 0) {
    /* Its own region, registered alone (upstream does the same). */
    void *p = map(len);
    if (p && mc_register(a->eng, p, len, NULL) == 0) {
      if (push(&a->used_addr, (uintptr_t)p) == 0) {
        if (push(&a->used_len, (uintptr_t)len) == 0)
          out = (uintptr_t)p;
        else
          a->used_addr.n--;
      }
      if (!out)
        mc_unregister(a->eng, p);
    }
    if (p && !out)
      munmap(p, len);
  } else if (a->free_list[c].n || refill(a, c) == 0) {
    mcpy_ulist *fl = &a->free_list[c];
    uintptr_t b = fl->v[fl->n - 1];
    if (push(&a->used_addr, b) == 0) {
      if (push(&a->used_len, (uintptr_t)(CLASS0 << c)) == 0) {
        fl->n--;
        out = b;
      } else {
        a->used_addr.n--;
      }
    }
  }
  pthread_mutex_unlock(&a->mu);
  return out;
}

int mcpy_alloc_put(mcpy_alloc *a, uintptr_t addr, size_t len) {
  pthread_mutex_lock(&a->mu);
  int rc = MC_ENOENT;
  for (size_t i = 0; i < a->used_addr.n; i++) {
    if (a->used_addr.v[i] != addr)
      continue;
    size_t have = a->used_len.v[i];
    int c = class_of(have);
    int big = have > CLASS_MAX;
    /* The caller names the length it asked for, as upstream's API has it:
     * it must fall in the same class (or be the region's own length). */
    if (big ? len != have : class_of(len) != c) {
      rc = MC_EINVAL;
      break;
    }
    if (big) {
      rc = mc_unregister(a->eng, (void *)addr);
      if (rc)
        break;
      munmap((void *)addr, have);
    } else if ((rc = push(&a->free_list[c], addr)) != 0) {
      break;
    }
    drop_at(&a->used_addr, i);
    drop_at(&a->used_len, i);
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&a->mu);
  return rc;
}

void mcpy_alloc_fini(mcpy_alloc *a) {
  for (size_t i = 0; i < a->used_addr.n; i++)
    if (a->used_len.v[i] > CLASS_MAX)
      munmap((void *)a->used_addr.v[i], a->used_len.v[i]);
  for (size_t i = 0; i < a->slabs.n; i++)
    munmap((void *)a->slabs.v[i], a->slab_size);
  free(a->slabs.v);
  free(a->used_addr.v);
  free(a->used_len.v);
  for (int c = 0; c < MCPY_NCLASSES; c++)
    free(a->free_list[c].v);
  pthread_mutex_destroy(&a->mu);
  memset(a, 0, sizeof *a);
}
