/* mooncake/kv.h on an engine with p2p metadata: no shared store, so
 * mc_kv_open (and mc_kv_open_url("p2p")) refuse with MC_ENOTSUP and say
 * what is needed; mc_kv_open_url refuses unknown schemes. */
#include <stdio.h>

#include "check.h"
#include "kv_common.h"
#include "mooncake/kv.h"

int main(void) {
  mc_engine *e = kv_engine("p2p", "kv-p2p");
  mc_kv *kv = (mc_kv *)1;
  CHECK_RC(mc_kv_open(e, &kv), MC_ENOTSUP);
  CHECK(kv == NULL);
  CHECK_HAS(mc_last_error(), "kv needs a shared metadata store: etcd:// or http://");
  CHECK_HAS(mc_last_error(), "p2p");
  mc_engine_destroy(e);
  /* Without an engine: p2p has no store either; bad URLs are refused. */
  kv = (mc_kv *)1;
  CHECK_RC(mc_kv_open_url("p2p", NULL, &kv), MC_ENOTSUP);
  CHECK(kv == NULL);
  CHECK_HAS(mc_last_error(), "kv needs a shared metadata store: etcd:// or http://");
  CHECK_RC(mc_kv_open_url("bogus://x", NULL, &kv), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "bogus");
  CHECK_RC(mc_kv_open_url(NULL, NULL, &kv), MC_EINVAL);
  CHECK_RC(mc_kv_open_url("etcd://h:1", NULL, NULL), MC_EINVAL);
  printf("kv over p2p refused ok\n");
  return mc_check_exit_status();
}
