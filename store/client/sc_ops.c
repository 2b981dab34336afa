/* The object calls of mooncake/store.h: put/upsert (PutStart, writes,
 * PutEnd or PutRevoke), get (GetReplicaList under a lease, a read of the
 * nearest replica, falling back to the others), and queries/removal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc.h"

/* Items per master call (the master's batch limit). */
#define SC_BATCH 4096u

static int check_cfg(const char *op, const mc_store_replicate_config *cfg) {
  if (!cfg)
    return 0;
  if (cfg->replica_num > MC_STORE_MAX_REPLICAS)
    return sc_fail(MC_STORE_INVALID_PARAMS, "%s: replica_num %u > %d", op, cfg->replica_num,
                   MC_STORE_MAX_REPLICAS);
  if (cfg->preferred_count > MC_STORE_MAX_PREFERRED ||
      (cfg->preferred_count && !cfg->preferred_segments))
    return sc_fail(MC_STORE_INVALID_PARAMS, "%s: bad preferred_segments (count %u)", op,
                   cfg->preferred_count);
  for (uint32_t i = 0; i < cfg->preferred_count; i++)
    if (!cfg->preferred_segments[i] || strlen(cfg->preferred_segments[i]) >= MC_NAME_MAX)
      return sc_fail(MC_STORE_INVALID_PARAMS, "%s: preferred_segments[%u] is NULL or too long",
                     op, i);
  return 0;
}

/* Writes one object's value to every replica of o. */
static int write_obj(mc_store *s, const sc_obj *o, const void *src, uint64_t size,
                     int zero_copy) {
  int all_local = 1;
  for (uint32_t i = 0; i < o->n; i++)
    all_local &= sc_is_local(s, &o->r[i]);
  if (zero_copy || all_local)
    return sc_write(s, o, 0, src, size);
  char *slot = sc_slot_get(s);
  int rc = 0;
  for (uint64_t off = 0; off < size && !rc; off += s->slot_size) {
    uint64_t len = size - off < s->slot_size ? size - off : s->slot_size;
    memcpy(slot, (const char *)src + off, len);
    rc = sc_write(s, o, off, slot, len);
  }
  sc_slot_put(s, slot);
  return rc;
}

/* put/upsert of n keys (n <= SC_BATCH); res[i] per key; returns the first
 * error or 0. */
