/* See md_common.h. */
#include "md_common.h"

#include <stdio.h>
#include <string.h>

#include "descriptor.h"
#include "net.h"
#include "md_util.h"

static void on_change(void *arg, const char *segment) {
  md_watcher *w = arg;
  snprintf(w->last, sizeof w->last, "%s", segment);
  atomic_fetch_add(&w->calls, 1);
}

mc_metadata *md_open(const char *url, uint32_t timeout_ms, md_watcher *w) {
  mc_metadata_args a = {.url = url, .timeout_ms = timeout_ms,
                        .on_change = w ? on_change : NULL, .on_change_arg = w};
  mc_metadata *md = NULL;
  char err[256] = "";
  int rc = mc_metadata_open(&a, &md, err, sizeof err);
  if (rc)
    fprintf(stderr, "md_open %s: %s (%s)\n", url, mc_strerror(rc), err);
  CHECK_RC(rc, 0);
  return md;
}

int md_publish(mc_metadata *md, const char *name, uint64_t version) {
  size_t len;
  char *json = tu_make_desc(name, version, &len);
  int rc = mc_metadata_publish(md, name, json, len);
  free(json);
  return rc;
}

long long md_fetch_version(mc_metadata *md, const char *name) {
  char *json = NULL;
  size_t len = 0;
  int rc = mc_metadata_fetch(md, name, &json, &len);
  if (rc)
    return rc;
  mc_seg_desc *d = NULL;
  char err[256];
  CHECK_RC(mc_desc_decode(json, len, &d, err, sizeof err), 0);
  CHECK(strcmp(d->name, name) == 0);
  long long v = (long long)d->version;
  mc_desc_free(d);
  free(json);
  return v;
}

long md_wait_version(mc_metadata *md, const char *name, long long want,
                     unsigned timeout_ms) {
  uint64_t t0 = mc_now_ms();
  for (;;) {
    if (md_fetch_version(md, name) == want)
      return (long)(mc_now_ms() - t0);
    if (mc_now_ms() - t0 > timeout_ms)
      return -1;
    tu_sleep_ms(50);
  }
}

static void wait_calls(md_watcher *w, int want, const char *name) {
  uint64_t t0 = mc_now_ms();
  while (atomic_load(&w->calls) < want && mc_now_ms() - t0 < 5000)
    tu_sleep_ms(20);
  CHECK(atomic_load(&w->calls) >= want);
  CHECK(strcmp(w->last, name) == 0);
}

void md_check_basic(const char *url, int has_watch) {
  md_watcher w = {0};
  mc_metadata *a = md_open(url, 2000, NULL), *b = md_open(url, 2000, &w);
  char name[64];
  CHECK_RC(mc_metadata_local_name(a, name, sizeof name), MC_ENOTSUP);

  CHECK_RC(md_fetch_version(b, "segA"), MC_ENOENT);
  CHECK_RC(md_publish(a, "segA", 1), 0);
  CHECK(md_fetch_version(b, "segA") == 1);
  if (has_watch) {
    CHECK_RC(mc_metadata_watch(b, "segA"), 0);
    tu_sleep_ms(300); /* let the watch stream start */
  } else {
    CHECK_RC(mc_metadata_watch(b, "segA"), MC_ENOTSUP);
  }
  CHECK_RC(md_publish(a, "segA", 2), 0);
  CHECK(md_fetch_version(b, "segA") == 2);
  if (has_watch)
    wait_calls(&w, 1, "segA");
  CHECK_RC(mc_metadata_unpublish(a, "segA"), 0);
  CHECK_RC(md_fetch_version(b, "segA"), MC_ENOENT);
  if (has_watch)
    wait_calls(&w, 2, "segA");

  /* Bad arguments are refused, not sent. */
  CHECK_RC(mc_metadata_publish(a, "", "{}", 2), MC_EINVAL);
  CHECK_RC(mc_metadata_publish(a, "x", NULL, 0), MC_EINVAL);

  /* Generic keys. */
  void *v = NULL;
  size_t vl = 0;
  CHECK_RC(mc_metadata_kv_get(a, "k1", &v, &vl), MC_ENOENT);
  CHECK_RC(mc_metadata_kv_put(a, "k1", "value\0bin", 9), 0);
  CHECK_RC(mc_metadata_kv_get(b, "k1", &v, &vl), 0);
  CHECK(vl == 9 && memcmp(v, "value\0bin", 9) == 0);
  free(v);
  CHECK_RC(mc_metadata_kv_delete(b, "k1"), 0);
  CHECK_RC(mc_metadata_kv_get(a, "k1", &v, &vl), MC_ENOENT);
  CHECK_RC(mc_metadata_kv_delete(b, "k1"), MC_ENOENT);

  /* Closing a publisher removes its segment at once (not after a TTL). */
  CHECK_RC(md_publish(a, "segC", 7), 0);
  CHECK(md_fetch_version(b, "segC") == 7);
  mc_metadata_close(a);
  CHECK_RC(md_fetch_version(b, "segC"), MC_ENOENT);
  mc_metadata_close(b);
}

