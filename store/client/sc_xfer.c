/* Data movement of the store client: staging slots, the segment cache and
 * reads/writes of replicas (memcpy for this client's own segment, the
 * Transfer Engine for every other one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sc.h"

uint64_t sc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int sc_check_key(const char *op, const char *key) {
  if (!key || !*key)
    return sc_fail(MC_STORE_INVALID_KEY, "%s: empty key", op);
  size_t n = strnlen(key, MC_STORE_KEY_MAX + 1);
  if (n > MC_STORE_KEY_MAX)
    return sc_fail(MC_STORE_INVALID_KEY, "%s: key longer than %d bytes", op,
                   MC_STORE_KEY_MAX);
  return 0;
}

void *sc_slot_get(mc_store *s) {
  pthread_mutex_lock(&s->slot_mu);
  while (!s->slot_free)
    pthread_cond_wait(&s->slot_cv, &s->slot_mu);
  int i = __builtin_ctzll(s->slot_free);
  s->slot_free &= ~(1ull << i);
  pthread_mutex_unlock(&s->slot_mu);
  return (char *)s->stage + (uint64_t)i * s->slot_size;
}

void sc_slot_put(mc_store *s, void *slot) {
  uint64_t i = (uint64_t)((char *)slot - (char *)s->stage) / s->slot_size;
  pthread_mutex_lock(&s->slot_mu);
  s->slot_free |= 1ull << i;
  pthread_cond_signal(&s->slot_cv);
  pthread_mutex_unlock(&s->slot_mu);
}

static int inside(uintptr_t base, size_t blen, const void *p, size_t len) {
  uintptr_t a = (uintptr_t)p;
  return a >= base && len <= blen && a - base <= blen - len;
}

int sc_registered(mc_store *s, const void *p, size_t len) {
  if (s->stage && inside((uintptr_t)s->stage, s->stage_size, p, len))
    return 1;
  if (s->seg_base && inside((uintptr_t)s->seg_base, s->seg_size, p, len))
    return 1;
  int ok = 0;
  pthread_mutex_lock(&s->mu);
  for (uint32_t i = 0; i < s->nbufs && !ok; i++)
    ok = inside(s->bufs[i].base, s->bufs[i].len, p, len);
  pthread_mutex_unlock(&s->mu);
  return ok;
}

int sc_is_local(mc_store *s, const sc_replica *r) {
  if (strcmp(r->segment, s->seg_name) != 0)
    return 0;
  if (r->disk) /* this client's tier: addressable when it is a mapping */
    return s->ssd_mode == SC_SSD_MMAP &&
           inside((uintptr_t)s->ssd_base, s->ssd_size, (void *)(uintptr_t)r->addr, r->size);
  return s->seg_base && inside((uintptr_t)s->seg_base, s->seg_size,
                               (void *)(uintptr_t)r->addr, r->size);
}

/* The host part of "host:port". */
static size_t host_len(const char *name) {
  const char *c = strrchr(name, ':');
  return c ? (size_t)(c - name) : strlen(name);
}

uint32_t sc_pick(mc_store *s, const sc_obj *o) {
  /* Memory replicas first (local, same host, any); a disk replica only
   * when no memory one is left. */
  for (uint32_t i = 0; i < o->n; i++)
    if (!o->r[i].disk && sc_is_local(s, &o->r[i]))
      return i;
  size_t hl = host_len(s->seg_name);
  for (uint32_t i = 0; i < o->n; i++)
    if (!o->r[i].disk && host_len(o->r[i].segment) == hl &&
        !strncmp(o->r[i].segment, s->seg_name, hl))
      return i;
  for (uint32_t i = 0; i < o->n; i++)
    if (!o->r[i].disk)
      return i;
  for (uint32_t i = 0; i < o->n; i++)
    if (sc_is_local(s, &o->r[i]))
      return i;
  return 0;
}

