/* mooncake/kv.h against a real etcd: put/get/delete, list, CAS races,
 * leases, watch, bad input. */
#include <stdio.h>

#include "check.h"

#ifdef MC_KV_NO_ETCD
int main(void) {
  SKIP("the etcd metadata backend is not built (meson -Detcd=enabled, needs gRPC and "
       "protobuf-c)");
}
#else
#include "etcd_fixture.h"
#include "kv_common.h"

int main(void) {
  etcd_cluster c;
  if (etcd_cluster_start(&c, 1) != 0)
    SKIP("etcd is not installed");
  kv_check_all(c.url, 1);
  etcd_cluster_destroy(&c);
  printf("kv over etcd ok\n");
  return mc_check_exit_status();
}
#endif