static int put_chunk(mc_store *s, const char *op, int upsert, const char *const *keys,
                     const void *const *srcs, const size_t *sizes, uint32_t n,
                     const mc_store_replicate_config *cfg, int *res, int zero_copy) {
  sc_obj *o = calloc(n, sizeof *o);
  const char **k = calloc(n, sizeof *k);
  uint64_t *sz = calloc(n, sizeof *sz);
  uint32_t *idx = calloc(n, sizeof *idx);
  const char **fin = calloc(n, sizeof *fin);
  int *fres = calloc(n, sizeof *fres);
  int first = 0;
  if (!o || !k || !sz || !idx || !fin || !fres) {
    first = sc_fail(MC_STORE_INTERNAL_ERROR, "%s: out of memory", op);
    for (uint32_t i = 0; i < n; i++)
      res[i] = first;
    goto out;
  }
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    res[i] = sc_check_key(op, keys[i]);
    if (!res[i] && (!sizes[i] || !srcs[i]))
      res[i] = sc_fail(MC_STORE_INVALID_PARAMS, "%s '%s': %s", op, keys[i],
                       sizes[i] ? "NULL value" : "empty value (size 0)");
    if (!res[i] && zero_copy && !sc_registered(s, srcs[i], sizes[i]))
      res[i] = sc_fail(MC_STORE_INVALID_PARAMS,
                       "%s '%s': %p+%zu is not inside one registered buffer", op, keys[i],
                       srcs[i], sizes[i]);
    if (res[i])
      continue;
    k[m] = keys[i];
    sz[m] = sizes[i];
    idx[m++] = i;
  }
  if (m) {
    int rc = scm_put_start(s, upsert, k, sz, m, cfg, o);
    /* A restarted master knows this client only after it remounts (the
     * ping thread does that within a second); do it now and retry once. */
    int unknown = 0;
    for (uint32_t j = 0; !rc && j < m; j++)
      unknown |= o[j].err == MC_STORE_CLIENT_NOT_FOUND;
    int need = 0;
    if (unknown && s->ssd_mode)
      (void)scm_ping(s, &need); /* the new master's view, for the tier */
    if (unknown && (s->ssd_mode ? sc_ssd_remount(s) : scm_mount(s, 1)) == 0) {
      atomic_fetch_add(&s->remounts, 1);
      rc = scm_put_start(s, upsert, k, sz, m, cfg, o);
    }
    if (rc) {
      for (uint32_t j = 0; j < m; j++)
        res[idx[j]] = rc;
    } else {
      /* Write each reserved object; then end the good ones, revoke the
       * others (nothing half-written ever becomes readable). */
      uint32_t nend = 0, nrev = 0;
      for (uint32_t j = 0; j < m; j++) {
        uint32_t i = idx[j];
        if (o[j].err) {
          res[i] = sc_fail(o[j].err, "%s '%s' (%zu bytes): %s", op, keys[i], sizes[i],
                           mc_store_strerror(o[j].err));
          continue;
        }
        res[i] = write_obj(s, &o[j], srcs[i], sizes[i], zero_copy);
        if (!res[i])
          k[nend++] = keys[i];
      }
      for (uint32_t j = 0; j < m; j++)
        if (!o[j].err && res[idx[j]])
          fin[nrev++] = keys[idx[j]];
      if (nrev)
        scm_put_finish(s, upsert, 0, fin, nrev, NULL);
      if (nend) {
        rc = scm_put_finish(s, upsert, 1, k, nend, fres);
        uint32_t e = 0;
        for (uint32_t j = 0; j < m; j++) {
          uint32_t i = idx[j];
          if (o[j].err || res[i])
            continue;
          int code = rc ? rc : fres[e];
          e++;
          if (code)
            res[i] = sc_fail(code, "%s '%s': end: %s", op, keys[i], mc_store_strerror(code));
        }
      }
    }
  }
  for (uint32_t i = 0; i < n && !first; i++)
    first = res[i];
out:
  free(o);
  free(k);
  free(sz);
  free(idx);
  free(fin);
  free(fres);
  return first;
}

static int put_n(mc_store *s, const char *op, int upsert, const char *const *keys,
                 const void *const *srcs, const size_t *sizes, uint32_t n,
                 const mc_store_replicate_config *cfg, int *res, int zero_copy) {
  if (!s || (n && (!keys || !srcs || !sizes || !res)))
    return sc_fail(MC_STORE_INVALID_PARAMS, "%s: NULL argument", op);
  int rc = check_cfg(op, cfg);
  if (rc) {
    for (uint32_t i = 0; i < n; i++)
      res[i] = rc;
    return rc;
  }
  int first = 0;
  for (uint32_t b = 0; b < n; b += SC_BATCH) {
    uint32_t c = n - b < SC_BATCH ? n - b : SC_BATCH;
    rc = put_chunk(s, op, upsert, keys + b, srcs + b, sizes + b, c, cfg, res + b, zero_copy);
    if (!first)
      first = rc;
  }
  return first;
}

int mc_store_put(mc_store *s, const char *key, const void *value, size_t size,
                 const mc_store_replicate_config *cfg) {
  int res;
  return put_n(s, "put", 0, &key, &value, &size, 1, cfg, &res, 0);
}

int mc_store_upsert(mc_store *s, const char *key, const void *value, size_t size,
                    const mc_store_replicate_config *cfg) {
  int res;
  return put_n(s, "upsert", 1, &key, &value, &size, 1, cfg, &res, 0);
}

int mc_store_put_from(mc_store *s, const char *key, const void *ptr, size_t size,
                      const mc_store_replicate_config *cfg) {
  int res;
  return put_n(s, "put_from", 0, &key, &ptr, &size, 1, cfg, &res, 1);
}

