/* Loader tests: refusals with reasons, search order and shadowing, explicit
 * .so entries, the not-found message, the report, load-unload-load.
 *
 * argv[1]: the build directory of tests/plugins, which holds the fixture
 * plugins (one defect each), mc-transport-garbage.so and a valid
 * mc-transport-oot.so.  argv[2]: the in-tree tcp plugin (checked if built).  Cases that need particular layouts copy single files
 * into temporary directories, removed at exit. */
#include "loader.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_host.h"
#include "testutil.h"

static const char *plugdir;
static char tmp[PATH_MAX];
static const mc_logger info_log = {MC_LOG_INFO};

static const char *plugin_file(char *buf, size_t len, const char *name) {
  char base[128];
  snprintf(base, sizeof base, "mc-transport-%s.so", name);
  return tu_join(buf, len, plugdir, base);
}

/* Copies plugin `name` from plugdir into tmp/sub/<as> (sub created). */
static void stage(const char *name, const char *sub, const char *as) {
  char src[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX + 64];
  plugin_file(src, sizeof src, name);
  tu_join(dir, sizeof dir, tmp, sub);
  mkdir(dir, 0755);
  tu_join(dst, sizeof dst, dir, as);
  if (tu_copy(src, dst) != 0) {
    fprintf(stderr, "%s:%d: cannot copy %s to %s\n", __FILE__, __LINE__, src, dst);
    exit(1);
  }
}

static mc_loader *mk(const char *const *entries, size_t n,
                     const char *builtin) {
  mc_loader *ld = NULL;
  CHECK_RC(mc_loader_create(&info_log, entries, n, builtin, &ld), 0);
  if (!ld)
    exit(1);
  return ld;
}

static const mc_plugin_info *find_info(const mc_plugin_info *r, uint32_t n,
                                       const char *path_suffix) {
  for (uint32_t i = 0; i < n; i++) {
    size_t lp = strlen(r[i].path), ls = strlen(path_suffix);
    if (lp >= ls && strcmp(r[i].path + lp - ls, path_suffix) == 0)
      return &r[i];
  }
  return NULL;
}

/* One refused fixture: code, message naming plugin, path and cause, a warn
 * line logged exactly once even when asked twice. */
static void expect_refused(const char *name, int want_rc, const char *cause) {
  const char *e[] = {plugdir};
  mc_loader *ld = mk(e, 1, NULL);
  char err[1024], path[PATH_MAX], real[PATH_MAX];
  mc_plugin *p = NULL;
  plugin_file(path, sizeof path, name);
  CHECK(realpath(path, real) != NULL);

  CHECK(tu_capture_begin() == 0);
  int rc = mc_loader_load(ld, name, &p, err, sizeof err);
  char err2[1024];
  int rc2 = mc_loader_load(ld, name, &p, err2, sizeof err2);
  char *log = tu_capture_end();

  CHECK_RC(rc, want_rc);
  CHECK_RC(rc2, want_rc);
  CHECK(p == NULL);
  CHECK_HAS(err, real);
  CHECK_HAS(err, cause);
  char quoted[80];
  snprintf(quoted, sizeof quoted, "'%s'", name);
  CHECK_HAS(err, quoted);
  CHECK_STR(err, err2);
  CHECK(log && tu_count(log, "refused") == 1);
  CHECK_HAS(log, "warn");
  CHECK_HAS(log, cause);
  CHECK_HAS(log, real);
  free(log);

  mc_plugin_info r[16];
  uint32_t n = 16;
  CHECK_RC(mc_loader_report(ld, r, &n), 0);
  const mc_plugin_info *i = find_info(r, n, path + strlen(plugdir));
  CHECK(i != NULL);
  if (i) {
    CHECK(i->state == MC_PLUGIN_REFUSED);
    CHECK_HAS(i->reason, cause);
    CHECK_STR(i->path, real);
  }
  mc_loader_destroy(ld);
}

