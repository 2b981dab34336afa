/* Two engines find each other through mooncake-metadata-server and
 * transfer data.  A registration the server cannot hear about fails and
 * leaves nothing registered. */
#include <signal.h>
#include <stdio.h>

#include "mds_fixture.h"
#include "mooncake/engine.h"
#include "md_common.h"
#include "md_util.h"

int main(int argc, char **argv) {
  CHECK(argc == 2);
  mds s = {0};
  mds_start(&s, argv[1], NULL, NULL);
  md_check_engines(s.url);

  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0",
                      .metadata = s.url, .transports = "tcp"};
  mc_engine *e = NULL;
  CHECK_RC(mc_engine_create(&o, &e), 0);
  static char buf[1 << 16];
  CHECK(mds_stop(&s, SIGKILL) == 128 + SIGKILL);
  int rc = mc_register(e, buf, sizeof buf, NULL);
  CHECK(rc == MC_EPEER || rc == MC_ETIMEDOUT);
  CHECK_RC(mc_unregister(e, buf), MC_ENOENT); /* rolled back */
  mds_start(&s, argv[1], NULL, NULL);
  CHECK_RC(mc_register(e, buf, sizeof buf, NULL), 0);
  CHECK_RC(mc_unregister(e, buf), 0);
  mc_engine_destroy(e);
  CHECK(mds_stop(&s, SIGTERM) == 0);
  printf("http engines ok\n");
  return 0;
}
