/* Segment descriptor codec: round trips, lookups, and one rejection per
 * validation rule with the offending field named in the error. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h" /* tests/common */
#include "testutil.h"
#include "descriptor.h"

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)((i * 31 + seed) % 7 == 0 ? 0 : (i * 131 + seed));
}

static void check_equal(const mc_seg_desc *a, const mc_seg_desc *b) {
  CHECK(strcmp(a->name, b->name) == 0);
  CHECK(a->version == b->version);
  CHECK(strcmp(a->host_id, b->host_id) == 0);
  CHECK(a->ntransports == b->ntransports);
  for (uint32_t i = 0; i < a->ntransports; i++) {
    CHECK(strcmp(a->transports[i].name, b->transports[i].name) == 0);
    CHECK(a->transports[i].len == b->transports[i].len);
    CHECK(b->transports[i].blob != NULL);
    CHECK(memcmp(a->transports[i].blob, b->transports[i].blob,
                 a->transports[i].len) == 0);
  }
  CHECK(a->nbuffers == b->nbuffers);
  for (uint32_t i = 0; i < a->nbuffers; i++) {
    const mc_desc_buffer *x = &a->buffers[i], *y = &b->buffers[i];
    CHECK(x->addr == y->addr && x->len == y->len && x->kind == y->kind);
    CHECK(strcmp(x->location, y->location) == 0);
    CHECK(x->nkeys == y->nkeys);
    for (uint32_t k = 0; k < x->nkeys; k++) {
      /* Keys may come back in another order; match by transport. */
      const mc_desc_key *want = &x->keys[k], *got = NULL;
      for (uint32_t j = 0; j < y->nkeys; j++)
        if (y->keys[j].transport == want->transport)
          got = &y->keys[j];
      CHECK(got != NULL);
      CHECK(got->len == want->len);
      CHECK(memcmp(got->bytes, want->bytes, want->len) == 0);
    }
  }
}

