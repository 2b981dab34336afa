/* mooncake/kv.h on a metadata module built against ABI 1.0 (v10_module.c):
 * it loads; put/get/delete work (revisions read 0); list, compare-and-swap,
 * leases and watch answer MC_ENOTSUP saying why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kv_common.h"
#include "mooncake/kv.h"

static int on_list(void *arg, const char *key, const void *val, size_t len, int64_t rev) {
  return 0;
}
static void on_event(void *arg, int type, const char *key, int64_t rev) {}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  /* argv[1] holds the test's mc-metadata-etcd.so (ABI 1.0), found first. */
  setenv("MC_METADATA_MODULE_PATH", argv[1], 1);
  mc_engine *e = kv_engine("etcd://127.0.0.1:1", "kv-v10");
  mc_kv *kv = NULL;
  CHECK_RC(mc_kv_open(e, &kv), 0);
  int64_t rev = -1, lease = 0;
  CHECK_RC(mc_kv_put(kv, "k", "v", 1, 0, &rev), 0);
  CHECK_EQ_U64((uint64_t)rev, 0);
  void *v = NULL;
  size_t n = 0;
  rev = -1;
  CHECK_RC(mc_kv_get(kv, "k", &v, &n, &rev), 0);
  CHECK(n == 1 && strcmp(v, "v") == 0 && rev == 0);
  mc_kv_free(v);
  CHECK_RC(mc_kv_list(kv, "", on_list, NULL), MC_ENOTSUP);
  CHECK_HAS(mc_last_error(), "ABI 1.0");
  CHECK_RC(mc_kv_cas(kv, "k", 0, "w", 1, 0, NULL), MC_ENOTSUP);
  CHECK_HAS(mc_last_error(), "compare-and-swap (needs 1.1)");
  CHECK_RC(mc_kv_lease_grant(kv, 5, &lease), MC_ENOTSUP);
  CHECK_HAS(mc_last_error(), "neither leases nor per-key TTLs");
  mc_kv_watcher *w = NULL;
  CHECK_RC(mc_kv_watch(kv, "", on_event, NULL, &w), MC_ENOTSUP);
  CHECK_RC(mc_kv_delete(kv, "k"), 0);
  CHECK_RC(mc_kv_delete(kv, "k"), MC_ENOENT);
  mc_kv_close(kv);
  mc_engine_destroy(e);
  printf("kv over an ABI 1.0 module ok\n");
  return mc_check_exit_status();
}
