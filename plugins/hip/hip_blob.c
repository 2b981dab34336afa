/* hip_blob.c - codec of the hip plugin's descriptor and remote key. */
#include "hip_blob.h"

#include <string.h>

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

size_t hip_desc_encode(const hip_desc *d, uint8_t *buf, size_t cap) {
  size_t hl = strnlen(d->host_id, HIP_HOST_ID_MAX);
  size_t n = 4 + 1 + 4 + 1 + hl;
  if (cap < n)
    return 0;
  memcpy(buf, "MCHD", 4);
  buf[4] = HIP_BLOB_VERSION;
  put_u32(buf + 5, d->pid);
  buf[9] = (uint8_t)hl;
  memcpy(buf + 10, d->host_id, hl);
  return n;
}

int hip_desc_decode(const void *in, size_t len, hip_desc *d, const char **why) {
  const uint8_t *b = in;
  if (!b || len < 10 || memcmp(b, "MCHD", 4)) {
    *why = "not a hip descriptor";
    return -1;
  }
  if (b[4] != HIP_BLOB_VERSION) {
    *why = "unknown hip descriptor version";
    return -1;
  }
  size_t hl = b[9];
  if (hl > HIP_HOST_ID_MAX || len != 10 + hl) {
    *why = "bad host_id length";
    return -1;
  }
  memset(d, 0, sizeof *d);
  d->pid = get_u32(b + 5);
  for (size_t i = 0; i < hl; i++) {
    /* The boot id is printable; anything else is a forged blob. */
    if (b[10 + i] < 0x21 || b[10 + i] > 0x7e) {
      *why = "bad host_id character";
      return -1;
    }
    d->host_id[i] = (char)b[10 + i];
  }
  if (d->pid == 0) {
    *why = "pid 0";
    return -1;
  }
  return 0;
}

size_t hip_key_encode(const hip_key *k, uint8_t *buf, size_t cap) {
  if (cap < HIP_KEY_SIZE)
    return 0;
  memcpy(buf, "MCHK", 4);
  buf[4] = HIP_BLOB_VERSION;
  buf[5] = k->kind;
  put_u32(buf + 6, (uint32_t)k->device);
  put_u64(buf + 10, k->base);
  put_u64(buf + 18, k->len);
  put_u64(buf + 26, k->alloc_off);
  memcpy(buf + 34, k->handle, HIP_HANDLE_SIZE);
  return HIP_KEY_SIZE;
}

int hip_key_decode(const void *in, size_t len, hip_key *k, const char **why) {
  const uint8_t *b = in;
  if (!b || len != HIP_KEY_SIZE || memcmp(b, "MCHK", 4)) {
    *why = "not a hip remote key";
    return -1;
  }
  if (b[4] != HIP_BLOB_VERSION) {
    *why = "unknown hip remote key version";
    return -1;
  }
  memset(k, 0, sizeof *k);
  k->kind = b[5];
  k->device = (int32_t)get_u32(b + 6);
  k->base = get_u64(b + 10);
  k->len = get_u64(b + 18);
  k->alloc_off = get_u64(b + 26);
  memcpy(k->handle, b + 34, HIP_HANDLE_SIZE);
  if (k->kind != HIP_KEY_DEVICE && k->kind != HIP_KEY_HOST) {
    *why = "unknown memory kind in hip remote key";
    return -1;
  }
  if (k->len == 0 || k->base + k->len < k->base || k->device < 0 ||
      k->alloc_off > UINT64_MAX - k->len) {
    *why = "bad range in hip remote key";
    return -1;
  }
  return 0;
}
