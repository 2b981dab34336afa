/* test_rdma_wire.c - the rdma plugin's blob and message codecs: round
 * trips, and every truncation, extension and single-bit flip of a valid
 * blob either decodes to something self-consistent or is refused, never
 * read out of bounds (run under ASan in CI). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mooncake/transport.h"
#include "rdma_wire.h"

static void fuzz(const uint8_t *good, size_t len, int (*dec)(const void *, size_t, void *),
                 void *out) {
  uint8_t *b = malloc(len + 8);
  CHECK(b != NULL);
  for (size_t l = 0; l < len; l++) { /* truncations: heap-exact copies */
    uint8_t *t = malloc(l ? l : 1);
    memcpy(t, good, l);
    CHECK_MSG(dec(t, l, out) != 0, "truncated to %zu accepted", l);
    free(t);
  }
  memcpy(b, good, len);
  memset(b + len, 0, 8);
  CHECK(dec(b, len + 1, out) != 0); /* trailing byte */
  for (size_t i = 0; i < len * 8; i++) {
    memcpy(b, good, len);
    b[i / 8] ^= (uint8_t)(1u << (i % 8));
    (void)dec(b, len, out);
  }
  srand(7);
  for (int i = 0; i < 20000; i++) {
    size_t l = (size_t)rand() % (len + 8);
    for (size_t k = 0; k < l; k++)
      b[k] = (uint8_t)rand();
    if (l >= 4)
      memcpy(b, good, 4); /* keep the magic to get past the first check */
    (void)dec(b, l, out);
  }
  free(b);
}

static int dec_desc(const void *b, size_t l, void *o) { return rdw_desc_decode(b, l, o); }
static int dec_rkey(const void *b, size_t l, void *o) { return rdw_rkey_decode(b, l, o); }
static int dec_ctrl(const void *b, size_t l, void *o) { return rdw_ctrl_decode(b, l, o); }

int main(void) {
  rdw_desc d, d2;
  memset(&d, 0, sizeof d);
  d.nonce = 0x1122334455667788ull;
  d.nrails = 4;
  for (int i = 0; i < 4; i++) {
    d.rails[i].gid[15] = (uint8_t)i;
    d.rails[i].lid = (uint16_t)(i + 1);
    d.rails[i].mtu = 5;
    d.rails[i].link_ib = i == 3;
  }
  uint8_t buf[4096];
  size_t len = 8;
  CHECK_RC(rdw_desc_encode(&d, buf, &len), MC_ENOSPC);
  CHECK_EQ_U64(len, 16 + 4 * 20);
  len = sizeof buf;
  CHECK_OK(rdw_desc_encode(&d, buf, &len));
  CHECK_OK(rdw_desc_decode(buf, len, &d2));
  CHECK(memcmp(&d, &d2, sizeof d) == 0);
  fuzz(buf, len, dec_desc, &d2);

  rdw_rkey k, k2;
  memset(&k, 0, sizeof k);
  k.nonce = 9;
  k.base = 0x10000;
  k.len = 5u << 20;
  k.chunk = 2u << 20;
  k.nrails = 4;
  k.nchunks = 3;
  for (int i = 0; i < 12; i++)
    k.keys[i] = 0x1000u * (uint32_t)i + 7;
  len = sizeof buf;
  CHECK_OK(rdw_rkey_encode(&k, buf, &len));
  CHECK_EQ_U64(len, 40 + 12 * 4);
  CHECK(len <= MC_RKEY_MAX);
  CHECK_OK(rdw_rkey_decode(buf, len, &k2));
  CHECK(memcmp(&k, &k2, sizeof k) == 0);
  fuzz(buf, len, dec_rkey, &k2);
  k.nchunks = 20; /* 80 keys: more than a remote key holds */
  len = sizeof buf;
  CHECK_RC(rdw_rkey_encode(&k, buf, &len), MC_ENOTSUP);

  rdw_ctrl *m = calloc(2, sizeof *m);
  CHECK(m != NULL);
  m->type = RDW_CONNECT;
  m->init_nonce = 1;
  m->target_nonce = 2;
  m->ep_id = 3;
  m->nqps = 8;
  for (uint32_t i = 0; i < 8; i++) {
    m->qps[i].qidx = (uint16_t)i;
    m->qps[i].lrail = (uint8_t)(i / 2);
    m->qps[i].rrail = (uint8_t)(i / 2);
    m->qps[i].qpn = 100 + i;
    m->qps[i].psn = 0xabcde;
    m->qps[i].mtu = 3;
  }
  len = sizeof buf;
  CHECK_OK(rdw_ctrl_encode(m, buf, &len));
  CHECK_OK(rdw_ctrl_decode(buf, len, &m[1]));
  CHECK_EQ_INT(m[1].nqps, 8);
  CHECK_EQ_INT(m[1].qps[5].qpn, 105);
  CHECK_EQ_INT(m[1].qps[7].lrail, 3);
  fuzz(buf, len, dec_ctrl, &m[1]);
  m->type = RDW_NOTIFY;
  m->payload = (const uint8_t *)"hello";
  m->payload_len = 5;
  len = sizeof buf;
  CHECK_OK(rdw_ctrl_encode(m, buf, &len));
  CHECK_OK(rdw_ctrl_decode(buf, len, &m[1]));
  CHECK_EQ_U64(m[1].payload_len, 5);
  CHECK(memcmp(m[1].payload, "hello", 5) == 0);
  free(m);
  return mc_check_exit_status();
}
