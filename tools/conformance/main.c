/* mc-transport-conformance - checks a transport plugin against transport.h.
 *
 *   mc-transport-conformance [-v] <path/to/mc-transport-NAME.so>
 *   mc-transport-conformance --help
 *
 * Uses only dlopen and mooncake/transport.h, with its own mc_host_api (ABI
 * 1.2: typed getters, and ctrl_call as a loopback to the plugin's own
 * ctrl_handle).  It checks the ABI header, names and the
 * params table, fuzzes connect/import_mem with hostile blobs, runs loopback
 * transfers between two contexts of the plugin in this process (data
 * verified byte for byte), acts as a hostile initiator against the other
 * context (forged lengths, forged keys, revoked and stale keys: the target
 * must refuse every access outside its live registrations, whatever the
 * initiator claims), sends its ctrl_handle (ABI 1.2) random requests of
 * every size, checks back-pressure, notify delivery, cancel, fini
 * with transfers in flight (exactly one completion per accepted slice),
 * what init..fini cycles leave behind (heap bytes, mappings, fds, threads)
 * and load/unload/reload.  One line per check: PASS, FAIL or SKIP with a
 * reason.
 *
 * A plugin whose remote kind is MC_MEM_FILE and not host memory (nvmeof)
 * runs in file mode: every target buffer is a mapped temporary file in
 * $MC_CONFORMANCE_FILE_DIR (default /dev/shm) registered as a file range.
 *
 * Exit status: 0 when every check passed, 1 on any FAIL, 2 on a usage
 * error, 77 when the plugin cannot run on this host (init failed with
 * MC_ENODEV or MC_ENOTSUP) and every static check passed.
 *
 * Per-transport YAML keys can be given as MC_CONFORMANCE_PARAMS="k=v;k=v". */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

static const char usage_text[] =
    "usage: %s [-v] path/to/mc-transport-NAME.so\n"
    "       %s --help\n"
    "\n"
    "Checks a transport plugin against mooncake/transport.h (ABI %d.%d), loading it\n"
    "with dlopen as the core does and driving two of its contexts in this process.\n"
    "\n"
    "  -v, --verbose  show the plugin's log lines (warnings and below)\n"
    "  -h, --help     this text\n"
    "\n"
    "Checks (one line each: PASS, FAIL or SKIP with the reason):\n"
    "  static   abi.entry abi.header abi.name abi.members abi.alloc_mem abi.params\n"
    "  runtime  init rails.query desc.local register.rkey_size fuzz.desc fuzz.rkey\n"
    "           connect loopback.data access.range access.wrong_key\n"
    "           hostile.forged_len hostile.forged_key hostile.revoked hostile.stale_key\n"
    "           ctrl.hostile ctrl.concurrent ctrl.after\n"
    "           submit.backpressure notify notify.size cancel fini.inflight\n"
    "           peer.gone peer.gone.after fini completions\n"
    "           lifecycle.leaks lifecycle.fini_releases reload\n"
    "\n"
    "Exit status: 0 all passed; 1 a check failed; 2 usage error; 77 the plugin\n"
    "cannot run on this host (init returned MC_ENODEV or MC_ENOTSUP: \"not runnable\n"
    "on this host\") and every static check passed -- a skip, not a failure.\n"
    "\n"
    "Environment: MC_CONFORMANCE_PARAMS=\"key=value;key=value\" sets the plugin's\n"
    "keys (as transports.<name>.<key> in the YAML would).\n"
    "MC_CONFORMANCE_SKIP=\"check,check:reason;check:reason\" reports those checks SKIP\n"
    "with the\n"
    "reason instead of running them (hostile.revoked, hostile.stale_key, peer.gone,\n"
    "lifecycle.leaks and lifecycle.fini_releases so far),\n"
    "for a wrapper that first reproduced a provider bug they would trip over.\n";

