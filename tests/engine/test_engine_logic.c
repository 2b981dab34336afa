/* Engine logic with the in-process "flaky" test transports: slicing,
 * retries on another rail, failover to another transport, retry
 * exhaustion, request validation, registration rules, segment growth,
 * notification ordering, and config key validation. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_test_util.h"
#include "mooncake/engine.h"

typedef struct flaky_stats {
  _Atomic uint64_t slices, failed, bytes, max_len, min_len, notifies;
  _Atomic uint64_t per_rail[8];
} flaky_stats;


static const char *plugin_dir;

static flaky_stats *stats(const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/mc-transport-%s.so", plugin_dir, name);
  void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (!h)
    return NULL;
  char sym[64];
  snprintf(sym, sizeof sym, "flaky_stats_%s", name);
  flaky_stats *s = dlsym(h, sym);
  dlclose(h);
  return s;
}

static char cfg_path[256];

static int make_engine(const char *yaml, mc_engine **e, char *err, size_t errlen) {
  snprintf(cfg_path, sizeof cfg_path, "/tmp/mc-test-engine-%d.yaml", (int)getpid());
  FILE *f = fopen(cfg_path, "w");
  fputs(yaml, f);
  fclose(f);
  mc_engine_opts o = {.struct_size = sizeof o, .config_path = cfg_path,
                      .plugin_path = plugin_dir};
  int rc = mc_engine_create_ex(&o, e, err, errlen);
  unlink(cfg_path);
  return rc;
}

typedef struct pair {
  mc_engine *a, *b;
  uint8_t *abuf, *bbuf;
  size_t len;
  mc_segment *seg; /* b's segment opened from a */
} pair;

static int pair_open(pair *p, const char *yaml, size_t len) {
  char err[1024] = "";
  memset(p, 0, sizeof *p);
  int rc = make_engine(yaml, &p->a, err, sizeof err);
  CHECK_MSG(rc == 0, "engine a: %s (%s)", mc_strerror(rc), err);
  if (rc)
    return rc;
  rc = make_engine(yaml, &p->b, err, sizeof err);
  CHECK_MSG(rc == 0, "engine b: %s (%s)", mc_strerror(rc), err);
  if (rc)
    return rc;
  p->len = len;
  p->abuf = aligned_alloc(4096, len);
  p->bbuf = aligned_alloc(4096, len);
  for (size_t i = 0; i < len; i++) {
    p->abuf[i] = (uint8_t)(i * 7 + 1);
    p->bbuf[i] = (uint8_t)(i * 13 + 5);
  }
  CHECK_MSG(mc_register(p->a, p->abuf, len, NULL) == 0, "register a");
  CHECK_MSG(mc_register(p->b, p->bbuf, len, "cpu:0") == 0, "register b");
  rc = mc_segment_open(p->a, mc_engine_segment_name(p->b), &p->seg);
  CHECK_MSG(rc == 0, "open %s: %s", mc_engine_segment_name(p->b), mc_strerror(rc));
  return rc;
}

static void pair_close(pair *p) {
  mc_segment_close(p->seg);
  mc_engine_destroy(p->a);
  mc_engine_destroy(p->b);
  free(p->abuf);
  free(p->bbuf);
}

static void reset(const char *name) {
  flaky_stats *s = stats(name);
  if (s)
    memset((void *)s, 0, sizeof *s);
}

/* A transport with more rails than the engine's first query_rails call has
 * room for (64) is asked again with room for all, not refused. */
static void test_many_rails(void) {
  pair p;
  if (pair_open(&p, "transports:\n  flaky: {rails: 100}\n", 1 << 20))
    return;
  mc_rail_info rails[128];
  uint32_t n = 128;
  int rc = mc_engine_rails(p.a, "flaky", rails, &n);
  CHECK_MSG(rc == 0 && n == 100, "rails: %s, n=%u", mc_strerror(rc), n);
  CHECK_MSG(rc != 0 || strcmp(rails[99].name, "r99") == 0, "last rail '%s'", rails[99].name);
  reset("flaky");
  mc_request r = {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 1 << 20};
  rc = mc_transfer_sync(p.a, &r, 1, 5000);
  CHECK_MSG(rc == 0, "write over 100 rails: %s", mc_strerror(rc));
  CHECK_MSG(memcmp(p.abuf, p.bbuf, 1 << 20) == 0, "data differs after write");
  pair_close(&p);
}

