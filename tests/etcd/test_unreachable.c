/* etcd endpoints where nothing listens: the backend says once, at once,
 * that it is retrying (what, on which endpoints, for how long), fails
 * naming the endpoints, and a segment that never reached etcd is
 * unpublished and closed without waiting for etcd again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metadata.h"
#include "net.h"
#include "md_util.h"

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

int main(void) {
  setenv("MC_LOG_LEVEL", "warn", 1); /* the checks read warnings */
  int p1 = tu_free_port(), p2 = tu_free_port();
  char url[192], ep1[32], ep2[32];
  snprintf(ep1, sizeof ep1, "127.0.0.1:%d", p1);
  snprintf(ep2, sizeof ep2, "127.0.0.1:%d", p2);
  snprintf(url, sizeof url, "etcd://%s,%s", ep1, ep2);
  mc_metadata_args a = {.url = url, .timeout_ms = 1500};
  mc_metadata *md = NULL;
  char err[512] = "";
  CHECK_RC(mc_metadata_open(&a, &md, err, sizeof err), 0);

  size_t len;
  char *json = tu_make_desc("seg-down", 1, &len);
  CHECK(tu_capture_begin() == 0);
  uint64_t t0 = mc_now_ms();
  int rc = mc_metadata_publish(md, "seg-down", json, len);
  uint64_t took = mc_now_ms() - t0;
  char *log = tu_capture_end();
  free(json);
  CHECK(rc == MC_EPEER || rc == MC_ETIMEDOUT);
  CHECK(took >= 1000 && took < 5000); /* the timeout, not more */
  /* Said once that it is retrying, what, where and for how long ... */
  CHECK(count(log, "retrying") == 1);
  CHECK_HAS(log, "no etcd endpoint answers");
  CHECK_HAS(log, "LeaseGrant");
  CHECK_HAS(log, "for up to 1.");
  char both[80];
  snprintf(both, sizeof both, "%s, %s", ep1, ep2);
  CHECK_HAS(log, both);
  /* ... and the failure names the endpoints. */
  char want[256];
  snprintf(want, sizeof want, "no endpoint answered within 1500 ms (endpoints: %s)", both);
  CHECK_HAS(log, want);
  free(log);

  /* Never written: unpublish and close do not wait for etcd again. */
  t0 = mc_now_ms();
  CHECK_RC(mc_metadata_unpublish(md, "seg-down"), 0);
  mc_metadata_close(md);
  took = mc_now_ms() - t0;
  if (took >= 1000) {
    fprintf(stderr, "unpublish + close took %llu ms\n", (unsigned long long)took);
    return 1;
  }
  printf("etcd unreachable: reported and bounded\n");
  return 0;
}
