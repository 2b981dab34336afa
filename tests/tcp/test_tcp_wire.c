/* test_tcp_wire.c - unit tests of the TCP wire codec (tcp_wire.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mooncake/errors.h"
#include "tcp_wire.h"

static void test_hdr_roundtrip(void) {
  static const uint16_t types[] = {TCPW_HELLO, TCPW_HELLO_ACK, TCPW_READ, TCPW_WRITE,
                                   TCPW_READ_RESP, TCPW_WRITE_RESP, TCPW_NOTIFY};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    tcpw_hdr h = {.type = types[i], .seq = 0x0102030405060708ull, .buf_id = 42,
                  .addr = 0xdeadbeef00ull, .len = 100};
    for (int k = 0; k < 16; k++)
      h.secret[k] = (uint8_t)(k * 17);
    uint8_t raw[TCPW_HDR_SIZE];
    tcpw_hdr_encode(&h, raw);
    CHECK(raw[0] == 'M' && raw[1] == 'C' && raw[2] == 'T' && raw[3] == 'W');
    tcpw_hdr d;
    CHECK_RC(tcpw_hdr_decode(raw, sizeof raw, &d), 0);
    CHECK(d.type == h.type && d.seq == h.seq && d.buf_id == 42 && d.addr == h.addr &&
          d.len == 100 && !memcmp(d.secret, h.secret, 16) && d.status == 0);
    CHECK_RC(tcpw_hdr_decode(raw, sizeof raw - 1, &d), MC_EPROTO);
  }
  /* Little-endian layout, fixed offsets. */
  tcpw_hdr h = {.type = TCPW_READ, .len = 0x0102};
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr_encode(&h, raw);
  CHECK(raw[4] == TCPW_VERSION && raw[5] == 0 && raw[6] == TCPW_READ && raw[40] == 2 &&
        raw[41] == 1);
}

