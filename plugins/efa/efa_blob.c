/* efa_blob.c - encoders and defensive decoders of the efa blobs (layout in
 * efa_blob.h).  libc only, so tests and the fuzz target link it alone. */
#include "efa_blob.h"

#include <string.h>

#include "mooncake/errors.h"

#define DESC_MAGIC "MCFD"
#define RKEY_MAGIC "MCFK"
#define DESC_VERSION 1u
#define RKEY_VERSION 2u

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static int prov_ok(const char *s, size_t n) {
  if (n == 0 || n > EFAB_MAX_PROV)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e)
      return 0;
  return 1;
}

int efab_desc_encode(const efab_desc *d, void *buf, size_t *len) {
  if (!d || !len || d->nrails == 0 || d->nrails > EFAB_MAX_RAILS)
    return MC_EINVAL;
  size_t pl = strnlen(d->prov, EFAB_MAX_PROV + 1);
  if (!prov_ok(d->prov, pl))
    return MC_EINVAL;
  size_t need = 8 + EFAB_SECRET + 1 + pl;
  for (uint32_t i = 0; i < d->nrails; i++) {
    if (d->addr_len[i] == 0 || d->addr_len[i] > EFAB_MAX_ADDR)
      return MC_EINVAL;
    need += 2 + d->addr_len[i];
  }
  if (!buf || *len < need) {
    *len = need;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  memcpy(p, DESC_MAGIC, 4);
  p[4] = DESC_VERSION;
  p[5] = (uint8_t)d->nrails;
  put16(p + 6, d->addr_format);
  memcpy(p + 8, d->secret, EFAB_SECRET);
  p += 8 + EFAB_SECRET;
  *p++ = (uint8_t)pl;
  memcpy(p, d->prov, pl);
  p += pl;
  for (uint32_t i = 0; i < d->nrails; i++) {
    put16(p, d->addr_len[i]);
    memcpy(p + 2, d->addr[i], d->addr_len[i]);
    p += 2 + d->addr_len[i];
  }
  *len = need;
  return 0;
}

int efab_desc_decode(const void *vbuf, size_t len, efab_desc *d) {
  const uint8_t *p = vbuf, *end = p + len;
  if (!vbuf || !d || len < 8 + EFAB_SECRET + 1 || memcmp(p, DESC_MAGIC, 4) ||
      p[4] != DESC_VERSION || p[5] == 0 || p[5] > EFAB_MAX_RAILS)
    return MC_EPROTO;
  memset(d, 0, sizeof *d);
  d->nrails = p[5];
  d->addr_format = get16(p + 6);
  memcpy(d->secret, p + 8, EFAB_SECRET);
  p += 8 + EFAB_SECRET;
  size_t pl = *p++;
  if ((size_t)(end - p) < pl || !prov_ok((const char *)p, pl))
    return MC_EPROTO;
  memcpy(d->prov, p, pl);
  d->prov[pl] = '\0';
  p += pl;
  for (uint32_t i = 0; i < d->nrails; i++) {
    if (end - p < 2)
      return MC_EPROTO;
    uint16_t al = get16(p);
    p += 2;
    if (al == 0 || al > EFAB_MAX_ADDR || (size_t)(end - p) < al)
      return MC_EPROTO;
    d->addr_len[i] = al;
    memcpy(d->addr[i], p, al);
    p += al;
  }
  return p == end ? 0 : MC_EPROTO;
}

/* The encoded fields before the tag. */
static size_t rkey_body(const efab_rkey *k, uint8_t *p) {
  memcpy(p, RKEY_MAGIC, 4);
  p[4] = RKEY_VERSION;
  p[5] = (uint8_t)k->nrails;
  p[6] = (uint8_t)k->flags;
  p[7] = 0;
  put64(p + 8, k->base);
  put64(p + 16, k->len);
  for (uint32_t i = 0; i < k->nrails; i++)
    put64(p + 24 + 8 * i, k->key[i]);
  return 24 + 8 * (size_t)k->nrails;
}

int efab_rkey_encode(const efab_rkey *k, void *buf, size_t *len) {
  if (!k || !len || k->nrails == 0 || k->nrails > EFAB_MAX_RAILS || k->len == 0 ||
      k->base + k->len < k->base || k->flags > EFAB_RKEY_VIRT)
    return MC_EINVAL;
  size_t need = EFAB_RKEY_LEN(k->nrails);
  if (!buf || *len < need) {
    *len = need;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  put64(p + rkey_body(k, p), k->tag);
  *len = need;
  return 0;
}

int efab_rkey_decode(const void *vbuf, size_t len, efab_rkey *k) {
  const uint8_t *p = vbuf;
  if (!vbuf || !k || len < EFAB_RKEY_LEN(1) || memcmp(p, RKEY_MAGIC, 4) ||
      p[4] != RKEY_VERSION || p[5] == 0 || p[5] > EFAB_MAX_RAILS || p[6] > EFAB_RKEY_VIRT ||
      p[7] != 0 || len != EFAB_RKEY_LEN(p[5]))
    return MC_EPROTO;
  memset(k, 0, sizeof *k);
  k->nrails = p[5];
  k->flags = p[6];
  k->base = get64(p + 8);
  k->len = get64(p + 16);
  if (k->len == 0 || k->base + k->len < k->base)
    return MC_EPROTO;
  for (uint32_t i = 0; i < k->nrails; i++)
    k->key[i] = get64(p + 24 + 8 * i);
  k->tag = get64(p + 24 + 8 * (size_t)k->nrails);
  return 0;
}

/* ---- SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit PRF, so a tag
 * cannot be made for changed fields without the secret. ---- */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
  do {                                                                         \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                  \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                     \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                     \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                  \
  } while (0)

uint64_t efab_siphash(const uint8_t key[16], const void *msg, size_t len) {
  const uint8_t *m = msg;
  uint64_t k0 = get64(key), k1 = get64(key + 8);
  uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  size_t full = len & ~(size_t)7;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t w = get64(m + i);
    v3 ^= w;
    SIPROUND;
    SIPROUND;
    v0 ^= w;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t i = 0; i < (len & 7); i++)
    b |= (uint64_t)m[full + i] << (8 * i);
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t efab_rkey_tag(const uint8_t secret[EFAB_SECRET], const efab_rkey *k) {
  uint8_t body[EFAB_RKEY_LEN(EFAB_MAX_RAILS)];
  uint32_t n = k->nrails > EFAB_MAX_RAILS ? EFAB_MAX_RAILS : k->nrails;
  efab_rkey c = *k;
  c.nrails = n;
  return efab_siphash(secret, body, rkey_body(&c, body));
}
