/* Tests of the configuration loader (core/src/config.c): the YAML file, its
 * error messages (file:line and key), sizes, MC_* environment overrides and
 * the shipped examples/mooncake.yaml.
 * Usage: test-config DATA_DIR EXAMPLE_YAML */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "mooncake/errors.h"
#include "mooncake/transport.h"

static const char *data_dir;

static const char *param(const mc_config_transport *t, const char *key,
                         int *line) {
  for (size_t i = 0; t && i < t->nparams; i++)
    if (strcmp(t->params[i].key, key) == 0) {
      if (line)
        *line = t->params[i].line;
      return t->params[i].value;
    }
  return NULL;
}

/* Loads yaml as "t.yaml"; expects failure with every fragment in err. */
static void expect_error(int line, const char *yaml, int want_rc,
                         const char *frag1, const char *frag2) {
  mc_config *cfg = (mc_config *)0x1;
  char err[MC_CONFIG_ERR_MAX] = "";
  int rc = mc_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err,
                                 sizeof err);
  int ok = rc == want_rc && cfg == NULL && strstr(err, frag1) &&
           (!frag2 || strstr(err, frag2));
  if (!ok) {
    fprintf(stderr,
            "%s:%d: expected rc %d with '%s'%s%s%s, got rc %d: %s\n",
            __FILE__, line, want_rc, frag1, frag2 ? " and '" : "",
            frag2 ? frag2 : "", frag2 ? "'" : "", rc, err);
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
  }
  if (rc == 0)
    mc_config_free(cfg);
}
#define EXPECT_ERR(yaml, f1, f2) expect_error(__LINE__, yaml, MC_EINVAL, f1, f2)

static mc_config *load_ok(int line, const char *yaml) {
  mc_config *cfg = NULL;
  char err[MC_CONFIG_ERR_MAX] = "";
  int rc = mc_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err,
                                 sizeof err);
  if (rc != 0 || !cfg) {
    fprintf(stderr, "%s:%d: load failed (%d): %s\n", __FILE__, line, rc, err);
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    return NULL;
  }
  return cfg;
}
#define LOAD_OK(yaml) load_ok(__LINE__, yaml)

static char *data_path(const char *name) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", data_dir, name);
  return buf;
}

static void check_defaults(const mc_config *cfg) {
  CHECK(cfg->segment_name == NULL);
  CHECK_STR(cfg->listen, "127.0.0.1:0");
  CHECK_STR(cfg->metadata, "p2p");
  CHECK(cfg->nplugin_path == 0);
  CHECK(cfg->transports_auto == 0);
  CHECK(cfg->ntransports == 1);
  if (cfg->ntransports == 1) {
    CHECK_STR(cfg->transports[0].name, "tcp");
    CHECK(cfg->transports[0].nparams == 0);
  }
  CHECK(cfg->ntransport_order == 0);
  CHECK(cfg->slice_size == 65536);
  CHECK(cfg->retry_count == 3);
  CHECK(cfg->timeout_ms == 30000);
  CHECK(cfg->ntopology == 0);
}

static void test_defaults(void) {
  setenv("MC_LOG_LEVEL", "info", 1);
  mc_config *cfg = mc_config_new_default();
  CHECK(cfg != NULL);
  if (cfg) {
    check_defaults(cfg);
    CHECK(cfg->log_level == MC_LOG_INFO);
    CHECK_STR(cfg->source, "<defaults>");
    mc_config_free(cfg);
  }
  unsetenv("MC_LOG_LEVEL");
  cfg = mc_config_new_default();
  if (cfg) {
    CHECK(cfg->log_level == MC_LOG_WARN);
    mc_config_free(cfg);
  }
  mc_config_free(NULL);

  /* Empty file, comments only, explicit null document: defaults. */
  const char *files[] = {"empty.yaml", "comments.yaml"};
  for (size_t i = 0; i < 2; i++) {
    char err[MC_CONFIG_ERR_MAX] = "";
    cfg = NULL;
    int rc = mc_config_load_file(data_path(files[i]), &cfg, err, sizeof err);
    CHECK(rc == 0);
    if (cfg) {
      check_defaults(cfg);
      CHECK(strstr(cfg->source, files[i]) != NULL);
      mc_config_free(cfg);
    }
  }
  const char *nulls[] = {"", "~\n", "---\n...\n", "# c\n\n"};
  for (size_t i = 0; i < 4; i++) {
    cfg = LOAD_OK(nulls[i]);
    if (cfg) {
      check_defaults(cfg);
      mc_config_free(cfg);
    }
  }
  /* transports: null / {} keep the default [tcp]. */
  cfg = LOAD_OK("transports:\nplugin_path: ~\n");
  if (cfg) {
    check_defaults(cfg);
    mc_config_free(cfg);
  }
  cfg = LOAD_OK("transports: {}\n");
  if (cfg) {
    check_defaults(cfg);
    mc_config_free(cfg);
  }
}

static void test_full(void) {
  mc_config *cfg = NULL;
  char err[MC_CONFIG_ERR_MAX] = "";
  int rc = mc_config_load_file(data_path("full.yaml"), &cfg, err, sizeof err);
  CHECK(rc == 0);
  if (rc) {
    fprintf(stderr, "full.yaml: %s\n", err);
    return;
  }
  CHECK(strstr(cfg->source, "full.yaml") != NULL);
  CHECK_STR(cfg->segment_name, "seg-a:9000");
  CHECK_STR(cfg->listen, "[::1]:9000");
  CHECK_STR(cfg->metadata, "etcd://10.0.0.1:2379,10.0.0.2:2379");
  CHECK(cfg->nplugin_path == 2);
  if (cfg->nplugin_path == 2) {
    CHECK_STR(cfg->plugin_path[0], "/opt/a");
    CHECK_STR(cfg->plugin_path[1], "/opt/b/mc-transport-x.so");
  }
  CHECK(cfg->transports_auto == 0);
  CHECK(cfg->ntransports == 2);
  const mc_config_transport *tcp = mc_config_find_transport(cfg, "tcp");
  const mc_config_transport *shm = mc_config_find_transport(cfg, "shm");
  CHECK(tcp == &cfg->transports[0]);
  CHECK(shm == &cfg->transports[1]);
  CHECK(mc_config_find_transport(cfg, "rdma") == NULL);
  if (tcp && shm) {
    int line = -1;
    CHECK(tcp->line == 7);
    CHECK(shm->line == 11);
    CHECK(tcp->nparams == 3);
    CHECK(shm->nparams == 0);
    CHECK_STR(param(tcp, "connections", &line), "8");
    CHECK(line == 8);
    CHECK_STR(param(tcp, "port", &line), "12345");
    CHECK(line == 9);
    CHECK_STR(param(tcp, "devices", &line), "eth0,eth1");
    CHECK(line == 10);
  }
  CHECK(cfg->ntransport_order == 2);
  if (cfg->ntransport_order == 2) {
    CHECK_STR(cfg->transport_order[0], "shm");
    CHECK_STR(cfg->transport_order[1], "tcp");
  }
  CHECK(cfg->slice_size == 1024 * 1024);
  CHECK(cfg->retry_count == 64);
  CHECK(cfg->timeout_ms == 1500);
  CHECK(cfg->log_level == MC_LOG_DEBUG);
  CHECK(cfg->ntopology == 2);
  if (cfg->ntopology == 2) {
    const mc_config_topo *t0 = &cfg->topology[0], *t1 = &cfg->topology[1];
    CHECK_STR(t0->location, "cpu:0");
    CHECK(t0->line == 18);
    CHECK(t0->npreferred == 1 && t0->nfallback == 2);
    if (t0->npreferred == 1 && t0->nfallback == 2) {
      CHECK_STR(t0->preferred[0], "tcp:conn0");
      CHECK_STR(t0->fallback[0], "tcp:conn1");
      CHECK_STR(t0->fallback[1], "shm");
    }
    CHECK_STR(t1->location, "cuda:3");
    CHECK(t1->line == 21);
    CHECK(t1->npreferred == 0 && t1->nfallback == 1);
    if (t1->nfallback == 1)
      CHECK_STR(t1->fallback[0], "rail7");
  }
  mc_config_free(cfg);
}

