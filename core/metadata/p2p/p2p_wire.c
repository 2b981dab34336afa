/* p2p handshake framing (see p2p_wire.h).  Pure functions over byte
 * buffers, fuzzed by tests/fuzz/fuzz_p2p_frame.c. */
#include "p2p_wire.h"

#include <stdint.h>
#include <string.h>

#include "descriptor.h" /* MC_DESC_JSON_MAX */
#include "mooncake/errors.h"
#include "mooncake/transport.h" /* MC_NAME_MAX */
#include "token.h"                /* MC_TOKEN_MIN, MC_TOKEN_MAX */

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* Largest OK payload: u16 name length, a name, the JSON. */
#define REPLY_OK_MAX (2u + (MC_NAME_MAX - 1) + MC_DESC_JSON_MAX)

void mc_p2p_put_hdr(uint8_t out[MC_P2P_HDR_LEN], uint8_t op, uint16_t status,
                    uint32_t length) {
  put32(out, MC_P2P_MAGIC);
  out[4] = MC_P2P_VERSION;
  out[5] = op;
  out[6] = (uint8_t)(status >> 8);
  out[7] = (uint8_t)status;
  put32(out + 8, length);
}

static void get_hdr(const uint8_t *buf, mc_p2p_hdr *h) {
  h->version = buf[4];
  h->op = buf[5];
  h->status = (uint16_t)(buf[6] << 8 | buf[7]);
  h->length = get32(buf + 8);
}

int mc_p2p_name_ok(const char *name, size_t len) {
  if (len == 0 || len >= MC_NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c == 0x7f)
      return 0;
  }
  return 1;
}

size_t mc_p2p_build_request(const char *name, const char *token, uint8_t *out,
                            size_t cap) {
  size_t n = name ? strnlen(name, MC_NAME_MAX) : 0;
  size_t t = token ? strnlen(token, MC_TOKEN_MAX + 1) : 0;
  size_t body = token ? 1 + t + n : n;
  if (!mc_p2p_name_ok(name, n) || (token && !mc_token_ok(token, t)) ||
      MC_P2P_HDR_LEN + body > cap)
    return 0;
  mc_p2p_put_hdr(out, token ? MC_P2P_OP_GET_AUTH : MC_P2P_OP_GET, 0,
                 (uint32_t)body);
  uint8_t *p = out + MC_P2P_HDR_LEN;
  if (token) {
    *p++ = (uint8_t)t;
    memcpy(p, token, t);
    p += t;
  }
  memcpy(p, name, n);
  return MC_P2P_HDR_LEN + body;
}

int mc_p2p_parse_request(const uint8_t *buf, size_t len, size_t *need,
                         char *name, size_t cap, char *token) {
  /* Check the magic as soon as its bytes arrive, so garbage is dropped
   * without waiting for a full header. */
  static const uint8_t magic[4] = {'M', 'C', 'P', '2'};
  size_t m = len < 4 ? len : 4;
  if (memcmp(buf, magic, m) != 0)
    return MC_EPROTO;
  if (len < MC_P2P_HDR_LEN) {
    *need = MC_P2P_HDR_LEN;
    return MC_EAGAIN;
  }
  mc_p2p_hdr h;
  get_hdr(buf, &h);
  if (h.version != MC_P2P_VERSION)
    return h.version > MC_P2P_VERSION ? MC_ENOTSUP : MC_EPROTO;
  if ((h.op != MC_P2P_OP_GET && h.op != MC_P2P_OP_GET_AUTH) || h.status != 0 ||
      h.length > MC_P2P_REQ_MAX - MC_P2P_HDR_LEN)
    return MC_EPROTO;
  *need = MC_P2P_HDR_LEN + h.length;
  if (len < *need)
    return MC_EAGAIN;
  const char *p = (const char *)buf + MC_P2P_HDR_LEN;
  size_t rest = h.length, t = 0;
  if (h.op == MC_P2P_OP_GET_AUTH) {
    t = rest ? (uint8_t)p[0] : 0;
    if (rest < 1 + t || !mc_token_ok(p + 1, t))
      return MC_EPROTO;
    memcpy(token, p + 1, t);
    p += 1 + t;
    rest -= 1 + t;
  }
  if (!mc_p2p_name_ok(p, rest) || rest >= cap)
    return MC_EPROTO;
  token[t] = '\0';
  memcpy(name, p, rest);
  name[rest] = '\0';
  return 0;
}

