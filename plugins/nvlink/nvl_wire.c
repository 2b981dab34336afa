/* The nvlink plugin's descriptor and remote-key codecs (nvl_wire.h). */
#include <string.h>

#include "mooncake/errors.h"
#include "nvl_wire.h"

static const uint8_t desc_magic[4] = {'M', 'C', 'N', 'V'};
static const uint8_t rkey_magic[4] = {'N', 'V', 'R', 'K'};

static void put16(uint8_t **p, uint16_t v) {
  (*p)[0] = (uint8_t)v;
  (*p)[1] = (uint8_t)(v >> 8);
  *p += 2;
}
static void put32(uint8_t **p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    (*p)[i] = (uint8_t)(v >> (8 * i));
  *p += 4;
}
static void put64(uint8_t **p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    (*p)[i] = (uint8_t)(v >> (8 * i));
  *p += 8;
}
static uint16_t get16(const uint8_t **p) {
  uint16_t v = (uint16_t)((*p)[0] | (*p)[1] << 8);
  *p += 2;
  return v;
}
static uint32_t get32(const uint8_t **p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)(*p)[i] << (8 * i);
  *p += 4;
  return v;
}
static uint64_t get64(const uint8_t **p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)(*p)[i] << (8 * i);
  *p += 8;
  return v;
}

int nvl_desc_encode(const nvl_desc *d, void *buf, size_t *len) {
  if (!buf || *len < NVL_DESC_SIZE) {
    *len = NVL_DESC_SIZE;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  memcpy(p, desc_magic, 4);
  p += 4;
  put16(&p, NVL_WIRE_VERSION);
  put16(&p, 0);
  put32(&p, d->flags);
  put32(&p, d->pid);
  put32(&p, d->uid);
  put64(&p, d->pidns);
  put32(&p, d->ndev);
  memset(p, 0, NVL_HOST_ID_MAX);
  memcpy(p, d->host_id, strnlen(d->host_id, NVL_HOST_ID_MAX - 1));
  p += NVL_HOST_ID_MAX;
  *len = (size_t)(p - (uint8_t *)buf); /* == NVL_DESC_SIZE */
  return 0;
}

int nvl_desc_decode(const void *buf, size_t len, nvl_desc *d, const char **why) {
  const uint8_t *p = buf;
  if (!buf || len != NVL_DESC_SIZE) {
    *why = "descriptor has the wrong size";
    return MC_EPROTO;
  }
  if (memcmp(p, desc_magic, 4)) {
    *why = "not an nvlink descriptor (bad magic)";
    return MC_EPROTO;
  }
  p += 4;
  if (get16(&p) != NVL_WIRE_VERSION) {
    *why = "unknown descriptor format version";
    return MC_EPROTO;
  }
  p += 2;
  d->flags = get32(&p);
  d->pid = get32(&p);
  d->uid = get32(&p);
  d->pidns = get64(&p);
  d->ndev = get32(&p);
  if (!memchr(p, 0, NVL_HOST_ID_MAX)) {
    *why = "host id not terminated";
    return MC_EPROTO;
  }
  memcpy(d->host_id, p, NVL_HOST_ID_MAX);
  if (d->pid == 0 || d->ndev == 0 || d->ndev > 4096) {
    *why = "descriptor names no process or no device";
    return MC_EPROTO;
  }
  return 0;
}

int nvl_rkey_encode(const nvl_rkey *k, void *buf, size_t *len) {
  if (!buf || *len < NVL_RKEY_SIZE) {
    *len = NVL_RKEY_SIZE;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  memcpy(p, rkey_magic, 4);
  p += 4;
  put16(&p, NVL_WIRE_VERSION);
  put16(&p, (uint16_t)k->kind);
  put32(&p, (uint32_t)k->device);
  put32(&p, k->pid);
  put64(&p, k->addr);
  put64(&p, k->len);
  put64(&p, k->alloc_base);
  put64(&p, k->alloc_size);
  memcpy(p, k->handle, NVL_HANDLE_SIZE);
  p += NVL_HANDLE_SIZE;
  *len = (size_t)(p - (uint8_t *)buf); /* == NVL_RKEY_SIZE */
  return 0;
}

int nvl_rkey_decode(const void *buf, size_t len, nvl_rkey *k, const char **why) {
  const uint8_t *p = buf;
  if (!buf || len != NVL_RKEY_SIZE) {
    *why = "remote key has the wrong size";
    return MC_EPROTO;
  }
  if (memcmp(p, rkey_magic, 4)) {
    *why = "not an nvlink remote key (bad magic)";
    return MC_EPROTO;
  }
  p += 4;
  if (get16(&p) != NVL_WIRE_VERSION) {
    *why = "unknown remote key format version";
    return MC_EPROTO;
  }
  k->kind = get16(&p);
  k->device = (int32_t)get32(&p);
  k->pid = get32(&p);
  k->addr = get64(&p);
  k->len = get64(&p);
  k->alloc_base = get64(&p);
  k->alloc_size = get64(&p);
  memcpy(k->handle, p, NVL_HANDLE_SIZE);
  if (k->kind != NVL_RKEY_IPC) {
    *why = "unknown remote key kind";
    return MC_EPROTO;
  }
  if (k->device < 0 || k->device > 4095 || k->pid == 0) {
    *why = "remote key names no device or process";
    return MC_EPROTO;
  }
  /* The range must lie inside the allocation, without wrapping. */
  if (k->len == 0 || k->alloc_size == 0 || k->addr + k->len < k->addr ||
      k->alloc_base + k->alloc_size < k->alloc_base ||
      k->addr < k->alloc_base ||
      k->addr + k->len > k->alloc_base + k->alloc_size) {
    *why = "remote key range lies outside its allocation";
    return MC_EPROTO;
  }
  return 0;
}