static int result(int code) {
  printf("RESULT %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
  fflush(stdout);
  return code;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf(usage_text, argv[0], argv[0], MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR);
      return 0;
    } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
      verbose = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
      fprintf(stderr, usage_text, argv[0], argv[0], MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR);
      return 2;
    } else if (path) {
      fprintf(stderr, "%s: one plugin at a time ('%s' and '%s')\n", argv[0], path, argv[i]);
      return 2;
    } else {
      path = argv[i];
    }
  }
  if (!path) {
    fprintf(stderr, usage_text, argv[0], argv[0], MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR);
    return 2;
  }
  alarm(600); /* a hung plugin fails the run instead of blocking CI */
  params_load();
  pthread_mutex_init(&T.lock, NULL);
  pthread_cond_init(&T.cond, NULL);
  T.c = calloc(MAX_TOKENS, sizeof(completion));

  int threads0 = count_dir("/proc/self/task");
  plugin p;
  if (plugin_open(path, &p, 0))
    return result(1);
  const mc_transport_ops *again = NULL;
  {
    mc_transport_entry_v1_fn entry;
    *(void **)&entry = dlsym(p.dl, MC_TRANSPORT_ENTRY_V1);
    again = entry();
  }
  if (again != p.raw || count_dir("/proc/self/task") != threads0)
    fail("abi.entry", "entry point not idempotent or started threads");
  else
    pass("abi.entry", "%s is cheap and idempotent", MC_TRANSPORT_ENTRY_V1);
  if (check_abi(path, &p))
    return result(1);
  file_mode = (p.ops->local_mem_kinds & MC_MEM_CPU) && !(p.ops->remote_mem_kinds & MC_MEM_CPU) &&
              (p.ops->remote_mem_kinds & MC_MEM_FILE);
  if (!(p.ops->local_mem_kinds & MC_MEM_CPU) ||
      !(p.ops->remote_mem_kinds & (MC_MEM_CPU | MC_MEM_FILE))) {
    skip("runtime", "plugin does not move CPU memory to CPU memory or files");
    dlclose(p.dl);
    return result(0);
  }

  tctx a, b;
  int rc = ctx_init(&p, &a, "conf-a:1");
  if (rc == MC_ENODEV || rc == MC_ENOTSUP) {
    /* The host keeps the plugin's last warning or error: its reason. */
    const char *why = a.host.last_warn;
    skip("runtime", "not runnable on this host: init returned %s (%s)%s%s", mc_errname(rc),
         mc_strerror(rc), why[0] ? ": " : "; the plugin logged no reason", why);
    dlclose(p.dl);
    return result(n_fail ? 1 : 77);
  }
  if (rc || (rc = ctx_init(&p, &b, "conf-b:2"))) {
    fail("init", "init/local_desc failed: %s", mc_errname(rc));
    ctx_fini(&a);
    dlclose(p.dl);
    return result(1);
  }
  pass("init", "two contexts in one process%s%s", p.ops->progress ? ", progress() driven by a thread" : "",
       file_mode ? "; target buffers are files (MC_MEM_FILE)" : "");

  pair x = {.p = &p, .a = &a, .b = &b};
  check_rails(&p, &a, &x.nrails);
  check_desc(&p, &a);
  /* Buffers with a guard byte before and after. */
  uint8_t *araw = target_alloc(BUF_SIZE + 64), *braw = malloc(BUF_SIZE + 64);
  if (!araw || !braw) {
    fail("register", "cannot allocate the buffers%s", file_mode ? " (a file mapping in "
         "$MC_CONFORMANCE_FILE_DIR, default /dev/shm)" : "");
    target_free(araw);
    free(braw);
    ctx_fini(&b);
    ctx_fini(&a);
    dlclose(p.dl);
    return result(1);
  }
  x.abuf = araw + 32;
  x.bbuf = braw + 32;
  memset(araw, 0, BUF_SIZE + 64);
  memset(braw, 0, BUF_SIZE + 64);
  size_t need = 0;
  mc_mem_desc probe = {(uint64_t)(uintptr_t)x.abuf, BUF_SIZE, MC_MEM_CPU, -1, "cpu:0"};
  void *pm = NULL;
  rc = p.ops->register_mem(a.ctx, &probe, &pm, NULL, &need);
  if (rc != MC_ENOSPC || need == 0 || need > MC_RKEY_MAX) {
    fail("register.rkey_size", "size query gave %s, %zu bytes", mc_errname(rc), need);
    if (rc == 0)
      p.ops->deregister_mem(a.ctx, pm);
  } else {
    pass("register.rkey_size", "%zu-byte remote key", need);
  }
  if ((rc = do_register(&p, &a, x.abuf, BUF_SIZE, &x.ra)) ||
      (rc = do_register(&p, &b, x.bbuf, BUF_SIZE, &x.rb))) {
    fail("register", "register_mem failed: %s", mc_errname(rc));
    goto fini_ab;
  }
  check_blob_fuzz(&p, &b, &a, &x.ra, (uint64_t)(uintptr_t)x.abuf, BUF_SIZE);
  if ((rc = p.ops->connect(b.ctx, a.host.name, a.desc, a.desc_len, &x.ep)) ||
      (rc = p.ops->import_mem(b.ctx, x.ep, (uint64_t)(uintptr_t)x.abuf, BUF_SIZE, x.ra.rkey,
                              x.ra.rkey_len, &x.rmem))) {
    fail("connect", "connect/import_mem failed: %s", mc_errname(rc));
    goto fini_ab;
  }
  pass("connect", "endpoint and import ready");
  check_loopback(&x);
  check_refusals(&x);
  check_hostile(&x);
  check_ctrl(&x);
  check_backpressure(&x);
  check_notify(&x);
  check_cancel(&x);
  check_fini_inflight(&p, x.abuf, &x.ra, &a);
  check_target_gone(&p);
fini_ab : {
  int64_t t = now_ms();
  int r1 = ctx_fini(&b), r2 = ctx_fini(&a);
  if (r1 || r2)
    fail("fini", "fini returned %s/%s", mc_errname(r1), mc_errname(r2));
  else
    pass("fini", "both contexts torn down in %" PRId64 " ms", now_ms() - t);
  target_free(araw);
  free(braw);
}
  if (T.strays || T.doubles)
    fail("completions", "%" PRIu64 " unknown tokens, %" PRIu64 " double completions", T.strays,
         T.doubles);
  check_leaks(&p, 0);
  check_leaks(&p, 1);
  threads_settle(threads0);
  int left = count_dir("/proc/self/task") - threads0;
  if (left > 0) {
    /* Unloading code that threads still run would crash this program. */
    fail("reload", "%d thread(s) of the plugin still running after every fini; not unloading it",
         left);
  } else {
    dlclose(p.dl);
    check_reload(path);
  }
  free(T.c);
  return result(n_fail ? 1 : 0);
}