int mc_store_upsert_from(mc_store *s, const char *key, const void *ptr, size_t size,
                         const mc_store_replicate_config *cfg) {
  int res;
  return put_n(s, "upsert_from", 1, &key, &ptr, &size, 1, cfg, &res, 1);
}

int mc_store_batch_put(mc_store *s, const char *const *keys, const void *const *values,
                       const size_t *sizes, uint32_t n, const mc_store_replicate_config *cfg,
                       int *results) {
  return put_n(s, "batch_put", 0, keys, values, sizes, n, cfg, results, 0);
}

int mc_store_batch_put_from(mc_store *s, const char *const *keys, const void *const *ptrs,
                            const size_t *sizes, uint32_t n,
                            const mc_store_replicate_config *cfg, int *results) {
  return put_n(s, "batch_put_from", 0, keys, ptrs, sizes, n, cfg, results, 1);
}

/* ---- reads ---- */

/* Reads [off, off+len) of replica r into dst: straight when dst is
 * registered (or the replica local), else through a staging slot. */
static int read_range(mc_store *s, const sc_replica *r, uint64_t off, void *dst, uint64_t len,
                      int zero_copy) {
  if (zero_copy || sc_is_local(s, r))
    return sc_read(s, r, off, dst, len);
  char *slot = sc_slot_get(s);
  int rc = 0;
  for (uint64_t p = 0; p < len && !rc; p += s->slot_size) {
    uint64_t l = len - p < s->slot_size ? len - p : s->slot_size;
    rc = sc_read(s, r, off + p, slot, l);
    if (!rc)
      memcpy((char *)dst + p, slot, l);
  }
  sc_slot_put(s, slot);
  return rc;
}

/* Reads the ranges of object o (lease granted at t0) from the nearest
 * replica, trying the others when a read fails.  0 or an error. */
static int read_obj(mc_store *s, const char *op, const char *key, const sc_obj *o,
                    uint64_t t0, const mc_store_range *rg, uint32_t nr, int zero_copy,
                    int *from_disk) {
  uint32_t first = sc_pick(s, o);
  int rc = MC_STORE_TRANSFER_FAIL;
  *from_disk = 0;
  for (uint32_t t = 0; t < o->n; t++) {
    const sc_replica *r = &o->r[(first + t) % o->n];
    rc = 0;
    for (uint32_t i = 0; i < nr && !rc; i++)
      rc = read_range(s, r, rg[i].offset, rg[i].dst, rg[i].len, zero_copy);
    if (!rc) {
      *from_disk = r->disk;
      atomic_fetch_add(r->disk ? &s->n_read_disk : &s->n_read_mem, 1);
      break;
    }
  }
  if (rc)
    return sc_fail(rc, "%s '%s': no replica could be read (%u tried): %s", op, key, o->n,
                   mc_store_last_error());
  /* The lease guarantees that the space still held this object only until
   * it ran out: bytes read after that may belong to another object. */
  if (o->lease_ttl_ms && sc_now_ms() > t0 + o->lease_ttl_ms)
    return sc_fail(MC_STORE_LEASE_EXPIRED, "%s '%s': the %llu ms lease ran out before the "
                   "read ended", op, key, (unsigned long long)o->lease_ttl_ms);
  return 0;
}