static void test_forms(void) {
  mc_config *cfg = LOAD_OK("transports: auto\n");
  if (cfg) {
    CHECK(cfg->transports_auto == 1);
    CHECK(cfg->ntransports == 0);
    mc_config_free(cfg);
  }
  cfg = LOAD_OK("transports: [shm, tcp, rdma]\n");
  if (cfg) {
    CHECK(cfg->ntransports == 3);
    if (cfg->ntransports == 3) {
      CHECK_STR(cfg->transports[0].name, "shm");
      CHECK_STR(cfg->transports[2].name, "rdma");
      CHECK(cfg->transports[2].line == 1);
    }
    mc_config_free(cfg);
  }
  cfg = LOAD_OK("transports:\n  - tcp\n  - shm\n");
  if (cfg) {
    CHECK(cfg->ntransports == 2);
    if (cfg->ntransports == 2)
      CHECK(cfg->transports[1].line == 3);
    mc_config_free(cfg);
  }
  cfg = LOAD_OK("plugin_path: \"/a::/b:\"\n");
  if (cfg) {
    CHECK(cfg->nplugin_path == 2);
    if (cfg->nplugin_path == 2) {
      CHECK_STR(cfg->plugin_path[0], "/a");
      CHECK_STR(cfg->plugin_path[1], "/b");
    }
    mc_config_free(cfg);
  }
  /* Quoted scalars are text: "3" is an integer, "null" is a name. */
  cfg = LOAD_OK("retry_count: \"7\"\nsegment_name: 'null'\nlog_level: 4\n"
                "slice_size: 4096\ntransports: {tcp: {flag: yes}}\n");
  if (cfg) {
    CHECK(cfg->retry_count == 7);
    CHECK_STR(cfg->segment_name, "null");
    CHECK(cfg->log_level == MC_LOG_TRACE);
    CHECK(cfg->slice_size == 4096);
    CHECK_STR(param(mc_config_find_transport(cfg, "tcp"), "flag", NULL),
              "yes");
    mc_config_free(cfg);
  }
  /* Anchors without aliases are harmless and accepted. */
  cfg = LOAD_OK("retry_count: &r 5\n");
  if (cfg) {
    CHECK(cfg->retry_count == 5);
    mc_config_free(cfg);
  }
  /* Edge values. */
  cfg = LOAD_OK("slice_size: 1G\nretry_count: 0\ntimeout_ms: 1\n"
                "listen: \"localhost:65535\"\nmetadata: http://h:8080/md\n");
  if (cfg) {
    CHECK(cfg->slice_size == 1ull << 30);
    CHECK(cfg->retry_count == 0);
    CHECK(cfg->timeout_ms == 1);
    mc_config_free(cfg);
  }
}