static void test_refusals(void) {
  char small[128];
  snprintf(small, sizeof small, "struct_size 40 < minimum %zu",
           (size_t)MC_TRANSPORT_OPS_V1_MIN_SIZE);
  expect_refused("badabi", MC_EABI, "ABI major 99, this core supports 1");
  expect_refused("nosym", MC_EINVAL,
                 "entry symbol mc_transport_plugin_v1 not found");
  expect_refused("small", MC_EABI, small);
  expect_refused("misname", MC_EABI,
                 "name 'other' does not match file name 'misname'");
  expect_refused("nosubmit", MC_EABI, "mandatory member submit is NULL");
  expect_refused("garbage", MC_EINVAL, "dlopen failed: ");
}

/* failinit loads (its table is fine), its init fails with ENODEV after a
 * log line; the engine then marks it refused, which the report shows. */
static void test_failinit(void) {
  const char *e[] = {plugdir};
  mc_loader *ld = mk(e, 1, NULL);
  mc_plugin *p = NULL;
  char err[512];
  CHECK_RC(mc_loader_load(ld, "failinit", &p, err, sizeof err), 0);
  CHECK(p != NULL);
  if (!p) {
    mc_loader_destroy(ld);
    return;
  }
  mc_fake_host h;
  mc_fake_host_init(&h, "failinit", &p->ops);
  mc_init_args args = {sizeof args, "127.0.0.1:1", "127.0.0.1", "host"};
  void *ctx = NULL;
  CHECK_RC(p->ops.init(&h.api, &args, &ctx), MC_ENODEV);
  CHECK_HAS(h.log, "no test device");
  mc_fake_host_fini(&h);
  mc_loader_mark_refused(ld, "failinit", "init failed: no test device");
  mc_loader_unload(p);

  mc_plugin_info r[16];
  uint32_t n = 16;
  CHECK_RC(mc_loader_report(ld, r, &n), 0);
  const mc_plugin_info *i = find_info(r, n, "/mc-transport-failinit.so");
  CHECK(i && i->state == MC_PLUGIN_REFUSED);
  if (i) {
    CHECK_HAS(i->reason, "init failed: no test device");
    CHECK_STR(i->version, "0.0.1-test");
  }
  mc_loader_destroy(ld);
}

/* Names in a directory come back sorted, whatever readdir's order. */
static void test_names_sorted(void) {
  const char *e[] = {plugdir};
  mc_loader *ld = mk(e, 1, NULL);
  const char *names[32];
  size_t n = 2;
  CHECK_RC(mc_loader_names(ld, names, &n), MC_ENOSPC);
  CHECK(n >= 8);
  n = 32;
  CHECK_RC(mc_loader_names(ld, names, &n), 0);
  const char *want[] = {"badabi", "failinit", "garbage", "misname",
                        "nosubmit", "nosym",    "oot",     "small"};
  CHECK_EQ_INT(n, 8);
  for (size_t i = 0; i < 8 && i < n; i++)
    CHECK_STR(names[i], want[i]);
  mc_loader_destroy(ld);
}

/* Two directories with a copy each: the first entry wins, the other is
 * shadowed (logged at info with both paths, shown in the report). */