static void test_slicing(void) {
  pair p;
  if (pair_open(&p, "transports: [flaky]\nslice_size: 64K\n", 4 << 20))
    return;
  reset("flaky");
  size_t len = (1 << 20) + 3;
  mc_request r = {MC_OP_WRITE, p.abuf + 5, p.seg, (uint64_t)(uintptr_t)p.bbuf + 11, len};
  int rc = mc_transfer_sync(p.a, &r, 1, 5000);
  CHECK_MSG(rc == 0, "write: %s", mc_strerror(rc));
  flaky_stats *s = stats("flaky");
  CHECK_MSG(s && s->slices == 17, "slices %llu, expected 17", s ? (unsigned long long)s->slices : 0ull);
  CHECK_MSG(s && s->max_len == 65536 && s->min_len == 3, "slice lengths %llu..%llu",
        s ? (unsigned long long)s->min_len : 0ull, s ? (unsigned long long)s->max_len : 0ull);
  CHECK_MSG(memcmp(p.abuf + 5, p.bbuf + 11, len) == 0, "data differs after write");
  /* Read back a different range. */
  memset(p.abuf, 0, 1 << 20);
  r = (mc_request){MC_OP_READ, p.abuf + 1, p.seg, (uint64_t)(uintptr_t)p.bbuf + 2, 777777};
  CHECK_MSG(mc_transfer_sync(p.a, &r, 1, 5000) == 0, "read");
  CHECK_MSG(memcmp(p.abuf + 1, p.bbuf + 2, 777777) == 0, "data differs after read");
  pair_close(&p);
}

static void test_retry_other_rail(void) {
  pair p;
  if (pair_open(&p, "transports:\n  flaky: {rails: 2, fail_rails: 1}\nretry_count: 4\n", 1 << 20))
    return;
  reset("flaky");
  mc_request r = {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 1 << 20};
  int rc = mc_transfer_sync(p.a, &r, 1, 5000);
  CHECK_MSG(rc == 0, "write with a failing rail: %s", mc_strerror(rc));
  flaky_stats *s = stats("flaky");
  CHECK_MSG(s && s->failed > 0, "rail 0 never failed (%llu)", s ? (unsigned long long)s->failed : 0ull);
  CHECK_MSG(s && s->per_rail[1] >= 16, "rail 1 carried %llu slices",
        s ? (unsigned long long)s->per_rail[1] : 0ull);
  CHECK_MSG(memcmp(p.abuf, p.bbuf, 1 << 20) == 0, "data differs");
  pair_close(&p);
}

static void test_failover_transport(void) {
  pair p;
  if (pair_open(&p, "transports:\n  flaky: {fail_all: true}\n  flakyb: {}\n"
                    "transport_order: [flaky, flakyb]\nretry_count: 4\n", 1 << 20))
    return;
  reset("flaky");
  reset("flakyb");
  mc_batch *b;
  CHECK_MSG(mc_batch_create(p.a, 4, &b) == 0, "batch");
  mc_request r = {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 256 << 10};
  CHECK_MSG(mc_batch_submit(b, &r, 1) == 0, "submit");
  int rc = mc_batch_wait(b, 5000);
  CHECK_MSG(rc == 0, "failover write: %s", mc_strerror(rc));
  mc_transfer_status st;
  mc_batch_status(b, 0, &st);
  CHECK_MSG(st.state == MC_XFER_COMPLETED && st.bytes == (256 << 10), "state %u bytes %llu",
        st.state, (unsigned long long)st.bytes);
  CHECK_MSG(strcmp(st.transport, "flakyb") == 0, "carried by '%s'", st.transport);
  flaky_stats *sa = stats("flaky"), *sb = stats("flakyb");
  CHECK_MSG(sa && sa->failed >= 4, "flaky failed %llu", sa ? (unsigned long long)sa->failed : 0ull);
  CHECK_MSG(sb && sb->bytes == (256 << 10), "flakyb moved %llu", sb ? (unsigned long long)sb->bytes : 0ull);
  mc_batch_destroy(b);
  pair_close(&p);
}

static void test_retry_exhausted(void) {
  pair p;
  if (pair_open(&p, "transports:\n  flaky: {fail_all: true}\nretry_count: 3\n", 1 << 20))
    return;
  reset("flaky");
  mc_batch *b;
  mc_batch_create(p.a, 1, &b);
  mc_request r = {MC_OP_READ, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 128 << 10};
  mc_batch_submit(b, &r, 1);
  int rc = mc_batch_wait(b, 5000);
  CHECK_MSG(rc == MC_EPEER, "wait gave %s, expected peer error", mc_strerror(rc));
  mc_transfer_status st;
  mc_batch_status(b, 0, &st);
  CHECK_MSG(st.state == MC_XFER_FAILED && st.error == MC_EPEER && st.vendor_error == 42,
        "state %u error %d vendor %d", st.state, st.error, st.vendor_error);
  flaky_stats *s = stats("flaky");
  CHECK_MSG(s && s->slices == 2 * 4, "attempts %llu, expected 2 slices x 4",
        s ? (unsigned long long)s->slices : 0ull);
  mc_batch_destroy(b);
  pair_close(&p);
}

