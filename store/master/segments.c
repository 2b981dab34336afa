/* Clients (liveness) and segments (registry, placement, space). */
#include <stdlib.h>
#include <string.h>

#include "master.h"
#include "mooncake/errors.h"

static uint32_t hash_bytes(const void *p, size_t n) {
  const uint8_t *b = p;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
}

/* ---- clients ---- */

static mcs_client_shard *cshard(mcs_master *m, const uint8_t *cid) {
  return &m->clients[hash_bytes(cid, MCS_CLIENT_ID_LEN) % MCS_CLIENT_SHARDS];
}

static mcs_client *client_find(mcs_client_shard *cs, const uint8_t *cid) {
  for (mcs_client *c = cs->head; c; c = c->next)
    if (!memcmp(c->id, cid, MCS_CLIENT_ID_LEN))
      return c;
  return NULL;
}

int mcs_client_known(mcs_master *m, const uint8_t *cid) {
  mcs_client_shard *cs = cshard(m, cid);
  pthread_mutex_lock(&cs->mu);
  int known = client_find(cs, cid) != NULL;
  pthread_mutex_unlock(&cs->mu);
  return known;
}

/* Registers or refreshes cid; returns it (NULL when out of memory), *fresh
 * says whether it was new.  Called with the shard locked. */
static mcs_client *client_upsert_locked(mcs_master *m, mcs_client_shard *cs,
                                        const uint8_t *cid, int *fresh) {
  mcs_client *c = client_find(cs, cid);
  *fresh = 0;
  if (!c && (c = calloc(1, sizeof(*c)))) {
    memcpy(c->id, cid, MCS_CLIENT_ID_LEN);
    c->next = cs->head;
    cs->head = c;
    atomic_fetch_add(&m->nclients, 1);
    *fresh = 1;
  }
  if (c)
    c->last_seen_ns = mcs_now_ns();
  return c;
}

void mcs_client_touch(mcs_master *m, const uint8_t *cid, int remounted) {
  mcs_client_shard *cs = cshard(m, cid);
  int fresh;
  pthread_mutex_lock(&cs->mu);
  mcs_client *c = client_upsert_locked(m, cs, cid, &fresh);
  if (c && remounted)
    c->need_remount = 0;
  pthread_mutex_unlock(&cs->mu);
}

void mcs_ping(mcs_master *m, const uint8_t *cid, uint64_t seen_view, int *status) {
  mcs_client_shard *cs = cshard(m, cid);
  int fresh;
  pthread_mutex_lock(&cs->mu);
  mcs_client *c = client_upsert_locked(m, cs, cid, &fresh);
  /* A client new to this master that has talked to a master before (a
   * view) had segments we no longer know: restart or expiry.  It is told
   * so until it remounts, so a lost answer or a failed remount is retried. */
  if (c && fresh && seen_view != 0)
    c->need_remount = 1;
  *status = c && c->need_remount ? MCSTORE__CLIENT_STATUS__NEED_REMOUNT
                                 : MCSTORE__CLIENT_STATUS__CLIENT_OK;
  pthread_mutex_unlock(&cs->mu);
}

/* ---- segment registry ---- */

static uint32_t name_bucket(const char *name) {
  return hash_bytes(name, strlen(name)) % MCS_NAME_BUCKETS;
}

static mcs_segment *seg_find_locked(mcs_master *m, const uint8_t *sid, uint32_t *idx) {
  for (uint32_t i = 0; i < m->nsegs; i++)
    if (!memcmp(m->segs[i]->id, sid, MCS_CLIENT_ID_LEN)) {
      if (idx)
        *idx = i;
      return m->segs[i];
    }
  return NULL;
}

void mcs_seg_unref(mcs_segment *s) {
  if (atomic_fetch_sub(&s->refs, 1) == 1) {
    mcs_alloc_destroy(s->alloc);
    pthread_mutex_destroy(&s->mu);
    free(s);
  }
}

void mcs_reps_release(mcs_rep_out *r, int n) {
  for (int i = 0; i < n; i++)
    mcs_seg_unref(r[i].seg);
}

int mcs_mount(mcs_master *m, const uint8_t *cid, const uint8_t *sid, const char *name,
              const char *host, const char *protocol, uint64_t base, uint64_t size) {
  return mcs_mount_ex(m, cid, sid, name, host, protocol, base, size, 0);
}

