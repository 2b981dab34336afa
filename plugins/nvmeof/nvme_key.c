/* nvme_key.c - remote key and descriptor codecs (nvme_key.h). */
#include "nvme_key.h"

#include <string.h>

#include "mooncake/errors.h"

#define KEY_MAGIC 0x3146564eu  /* "NVF1" */
#define DESC_MAGIC 0x3144564eu /* "NVD1" */
/* magic 4, version 1, kind 1, flags 2, reg_id 8, host 8, pid 4, nsid 4,
 * addr 8, len 8, file_offset 8, dev 8, ino 8, nqn_len 1, path_len 2 */
#define KEY_HDR 75
#define KEY_SUM 8

uint64_t nv_fnv64(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 1099511628211ull;
  }
  return h;
}

static uint8_t *put(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    *p++ = (uint8_t)(v >> (8 * i));
  return p;
}

static uint64_t get(const uint8_t **p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint64_t)(*p)[i] << (8 * i);
  *p += n;
  return v;
}

size_t nv_key_encode(const nv_key *k, uint8_t *buf, size_t cap) {
  size_t nl = strnlen(k->nqn, NV_NQN_MAX - 1), pl = strnlen(k->path, NV_PATH_MAX - 1);
  size_t need = KEY_HDR + nl + pl + KEY_SUM;
  if (need > cap || !buf)
    return need;
  uint8_t *p = buf;
  p = put(p, KEY_MAGIC, 4);
  p = put(p, NV_KEY_VERSION, 1);
  p = put(p, k->kind, 1);
  p = put(p, k->flags, 2);
  p = put(p, k->reg_id, 8);
  p = put(p, k->host_hash, 8);
  p = put(p, k->pid, 4);
  p = put(p, k->nsid, 4);
  p = put(p, k->addr, 8);
  p = put(p, k->len, 8);
  p = put(p, k->file_offset, 8);
  p = put(p, k->dev, 8);
  p = put(p, k->ino, 8);
  p = put(p, nl, 1);
  p = put(p, pl, 2);
  memcpy(p, k->nqn, nl);
  p += nl;
  memcpy(p, k->path, pl);
  p += pl;
  put(p, nv_fnv64(buf, (size_t)(p - buf)), 8);
  return need;
}

int nv_key_decode(const uint8_t *buf, size_t len, nv_key *k) {
  if (!buf || len < KEY_HDR + KEY_SUM)
    return MC_EPROTO;
  const uint8_t *p = buf;
  if (get(&p, 4) != KEY_MAGIC || get(&p, 1) != NV_KEY_VERSION)
    return MC_EPROTO;
  memset(k, 0, sizeof *k);
  k->kind = (uint8_t)get(&p, 1);
  k->flags = (uint16_t)get(&p, 2);
  k->reg_id = get(&p, 8);
  k->host_hash = get(&p, 8);
  k->pid = (uint32_t)get(&p, 4);
  k->nsid = (uint32_t)get(&p, 4);
  k->addr = get(&p, 8);
  k->len = get(&p, 8);
  k->file_offset = get(&p, 8);
  k->dev = get(&p, 8);
  k->ino = get(&p, 8);
  size_t nl = (size_t)get(&p, 1), pl = (size_t)get(&p, 2);
  if (len != KEY_HDR + nl + pl + KEY_SUM || nl >= NV_NQN_MAX || pl >= NV_PATH_MAX)
    return MC_EPROTO;
  if ((k->kind != NV_KIND_FILE && k->kind != NV_KIND_CPU && k->kind != NV_KIND_GPU) ||
      (k->flags & ~NV_KEY_RO))
    return MC_EPROTO;
  if (memchr(p, 0, nl + pl))
    return MC_EPROTO;
  memcpy(k->nqn, p, nl);
  memcpy(k->path, p + nl, pl);
  p += nl + pl;
  uint64_t sum = get(&p, 8);
  if (sum != nv_fnv64(buf, len - KEY_SUM))
    return MC_EPROTO;
  if (k->kind == NV_KIND_FILE &&
      (pl == 0 || k->len == 0 || k->addr + k->len < k->addr ||
       k->file_offset + k->len < k->file_offset))
    return MC_EPROTO;
  return 0;
}

void nv_desc_encode(uint64_t host_hash, uint8_t out[NV_DESC_LEN]) {
  uint8_t *p = put(out, DESC_MAGIC, 4);
  p = put(p, NV_KEY_VERSION, 4);
  put(p, host_hash, 8);
}

int nv_desc_decode(const uint8_t *buf, size_t len, uint64_t *host_hash) {
  const uint8_t *p = buf;
  if (!buf || len != NV_DESC_LEN || get(&p, 4) != DESC_MAGIC || get(&p, 4) != NV_KEY_VERSION)
    return MC_EPROTO;
  *host_hash = get(&p, 8);
  return 0;
}
