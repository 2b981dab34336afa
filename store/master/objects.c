/* Objects: the sharded key -> replicas map, puts and upserts, reads with
 * leases, removal, the sweep after segment loss, reclaiming dead puts. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "master.h"
#include "mooncake/errors.h"

#define MS 1000000ull

static uint64_t hash_key(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
  /* FNV's low bits barely depend on the last bytes' high bits, and keys
   * often differ only there ("layer3/block17"): finish with murmur3's
   * mixer so shard (low bits) and bucket (the next ones) are uniform. */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

static mcs_shard *shard_of(mcs_master *m, uint64_t h) { return &m->shards[h % MCS_SHARDS]; }

static mcs_obj **slot(mcs_shard *sh, uint64_t h) {
  return &sh->tab[(h / MCS_SHARDS) & sh->mask];
}

static mcs_obj *find(mcs_shard *sh, uint64_t h, const char *key, size_t klen) {
  if (!sh->tab)
    return NULL;
  for (mcs_obj *o = *slot(sh, h); o; o = o->hnext)
    if (o->hash == h && o->klen == klen && !memcmp(o->key, key, klen))
      return o;
  return NULL;
}

static int grow(mcs_shard *sh) {
  uint32_t n = sh->tab ? (sh->mask + 1) * 2 : 16;
  mcs_obj **t = calloc(n, sizeof(*t));
  if (!t)
    return MC_ENOMEM;
  for (uint32_t i = 0; sh->tab && i <= sh->mask; i++)
    for (mcs_obj *o = sh->tab[i], *nx; o; o = nx) {
      nx = o->hnext;
      mcs_obj **s = &t[(o->hash / MCS_SHARDS) & (n - 1)];
      o->hnext = *s;
      *s = o;
    }
  free(sh->tab);
  sh->tab = t;
  sh->mask = n - 1;
  return 0;
}

/* Readable: a complete replica in memory or on disk. */
static int readable(const mcs_obj *o) { return o->nrep || o->has_disk; }

/* ---- intrusive lists ---- */

static void lru_unlink(mcs_shard *sh, mcs_obj *o) {
  if (o->lru_prev)
    o->lru_prev->lru_next = o->lru_next;
  else
    sh->lru_head = o->lru_next;
  if (o->lru_next)
    o->lru_next->lru_prev = o->lru_prev;
  else
    sh->lru_tail = o->lru_prev;
  o->lru_prev = o->lru_next = NULL;
}

static void lru_push(mcs_shard *sh, mcs_obj *o) {
  o->lru_next = NULL;
  o->lru_prev = sh->lru_tail;
  if (sh->lru_tail)
    sh->lru_tail->lru_next = o;
  else
    sh->lru_head = o;
  sh->lru_tail = o;
}

static void pend_link(mcs_master *m, mcs_shard *sh, mcs_obj *o) {
  o->pend_prev = NULL;
  o->pend_next = sh->pend_head;
  if (sh->pend_head)
    sh->pend_head->pend_prev = o;
  sh->pend_head = o;
  sh->npend++;
}

static void pend_unlink(mcs_master *m, mcs_shard *sh, mcs_obj *o) {
  if (o->pend_prev)
    o->pend_prev->pend_next = o->pend_next;
  else
    sh->pend_head = o->pend_next;
  if (o->pend_next)
    o->pend_next->pend_prev = o->pend_prev;
  o->pend_prev = o->pend_next = NULL;
  sh->npend--;
}

/* ---- freeing replicas ---- */

/* Frees reps now, or at at_ns (> now) through the shard's deferred list. */
static void release_reps(mcs_master *m, mcs_shard *sh, mcs_rep *reps, int n, uint64_t at_ns) {
  if (n <= 0)
    return;
  if (at_ns > mcs_now_ns()) {
    mcs_deferred *d = malloc(sizeof(*d));
    if (d) {
      d->at_ns = at_ns;
      d->nrep = (uint8_t)n;
      memcpy(d->rep, reps, (size_t)n * sizeof(*reps));
      d->next = sh->deferred;
      sh->deferred = d;
      return;
    }
  }
  for (int i = 0; i < n; i++)
    mcs_rep_free(m, &reps[i]);
}

/* Drops o's pending put; its space is released at at_ns. */
static void drop_pending(mcs_master *m, mcs_shard *sh, mcs_obj *o, uint64_t at_ns) {
  mcs_pending *p = o->pend;
  release_reps(m, sh, p->rep, p->nrep, at_ns);
  pend_unlink(m, sh, o);
  free(p);
  o->pend = NULL;
}