int mcs_mount_ex(mcs_master *m, const uint8_t *cid, const uint8_t *sid, const char *name,
                 const char *host, const char *protocol, uint64_t base, uint64_t size,
                 int disk) {
  /* 1 PiB per segment: capacity sums of thousands of segments stay far
   * from overflowing. */
  if (size < MCS_ALLOC_ALIGN || size > (1ull << 50) || !*name || base + size < base)
    return MCSTORE__ERROR_CODE__INVALID_PARAMS;
  disk = disk != 0;
  if (disk && !m->cfg.enable_offload)
    return MCSTORE__ERROR_CODE__NOT_SUPPORTED;
  mcs_client_touch(m, cid, 0);
  pthread_rwlock_wrlock(&m->seg_lock);
  mcs_segment *old = seg_find_locked(m, sid, NULL);
  if (old) {
    /* Remounting what we already hold is a no-op; anything else clashes. */
    int same = !memcmp(old->cid, cid, MCS_CLIENT_ID_LEN) && old->base == base &&
               old->size == size && !strcmp(old->name, name) && old->disk == disk;
    pthread_rwlock_unlock(&m->seg_lock);
    return same ? 0 : MCSTORE__ERROR_CODE__SEGMENT_ALREADY_EXISTS;
  }
  int rc = MCSTORE__ERROR_CODE__INTERNAL_ERROR;
  mcs_segment *s = calloc(1, sizeof(*s));
  if (!s)
    goto out;
  if (m->nsegs == m->segcap) {
    uint32_t cap = m->segcap ? m->segcap * 2 : 64;
    mcs_segment **n = realloc(m->segs, cap * sizeof(*n));
    if (!n) {
      free(s);
      goto out;
    }
    m->segs = n;
    m->segcap = cap;
  }
  if (mcs_alloc_create(size, &s->alloc) != 0) {
    free(s);
    goto out;
  }
  memcpy(s->id, sid, MCS_CLIENT_ID_LEN);
  memcpy(s->cid, cid, MCS_CLIENT_ID_LEN);
  snprintf(s->name, sizeof s->name, "%s", name);
  snprintf(s->host, sizeof s->host, "%s", host);
  snprintf(s->protocol, sizeof s->protocol, "%s", protocol);
  s->base = base;
  s->disk = disk;
  s->size = mcs_alloc_capacity(s->alloc);
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->refs, 1);
  uint32_t b = name_bucket(s->name);
  s->name_next = m->by_name[b];
  m->by_name[b] = s;
  m->segs[m->nsegs++] = s;
  if (disk) {
    atomic_fetch_add(&m->disk_capacity, s->size);
    atomic_fetch_add(&m->ndisk, 1);
  } else {
    atomic_fetch_add(&m->capacity, s->size);
  }
  rc = 0;
out:
  pthread_rwlock_unlock(&m->seg_lock);
  return rc;
}

/* Takes s out of the registry (write lock held). */
static void seg_detach_locked(mcs_master *m, mcs_segment *s, uint32_t idx) {
  m->segs[idx] = m->segs[--m->nsegs];
  mcs_segment **pp = &m->by_name[name_bucket(s->name)];
  while (*pp != s)
    pp = &(*pp)->name_next;
  *pp = s->name_next;
}

/* After detaching: no new allocation can pick s; drop its allocator. */
static void seg_kill(mcs_master *m, mcs_segment *s) {
  pthread_mutex_lock(&s->mu);
  s->dying = 1;
  mcs_alloc_destroy(s->alloc);
  s->alloc = NULL;
  atomic_store_explicit(&s->used, 0, memory_order_relaxed);
  pthread_mutex_unlock(&s->mu);
  if (s->disk) {
    atomic_fetch_sub(&m->disk_capacity, s->size);
    atomic_fetch_sub(&m->ndisk, 1);
  } else {
    atomic_fetch_sub(&m->capacity, s->size);
  }
}

int mcs_unmount(mcs_master *m, const uint8_t *cid, const uint8_t *sid) {
  pthread_rwlock_wrlock(&m->seg_lock);
  uint32_t idx;
  mcs_segment *s = seg_find_locked(m, sid, &idx);
  if (!s || memcmp(s->cid, cid, MCS_CLIENT_ID_LEN) != 0) {
    pthread_rwlock_unlock(&m->seg_lock);
    return s ? MCSTORE__ERROR_CODE__ILLEGAL_CLIENT : MCSTORE__ERROR_CODE__SEGMENT_NOT_FOUND;
  }
  seg_detach_locked(m, s, idx);
  pthread_rwlock_unlock(&m->seg_lock);
  seg_kill(m, s);
  mcs_sweep(m, &s, 1, NULL, 0);
  mcs_seg_unref(s);
  return 0;
}