static void test_shadowing(void) {
  stage("oot", "a", "mc-transport-oot.so");
  stage("oot", "b", "mc-transport-oot.so");
  char a[PATH_MAX], b[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
  tu_join(a, sizeof a, tmp, "a");
  tu_join(b, sizeof b, tmp, "b");
  char fa[PATH_MAX + 32], fb[PATH_MAX + 32];
  CHECK(realpath(tu_join(fa, sizeof fa, a, "mc-transport-oot.so"), ra));
  CHECK(realpath(tu_join(fb, sizeof fb, b, "mc-transport-oot.so"), rb));

  for (int order = 0; order < 2; order++) {
    const char *e[] = {order ? b : a, order ? a : b};
    const char *win = order ? rb : ra, *lose = order ? ra : rb;
    mc_loader *ld = mk(e, 2, NULL);
    CHECK(tu_capture_begin() == 0);
    CHECK_RC(mc_loader_scan(ld), 0);
    char *log = tu_capture_end();
    CHECK(log && tu_count(log, "shadowed by") == 1);
    CHECK_HAS(log, win);
    CHECK_HAS(log, lose);
    free(log);

    mc_plugin *p = NULL;
    char err[512];
    CHECK(tu_capture_begin() == 0);
    CHECK_RC(mc_loader_load(ld, "oot", &p, err, sizeof err), 0);
    log = tu_capture_end();
    CHECK(p && strcmp(p->path, win) == 0);
    /* info line: real path, version, ABI major.minor */
    CHECK_HAS(log, win);
    CHECK_HAS(log, "1.0.0");
    char abi[32]; /* the oot plugin is built against this header */
    snprintf(abi, sizeof abi, "ABI %d.%d", MC_TRANSPORT_ABI_MAJOR,
             MC_TRANSPORT_ABI_MINOR);
    CHECK_HAS(log, abi);
    free(log);
    if (p) {
      CHECK(p->found_major == 1 && p->found_size == sizeof(mc_transport_ops));
      CHECK_STR(p->ops.name, "oot");
    }
    mc_loader_mark_loaded(ld, "oot", 1);

    mc_plugin_info r[4];
    uint32_t n = 1;
    CHECK_RC(mc_loader_report(ld, r, &n), MC_ENOSPC);
    CHECK_EQ_INT(n, 2);
    n = 4;
    CHECK_RC(mc_loader_report(ld, r, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(r[0].state == MC_PLUGIN_LOADED && strcmp(r[0].path, win) == 0);
    CHECK(r[0].nrails == 1 && r[0].abi_major == 1);
    CHECK_STR(r[0].version, "1.0.0");
    CHECK(r[0].caps & MC_CAP_OWN_THREADS);
    CHECK(r[0].reason[0] == '\0');
    CHECK(r[1].state == MC_PLUGIN_SHADOWED && strcmp(r[1].path, lose) == 0);
    CHECK_HAS(r[1].reason, win);
    mc_loader_unload(p);
    mc_loader_destroy(ld);
  }

  /* The same directory twice is one candidate, not a shadow of itself. */
  const char *twice[] = {a, a};
  mc_loader *ld = mk(twice, 2, NULL);
  mc_plugin_info r[4];
  uint32_t n = 4;
  CHECK_RC(mc_loader_report(ld, r, &n), 0);
  CHECK(n == 1 && r[0].state == MC_PLUGIN_AVAILABLE);
  mc_loader_destroy(ld);

  /* First file wins even when it is broken: no silent fallback to a copy
   * the user did not ask for. */
  stage("badabi", "c", "mc-transport-oot.so");
  char c[PATH_MAX];
  tu_join(c, sizeof c, tmp, "c");
  const char *bad_first[] = {c, a};
  ld = mk(bad_first, 2, NULL);
  mc_plugin *p = NULL;
  char err[512];
  CHECK_RC(mc_loader_load(ld, "oot", &p, err, sizeof err), MC_EABI);
  CHECK_HAS(err, "/c/mc-transport-oot.so");
  mc_loader_destroy(ld);
}

/* Explicit .so entries: used by file name, win over later directories; a
 * file not named mc-transport-<name>.so is refused with that reason. */
static void test_explicit(void) {
  stage("oot", "x", "mc-transport-oot.so");
  stage("oot", "x", "liboot.so");
  char f[PATH_MAX + 32], g[PATH_MAX + 32], x[PATH_MAX];
  tu_join(x, sizeof x, tmp, "x");
  tu_join(f, sizeof f, x, "mc-transport-oot.so");
  tu_join(g, sizeof g, x, "liboot.so");
  const char *e[] = {"/nonexistent/mooncake-plugins", f, g, plugdir};
  mc_loader *ld = mk(e, 4, NULL);
  mc_plugin *p = NULL;
  char err[512];
  CHECK_RC(mc_loader_load(ld, "oot", &p, err, sizeof err), 0);
  char rf[PATH_MAX];
  CHECK(realpath(f, rf) != NULL);
  CHECK(p && strcmp(p->path, rf) == 0);
  mc_loader_unload(p);

  mc_plugin_info r[16];
  uint32_t n = 16;
  CHECK_RC(mc_loader_report(ld, r, &n), 0);
  CHECK_EQ_INT(n, 10); /* oot, liboot, 8 in plugdir */
  CHECK(r[0].state == MC_PLUGIN_AVAILABLE && strcmp(r[0].name, "oot") == 0);
  CHECK(r[1].state == MC_PLUGIN_REFUSED);
  CHECK_HAS(r[1].reason, "'liboot.so' is not mc-transport-<name>.so");
  const mc_plugin_info *sh = find_info(r, n, "tests/plugins/mc-transport-oot.so");
  CHECK(sh && sh->state == MC_PLUGIN_SHADOWED);
  mc_loader_destroy(ld);
}

/* A missing transport: ENOENT naming every searched entry in order. */
static void test_not_found(void) {
  char a[PATH_MAX];
  tu_join(a, sizeof a, tmp, "a");
  const char *e[] = {"/nonexistent/one", a, "", "/nonexistent/two.so"};
  mc_loader *ld = mk(e, 4, "/nonexistent/builtin");
  mc_plugin *p = NULL;
  char err[PATH_MAX + 256], want[PATH_MAX + 256];
  CHECK_RC(mc_loader_load(ld, "rdma", &p, err, sizeof err), MC_ENOENT);
  snprintf(want, sizeof want,
           "transport 'rdma' not found; searched: /nonexistent/one:%s:"
           "/nonexistent/two.so:/nonexistent/builtin", a);
  CHECK_STR(err, want);
  if (strcmp(err, want) != 0)
    tu_note("  got:  %s\n  want: %s", err, want);

  char sp[16];
  CHECK_RC(mc_loader_search_path(ld, sp, sizeof sp), MC_ENOSPC);
  char full[PATH_MAX + 256];
  CHECK_RC(mc_loader_search_path(ld, full, sizeof full), 0);
  CHECK(strcmp(full, want + strlen("transport 'rdma' not found; searched: ")) ==
        0);
  mc_loader_destroy(ld);

  /* No entries at all, builtin omitted: still a clean ENOENT. */
  ld = mk(NULL, 0, NULL);
  CHECK_RC(mc_loader_load(ld, "tcp", &p, err, sizeof err), MC_ENOENT);
  CHECK_STR(err, "transport 'tcp' not found; searched: ");
  uint32_t n = 0;
  CHECK_RC(mc_loader_report(ld, NULL, &n), 0);
  CHECK(n == 0);
  mc_loader_destroy(ld);
}

/* load -> init/transfer/fini -> unload, twice: the plugin is fully usable
 * after a reload, and its context shares nothing with the first one. */
static void use_plugin_once(mc_plugin *p) {
  mc_fake_host h;
  mc_fake_host_init(&h, "reload", &p->ops);
  mc_init_args args = {sizeof args, "self", "127.0.0.1", "host-1"};
  void *ctx = NULL;
  CHECK_RC(p->ops.init(&h.api, &args, &ctx), 0);
  if (!ctx) {
    mc_fake_host_fini(&h);
    return;
  }
  mc_rail_info rails[2];
  uint32_t nr = 2;
  CHECK_RC(p->ops.query_rails(ctx, rails, &nr), 0);
  CHECK_EQ_INT(nr, 1);

  char src[256], dst[256];
  memset(src, 0x5a, sizeof src);
  memset(dst, 0, sizeof dst);
  mc_mem_desc ms = {(uint64_t)(uintptr_t)src, sizeof src, MC_MEM_CPU, 0,
                    "cpu:0"};
  mc_mem_desc md = {(uint64_t)(uintptr_t)dst, sizeof dst, MC_MEM_CPU, 0,
                    "cpu:0"};
  void *mems = NULL, *memd = NULL, *ep = NULL, *rmem = NULL;
  uint8_t rkey[MC_RKEY_MAX], desc[MC_DESC_MAX];
  size_t rkl = sizeof rkey, dl = sizeof desc, rk2 = sizeof rkey;
  CHECK_RC(p->ops.register_mem(ctx, &ms, &mems, rkey, &rk2), 0);
  CHECK_RC(p->ops.register_mem(ctx, &md, &memd, rkey, &rkl), 0);
  CHECK_RC(p->ops.local_desc(ctx, desc, &dl), 0);
  CHECK_RC(p->ops.connect(ctx, "self", desc, dl, &ep), 0);
  CHECK_RC(p->ops.import_mem(ctx, ep, md.addr, md.len, rkey, rkl, &rmem), 0);
  mc_slice s = {42, MC_OP_WRITE, 0, mems, ms.addr, rmem, md.addr, 128};
  uint32_t acc = 0;
  CHECK_RC(p->ops.submit(ctx, ep, &s, 1, &acc), 0);
  CHECK(acc == 1 && h.completions == 1 && h.last_status == 0);
  CHECK(h.last_token == 42 && h.last_bytes == 128);
  CHECK(dst[0] == 0x5a && dst[127] == 0x5a && dst[128] == 0);
  CHECK_RC(p->ops.release_mem(ctx, rmem), 0);
  CHECK_RC(p->ops.disconnect(ctx, ep), 0);
  CHECK_RC(p->ops.deregister_mem(ctx, mems), 0);
  /* memd left registered on purpose: fini releases it. */
  CHECK_RC(p->ops.fini(ctx), 0);
  mc_fake_host_fini(&h);
}

static void test_reload(void) {
  const char *e[] = {plugdir};
  mc_loader *ld = mk(e, 1, NULL);
  for (int round = 0; round < 2; round++) {
    mc_plugin *p = NULL;
    char err[512];
    CHECK_RC(mc_loader_load(ld, "oot", &p, err, sizeof err), 0);
    if (!p)
      break;
    use_plugin_once(p);
    mc_loader_unload(p);
  }
  mc_loader_unload(NULL);
  mc_loader_destroy(ld);
  mc_loader_destroy(NULL);
}

/* The in-tree tcp plugin, when this build has it, passes the same checks. */
static void test_real_plugin(const char *path) {
  if (access(path, R_OK) != 0) {
    printf("loader: %s not built, skipping the tcp check\n", path);
    return;
  }
  const char *e[] = {path};
  mc_loader *ld = mk(e, 1, NULL);
  mc_plugin *p = NULL;
  char err[1024] = "";
  CHECK_RC(mc_loader_load(ld, "tcp", &p, err, sizeof err), 0);
  if (p) {
    CHECK(strcmp(p->ops.name, "tcp") == 0 && p->ops.version != NULL);
    CHECK(p->found_major == MC_TRANSPORT_ABI_MAJOR);
    CHECK(p->found_size >= MC_TRANSPORT_OPS_V1_MIN_SIZE);
    mc_loader_unload(p);
  } else {
    tu_note("  %s", err);
  }
  mc_loader_destroy(ld);
}

static void test_bad_args(void) {
  mc_loader *ld = NULL;
  CHECK_RC(mc_loader_create(NULL, NULL, 1, NULL, &ld), MC_EINVAL);
  CHECK_RC(mc_loader_create(NULL, NULL, 0, NULL, NULL), MC_EINVAL);
  ld = mk(NULL, 0, NULL);
  mc_plugin *p = NULL;
  CHECK_RC(mc_loader_load(ld, NULL, &p, NULL, 0), MC_EINVAL);
  CHECK_RC(mc_loader_load(ld, "x", &p, NULL, 0), MC_ENOENT);
  size_t n = 1;
  CHECK_RC(mc_loader_names(ld, NULL, &n), MC_EINVAL);
  mc_loader_mark_loaded(ld, "x", 1); /* unknown names are ignored */
  mc_loader_mark_refused(ld, "x", "why");
  mc_loader_destroy(ld);
}

/* Transport names are [a-z0-9_]+: a file mc-transport-<bad>.so found in a
 * directory is refused with the reason, without being opened, and does not
 * hide the good plugins beside it. */
static void test_bad_names(void) {
  char why[256];
  CHECK(mc_loader_check_name("tcp", why, sizeof why) == 0);
  CHECK(mc_loader_check_name("nv_link2", why, sizeof why) == 0);
  const char *bad[] = {"Tcp", "my-plugin", "a.b", "", "x y"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    why[0] = '\0';
    CHECK(mc_loader_check_name(bad[i], why, sizeof why) != 0);
    CHECK(why[0] != '\0');
  }
  char longname[80];
  memset(longname, 'a', 70);
  longname[70] = '\0';
  CHECK(mc_loader_check_name(longname, why, sizeof why) != 0);
  CHECK_HAS(why, "longer than 63");

  /* A valid plugin under a bad name (so only the name can be at fault). */
  stage("oot", "badname", "mc-transport-Bad-Name.so");
  stage("oot", "badname", "mc-transport-oot.so");
  char dir[PATH_MAX];
  tu_join(dir, sizeof dir, tmp, "badname");
  const char *e[] = {dir};
  mc_loader *ld = mk(e, 1, NULL);
  CHECK(tu_capture_begin() == 0);
  const char *names[8];
  size_t n = 8;
  CHECK_RC(mc_loader_names(ld, names, &n), 0);
  char *log = tu_capture_end();
  CHECK(n == 1 && strcmp(names[0], "oot") == 0);
  CHECK(log && tu_count(log, "refused") == 1);
  CHECK_HAS(log, "mc-transport-Bad-Name.so");
  CHECK_HAS(log, "[a-z0-9_]+");
  free(log);
  mc_plugin *p = NULL;
  char err[1024];
  CHECK_RC(mc_loader_load(ld, "Bad-Name", &p, err, sizeof err), MC_ENOENT);
  mc_plugin_info r[4];
  uint32_t nr = 4;
  CHECK_RC(mc_loader_report(ld, r, &nr), 0);
  const mc_plugin_info *i = find_info(r, nr, "/mc-transport-Bad-Name.so");
  CHECK(i != NULL);
  if (i) {
    CHECK(i->state == MC_PLUGIN_REFUSED);
    CHECK_STR(i->name, "Bad-Name");
    CHECK_HAS(i->reason, "transport name 'Bad-Name' is not [a-z0-9_]+");
  }
  mc_loader_destroy(ld);
}

/* mc_loader_open: $MC_PLUGIN_PATH entries, then plugin_path, then the
 * built-in dirs; a missing entry of the first two is warned once, naming
 * where it came from. */
static void test_open_origins(void) {
  char env[2 * PATH_MAX + 64];
  snprintf(env, sizeof env, "%s/no-such-env-dir::%s", tmp, plugdir);
  char cfgmiss[PATH_MAX + 32];
  snprintf(cfgmiss, sizeof cfgmiss, "%s/no-such-cfg-dir", tmp);
  const char *cfg[] = {cfgmiss};
  mc_loader *ld = NULL;
  CHECK_RC(mc_loader_open(&info_log, env, cfg, 1, &ld), 0);
  if (!ld)
    return;
  char sp[8192];
  CHECK_RC(mc_loader_search_path(ld, sp, sizeof sp), 0);
  char want[3 * PATH_MAX];
  snprintf(want, sizeof want, "%s/no-such-env-dir:%s:%s", tmp, plugdir,
           cfgmiss);
  CHECK(strncmp(sp, want, strlen(want)) == 0);
  CHECK(tu_capture_begin() == 0);
  const char *names[32];
  size_t n = 32;
  CHECK_RC(mc_loader_names(ld, names, &n), 0);
  n = 32;
  CHECK_RC(mc_loader_names(ld, names, &n), 0); /* scanned once */
  mc_plugin_info r[32];
  uint32_t nr = 32;
  CHECK_RC(mc_loader_report(ld, r, &nr), 0);
  char *log = tu_capture_end();
  CHECK(log && tu_count(log, "no-such-env-dir (from MC_PLUGIN_PATH)") == 1);
  CHECK(log && tu_count(log, "no-such-cfg-dir (from plugin_path)") == 1);
  CHECK(log && tu_count(log, "plugin search entry") == 2);
  CHECK_HAS(log, "warn");
  free(log);
  mc_loader_destroy(ld);
  /* This test links the core statically: it is not libmooncake.so in its
   * build tree, so the build tree's plugin folder is not searched. */
  CHECK(mc_loader_build_plugin_dir() == NULL);
  CHECK_RC(mc_loader_open(NULL, NULL, NULL, 1, &ld), MC_EINVAL);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <tests/plugins build dir> <mc-transport-tcp.so>\n",
            argv[0]);
    return 2;
  }
  plugdir = argv[1];
  /* Failures are counted: every case runs, then the count decides. */
  mc_check_keep_going(1);
  if (tu_mkdtemp(tmp, sizeof tmp, "loader") != 0) {
    perror("mkdtemp");
    return 1;
  }
  test_refusals();
  test_failinit();
  test_names_sorted();
  test_shadowing();
  test_explicit();
  test_not_found();
  test_reload();
  test_real_plugin(argv[2]);
  test_bad_args();
  test_bad_names();
  test_open_origins();
  tu_rmtree(tmp);
  if (mc_check_exit_status())
    return 1;
  printf("loader: all checks passed\n");
  return 0;
}