static int64_t get_n(mc_store *s, const char *op, const char *const *keys,
                     void *const *dsts, const size_t *sizes, uint32_t n, int64_t *res,
                     int zero_copy) {
  if (!s || (n && (!keys || !dsts || !sizes || !res)))
    return sc_fail(MC_STORE_INVALID_PARAMS, "%s: NULL argument", op);
  int64_t first = 0;
  sc_obj *o = calloc(n < SC_BATCH ? n : SC_BATCH, sizeof *o);
  const char **k = calloc(n < SC_BATCH ? n : SC_BATCH, sizeof *k);
  uint32_t *idx = calloc(n < SC_BATCH ? n : SC_BATCH, sizeof *idx);
  if (n && (!o || !k || !idx)) {
    free(o);
    free(k);
    free(idx);
    return sc_fail(MC_STORE_INTERNAL_ERROR, "%s: out of memory", op);
  }
  for (uint32_t b = 0; b < n; b += SC_BATCH) {
    uint32_t c = n - b < SC_BATCH ? n - b : SC_BATCH, m = 0;
    for (uint32_t i = b; i < b + c; i++) {
      res[i] = sc_check_key(op, keys[i]);
      if (!res[i] && (!dsts[i] || !sizes[i]))
        res[i] = sc_fail(MC_STORE_INVALID_PARAMS, "%s '%s': NULL or empty buffer", op, keys[i]);
      if (!res[i] && zero_copy && !sc_registered(s, dsts[i], sizes[i]))
        res[i] = sc_fail(MC_STORE_INVALID_PARAMS,
                         "%s '%s': %p+%zu is not inside one registered buffer", op, keys[i],
                         dsts[i], sizes[i]);
      if (!res[i]) {
        k[m] = keys[i];
        idx[m++] = i;
      }
    }
    uint64_t t0 = sc_now_ms();
    int rc = m ? scm_get_replicas(s, k, m, o) : 0;
    for (uint32_t j = 0; j < m; j++) {
      uint32_t i = idx[j];
      if (rc) {
        res[i] = rc;
      } else if (o[j].err) {
        res[i] = sc_fail(o[j].err, "%s '%s': %s", op, keys[i], mc_store_strerror(o[j].err));
      } else if (o[j].size > sizes[i]) {
        res[i] = sc_fail(MC_STORE_BUFFER_OVERFLOW, "%s '%s': the value has %llu bytes, the "
                         "buffer %zu", op, keys[i], (unsigned long long)o[j].size, sizes[i]);
      } else {
        mc_store_range r = {0, o[j].size, dsts[i]};
        int disk = 0;
        int e = read_obj(s, op, keys[i], &o[j], t0, &r, 1, zero_copy, &disk);
        res[i] = e ? e : (int64_t)o[j].size;
        /* promotion_on_hit: only a value no memory replica holds. */
        if (!e && disk && s->promote_on_hit &&
            sc_ssd_promote(s, keys[i], o[j].version, dsts[i], o[j].size, zero_copy) == 0)
          atomic_fetch_add(&s->n_promoted, 1);
      }
    }
  }
  for (uint32_t i = 0; i < n && !first; i++)
    if (res[i] < 0)
      first = res[i];
  free(o);
  free(k);
  free(idx);
  return first;
}

int64_t mc_store_get(mc_store *s, const char *key, void *buf, size_t size) {
  int64_t res;
  int64_t rc = get_n(s, "get", &key, &buf, &size, 1, &res, 0);
  return rc ? rc : res;
}

int64_t mc_store_get_into(mc_store *s, const char *key, void *ptr, size_t size) {
  int64_t res;
  int64_t rc = get_n(s, "get_into", &key, &ptr, &size, 1, &res, 1);
  return rc ? rc : res;
}

int mc_store_batch_get(mc_store *s, const char *const *keys, void *const *bufs,
                       const size_t *sizes, uint32_t n, int64_t *results) {
  return (int)get_n(s, "batch_get", keys, bufs, sizes, n, results, 0);
}

int mc_store_batch_get_into(mc_store *s, const char *const *keys, void *const *ptrs,
                            const size_t *sizes, uint32_t n, int64_t *results) {
  return (int)get_n(s, "batch_get_into", keys, ptrs, sizes, n, results, 1);
}

