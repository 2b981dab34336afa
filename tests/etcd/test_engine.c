/* Two engines find each other through etcd and transfer data. */
#include <stdio.h>

#include "etcd_fixture.h"
#include "md_common.h"
#include "md_util.h"

int main(void) {
  etcd_cluster c;
  if (etcd_cluster_start(&c, 1) != 0)
    return 77;
  char url[400];
  snprintf(url, sizeof url, "%s?ttl=2", c.url);
  md_check_engines(url);
  etcd_cluster_destroy(&c);
  printf("etcd engines ok\n");
  return 0;
}