static void test_errors(void) {
  /* Unknown keys, at every level, with the line. */
  EXPECT_ERR("listen: \"1.2.3.4:5\"\n\nretry_cuont: 3\n",
             "t.yaml:3: key 'retry_cuont': unknown key (expected one of: "
             "segment_name, listen, metadata, plugin_path, transports, "
             "transport_order, slice_size, retry_count, timeout_ms, "
             "log_level, topology, cluster_token_file)",
             NULL);
  /* The token file is only named here (read at engine creation). */
  EXPECT_ERR("cluster_token_file: ''\n",
             "t.yaml:1: key 'cluster_token_file': expected a file path, got ''",
             NULL);
  EXPECT_ERR("listen: \"1.2.3.4:5\"\ncluster_token_file: [a, b]\n",
             "t.yaml:2: key 'cluster_token_file'", NULL);
  EXPECT_ERR("topology:\n  cpu:0:\n    prefered: [a]\n",
             "t.yaml:3: key 'topology.cpu:0.prefered': unknown key", NULL);
  /* Wrong types and ranges. */
  EXPECT_ERR("retry_count: abc\n",
             "t.yaml:1: key 'retry_count': expected an integer 0..64, got "
             "'abc'",
             NULL);
  EXPECT_ERR("retry_count: 65\n", "key 'retry_count': expected an integer "
                                  "0..64, got '65'", NULL);
  EXPECT_ERR("retry_count: -1\n", "t.yaml:1: key 'retry_count'", "'-1'");
  EXPECT_ERR("retry_count: 99999999999999999999999\n",
             "key 'retry_count': expected an integer 0..64", NULL);
  EXPECT_ERR("\nretry_count: [1]\n",
             "t.yaml:2: key 'retry_count': expected an integer 0..64, got a "
             "sequence",
             NULL);
  EXPECT_ERR("retry_count:\n", "key 'retry_count': expected an integer "
                               "0..64, got an empty value", NULL);
  EXPECT_ERR("timeout_ms: 0\n", "t.yaml:1: key 'timeout_ms': expected an "
                                "integer 1..", NULL);
  EXPECT_ERR("timeout_ms: 1.5\n", "key 'timeout_ms'", "'1.5'");
  EXPECT_ERR("slice_size: 64Q\n",
             "t.yaml:1: key 'slice_size': expected a size like 64K or 1M (K, "
             "M, G, T = 1024^n, then B or iB), got '64Q'",
             NULL);
  /* A lower-case b is bits to many readers: refused, not guessed. */
  EXPECT_ERR("slice_size: 64kb\n", "key 'slice_size': expected a size like "
                                   "64K", "got '64kb'");
  EXPECT_ERR("slice_size: 0\n", "key 'slice_size': expected a size from 1 "
                                "to 1G, got '0'", NULL);
  EXPECT_ERR("slice_size: 2G\n", "key 'slice_size'", "'2G'");
  EXPECT_ERR("log_level: loud\n",
             "t.yaml:1: key 'log_level': expected one of error, warn, info, "
             "debug, trace, got 'loud'",
             NULL);
  EXPECT_ERR("listen: nowhere\n", "t.yaml:1: key 'listen': expected "
                                  "host:port", "'nowhere'");
  EXPECT_ERR("listen: \"h:70000\"\n", "key 'listen'", "'h:70000'");
  EXPECT_ERR("listen: {a: 1}\n", "key 'listen': expected host:port, got a "
                                 "mapping", NULL);
  EXPECT_ERR("metadata: zookeeper\n", "t.yaml:1: key 'metadata': expected "
                                      "p2p, etcd://", "'zookeeper'");
  EXPECT_ERR("segment_name: \"a b\"\n", "key 'segment_name'", "'a b'");
  EXPECT_ERR("plugin_path: {a: 1}\n", "t.yaml:1: key 'plugin_path'", NULL);
  EXPECT_ERR("plugin_path: [/a, \"\"]\n", "t.yaml:1: key 'plugin_path': "
                                          "expected a directory", NULL);
  /* Long keys and values are cut, control characters masked. */
  EXPECT_ERR("transports:\n  tcp:\n    "
             "an_option_name_that_goes_on_and_on_for_quite_a_while_longer: "
             "{}\n",
             "t.yaml:3: key 'transports.tcp.an_option_name_that_goes_on_and_"
             "on_for_quite_a_while_longer': expected a value",
             NULL);
  EXPECT_ERR("retry_count: \"\\x01\\x02x\"\n", "got '??x'", NULL);
  EXPECT_ERR("plugin_path: [/a, [b]]\n", "key 'plugin_path': expected a "
                                         "string, got a sequence", NULL);
  EXPECT_ERR("transports: Tcp\n",
             "t.yaml:1: key 'transports': transport name 'Tcp' must match "
             "[a-z0-9_]+ (1 to 63 characters)",
             NULL);
  EXPECT_ERR("transports: \"tcp,,shm\"\n",
             "t.yaml:1: key 'transports': expected 'auto' or transport names "
             "like tcp,shm, got 'tcp,,shm'",
             NULL);
  EXPECT_ERR("transports: \"tcp, tcp\"\n",
             "t.yaml:1: key 'transports': 'tcp' is listed twice", NULL);
  EXPECT_ERR("transports:\n  tcp: {optional: maybe}\n",
             "t.yaml:2: key 'transports.tcp.optional': expected true or false",
             "got 'maybe'");
  EXPECT_ERR("transports:\n  tcp: {optional: [a]}\n",
             "t.yaml:2: key 'transports.tcp.optional': expected true or false",
             "got a sequence");
  EXPECT_ERR("metadata: etdc://h:2379\n",
             "t.yaml:1: key 'metadata': unknown scheme 'etdc' in "
             "'etdc://h:2379' (expected p2p, etcd://",
             NULL);
  EXPECT_ERR("metadata: \"etcd://\"\n", "t.yaml:1: key 'metadata'",
             "no address after 'etcd://'");
  EXPECT_ERR("transports: []\n", "key 'transports': expected at least one",
             NULL);
  EXPECT_ERR("transports: [tcp, tcp]\n", "key 'transports': 'tcp' is listed "
                                         "twice", NULL);
  EXPECT_ERR("transports: [../evil]\n",
             "t.yaml:1: key 'transports': transport name '../evil' must match "
             "[a-z0-9_]+",
             NULL);
  EXPECT_ERR("transports: \"tcp,../../evil\"\n",
             "t.yaml:1: key 'transports': transport name '../../evil' must "
             "match [a-z0-9_]+",
             NULL);
  EXPECT_ERR("transports: {My-Nic: {}}\n",
             "key 'transports': transport name 'My-Nic' must match", NULL);
  EXPECT_ERR("transports:\n  - tcp: {a: 1}\n", "t.yaml:2: key 'transports'",
             "got a mapping");
  EXPECT_ERR("transports:\n  tcp: 4\n",
             "t.yaml:2: key 'transports.tcp': expected a mapping of options",
             "got '4'");
  EXPECT_ERR("transports:\n  tcp:\n    connections: {x: 1}\n",
             "t.yaml:3: key 'transports.tcp.connections': expected a value",
             "got a mapping");
  EXPECT_ERR("transports:\n  tcp:\n    connections:\n",
             "t.yaml:3: key 'transports.tcp.connections': expected a value",
             NULL);
  EXPECT_ERR("transports: {tcp: {devs: [a, [b]]}}\n",
             "key 'transports.tcp.devs'", "got a sequence");
  EXPECT_ERR("transports: {tcp: {devs: [\"a,b\"]}}\n",
             "key 'transports.tcp.devs'", "','");
  EXPECT_ERR("transport_order: [tcp, rdma]\n",
             "t.yaml:1: key 'transport_order': 'rdma' is not one of the "
             "configured transports",
             NULL);
  EXPECT_ERR("transport_order: {a: 1}\n", "key 'transport_order': expected "
                                          "a sequence", NULL);
  EXPECT_ERR("transport_order: \"tcp,x-y\"\n",
             "key 'transport_order': transport name 'x-y' must match", NULL);
  EXPECT_ERR("topology: [a]\n", "t.yaml:1: key 'topology': expected a "
                                "mapping", NULL);
  EXPECT_ERR("topology:\n  cpu:0: [a]\n", "t.yaml:2: key 'topology.cpu:0'",
             NULL);
  EXPECT_ERR("topology:\n  cpu:0: {}\n", "key 'topology.cpu:0': expected at "
                                         "least one rail", NULL);
  EXPECT_ERR("topology:\n  cpu:0:\n    preferred: [a, a]\n",
             "t.yaml:3: key 'topology.cpu:0.preferred': 'a' is listed twice",
             NULL);
  /* Duplicate keys, at the top and below. */
  EXPECT_ERR("retry_count: 1\nlisten: \"a:1\"\nretry_count: 2\n",
             "t.yaml:3: key 'retry_count': duplicate key (first at line 1)",
             NULL);
  EXPECT_ERR("transports:\n  tcp: {a: 1, a: 2}\n",
             "t.yaml:2: key 'transports.tcp.a': duplicate key", NULL);
  /* Structure. */
  EXPECT_ERR("just a string\n", "t.yaml:1: expected a mapping of keys at the "
                                "top level", NULL);
  EXPECT_ERR("- a\n- b\n", "t.yaml:1: expected a mapping", NULL);
  EXPECT_ERR("? [a]\n: b\n", "t.yaml:1: expected a plain key", NULL);
  EXPECT_ERR("retry_count: 1\n---\nretry_count: 2\n",
             "t.yaml:2: multiple YAML documents are not supported", NULL);
  EXPECT_ERR("x: &a [1]\nretry_count: *a\n",
             "t.yaml:2: YAML aliases (*a) are not supported", NULL);
  EXPECT_ERR("segment_name: \"a\\0b\"\n", "t.yaml:1: value contains a NUL",
             NULL);
  /* Syntax errors name line and column. */
  EXPECT_ERR("listen: \"a:1\"\ntransports: [tcp\nslice_size: 64K\n",
             "t.yaml:3:", "YAML syntax error: ");
  EXPECT_ERR("a: b\n c: d\n", "t.yaml:2:", "YAML syntax error: ");
  EXPECT_ERR("x: 1\ntransports: [tcp,\n\nslice_size: 64K\n",
             "t.yaml:5:1: YAML syntax error: did not find expected ',' or "
             "']' (while parsing a flow sequence at line 2)",
             NULL);
  EXPECT_ERR("a: \"unterminated\n", "t.yaml:", "YAML syntax error: ");
  EXPECT_ERR("a: \xff\xfe\n", "t.yaml:1:4: YAML syntax error: ", NULL);
  EXPECT_ERR("\tretry_count: 1\n", "t.yaml:1:", "YAML syntax error");

  /* Files: the path is in the message. */
  char err[MC_CONFIG_ERR_MAX] = "";
  mc_config *cfg = (mc_config *)0x1;
  int rc = mc_config_load_file(data_path("unknown_key.yaml"), &cfg, err,
                               sizeof err);
  CHECK(rc == MC_EINVAL && cfg == NULL);
  CHECK(strstr(err, "unknown_key.yaml:3: key 'retry_cuont': unknown key") !=
        NULL);
  rc = mc_config_load_file(data_path("syntax.yaml"), &cfg, err, sizeof err);
  CHECK(rc == MC_EINVAL && cfg == NULL);
  CHECK(strstr(err, "syntax.yaml:3:") != NULL);
  CHECK(strstr(err, "YAML syntax error: did not find expected ',' or ']'") !=
        NULL);
  rc = mc_config_load_file(data_path("no-such-file.yaml"), &cfg, err,
                           sizeof err);
  CHECK(rc == MC_ENOENT && cfg == NULL);
  char want[4096 + 64]; /* data_path() is up to 4095 bytes */
  snprintf(want, sizeof want, "%s: cannot open: %s",
           data_path("no-such-file.yaml"), strerror(ENOENT));
  CHECK_STR(err, want);
  rc = mc_config_load_file(data_dir, &cfg, err, sizeof err);
  CHECK(rc == MC_EIO && cfg == NULL);
  CHECK(strstr(err, "cannot read") != NULL);
  /* A NULL or tiny error buffer is fine. */
  rc = mc_config_load_string("x: 1\n", 5, "t.yaml", &cfg, NULL, 0);
  CHECK(rc == MC_EINVAL && cfg == NULL);
  char tiny[8];
  rc = mc_config_load_string("x: 1\n", 5, "t.yaml", &cfg, tiny, sizeof tiny);
  CHECK(rc == MC_EINVAL && strlen(tiny) == 7);
}

