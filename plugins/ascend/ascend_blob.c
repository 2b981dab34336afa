/* ascend_blob.c - codec of the ascend plugin's blobs. */
#include "ascend_blob.h"

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

/* A NUL-terminated printable string in a fixed field of n bytes. */
static int get_str(const uint8_t *p, size_t n, char *out) {
  size_t l = strnlen((const char *)p, n);
  if (l == n)
    return -1;
  for (size_t i = 0; i < l; i++)
    if (p[i] < 0x21 || p[i] > 0x7e)
      return -1;
  memcpy(out, p, l);
  memset(out + l, 0, n - l);
  return 0;
}

static void put_str(uint8_t *p, size_t n, const char *s) {
  size_t l = strnlen(s, n - 1);
  memset(p, 0, n);
  memcpy(p, s, l);
}

size_t asc_desc_encode(const asc_desc *d, uint8_t *buf, size_t cap) {
  size_t hl = strnlen(d->host_id, ASC_HOST_ID_MAX);
  size_t n = 14 + hl;
  if (cap < n)
    return 0;
  memcpy(buf, "MCAD", 4);
  buf[4] = ASC_BLOB_VERSION;
  put_u32(buf + 5, d->pid);
  put_u32(buf + 9, (uint32_t)d->tgid);
  buf[13] = (uint8_t)hl;
  memcpy(buf + 14, d->host_id, hl);
  return n;
}

int asc_desc_decode(const void *in, size_t len, asc_desc *d, const char **why) {
  const uint8_t *b = in;
  if (!b || len < 14 || memcmp(b, "MCAD", 4)) {
    *why = "not an ascend descriptor";
    return -1;
  }
  if (b[4] != ASC_BLOB_VERSION) {
    *why = "unknown ascend descriptor version";
    return -1;
  }
  size_t hl = b[13];
  if (hl > ASC_HOST_ID_MAX || len != 14 + hl) {
    *why = "bad host_id length";
    return -1;
  }
  memset(d, 0, sizeof *d);
  d->pid = get_u32(b + 5);
  d->tgid = (int32_t)get_u32(b + 9);
  for (size_t i = 0; i < hl; i++) {
    if (b[14 + i] < 0x21 || b[14 + i] > 0x7e) {
      *why = "bad host_id character";
      return -1;
    }
    d->host_id[i] = (char)b[14 + i];
  }
  if (d->pid == 0 || d->tgid < -1) {
    *why = "bad pid";
    return -1;
  }
  return 0;
}

size_t asc_key_encode(const asc_key *k, uint8_t *buf, size_t cap) {
  if (cap < ASC_KEY_SIZE)
    return 0;
  memcpy(buf, "MCAK", 4);
  buf[4] = ASC_BLOB_VERSION;
  buf[5] = k->kind;
  buf[6] = k->flags;
  put_u32(buf + 7, (uint32_t)k->device);
  put_u64(buf + 11, k->base);
  put_u64(buf + 19, k->len);
  put_str(buf + 27, ASC_IPC_KEY_LEN, k->ipc_key);
  return ASC_KEY_SIZE;
}

int asc_key_decode(const void *in, size_t len, asc_key *k, const char **why) {
  const uint8_t *b = in;
  if (!b || len != ASC_KEY_SIZE || memcmp(b, "MCAK", 4)) {
    *why = "not an ascend remote key";
    return -1;
  }
  if (b[4] != ASC_BLOB_VERSION) {
    *why = "unknown ascend remote key version";
    return -1;
  }
  memset(k, 0, sizeof *k);
  k->kind = b[5];
  k->flags = b[6];
  k->device = (int32_t)get_u32(b + 7);
  k->base = get_u64(b + 11);
  k->len = get_u64(b + 19);
  if (k->kind < ASC_KEY_IPC || k->kind > ASC_KEY_NOIPC || (k->flags & ~ASC_KEY_F_PID)) {
    *why = "unknown kind or flags in ascend remote key";
    return -1;
  }
  if (k->len == 0 || k->base + k->len < k->base || k->device < 0) {
    *why = "bad range in ascend remote key";
    return -1;
  }
  if (get_str(b + 27, ASC_IPC_KEY_LEN, k->ipc_key) ||
      (k->kind == ASC_KEY_IPC && !k->ipc_key[0])) {
    *why = "bad IPC key in ascend remote key";
    return -1;
  }
  return 0;
}

size_t asc_allow_encode(const asc_allow *a, uint8_t *buf, size_t cap) {
  if (cap < ASC_ALLOW_SIZE)
    return 0;
  memcpy(buf, "MCAP", 4);
  buf[4] = ASC_BLOB_VERSION;
  put_u32(buf + 5, (uint32_t)a->tgid);
  put_str(buf + 9, ASC_IPC_KEY_LEN, a->ipc_key);
  return ASC_ALLOW_SIZE;
}

int asc_allow_decode(const void *in, size_t len, asc_allow *a, const char **why) {
  const uint8_t *b = in;
  if (!b || len != ASC_ALLOW_SIZE || memcmp(b, "MCAP", 4) || b[4] != ASC_BLOB_VERSION) {
    *why = "not an ascend allow request";
    return -1;
  }
  memset(a, 0, sizeof *a);
  a->tgid = (int32_t)get_u32(b + 5);
  if (a->tgid <= 0 || get_str(b + 9, ASC_IPC_KEY_LEN, a->ipc_key) || !a->ipc_key[0]) {
    *why = "bad tgid or IPC key in ascend allow request";
    return -1;
  }
  return 0;
}