int mc_store_get_alloc(mc_store *s, const char *key, void **value, size_t *size) {
  if (!s || !value || !size)
    return sc_fail(MC_STORE_INVALID_PARAMS, "get_alloc: NULL argument");
  int rc = sc_check_key("get_alloc", key);
  if (rc)
    return rc;
  sc_obj o;
  uint64_t t0 = sc_now_ms();
  rc = scm_get_replicas(s, &key, 1, &o);
  if (!rc && o.err)
    rc = sc_fail(o.err, "get_alloc '%s': %s", key, mc_store_strerror(o.err));
  if (rc)
    return rc;
  void *buf = malloc(o.size ? o.size : 1);
  if (!buf)
    return sc_fail(MC_STORE_INTERNAL_ERROR, "get_alloc '%s': no memory for %llu bytes", key,
                   (unsigned long long)o.size);
  mc_store_range r = {0, o.size, buf};
  int disk = 0;
  rc = read_obj(s, "get_alloc", key, &o, t0, &r, 1, 0, &disk);
  if (rc) {
    free(buf);
    return rc;
  }
  if (disk && s->promote_on_hit && sc_ssd_promote(s, key, o.version, buf, o.size, 0) == 0)
    atomic_fetch_add(&s->n_promoted, 1);
  *value = buf;
  *size = o.size;
  return 0;
}

void mc_store_free(void *value) { free(value); }

int64_t mc_store_get_into_ranges(mc_store *s, const char *key, const mc_store_range *ranges,
                                 uint32_t n) {
  if (!s || !ranges || !n)
    return sc_fail(MC_STORE_INVALID_PARAMS, "get_into_ranges: NULL or no ranges");
  int rc = sc_check_key("get_into_ranges", key);
  if (rc)
    return rc;
  for (uint32_t i = 0; i < n; i++)
    if (!ranges[i].len || !sc_registered(s, ranges[i].dst, ranges[i].len))
      return sc_fail(MC_STORE_INVALID_PARAMS,
                     "get_into_ranges '%s': range %u is empty or its dst is not inside one "
                     "registered buffer", key, i);
  sc_obj o;
  uint64_t t0 = sc_now_ms();
  rc = scm_get_replicas(s, &key, 1, &o);
  if (!rc && o.err)
    rc = sc_fail(o.err, "get_into_ranges '%s': %s", key, mc_store_strerror(o.err));
  if (rc)
    return rc;
  int64_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (ranges[i].offset > o.size || ranges[i].len > o.size - ranges[i].offset)
      return sc_fail(MC_STORE_INVALID_PARAMS, "get_into_ranges '%s': range %u (%llu+%llu) "
                     "lies outside the %llu-byte value", key, i,
                     (unsigned long long)ranges[i].offset, (unsigned long long)ranges[i].len,
                     (unsigned long long)o.size);
    total += (int64_t)ranges[i].len;
  }
  int disk;
  rc = read_obj(s, "get_into_ranges", key, &o, t0, ranges, n, 1, &disk);
  return rc ? rc : total;
}

int sc_ssd_promote(mc_store *s, const char *key, uint64_t version, const void *src,
                   uint64_t size, int zero_copy) {
  sc_obj o;
  memset(&o, 0, sizeof o);
  int rc = scm_promote_start(s, key, version, &o);
  if (rc)
    return rc; /* in memory already, changed, or no room: nothing to do */
  for (uint32_t i = 0; i < o.n; i++)
    if (o.r[i].size != size)
      rc = MC_STORE_INVALID_REPLICA;
  if (!rc)
    rc = write_obj(s, &o, src, size, zero_copy);
  int fin = 0;
  scm_put_finish(s, 0, rc == 0, &key, 1, &fin);
  return rc ? rc : fin;
}

int mc_store_replica_tiers(mc_store *s, const char *key, uint32_t *memory, uint32_t *disk) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "replica_tiers: NULL store");
  int rc = sc_check_key("replica_tiers", key);
  if (rc)
    return rc;
  sc_obj o;
  rc = scm_get_replicas(s, &key, 1, &o);
  if (!rc && o.err)
    rc = sc_fail(o.err, "replica_tiers '%s': %s", key, mc_store_strerror(o.err));
  if (rc)
    return rc;
  uint32_t nm = 0, nd = 0;
  for (uint32_t i = 0; i < o.n; i++)
    o.r[i].disk ? nd++ : nm++;
  if (memory)
    *memory = nm;
  if (disk)
    *disk = nd;
  return 0;
}

/* ---- queries and removal ---- */

