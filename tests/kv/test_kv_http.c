/* mooncake/kv.h against a real mooncake-metadata-server: put/get/delete,
 * list, CAS races (conditional PUT), emulated leases, no watch, bad input. */
#include <signal.h>
#include <stdio.h>

#include "check.h"

#ifdef MC_KV_NO_HTTP
int main(void) {
  SKIP("the HTTP metadata backend and mooncake-metadata-server are not built "
       "(meson -Dhttp_metadata=enabled, needs libcurl and libmicrohttpd)");
}
#else
#include "kv_common.h"
#include "mds_fixture.h"

int main(int argc, char **argv) {
  CHECK(argc == 2);
  mds s = {0};
  mds_start(&s, argv[1], NULL, NULL);
  kv_check_all(s.url, 0);
  CHECK(mds_stop(&s, SIGTERM) == 0);
  printf("kv over http ok\n");
  return mc_check_exit_status();
}
#endif
