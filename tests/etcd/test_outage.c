/* etcd stopped: fetches and publishes fail with MC_EPEER/MC_ETIMEDOUT
 * within the configured deadline (1 s).  etcd back (same data): the
 * engine-side backends recover without being reopened, publish what they
 * could not publish during the outage, and the watch re-arms.  etcd back
 * empty (data lost, lease gone): the backend grants a new lease and
 * republishes its segment by itself. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "etcd_fixture.h"
#include "md_common.h"
#include "net.h"
#include "md_util.h"

static void expect_down(mc_metadata *a, mc_metadata *b) {
  uint64_t t0 = mc_now_ms();
  long long rc = md_fetch_version(b, "segO");
  uint64_t took = mc_now_ms() - t0;
  printf("fetch with etcd down: %s after %llu ms\n", mc_strerror((int)rc),
         (unsigned long long)took);
  CHECK(rc == MC_EPEER || rc == MC_ETIMEDOUT);
  CHECK(took <= 2500);
  t0 = mc_now_ms();
  int prc = md_publish(a, "segO", 2);
  took = mc_now_ms() - t0;
  printf("publish with etcd down: %s after %llu ms\n", mc_strerror(prc),
         (unsigned long long)took);
  CHECK(prc == MC_EPEER || prc == MC_ETIMEDOUT);
  CHECK(took <= 2500);
}

int main(void) {
  etcd_cluster c;
  if (etcd_cluster_start(&c, 1) != 0)
    return 77;
  char url[400];
  snprintf(url, sizeof url, "%s?ttl=2", c.url);
  md_watcher w = {0};
  mc_metadata *a = md_open(url, 1000, NULL), *b = md_open(url, 1000, &w);
  CHECK_RC(md_publish(a, "segO", 1), 0);
  CHECK(md_fetch_version(b, "segO") == 1);
  CHECK_RC(mc_metadata_watch(b, "segO"), 0);
  tu_sleep_ms(300);

  /* Outage 1: etcd restarts with its data. */
  etcd_member_stop(&c, 0, SIGKILL);
  expect_down(a, b);
  int calls = atomic_load(&w.calls);
  etcd_member_start(&c, 0, 0);
  long ms = md_wait_version(b, "segO", 2, 15000);
  printf("recovered (restart with data) in %ld ms, version 2 published by the backend\n", ms);
  CHECK(ms >= 0);
  uint64_t t0 = mc_now_ms();
  while (atomic_load(&w.calls) == calls && mc_now_ms() - t0 < 5000)
    tu_sleep_ms(20);
  CHECK(atomic_load(&w.calls) > calls); /* watch re-armed and reported */
  CHECK_RC(md_publish(a, "segO", 3), 0);
  CHECK(md_fetch_version(b, "segO") == 3);

  /* Outage 2: etcd comes back empty; the lease is unknown to it. */
  etcd_member_stop(&c, 0, SIGKILL);
  etcd_member_start(&c, 0, 1);
  CHECK(etcd_cluster_wait_ready(&c, 15000) == 0);
  ms = md_wait_version(b, "segO", 3, 15000);
  printf("recovered (empty etcd) in %ld ms: new lease, segment republished\n", ms);
  CHECK(ms >= 0);
  /* And it is kept alive on the new lease. */
  tu_sleep_ms(3000);
  CHECK(md_fetch_version(b, "segO") == 3);

  mc_metadata_close(a);
  mc_metadata_close(b);
  etcd_cluster_destroy(&c);
  printf("etcd outage ok\n");
  return 0;
}
