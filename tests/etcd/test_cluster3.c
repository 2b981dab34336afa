/* A 3-member etcd cluster with the member the clients use killed: fetch,
 * publish, lease renewal and the watch carry on through the others. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "etcd_fixture.h"
#include "md_common.h"
#include "net.h"
#include "md_util.h"

int main(void) {
  etcd_cluster c;
  if (etcd_cluster_start(&c, 3) != 0)
    return 77;
  char url[400];
  snprintf(url, sizeof url, "%s?ttl=2", c.url);
  md_watcher w = {0};
  mc_metadata *a = md_open(url, 3000, NULL), *b = md_open(url, 3000, &w);
  CHECK_RC(md_publish(a, "seg3", 1), 0);
  CHECK(md_fetch_version(b, "seg3") == 1);
  CHECK_RC(mc_metadata_watch(b, "seg3"), 0);
  tu_sleep_ms(300);

  /* Both clients start on the first endpoint: kill it. */
  etcd_member_stop(&c, 0, SIGKILL);
  uint64_t t0 = mc_now_ms();
  CHECK(md_fetch_version(b, "seg3") == 1);
  printf("fetch after killing member 0: %llu ms\n", (unsigned long long)(mc_now_ms() - t0));
  t0 = mc_now_ms();
  CHECK_RC(md_publish(a, "seg3", 2), 0);
  printf("publish after killing member 0: %llu ms\n", (unsigned long long)(mc_now_ms() - t0));
  CHECK(md_fetch_version(b, "seg3") == 2);
  t0 = mc_now_ms();
  while (strcmp(w.last, "seg3") != 0 && mc_now_ms() - t0 < 5000)
    tu_sleep_ms(20);
  CHECK(atomic_load(&w.calls) >= 1);
  /* The lease keeps being renewed through the survivors. */
  tu_sleep_ms(4000);
  CHECK(md_fetch_version(b, "seg3") == 2);
  CHECK_RC(md_publish(a, "seg3", 3), 0);
  CHECK(md_fetch_version(b, "seg3") == 3);

  mc_metadata_close(a);
  mc_metadata_close(b);
  etcd_cluster_destroy(&c);
  printf("etcd cluster3 ok\n");
  return 0;
}