static void test_round_trip(void) {
  mc_desc_transport ts[3] = {0};
  uint8_t tcp_blob[MC_DESC_MAX], shm_blob[1] = {0}, rdma_blob[37];
  fill(tcp_blob, sizeof tcp_blob, 1);
  fill(rdma_blob, sizeof rdma_blob, 2);
  snprintf(ts[0].name, sizeof ts[0].name, "tcp");
  ts[0].blob = tcp_blob;
  ts[0].len = sizeof tcp_blob; /* maximum size */
  snprintf(ts[1].name, sizeof ts[1].name, "shm");
  ts[1].blob = shm_blob;
  ts[1].len = 0; /* empty blob */
  snprintf(ts[2].name, sizeof ts[2].name, "rdma");
  ts[2].blob = rdma_blob;
  ts[2].len = sizeof rdma_blob;

  mc_desc_key k0[3] = {{.transport = 0, .len = MC_RKEY_MAX},
                       {.transport = 2, .len = 1},
                       {.transport = 1, .len = 0}};
  fill(k0[0].bytes, MC_RKEY_MAX, 3);
  k0[1].bytes[0] = 0; /* a lone zero byte */
  mc_desc_key k1[1] = {{.transport = 2, .len = 5}};
  memcpy(k1[0].bytes, "\0\1\0\2\0", 5);

  /* Deliberately unsorted in memory: the encoder sorts. */
  mc_desc_buffer bs[3] = {
      {.addr = UINT64_MAX - 4096, .len = 4096, /* ends at UINT64_MAX */ .kind = MC_MEM_CUDA,
       .nkeys = 1, .keys = k1},
      {.addr = 0x1000, .len = 4096, .kind = MC_MEM_CPU, .nkeys = 3,
       .keys = k0},
      {.addr = 0x7f0000000000ull, .len = 1ull << 40, .kind = MC_MEM_FILE},
  };
  snprintf(bs[0].location, sizeof bs[0].location, "cuda:7");
  snprintf(bs[1].location, sizeof bs[1].location, "cpu:0");
  mc_seg_desc d = {.version = (uint64_t)INT64_MAX, .ntransports = 3,
                   .transports = ts, .nbuffers = 3, .buffers = bs};
  snprintf(d.name, sizeof d.name, "10.0.0.1:15000");
  snprintf(d.host_id, sizeof d.host_id, "boot-id/netns-id");

  char *json;
  size_t len;
  CHECK_RC(mc_desc_encode(&d, &json, &len), 0);
  CHECK(strlen(json) == len);
  CHECK(strstr(json, "\"addr\":\"0xffffffffffffefff\"") != NULL);

  mc_seg_desc *out;
  char err[256];
  CHECK_RC(mc_desc_decode(json, len, &out, err, sizeof err), 0);
  mc_desc_buffer sorted[3] = {bs[1], bs[2], bs[0]};
  mc_seg_desc want = d;
  want.buffers = sorted;
  check_equal(&want, out);

  /* Lookups. */
  CHECK(mc_desc_find_transport(out, "rdma") == 2);
  CHECK(mc_desc_find_transport(out, "efa") == -1);
  CHECK(mc_desc_find_buffer(out, 0x1000, 4096) == 0);
  CHECK(mc_desc_find_buffer(out, 0x1800, 16) == 0);
  CHECK(mc_desc_find_buffer(out, 0x1800, 0x801) == -1); /* runs past end */
  CHECK(mc_desc_find_buffer(out, 0xfff, 2) == -1);      /* starts before */
  CHECK(mc_desc_find_buffer(out, 0x2000, 1) == -1);     /* just past end */
  CHECK(mc_desc_find_buffer(out, 0, 1) == -1);
  CHECK(mc_desc_find_buffer(out, 0x7f0000000000ull + (1ull << 39), 1ull << 39) ==
        1);
  CHECK(mc_desc_find_buffer(out, UINT64_MAX - 1, 1) == 2);
  CHECK(mc_desc_find_buffer(out, UINT64_MAX, 0) == -1); /* the end itself */
  CHECK(mc_desc_find_buffer(out, UINT64_MAX - 4096, 4096) == 2);
  CHECK(mc_desc_find_buffer(out, UINT64_MAX - 4096, UINT64_MAX) == -1);
  CHECK(mc_desc_find_buffer(out, UINT64_MAX - 10, 12) == -1);

  /* Encoding the decoded form gives the same text. */
  char *json2;
  size_t len2;
  CHECK_RC(mc_desc_encode(out, &json2, &len2), 0);
  CHECK(len2 == len && memcmp(json, json2, len) == 0);
  free(json2);
  mc_desc_free(out);
  free(json);

  /* The encoder refuses what the decoder would. */
  mc_desc_buffer ov[2] = {{.addr = 0x1000, .len = 0x1000, .kind = 1},
                          {.addr = 0x1fff, .len = 1, .kind = 1}};
  mc_seg_desc bad = {.nbuffers = 2, .buffers = ov};
  snprintf(bad.name, sizeof bad.name, "x");
  CHECK_RC(mc_desc_encode(&bad, &json, &len), MC_EINVAL); /* overlap */
  ov[1].addr = 0x2000;
  CHECK_RC(mc_desc_encode(&bad, &json, &len), 0);
  free(json);
  mc_desc_key stray = {.transport = 0, .len = 1};
  ov[0].nkeys = 1;
  ov[0].keys = &stray;
  CHECK_RC(mc_desc_encode(&bad, &json, &len), MC_EINVAL); /* no transport 0 */
  ov[0].nkeys = 0;
  ov[1].len = 0;
  CHECK_RC(mc_desc_encode(&bad, &json, &len), MC_EINVAL); /* empty buffer */
  ov[1].len = 1;
  bad.name[0] = '\0';
  CHECK_RC(mc_desc_encode(&bad, &json, &len), MC_EINVAL); /* no name */
  bad.name[0] = 'x';
  ov[1].addr = UINT64_MAX;
  CHECK_RC(mc_desc_encode(&bad, &json, &len), MC_EINVAL); /* ends past 2^64 */
}