static void test_hdr_rejects(void) {
  tcpw_hdr h = {.type = TCPW_WRITE, .len = 10}, d;
  uint8_t raw[TCPW_HDR_SIZE], bad[TCPW_HDR_SIZE];
  tcpw_hdr_encode(&h, raw);
  memcpy(bad, raw, sizeof raw);
  bad[0] ^= 1; /* magic */
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
  memcpy(bad, raw, sizeof raw);
  bad[4] = 2; /* version */
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
  memcpy(bad, raw, sizeof raw);
  bad[12] = 1; /* reserved flags */
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
  memcpy(bad, raw, sizeof raw);
  bad[6] = 99; /* type */
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
  /* Length caps per type. */
  struct { uint16_t type; uint64_t len; int ok; } cases[] = {
      {TCPW_WRITE, 0, 0},           {TCPW_WRITE, TCPW_MAX_IO, 1},
      {TCPW_WRITE, TCPW_MAX_IO + 1, 0}, {TCPW_READ, UINT64_MAX, 0},
      {TCPW_HELLO, 0, 0},           {TCPW_HELLO, TCPW_MAX_NAME, 1},
      {TCPW_HELLO, TCPW_MAX_NAME + 1, 0}, {TCPW_NOTIFY, 0, 1},
      {TCPW_NOTIFY, TCPW_MAX_NOTIFY, 1},  {TCPW_NOTIFY, TCPW_MAX_NOTIFY + 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tcpw_hdr c = {.type = cases[i].type, .len = cases[i].len};
    tcpw_hdr_encode(&c, bad);
    CHECK((tcpw_hdr_decode(bad, sizeof bad, &d) == 0) == cases[i].ok);
  }
  /* Status: only responses, only known codes. */
  tcpw_hdr r = {.type = TCPW_READ_RESP, .len = 8, .status = MC_EACCES};
  tcpw_hdr_encode(&r, bad);
  CHECK(tcpw_hdr_decode(bad, sizeof bad, &d) == 0 && d.status == MC_EACCES);
  CHECK_EQ_U64(tcpw_payload_len(&d), 0);
  r.status = 0;
  tcpw_hdr_encode(&r, bad);
  CHECK(tcpw_hdr_decode(bad, sizeof bad, &d) == 0 && tcpw_payload_len(&d) == 8);
  r.status = 5;
  tcpw_hdr_encode(&r, bad);
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
  r.status = MC_EBUSY - 1;
  tcpw_hdr_encode(&r, bad);
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
  tcpw_hdr q = {.type = TCPW_READ, .len = 8, .status = MC_ERANGE};
  tcpw_hdr_encode(&q, bad);
  CHECK_RC(tcpw_hdr_decode(bad, sizeof bad, &d), MC_EPROTO);
}

static void test_desc(void) {
  uint8_t buf[512];
  size_t len = 0;
  const uint8_t sec[TCPW_SECRET_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  uint8_t got[TCPW_SECRET_SIZE] = {0};
  CHECK(tcpw_desc_encode("127.0.0.1", 4242, sec, NULL, &len) == MC_ENOSPC &&
        len == 28 + 9);
  len = sizeof buf;
  CHECK(tcpw_desc_encode("127.0.0.1", 4242, sec, buf, &len) == 0 && len == 37);
  char host[TCPW_MAX_HOST + 1];
  uint16_t port = 0;
  CHECK_RC(tcpw_desc_decode(buf, len, host, sizeof host, &port, got), 0);
  CHECK(!strcmp(host, "127.0.0.1") && port == 4242 && !memcmp(got, sec, sizeof sec));
  for (size_t l = 0; l < len; l++)
    CHECK_RC(tcpw_desc_decode(buf, l, host, sizeof host, &port, got), MC_EPROTO);
  CHECK_RC(tcpw_desc_decode(buf, len + 1, host, sizeof host, &port, got), MC_EPROTO);
  CHECK_RC(tcpw_desc_decode(buf, len, host, 5, &port, got), MC_EPROTO);
  uint8_t bad[512];
  memcpy(bad, buf, len);
  bad[28] = '\n'; /* control character in host */
  CHECK_RC(tcpw_desc_decode(bad, len, host, sizeof host, &port, got), MC_EPROTO);
  memcpy(bad, buf, len);
  bad[6] = bad[7] = 0; /* port 0 */
  CHECK_RC(tcpw_desc_decode(bad, len, host, sizeof host, &port, got), MC_EPROTO);
  memcpy(bad, buf, len);
  bad[4] = 1; /* version 1 had no secret */
  CHECK_RC(tcpw_desc_decode(bad, len, host, sizeof host, &port, got), MC_EPROTO);
  CHECK_RC(tcpw_desc_decode(NULL, 0, host, sizeof host, &port, got), MC_EPROTO);
  char longhost[300];
  memset(longhost, 'a', sizeof longhost - 1);
  longhost[sizeof longhost - 1] = '\0';
  len = sizeof buf;
  CHECK_RC(tcpw_desc_encode(longhost, 1, sec, buf, &len), MC_EINVAL);
  len = sizeof buf;
  CHECK_RC(tcpw_desc_encode("", 1, sec, buf, &len), MC_EINVAL);
}

static void test_rkey(void) {
  tcpw_rkey k = {.buf_id = 7, .base = 0x1000, .len = 0x2000}, d;
  memset(k.secret, 0xA5, sizeof k.secret);
  uint8_t buf[256];
  size_t len = 0;
  CHECK(tcpw_rkey_encode(&k, buf, &len) == MC_ENOSPC && len == TCPW_RKEY_SIZE);
  len = sizeof buf;
  CHECK(tcpw_rkey_encode(&k, buf, &len) == 0 && len == TCPW_RKEY_SIZE);
  CHECK_RC(tcpw_rkey_decode(buf, len, &d), 0);
  CHECK(d.buf_id == 7 && d.base == 0x1000 && d.len == 0x2000 && !memcmp(d.secret, k.secret, 16));
  for (size_t l = 0; l < len; l++)
    CHECK_RC(tcpw_rkey_decode(buf, l, &d), MC_EPROTO);
  CHECK_RC(tcpw_rkey_decode(buf, len + 1, &d), MC_EPROTO);
  tcpw_rkey z = k;
  z.buf_id = 0;
  len = sizeof buf;
  tcpw_rkey_encode(&z, buf, &len);
  CHECK_RC(tcpw_rkey_decode(buf, len, &d), MC_EPROTO);
  z = k;
  z.base = UINT64_MAX - 10; /* wraps */
  len = sizeof buf;
  tcpw_rkey_encode(&z, buf, &len);
  CHECK_RC(tcpw_rkey_decode(buf, len, &d), MC_EPROTO);
}

static void test_range(void) {
  CHECK(tcpw_range_inside(100, 10, 100, 10));
  CHECK(tcpw_range_inside(109, 1, 100, 10));
  CHECK(!tcpw_range_inside(109, 2, 100, 10));
  CHECK(!tcpw_range_inside(99, 1, 100, 10));
  CHECK(!tcpw_range_inside(100, 0, 100, 10));
  CHECK(!tcpw_range_inside(110, 1, 100, 10));
  CHECK(!tcpw_range_inside(UINT64_MAX, 2, 100, UINT64_MAX - 100));
  CHECK(!tcpw_range_inside(105, UINT64_MAX, 100, 10));
  CHECK_RC(tcpw_name_check("host:1", 6), 0);
  CHECK_RC(tcpw_name_check("", 0), MC_EPROTO);
  CHECK_RC(tcpw_name_check("a\0b", 3), MC_EPROTO);
}

int main(void) {
  test_hdr_roundtrip();
  test_hdr_rejects();
  test_desc();
  test_rkey();
  test_range();
  printf("tcp wire: all checks passed\n");
  return 0;
}
