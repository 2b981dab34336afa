/* fuzz_tcp_wire.c - fuzzes the TCP transport's wire decoders: frame
 * headers, endpoint descriptors and remote keys.  Whatever decodes must
 * re-encode to the same bytes (the formats have no slack), and the range
 * check must agree with plain arithmetic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tcp/tcp_wire.c"

/* check.h, not assert(): the checks must hold in release builds (NDEBUG)
 * too. */
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tcpw_hdr h;
  if (tcpw_hdr_decode(data, size, &h) == 0) {
    uint8_t raw[TCPW_HDR_SIZE];
    tcpw_hdr_encode(&h, raw);
    CHECK(memcmp(raw, data, TCPW_HDR_SIZE) == 0);
    CHECK(tcpw_payload_len(&h) <= TCPW_MAX_IO);
  }
  char host[TCPW_MAX_HOST + 1];
  uint16_t port;
  uint8_t secret[TCPW_SECRET_SIZE];
  if (tcpw_desc_decode(data, size, host, sizeof host, &port, secret) == 0) {
    uint8_t buf[TCPW_MAX_HOST + 64];
    size_t len = sizeof buf;
    CHECK(tcpw_desc_encode(host, port, secret, buf, &len) == 0);
    CHECK(len == size && memcmp(buf, data, size) == 0);
  }
  tcpw_rkey k;
  if (tcpw_rkey_decode(data, size, &k) == 0) {
    uint8_t buf[TCPW_RKEY_SIZE];
    size_t len = sizeof buf;
    CHECK(tcpw_rkey_encode(&k, buf, &len) == 0);
    CHECK(len == size && memcmp(buf, data, size) == 0);
  }
  (void)tcpw_name_check(data, size);
  if (size >= 32) {
    uint64_t v[4];
    memcpy(v, data, sizeof v);
    int in = tcpw_range_inside(v[0], v[1], v[2], v[3]);
    /* Reference in 128-bit arithmetic. */
    unsigned __int128 end = (unsigned __int128)v[0] + v[1];
    unsigned __int128 bend = (unsigned __int128)v[2] + v[3];
    int ref = v[1] > 0 && v[0] >= v[2] && end <= bend;
    CHECK(in == ref);
  }
  return 0;
}
