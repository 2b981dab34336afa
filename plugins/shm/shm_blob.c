/* shm transport: encoding and defensive decoding of desc and rkey blobs. */
#include "shm_blob.h"

#include <string.h>

#include "mooncake/errors.h"

static const uint8_t desc_magic[4] = {'M', 'C', 'S', 'D'};
static const uint8_t rkey_magic[4] = {'M', 'C', 'S', 'K'};

/* Writer: counts every byte, stores only what fits. */
typedef struct wr {
  uint8_t *p;
  size_t cap, n;
} wr;

static void put(wr *w, const void *src, size_t k) {
  if (w->p && w->n + k <= w->cap)
    memcpy(w->p + w->n, src, k);
  w->n += k;
}

static void put_u16(wr *w, uint16_t v) {
  uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  put(w, b, 2);
}

static void put_u32(wr *w, uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  put(w, b, 4);
}

static void put_u64(wr *w, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  put(w, b, 8);
}

static int finish(const wr *w, size_t *len) {
  int fits = w->n <= *len;
  *len = w->n;
  return fits ? 0 : MC_ENOSPC;
}

/* Reader: any overrun sets bad, after which reads return zeros. */
typedef struct rd {
  const uint8_t *p;
  size_t len, off;
  int bad;
} rd;

static const uint8_t *take(rd *r, size_t k) {
  if (r->bad || k > r->len - r->off) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *q = r->p + r->off;
  r->off += k;
  return q;
}

static uint16_t get_u16(rd *r) {
  const uint8_t *q = take(r, 2);
  return q ? (uint16_t)(q[0] | (q[1] << 8)) : 0;
}

static uint32_t get_u32(rd *r) {
  const uint8_t *q = take(r, 4);
  uint32_t v = 0;
  for (int i = 0; q && i < 4; i++)
    v |= (uint32_t)q[i] << (8 * i);
  return v;
}

static uint64_t get_u64(rd *r) {
  const uint8_t *q = take(r, 8);
  uint64_t v = 0;
  for (int i = 0; q && i < 8; i++)
    v |= (uint64_t)q[i] << (8 * i);
  return v;
}

/* A length-prefixed string without NUL bytes, at most max bytes. */
static int get_str(rd *r, char *out, size_t max) {
  uint16_t n = get_u16(r);
  if (r->bad || n > max)
    return -1;
  const uint8_t *q = take(r, n);
  if (!q || memchr(q, 0, n))
    return -1;
  memcpy(out, q, n);
  out[n] = 0;
  return 0;
}

static int header(rd *r, const uint8_t magic[4]) {
  const uint8_t *m = take(r, 4);
  if (!m || memcmp(m, magic, 4))
    return -1;
  return get_u16(r) == SHM_BLOB_VERSION && !r->bad ? 0 : -2;
}

int shm_desc_encode(const shm_desc *d, void *buf, size_t *len) {
  wr w = {buf, *len, 0};
  size_t hl = strnlen(d->host_id, SHM_HOST_ID_MAX);
  put(&w, desc_magic, 4);
  put_u16(&w, SHM_BLOB_VERSION);
  put_u16(&w, (uint16_t)hl);
  put(&w, d->host_id, hl);
  put(&w, d->boot_id, 16);
  put_u64(&w, d->ns_net);
  put_u64(&w, d->ns_ipc);
  put_u64(&w, d->ns_pid);
  put_u64(&w, d->ns_dev);
  put_u32(&w, d->pid);
  put_u64(&w, d->start_time);
  put(&w, d->nonce, 16);
  put_u32(&w, (uint32_t)d->ident_fd);
  return finish(&w, len);
}