void mcs_expire_clients(mcs_master *m) {
  uint64_t now = mcs_now_ns(), ttl = m->cfg.client_ttl_ms * 1000000ull;
  uint8_t (*dead)[MCS_CLIENT_ID_LEN] = NULL;
  int ndead = 0, cap = 0;
  for (int i = 0; i < MCS_CLIENT_SHARDS; i++) {
    mcs_client_shard *cs = &m->clients[i];
    pthread_mutex_lock(&cs->mu);
    for (mcs_client **pp = &cs->head; *pp;) {
      mcs_client *c = *pp;
      if (mcs_older(c->last_seen_ns, now, ttl + 1)) {
        if (ndead == cap) {
          int nc = cap ? cap * 2 : 16;
          void *n = realloc(dead, (size_t)nc * MCS_CLIENT_ID_LEN);
          if (!n)
            break; /* next round */
          dead = n;
          cap = nc;
        }
        memcpy(dead[ndead++], c->id, MCS_CLIENT_ID_LEN);
        *pp = c->next;
        free(c);
        atomic_fetch_sub(&m->nclients, 1);
        atomic_fetch_add(&m->expired_clients, 1);
      } else {
        pp = &c->next;
      }
    }
    pthread_mutex_unlock(&cs->mu);
  }
  if (!ndead)
    return;
  /* Their segments leave the registry in one go, then one sweep drops
   * every replica on them and revokes their puts. */
  mcs_segment **gone = NULL;
  int ngone = 0;
  pthread_rwlock_wrlock(&m->seg_lock);
  if (m->nsegs && (gone = malloc(m->nsegs * sizeof(*gone)))) {
    for (uint32_t i = 0; i < m->nsegs;) {
      mcs_segment *s = m->segs[i];
      int owned = 0;
      for (int d = 0; d < ndead && !owned; d++)
        owned = !memcmp(s->cid, dead[d], MCS_CLIENT_ID_LEN);
      if (owned) {
        seg_detach_locked(m, s, i); /* moves the last one to i */
        gone[ngone++] = s;
      } else {
        i++;
      }
    }
  }
  pthread_rwlock_unlock(&m->seg_lock);
  for (int i = 0; i < ngone; i++)
    seg_kill(m, gone[i]);
  mcs_sweep(m, gone, ngone, (const uint8_t(*)[MCS_CLIENT_ID_LEN])dead, ndead);
  for (int i = 0; i < ngone; i++)
    mcs_seg_unref(gone[i]);
  free(gone);
  free(dead);
}

static uint64_t used_of(mcs_master *m, int disk) {
  uint64_t sum = 0;
  pthread_rwlock_rdlock(&m->seg_lock);
  for (uint32_t i = 0; i < m->nsegs; i++)
    if (m->segs[i]->disk == disk)
      sum += atomic_load_explicit(&m->segs[i]->used, memory_order_relaxed);
  pthread_rwlock_unlock(&m->seg_lock);
  return sum;
}

uint64_t mcs_used(mcs_master *m) { return used_of(m, 0); }
uint64_t mcs_disk_used(mcs_master *m) { return used_of(m, 1); }

uint64_t mcs_used_net(mcs_master *m) {
  uint64_t u = used_of(m, 0), p = atomic_load(&m->pending_offload_bytes);
  return u > p ? u - p : 0;
}

uint64_t mcs_largest_segment(mcs_master *m) {
  uint64_t best = 0;
  pthread_rwlock_rdlock(&m->seg_lock);
  for (uint32_t i = 0; i < m->nsegs; i++)
    if (!m->segs[i]->disk && m->segs[i]->size > best)
      best = m->segs[i]->size;
  pthread_rwlock_unlock(&m->seg_lock);
  return best;
}

/* ---- placement ---- */

static __thread uint64_t rng_state;