size_t mc_p2p_build_reply_head(uint8_t *out, size_t cap, uint16_t status,
                               const char *name_or_reason, size_t json_len) {
  size_t n = name_or_reason ? strlen(name_or_reason) : 0;
  if (status == MC_P2P_OK) {
    if (!mc_p2p_name_ok(name_or_reason, n) || json_len > MC_DESC_JSON_MAX ||
        MC_P2P_HDR_LEN + 2 + n > cap)
      return 0;
    mc_p2p_put_hdr(out, MC_P2P_OP_REPLY, status, (uint32_t)(2 + n + json_len));
    out[MC_P2P_HDR_LEN] = (uint8_t)(n >> 8);
    out[MC_P2P_HDR_LEN + 1] = (uint8_t)n;
    memcpy(out + MC_P2P_HDR_LEN + 2, name_or_reason, n);
    return MC_P2P_HDR_LEN + 2 + n;
  }
  if (n > MC_P2P_REASON_MAX)
    n = MC_P2P_REASON_MAX;
  if (json_len || MC_P2P_HDR_LEN + n > cap)
    return 0;
  mc_p2p_put_hdr(out, MC_P2P_OP_REPLY, status, (uint32_t)n);
  if (n)
    memcpy(out + MC_P2P_HDR_LEN, name_or_reason, n);
  return MC_P2P_HDR_LEN + n;
}

int mc_p2p_parse_reply_hdr(const uint8_t *buf, size_t len, mc_p2p_hdr *h) {
  if (len < MC_P2P_HDR_LEN || get32(buf) != MC_P2P_MAGIC)
    return MC_EPROTO;
  get_hdr(buf, h);
  if (h->version != MC_P2P_VERSION || h->op != MC_P2P_OP_REPLY)
    return MC_EPROTO;
  switch (h->status) {
  case MC_P2P_OK:
    return h->length >= 3 && h->length <= REPLY_OK_MAX ? 0 : MC_EPROTO;
  case MC_P2P_NOT_FOUND:
  case MC_P2P_BAD_REQUEST:
  case MC_P2P_BAD_VERSION:
  case MC_P2P_BUSY:
  case MC_P2P_UNAUTHORIZED:
    return h->length <= MC_P2P_REASON_MAX ? 0 : MC_EPROTO;
  default:
    return MC_EPROTO;
  }
}

int mc_p2p_parse_reply_body(const mc_p2p_hdr *h, const uint8_t *payload,
                            size_t len, mc_p2p_reply *r) {
  memset(r, 0, sizeof *r);
  if (len != h->length)
    return MC_EPROTO;
  r->status = h->status;
  if (h->status != MC_P2P_OK) {
    r->reason = (const char *)payload;
    r->reason_len = len;
    return 0;
  }
  if (len < 2)
    return MC_EPROTO;
  size_t nl = (size_t)payload[0] << 8 | payload[1];
  if (nl > len - 2 || !mc_p2p_name_ok((const char *)payload + 2, nl))
    return MC_EPROTO;
  r->name = (const char *)payload + 2;
  r->name_len = nl;
  r->json = r->name + nl;
  r->json_len = len - 2 - nl;
  if (r->json_len == 0 || r->json_len > MC_DESC_JSON_MAX)
    return MC_EPROTO;
  return 0;
}

/* ---- the control channel (ABI 1.2) ---- */

int mc_p2p_peek_op(const uint8_t *buf, size_t len) {
  if (len < MC_P2P_HDR_LEN || get32(buf) != MC_P2P_MAGIC)
    return 0;
  return buf[5];
}

/* Transport names: [a-z0-9_], as plugin names. */
static int transport_ok(const char *t, size_t n) {
  if (n == 0 || n >= 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') ||
          t[i] == '_'))
      return 0;
  return 1;
}