static void test_invalid_requests(void) {
  pair p;
  if (pair_open(&p, "transports: [flaky]\n", 1 << 16))
    return;
  uint8_t before[64];
  memcpy(before, p.bbuf + p.len - 64, 64);
  mc_batch *b;
  mc_batch_create(p.a, 8, &b);
  uint8_t unreg[32];
  mc_request rs[5] = {
      {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf + p.len - 10, 64}, /* past end */
      {MC_OP_WRITE, unreg, p.seg, (uint64_t)(uintptr_t)p.bbuf, 16},                /* local */
      {7, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 16},                          /* op */
      {MC_OP_READ, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 0},                  /* empty */
      {MC_OP_READ, p.abuf, p.seg, UINT64_MAX - 4, 16},                              /* wraps */
  };
  CHECK_MSG(mc_batch_submit(b, rs, 5) == 0, "submit");
  mc_batch_wait(b, 5000);
  mc_transfer_status st;
  mc_batch_status(b, 0, &st);
  CHECK_MSG(st.state == MC_XFER_INVALID && st.error == MC_ERANGE, "past end: %u %d", st.state, st.error);
  mc_batch_status(b, 1, &st);
  CHECK_MSG(st.state == MC_XFER_INVALID && st.error == MC_ERANGE, "unregistered local: %u %d", st.state, st.error);
  mc_batch_status(b, 2, &st);
  CHECK_MSG(st.state == MC_XFER_INVALID && st.error == MC_EINVAL, "bad op: %u %d", st.state, st.error);
  mc_batch_status(b, 3, &st);
  CHECK_MSG(st.state == MC_XFER_COMPLETED, "empty: %u", st.state);
  mc_batch_status(b, 4, &st);
  CHECK_MSG(st.state == MC_XFER_INVALID, "wrap: %u", st.state);
  CHECK_MSG(memcmp(before, p.bbuf + p.len - 64, 64) == 0, "target memory changed");
  CHECK_MSG(mc_batch_submit(b, rs, 4) == MC_ENOSPC, "capacity not enforced");
  mc_batch_destroy(b);
  pair_close(&p);
}

