/* The cluster token: its file loader, the constant-time compare, and
 * engines that present and demand it through the p2p handshake. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h" /* tests/common */
#include "testutil.h"
#include "mooncake/engine.h"
#include "token.h"

static char dir[64];

/* Writes content to dir/name with mode; returns the path (static). */
static const char *put_file(const char *name, const char *content, mode_t mode) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  size_t n = strlen(content);
  CHECK(write(fd, content, n) == (ssize_t)n);
  CHECK(fchmod(fd, mode) == 0);
  close(fd);
  return path;
}

static void expect_load(const char *path, int want, const char *why_part) {
  char tok[MC_TOKEN_MAX + 1], err[512] = "";
  CHECK_RC(mc_token_load(path, tok, err, sizeof err), want);
  if (why_part && !strstr(err, why_part)) {
    fprintf(stderr, "error '%s' lacks '%s'\n", err, why_part);
    abort();
  }
  if (want)
    CHECK(strstr(err, path) != NULL); /* names the file */
}

static void test_load(void) {
  char tok[MC_TOKEN_MAX + 1], err[512];
  const char *p = put_file("good", "0123456789abcdef0123\n", 0600);
  CHECK_RC(mc_token_load(p, tok, err, sizeof err), 0);
  CHECK(strcmp(tok, "0123456789abcdef0123") == 0); /* newline trimmed */
  p = put_file("crlf", "0123456789abcdef\r\n  \n", 0400);
  CHECK_RC(mc_token_load(p, tok, err, sizeof err), 0);
  CHECK(strcmp(tok, "0123456789abcdef") == 0);
  expect_load(put_file("open", "0123456789abcdef0123\n", 0644), MC_EACCES,
              "chmod 600");
  expect_load(put_file("group", "0123456789abcdef0123\n", 0620), MC_EACCES,
              "mode 0620");
  expect_load(put_file("short", "0123456789\n", 0600), MC_EINVAL, "at least 16");
  expect_load(put_file("space", "0123456789 abcdef0123\n", 0600), MC_EINVAL,
              "byte 11");
  char longer[MC_TOKEN_MAX + 10];
  memset(longer, 'x', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  expect_load(put_file("long", longer, 0600), MC_EINVAL, "longer than 128");
  expect_load(put_file("empty", "", 0600), MC_EINVAL, "0 bytes");
  char missing[128];
  snprintf(missing, sizeof missing, "%s/none", dir);
  expect_load(missing, MC_ENOENT, "cannot open");
  expect_load(dir, MC_EINVAL, "not a regular file");

  CHECK(mc_token_equal("0123456789abcdef", "0123456789abcdef", 16));
  CHECK(!mc_token_equal("0123456789abcdef", "0123456789abcdeX", 16));
  CHECK(!mc_token_equal("0123456789abcdef", "0123456789abcde", 15));
  CHECK(!mc_token_equal("0123456789abcdef", "0123456789abcdef0", 17));
  CHECK(!mc_token_equal("0123456789abcdef", "", 0));
}

static mc_engine *engine_with(const char *yaml_body, int want_rc,
                              const char *want_err) {
  const char *cfg = put_file("engine.yaml", yaml_body, 0600);
  mc_engine_opts o = {.struct_size = sizeof o, .config_path = cfg};
  mc_engine *e = NULL;
  char err[1024] = "";
  CHECK_RC(mc_engine_create_ex(&o, &e, err, sizeof err), want_rc);
  /* want_err: parts separated by '\n', each of which the error names. */
  for (const char *p = want_err; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char part[256];
    snprintf(part, sizeof part, "%.*s", (int)n, p);
    if (!strstr(err, part)) {
      fprintf(stderr, "engine error '%s' lacks '%s'\n", err, part);
      abort();
    }
    p = nl ? nl + 1 : p + n;
  }
  return e;
}

static void test_engines(void) {
  const char *good = put_file("cluster.token", "0123456789abcdef0123456789abcdef\n", 0600);
  char good_path[128];
  snprintf(good_path, sizeof good_path, "%s", good);
  put_file("other.token", "fedcba9876543210fedcba9876543210\n", 0600);
  put_file("open.token", "0123456789abcdef0123456789abcdef\n", 0644);
  char yaml[512];

  /* A bad token file stops the engine, naming file:line and the reason. */
  snprintf(yaml, sizeof yaml,
           "listen: 127.0.0.1:0\ntransports: [tcp]\ncluster_token_file: %s/open.token\n",
           dir);
  CHECK(engine_with(yaml, MC_EACCES, "engine.yaml:3:\ncluster_token_file\nopen.token\nchmod 600") == NULL);
  snprintf(yaml, sizeof yaml,
           "listen: 127.0.0.1:0\ntransports: [tcp]\ncluster_token_file: %s/nope\n", dir);
  CHECK(engine_with(yaml, MC_ENOENT, "nope") == NULL);
  /* ... and so does the environment variable, named as such. */
  setenv("MC_CLUSTER_TOKEN_FILE", "/nonexistent/token", 1);
  CHECK(engine_with("listen: 127.0.0.1:0\ntransports: [tcp]\n", MC_ENOENT,
                    "MC_CLUSTER_TOKEN_FILE:") == NULL);
  unsetenv("MC_CLUSTER_TOKEN_FILE");

  snprintf(yaml, sizeof yaml,
           "listen: 127.0.0.1:0\ntransports: [tcp]\ncluster_token_file: %s\n",
           good_path);
  mc_engine *a = engine_with(yaml, 0, NULL);
  mc_engine *b = engine_with(yaml, 0, NULL);
  snprintf(yaml, sizeof yaml,
           "listen: 127.0.0.1:0\ntransports: [tcp]\ncluster_token_file: %s/other.token\n",
           dir);
  mc_engine *other = engine_with(yaml, 0, NULL);
  mc_engine *open_engine = engine_with("listen: 127.0.0.1:0\ntransports: [tcp]\n", 0, NULL);

  /* Same cluster: the segment opens and data moves. */
  uint64_t *buf = calloc(1, 1 << 16);
  CHECK(buf);
  CHECK_RC(mc_register(a, buf, 1 << 16, NULL), 0);
  for (int i = 0; i < 8192; i++)
    buf[i] = 0x1234567800000000ull + (uint64_t)i;
  uint64_t *got = calloc(1, 1 << 16);
  CHECK(got);
  CHECK_RC(mc_register(b, got, 1 << 16, NULL), 0);
  mc_segment *s = NULL;
  CHECK_RC(mc_segment_open(b, mc_engine_segment_name(a), &s), 0);
  mc_request r = {.op = MC_OP_READ, .local = got, .segment = s,
                  .remote = (uintptr_t)buf, .len = 1 << 16};
  CHECK_RC(mc_transfer_sync(b, &r, 1, 5000), 0);
  CHECK(memcmp(got, buf, 1 << 16) == 0);
  mc_segment_close(s);

  /* Another cluster's token, or none: the segment cannot even be found. */
  s = NULL;
  CHECK_RC(mc_segment_open(other, mc_engine_segment_name(a), &s), MC_EACCES);
  CHECK_RC(mc_segment_open(open_engine, mc_engine_segment_name(a), &s), MC_EACCES);
  CHECK(s == NULL);

  CHECK_RC(mc_unregister(b, got), 0);
  CHECK_RC(mc_unregister(a, buf), 0);
  mc_engine_destroy(open_engine);
  mc_engine_destroy(other);
  mc_engine_destroy(b);
  mc_engine_destroy(a);
  free(got);
  free(buf);
}

static void cleanup(void) {
  static const char *const names[] = {"good", "crlf", "open", "group", "short",
                                      "space", "long", "empty", "engine.yaml",
                                      "cluster.token", "other.token", "open.token"};
  char path[128];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mc-token-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  atexit(cleanup);
  test_load();
  test_engines();
  printf("cluster token tests passed\n");
  return 0;
}
