/* mooncake/kv.h on an engine with p2p metadata: no shared store, so
 * mc_kv_open refuses with MC_ENOTSUP and says what is needed. */
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
  printf("kv over p2p refused ok\n");
  return mc_check_exit_status();
}