size_t mc_p2p_build_ctrl(const char *token, const char *from, const char *to,
                         const char *transport, const void *req,
                         size_t req_len, uint8_t *out, size_t cap) {
  size_t t = token ? strnlen(token, MC_TOKEN_MAX + 1) : 0;
  size_t fl = from ? strnlen(from, MC_NAME_MAX) : 0;
  size_t tl = to ? strnlen(to, MC_NAME_MAX) : 0;
  size_t xl = transport ? strnlen(transport, 64) : 0;
  if ((t && !mc_token_ok(token, t)) || !mc_p2p_name_ok(from, fl) ||
      !mc_p2p_name_ok(to, tl) || !transport_ok(transport, xl) || !req ||
      req_len == 0 || req_len > MC_CTRL_MAX)
    return 0;
  size_t body = 4 + t + fl + tl + xl + req_len;
  if (MC_P2P_HDR_LEN + body > cap)
    return 0;
  mc_p2p_put_hdr(out, MC_P2P_OP_CTRL, 0, (uint32_t)body);
  uint8_t *p = out + MC_P2P_HDR_LEN;
  const char *parts[4] = {token, from, to, transport};
  size_t lens[4] = {t, fl, tl, xl};
  for (int i = 0; i < 4; i++) {
    *p++ = (uint8_t)lens[i];
    if (lens[i])
      memcpy(p, parts[i], lens[i]);
    p += lens[i];
  }
  memcpy(p, req, req_len);
  return MC_P2P_HDR_LEN + body;
}

/* Takes one u8-length-prefixed field off [*p, *p + *rest). */
static int take(const uint8_t **p, size_t *rest, const char **s, size_t *n) {
  if (*rest < 1)
    return MC_EPROTO;
  *n = (*p)[0];
  if (*rest < 1 + *n)
    return MC_EPROTO;
  *s = (const char *)*p + 1;
  *p += 1 + *n;
  *rest -= 1 + *n;
  return 0;
}

int mc_p2p_parse_ctrl(const uint8_t *buf, size_t len, size_t *need,
                      mc_p2p_ctrl *out) {
  static const uint8_t magic[4] = {'M', 'C', 'P', '2'};
  size_t m = len < 4 ? len : 4;
  if (memcmp(buf, magic, m) != 0)
    return MC_EPROTO;
  if (len < MC_P2P_HDR_LEN) {
    *need = MC_P2P_HDR_LEN;
    return MC_EAGAIN;
  }
  mc_p2p_hdr h;
  get_hdr(buf, &h);
  if (h.version != MC_P2P_VERSION)
    return h.version > MC_P2P_VERSION ? MC_ENOTSUP : MC_EPROTO;
  if (h.op != MC_P2P_OP_CTRL || h.status != 0 ||
      h.length > MC_P2P_CTRL_REQ_MAX - MC_P2P_HDR_LEN)
    return MC_EPROTO;
  *need = MC_P2P_HDR_LEN + h.length;
  if (len < *need)
    return MC_EAGAIN;
  const uint8_t *p = buf + MC_P2P_HDR_LEN;
  size_t rest = h.length;
  const char *s[4];
  size_t n[4];
  for (int i = 0; i < 4; i++)
    if (take(&p, &rest, &s[i], &n[i]))
      return MC_EPROTO;
  if ((n[0] && !mc_token_ok(s[0], n[0])) || !mc_p2p_name_ok(s[1], n[1]) ||
      !mc_p2p_name_ok(s[2], n[2]) || !transport_ok(s[3], n[3]) || rest == 0 ||
      rest > MC_CTRL_MAX)
    return MC_EPROTO;
  char *dst[4] = {out->token, out->from, out->to, out->transport};
  for (int i = 0; i < 4; i++) {
    memcpy(dst[i], s[i], n[i]);
    dst[i][n[i]] = '\0';
  }
  out->req = p;
  out->req_len = rest;
  return 0;
}

void mc_p2p_build_ctrl_reply_head(uint8_t out[MC_P2P_HDR_LEN + 4], int32_t rc,
                                  size_t data_len) {
  mc_p2p_put_hdr(out, MC_P2P_OP_CTRL_REPLY, MC_P2P_OK,
                 (uint32_t)(4 + (data_len > MC_CTRL_MAX ? 0 : data_len)));
  put32(out + MC_P2P_HDR_LEN, (uint32_t)rc);
}

int mc_p2p_parse_ctrl_reply_hdr(const uint8_t *buf, size_t len, mc_p2p_hdr *h) {
  if (len < MC_P2P_HDR_LEN || get32(buf) != MC_P2P_MAGIC)
    return MC_EPROTO;
  get_hdr(buf, h);
  if (h->version != MC_P2P_VERSION)
    return MC_EPROTO;
  if (h->op == MC_P2P_OP_CTRL_REPLY)
    return h->status == MC_P2P_OK && h->length >= 4 &&
                   h->length <= 4 + MC_CTRL_MAX
               ? 0
               : MC_EPROTO;
  if (h->op != MC_P2P_OP_REPLY || h->status == MC_P2P_OK)
    return MC_EPROTO;
  return mc_p2p_parse_reply_hdr(buf, len, h);
}