#include "mooncake/engine.h"

static mc_engine *make_engine(const char *url, const char *name) {
  mc_engine_opts o = {.struct_size = sizeof o, .segment_name = name,
                      .listen = "127.0.0.1:0", .metadata = url, .transports = "tcp"};
  mc_engine *e = NULL;
  char err[512] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc)
    fprintf(stderr, "engine %s on %s: %s (%s)\n", name, url, mc_strerror(rc), err);
  CHECK_RC(rc, 0);
  CHECK(strcmp(mc_engine_segment_name(e), name) == 0);
  return e;
}

void md_check_engines(const char *url) {
  const size_t len = 1 << 20;
  mc_engine *a = make_engine(url, "engine-a"), *b = make_engine(url, "engine-b");
  uint8_t *ba = malloc(2 * len), *bb = malloc(len);
  CHECK(ba && bb);
  for (size_t i = 0; i < len; i++)
    ba[i] = (uint8_t)(i * 31 + 7);
  memset(bb, 0, len);
  memset(ba + len, 0, len);
  CHECK_RC(mc_register(a, ba, 2 * len, "cpu:0"), 0);
  CHECK_RC(mc_register(b, bb, len, "cpu:0"), 0);

  mc_segment *sb = NULL, *sa = NULL;
  CHECK_RC(mc_segment_open(a, "engine-b", &sb), 0);
  mc_request w = {MC_OP_WRITE, ba, sb, (uint64_t)(uintptr_t)bb, len};
  CHECK_RC(mc_transfer_sync(a, &w, 1, 10000), 0);
  CHECK(memcmp(bb, ba, len) == 0);
  mc_request r = {MC_OP_READ, ba + len, sb, (uint64_t)(uintptr_t)bb, len};
  CHECK_RC(mc_transfer_sync(a, &r, 1, 10000), 0);
  CHECK(memcmp(ba + len, ba, len) == 0);
  /* And the other way round. */
  CHECK_RC(mc_segment_open(b, "engine-a", &sa), 0);
  memset(bb, 0xab, 4096);
  mc_request w2 = {MC_OP_WRITE, bb, sa, (uint64_t)(uintptr_t)(ba + len), 4096};
  CHECK_RC(mc_transfer_sync(b, &w2, 1, 10000), 0);
  CHECK(ba[len] == 0xab && ba[len + 4095] == 0xab);

  mc_segment *none = NULL;
  CHECK_RC(mc_segment_open(a, "engine-nobody", &none), MC_ENOENT);

  mc_segment_close(sb);
  mc_segment_close(sa);
  mc_engine_destroy(b);
  mc_engine_destroy(a);
  free(ba);
  free(bb);
}
