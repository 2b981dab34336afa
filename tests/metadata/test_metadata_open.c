/* The metadata dispatcher: scheme selection, clear errors for unknown or
 * unbuilt backends, MC_ENOTSUP for optional ops a backend lacks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h" /* tests/common */
#include "testutil.h"
#include "metadata.h"

static mc_metadata_args args_for(const char *url, const char *listen) {
  mc_metadata_args a = {.url = url, .listen = listen, .timeout_ms = 1000};
  return a;
}

static void expect_open_fails(const char *url, const char *listen, int want,
                              const char *want_text) {
  mc_metadata_args a = args_for(url, listen);
  mc_metadata *md = (mc_metadata *)1;
  char err[256] = "";
  int rc = mc_metadata_open(&a, &md, err, sizeof err);
  if (rc != want || md != NULL || !strstr(err, want_text)) {
    fprintf(stderr, "open(%s, %s): rc=%d err='%s', want %d '%s'\n", url,
            listen, rc, err, want, want_text);
    abort();
  }
}

/* argv[1]: a folder holding mc-metadata-badabi.so (ABI major 99) and
 * mc-metadata-badname.so (its table says "other") (bad_module.c), or
 * nothing. */
int main(int argc, char **argv) {
  if (argc > 1) {
    /* Refused modules: the reason reaches the caller. */
    setenv("MC_METADATA_MODULE_PATH", argv[1], 1);
    expect_open_fails("badabi://x", "127.0.0.1:0", MC_EABI,
                      "mc-metadata-badabi.so was refused: ABI major 99, this core supports 1");
    expect_open_fails("badname://x", "127.0.0.1:0", MC_EABI,
                      "name 'other' does not match file name 'badname'");
    unsetenv("MC_METADATA_MODULE_PATH");
  }
  /* Unknown schemes are configuration errors naming the scheme. */
  expect_open_fails("zk://127.0.0.1:2181", "127.0.0.1:0", MC_EINVAL,
                    "unknown scheme 'zk'");
  expect_open_fails("bogus", "127.0.0.1:0", MC_EINVAL, "unknown scheme 'bogus'");
  expect_open_fails("https://x/", "127.0.0.1:0", MC_EINVAL,
                    "unknown scheme 'https'");

  /* Module backends: either found (and then they open or fail on their
   * own terms) or a clear "needs the ... module", naming the file. */
  const char *optional[] = {"etcd://127.0.0.1:1", "http://127.0.0.1:1/md"};
  for (int i = 0; i < 2; i++) {
    mc_metadata_args a = args_for(optional[i], "127.0.0.1:0");
    mc_metadata *md = NULL;
    char err[256] = "";
    int rc = mc_metadata_open(&a, &md, err, sizeof err);
    if (rc == MC_ENOTSUP) {
      CHECK(md == NULL);
      CHECK(strstr(err, i == 0 ? "needs the etcd backend module (mc-metadata-etcd.so)"
                               : "needs the http backend module (mc-metadata-http.so)") != NULL);
    } else if (rc == 0) {
      mc_metadata_close(md);
    } else {
      CHECK(md == NULL);
      CHECK(err[0] != '\0');
    }
  }

  /* p2p is the default; a bad listen address is refused. */
  expect_open_fails("p2p", "no-port-here", MC_EINVAL, "p2p");
  mc_metadata_args a = args_for(NULL, "127.0.0.1:0");
  mc_metadata *md;
  char err[256];
  CHECK_RC(mc_metadata_open(&a, &md, err, sizeof err), 0);
  char name[MC_NAME_MAX];
  CHECK_RC(mc_metadata_local_name(md, name, sizeof name), 0);
  CHECK(strncmp(name, "127.0.0.1:", 10) == 0 && strlen(name) > 10);
  CHECK_RC(mc_metadata_local_name(md, name, 5), MC_ENOSPC);

  /* The same port twice: the second open fails. */
  mc_metadata_args b = args_for("p2p", name);
  mc_metadata *md2 = (mc_metadata *)1;
  CHECK_RC(mc_metadata_open(&b, &md2, err, sizeof err), MC_EEXIST);
  CHECK(md2 == NULL);

  /* p2p has no watch and no generic keys. */
  void *val;
  size_t len;
  CHECK_RC(mc_metadata_watch(md, name), MC_ENOTSUP);
  CHECK_RC(mc_metadata_kv_put(md, "k", "v", 1), MC_ENOTSUP);
  CHECK_RC(mc_metadata_kv_get(md, "k", &val, &len), MC_ENOTSUP);
  CHECK_RC(mc_metadata_kv_delete(md, "k"), MC_ENOTSUP);
  CHECK_RC(mc_metadata_unpublish(md, name), MC_ENOENT);
  CHECK_RC(mc_metadata_publish(md, "", "{}", 2), MC_EINVAL);
  CHECK_RC(mc_metadata_publish(md, name, "{}", 0), MC_EINVAL);
  mc_metadata_close(md);

  /* A wildcard listener names itself by a concrete address. */
  mc_metadata_args w = args_for("p2p", "0.0.0.0:0");
  CHECK_RC(mc_metadata_open(&w, &md, err, sizeof err), 0);
  CHECK_RC(mc_metadata_local_name(md, name, sizeof name), 0);
  CHECK(strncmp(name, "0.0.0.0:", 8) != 0 && strchr(name, ':') != NULL);
  mc_metadata_close(md);

  CHECK_RC(mc_metadata_fetch(NULL, "x", (char **)&val, &len), MC_EINVAL);
  mc_metadata_close(NULL);
  printf("metadata open tests passed\n");
  return 0;
}