static void test_limits(void) {
  /* Deep nesting. */
  size_t n = 100000;
  char *deep = malloc(2 * n + 16);
  CHECK(deep != NULL);
  if (!deep)
    return;
  strcpy(deep, "x: ");
  size_t off = 3;
  for (size_t i = 0; i < n; i++)
    deep[off++] = '[';
  for (size_t i = 0; i < n; i++)
    deep[off++] = ']';
  deep[off++] = '\n';
  deep[off] = '\0';
  EXPECT_ERR(deep, "t.yaml:1: nesting deeper than 16 levels", NULL);
  /* Deep block nesting of mappings. */
  off = 0;
  for (int i = 0; i < 40; i++) {
    for (int j = 0; j < i; j++)
      deep[off++] = ' ';
    off += (size_t)sprintf(deep + off, "k%d:\n", i);
  }
  deep[off] = '\0';
  EXPECT_ERR(deep, "nesting deeper than 16 levels", NULL);
  free(deep);

  /* Over 1 MiB of input, from a string and from a file. */
  size_t big = (1u << 20) + 10;
  char *huge = malloc(big + 1);
  CHECK(huge != NULL);
  if (!huge)
    return;
  memset(huge, '#', big);
  huge[big] = '\0';
  expect_error(__LINE__, huge, MC_EINVAL, "t.yaml: larger than 1048576 bytes",
               NULL);
  char path[] = "/tmp/mc-test-config-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, huge, big) == (ssize_t)big);
    close(fd);
    mc_config *cfg = (mc_config *)0x1;
    char err[MC_CONFIG_ERR_MAX];
    int rc = mc_config_load_file(path, &cfg, err, sizeof err);
    CHECK(rc == MC_EINVAL && cfg == NULL);
    CHECK(strstr(err, "larger than 1048576 bytes") != NULL);
    unlink(path);
  }
  /* A flat list longer than 1024 entries. */
  off = (size_t)sprintf(huge, "plugin_path: [");
  for (int i = 0; i < 2000; i++)
    off += (size_t)sprintf(huge + off, "a%d,", i);
  strcpy(huge + off, "z]\n");
  EXPECT_ERR(huge, "t.yaml:1: too many entries in one collection", NULL);
  /* Many small collections: the node cap. */
  off = 0;
  for (int i = 0; i < 900; i++) {
    off += (size_t)sprintf(huge + off, "k%d: [", i);
    for (int j = 0; j < 80; j++)
      off += (size_t)sprintf(huge + off, "%d,", j);
    off += (size_t)sprintf(huge + off, "0]\n");
  }
  huge[off] = '\0';
  EXPECT_ERR(huge, "too many YAML nodes", NULL);
  /* One very long scalar. */
  memset(huge, 'a', 10000);
  memcpy(huge, "listen: ", 8);
  strcpy(huge + 10000, "\n");
  EXPECT_ERR(huge, "t.yaml:1: value longer than 4096 bytes", NULL);
  free(huge);

  /* Billion laughs: refused at the first alias, nothing is expanded. */
  EXPECT_ERR("a: &a [x, x, x, x, x, x, x, x, x]\n"
             "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
             "t.yaml:2: YAML aliases (*a) are not supported", NULL);
}

static void test_sizes(void) {
  static const struct {
    const char *text;
    uint64_t val;
  } good[] = {
      {"0", 0},
      {"4096", 4096},
      {"64K", 65536},
      {"64k", 65536},
      {"64KB", 65536},
      {"64KiB", 65536},
      {"64Ki", 65536},
      {"4096B", 4096},
      {"64kB", 65536},
      {"1M", 1 << 20},
      {"3m", 3 << 20},
      {"1G", 1ull << 30},
      {"2T", 2ull << 40},
      {"18446744073709551615", UINT64_MAX},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t v = 1234;
    int rc = mc_config_parse_size(good[i].text, &v);
    if (rc != 0 || v != good[i].val) {
      fprintf(stderr, "parse_size('%s') = %d, %llu\n", good[i].text, rc,
              (unsigned long long)v);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
  }
  static const char *const bad[] = {
      "",     "K",   "-1",  " 1", "1 ",  "1.5K", "1KK", "1Bi", "0x10",
      "1Q",   "1iB", "1e3", "18446744073709551616", "17179869184G", NULL,
      "64kb", "4096b", "1Mb", "64KIB",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v = 1234;
    if (mc_config_parse_size(bad[i], &v) != -1 || v != 1234) {
      fprintf(stderr, "parse_size('%s') accepted\n", bad[i] ? bad[i] : "NULL");
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
  }
}

static const char *const env_vars[] = {
    "MC_SEGMENT_NAME", "MC_LISTEN",   "MC_METADATA",   "MC_TRANSPORTS",
    "MC_SLICE_SIZE",   "MC_RETRY_COUNT", "MC_TIMEOUT_MS", "MC_LOG_LEVEL",
    "MC_CLUSTER_TOKEN_FILE",
};

static void clear_env(void) {
  for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
    unsetenv(env_vars[i]);
  /* Drop every MC_TRANSPORT_* (restart the scan after each removal). */
  for (int again = 1; again;) {
    again = 0;
    for (char **e = environ; *e; e++) {
      if (strncmp(*e, "MC_TRANSPORT_", 13) == 0) {
        char name[256];
        size_t len = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)len, *e);
        unsetenv(name);
        again = 1;
        break;
      }
    }
  }
}

/* Applies the environment to a fresh copy of yaml; expects an error. */
static void expect_env_error(int line, const char *yaml, const char *frag) {
  mc_config *cfg = load_ok(line, yaml);
  if (!cfg)
    return;
  char err[MC_CONFIG_ERR_MAX] = "";
  uint64_t slice = cfg->slice_size;
  size_t ntr = cfg->ntransports;
  int rc = mc_config_apply_env(cfg, err, sizeof err);
  if (rc != MC_EINVAL || !strstr(err, frag)) {
    fprintf(stderr, "%s:%d: expected env error '%s', got %d: %s\n", __FILE__,
            line, frag, rc, err);
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
  }
  /* A bad variable changes nothing. */
  CHECK(cfg->slice_size == slice);
  CHECK(cfg->ntransports == ntr);
  mc_config_free(cfg);
}
#define EXPECT_ENV_ERR(yaml, frag) expect_env_error(__LINE__, yaml, frag)

