/* Internal: the p2p metadata handshake's wire format, version 1.
 *
 * One request per TCP connection; all integers big-endian.
 *   header (12 bytes): magic "MCP2" | version u8 | op u8 | status u16 | length u32
 *   GET:   header{op=GET, status=0, length=n} + segment name (n bytes, 1..255,
 *          no control characters)
 *   GET_AUTH: header{op=GET_AUTH, status=0, length} + u8 t + the cluster
 *          token (t bytes, MC_TOKEN_MIN..MC_TOKEN_MAX printable ASCII) +
 *          segment name.  A server with a cluster token answers GET, and
 *          GET_AUTH with another token, UNAUTHORIZED; one without a token
 *          serves both.
 *   REPLY: header{op=REPLY, status, length} + payload, where the payload is
 *          for OK:    u16 name_len + the served segment's name + descriptor JSON
 *          otherwise: a short reason text (<= MC_P2P_REASON_MAX bytes) for logs
 *   CTRL:  header{op=CTRL, status=0, length} + u8 t + token (t bytes, 0 when
 *          the caller has none) + u8 + the calling segment's name + u8 + the
 *          target segment's name + u8 + the transport's name + the request
 *          (1..MC_CTRL_MAX bytes): the control channel (ABI 1.2,
 *          mc_host_api.ctrl_call).  Answered by
 *   CTRL_REPLY: header{op=CTRL_REPLY, status=OK, length} + i32 rc (0 or a
 *          negative MC_E*, the target's ctrl_handle result) + the reply
 *          (0..MC_CTRL_MAX bytes), or by a REPLY with an error status.
 * A server that receives a newer version answers BAD_VERSION in version 1.
 *
 * The functions here are pure (no I/O, no allocation) so they can be fuzzed;
 * every input is treated as hostile. */
#ifndef MC_P2P_WIRE_H
#define MC_P2P_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/transport.h" /* MC_CTRL_MAX, MC_NAME_MAX */

#define MC_P2P_MAGIC 0x4d435032u /* "MCP2" */
#define MC_P2P_VERSION 1
#define MC_P2P_HDR_LEN 12
#define MC_P2P_REQ_MAX 4096 /* whole request frame */
#define MC_P2P_REASON_MAX 256
/* Largest CTRL request frame: header, token, three names, the request. */
#define MC_P2P_CTRL_REQ_MAX                                                    \
  (MC_P2P_HDR_LEN + 4 + 128 + 3 * 255 + MC_CTRL_MAX)
/* Largest CTRL_REPLY frame. */
#define MC_P2P_CTRL_REPLY_MAX (MC_P2P_HDR_LEN + 4 + MC_CTRL_MAX)

enum mc_p2p_op {
  MC_P2P_OP_GET = 1,
  MC_P2P_OP_REPLY = 2,
  MC_P2P_OP_GET_AUTH = 3,
  MC_P2P_OP_CTRL = 4,
  MC_P2P_OP_CTRL_REPLY = 5,
};

enum mc_p2p_status {
  MC_P2P_OK = 0,
  MC_P2P_NOT_FOUND = 1,   /* no such segment served here */
  MC_P2P_BAD_REQUEST = 2, /* malformed request */
  MC_P2P_BAD_VERSION = 3, /* request version newer than the server's */
  MC_P2P_BUSY = 4,        /* too many connections; retry later */
  MC_P2P_UNAUTHORIZED = 5, /* no cluster token, or not this cluster's */
};

typedef struct mc_p2p_hdr {
  uint8_t version;
  uint8_t op;
  uint16_t status;
  uint32_t length; /* payload bytes after the header */
} mc_p2p_hdr;

typedef struct mc_p2p_reply {
  uint16_t status;
  const char *name; /* OK: served segment name (not NUL-terminated) */
  size_t name_len;
  const char *json; /* OK: descriptor JSON (not NUL-terminated) */
  size_t json_len;
  const char *reason; /* error: reason text (not NUL-terminated) */
  size_t reason_len;
} mc_p2p_reply;