/* Gives up o's offload under way (the task in the queue becomes stale;
 * the range is trimmed by its owner, who does tasks and trims in order). */
static void cancel_offload(mcs_master *m, mcs_obj *o) {
  if (!o->off_id)
    return;
  mcs_rep_free(m, &o->off_rep);
  o->off_id = 0;
  atomic_fetch_sub(&m->pending_offloads, 1);
  atomic_fetch_sub(&m->pending_offload_bytes, o->size);
}

/* Drops o's disk replica (freed when its lease ends) and any offload. */
static void drop_disk(mcs_master *m, mcs_shard *sh, mcs_obj *o) {
  if (o->has_disk) {
    release_reps(m, sh, &o->disk, 1, o->lease_until_ns);
    o->has_disk = 0;
  }
  cancel_offload(m, o);
}

/* Unlinks and frees o with all its replicas (complete ones freed when
 * their lease ends). */
static void erase(mcs_master *m, mcs_shard *sh, mcs_obj *o, uint64_t pend_release_at) {
  mcs_obj **pp = slot(sh, o->hash);
  while (*pp != o)
    pp = &(*pp)->hnext;
  *pp = o->hnext;
  sh->count--;
  if (o->nrep) {
    lru_unlink(sh, o);
    release_reps(m, sh, o->rep, o->nrep, o->lease_until_ns);
  }
  drop_disk(m, sh, o);
  if (o->pend)
    drop_pending(m, sh, o, pend_release_at);
  free(o->rep);
  free(o);
}

/* ---- puts ---- */

static uint64_t soft_pin_ms(mcs_master *m, const mcs_put_cfg *cfg) {
  uint64_t ms = cfg->soft_pin_ttl_ms ? cfg->soft_pin_ttl_ms : m->cfg.default_kv_soft_pin_ttl_ms;
  return ms > m->cfg.max_kv_soft_pin_ttl_ms ? m->cfg.max_kv_soft_pin_ttl_ms : ms;
}

static void fill_out(const mcs_rep *r, int n, uint64_t size, int status, mcs_rep_out *out) {
  for (int i = 0; i < n; i++) {
    atomic_fetch_add(&r[i].seg->refs, 1);
    out[i].seg = r[i].seg;
    out[i].addr = r[i].seg->base + r[i].off;
    out[i].size = size;
    out[i].status = status;
    out[i].disk = r[i].seg->disk;
  }
}

/* One attempt; MCSTORE__ERROR_CODE__NO_AVAILABLE_HANDLE lets the caller
 * evict and retry. */