static uint64_t rng_next(void) {
  if (!rng_state)
    rng_state = mcs_now_ns() ^ (uint64_t)(uintptr_t)&rng_state;
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int try_alloc(mcs_master *m, mcs_segment *s, uint64_t size, mcs_rep *r) {
  int ok = 0;
  pthread_mutex_lock(&s->mu);
  if (!s->dying) {
    r->blk = mcs_alloc_get(s->alloc, size, &r->off);
    if (r->blk) {
      atomic_store_explicit(&s->used, mcs_alloc_used(s->alloc), memory_order_relaxed);
      ok = 1;
    }
  }
  pthread_mutex_unlock(&s->mu);
  if (ok) {
    atomic_fetch_add(&s->refs, 1);
    r->seg = s;
  }
  return ok;
}

void mcs_rep_free(mcs_master *m, mcs_rep *r) {
  mcs_segment *s = r->seg;
  pthread_mutex_lock(&s->mu);
  int dying = s->dying;
  pthread_mutex_unlock(&s->mu);
  if (s->disk && !dying) {
    /* Reusable only once the owner released the file space (a hole
     * punched later into a range already rewritten would lose data). */
    mcs_trim *t = malloc(sizeof(*t));
    if (t) {
      t->rep = *r;
      t->handed_ns = 0;
      pthread_mutex_lock(&m->off_mu);
      t->id = ++m->next_id;
      t->next = m->trims;
      m->trims = t;
      pthread_mutex_unlock(&m->off_mu);
      r->seg = NULL;
      return;
    }
  }
  mcs_rep_free_now(m, r);
}

void mcs_rep_free_now(mcs_master *m, mcs_rep *r) {
  mcs_segment *s = r->seg;
  pthread_mutex_lock(&s->mu);
  if (!s->dying) {
    mcs_alloc_put(s->alloc, r->blk);
    atomic_store_explicit(&s->used, mcs_alloc_used(s->alloc), memory_order_relaxed);
  }
  pthread_mutex_unlock(&s->mu);
  r->seg = NULL;
  mcs_seg_unref(s);
}

static int chosen(const mcs_rep *out, int n, const mcs_segment *s, int by_host) {
  for (int i = 0; i < n; i++)
    if (out[i].seg == s || (by_host && !strcmp(out[i].seg->host, s->host)))
      return 1;
  return 0;
}

int mcs_place(mcs_master *m, const mcs_put_cfg *cfg, uint64_t size, mcs_rep *out) {
  int want = cfg->replica_num ? (int)cfg->replica_num : 1;
  if (want > (int)MCS_MAX_REPLICAS)
    want = MCS_MAX_REPLICAS;
  int n = 0;
  pthread_rwlock_rdlock(&m->seg_lock);
  /* Locality first: the caller's preferred segments, in its order. */
  for (size_t p = 0; p < cfg->npreferred && n < want; p++) {
    const char *name = cfg->preferred[p];
    for (mcs_segment *s = m->by_name[name_bucket(name)]; s && n < want; s = s->name_next)
      if (!s->disk && !strcmp(s->name, name) && !chosen(out, n, s, 0) && try_alloc(m, s, size, &out[n]))
        n++;
  }
  /* Then from a random start: first on hosts not used yet, then on any
   * segment not used yet. */
  uint32_t ns = m->nsegs;
  if (n < want && ns) {
    uint32_t start = (uint32_t)(rng_next() % ns);
    for (int pass = 0; pass < 2 && n < want; pass++)
      for (uint32_t i = 0; i < ns && n < want; i++) {
        mcs_segment *s = m->segs[(start + i) % ns];
        if (!s->disk && !chosen(out, n, s, pass == 0) && try_alloc(m, s, size, &out[n]))
          n++;
      }
  }
  pthread_rwlock_unlock(&m->seg_lock);
  return n;
}

int mcs_place_disk(mcs_master *m, uint64_t size, mcs_rep *out) {
  int rc = -1;
  pthread_rwlock_rdlock(&m->seg_lock);
  uint32_t ns = m->nsegs;
  if (ns) {
    /* A random start spreads offloads over the SSD tiers. */
    uint32_t start = (uint32_t)(rng_next() % ns);
    for (uint32_t i = 0; i < ns && rc; i++) {
      mcs_segment *s = m->segs[(start + i) % ns];
      if (s->disk && try_alloc(m, s, size, out))
        rc = 0;
    }
  }
  pthread_rwlock_unlock(&m->seg_lock);
  return rc;
}