static void test_registration(void) {
  pair p;
  if (pair_open(&p, "transports: [flaky]\n", 1 << 16))
    return;
  CHECK_MSG(mc_register(p.a, p.abuf + 100, 10, NULL) == MC_EEXIST, "overlap accepted");
  CHECK_MSG(mc_register(p.a, p.abuf, 10, "gpu:x") == MC_EINVAL, "bad location accepted");
  CHECK_MSG(mc_unregister(p.a, p.abuf + 1) == MC_ENOENT, "unregister of non-start");
  /* Growth after the peer opened the segment: the initiator refetches. */
  uint8_t *extra = aligned_alloc(4096, 8192);
  memset(extra, 0, 8192);
  CHECK_MSG(mc_register(p.b, extra, 8192, NULL) == 0, "register extra");
  mc_request r = {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)extra + 100, 4000};
  int rc = mc_transfer_sync(p.a, &r, 1, 5000);
  CHECK_MSG(rc == 0, "write into buffer registered after open: %s", mc_strerror(rc));
  CHECK_MSG(memcmp(extra + 100, p.abuf, 4000) == 0, "grown buffer data differs");
  CHECK_MSG(mc_unregister(p.b, extra) == 0, "unregister extra");
  r.remote = (uint64_t)(uintptr_t)extra;
  mc_segment_refresh(p.seg);
  rc = mc_transfer_sync(p.a, &r, 1, 5000);
  CHECK_MSG(rc == MC_ERANGE, "write into unregistered buffer gave %s", mc_strerror(rc));
  free(extra);
  /* Many regions. */
  uint8_t *many[64];
  for (int i = 0; i < 64; i++) {
    many[i] = malloc(4096);
    CHECK_MSG(mc_register(p.b, many[i], 4096, NULL) == 0, "register %d", i);
  }
  for (int i = 0; i < 64; i++) {
    CHECK_MSG(mc_unregister(p.b, many[i]) == 0, "unregister %d", i);
    free(many[i]);
  }
  /* The same at once: all or nothing, in both directions. */
  mc_region reg[64];
  void *addrs[64];
  for (int i = 0; i < 64; i++) {
    many[i] = aligned_alloc(4096, 4096);
    memset(many[i], 0, 4096);
    reg[i] = (mc_region){many[i], 4096, NULL};
    addrs[i] = many[i];
  }
  uint32_t failed = 0;
  mc_region bad = reg[40];
  reg[40] = (mc_region){many[39] + 100, 10, NULL}; /* overlaps region 39 */
  CHECK_MSG(mc_register_batch(p.b, reg, 64, &failed) == MC_EEXIST && failed == 40,
        "overlapping batch: failed at %u", failed);
  CHECK_MSG(mc_unregister(p.b, many[0]) == MC_ENOENT, "a refused batch left region 0");
  CHECK_MSG(mc_unregister(p.b, many[39]) == MC_ENOENT, "a refused batch left region 39");
  reg[40] = bad;
  reg[41].location = "gpu:x";
  CHECK_MSG(mc_register_batch(p.b, reg, 64, &failed) == MC_EINVAL && failed == 41,
        "bad location in a batch: failed at %u", failed);
  reg[41].location = NULL;
  CHECK_MSG(mc_register_batch(p.b, reg, 64, &failed) == 0 && failed == 64,
        "batch register: failed at %u", failed);
  /* The peer reaches the last one after a refetch. */
  mc_request w = {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)many[63] + 8, 1000};
  rc = mc_transfer_sync(p.a, &w, 1, 5000);
  CHECK_MSG(rc == 0, "write into a batch-registered buffer: %s", mc_strerror(rc));
  CHECK_MSG(memcmp(many[63] + 8, p.abuf, 1000) == 0, "batch-registered buffer data differs");
  void *keep = addrs[10];
  addrs[10] = p.bbuf + 1; /* not a buffer start */
  CHECK_MSG(mc_unregister_batch(p.b, addrs, 64, &failed) == MC_ENOENT && failed == 10,
        "unregister batch with an unknown address: failed at %u", failed);
  addrs[10] = addrs[3];
  CHECK_MSG(mc_unregister_batch(p.b, addrs, 64, &failed) == MC_EINVAL && failed == 10,
        "unregister batch listing one twice: failed at %u", failed);
  addrs[10] = keep;
  CHECK_MSG(mc_unregister(p.b, many[0]) == 0 && mc_register(p.b, many[0], 4096, NULL) == 0,
        "a refused unregister batch removed region 0");
  CHECK_MSG(mc_unregister_batch(p.b, addrs, 64, &failed) == 0, "unregister batch");
  for (int i = 0; i < 64; i++) {
    CHECK_MSG(mc_unregister(p.b, many[i]) == MC_ENOENT, "region %d still registered", i);
    free(many[i]);
  }
  CHECK_MSG(mc_register_batch(p.b, NULL, 0, NULL) == 0, "empty batch");
  CHECK_MSG(mc_register_batch(p.b, NULL, 1, NULL) == MC_EINVAL, "NULL regions");
  pair_close(&p);
}

static void test_notify(void) {
  pair p;
  if (pair_open(&p, "transports: [flaky]\n", 1 << 16))
    return;
  reset("flaky");
  mc_batch *b;
  mc_batch_create(p.a, 2, &b);
  mc_request r[2] = {{MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 1000},
                     {MC_OP_WRITE, p.abuf + 2000, p.seg, (uint64_t)(uintptr_t)p.bbuf + 2000, 1000}};
  CHECK_MSG(mc_batch_submit_notify(b, r, 2, "kv-ready", 8) == 0, "submit_notify");
  CHECK_MSG(mc_batch_wait(b, 5000) == 0, "wait");
  flaky_stats *s = stats("flaky");
  CHECK_MSG(s && s->notifies == 1, "notifies %llu", s ? (unsigned long long)s->notifies : 0ull);
  mc_request rd = {MC_OP_READ, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 10};
  CHECK_MSG(mc_batch_submit_notify(b, &rd, 1, "x", 1) == MC_EINVAL, "notify on read accepted");
  mc_batch_destroy(b);
  pair_close(&p);
}

