/* Configuration errors through the public API: every bad value gets
 * exactly one line naming the place (file:line and key, the variable, the
 * mc_engine_opts member, the plugin path) and the reason, returned by
 * mc_engine_create_ex, kept as mc_last_error() after the plain
 * mc_engine_create, and logged once at error level with no log level set.
 * Also: plugin keys checked by type and range before init, the typed
 * getters of mc_host_api as a plugin sees them (param_plugin.c), a 1.0
 * plugin's params read with the 1.0 stride, and named transports whose
 * init fails (an error unless optional).
 * Usage: test-config-engine TEST_PLUGIN_DIR */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mooncake/engine.h"

static const char *plugin_dir;


/* As in param_plugin.c. */
typedef struct pt_seen {
  int inits;
  int has_typed;
  int rc_count, rc_chunk, rc_verbose, rc_nodefault;
  int rc_label_as_int, rc_nosuch, rc_chunk_as_int, rc_count_as_bool;
  int64_t count, nodefault;
  uint64_t chunk;
  int verbose;
} pt_seen;

static pt_seen *seen(const char *name) {
  char path[4096], sym[64];
  snprintf(path, sizeof path, "%s/mc-transport-%s.so", plugin_dir, name);
  void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (!h)
    return NULL;
  snprintf(sym, sizeof sym, "pt_seen_%s", name);
  pt_seen *s = dlsym(h, sym);
  dlclose(h);
  return s;
}

static char cfg_path[256];

static const char *write_cfg(const char *yaml) {
  snprintf(cfg_path, sizeof cfg_path, "/tmp/mc-test-cfg-engine-%d.yaml",
           (int)getpid());
  FILE *f = fopen(cfg_path, "w");
  if (!f)
    return NULL;
  fputs(yaml, f);
  fclose(f);
  return cfg_path;
}

/* What one creation attempt produced. */
typedef struct attempt {
  int rc;
  char last[2048];   /* mc_last_error() after the call */
  char stderr_[8192]; /* what was written to stderr during the call */
} attempt;

/* Runs mc_engine_create (ex == 0) or mc_engine_create_ex with stderr
 * captured; destroys the engine if one was made. */
static void run(const mc_engine_opts *o, int ex, attempt *a, char *errbuf,
                size_t errlen) {
  memset(a, 0, sizeof *a);
  fflush(stderr);
  int saved = dup(2);
  FILE *tmp = tmpfile();
  if (saved < 0 || !tmp) {
    CHECK_MSG(0, "cannot capture stderr");
    return;
  }
  dup2(fileno(tmp), 2);
  mc_engine *e = NULL;
  a->rc = ex ? mc_engine_create_ex(o, &e, errbuf, errlen)
             : mc_engine_create(o, &e);
  snprintf(a->last, sizeof a->last, "%s", mc_last_error());
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  size_t n = fread(a->stderr_, 1, sizeof a->stderr_ - 1, tmp);
  a->stderr_[n] = '\0';
  fclose(tmp);
  mc_engine_destroy(e);
}