static void test_empty_and_large(void) {
  /* No transports, no buffers. */
  mc_seg_desc e = {0};
  snprintf(e.name, sizeof e.name, "empty");
  char *json;
  size_t len;
  CHECK_RC(mc_desc_encode(&e, &json, &len), 0);
  mc_seg_desc *out;
  char err[256];
  CHECK_RC(mc_desc_decode(json, len, &out, err, sizeof err), 0);
  check_equal(&e, out);
  CHECK(mc_desc_find_buffer(out, 0, 1) == -1);
  mc_desc_free(out);
  free(json);

  /* The buffer cap exactly, one key each; every buffer found again. */
  uint32_t n = MC_DESC_MAX_BUFFERS;
  mc_desc_buffer *bs = calloc(n, sizeof *bs);
  mc_desc_key *ks = calloc(n, sizeof *ks);
  uint8_t blob[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  mc_desc_transport t = {.name = "tcp", .len = sizeof blob, .blob = blob};
  CHECK(bs && ks);
  for (uint32_t i = 0; i < n; i++) {
    bs[i].addr = 0x100000000ull + (uint64_t)i * 0x2000;
    bs[i].len = 0x1000 + i % 0x1000;
    bs[i].kind = MC_MEM_CPU;
    ks[i].transport = 0;
    ks[i].len = 8;
    memcpy(ks[i].bytes, &bs[i].addr, 8);
    bs[i].nkeys = 1;
    bs[i].keys = &ks[i];
  }
  mc_seg_desc big = {.version = 1, .ntransports = 1, .transports = &t,
                     .nbuffers = n, .buffers = bs};
  snprintf(big.name, sizeof big.name, "big");
  CHECK_RC(mc_desc_encode(&big, &json, &len), 0);
  CHECK_RC(mc_desc_decode(json, len, &out, err, sizeof err), 0);
  CHECK(out->nbuffers == n);
  for (uint32_t i = 0; i < n; i++) {
    CHECK(mc_desc_find_buffer(out, bs[i].addr + 1, bs[i].len - 1) == (long)i);
    CHECK(mc_desc_find_buffer(out, bs[i].addr + bs[i].len, 1) == -1);
  }
  check_equal(&big, out);
  mc_desc_free(out);
  free(json);
  free(bs);
  free(ks);
}

/* A valid descriptor; the rejection cases below are edits of it. */
#define T_TCP "{\"name\":\"tcp\",\"desc\":\"AAEC\"}"
#define T_SHM "{\"name\":\"shm\",\"desc\":\"\"}"
#define B0 "{\"addr\":\"0x1000\",\"len\":4096,\"location\":\"cpu:0\",\"kind\":1,\"keys\":{\"tcp\":\"AA==\"}}"
#define B1 "{\"addr\":\"0x3000\",\"len\":4096,\"location\":\"cpu:0\",\"kind\":1,\"keys\":{}}"
#define DESC(fmt, name, ver, ts, bs)                                           \
  "{\"format\":" fmt ",\"name\":" name ",\"version\":" ver                     \
  ",\"host_id\":\"h\",\"transports\":[" ts "],\"buffers\":[" bs "]}"
#define GOOD DESC("1", "\"a:1\"", "3", T_TCP "," T_SHM, B0 "," B1)

#define BUF(addr, len, loc, kind, keys)                                        \
  "{\"addr\":" addr ",\"len\":" len ",\"location\":" loc ",\"kind\":" kind     \
  ",\"keys\":" keys "}"
#define WITH_B(b) DESC("1", "\"a:1\"", "3", T_TCP "," T_SHM, b)
#define WITH_B2(b) DESC("1", "\"a:1\"", "3", T_TCP "," T_SHM, B0 "," b)

typedef struct bad_case {
  const char *json;
  const char *want; /* substring of the error */
} bad_case;

static char *repeat(const char *head, const char *unit, size_t n,
                    const char *tail) {
  size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
  char *s = malloc(hl + ul * n + tl + 1);
  CHECK(s);
  memcpy(s, head, hl);
  for (size_t i = 0; i < n; i++)
    memcpy(s + hl + i * ul, unit, ul);
  memcpy(s + hl + n * ul, tail, tl + 1);
  return s;
}

static void expect_bad(const char *json, size_t len, const char *want) {
  mc_seg_desc *out = (mc_seg_desc *)1;
  char err[512];
  int rc = mc_desc_decode(json, len, &out, err, sizeof err);
  if (rc != MC_EPROTO || out != NULL || !strstr(err, want)) {
    fprintf(stderr, "decode of %.300s\n  gave rc=%d err='%s', want EPROTO '%s'\n",
            json, rc, err, want);
    abort();
  }
}

static void test_rejections(void) {
  mc_seg_desc *out;
  char err[256];
  CHECK_RC(mc_desc_decode(GOOD, strlen(GOOD), &out, err, sizeof err), 0);
  CHECK(out->ntransports == 2 && out->nbuffers == 2);
  CHECK(out->transports[0].len == 3 && out->transports[1].len == 0);
  CHECK(out->buffers[0].nkeys == 1 && out->buffers[0].keys[0].len == 1);
  mc_desc_free(out);

  static const bad_case cases[] = {
      {"{", "invalid JSON"},
      {GOOD " x", "invalid JSON"},
      {"{\"format\":1,\"format\":1}", "duplicate"},
      {"[]", "descriptor: must be a JSON object"},
      {"{\"name\":\"a\"}", "format: missing"},
      {DESC("2", "\"a:1\"", "3", T_TCP, B0), "format: 2 unsupported"},
      {DESC("\"1\"", "\"a:1\"", "3", T_TCP, B0), "format: must be an integer"},
      {DESC("1", "\"\"", "3", T_TCP, B0), "name: must not be empty"},
      {DESC("1", "7", "3", T_TCP, B0), "name: must be a string"},
      {DESC("1", "\"a\\nb\"", "3", T_TCP, B0),
       "name: control characters not allowed"},
      {DESC("1", "\"a\\u0000b\"", "3", T_TCP, B0), "invalid JSON"},
      {DESC("1", "\"a:1\"", "-1", T_TCP, B0), "version: must be >= 0"},
      {DESC("1", "\"a:1\"", "1.5", T_TCP, B0), "version: must be an integer"},
      {DESC("1", "\"a:1\"", "99999999999999999999", T_TCP, B0), "invalid JSON"},
      {"{\"format\":1,\"name\":\"a\",\"version\":1,\"transports\":[],"
       "\"buffers\":[]}",
       "host_id: missing"},
      {"{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
       "\"transports\":{},\"buffers\":[]}",
       "transports: must be an array"},
      {"{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
       "\"transports\":[]}",
       "buffers: missing"},
      {DESC("1", "\"a:1\"", "3", T_TCP "," T_TCP, ""),
       "transports[1].name: duplicate transport 'tcp'"},
      {DESC("1", "\"a:1\"", "3", "{\"name\":\"\",\"desc\":\"\"}", ""),
       "transports[0].name: must not be empty"},
      {DESC("1", "\"a:1\"", "3", "{\"name\":\"tcp\"}", ""),
       "transports[0].desc: missing"},
      {DESC("1", "\"a:1\"", "3", T_SHM ",{\"name\":\"tcp\",\"desc\":\"abc\"}",
            ""),
       "transports[1].desc: invalid base64"},
      {DESC("1", "\"a:1\"", "3", "{\"name\":\"tcp\",\"desc\":\"AB==\"}", ""),
       "transports[0].desc: invalid base64"}, /* non-zero padding bits */
      {DESC("1", "\"a:1\"", "3", "{\"name\":\"tcp\",\"desc\":\"AA==AAAA\"}", ""),
       "transports[0].desc: invalid base64"}, /* padding in the middle */
      {DESC("1", "\"a:1\"", "3", "{\"name\":\"tcp\",\"desc\":\"AA*A\"}", ""),
       "transports[0].desc: invalid base64"},
      {DESC("1", "\"a:1\"", "3", "{\"name\":\"tcp\",\"desc\":7}", ""),
       "transports[0].desc: must be a base64 string"},
      {DESC("1", "\"a:1\"", "3", "3", ""), "transports[0]: must be an object"},
      {WITH_B("7"), "buffers[0]: must be an object"},
      {WITH_B(BUF("\"4096\"", "1", "\"\"", "1", "{}")), "buffers[0].addr"},
      {WITH_B(BUF("\"0x\"", "1", "\"\"", "1", "{}")), "buffers[0].addr"},
      {WITH_B(BUF("\"0x10000000000000000\"", "1", "\"\"", "1", "{}")),
       "buffers[0].addr"},
      {WITH_B(BUF("\"0x12g4\"", "1", "\"\"", "1", "{}")), "buffers[0].addr"},
      {WITH_B(BUF("4096", "1", "\"\"", "1", "{}")), "buffers[0].addr"},
      {WITH_B("{\"len\":1}"), "buffers[0].addr: missing"},
      {WITH_B(BUF("\"0x1000\"", "0", "\"\"", "1", "{}")),
       "buffers[0].len: must be > 0"},
      {WITH_B(BUF("\"0x1000\"", "-5", "\"\"", "1", "{}")),
       "buffers[0].len: must be >= 0"},
      {WITH_B(BUF("\"0x1000\"", "\"5\"", "\"\"", "1", "{}")),
       "buffers[0].len: must be an integer"},
      {WITH_B(BUF("\"0xffffffffffffff00\"", "256", "\"\"", "1", "{}")),
       "buffers[0].len: 0xffffffffffffff00+256 wraps"},
      {WITH_B2(BUF("\"0x800\"", "16", "\"\"", "1", "{}")),
       "buffers[1].addr: 0x800 not sorted"},
      {WITH_B2(BUF("\"0x1fff\"", "16", "\"\"", "1", "{}")),
       "buffers[1].addr: 0x1fff overlaps buffers[0]"},
      {WITH_B2(BUF("\"0x1000\"", "16", "\"\"", "1", "{}")),
       "buffers[1].addr: 0x1000 overlaps buffers[0]"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"\"", "3", "{}")),
       "buffers[0].kind: 3 is not a single memory-kind bit"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"\"", "0", "{}")), "buffers[0].kind"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"\"", "8589934592", "{}")),
       "buffers[0].kind"},
      {WITH_B("{\"addr\":\"0x1000\",\"len\":1,\"location\":\"\",\"keys\":{}}"),
       "buffers[0].kind: missing"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"0123456789012345678901234567890123\"",
                  "1", "{}")),
       "buffers[0].location: longer than 31 bytes"},
      {WITH_B(BUF("\"0x1000\"", "1", "5", "1", "{}")),
       "buffers[0].location: must be a string"},
      {WITH_B("{\"addr\":\"0x1000\",\"len\":1,\"location\":\"\",\"kind\":1}"),
       "buffers[0].keys: missing"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"\"", "1", "[]")),
       "buffers[0].keys: must be an object"},
      {WITH_B2(BUF("\"0x9000\"", "1", "\"\"", "1", "{\"rdma\":\"AA==\"}")),
       "buffers[1].keys.rdma: no such transport"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"\"", "1", "{\"tcp\":\"A\"}")),
       "buffers[0].keys.tcp: invalid base64"},
      {WITH_B(BUF("\"0x1000\"", "1", "\"\"", "1",
                  "{\"tcp\":\"AA==\",\"shm\":\"\",\"tcp\":\"AA==\"}")),
       "duplicate"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_bad(cases[i].json, strlen(cases[i].json), cases[i].want);

  /* Size caps. */
  char *s = repeat("{\"format\":1,\"name\":\"", "n", MC_NAME_MAX,
                   "\",\"version\":1,\"host_id\":\"\",\"transports\":[],"
                   "\"buffers\":[]}");
  expect_bad(s, strlen(s), "name: longer than 255 bytes");
  free(s);
  s = repeat("{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"", "h",
             128, "\",\"transports\":[],\"buffers\":[]}");
  expect_bad(s, strlen(s), "host_id: longer than 127 bytes");
  free(s);
  s = repeat("{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
             "\"transports\":[{\"name\":\"",
             "t", 64, "\",\"desc\":\"\"}],\"buffers\":[]}");
  expect_bad(s, strlen(s), "transports[0].name: longer than 63 bytes");
  free(s);
  /* 4097 bytes of descriptor = 1366 groups of 4 base64 chars (4098 bytes). */
  s = repeat("{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
             "\"transports\":[{\"name\":\"tcp\",\"desc\":\"",
             "AAAA", 1366, "\"}],\"buffers\":[]}");
  expect_bad(s, strlen(s), "transports[0].desc: blob longer than 4096 bytes");
  free(s);
  s = repeat("{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
             "\"transports\":[{\"name\":\"tcp\",\"desc\":\"\"}],\"buffers\":["
             "{\"addr\":\"0x1\",\"len\":1,\"location\":\"\",\"kind\":1,"
             "\"keys\":{\"tcp\":\"",
             "AAAA", 86, "\"}}]}"); /* 258 bytes */
  expect_bad(s, strlen(s), "buffers[0].keys.tcp: blob longer than 256 bytes");
  free(s);
  s = repeat("{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
             "\"buffers\":[],\"transports\":[",
             T_SHM ",", MC_DESC_MAX_TRANSPORTS, T_SHM "]}");
  expect_bad(s, strlen(s), "transports: 17 entries, at most 16 allowed");
  free(s);
  s = repeat("{\"format\":1,\"name\":\"a\",\"version\":1,\"host_id\":\"\","
             "\"transports\":[],\"buffers\":[",
             "{},", MC_DESC_MAX_BUFFERS, "{}]}");
  expect_bad(s, strlen(s), "buffers: 65537 entries, at most 65536 allowed");
  free(s);
  /* Too large as a whole: refused before parsing (calloc keeps it cheap). */
  s = calloc(1, (size_t)MC_DESC_JSON_MAX + 2);
  CHECK(s);
  expect_bad(s, (size_t)MC_DESC_JSON_MAX + 1, "descriptor: 67108865 bytes");
  free(s);

  CHECK_RC(mc_desc_decode(NULL, 0, &out, err, sizeof err), MC_EINVAL);
}

int main(void) {
  test_round_trip();
  test_empty_and_large();
  test_rejections();
  printf("descriptor tests passed\n");
  return 0;
}