static void test_env(void) {
  clear_env();
  char err[MC_CONFIG_ERR_MAX] = "";

  /* Nothing set: nothing changes. */
  mc_config *cfg = mc_config_new_default();
  CHECK(cfg && mc_config_apply_env(cfg, err, sizeof err) == 0);
  if (cfg) {
    check_defaults(cfg);
    mc_config_free(cfg);
  }

  setenv("MC_SEGMENT_NAME", "envseg", 1);
  setenv("MC_LISTEN", "0.0.0.0:4000", 1);
  setenv("MC_METADATA", "http://md:8080/x", 1);
  setenv("MC_CLUSTER_TOKEN_FILE", "/etc/mooncake/token", 1);
  setenv("MC_SLICE_SIZE", "256K", 1);
  setenv("MC_RETRY_COUNT", "0", 1);
  setenv("MC_TIMEOUT_MS", "777", 1);
  setenv("MC_LOG_LEVEL", "trace", 1);
  setenv("MC_TRANSPORTS", "shm,tcp", 1);
  setenv("MC_TRANSPORT_TCP_CONNECTIONS", "8", 1);
  setenv("MC_TRANSPORT_SHM_IO_THREADS", "2", 1);
  cfg = LOAD_OK("transports:\n  tcp: {connections: 2, port: 99}\n"
                "  rdma: {gid_index: 3}\ncluster_token_file: /x/t\n");
  if (cfg) {
    CHECK_STR(cfg->cluster_token_file, "/x/t");
    CHECK(cfg->cluster_token_line == 4);
    int rc = mc_config_apply_env(cfg, err, sizeof err);
    CHECK_STR(cfg->cluster_token_file, "/etc/mooncake/token");
    CHECK(cfg->cluster_token_line == 0);
    CHECK(rc == 0);
    if (rc)
      fprintf(stderr, "apply_env: %s\n", err);
    CHECK_STR(cfg->segment_name, "envseg");
    CHECK_STR(cfg->listen, "0.0.0.0:4000");
    CHECK_STR(cfg->metadata, "http://md:8080/x");
    CHECK(cfg->slice_size == 256 * 1024);
    CHECK(cfg->retry_count == 0);
    CHECK(cfg->timeout_ms == 777);
    CHECK(cfg->log_level == MC_LOG_TRACE);
    CHECK(cfg->transports_auto == 0);
    /* The list is replaced; tcp keeps its file options and line numbers. */
    CHECK(cfg->ntransports == 2);
    if (cfg->ntransports == 2) {
      CHECK_STR(cfg->transports[0].name, "shm");
      CHECK_STR(cfg->transports[1].name, "tcp");
      CHECK(cfg->transports[1].line == 2);
    }
    CHECK(mc_config_find_transport(cfg, "rdma") == NULL);
    const mc_config_transport *tcp = mc_config_find_transport(cfg, "tcp");
    int line = -1;
    CHECK_STR(param(tcp, "connections", &line), "8");
    CHECK(line == 0);
    CHECK_STR(param(tcp, "port", &line), "99");
    CHECK(line == 2);
    CHECK_STR(param(mc_config_find_transport(cfg, "shm"), "io_threads", &line),
              "2");
    CHECK(line == 0);
    mc_config_free(cfg);
  }
  clear_env();

  /* auto keeps every transport's options; options may name any transport;
   * a name with '_' is matched against the configured names first. */
  setenv("MC_TRANSPORTS", "auto", 1);
  setenv("MC_TRANSPORT_RDMA_GID_INDEX", "1", 1);
  setenv("MC_TRANSPORT_MY_NIC_QUEUE_DEPTH", "64", 1);
  cfg = LOAD_OK("transports: {tcp: {port: 5}, my_nic: {}}\n");
  if (cfg) {
    CHECK(mc_config_apply_env(cfg, err, sizeof err) == 0);
    CHECK(cfg->transports_auto == 1);
    CHECK_STR(param(mc_config_find_transport(cfg, "tcp"), "port", NULL), "5");
    CHECK_STR(param(mc_config_find_transport(cfg, "rdma"), "gid_index", NULL),
              "1");
    CHECK_STR(
        param(mc_config_find_transport(cfg, "my_nic"), "queue_depth", NULL),
        "64");
    mc_config_free(cfg);
  }
  clear_env();

  /* mc_engine_opts.transports replaces the list after the variables, so
   * MC_TRANSPORT_<NAME>_* may name a transport only that list holds. */
  setenv("MC_TRANSPORT_HIP_LIBRARY", "/opt/rocm/lib/libamdhip64.so", 1);
  cfg = mc_config_new_default();
  if (cfg) {
    CHECK(mc_config_apply_env(cfg, err, sizeof err) == MC_EINVAL);
    CHECK(strstr(err, "MC_TRANSPORT_HIP_LIBRARY") != NULL);
    CHECK(mc_config_apply_env_for(cfg, "tcp", err, sizeof err) == MC_EINVAL);
    CHECK(mc_config_apply_env_for(cfg, "hip,tcp", err, sizeof err) == 0);
    mc_engine_opts o = {.struct_size = sizeof o, .transports = "hip,tcp"};
    CHECK(mc_config_apply_opts(cfg, &o, err, sizeof err) == 0);
    CHECK_STR(param(mc_config_find_transport(cfg, "hip"), "library", NULL),
              "/opt/rocm/lib/libamdhip64.so");
    mc_config_free(cfg);
  }
  clear_env();

  /* Empty variables count as unset. */
  setenv("MC_SLICE_SIZE", "", 1);
  cfg = mc_config_new_default();
  CHECK(cfg && mc_config_apply_env(cfg, err, sizeof err) == 0);
  if (cfg) {
    CHECK(cfg->slice_size == 65536);
    mc_config_free(cfg);
  }
  clear_env();

  /* Bad values name the variable and change nothing. */
  setenv("MC_SLICE_SIZE", "x", 1);
  EXPECT_ENV_ERR("", "MC_SLICE_SIZE: expected a size like 64K or 1M (K, M, "
                     "G, T = 1024^n, then B or iB), got 'x'");
  clear_env();
  setenv("MC_SLICE_SIZE", "4G", 1);
  EXPECT_ENV_ERR("", "MC_SLICE_SIZE: expected a size from 1 to 1G, got '4G'");
  clear_env();
  setenv("MC_RETRY_COUNT", "100", 1);
  setenv("MC_SLICE_SIZE", "128K", 1); /* valid, but must not be applied */
  EXPECT_ENV_ERR("", "MC_RETRY_COUNT: expected an integer 0..64, got '100'");
  clear_env();
  setenv("MC_TIMEOUT_MS", "0", 1);
  EXPECT_ENV_ERR("", "MC_TIMEOUT_MS: expected an integer 1..");
  clear_env();
  setenv("MC_LOG_LEVEL", "chatty", 1);
  EXPECT_ENV_ERR("", "MC_LOG_LEVEL: expected one of error, warn");
  clear_env();
  setenv("MC_LISTEN", "4000", 1);
  EXPECT_ENV_ERR("", "MC_LISTEN: expected host:port");
  clear_env();
  setenv("MC_METADATA", "nope", 1);
  EXPECT_ENV_ERR("", "MC_METADATA: expected p2p");
  clear_env();
  setenv("MC_SEGMENT_NAME", "a b", 1);
  EXPECT_ENV_ERR("", "MC_SEGMENT_NAME: expected a segment name");
  clear_env();
  setenv("MC_TRANSPORTS", "tcp,,shm", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORTS: expected 'auto' or transport names "
                     "like tcp,shm, got 'tcp,,shm'");
  clear_env();
  setenv("MC_TRANSPORTS", "tcp,tcp", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORTS: 'tcp' is listed twice");
  clear_env();
  setenv("MC_TRANSPORTS", "../x", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORTS: transport name '../x' must match "
                     "[a-z0-9_]+ (1 to 63 characters)");
  clear_env();
  setenv("MC_TRANSPORT_RDMA_GID_INDEX", "1", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORT_RDMA_GID_INDEX: transport 'rdma' is not "
                     "configured");
  clear_env();
  setenv("MC_TRANSPORT_TCP", "1", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORT_TCP: expected MC_TRANSPORT_<NAME>_<KEY>");
  clear_env();
  setenv("MC_TRANSPORT_TCP_", "1", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORT_TCP_: expected MC_TRANSPORT_<NAME>_<KEY>");
  clear_env();
  setenv("MC_TRANSPORT_TCP_PORT", "", 1);
  EXPECT_ENV_ERR("", "MC_TRANSPORT_TCP_PORT: expected a value");
  clear_env();
  /* MC_PLUGIN_PATH is the loader's, not an override. */
  setenv("MC_PLUGIN_PATH", "/somewhere", 1);
  cfg = mc_config_new_default();
  CHECK(cfg && mc_config_apply_env(cfg, NULL, 0) == 0);
  if (cfg) {
    CHECK(cfg->nplugin_path == 0);
    mc_config_free(cfg);
  }
}

static void test_add_transport(void) {
  mc_config *cfg = mc_config_new_default();
  CHECK(cfg != NULL);
  if (!cfg)
    return;
  mc_config_transport *t = mc_config_add_transport(cfg, "shm");
  CHECK(t && t->line == 0 && t->nparams == 0 && strcmp(t->name, "shm") == 0);
  CHECK(cfg->ntransports == 2);
  /* Adding an existing one returns it. */
  CHECK(mc_config_add_transport(cfg, "tcp") == &cfg->transports[0]);
  CHECK(cfg->ntransports == 2);
  CHECK(mc_config_find_transport(cfg, NULL) == NULL);
  CHECK(mc_config_find_transport(NULL, "tcp") == NULL);
  mc_config_free(cfg);
}

static void test_example(const char *path) {
  mc_config *cfg = NULL;
  char err[MC_CONFIG_ERR_MAX] = "";
  int rc = mc_config_load_file(path, &cfg, err, sizeof err);
  CHECK(rc == 0);
  if (rc) {
    fprintf(stderr, "example: %s\n", err);
    return;
  }
  /* It shows the engine's keys; its transports' keys are checked against
   * the plugins' params by tests/info (the example loads in an engine). */
  /* segment_name is left to the default, so several engines on one host
   * can share the file. */
  CHECK(cfg->segment_name == NULL);
  CHECK(cfg->listen != NULL && strcmp(cfg->listen, "127.0.0.1:0") == 0);
  CHECK(cfg->ntransport_order >= 1);
  CHECK(cfg->ntopology >= 1);
  CHECK(mc_config_find_transport(cfg, "tcp") != NULL);
  mc_config_free(cfg);
}

static void test_scalar_forms(void) {
  /* The text forms of the variables and opts members work in the file. */
  mc_config *cfg = LOAD_OK("transports: tcp\n");
  if (cfg) {
    CHECK(cfg->ntransports == 1 && cfg->transports_auto == 0);
    if (cfg->ntransports == 1)
      CHECK_STR(cfg->transports[0].name, "tcp");
    mc_config_free(cfg);
  }
  cfg = LOAD_OK("\ntransports: \" shm , tcp \"\ntransport_order: tcp,shm\n");
  if (cfg) {
    CHECK(cfg->ntransports == 2);
    if (cfg->ntransports == 2) {
      CHECK_STR(cfg->transports[0].name, "shm");
      CHECK_STR(cfg->transports[1].name, "tcp");
      CHECK(cfg->transports[0].line == 2);
    }
    CHECK(cfg->ntransport_order == 2);
    if (cfg->ntransport_order == 2)
      CHECK_STR(cfg->transport_order[0], "tcp");
    mc_config_free(cfg);
  }
  /* optional is the core's key: kept aside, never a plugin option. */
  cfg = LOAD_OK("transports:\n  tcp: {optional: yes, port: 5}\n  shm: {}\n");
  if (cfg) {
    const mc_config_transport *tcp = mc_config_find_transport(cfg, "tcp");
    const mc_config_transport *shm = mc_config_find_transport(cfg, "shm");
    CHECK(tcp && tcp->optional == 1 && tcp->nparams == 1);
    CHECK(param(tcp, "optional", NULL) == NULL);
    CHECK(shm && shm->optional == 0);
    mc_config_free(cfg);
  }
}

static void test_parsers(void) {
  static const struct {
    const char *text;
    int64_t val;
  } ints[] = {{"0", 0},       {"-1", -1},    {"42", 42},
              {"9223372036854775807", INT64_MAX},
              {"-9223372036854775808", INT64_MIN}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    int64_t v = 7;
    CHECK(mc_config_parse_int(ints[i].text, &v) == 0 && v == ints[i].val);
  }
  static const char *const bad_ints[] = {
      "", "-", "+1", "1.0", "0x10", " 1", "1 ", "9223372036854775808",
      "-9223372036854775809", "1K", NULL};
  for (size_t i = 0; i < sizeof bad_ints / sizeof bad_ints[0]; i++) {
    int64_t v = 7;
    CHECK(mc_config_parse_int(bad_ints[i], &v) == -1 && v == 7);
  }
  static const char *const yes[] = {"true", "TRUE", "Yes", "on", "1"};
  static const char *const no[] = {"false", "False", "NO", "off", "0"};
  for (size_t i = 0; i < 5; i++) {
    int b = 7;
    CHECK(mc_config_parse_bool(yes[i], &b) == 0 && b == 1);
    b = 7;
    CHECK(mc_config_parse_bool(no[i], &b) == 0 && b == 0);
  }
  static const char *const bad_bools[] = {"", "2", "y", "truee", "banana",
                                          NULL};
  for (size_t i = 0; i < sizeof bad_bools / sizeof bad_bools[0]; i++) {
    int b = 7;
    CHECK(mc_config_parse_bool(bad_bools[i], &b) == -1 && b == 7);
  }
  char why[256];
  CHECK(mc_config_check_name("my_nic0", why, sizeof why) == 0);
  const char *bad_names[] = {"", "Tcp", "a-b", "../x", "a b",
                             "a234567890123456789012345678901234567890123456789"
                             "012345678901234"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    why[0] = '\0';
    CHECK(mc_config_check_name(bad_names[i], why, sizeof why) == MC_EINVAL &&
          strstr(why, "must match [a-z0-9_]+"));
  }
}

/* The three paths give one reason for one bad value; only the place
 * differs.  Returns the text after "<place>: ". */
static const char *reason(const char *err, const char *place) {
  size_t n = strlen(place);
  if (strncmp(err, place, n) != 0 || strncmp(err + n, ": ", 2) != 0)
    return NULL;
  return err + n + 2;
}

static void test_one_schema(void) {
  clear_env();
  static const struct {
    const char *env, *opt, *value, *want;
  } cases[] = {
      {"MC_TRANSPORTS", "transports", "tcp,../../evil",
       "transport name '../../evil' must match [a-z0-9_]+ (1 to 63 "
       "characters)"},
      {"MC_TRANSPORTS", "transports", "tcp,,shm",
       "expected 'auto' or transport names like tcp,shm, got 'tcp,,shm'"},
      {"MC_LISTEN", "listen", "nowhere",
       "expected host:port (port 0 = any), got 'nowhere'"},
      {"MC_METADATA", "metadata", "etdc://h:1",
       "unknown scheme 'etdc' in 'etdc://h:1' (expected p2p, "
       "etcd://host:port[,host:port] or http://host:port/path)"},
      {"MC_SEGMENT_NAME", "segment_name", "a b",
       "expected a segment name without spaces, got 'a b'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char eerr[MC_CONFIG_ERR_MAX] = "", oerr[MC_CONFIG_ERR_MAX] = "";
    char ferr[MC_CONFIG_ERR_MAX] = "", yaml[256], place[64];
    mc_config *cfg = mc_config_new_default();
    setenv(cases[i].env, cases[i].value, 1);
    CHECK(cfg && mc_config_apply_env(cfg, eerr, sizeof eerr) == MC_EINVAL);
    unsetenv(cases[i].env);
    mc_engine_opts o = {.struct_size = sizeof o};
    *(const char **)((char *)&o + (strcmp(cases[i].opt, "transports") == 0
                                       ? offsetof(mc_engine_opts, transports)
                                   : strcmp(cases[i].opt, "listen") == 0
                                       ? offsetof(mc_engine_opts, listen)
                                   : strcmp(cases[i].opt, "metadata") == 0
                                       ? offsetof(mc_engine_opts, metadata)
                                       : offsetof(mc_engine_opts,
                                                  segment_name))) =
        cases[i].value;
    CHECK(cfg && mc_config_apply_opts(cfg, &o, oerr, sizeof oerr) ==
                     MC_EINVAL);
    snprintf(yaml, sizeof yaml, "\n%s: \"%s\"\n", cases[i].opt, cases[i].value);
    mc_config *fcfg = (mc_config *)0x1;
    CHECK(mc_config_load_string(yaml, strlen(yaml), "f.yaml", &fcfg, ferr,
                                sizeof ferr) == MC_EINVAL &&
          fcfg == NULL);
    snprintf(place, sizeof place, "mc_engine_opts.%s", cases[i].opt);
    const char *e = reason(eerr, cases[i].env), *op = reason(oerr, place);
    snprintf(place, sizeof place, "f.yaml:2: key '%s'", cases[i].opt);
    const char *f = reason(ferr, place);
    if (!e || !op || !f || strcmp(e, cases[i].want) || strcmp(op, e) ||
        strcmp(f, e)) {
      fprintf(stderr, "%s:%d: one schema, three reasons for '%s':\n  %s\n  "
                      "%s\n  %s\n",
              __FILE__, __LINE__, cases[i].value, eerr, oerr, ferr);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
    /* A bad member changes nothing. */
    if (cfg) {
      check_defaults(cfg);
      mc_config_free(cfg);
    }
  }

  /* Good values: opts win over the file and the variables, and each key
   * remembers where it was set. */
  setenv("MC_METADATA", "etcd://e:1", 1);
  setenv("MC_SLICE_SIZE", "128K", 1);
  mc_config *cfg = LOAD_OK("listen: \"1.2.3.4:5\"\nplugin_path: [/file]\n"
                           "transports: {tcp: {port: 7}}\n");
  if (cfg) {
    char where[256], err[MC_CONFIG_ERR_MAX] = "";
    mc_engine_opts o = {.struct_size = sizeof o,
                        .segment_name = "seg",
                        .listen = "",
                        .transports = " shm, tcp",
                        .plugin_path = "/o1::/o2"};
    CHECK(mc_config_apply_env(cfg, err, sizeof err) == 0);
    CHECK(mc_config_apply_opts(cfg, &o, err, sizeof err) == 0);
    CHECK(mc_config_apply_opts(cfg, NULL, err, sizeof err) == 0);
    CHECK_STR(cfg->segment_name, "seg");
    CHECK_STR(cfg->listen, "1.2.3.4:5"); /* "" is unset */
    CHECK_STR(cfg->metadata, "etcd://e:1");
    CHECK(cfg->slice_size == 128 * 1024 && cfg->slice_size_set);
    CHECK(cfg->ntransports == 2 && cfg->transports_auto == 0);
    CHECK_STR(param(mc_config_find_transport(cfg, "tcp"), "port", NULL), "7");
    CHECK(cfg->nplugin_path == 3);
    if (cfg->nplugin_path == 3) {
      CHECK_STR(cfg->plugin_path[0], "/o1");
      CHECK_STR(cfg->plugin_path[1], "/o2");
      CHECK_STR(cfg->plugin_path[2], "/file");
    }
    mc_config_where(cfg, "listen", where, sizeof where);
    CHECK_STR(where, "t.yaml:1: key 'listen'");
    mc_config_where(cfg, "metadata", where, sizeof where);
    CHECK_STR(where, "MC_METADATA");
    mc_config_where(cfg, "segment_name", where, sizeof where);
    CHECK_STR(where, "mc_engine_opts.segment_name");
    mc_config_where(cfg, "retry_count", where, sizeof where);
    CHECK_STR(where, "retry_count (default)");
    /* "auto" keeps every transport's options, as MC_TRANSPORTS=auto. */
    o = (mc_engine_opts){.struct_size = sizeof o, .transports = "auto"};
    CHECK(mc_config_apply_opts(cfg, &o, err, sizeof err) == 0);
    CHECK(cfg->transports_auto == 1);
    CHECK_STR(param(mc_config_find_transport(cfg, "tcp"), "port", NULL), "7");
    mc_config_free(cfg);
  }
  clear_env();

  /* MC_TRANSPORT_<NAME>_<KEY> keeps the variable's own name for messages,
   * and <NAME>_OPTIONAL is the core's key. */
  setenv("MC_TRANSPORT_TCP_BOGUS", "1", 1);
  setenv("MC_TRANSPORT_SHM_OPTIONAL", "true", 1);
  cfg = LOAD_OK("transports: [tcp, shm]\n");
  if (cfg) {
    char err[MC_CONFIG_ERR_MAX] = "";
    CHECK(mc_config_apply_env(cfg, err, sizeof err) == 0);
    const mc_config_transport *tcp = mc_config_find_transport(cfg, "tcp");
    const mc_config_transport *shm = mc_config_find_transport(cfg, "shm");
    CHECK(tcp && tcp->nparams == 1 && tcp->params[0].var &&
          strcmp(tcp->params[0].var, "MC_TRANSPORT_TCP_BOGUS") == 0);
    CHECK(shm && shm->optional == 1 && shm->nparams == 0);
    mc_config_free(cfg);
  }
  clear_env();
  setenv("MC_TRANSPORT_SHM_OPTIONAL", "perhaps", 1);
  EXPECT_ENV_ERR("transports: [tcp, shm]\n",
                 "MC_TRANSPORT_SHM_OPTIONAL: expected true or false (or "
                 "yes/no, on/off, 1/0), got 'perhaps'");
  clear_env();
}

/* ---- plugin params: stride, table checks, value checks ---- */

/* A 1.0 plugin's entry: mc_param_info before min and max. */
typedef struct param_v10 {
  uint32_t type;
  const char *name, *default_text, *help;
} param_v10;

/* A later minor's longer entry: the core reads only what it knows. */
typedef struct param_v19 {
  mc_param_info base;
  uint64_t future[3];
} param_v19;

static const param_v10 v10_params[] = {
    {MC_PARAM_INT, "count", "4", "an int"},
    {MC_PARAM_SIZE, "chunk", "64K", "a size"},
    {MC_PARAM_BOOL, "verbose", "false", "a bool"},
    {MC_PARAM_STRING, "label", "x", "a string"},
    {MC_PARAM_END, NULL, NULL, NULL},
};

static const param_v19 v19_params[] = {
    {{MC_PARAM_INT, "count", "4", "an int", 1, 16}, {1, 2, 3}},
    {{MC_PARAM_SIZE, "chunk", "64K", "a size", 4096, 1 << 20}, {4, 5, 6}},
    {{MC_PARAM_END, NULL, NULL, NULL, 0, 0}, {0, 0, 0}},
};

static const mc_param_info v11_params[] = {
    {MC_PARAM_INT, "count", "4", "an int", 1, 16},
    {MC_PARAM_SIZE, "chunk", "64K", "a size", 4096, 1 << 20},
    {MC_PARAM_BOOL, "verbose", "false", "a bool", 0, 0},
    {MC_PARAM_INT, "offset", NULL, "no default, no range", 0, 0},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

static mc_transport_ops ops_with(const void *params, uint32_t minor,
                                 uint32_t stride) {
  mc_transport_ops o;
  memset(&o, 0, sizeof o);
  o.abi_major = 1;
  o.abi_minor = minor;
  o.name = "pt";
  o.params = (const mc_param_info *)params;
  o.param_info_size = stride;
  return o;
}

static void test_param_stride(void) {
  mc_param_info pi;
  /* 1.0: stride MC_PARAM_INFO_V1_SIZE, min and max read as 0. */
  mc_transport_ops o = ops_with(v10_params, 0, 0);
  size_t n = 0;
  for (; mc_param_read(&o, n, &pi) == 1; n++) {
    CHECK_STR(pi.name, v10_params[n].name);
    CHECK(pi.type == v10_params[n].type && pi.min == 0 && pi.max == 0);
    CHECK_STR(pi.default_text, v10_params[n].default_text);
  }
  CHECK(n == 4);
  CHECK(mc_param_find(&o, "label", &pi) == 0 && pi.type == MC_PARAM_STRING);
  CHECK(mc_param_find(&o, "nosuch", &pi) == MC_ENOENT);
  /* 1.1: the declared stride, ranges read. */
  o = ops_with(v11_params, 1, sizeof(mc_param_info));
  CHECK(mc_param_find(&o, "chunk", &pi) == 0 && pi.min == 4096 &&
        pi.max == 1 << 20);
  /* A longer entry of a later minor: its tail is skipped, not misread. */
  o = ops_with(v19_params, 9, sizeof(param_v19));
  n = 0;
  for (; mc_param_read(&o, n, &pi) == 1; n++)
    CHECK(pi.min == v19_params[n].base.min && pi.max == v19_params[n].base.max);
  CHECK(n == 2);
  CHECK(mc_param_find(&o, "chunk", &pi) == 0 && pi.max == 1 << 20);
  /* No params, or a stride too small to hold an entry: nothing to read. */
  o = ops_with(NULL, 1, 0);
  CHECK(mc_param_read(&o, 0, &pi) == 0);
  o = ops_with(v11_params, 1, 8);
  CHECK(mc_param_read(&o, 0, &pi) == 0);
}

/* Checks transports.pt of yaml (then env) against ops; expects rc and, if
 * want is set, err equal to it. */
static void expect_plugin(int line, const char *yaml, const mc_transport_ops *o,
                          int want_rc, const char *want) {
  mc_config *cfg = load_ok(line, yaml);
  if (!cfg)
    return;
  char err[MC_CONFIG_ERR_MAX] = "";
  int rc = mc_config_apply_env(cfg, err, sizeof err);
  if (rc == 0)
    rc = mc_config_check_plugin(cfg, "pt", "/p/mc-transport-pt.so", o, err,
                                sizeof err);
  if (rc != want_rc || (want && strcmp(err, want) != 0)) {
    fprintf(stderr, "%s:%d: expected %d '%s', got %d '%s'\n", __FILE__, line,
            want_rc, want ? want : "", rc, err);
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
  }
  mc_config_free(cfg);
}
#define EXPECT_PLUGIN(yaml, o, rc, want)                                       \
  expect_plugin(__LINE__, yaml, o, rc, want)

static void test_plugin_values(void) {
  clear_env();
  mc_transport_ops o11 = ops_with(v11_params, 1, sizeof(mc_param_info));
  mc_transport_ops o10 = ops_with(v10_params, 0, 0);
  EXPECT_PLUGIN("transports:\n  pt: {count: 16, chunk: 1M, verbose: on, "
                "offset: -5, optional: true}\n",
                &o11, 0, "");
  EXPECT_PLUGIN("transports: [pt]\n", &o11, 0, "");
  /* From the file: file:line and the key path. */
  EXPECT_PLUGIN("transports:\n  pt:\n    count: 17\n", &o11, MC_EINVAL,
                "t.yaml:3: key 'transports.pt.count': expected an integer "
                "1..16, got '17'");
  EXPECT_PLUGIN("transports:\n  pt:\n    chunk: 64kb\n", &o11, MC_EINVAL,
                "t.yaml:3: key 'transports.pt.chunk': expected a size like 64K "
                "or 1M (K, M, G, T = 1024^n, then B or iB), got '64kb'");
  EXPECT_PLUGIN("transports:\n  pt:\n    chunk: 2M\n", &o11, MC_EINVAL,
                "t.yaml:3: key 'transports.pt.chunk': expected a size from 4K "
                "to 1M, got '2M'");
  EXPECT_PLUGIN("transports:\n  pt:\n    verbose: banana\n", &o11, MC_EINVAL,
                "t.yaml:3: key 'transports.pt.verbose': expected true or false "
                "(or yes/no, on/off, 1/0), got 'banana'");
  EXPECT_PLUGIN("transports:\n  pt:\n    offset: 1.5\n", &o11, MC_EINVAL,
                "t.yaml:3: key 'transports.pt.offset': expected an integer, "
                "got '1.5'");
  EXPECT_PLUGIN("transports:\n  pt:\n\n    bogus: 1\n", &o11, MC_EINVAL,
                "t.yaml:4: key 'transports.pt.bogus': unknown key 'bogus' for "
                "transport pt (known: count, chunk, verbose, offset)");
  /* A 1.0 plugin has no ranges: only the type is checked. */
  EXPECT_PLUGIN("transports:\n  pt: {count: 1000}\n", &o10, 0, "");
  EXPECT_PLUGIN("transports:\n  pt: {count: x}\n", &o10, MC_EINVAL,
                "t.yaml:2: key 'transports.pt.count': expected an integer, "
                "got 'x'");
  /* From the environment: the variable as spelled there. */
  setenv("MC_TRANSPORT_PT_CHUNK", "64kb", 1);
  EXPECT_PLUGIN("transports: [pt]\n", &o11, MC_EINVAL,
                "MC_TRANSPORT_PT_CHUNK: expected a size like 64K or 1M (K, M, "
                "G, T = 1024^n, then B or iB), got '64kb'");
  /* The variable wins over the file, and is the place named. */
  EXPECT_PLUGIN("transports:\n  pt: {chunk: 8K}\n", &o11, MC_EINVAL,
                "MC_TRANSPORT_PT_CHUNK: expected a size like 64K or 1M (K, M, "
                "G, T = 1024^n, then B or iB), got '64kb'");
  clear_env();
  setenv("MC_TRANSPORT_PT_BOGUS", "1", 1);
  EXPECT_PLUGIN("transports: [pt]\n", &o11, MC_EINVAL,
                "MC_TRANSPORT_PT_BOGUS: unknown key 'bogus' for transport pt "
                "(known: count, chunk, verbose, offset)");
  clear_env();
  setenv("MC_TRANSPORT_PT_COUNT", "0", 1);
  EXPECT_PLUGIN("transports: [pt]\n", &o11, MC_EINVAL,
                "MC_TRANSPORT_PT_COUNT: expected an integer 1..16, got '0'");
  clear_env();
  /* A transport without params accepts no key. */
  mc_transport_ops none = ops_with(NULL, 1, 0);
  EXPECT_PLUGIN("transports:\n  pt: {a: 1}\n", &none, MC_EINVAL,
                "t.yaml:2: key 'transports.pt.a': unknown key 'a' for "
                "transport pt (known: none)");
  EXPECT_PLUGIN("transports:\n  pt: {optional: 1}\n", &none, 0, "");
}

static void test_plugin_tables(void) {
  clear_env();
  const char *y = "transports: [pt]\n";
  /* 1.1 entries read with the 1.0 stride would take min/max for
   * pointers: a 1.1 table with params must say its stride. */
  mc_transport_ops o = ops_with(v11_params, 1, 0);
  EXPECT_PLUGIN(y, &o, MC_EABI,
                "plugin 'pt' (/p/mc-transport-pt.so): an ABI 1.1 table with "
                "params must set param_info_size (= sizeof(mc_param_info))");
  o = ops_with(v11_params, 1, 16);
  EXPECT_PLUGIN(y, &o, MC_EABI, NULL);
  static const struct {
    mc_param_info p[3];
    const char *why;
  } bad[] = {
      {{{MC_PARAM_INT, "Count", "1", "", 0, 0}},
       "params[0]: key 'Count' is not [a-z0-9_]+"},
      {{{MC_PARAM_INT, NULL, "1", "", 0, 0}},
       "params[0]: key '(null)' is not [a-z0-9_]+"},
      {{{MC_PARAM_BOOL, "optional", "1", "", 0, 0}},
       "params[0]: key 'optional' is reserved by the core"},
      {{{MC_PARAM_INT, "a", "1", "", 0, 0}, {MC_PARAM_BOOL, "a", "1", "", 0, 0}},
       "params[1]: key 'a' is listed twice"},
      {{{9, "a", "1", "", 0, 0}}, "params[0]: key 'a' has unknown type 9"},
      {{{MC_PARAM_INT, "a", "1", "", 5, 1}},
       "params[0]: key 'a' has the range 5..1"},
      {{{MC_PARAM_SIZE, "a", "1", "", -1, 1}},
       "params[0]: key 'a' has the range -1..1"},
      {{{MC_PARAM_INT, "a", "99", "", 1, 16}},
       "params[0]: default of key 'a': expected an integer 1..16, got '99'"},
      {{{MC_PARAM_SIZE, "a", "64kb", "", 0, 0}},
       "params[0]: default of key 'a': expected a size like 64K"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o = ops_with(bad[i].p, 1, sizeof(mc_param_info));
    char want[MC_CONFIG_ERR_MAX];
    snprintf(want, sizeof want, "plugin 'pt' (/p/mc-transport-pt.so): %s",
             bad[i].why);
    mc_config *cfg = LOAD_OK(y);
    char err[MC_CONFIG_ERR_MAX] = "";
    int rc = cfg ? mc_config_check_plugin(cfg, "pt", "/p/mc-transport-pt.so",
                                          &o, err, sizeof err)
                 : 0;
    if (rc != MC_EABI || strncmp(err, want, strlen(want)) != 0) {
      fprintf(stderr, "%s:%d: table %zu: expected '%s', got %d '%s'\n",
              __FILE__, __LINE__, i, want, rc, err);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
    mc_config_free(cfg);
  }
  /* An array without END within MC_PARAM_MAX entries. */
  mc_param_info *many = calloc(MC_PARAM_MAX + 1, sizeof *many);
  char (*names)[16] = calloc(MC_PARAM_MAX + 1, sizeof *names);
  CHECK(many && names);
  if (many && names) {
    for (size_t i = 0; i <= MC_PARAM_MAX; i++) {
      snprintf(names[i], sizeof names[i], "k%zu", i);
      many[i] = (mc_param_info){MC_PARAM_STRING, names[i], "", "", 0, 0};
    }
    o = ops_with(many, 1, sizeof(mc_param_info));
    EXPECT_PLUGIN(y, &o, MC_EABI,
                  "plugin 'pt' (/p/mc-transport-pt.so): params has no "
                  "MC_PARAM_END entry within 256");
  }
  free(many);
  free(names);
}

int main(int argc, char **argv) {
  mc_check_keep_going(1);
  if (argc < 3) {
    fprintf(stderr, "usage: %s DATA_DIR EXAMPLE_YAML\n", argv[0]);
    return 2;
  }
  data_dir = argv[1];
  test_defaults();
  test_full();
  test_forms();
  test_errors();
  test_limits();
  test_sizes();
  test_env();
  test_add_transport();
  test_scalar_forms();
  test_parsers();
  test_one_schema();
  test_param_stride();
  test_plugin_values();
  test_plugin_tables();
  test_example(argv[2]);
  if (!mc_check_failures())
    printf("config: all tests passed\n");
  return mc_check_exit_status();
}
