/* The etcd metadata backend through metadata.h against a real etcd:
 * publish/fetch/watch/unpublish/kv between two instances, malformed values
 * rejected with MC_EPROTO, bad URLs refused. */
#include <stdio.h>
#include <string.h>

#include "etcd/etcd_client.h"
#include "etcd_fixture.h"
#include "md_common.h"
#include "md_util.h"

static void bad_url(const char *url) {
  mc_metadata_args a = {.url = url, .timeout_ms = 500};
  mc_metadata *md = NULL;
  char err[256];
  CHECK_RC(mc_metadata_open(&a, &md, err, sizeof err), MC_EINVAL);
  CHECK(md == NULL);
}

int main(void) {
  etcd_cluster c;
  if (etcd_cluster_start(&c, 1) != 0)
    return 77;
  char url[400];
  snprintf(url, sizeof url, "%s?ttl=2", c.url);
  md_check_basic(url, 1);

  bad_url("etcd://");
  bad_url("etcd://127.0.0.1");
  bad_url("etcd://127.0.0.1:2379?ttl=0");
  bad_url("etcd://127.0.0.1:2379?ttl=abc");
  bad_url("etcd://127.0.0.1:2379?color=blue");

  /* A custom prefix keeps two deployments apart. */
  char url2[400];
  snprintf(url2, sizeof url2, "%s?ttl=2&prefix=/other", c.url);
  mc_metadata *p1 = md_open(url, 2000, NULL), *p2 = md_open(url2, 2000, NULL);
  CHECK_RC(md_publish(p1, "same", 1), 0);
  CHECK_RC(md_fetch_version(p2, "same"), MC_ENOENT);
  CHECK_RC(md_publish(p2, "same", 2), 0);
  CHECK(md_fetch_version(p1, "same") == 1 && md_fetch_version(p2, "same") == 2);

  /* Malformed values written by someone else are rejected clearly. */
  mc_etcd *e;
  char err[512];
  CHECK_RC(mc_etcd_create(c.endpoints, NULL, &e, err, sizeof err), 0);
  static const char bad_addr[] =
      "{\"format\":1,\"name\":\"bad\",\"version\":1,\"host_id\":\"h\","
      "\"transports\":[],\"buffers\":[{\"addr\":\"zz\",\"len\":1}]}";
  const char *bad[] = {"not json", "{\"format\":1}", "[1,2,3]",
                       "{\"format\":99,\"name\":\"x\",\"version\":1}", bad_addr};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_RC(mc_etcd_put(e, "/mooncake/segments/bad", bad[i], strlen(bad[i]), 0, 2000, err,
                         sizeof err), 0);
    CHECK_RC(md_fetch_version(p1, "bad"), MC_EPROTO);
  }
  CHECK_RC(mc_etcd_put(e, "/mooncake/segments/empty", "", 0, 0, 2000, err, sizeof err), 0);
  CHECK_RC(md_fetch_version(p1, "empty"), MC_EPROTO);
  mc_etcd_destroy(e);

  mc_metadata_close(p1);
  mc_metadata_close(p2);
  etcd_cluster_destroy(&c);
  printf("etcd backend ok\n");
  return 0;
}
