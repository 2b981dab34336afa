/* tcp_wire.c - encoders and defensive decoders of the TCP wire format. */
#include "tcp_wire.h"

#include <string.h>

#include "mooncake/errors.h"

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

void tcpw_hdr_encode(const tcpw_hdr *h, uint8_t *out) {
  put32(out + 0, TCPW_MAGIC);
  put16(out + 4, TCPW_VERSION);
  put16(out + 6, h->type);
  put32(out + 8, (uint32_t)h->status);
  put32(out + 12, 0);
  put64(out + 16, h->seq);
  put64(out + 24, h->buf_id);
  put64(out + 32, h->addr);
  put64(out + 40, h->len);
  memcpy(out + 48, h->secret, TCPW_SECRET_SIZE);
}

int tcpw_hdr_decode(const uint8_t *in, size_t n, tcpw_hdr *h) {
  if (n < TCPW_HDR_SIZE || get32(in) != TCPW_MAGIC ||
      get16(in + 4) != TCPW_VERSION || get32(in + 12) != 0)
    return MC_EPROTO;
  memset(h, 0, sizeof *h);
  h->type = get16(in + 6);
  h->status = (int32_t)get32(in + 8);
  h->seq = get64(in + 16);
  h->buf_id = get64(in + 24);
  h->addr = get64(in + 32);
  h->len = get64(in + 40);
  memcpy(h->secret, in + 48, TCPW_SECRET_SIZE);
  /* Status is a known MC_E* code; only responses may carry one. */
  if (h->status > 0 || h->status < MC_EBUSY)
    return MC_EPROTO;
  int resp = h->type == TCPW_READ_RESP || h->type == TCPW_WRITE_RESP;
  if (!resp && h->status != 0)
    return MC_EPROTO;
  switch (h->type) {
  case TCPW_HELLO:
  case TCPW_HELLO_ACK:
    return h->len >= 1 && h->len <= TCPW_MAX_NAME ? 0 : MC_EPROTO;
  case TCPW_NOTIFY:
    return h->len <= TCPW_MAX_NOTIFY ? 0 : MC_EPROTO;
  case TCPW_READ:
  case TCPW_WRITE:
  case TCPW_READ_RESP:
  case TCPW_WRITE_RESP:
    return h->len >= 1 && h->len <= TCPW_MAX_IO ? 0 : MC_EPROTO;
  default:
    return MC_EPROTO;
  }
}

uint64_t tcpw_payload_len(const tcpw_hdr *h) {
  switch (h->type) {
  case TCPW_HELLO:
  case TCPW_HELLO_ACK:
  case TCPW_NOTIFY:
  case TCPW_WRITE:
    return h->len;
  case TCPW_READ_RESP:
    return h->status == 0 ? h->len : 0;
  default:
    return 0;
  }
}

static int printable(const uint8_t *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] > 0x7e)
      return 0;
  return 1;
}

int tcpw_name_check(const void *name, size_t len) {
  if (len < 1 || len > TCPW_MAX_NAME || !printable(name, len))
    return MC_EPROTO;
  return 0;
}

#define DESC_FIXED (12u + TCPW_SECRET_SIZE)

int tcpw_desc_encode(const char *host, uint16_t port,
                     const uint8_t secret[TCPW_SECRET_SIZE], void *buf,
                     size_t *len) {
  size_t hl = strlen(host);
  if (hl < 1 || hl > TCPW_MAX_HOST || !printable((const uint8_t *)host, hl))
    return MC_EINVAL;
  size_t need = DESC_FIXED + hl;
  if (!buf || *len < need) {
    *len = need;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  put32(p, TCPW_DESC_MAGIC);
  put16(p + 4, TCPW_DESC_VERSION);
  put16(p + 6, port);
  put16(p + 8, (uint16_t)hl);
  put16(p + 10, 0);
  memcpy(p + 12, secret, TCPW_SECRET_SIZE);
  memcpy(p + DESC_FIXED, host, hl);
  *len = need;
  return 0;
}

int tcpw_desc_decode(const void *buf, size_t len, char *host, size_t hostcap,
                     uint16_t *port, uint8_t secret[TCPW_SECRET_SIZE]) {
  const uint8_t *p = buf;
  if (!buf || len < DESC_FIXED || get32(p) != TCPW_DESC_MAGIC ||
      get16(p + 4) != TCPW_DESC_VERSION || get16(p + 10) != 0)
    return MC_EPROTO;
  size_t hl = get16(p + 8);
  /* Exact length: trailing garbage is as suspect as truncation. */
  if (hl < 1 || hl > TCPW_MAX_HOST || len != DESC_FIXED + hl ||
      hostcap < hl + 1 || !printable(p + DESC_FIXED, hl))
    return MC_EPROTO;
  *port = get16(p + 6);
  if (*port == 0)
    return MC_EPROTO;
  memcpy(secret, p + 12, TCPW_SECRET_SIZE);
  memcpy(host, p + DESC_FIXED, hl);
  host[hl] = '\0';
  return 0;
}

int tcpw_rkey_encode(const tcpw_rkey *k, void *buf, size_t *len) {
  if (!buf || *len < TCPW_RKEY_SIZE) {
    *len = TCPW_RKEY_SIZE;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  put32(p, TCPW_RKEY_MAGIC);
  put16(p + 4, TCPW_RKEY_VERSION);
  put16(p + 6, 0);
  put64(p + 8, k->buf_id);
  put64(p + 16, k->base);
  put64(p + 24, k->len);
  memcpy(p + 32, k->secret, TCPW_SECRET_SIZE);
  *len = TCPW_RKEY_SIZE;
  return 0;
}

int tcpw_rkey_decode(const void *buf, size_t len, tcpw_rkey *k) {
  const uint8_t *p = buf;
  if (!buf || len != TCPW_RKEY_SIZE || get32(p) != TCPW_RKEY_MAGIC ||
      get16(p + 4) != TCPW_RKEY_VERSION || get16(p + 6) != 0)
    return MC_EPROTO;
  k->buf_id = get64(p + 8);
  k->base = get64(p + 16);
  k->len = get64(p + 24);
  memcpy(k->secret, p + 32, TCPW_SECRET_SIZE);
  if (k->buf_id == 0 || k->len == 0 || k->base + k->len < k->base)
    return MC_EPROTO;
  return 0;
}

int tcpw_range_inside(uint64_t addr, uint64_t len, uint64_t base, uint64_t blen) {
  if (len == 0 || addr < base)
    return 0;
  uint64_t off = addr - base;
  return off <= blen && len <= blen - off;
}