int shm_desc_decode(const void *buf, size_t len, shm_desc *d, const char **why) {
  rd r = {buf, len, 0, 0};
  memset(d, 0, sizeof *d);
  int h = header(&r, desc_magic);
  if (h) {
    *why = h == -1 ? "bad magic" : "unsupported version";
    return MC_EPROTO;
  }
  if (get_str(&r, d->host_id, SHM_HOST_ID_MAX)) {
    *why = "bad host_id";
    return MC_EPROTO;
  }
  const uint8_t *b = take(&r, 16);
  if (b)
    memcpy(d->boot_id, b, 16);
  d->ns_net = get_u64(&r);
  d->ns_ipc = get_u64(&r);
  d->ns_pid = get_u64(&r);
  d->ns_dev = get_u64(&r);
  d->pid = get_u32(&r);
  d->start_time = get_u64(&r);
  const uint8_t *n = take(&r, 16);
  if (n)
    memcpy(d->nonce, n, 16);
  d->ident_fd = (int32_t)get_u32(&r);
  if (r.bad) {
    *why = "truncated";
    return MC_EPROTO;
  }
  if (r.off != len) {
    *why = "trailing bytes";
    return MC_EPROTO;
  }
  if (d->pid == 0 || d->pid > (1u << 22)) {
    *why = "pid out of range";
    return MC_EPROTO;
  }
  if (d->ident_fd < -1) {
    *why = "bad ident fd";
    return MC_EPROTO;
  }
  return 0;
}

int shm_rkey_encode(const shm_rkey *k, void *buf, size_t *len) {
  wr w = {buf, *len, 0};
  put(&w, rkey_magic, 4);
  put_u16(&w, SHM_BLOB_VERSION);
  put_u16(&w, (uint16_t)k->kind);
  put_u32(&w, k->pid);
  put_u64(&w, k->base);
  put_u64(&w, k->len);
  put_u64(&w, k->secret);
  put_u32(&w, k->slot);
  put_u64(&w, k->reg_secret);
  if (k->kind != SHM_RKEY_VM) {
    size_t pl = strnlen(k->path, SHM_PATH_MAX);
    put_u64(&w, k->pool_id);
    put_u64(&w, k->pool_size);
    put_u64(&w, k->file_off);
    put_u64(&w, k->reg_off);
    put_u32(&w, (uint32_t)k->fd);
    put_u64(&w, k->dev);
    put_u64(&w, k->ino);
    put_u16(&w, (uint16_t)pl);
    put(&w, k->path, pl);
  }
  return finish(&w, len);
}

static int fail(const char **why, const char *text) {
  *why = text;
  return MC_EPROTO;
}

int shm_rkey_decode(const void *buf, size_t len, shm_rkey *k, const char **why) {
  rd r = {buf, len, 0, 0};
  memset(k, 0, sizeof *k);
  k->fd = -1;
  int h = header(&r, rkey_magic);
  if (h)
    return fail(why, h == -1 ? "bad magic" : "unsupported version");
  k->kind = get_u16(&r);
  k->pid = get_u32(&r);
  k->base = get_u64(&r);
  k->len = get_u64(&r);
  k->secret = get_u64(&r);
  k->slot = get_u32(&r);
  k->reg_secret = get_u64(&r);
  if (r.bad)
    return fail(why, "truncated");
  if (k->kind != SHM_RKEY_VM && k->kind != SHM_RKEY_MEMFD &&
      k->kind != SHM_RKEY_FILE)
    return fail(why, "unknown kind");
  if (k->pid == 0 || k->pid > (1u << 22))
    return fail(why, "pid out of range");
  if (k->len == 0 || k->base + k->len < k->base)
    return fail(why, "empty or wrapping range");
  if (k->kind == SHM_RKEY_VM && k->secret)
    return fail(why, "nonzero reserved field"); /* one encoding per key */
  if (k->kind != SHM_RKEY_VM) {
    k->pool_id = get_u64(&r);
    k->pool_size = get_u64(&r);
    k->file_off = get_u64(&r);
    k->reg_off = get_u64(&r);
    k->fd = (int32_t)get_u32(&r);
    k->dev = get_u64(&r);
    k->ino = get_u64(&r);
    if (r.bad)
      return fail(why, "truncated");
    if (get_str(&r, k->path, SHM_PATH_MAX))
      return fail(why, "bad path");
    if (k->pool_size == 0 || k->reg_off > k->pool_size ||
        k->len > k->pool_size - k->reg_off)
      return fail(why, "range outside pool");
    if (k->file_off + k->pool_size < k->file_off ||
        k->file_off > (uint64_t)INT64_MAX - k->pool_size)
      return fail(why, "pool window wraps");
    if (k->fd < 0)
      return fail(why, "bad pool fd");
    if (k->kind == SHM_RKEY_FILE && k->path[0] != '/')
      return fail(why, "file pool without absolute path");
    if (k->kind == SHM_RKEY_MEMFD && k->path[0])
      return fail(why, "memfd pool with a path");
  }
  if (r.off != len)
    return fail(why, "trailing bytes");
  return 0;
}
