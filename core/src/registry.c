/* Local memory registry: the buffers this engine exposes, registered with
 * every transport that can serve their memory kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_internal.h"
#include "topology.h"

#define COMP "registry"

/* Index of the first buffer whose end is above addr (binary search). */
static size_t lower_bound(mc_engine *e, uint64_t addr) {
  size_t lo = 0, hi = e->nbufs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (e->bufs[mid]->addr + e->bufs[mid]->len <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int parse_location(const char *loc, uint32_t *kind, int32_t *dev) {
  static const struct {
    const char *prefix;
    uint32_t kind;
  } kinds[] = {{"cpu", MC_MEM_CPU}, {"cuda", MC_MEM_CUDA}, {"hip", MC_MEM_HIP},
               {"npu", MC_MEM_NPU}, {"file", MC_MEM_FILE}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    size_t n = strlen(kinds[i].prefix);
    if (strncmp(loc, kinds[i].prefix, n) != 0)
      continue;
    if (loc[n] == '\0') {
      *kind = kinds[i].kind;
      *dev = -1;
      return 0;
    }
    if (loc[n] != ':')
      return MC_EINVAL;
    char *end;
    long v = strtol(loc + n + 1, &end, 10);
    if (end == loc + n + 1 || *end || v < 0 || v > 4095)
      return MC_EINVAL;
    *kind = kinds[i].kind;
    *dev = (int32_t)v;
    return 0;
  }
  return MC_EINVAL;
}

static void buf_free(mc_engine *e, mc_local_buf *b) {
  int closing = atomic_load(&e->closing); /* fini released registrations */
  for (int i = 0; i < e->ntransports; i++) {
    if (b->mem[i] && !closing) {
      mc_transport *t = e->transports[i];
      pthread_mutex_lock(&t->ctl_lock);
      int rc = t->ops->deregister_mem(t->ctx, b->mem[i]);
      pthread_mutex_unlock(&t->ctl_lock);
      if (rc)
        MC_WARN(&e->log, COMP, "%s: deregister of 0x%llx failed: %s",
                t->plugin->name, (unsigned long long)b->addr, mc_strerror(rc));
    }
    free(b->rkey[i]);
    free(b->rails[i]);
  }
  free(b);
}

static int do_unregister(mc_engine *e, void *addr, mc_local_buf **taken);

static int do_register(mc_engine *e, void *addr, size_t len,
                       const char *location, int shared_by) {
  if (!e || !addr || len == 0)
    return MC_EINVAL;
  uint64_t a = (uint64_t)(uintptr_t)addr;
  if (a + len < a)
    return MC_ERANGE;
  char loc[32];
  int32_t dev = -1;
  uint32_t kind = MC_MEM_CPU;
  if (location) {
    if (strlen(location) >= sizeof loc || parse_location(location, &kind, &dev)) {
      MC_ERROR(&e->log, COMP,
               "register 0x%llx+%zu: bad location '%s' (expected cpu:N, cuda:N, "
               "hip:N, npu:N or file:N)",
               (unsigned long long)a, len, location);
      return MC_EINVAL;
    }
    snprintf(loc, sizeof loc, "%s", location);
  } else {
    mc_topo_locate_addr(addr, loc, sizeof loc); /* "cpu:N" of the page */
    parse_location(loc, &kind, &dev);
  }
  mc_local_buf *b = calloc(1, sizeof *b);
  if (!b)
    return MC_ENOMEM;
  b->addr = a;
  b->len = len;
  b->kind = kind;
  b->device = dev;
  b->shared_by = shared_by;
  snprintf(b->location, sizeof b->location, "%s", loc);
  if (mc_rails_rank_buffer(e, b)) {
    buf_free(e, b);
    return MC_ENOMEM;
  }

  pthread_rwlock_wrlock(&e->reg_lock);
  size_t pos = lower_bound(e, a);
  if (pos < e->nbufs && e->bufs[pos]->addr < a + len) {
    MC_ERROR(&e->log, COMP,
             "register 0x%llx+%zu overlaps registered 0x%llx+%llu",
             (unsigned long long)a, len, (unsigned long long)e->bufs[pos]->addr,
             (unsigned long long)e->bufs[pos]->len);
    pthread_rwlock_unlock(&e->reg_lock);
    buf_free(e, b);
    return MC_EEXIST;
  }
  int served = 0, rc = 0;
  for (int i = 0; i < e->ntransports && !rc; i++) {
    mc_transport *t = e->transports[i];
    if (!((t->ops->local_mem_kinds | t->ops->remote_mem_kinds) & kind))
      continue;
    mc_mem_desc md = {.addr = a, .len = len, .kind = kind, .device = dev,
                      .location = loc};
    uint8_t key[MC_RKEY_MAX];
    size_t klen = sizeof key;
    pthread_mutex_lock(&t->ctl_lock);
    int r = t->ops->register_mem(t->ctx, &md, &b->mem[i], key, &klen);
    pthread_mutex_unlock(&t->ctl_lock);
    if (r == MC_ENOTSUP) {
      b->mem[i] = NULL;
      continue;
    }
    if (r || klen > MC_RKEY_MAX) {
      MC_ERROR(&e->log, COMP, "%s: register 0x%llx+%zu failed: %s",
               t->plugin->name, (unsigned long long)a, len,
               mc_strerror(r ? r : MC_EPROTO));
      rc = r ? r : MC_EPROTO;
      break;
    }
    b->rkey[i] = malloc(klen ? klen : 1);
    if (!b->rkey[i]) {
      rc = MC_ENOMEM;
      break;
    }
    memcpy(b->rkey[i], key, klen);
    b->rkey_len[i] = (uint32_t)klen;
    served++;
  }
  if (!rc && !served) {
    MC_ERROR(&e->log, COMP, "register 0x%llx+%zu (%s): no loaded transport serves this memory kind",
             (unsigned long long)a, len, loc);
    rc = MC_ENOTSUP;
  }
  if (!rc && e->nbufs == e->capbufs) {
    size_t nc = e->capbufs ? e->capbufs * 2 : 16;
    mc_local_buf **nb = realloc(e->bufs, nc * sizeof *nb);
    if (!nb)
      rc = MC_ENOMEM;
    else {
      e->bufs = nb;
      e->capbufs = nc;
    }
  }
  if (rc) {
    pthread_rwlock_unlock(&e->reg_lock);
    buf_free(e, b);
    return rc;
  }
  memmove(&e->bufs[pos + 1], &e->bufs[pos], (e->nbufs - pos) * sizeof *e->bufs);
  e->bufs[pos] = b;
  e->nbufs++;
  pthread_rwlock_unlock(&e->reg_lock);
  rc = mc_engine_publish(e);
  if (rc) {
    /* An error means "not registered": a caller that then frees the memory
     * must not leave it registered with the transports, nor published by
     * the backend's retries.  Nothing can use it yet (no peer saw it). */
    MC_ERROR(&e->log, COMP, "register 0x%llx+%zu: rolled back, the segment "
             "could not be republished (%s)",
             (unsigned long long)a, len, mc_strerror(rc));
    mc_local_buf *taken = NULL;
    if (do_unregister(e, addr, &taken) == 0)
      buf_free(e, taken);
    return rc;
  }
  MC_DEBUG(&e->log, COMP, "registered 0x%llx+%zu %s with %d transport(s)",
           (unsigned long long)a, len, loc, served);
  return 0;
}

int mc_register(mc_engine *e, void *addr, size_t len, const char *location) {
  return do_register(e, addr, len, location, -1);
}

static int do_unregister(mc_engine *e, void *addr, mc_local_buf **taken) {
  if (!e || !addr)
    return MC_EINVAL;
  uint64_t a = (uint64_t)(uintptr_t)addr;
  pthread_rwlock_wrlock(&e->reg_lock);
  size_t pos = lower_bound(e, a);
  if (pos >= e->nbufs || e->bufs[pos]->addr != a) {
    pthread_rwlock_unlock(&e->reg_lock);
    return MC_ENOENT;
  }
  mc_local_buf *b = e->bufs[pos];
  if (atomic_load(&b->inflight) > 0) {
    pthread_rwlock_unlock(&e->reg_lock);
    return MC_EBUSY;
  }
  memmove(&e->bufs[pos], &e->bufs[pos + 1], (e->nbufs - pos - 1) * sizeof *e->bufs);
  e->nbufs--;
  pthread_rwlock_unlock(&e->reg_lock);
  /* Withdraw it from peers first, then revoke it in the transports. */
  mc_engine_publish(e);
  *taken = b;
  return 0;
}

int mc_unregister(mc_engine *e, void *addr) {
  mc_local_buf *b = NULL;
  int rc = do_unregister(e, addr, &b);
  if (rc)
    return rc;
  buf_free(e, b);
  return 0;
}

int mc_alloc_shared(mc_engine *e, size_t len, const char *location, void **addr) {
  if (!e || !addr || len == 0)
    return MC_EINVAL;
  for (int i = 0; i < e->ntransports; i++) {
    mc_transport *t = e->transports[i];
    if (!t->ops->alloc_mem)
      continue;
    void *p = NULL;
    pthread_mutex_lock(&t->ctl_lock);
    int rc = t->ops->alloc_mem(t->ctx, len, location ? location : "cpu:0", &p);
    pthread_mutex_unlock(&t->ctl_lock);
    if (rc == MC_ENOTSUP)
      continue;
    if (rc)
      return rc;
    rc = do_register(e, p, len, location ? location : "cpu:0", i);
    if (rc) {
      pthread_mutex_lock(&t->ctl_lock);
      t->ops->free_mem(t->ctx, p, len);
      pthread_mutex_unlock(&t->ctl_lock);
      return rc;
    }
    *addr = p;
    return 0;
  }
  MC_ERROR(&e->log, COMP,
           "mc_alloc_shared: no loaded transport offers shared memory (load shm)");
  return MC_ENOTSUP;
}

int mc_free_shared(mc_engine *e, void *addr) {
  mc_local_buf *b = NULL;
  int rc = do_unregister(e, addr, &b);
  if (rc)
    return rc;
  int by = b->shared_by;
  uint64_t len = b->len;
  buf_free(e, b);
  if (by < 0) {
    MC_WARN(&e->log, COMP, "mc_free_shared(%p): not from mc_alloc_shared; only unregistered",
            addr);
    return MC_EINVAL;
  }
  mc_transport *t = e->transports[by];
  pthread_mutex_lock(&t->ctl_lock);
  rc = t->ops->free_mem(t->ctx, addr, len);
  pthread_mutex_unlock(&t->ctl_lock);
  return rc;
}

mc_local_buf *mc_registry_acquire(mc_engine *e, uint64_t addr, uint64_t len) {
  pthread_rwlock_rdlock(&e->reg_lock);
  size_t pos = lower_bound(e, addr);
  mc_local_buf *b = NULL;
  if (pos < e->nbufs) {
    mc_local_buf *c = e->bufs[pos];
    if (addr >= c->addr && addr + len >= addr && addr + len <= c->addr + c->len) {
      b = c;
      atomic_fetch_add(&b->inflight, 1);
    }
  }
  pthread_rwlock_unlock(&e->reg_lock);
  return b;
}

void mc_registry_release(mc_local_buf *b) {
  if (b)
    atomic_fetch_sub(&b->inflight, 1);
}

int mc_registry_fill_desc(mc_engine *e, mc_seg_desc *d) {
  pthread_rwlock_rdlock(&e->reg_lock);
  d->nbuffers = 0;
  d->buffers = e->nbufs ? calloc(e->nbufs, sizeof *d->buffers) : NULL;
  if (e->nbufs && !d->buffers) {
    pthread_rwlock_unlock(&e->reg_lock);
    return MC_ENOMEM;
  }
  for (size_t i = 0; i < e->nbufs; i++) {
    mc_local_buf *b = e->bufs[i];
    mc_desc_buffer *db = &d->buffers[d->nbuffers++];
    db->addr = b->addr;
    db->len = b->len;
    db->kind = b->kind;
    snprintf(db->location, sizeof db->location, "%s", b->location);
    db->keys = calloc((size_t)e->ntransports + 1, sizeof *db->keys);
    if (!db->keys) {
      pthread_rwlock_unlock(&e->reg_lock);
      return MC_ENOMEM;
    }
    for (int t = 0; t < e->ntransports; t++) {
      if (!b->mem[t])
        continue;
      mc_desc_key *k = &db->keys[db->nkeys++];
      k->transport = (uint32_t)t;
      k->len = b->rkey_len[t];
      memcpy(k->bytes, b->rkey[t], b->rkey_len[t]);
    }
  }
  pthread_rwlock_unlock(&e->reg_lock);
  return 0;
}

void mc_registry_clear(mc_engine *e) {
  for (size_t i = 0; i < e->nbufs; i++) {
    mc_local_buf *b = e->bufs[i];
    int by = b->shared_by;
    void *addr = (void *)(uintptr_t)b->addr;
    uint64_t len = b->len;
    buf_free(e, b);
    if (by >= 0 && !atomic_load(&e->closing))
      e->transports[by]->ops->free_mem(e->transports[by]->ctx, addr, len);
  }
  e->nbufs = 0;
}