/* The cached handle of segment `name`, opened on first use. */
static int seg_get(mc_store *s, const char *name, mc_segment **out) {
  pthread_mutex_lock(&s->mu);
  for (uint32_t i = 0; i < s->nsegs; i++)
    if (!strcmp(s->segs[i].name, name)) {
      *out = s->segs[i].seg;
      pthread_mutex_unlock(&s->mu);
      return 0;
    }
  pthread_mutex_unlock(&s->mu);
  mc_segment *seg;
  int rc = mc_segment_open(s->engine, name, &seg);
  if (rc)
    return sc_fail(MC_STORE_TRANSFER_FAIL, "open segment %s: %s: %s", name,
                   mc_errname(rc), mc_last_error());
  pthread_mutex_lock(&s->mu);
  for (uint32_t i = 0; i < s->nsegs; i++)
    if (!strcmp(s->segs[i].name, name)) { /* another thread was faster */
      *out = s->segs[i].seg;
      pthread_mutex_unlock(&s->mu);
      mc_segment_close(seg);
      return 0;
    }
  if (s->nsegs == s->capsegs) {
    uint32_t cap = s->capsegs ? 2 * s->capsegs : 8;
    sc_seg *n = realloc(s->segs, cap * sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&s->mu);
      mc_segment_close(seg);
      return sc_fail(MC_STORE_INTERNAL_ERROR, "open segment %s: out of memory", name);
    }
    s->segs = n;
    s->capsegs = cap;
  }
  snprintf(s->segs[s->nsegs].name, MC_NAME_MAX, "%s", name);
  s->segs[s->nsegs++].seg = seg;
  *out = seg;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* Forgets segment `name` after a failed transfer, so the next use fetches
 * its descriptor again (the peer may have restarted). The handle itself is
 * closed at destroy: another thread may still be using it. */
static void seg_forget(mc_store *s, const char *name) {
  pthread_mutex_lock(&s->mu);
  for (uint32_t i = 0; i < s->nsegs; i++)
    if (!strcmp(s->segs[i].name, name)) {
      mc_segment_refresh(s->segs[i].seg);
      break;
    }
  pthread_mutex_unlock(&s->mu);
}

void sc_segs_close(mc_store *s) {
  for (uint32_t i = 0; i < s->nsegs; i++)
    mc_segment_close(s->segs[i].seg);
  free(s->segs);
  s->segs = NULL;
  s->nsegs = s->capsegs = 0;
}

int sc_write(mc_store *s, const sc_obj *o, uint64_t off, const void *src,
             uint64_t len) {
  mc_request req[MC_STORE_MAX_REPLICAS];
  const char *names[MC_STORE_MAX_REPLICAS];
  uint32_t nreq = 0;
  for (uint32_t i = 0; i < o->n; i++) {
    const sc_replica *r = &o->r[i];
    if (off > r->size || len > r->size - off)
      return sc_fail(MC_STORE_INVALID_REPLICA, "write: replica in %s holds %llu bytes, "
                     "not %llu at %llu", r->segment, (unsigned long long)r->size,
                     (unsigned long long)len, (unsigned long long)off);
    if (sc_is_local(s, r)) {
      memcpy((void *)(uintptr_t)(r->addr + off), src, len);
      continue;
    }
    mc_segment *seg;
    int rc = seg_get(s, r->segment, &seg);
    if (rc)
      return rc;
    names[nreq] = r->segment;
    req[nreq++] = (mc_request){MC_OP_WRITE, (void *)(uintptr_t)src, seg, r->addr + off, len};
  }
  if (!nreq)
    return 0;
  int rc = mc_transfer_sync(s->engine, req, nreq, s->xfer_timeout_ms);
  if (rc) {
    for (uint32_t i = 0; i < nreq; i++)
      seg_forget(s, names[i]);
    return sc_fail(MC_STORE_TRANSFER_FAIL, "write %llu bytes to %s: %s", (unsigned long long)len,
                   names[0], mc_errname(rc));
  }
  return 0;
}

int sc_read(mc_store *s, const sc_replica *r, uint64_t off, void *dst, uint64_t len) {
  if (off > r->size || len > r->size - off)
    return sc_fail(MC_STORE_INVALID_REPLICA, "read: replica in %s holds %llu bytes",
                   r->segment, (unsigned long long)r->size);
  if (sc_is_local(s, r)) {
    memcpy(dst, (const void *)(uintptr_t)(r->addr + off), len);
    return 0;
  }
  mc_segment *seg;
  int rc = seg_get(s, r->segment, &seg);
  if (rc)
    return rc;
  mc_request req = {MC_OP_READ, dst, seg, r->addr + off, len};
  rc = mc_transfer_sync(s->engine, &req, 1, s->xfer_timeout_ms);
  if (rc) {
    seg_forget(s, r->segment);
    return sc_fail(MC_STORE_TRANSFER_FAIL, "read %llu bytes from %s: %s",
                   (unsigned long long)len, r->segment, mc_errname(rc));
  }
  return 0;
}