static int put_start_once(mcs_master *m, const uint8_t *cid, const char *key, size_t klen,
                          uint64_t size, const mcs_put_cfg *cfg, int upsert,
                          mcs_rep_out *out, int *nout) {
  uint64_t h = hash_key(key, klen), now = mcs_now_ns();
  mcs_shard *sh = shard_of(m, h);
  int rc = 0;
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = find(sh, h, key, klen);
  if (o && readable(o) && !upsert) {
    rc = MCSTORE__ERROR_CODE__OBJECT_ALREADY_EXISTS;
    goto out;
  }
  if (o && readable(o) && o->hard_pin) {
    rc = MCSTORE__ERROR_CODE__INVALID_WRITE; /* hard-pinned values are immutable */
    goto out;
  }
  if (o && o->pend) {
    /* A put of this key is under way: it wins unless it is stale; a stale
     * one is pre-empted, its space kept until its writer cannot be
     * writing any more (the release timeout from its start). */
    if (!mcs_older(o->pend->start_ns, now, m->cfg.put_start_discard_timeout_ms * MS)) {
      rc = MCSTORE__ERROR_CODE__OBJECT_ALREADY_EXISTS;
      goto out;
    }
    drop_pending(m, sh, o, o->pend->start_ns + m->cfg.put_start_release_timeout_ms * MS);
  }
  mcs_pending *p = calloc(1, sizeof(*p));
  if (!p) {
    rc = MCSTORE__ERROR_CODE__INTERNAL_ERROR;
    goto out;
  }
  int n = mcs_place(m, cfg, size, p->rep);
  if (n == 0) {
    free(p);
    if (o && !readable(o) && !o->pend)
      erase(m, sh, o, 0); /* it held only the put just pre-empted */
    rc = MCSTORE__ERROR_CODE__NO_AVAILABLE_HANDLE;
    goto out;
  }
  if (!o) {
    if ((sh->count + 1 > (sh->tab ? sh->mask + 1 : 0) && grow(sh) != 0) ||
        !(o = calloc(1, sizeof(*o) + klen + 1))) {
      for (int i = 0; i < n; i++)
        mcs_rep_free(m, &p->rep[i]);
      free(p);
      rc = MCSTORE__ERROR_CODE__INTERNAL_ERROR;
      goto out;
    }
    o->hash = h;
    o->klen = (uint32_t)klen;
    memcpy(o->key, key, klen);
    mcs_obj **s = slot(sh, h);
    o->hnext = *s;
    *s = o;
    sh->count++;
  }
  memcpy(p->cid, cid, MCS_CLIENT_ID_LEN);
  p->start_ns = now;
  p->size = size;
  p->nrep = (uint8_t)n;
  p->upsert = (uint8_t)upsert;
  p->hard_pin = (uint8_t)!!cfg->hard_pin;
  p->soft_pin = (uint8_t)!!cfg->soft_pin;
  p->soft_pin_ms = soft_pin_ms(m, cfg);
  o->pend = p;
  pend_link(m, sh, o);
  fill_out(p->rep, n, size, MCSTORE__REPLICA_STATUS__REPLICA_PROCESSING, out);
  *nout = n;
out:
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

int mcs_put_start(mcs_master *m, const uint8_t *cid, const char *key, size_t klen,
                  uint64_t size, const mcs_put_cfg *cfg, int upsert, mcs_rep_out *out,
                  int *nout) {
  *nout = 0;
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  if (size == 0 || cfg->replica_num > MCS_MAX_REPLICAS)
    return MCSTORE__ERROR_CODE__INVALID_PARAMS;
  int rc = put_start_once(m, cid, key, klen, size, cfg, upsert, out, nout);
  if (rc == MCSTORE__ERROR_CODE__NO_AVAILABLE_HANDLE && size <= mcs_largest_segment(m)) {
    /* Full: evict (least recently used first) and try once more.  Not
     * when no segment could ever hold the object: nothing would be won. */
    if (mcs_evict(m, size) > 0)
      rc = put_start_once(m, cid, key, klen, size, cfg, upsert, out, nout);
  }
  return rc;
}

/* Finds o with a pending put of cid; rc says why not. */
static mcs_obj *pending_of(mcs_shard *sh, uint64_t h, const uint8_t *cid, const char *key,
                           size_t klen, int *rc) {
  mcs_obj *o = find(sh, h, key, klen);
  if (!o || !o->pend) {
    *rc = o ? MCSTORE__ERROR_CODE__INVALID_WRITE : MCSTORE__ERROR_CODE__OBJECT_NOT_FOUND;
    return NULL;
  }
  if (memcmp(o->pend->cid, cid, MCS_CLIENT_ID_LEN) != 0) {
    *rc = MCSTORE__ERROR_CODE__ILLEGAL_CLIENT;
    return NULL;
  }
  *rc = 0;
  return o;
}

int mcs_put_end(mcs_master *m, const uint8_t *cid, const char *key, size_t klen) {
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  uint64_t h = hash_key(key, klen), now = mcs_now_ns();
  mcs_shard *sh = shard_of(m, h);
  int rc;
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = pending_of(sh, h, cid, key, klen, &rc);
  if (o) {
    mcs_pending *p = o->pend;
    mcs_rep *reps = malloc(p->nrep * sizeof(*reps));
    if (!reps) {
      rc = MCSTORE__ERROR_CODE__INTERNAL_ERROR;
    } else {
      memcpy(reps, p->rep, p->nrep * sizeof(*reps));
      if (o->nrep) {
        /* Upsert: the old value's readers keep it until their lease ends. */
        release_reps(m, sh, o->rep, o->nrep, o->lease_until_ns);
        lru_unlink(sh, o);
      }
      free(o->rep);
      o->rep = reps;
      o->nrep = p->nrep;
      o->last_access_ns = now;
      if (!p->promote) {
        /* A new value: the disk copy of the old one goes too. */
        drop_disk(m, sh, o);
        o->size = p->size;
        o->hard_pin = p->hard_pin;
        o->soft_pin_until_ns = p->soft_pin ? now + p->soft_pin_ms * MS : 0;
        o->lease_until_ns = 0;
        o->version = atomic_fetch_add(&m->version_seq, 1) + 1;
      }
      lru_push(sh, o);
      pend_unlink(m, sh, o);
      free(p);
      o->pend = NULL;
    }
  }
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

int mcs_put_revoke(mcs_master *m, const uint8_t *cid, const char *key, size_t klen) {
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  uint64_t h = hash_key(key, klen);
  mcs_shard *sh = shard_of(m, h);
  int rc;
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = pending_of(sh, h, cid, key, klen, &rc);
  if (o) {
    /* The writer says it stopped writing: the space is free at once. */
    drop_pending(m, sh, o, 0);
    if (!readable(o))
      erase(m, sh, o, 0);
  }
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

int mcs_promote_start(mcs_master *m, const uint8_t *cid, const char *key, size_t klen,
                      uint64_t version, const mcs_put_cfg *cfg, mcs_rep_out *out, int *nout) {
  *nout = 0;
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  if (cfg->replica_num > MCS_MAX_REPLICAS)
    return MCSTORE__ERROR_CODE__INVALID_PARAMS;
  uint64_t h = hash_key(key, klen);
  mcs_shard *sh = shard_of(m, h);
  for (int attempt = 0; attempt < 2; attempt++) {
    int rc = 0;
    uint64_t size = 0;
    pthread_mutex_lock(&sh->mu);
    mcs_obj *o = find(sh, h, key, klen);
    if (!o || !readable(o))
      rc = o ? MCSTORE__ERROR_CODE__REPLICA_IS_NOT_READY : MCSTORE__ERROR_CODE__OBJECT_NOT_FOUND;
    else if (o->nrep || o->pend || !o->has_disk)
      rc = MCSTORE__ERROR_CODE__OBJECT_ALREADY_EXISTS; /* in memory, or being written */
    else if (o->version != version)
      rc = MCSTORE__ERROR_CODE__INVALID_VERSION;
    mcs_pending *p = NULL;
    int n = 0;
    if (!rc) {
      size = o->size;
      if (!(p = calloc(1, sizeof(*p))))
        rc = MCSTORE__ERROR_CODE__INTERNAL_ERROR;
      else if (!(n = mcs_place(m, cfg, size, p->rep)))
        rc = MCSTORE__ERROR_CODE__NO_AVAILABLE_HANDLE;
    }
    if (!rc) {
      memcpy(p->cid, cid, MCS_CLIENT_ID_LEN);
      p->start_ns = mcs_now_ns();
      p->size = size;
      p->nrep = (uint8_t)n;
      p->promote = 1;
      o->pend = p;
      pend_link(m, sh, o);
      fill_out(p->rep, n, size, MCSTORE__REPLICA_STATUS__REPLICA_PROCESSING, out);
      *nout = n;
      p = NULL;
    }
    free(p);
    pthread_mutex_unlock(&sh->mu);
    /* Memory full: make room (the object is on disk, nothing is lost by
     * failing) and try once more. */
    if (rc != MCSTORE__ERROR_CODE__NO_AVAILABLE_HANDLE || attempt ||
        size > mcs_largest_segment(m) || mcs_evict(m, size) == 0)
      return rc;
  }
  return MCSTORE__ERROR_CODE__NO_AVAILABLE_HANDLE;
}

/* ---- reads ---- */

int mcs_get_replicas(mcs_master *m, const char *key, size_t klen, mcs_rep_out *out,
                     int *nout) {
  uint64_t v;
  return mcs_get_replicas_v(m, key, klen, out, nout, &v);
}

int mcs_get_replicas_v(mcs_master *m, const char *key, size_t klen, mcs_rep_out *out,
                       int *nout, uint64_t *version) {
  *nout = 0;
  *version = 0;
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  uint64_t h = hash_key(key, klen), now = mcs_now_ns();
  mcs_shard *sh = shard_of(m, h);
  int rc = 0;
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = find(sh, h, key, klen);
  if (!o || !readable(o)) {
    rc = o ? MCSTORE__ERROR_CODE__REPLICA_IS_NOT_READY : MCSTORE__ERROR_CODE__OBJECT_NOT_FOUND;
  } else {
    uint64_t until = now + m->cfg.default_kv_lease_ttl_ms * MS;
    if (until > o->lease_until_ns)
      o->lease_until_ns = until;
    o->last_access_ns = now;
    if (o->nrep && sh->lru_tail != o) {
      lru_unlink(sh, o);
      lru_push(sh, o);
    }
    fill_out(o->rep, o->nrep, o->size, MCSTORE__REPLICA_STATUS__REPLICA_COMPLETE, out);
    *nout = o->nrep;
    if (o->has_disk && *nout < (int)MCS_MAX_REPLICAS) {
      fill_out(&o->disk, 1, o->size, MCSTORE__REPLICA_STATUS__REPLICA_COMPLETE, &out[*nout]);
      out[(*nout)++].disk = 1;
    }
    *version = o->version;
  }
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

int mcs_exist(mcs_master *m, const char *key, size_t klen, int *exists) {
  *exists = 0;
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  uint64_t h = hash_key(key, klen), now = mcs_now_ns();
  mcs_shard *sh = shard_of(m, h);
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = find(sh, h, key, klen);
  if (o && readable(o)) {
    *exists = 1;
    /* Upstream grants a lease here too: a following read is covered. */
    uint64_t until = now + m->cfg.default_kv_lease_ttl_ms * MS;
    if (until > o->lease_until_ns)
      o->lease_until_ns = until;
  }
  pthread_mutex_unlock(&sh->mu);
  return 0;
}

/* ---- removal ---- */

/* Whether o may go; the code when not. */
static int removable(const mcs_obj *o, int force, uint64_t now) {
  if (!readable(o))
    return MCSTORE__ERROR_CODE__REPLICA_IS_NOT_READY;
  if (force)
    return 0;
  if (o->pend)
    return MCSTORE__ERROR_CODE__REPLICA_IS_NOT_READY; /* an upsert is under way */
  if (o->lease_until_ns > now)
    return MCSTORE__ERROR_CODE__OBJECT_HAS_LEASE;
  if (o->hard_pin)
    return MCSTORE__ERROR_CODE__UNAVAILABLE_IN_CURRENT_STATUS;
  return 0;
}

int mcs_remove(mcs_master *m, const char *key, size_t klen, int force) {
  if (!mcs_key_valid(key, klen))
    return MCSTORE__ERROR_CODE__INVALID_KEY;
  uint64_t h = hash_key(key, klen), now = mcs_now_ns();
  mcs_shard *sh = shard_of(m, h);
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = find(sh, h, key, klen);
  int rc = o ? removable(o, force, now) : MCSTORE__ERROR_CODE__OBJECT_NOT_FOUND;
  if (rc == 0)
    erase(m, sh, o, o->pend ? o->pend->start_ns + m->cfg.put_start_release_timeout_ms * MS : 0);
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

/* Back-references make POSIX matching exponential in the worst case, and
 * a pattern is sent by any client: refused, as is a pattern that does not
 * compile. */
static int regex_ok(const char *re) {
  for (const char *p = re; *p; p++)
    if (p[0] == '\\' && p[1] >= '1' && p[1] <= '9')
      return 0;
  return 1;
}

int mcs_remove_many(mcs_master *m, const char *regex, int force, uint64_t *removed) {
  regex_t re;
  *removed = 0;
  if (regex && (!regex_ok(regex) || regcomp(&re, regex, REG_EXTENDED | REG_NOSUB) != 0))
    return MCSTORE__ERROR_CODE__INVALID_PARAMS;
  char *kbuf = malloc(MCS_MAX_KEY_LEN + 1);
  if (!kbuf) {
    if (regex)
      regfree(&re);
    return MCSTORE__ERROR_CODE__INTERNAL_ERROR;
  }
  uint64_t now = mcs_now_ns();
  for (int i = 0; i < MCS_SHARDS; i++) {
    mcs_shard *sh = &m->shards[i];
    pthread_mutex_lock(&sh->mu);
    for (uint32_t b = 0; sh->tab && b <= sh->mask; b++)
      for (mcs_obj *o = sh->tab[b], *nx; o; o = nx) {
        nx = o->hnext;
        /* RemoveAll takes hard-pinned objects too (upstream). */
        int rc = removable(o, force || (!regex && !o->pend && o->lease_until_ns <= now), now);
        if (rc)
          continue;
        if (regex) {
          memcpy(kbuf, o->key, o->klen);
          kbuf[o->klen] = 0;
          if (regexec(&re, kbuf, 0, NULL, 0) != 0)
            continue;
        }
        erase(m, sh, o, o->pend ? o->pend->start_ns + m->cfg.put_start_release_timeout_ms * MS : 0);
        (*removed)++;
      }
    pthread_mutex_unlock(&sh->mu);
  }
  free(kbuf);
  if (regex)
    regfree(&re);
  return 0;
}

int mcs_list(mcs_master *m, const char *regex, mcs_key_fn fn, void *arg) {
  regex_t re;
  int use_re = regex && *regex;
  if (use_re && (!regex_ok(regex) || regcomp(&re, regex, REG_EXTENDED | REG_NOSUB) != 0))
    return MCSTORE__ERROR_CODE__INVALID_PARAMS;
  char *kbuf = malloc(MCS_MAX_KEY_LEN + 1);
  int stop = !kbuf;
  for (int i = 0; i < MCS_SHARDS && !stop; i++) {
    mcs_shard *sh = &m->shards[i];
    pthread_mutex_lock(&sh->mu);
    for (uint32_t b = 0; sh->tab && b <= sh->mask && !stop; b++)
      for (mcs_obj *o = sh->tab[b]; o && !stop; o = o->hnext) {
        if (!readable(o))
          continue;
        memcpy(kbuf, o->key, o->klen);
        kbuf[o->klen] = 0;
        if (use_re && regexec(&re, kbuf, 0, NULL, 0) != 0)
          continue;
        stop = fn(arg, o->key, o->klen, o->size);
      }
    pthread_mutex_unlock(&sh->mu);
  }
  free(kbuf);
  if (use_re)
    regfree(&re);
  return 0;
}

/* ---- segment loss, dead puts ---- */

static int on_gone(const mcs_segment *s, mcs_segment *const *segs, int n) {
  for (int i = 0; i < n; i++)
    if (segs[i] == s)
      return 1;
  return 0;
}

/* Removes from reps[0..*n) those on gone segments (their space went with
 * the segment), keeping the order of the others. */
static void strip(mcs_rep *reps, uint8_t *n, mcs_segment *const *segs, int nsegs) {
  uint8_t k = 0;
  for (uint8_t i = 0; i < *n; i++) {
    if (on_gone(reps[i].seg, segs, nsegs))
      mcs_seg_unref(reps[i].seg); /* dying: nothing to free in it */
    else
      reps[k++] = reps[i];
  }
  *n = k;
}

void mcs_sweep(mcs_master *m, mcs_segment *const *segs, int nsegs,
               const uint8_t (*cids)[MCS_CLIENT_ID_LEN], int ncids) {
  uint64_t now = mcs_now_ns();
  for (int i = 0; i < MCS_SHARDS; i++) {
    mcs_shard *sh = &m->shards[i];
    pthread_mutex_lock(&sh->mu);
    if (nsegs) {
      for (mcs_deferred *d = sh->deferred; d; d = d->next)
        strip(d->rep, &d->nrep, segs, nsegs);
      for (uint32_t b = 0; sh->tab && b <= sh->mask; b++)
        for (mcs_obj *o = sh->tab[b], *nx; o; o = nx) {
          nx = o->hnext;
          if (o->nrep) {
            strip(o->rep, &o->nrep, segs, nsegs);
            if (!o->nrep)
              lru_unlink(sh, o);
          }
          if (o->has_disk)
            strip(&o->disk, &o->has_disk, segs, nsegs);
          if (o->off_id) {
            uint8_t k = 1;
            strip(&o->off_rep, &k, segs, nsegs);
            if (!k) {
              o->off_id = 0; /* its target went with the SSD tier */
              atomic_fetch_sub(&m->pending_offloads, 1);
              atomic_fetch_sub(&m->pending_offload_bytes, o->size);
            }
          }
          if (o->pend) {
            /* A put that lost a replica cannot finish as asked: revoke. */
            uint8_t before = o->pend->nrep;
            strip(o->pend->rep, &o->pend->nrep, segs, nsegs);
            if (o->pend->nrep != before)
              drop_pending(m, sh, o, o->pend->start_ns + m->cfg.put_start_release_timeout_ms * MS);
          }
          if (!readable(o) && !o->pend)
            erase(m, sh, o, 0);
        }
    }
    for (mcs_obj *o = sh->pend_head, *nx; o && ncids; o = nx) {
      nx = o->pend_next;
      for (int c = 0; c < ncids; c++)
        if (!memcmp(o->pend->cid, cids[c], MCS_CLIENT_ID_LEN)) {
          /* The writer is gone; should it still be writing somewhere, its
           * space stays reserved until the release timeout. */
          drop_pending(m, sh, o, o->pend->start_ns + m->cfg.put_start_release_timeout_ms * MS);
          if (!readable(o))
            erase(m, sh, o, 0);
          break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
  }
  (void)now;
}

void mcs_reclaim(mcs_master *m) {
  uint64_t now = mcs_now_ns(), rel = m->cfg.put_start_release_timeout_ms * MS;
  for (int i = 0; i < MCS_SHARDS; i++) {
    mcs_shard *sh = &m->shards[i];
    pthread_mutex_lock(&sh->mu);
    for (mcs_deferred **pp = &sh->deferred; *pp;) {
      mcs_deferred *d = *pp;
      if (d->at_ns <= now) {
        *pp = d->next;
        for (int r = 0; r < d->nrep; r++)
          mcs_rep_free(m, &d->rep[r]);
        free(d);
      } else {
        pp = &d->next;
      }
    }
    for (mcs_obj *o = sh->pend_head, *nx; o; o = nx) {
      nx = o->pend_next;
      if (mcs_older(o->pend->start_ns, now, rel)) {
        /* Abandoned for the whole release timeout: nobody writes there. */
        drop_pending(m, sh, o, 0);
        if (!readable(o))
          erase(m, sh, o, 0);
      }
    }
    pthread_mutex_unlock(&sh->mu);
  }
}

void mcs_counts(mcs_master *m, uint64_t *objects, uint64_t *pending) {
  *objects = *pending = 0;
  for (int i = 0; i < MCS_SHARDS; i++) {
    mcs_shard *sh = &m->shards[i];
    pthread_mutex_lock(&sh->mu);
    *objects += sh->count;
    *pending += sh->npend;
    pthread_mutex_unlock(&sh->mu);
  }
}

/* ---- eviction ---- */

static int evictable(const mcs_obj *o, uint64_t now, int pinned_pass) {
  if (!o->nrep || o->pend || o->off_id || o->hard_pin || o->lease_until_ns > now)
    return 0;
  int soft = o->soft_pin_until_ns > now;
  return pinned_pass ? 1 : !soft;
}

/* Oldest access times of up to `per` evictable objects of each shard,
 * sampled from the LRU heads, give a cut-off: objects accessed no later
 * than it are (about) the least recently used `target` bytes. */
typedef struct cand {
  uint64_t t, size;
} cand;

static int cand_cmp(const void *a, const void *b) {
  uint64_t x = ((const cand *)a)->t, y = ((const cand *)b)->t;
  return x < y ? -1 : x > y;
}

enum { EVICT_DROPPED, EVICT_QUEUED, EVICT_TO_DISK };

/* Evicts o's memory replicas: dropped at once when a disk replica holds
 * the value; queued as an offload task when an SSD tier has room (the
 * memory stays until the copy is reported); else the object goes. */
static int evict_one(mcs_master *m, mcs_shard *sh, mcs_obj *o) {
  if (o->has_disk) {
    lru_unlink(sh, o);
    release_reps(m, sh, o->rep, o->nrep, 0);
    free(o->rep);
    o->rep = NULL;
    o->nrep = 0;
    atomic_fetch_add(&m->evicted, 1);
    return EVICT_TO_DISK;
  }
  if (m->cfg.offload_on_evict && atomic_load(&m->ndisk) &&
      mcs_place_disk(m, o->size, &o->off_rep) == 0) {
    pthread_mutex_lock(&m->off_mu);
    o->off_id = ++m->next_id;
    pthread_mutex_unlock(&m->off_mu);
    atomic_fetch_add(&m->pending_offloads, 1);
    atomic_fetch_add(&m->pending_offload_bytes, o->size);
    mcs_offload_queue(m, o->off_id, o->hash, o->key, o->klen, o->off_rep.seg->cid);
    return EVICT_QUEUED;
  }
  erase(m, sh, o, 0);
  atomic_fetch_add(&m->evicted, 1);
  return EVICT_DROPPED;
}

/* Returns bytes freed; *queued_out gets the bytes queued for offload. */
static uint64_t evict_pass(mcs_master *m, uint64_t target, int pinned_pass,
                           uint64_t *queued_out) {
  enum { PER = 8 };
  cand *c = malloc(sizeof(cand) * MCS_SHARDS * PER);
  if (!c)
    return 0;
  uint64_t freed = 0, queued = 0;
  for (int round = 0; round < 8 && freed + queued < target; round++) {
    uint64_t now = mcs_now_ns();
    size_t nc = 0;
    for (int i = 0; i < MCS_SHARDS; i++) {
      mcs_shard *sh = &m->shards[i];
      pthread_mutex_lock(&sh->mu);
      int k = 0, seen = 0;
      for (mcs_obj *o = sh->lru_head; o && k < PER && seen < 64; o = o->lru_next, seen++)
        if (evictable(o, now, pinned_pass)) {
          c[nc].t = o->last_access_ns;
          c[nc++].size = o->size;
          k++;
        }
      pthread_mutex_unlock(&sh->mu);
    }
    if (!nc)
      break;
    qsort(c, nc, sizeof(*c), cand_cmp);
    uint64_t acc = 0, cut = c[nc - 1].t;
    for (size_t i = 0; i < nc; i++) {
      acc += c[i].size;
      if (acc >= target - freed - queued) {
        cut = c[i].t;
        break;
      }
    }
    for (int i = 0; i < MCS_SHARDS && freed + queued < target; i++) {
      mcs_shard *sh = &m->shards[i];
      pthread_mutex_lock(&sh->mu);
      int seen = 0;
      for (mcs_obj *o = sh->lru_head, *nx; o && freed + queued < target && seen < 256;
           o = nx, seen++) {
        nx = o->lru_next;
        if (o->last_access_ns > cut)
          break;
        if (!evictable(o, now, pinned_pass))
          continue;
        uint64_t bytes = o->size * o->nrep;
        int how = evict_one(m, sh, o);
        if (how == EVICT_QUEUED)
          queued += bytes; /* freed when its owner reports the copy */
        else
          freed += bytes;
      }
      pthread_mutex_unlock(&sh->mu);
    }
  }
  free(c);
  *queued_out = queued;
  return freed;
}

uint64_t mcs_evict(mcs_master *m, uint64_t need) {
  pthread_mutex_lock(&m->evict_mu);
  double cap = (double)atomic_load(&m->capacity), used = (double)mcs_used_net(m);
  double hwm = m->cfg.eviction_high_watermark_ratio, r = m->cfg.eviction_ratio;
  uint64_t freed = 0;
  if (cap > 0 && (need > 0 || used > hwm * cap)) {
    /* Upstream's target: max(ratio, usage - watermark + ratio) of capacity. */
    double t = r * cap;
    if (used - hwm * cap + r * cap > t)
      t = used - hwm * cap + r * cap;
    uint64_t target = (uint64_t)t;
    if (target < need)
      target = need;
    uint64_t queued = 0, q2 = 0;
    freed = evict_pass(m, target, 0, &queued);
    if (freed + queued < target && m->cfg.allow_evict_soft_pinned_objects)
      freed += evict_pass(m, target - freed - queued, 1, &q2);
  }
  pthread_mutex_unlock(&m->evict_mu);
  return freed;
}

/* ---- the object side of offload tasks ---- */

int mcs_offload_describe(mcs_master *m, uint64_t id, uint64_t hash, const char *key,
                         size_t klen, mcs_rep_out *src, mcs_rep_out *dst) {
  mcs_shard *sh = shard_of(m, hash);
  int rc = -1;
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = find(sh, hash, key, klen);
  if (o && o->off_id == id && o->nrep) {
    fill_out(&o->rep[0], 1, o->size, MCSTORE__REPLICA_STATUS__REPLICA_COMPLETE, src);
    fill_out(&o->off_rep, 1, o->size, MCSTORE__REPLICA_STATUS__REPLICA_PROCESSING, dst);
    dst->disk = 1;
    rc = 0;
  }
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

void mcs_offload_finish(mcs_master *m, uint64_t id, uint64_t hash, const char *key,
                        size_t klen, int ok) {
  mcs_shard *sh = shard_of(m, hash);
  pthread_mutex_lock(&sh->mu);
  mcs_obj *o = find(sh, hash, key, klen);
  if (o && o->off_id == id) {
    if (ok && o->nrep) {
      /* The copy is on disk: the memory goes (its readers keep it until
       * their lease ends). */
      o->disk = o->off_rep;
      o->has_disk = 1;
      o->off_id = 0;
      atomic_fetch_sub(&m->pending_offloads, 1);
      atomic_fetch_sub(&m->pending_offload_bytes, o->size);
      lru_unlink(sh, o);
      release_reps(m, sh, o->rep, o->nrep, o->lease_until_ns);
      free(o->rep);
      o->rep = NULL;
      o->nrep = 0;
      atomic_fetch_add(&m->offloaded, 1);
      atomic_fetch_add(&m->evicted, 1);
    } else {
      cancel_offload(m, o); /* stays in memory, a victim again later */
    }
  }
  pthread_mutex_unlock(&sh->mu);
}