int mc_store_exist(mc_store *s, const char *key) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "exist: NULL store");
  int rc = sc_check_key("exist", key);
  if (rc)
    return rc;
  int res;
  rc = scm_exist(s, &key, 1, &res);
  return rc ? rc : res;
}

int mc_store_batch_exist(mc_store *s, const char *const *keys, uint32_t n, int *results) {
  if (!s || (n && (!keys || !results)))
    return sc_fail(MC_STORE_INVALID_PARAMS, "batch_exist: NULL argument");
  const char **k = calloc(n ? n : 1, sizeof *k);
  uint32_t *idx = calloc(n ? n : 1, sizeof *idx);
  int *r = calloc(n ? n : 1, sizeof *r);
  int rc = 0;
  if (!k || !idx || !r) {
    rc = sc_fail(MC_STORE_INTERNAL_ERROR, "batch_exist: out of memory");
    goto out;
  }
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    results[i] = sc_check_key("batch_exist", keys[i]);
    if (!results[i]) {
      k[m] = keys[i];
      idx[m++] = i;
    }
  }
  for (uint32_t b = 0; b < m && !rc; b += SC_BATCH) {
    uint32_t c = m - b < SC_BATCH ? m - b : SC_BATCH;
    rc = scm_exist(s, k + b, c, r + b);
  }
  for (uint32_t j = 0; j < m; j++)
    results[idx[j]] = rc ? rc : r[j];
out:
  free(k);
  free(idx);
  free(r);
  return rc;
}

int64_t mc_store_get_size(mc_store *s, const char *key) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "get_size: NULL store");
  int rc = sc_check_key("get_size", key);
  if (rc)
    return rc;
  sc_obj o;
  rc = scm_get_replicas(s, &key, 1, &o);
  if (!rc && o.err)
    rc = sc_fail(o.err, "get_size '%s': %s", key, mc_store_strerror(o.err));
  return rc ? rc : (int64_t)o.size;
}

int mc_store_remove(mc_store *s, const char *key, int force) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "remove: NULL store");
  int rc = sc_check_key("remove", key);
  if (rc)
    return rc;
  rc = scm_remove(s, key, force);
  if (rc && rc != MC_STORE_RPC_FAIL && rc != MC_STORE_RPC_TIMEOUT)
    sc_fail(rc, "remove '%s': %s", key, mc_store_strerror(rc));
  return rc;
}

int64_t mc_store_remove_by_regex(mc_store *s, const char *regex, int force) {
  if (!s || !regex)
    return sc_fail(MC_STORE_INVALID_PARAMS, "remove_by_regex: NULL argument");
  int64_t rc = scm_remove_regex(s, regex, force);
  if (rc < 0 && rc != MC_STORE_RPC_FAIL && rc != MC_STORE_RPC_TIMEOUT)
    sc_fail((int)rc, "remove_by_regex '%s': %s", regex, mc_store_strerror((int)rc));
  return rc;
}

int64_t mc_store_remove_all(mc_store *s, int force) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "remove_all: NULL store");
  return scm_remove_all(s, force);
}

int64_t mc_store_list(mc_store *s, const char *regex, uint32_t limit, mc_store_list_fn fn,
                      void *arg) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "list: NULL store");
  return scm_list(s, regex, limit, fn, arg);
}

int mc_store_replica_segments(mc_store *s, const char *key, char (*names)[MC_STORE_NAME_MAX],
                              uint32_t max) {
  if (!s || (max && !names))
    return sc_fail(MC_STORE_INVALID_PARAMS, "replica_segments: NULL argument");
  int rc = sc_check_key("replica_segments", key);
  if (rc)
    return rc;
  sc_obj o;
  rc = scm_get_replicas(s, &key, 1, &o);
  if (!rc && o.err)
    rc = sc_fail(o.err, "replica_segments '%s': %s", key, mc_store_strerror(o.err));
  if (rc)
    return rc;
  for (uint32_t i = 0; i < o.n && i < max; i++)
    snprintf(names[i], MC_STORE_NAME_MAX, "%s", o.r[i].segment);
  return (int)o.n;
}