/* Writes a header. */
void mc_p2p_put_hdr(uint8_t out[MC_P2P_HDR_LEN], uint8_t op, uint16_t status,
                    uint32_t length);

/* Builds a request for name into out: GET_AUTH carrying token, or GET when
 * token is NULL.  Returns its length, or 0 when the name or token is invalid
 * or the frame does not fit in cap. */
size_t mc_p2p_build_request(const char *name, const char *token, uint8_t *out,
                            size_t cap);

/* Parses a request (GET or GET_AUTH) from the first len bytes received so
 * far.
 *   0             complete; name (cap bytes) and token (MC_TOKEN_MAX + 1
 *                 bytes; "" for GET) filled, both NUL-terminated
 *   MC_EAGAIN     incomplete; *need says how many bytes the frame needs
 *   MC_ENOTSUP    magic right but a version this build does not speak
 *   MC_EPROTO     garbage (bad magic, op, length, token or name)
 * Bytes past the frame are ignored. */
int mc_p2p_parse_request(const uint8_t *buf, size_t len, size_t *need,
                         char *name, size_t cap, char *token);

/* Builds the part of a reply that precedes the JSON (header and, for OK, the
 * served name; for errors, the reason) into out; returns its length or 0 if
 * it does not fit or the sizes are out of range.  json_len is the length of
 * the JSON the caller sends after it (0 for errors). */
size_t mc_p2p_build_reply_head(uint8_t *out, size_t cap, uint16_t status,
                               const char *name_or_reason, size_t json_len);

/* Checks a reply header (magic, version, op, status, length bounds). */
int mc_p2p_parse_reply_hdr(const uint8_t *buf, size_t len, mc_p2p_hdr *h);

/* Splits a reply payload (h->length bytes) into its parts; MC_EPROTO if it
 * is malformed.  r points into payload. */
int mc_p2p_parse_reply_body(const mc_p2p_hdr *h, const uint8_t *payload,
                            size_t len, mc_p2p_reply *r);

/* A parsed CTRL request; the strings are NUL-terminated copies, req points
 * into the frame. */
typedef struct mc_p2p_ctrl {
  char token[128 + 1]; /* "" when the caller sent none */
  char from[MC_NAME_MAX];
  char to[MC_NAME_MAX];
  char transport[64];
  const uint8_t *req;
  size_t req_len;
} mc_p2p_ctrl;

/* The op of a frame whose first len bytes arrived: 0 when fewer than a
 * header's bytes are there (or the magic is wrong: the request parsers
 * tell which). */
int mc_p2p_peek_op(const uint8_t *buf, size_t len);

/* Builds a CTRL request; returns its length, or 0 when a name, the token or
 * the size is invalid or the frame does not fit in cap. */
size_t mc_p2p_build_ctrl(const char *token, const char *from, const char *to,
                         const char *transport, const void *req,
                         size_t req_len, uint8_t *out, size_t cap);

/* Parses a CTRL request from the first len bytes; results as
 * mc_p2p_parse_request (MC_EAGAIN with *need, MC_ENOTSUP, MC_EPROTO). */
int mc_p2p_parse_ctrl(const uint8_t *buf, size_t len, size_t *need,
                      mc_p2p_ctrl *out);

/* Builds a CTRL_REPLY header and rc (16 bytes) for a reply of data_len
 * (<= MC_CTRL_MAX) bytes that the caller sends after it. */
void mc_p2p_build_ctrl_reply_head(uint8_t out[MC_P2P_HDR_LEN + 4], int32_t rc,
                                  size_t data_len);

/* Checks the header of an answer to CTRL: a CTRL_REPLY (OK, length 4..
 * 4 + MC_CTRL_MAX) or a REPLY with an error status (as
 * mc_p2p_parse_reply_hdr).  MC_EPROTO otherwise. */
int mc_p2p_parse_ctrl_reply_hdr(const uint8_t *buf, size_t len, mc_p2p_hdr *h);

/* Segment names on the wire: 1..MC_NAME_MAX-1 bytes, no control bytes. */
int mc_p2p_name_ok(const char *name, size_t len);

#endif
