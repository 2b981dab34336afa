/* Fuzzes the p2p metadata framing: the server's incremental request parser
 * (on the whole input and on its prefixes), the control channel's CTRL
 * request parser (ABI 1.2) and the client's reply parsers.
 * Parsed results must stay within the input and re-encode identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"
#include "mooncake/transport.h"
#include "p2p_wire.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse_req(const uint8_t *data, size_t size, char *name,
                     char *token) {
  size_t need = 0;
  int rc = mc_p2p_parse_request(data, size, &need, name, MC_NAME_MAX, token);
  if (rc == MC_EAGAIN && (need <= size || need > MC_P2P_REQ_MAX))
    abort();
  if (rc == 0 && (strlen(name) >= MC_NAME_MAX || strlen(token) > MC_TOKEN_MAX))
    abort();
  if (rc != 0 && rc != MC_EAGAIN && rc != MC_EPROTO && rc != MC_ENOTSUP)
    abort();
  return rc;
}

/* CTRL: parsed fields stay within the input and the frame rebuilds to the
 * same bytes; prefixes of a valid frame are incomplete. */
static void fuzz_ctrl(const uint8_t *data, size_t size) {
  mc_p2p_ctrl c;
  size_t need = 0;
  int rc = mc_p2p_parse_ctrl(data, size, &need, &c);
  if (rc == MC_EAGAIN && (need <= size || need > MC_P2P_CTRL_REQ_MAX))
    abort();
  if (rc != 0 && rc != MC_EAGAIN && rc != MC_EPROTO && rc != MC_ENOTSUP)
    abort();
  if (rc != 0)
    return;
  if (c.req < data || c.req + c.req_len > data + size || c.req_len == 0 ||
      c.req_len > MC_CTRL_MAX)
    abort();
  uint8_t *again = malloc(MC_P2P_CTRL_REQ_MAX);
  if (!again)
    return;
  size_t n = mc_p2p_build_ctrl(c.token[0] ? c.token : NULL, c.from, c.to,
                               c.transport, c.req, c.req_len, again,
                               MC_P2P_CTRL_REQ_MAX);
  if (n == 0 || n > size || memcmp(again, data, n) != 0)
    abort();
  free(again);
  for (size_t cut = 0; cut < n; cut += 1 + cut / 4)
    if (mc_p2p_parse_ctrl(data, cut, &need, &c) != MC_EAGAIN)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_ctrl(data, size);
  mc_p2p_hdr ch;
  if (mc_p2p_parse_ctrl_reply_hdr(data, size, &ch) == 0 &&
      !(ch.op == MC_P2P_OP_CTRL_REPLY ? ch.length >= 4 && ch.length <= 4 + MC_CTRL_MAX
                                      : ch.op == MC_P2P_OP_REPLY &&
                                            ch.status != MC_P2P_OK &&
                                            ch.length <= MC_P2P_REASON_MAX))
    abort();
  char name[MC_NAME_MAX], token[MC_TOKEN_MAX + 1];
  int rc = parse_req(data, size, name, token);
  size_t frame = 0;
  if (rc == 0) {
    /* A parsed request rebuilds to the same bytes (GET_AUTH when it
     * carried a token). */
    uint8_t again[MC_P2P_REQ_MAX];
    frame = mc_p2p_build_request(name, token[0] ? token : NULL, again,
                                 sizeof again);
    if (frame == 0 || frame > size || memcmp(again, data, frame) != 0)
      abort();
  }
  /* Every strict prefix of a valid frame is merely incomplete (the server
   * parses as bytes trickle in); other prefixes just must not crash. */
  char pname[MC_NAME_MAX], ptoken[MC_TOKEN_MAX + 1];
  for (size_t cut = 0; cut < size && cut <= MC_P2P_HDR_LEN + 8; cut++) {
    int prc = parse_req(data, cut, pname, ptoken);
    if (cut < frame && prc != MC_EAGAIN)
      abort();
  }

  mc_p2p_hdr h;
  if (mc_p2p_parse_reply_hdr(data, size, &h) == 0 &&
      size - MC_P2P_HDR_LEN >= h.length) {
    const uint8_t *body = data + MC_P2P_HDR_LEN;
    mc_p2p_reply r;
    if (mc_p2p_parse_reply_body(&h, body, h.length, &r) == 0) {
      const char *lo = (const char *)body, *hi = lo + h.length;
      if (r.status == MC_P2P_OK) {
        if (r.name < lo || r.name + r.name_len > hi || r.json < lo ||
            r.json + r.json_len > hi || r.json_len == 0 ||
            !mc_p2p_name_ok(r.name, r.name_len))
          abort();
        /* The head of an OK reply rebuilds identically. */
        char nm[MC_NAME_MAX];
        memcpy(nm, r.name, r.name_len);
        nm[r.name_len] = '\0';
        uint8_t head[MC_P2P_HDR_LEN + 2 + MC_NAME_MAX];
        size_t hl = mc_p2p_build_reply_head(head, sizeof head, MC_P2P_OK, nm,
                                            r.json_len);
        if (hl == 0 || memcmp(head, data, hl) != 0)
          abort();
      } else if (r.reason_len > MC_P2P_REASON_MAX ||
                 (r.reason_len && (r.reason < lo || r.reason + r.reason_len > hi))) {
        abort();
      }
    }
  }
  return 0;
}
