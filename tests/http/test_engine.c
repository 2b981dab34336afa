/* Two engines find each other through mooncake-metadata-server and
 * transfer data. */
#include <signal.h>
#include <stdio.h>

#include "mds_fixture.h"
#include "md_common.h"
#include "testutil.h"

int main(int argc, char **argv) {
  CHECK(argc == 2);
  mds s = {0};
  mds_start(&s, argv[1], NULL, NULL);
  md_check_engines(s.url);
  CHECK(mds_stop(&s, SIGTERM) == 0);
  printf("http engines ok\n");
  return 0;
}