static void test_topology_rails(void) {
  /* A YAML topology pins cpu:0 buffers to r0, with r1 as fallback. */
  const char *yaml = "transports:\n  flaky: {rails: 2}\nretry_count: 4\n"
                     "topology:\n  \"cpu:0\": {preferred: [flaky:r0], fallback: [flaky:r1]}\n";
  pair p;
  if (pair_open(&p, yaml, 1 << 20))
    return;
  mc_unregister(p.a, p.abuf);
  CHECK_MSG(mc_register(p.a, p.abuf, p.len, "cpu:0") == 0, "register cpu:0");
  reset("flaky");
  mc_request r = {MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 1 << 20};
  CHECK_MSG(mc_transfer_sync(p.a, &r, 1, 5000) == 0, "write");
  flaky_stats *s = stats("flaky");
  CHECK_MSG(s && s->per_rail[0] == 16 && s->per_rail[1] == 0,
        "preferred rail not used alone: r0 %llu r1 %llu",
        s ? (unsigned long long)s->per_rail[0] : 0ull,
        s ? (unsigned long long)s->per_rail[1] : 0ull);
  pair_close(&p);

  /* The preferred rail fails: slices move to the fallback rail. */
  const char *yaml2 = "transports:\n  flaky: {rails: 2, fail_rails: 1}\nretry_count: 4\n"
                      "topology:\n  \"cpu:0\": {preferred: [flaky:r0], fallback: [flaky:r1]}\n";
  if (pair_open(&p, yaml2, 1 << 20))
    return;
  mc_unregister(p.a, p.abuf);
  CHECK_MSG(mc_register(p.a, p.abuf, p.len, "cpu:0") == 0, "register cpu:0");
  reset("flaky");
  r = (mc_request){MC_OP_WRITE, p.abuf, p.seg, (uint64_t)(uintptr_t)p.bbuf, 1 << 20};
  CHECK_MSG(mc_transfer_sync(p.a, &r, 1, 5000) == 0, "write with the preferred rail failing");
  s = stats("flaky");
  CHECK_MSG(s && s->per_rail[1] >= 16 && s->failed >= 1, "fallback rail carried %llu, failed %llu",
        s ? (unsigned long long)s->per_rail[1] : 0ull, s ? (unsigned long long)s->failed : 0ull);
  /* r0 is backing off now: a second transfer goes straight to r1. */
  uint64_t failed_before = s ? s->failed : 0;
  CHECK_MSG(mc_transfer_sync(p.a, &r, 1, 5000) == 0, "second write");
  CHECK_MSG(s && s->failed == failed_before, "a rail in back-off was used again (%llu failures)",
        s ? (unsigned long long)(s->failed - failed_before) : 0ull);
  CHECK_MSG(memcmp(p.abuf, p.bbuf, 1 << 20) == 0, "data differs");
  pair_close(&p);
}

static void test_config_errors(void) {
  mc_engine *e = NULL;
  char err[1024] = "";
  int rc = make_engine("transports:\n  flaky:\n    bogus: 1\n", &e, err, sizeof err);
  CHECK_MSG(rc == MC_EINVAL && strstr(err, ":3:") && strstr(err, "bogus"),
        "unknown plugin key: rc %d err '%s'", rc, err);
  rc = make_engine("transports:\n  flaky:\n    rails: many\n", &e, err, sizeof err);
  CHECK_MSG(rc == MC_EINVAL && strstr(err, ":3:") && strstr(err, "rails"),
        "bad int: rc %d err '%s'", rc, err);
  rc = make_engine("transports: [nosuch]\n", &e, err, sizeof err);
  CHECK_MSG(rc == MC_ENOENT && strstr(err, "nosuch") && strstr(err, plugin_dir),
        "missing transport: rc %d err '%s'", rc, err);
  mc_engine_opts o = {.struct_size = sizeof o, .config_path = "/nonexistent/mc.yaml"};
  rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  CHECK_MSG(rc != 0 && strstr(err, "/nonexistent/mc.yaml"), "missing file: rc %d err '%s'", rc, err);
}

int main(int argc, char **argv) {
  mc_check_keep_going(1);
  if (argc < 2) {
    fprintf(stderr, "usage: %s PLUGIN_DIR\n", argv[0]);
    return 2;
  }
  plugin_dir = argv[1];
  unsetenv("MC_PLUGIN_PATH");
  test_slicing();
  test_many_rails();
  test_retry_other_rail();
  test_failover_transport();
  test_retry_exhausted();
  test_invalid_requests();
  test_registration();
  test_notify();
  test_topology_rails();
  test_config_errors();
  if (!mc_check_failures())
    printf("engine logic: all checks passed\n");
  return mc_check_exit_status();
}
