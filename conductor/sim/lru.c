/* See lru.h. */
#include "lru.h"

#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

static size_t hh(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return (size_t)(x ^ (x >> 33));
}

int sim_lru_init(sim_lru *l, size_t cap) {
  memset(l, 0, sizeof *l);
  l->cap = cap;
  l->head = l->tail = l->free_head = NONE;
  if (!cap)
    return 0;
  size_t t = 16;
  while (t < cap * 2)
    t <<= 1;
  l->tab = calloc(t, sizeof *l->tab);
  l->node = malloc(cap * sizeof *l->node);
  if (!l->tab || !l->node)
    return -1;
  l->tmask = t - 1;
  for (size_t i = 0; i < cap; i++)
    l->node[i].next = i + 1 < cap ? (uint32_t)(i + 1) : NONE;
  l->free_head = 0;
  return 0;
}

void sim_lru_free(sim_lru *l) {
  free(l->tab);
  free(l->node);
  memset(l, 0, sizeof *l);
}

static size_t slot(const sim_lru *l, uint64_t key, int *found) {
  size_t i = hh(key) & l->tmask;
  while (l->tab[i]) {
    if (l->node[l->tab[i] - 1].key == key) {
      *found = 1;
      return i;
    }
    i = (i + 1) & l->tmask;
  }
  *found = 0;
  return i;
}

static void tab_del(sim_lru *l, size_t i) {
  size_t j = i;
  for (;;) {
    j = (j + 1) & l->tmask;
    if (!l->tab[j])
      break;
    size_t k = hh(l->node[l->tab[j] - 1].key) & l->tmask;
    int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      l->tab[i] = l->tab[j];
      i = j;
    }
  }
  l->tab[i] = 0;
}

static void unlink_node(sim_lru *l, uint32_t x) {
  sim_lru_node *n = &l->node[x];
  if (n->prev != NONE)
    l->node[n->prev].next = n->next;
  else
    l->head = n->next;
  if (n->next != NONE)
    l->node[n->next].prev = n->prev;
  else
    l->tail = n->prev;
}

static void push_front(sim_lru *l, uint32_t x) {
  l->node[x].prev = NONE;
  l->node[x].next = l->head;
  if (l->head != NONE)
    l->node[l->head].prev = x;
  l->head = x;
  if (l->tail == NONE)
    l->tail = x;
}

int sim_lru_has(const sim_lru *l, uint64_t key) {
  int f = 0;
  if (l->cap)
    slot(l, key, &f);
  return f;
}

int sim_lru_touch(sim_lru *l, uint64_t key) {
  if (!l->cap)
    return 0;
  int f;
  size_t i = slot(l, key, &f);
  if (!f)
    return 0;
  uint32_t x = l->tab[i] - 1;
  unlink_node(l, x);
  push_front(l, x);
  return 1;
}

int sim_lru_insert(sim_lru *l, uint64_t key, uint64_t *evicted) {
  if (!l->cap)
    return -1;
  if (sim_lru_touch(l, key))
    return 0;
  int rc = 2;
  if (l->free_head == NONE) {
    uint32_t v = l->tail;
    unlink_node(l, v);
    int f;
    size_t i = slot(l, l->node[v].key, &f);
    tab_del(l, i);
    *evicted = l->node[v].key;
    l->node[v].next = NONE;
    l->free_head = v;
    l->n--;
    rc = 1;
  }
  uint32_t x = l->free_head;
  l->free_head = l->node[x].next;
  l->node[x].key = key;
  push_front(l, x);
  int f;
  size_t i = slot(l, key, &f);
  l->tab[i] = x + 1;
  l->n++;
  return rc;
}

uint32_t sim_lru_prefix(const sim_lru *l, const uint64_t *blocks, uint32_t n) {
  uint32_t i = 0;
  while (i < n && sim_lru_has(l, blocks[i]))
    i++;
  return i;
}