static int count_lines_with(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

/* A failing creation, made both ways: rc, the one line (fragments in
 * order of appearance), the same line from _ex and mc_last_error, and it
 * printed once on stderr. */
static void expect_fail_at(int line, const mc_engine_opts *o, int want_rc,
                           const char *f1, const char *f2, const char *f3) {
  attempt a;
  run(o, 0, &a, NULL, 0);
  const char *frags[] = {f1, f2, f3};
  int ok = a.rc == want_rc && a.last[0] && !strchr(a.last, '\n');
  const char *p = a.last;
  for (int i = 0; ok && i < 3; i++)
    if (frags[i] && !(p = strstr(p, frags[i])))
      ok = 0;
  /* Never "not found" for a bad value. */
  if (want_rc == MC_EINVAL && strstr(a.last, "not found"))
    ok = 0;
  if (!ok)
    printf("FAIL %s:%d: want %s with '%s' '%s' '%s', got %s: '%s'\n",
           __FILE__, line, mc_errname(want_rc), f1, f2 ? f2 : "",
           f3 ? f3 : "", mc_errname(a.rc), a.last);
  if (!ok)
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
  int printed = count_lines_with(a.stderr_, a.last);
  if (a.last[0] && printed != 1) {
    printf("FAIL %s:%d: the reason is on stderr %d times (want once):\n%s",
           __FILE__, line, printed, a.stderr_);
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
  }
  /* _ex: the same line in errbuf, also as mc_last_error. */
  char err[2048] = "";
  attempt b;
  run(o, 1, &b, err, sizeof err);
  CHECK_MSG(b.rc == a.rc && strcmp(err, a.last) == 0 &&
            strcmp(b.last, a.last) == 0,
        "line %d: _ex gave %s '%s' (last '%s'), plain gave '%s'", line,
        mc_errname(b.rc), err, b.last, a.last);
}
#define EXPECT_FAIL(o, rc, f1, f2, f3) expect_fail_at(__LINE__, o, rc, f1, f2, f3)

static mc_engine *create_ok(int line, const mc_engine_opts *o) {
  mc_engine *e = NULL;
  char err[2048] = "";
  int rc = mc_engine_create_ex(o, &e, err, sizeof err);
  if (rc) {
    printf("FAIL %s:%d: create: %s: %s\n", __FILE__, line, mc_errname(rc),
           err);
    mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
  }
  return e;
}
#define CREATE_OK(o) create_ok(__LINE__, o)

static mc_engine_opts opts_file(const char *yaml) {
  mc_engine_opts o = {.struct_size = sizeof o,
                      .config_path = write_cfg(yaml),
                      .plugin_path = plugin_dir};
  return o;
}

static void test_engine_keys(void) {
  mc_engine_opts o = {.struct_size = sizeof o, .plugin_path = plugin_dir};
  /* A broken file: file:line and the key. */
  mc_engine_opts f = opts_file("listen: \"127.0.0.1:0\"\nretry_cuont: 3\n");
  EXPECT_FAIL(&f, MC_EINVAL, cfg_path, ":2: key 'retry_cuont': unknown key",
              NULL);
  f = opts_file("transports: [tcp\nslice_size: 64K\n");
  EXPECT_FAIL(&f, MC_EINVAL, cfg_path, ":2:", "YAML syntax error");
  /* From the file named by the shorthand. */
  write_cfg("\n\nslice_size: 64kb\n");
  mc_engine *e = NULL;
  CHECK_MSG(mc_engine_create_from_file(cfg_path, &e) == MC_EINVAL && !e,
        "from_file accepted 64kb");
  CHECK_MSG(strstr(mc_last_error(), ":3: key 'slice_size': expected a size like "
                                "64K") != NULL,
        "from_file: '%s'", mc_last_error());
  unlink(cfg_path);
  /* A variable: its name, MC_EINVAL. */
  setenv("MC_SLICE_SIZE", "banana", 1);
  EXPECT_FAIL(&o, MC_EINVAL, "MC_SLICE_SIZE: expected a size like 64K",
              "got 'banana'", NULL);
  EXPECT_FAIL(NULL, MC_EINVAL, "MC_SLICE_SIZE: ", NULL, NULL);
  unsetenv("MC_SLICE_SIZE");
  setenv("MC_METADATA", "etdc://127.0.0.1:2379", 1);
  EXPECT_FAIL(&o, MC_EINVAL, "MC_METADATA: unknown scheme 'etdc'", NULL, NULL);
  unsetenv("MC_METADATA");
  /* A transport that is not there: MC_ENOENT, its name and the search
   * path. */
  setenv("MC_TRANSPORTS", "tcpp", 1);
  EXPECT_FAIL(&o, MC_ENOENT, "transport 'tcpp' not found", plugin_dir, NULL);
  /* A bad name: one reason from the variable and the opts member. */
  setenv("MC_TRANSPORTS", "tcp,../../evil", 1);
  EXPECT_FAIL(&o, MC_EINVAL,
              "MC_TRANSPORTS: transport name '../../evil' must match "
              "[a-z0-9_]+",
              NULL, NULL);
  unsetenv("MC_TRANSPORTS");
  mc_engine_opts bad = o;
  bad.transports = "tcp,../../evil";
  EXPECT_FAIL(&bad, MC_EINVAL,
              "mc_engine_opts.transports: transport name '../../evil' must "
              "match [a-z0-9_]+",
              NULL, NULL);
  bad = o;
  bad.listen = "nowhere";
  EXPECT_FAIL(&bad, MC_EINVAL, "mc_engine_opts.listen: expected host:port",
              NULL, NULL);
  /* MC_CONFIG names the variable when the file cannot be read. */
  setenv("MC_CONFIG", "/nonexistent/mc.yaml", 1);
  EXPECT_FAIL(NULL, MC_ENOENT, "MC_CONFIG: /nonexistent/mc.yaml: cannot open",
              NULL, NULL);
  unsetenv("MC_CONFIG");
}

/* A plugin of the build (tcp, shm), or NULL when it was not built. */
static int have_plugin(const char *name) {
  const char *dir = getenv("MC_PLUGIN_PATH");
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/mc-transport-%s.so", dir ? dir : ".", name);
  return dir && stat(path, &st) == 0;
}

static void test_plugin_keys(void) {
  mc_engine_opts o = {.struct_size = sizeof o, .plugin_path = plugin_dir};
  /* Unknown key: the variable as spelled, the known keys. */
  setenv("MC_TRANSPORT_TCP_BOGUS", "1", 1);
  EXPECT_FAIL(&o, MC_EINVAL,
              "MC_TRANSPORT_TCP_BOGUS: unknown key 'bogus' for transport tcp "
              "(known: connections, port,",
              NULL, NULL);
  unsetenv("MC_TRANSPORT_TCP_BOGUS");
  /* Out of range, from the variable and from the file. */
  setenv("MC_TRANSPORT_TCP_CONNECTIONS", "65", 1);
  EXPECT_FAIL(&o, MC_EINVAL,
              "MC_TRANSPORT_TCP_CONNECTIONS: expected an integer 1..64, got "
              "'65'",
              NULL, NULL);
  unsetenv("MC_TRANSPORT_TCP_CONNECTIONS");
  mc_engine_opts f = opts_file("transports:\n  ptyped:\n    count: 17\n");
  EXPECT_FAIL(&f, MC_EINVAL, cfg_path,
              ":3: key 'transports.ptyped.count': expected an integer 1..16, "
              "got '17'",
              NULL);
  f = opts_file("transports:\n  tcp:\n    socket_buffer: 2G\n");
  EXPECT_FAIL(&f, MC_EINVAL,
              ":3: key 'transports.tcp.socket_buffer': expected a size from 0 "
              "to 1G, got '2G'",
              NULL, NULL);
  /* A size the plugin's init would have refused is refused before it, so
   * the engine never starts with the transport silently missing. */
  if (have_plugin("shm")) {
    setenv("MC_TRANSPORTS", "tcp,shm", 1);
    setenv("MC_TRANSPORT_SHM_POOL_SIZE", "64kb", 1);
    EXPECT_FAIL(&o, MC_EINVAL,
                "MC_TRANSPORT_SHM_POOL_SIZE: expected a size like 64K",
                "got '64kb'", NULL);
    unsetenv("MC_TRANSPORT_SHM_POOL_SIZE");
    unsetenv("MC_TRANSPORTS");
  } else {
    printf("note: shm plugin not built; its case runs on ptyped only\n");
  }
  setenv("MC_TRANSPORTS", "ptyped", 1);
  setenv("MC_TRANSPORT_PTYPED_CHUNK", "64kb", 1);
  EXPECT_FAIL(&o, MC_EINVAL, "MC_TRANSPORT_PTYPED_CHUNK: expected a size",
              "got '64kb'", NULL);
  unsetenv("MC_TRANSPORT_PTYPED_CHUNK");
  unsetenv("MC_TRANSPORTS");
}

static void test_typed_getters(void) {
  /* Configured values, each type. */
  mc_engine_opts f = opts_file(
      "transports:\n  ptyped: {count: 9, chunk: 128K, verbose: yes, "
      "nodefault: -3}\n");
  mc_engine *e = CREATE_OK(&f);
  pt_seen *s = seen("ptyped");
  CHECK_MSG(s && s->inits && s->has_typed, "ptyped init not seen");
  if (s) {
    CHECK_MSG(s->rc_count == 0 && s->count == 9, "count %d %lld", s->rc_count,
          (long long)s->count);
    CHECK_MSG(s->rc_chunk == 0 && s->chunk == 128 * 1024, "chunk %d %llu",
          s->rc_chunk, (unsigned long long)s->chunk);
    CHECK_MSG(s->rc_verbose == 0 && s->verbose == 1, "verbose %d %d",
          s->rc_verbose, s->verbose);
    CHECK_MSG(s->rc_nodefault == 0 && s->nodefault == -3, "nodefault %d",
          s->rc_nodefault);
    /* The plugin's own mistakes: another type, an undeclared key. */
    CHECK_MSG(s->rc_label_as_int == MC_EINVAL && s->rc_nosuch == MC_EINVAL &&
              s->rc_chunk_as_int == MC_EINVAL &&
              s->rc_count_as_bool == MC_EINVAL,
          "wrong-type reads: %d %d %d %d", s->rc_label_as_int, s->rc_nosuch,
          s->rc_chunk_as_int, s->rc_count_as_bool);
  }
  mc_engine_destroy(e);
  unlink(cfg_path);
  /* Unset: the defaults; no default: MC_ENOENT.  A variable wins over
   * the file. */
  setenv("MC_TRANSPORT_PTYPED_CHUNK", "1M", 1);
  f = opts_file("transports:\n  ptyped: {chunk: 8K}\n");
  e = CREATE_OK(&f);
  s = seen("ptyped");
  if (s) {
    CHECK_MSG(s->rc_count == 0 && s->count == 4, "default count %lld",
          (long long)s->count);
    CHECK_MSG(s->chunk == 1 << 20, "env chunk %llu", (unsigned long long)s->chunk);
    CHECK_MSG(s->rc_verbose == 0 && s->verbose == 0, "default verbose");
    CHECK_MSG(s->rc_nodefault == MC_ENOENT, "nodefault unset: %d",
          s->rc_nodefault);
  }
  mc_engine_destroy(e);
  unsetenv("MC_TRANSPORT_PTYPED_CHUNK");
  unlink(cfg_path);
}

static void test_v10_stride(void) {
  /* A 1.0 plugin: its entries are 1.0-sized, without ranges; read with
   * the 1.0 stride, every key is found, typed and defaulted right. */
  mc_engine_opts f = opts_file(
      "transports:\n  pv10: {count: 1000, chunk: 8M, verbose: on}\n");
  mc_engine *e = CREATE_OK(&f);
  pt_seen *s = seen("pv10");
  CHECK_MSG(s && s->inits && s->has_typed, "pv10 init not seen");
  if (s) {
    CHECK_MSG(s->rc_count == 0 && s->count == 1000, "count %lld",
          (long long)s->count);
    CHECK_MSG(s->rc_chunk == 0 && s->chunk == 8u << 20, "chunk %llu",
          (unsigned long long)s->chunk);
    CHECK_MSG(s->verbose == 1, "verbose");
    CHECK_MSG(s->rc_nodefault == MC_ENOENT && s->rc_label_as_int == MC_EINVAL,
          "nodefault %d label %d", s->rc_nodefault, s->rc_label_as_int);
  }
  mc_engine_destroy(e);
  f = opts_file("transports:\n  pv10:\n    lable: y\n");
  EXPECT_FAIL(&f, MC_EINVAL,
              ":3: key 'transports.pv10.lable': unknown key 'lable' for "
              "transport pv10 (known: count, chunk, verbose, label, "
              "nodefault, fail_init)",
              NULL, NULL);
  f = opts_file("transports:\n  pv10:\n    chunk: 1x\n");
  EXPECT_FAIL(&f, MC_EINVAL,
              ":3: key 'transports.pv10.chunk': expected a size like 64K",
              NULL, NULL);
  unlink(cfg_path);
}

static void test_init_failure(void) {
  /* Named and cannot start: an error naming it, its path and why. */
  char path[4200];
  snprintf(path, sizeof path, "(%s/mc-transport-ptyped.so)", plugin_dir);
  mc_engine_opts f = opts_file("transports:\n  tcp:\n  ptyped:\n    "
                               "fail_init: true\n");
  EXPECT_FAIL(&f, MC_ENODEV, "transport 'ptyped' ",
              "init failed: no such device",
              "set transports.ptyped.optional: true or "
              "MC_TRANSPORT_PTYPED_OPTIONAL=1");
  attempt a;
  run(&f, 0, &a, NULL, 0);
  CHECK_MSG(strstr(a.last, path) != NULL, "path %s not in '%s'", path, a.last);
  /* The plugin's own line says why, once. */
  CHECK_MSG(count_lines_with(a.stderr_, "no test device") == 1, "stderr:\n%s",
        a.stderr_);
  /* Optional: on without it, reported as refused. */
  f = opts_file("transports:\n  tcp:\n  ptyped:\n    fail_init: true\n"
                "    optional: true\n");
  mc_engine *e = CREATE_OK(&f);
  if (e) {
    mc_plugin_info pi[16];
    uint32_t n = 16;
    int refused = 0;
    CHECK_MSG(mc_engine_plugins(e, pi, &n) == 0, "plugins");
    for (uint32_t i = 0; i < n; i++)
      if (strcmp(pi[i].name, "ptyped") == 0 &&
          pi[i].state == MC_PLUGIN_REFUSED && strstr(pi[i].reason, "init"))
        refused = 1;
    CHECK_MSG(refused, "ptyped not listed as refused");
    mc_rail_info r[8];
    uint32_t nr = 8;
    CHECK_MSG(mc_engine_rails(e, "ptyped", r, &nr) == MC_ENOENT, "ptyped loaded");
    mc_engine_destroy(e);
  }
  /* The same from the variable. */
  setenv("MC_TRANSPORT_PTYPED_OPTIONAL", "1", 1);
  f = opts_file("transports:\n  tcp:\n  ptyped:\n    fail_init: true\n");
  e = CREATE_OK(&f);
  mc_engine_destroy(e);
  unsetenv("MC_TRANSPORT_PTYPED_OPTIONAL");
  /* Optional and missing: skipped as well. */
  f = opts_file("transports:\n  tcp:\n  nosuch: {optional: true}\n");
  e = CREATE_OK(&f);
  mc_engine_destroy(e);
  /* Optional does not excuse a bad value. */
  f = opts_file("transports:\n  tcp:\n  ptyped: {optional: true, count: 0}\n");
  EXPECT_FAIL(&f, MC_EINVAL, ":3: key 'transports.ptyped.count'", NULL, NULL);
  /* auto: every plugin optional. */
  setenv("MC_TRANSPORT_PTYPED_FAIL_INIT", "1", 1);
  f = opts_file("transports: auto\n");
  e = CREATE_OK(&f);
  mc_engine_destroy(e);
  unsetenv("MC_TRANSPORT_PTYPED_FAIL_INIT");
  unlink(cfg_path);
}

static void *other_thread(void *arg) {
  (void)arg;
  /* Per thread: a failure elsewhere is not this thread's. */
  return (void *)(uintptr_t)(mc_last_error()[0] == '\0');
}

static void test_last_error(void) {
  mc_engine_opts o = {.struct_size = sizeof o, .plugin_path = plugin_dir,
                      .listen = "bad"};
  mc_engine *e = NULL;
  CHECK_MSG(mc_engine_create(&o, &e) == MC_EINVAL, "bad listen accepted");
  char first[1024];
  snprintf(first, sizeof first, "%s", mc_last_error());
  CHECK_MSG(strstr(first, "mc_engine_opts.listen") != NULL, "'%s'", first);
  pthread_t th;
  void *clean = NULL;
  CHECK_MSG(pthread_create(&th, NULL, other_thread, NULL) == 0, "thread");
  pthread_join(th, &clean);
  CHECK_MSG(clean == (void *)1, "another thread sees this thread's error");
  /* A success leaves it as it was (as errno). */
  o.listen = NULL;
  e = CREATE_OK(&o);
  CHECK_MSG(strcmp(mc_last_error(), first) == 0, "changed by a success: '%s'",
        mc_last_error());
  mc_engine_destroy(e);
  CHECK_MSG(mc_engine_create(&o, NULL) == MC_EINVAL &&
            strstr(mc_last_error(), "out is NULL"),
        "NULL out: '%s'", mc_last_error());
}

int main(int argc, char **argv) {
  mc_check_keep_going(1);
  if (argc < 2) {
    fprintf(stderr, "usage: %s TEST_PLUGIN_DIR\n", argv[0]);
    return 2;
  }
  /* The engine names plugins by their real path. */
  static char dir[4096];
  if (!realpath(argv[1], dir)) {
    perror(argv[1]);
    return 2;
  }
  plugin_dir = dir;
  /* No log level configured: a config error must still be printed. */
  unsetenv("MC_LOG_LEVEL");
  unsetenv("MC_CONFIG");
  unsetenv("MC_TRANSPORTS");
  CHECK_MSG(mc_last_error() && mc_last_error()[0] == '\0', "not empty at start");
  test_engine_keys();
  test_plugin_keys();
  test_typed_getters();
  test_v10_stride();
  test_init_failure();
  test_last_error();
  if (!mc_check_failures())
    printf("config-engine: all checks passed\n");
  return mc_check_exit_status();
}
