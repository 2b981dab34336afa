/* The ascend plugin on this host, without CANN or an NPU: the table is
 * sane, and init fails MC_ENODEV with one line naming the library, for
 * each way it can: libascendcl.so absent (the default), a `library` that
 * does not exist, a library without the ACL calls, the fake runtime
 * (argv[2]) reporting no NPU; with the fake's NPU, init and fini succeed
 * and aclInit/aclFinalize balance.
 * argv[1] = mc-transport-ascend.so, argv[2] = libmc-fake-ascendcl.so. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fake_host.h"
#include "mooncake/transport.h"

static const mc_transport_ops *ops;

static int try_init(const char *const *pairs, char *why, size_t whylen) {
  mc_fake_host h;
  mc_fake_host_init(&h, "ascend-test", ops);
  if (pairs)
    CHECK_OK(mc_fake_host_set_pairs(&h, pairs));
  mc_init_args a = {sizeof a, "ascend-test:1", "127.0.0.1", NULL};
  void *ctx = NULL;
  int rc = ops->init(&h.api, &a, &ctx);
  snprintf(why, whylen, "%s", h.last_warn);
  if (rc == 0) {
    uint32_t n = 8;
    mc_rail_info r[8];
    CHECK_OK(ops->query_rails(ctx, r, &n));
    CHECK_EQ_INT(n, atoi(getenv("FAKE_ACL_DEVICES")));
    CHECK_STR(r[n - 1].name, n == 2 ? "npu1" : "npu0");
    /* A second context shares the process's aclInit. */
    mc_fake_host h2;
    mc_fake_host_init(&h2, "ascend-test2", ops);
    if (pairs)
      CHECK_OK(mc_fake_host_set_pairs(&h2, pairs));
    void *ctx2 = NULL;
    CHECK_OK(ops->init(&h2.api, &a, &ctx2));
    CHECK_OK(ops->fini(ctx));
    CHECK_OK(ops->fini(ctx2));
    mc_fake_host_fini(&h2);
  }
  mc_fake_host_fini(&h);
  return rc;
}

int main(int argc, char **argv) {
  CHECK(argc == 3);
  void *dl = NULL;
  char err[512];
  ops = mc_fake_load(argv[1], &dl, err, sizeof err);
  CHECK_MSG(ops, "%s", err);
  CHECK_STR(ops->name, "ascend");
  CHECK(ops->abi_minor >= 3 && ops->struct_size >= sizeof(mc_transport_ops));
  CHECK(ops->query_mem && ops->ctrl_handle);
  CHECK((ops->caps & MC_CAP_INTRA_NODE) && !(ops->caps & MC_CAP_INTER_NODE));
  CHECK((ops->caps & MC_CAP_OWN_THREADS) && !ops->progress);
  CHECK_EQ_INT(ops->local_mem_kinds, MC_MEM_NPU | MC_MEM_CPU);
  CHECK_EQ_INT(ops->remote_mem_kinds, MC_MEM_NPU);
  const char *keys[] = {"library", "streams", "max_inflight", "poll_us", "pid_check"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    mc_param_info pi;
    CHECK_MSG(mc_fake_param_find(ops, keys[i], &pi) == 0, "key %s", keys[i]);
  }

  char why[1024];
  void *sys = dlopen("libascendcl.so", RTLD_NOW | RTLD_LOCAL);
  int rc = try_init(NULL, why, sizeof why);
  printf("default runtime: %s: %s\n", mc_errname(rc), why);
  if (!sys) {
    CHECK_EQ_INT(rc, MC_ENODEV);
    CHECK_MSG(strstr(why, "cannot load libascendcl.so ("), "%s", why);
    CHECK(!strchr(why, '\n'));
  } else {
    dlclose(sys);
    printf("libascendcl.so loads here: its no-library check does not apply\n");
  }
  const char *missing[] = {"library", "/nonexistent/libascendcl.so", NULL};
  CHECK_EQ_INT(try_init(missing, why, sizeof why), MC_ENODEV);
  CHECK_MSG(strstr(why, "cannot load /nonexistent/libascendcl.so ("), "%s", why);
  const char *notit[] = {"library", "libc.so.6", NULL};
  CHECK_EQ_INT(try_init(notit, why, sizeof why), MC_ENODEV);
  CHECK_MSG(strstr(why, "libc.so.6 lacks aclInit"), "%s", why);

  const char *fake[] = {"library", argv[2], NULL};
  setenv("FAKE_ACL_DEVICES", "0", 1);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), MC_ENODEV);
  CHECK_MSG(strstr(why, "no NPU on this host: aclrtGetDeviceCount"), "%s", why);
  /* Held open here so its counters outlive the plugin's dlclose. */
  void *f = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  CHECK_MSG(f, "%s", dlerror());
  int (*inits)(void);
  *(void **)&inits = dlsym(f, "fake_acl_inits");
  CHECK(inits && inits() == 0);
  setenv("FAKE_ACL_DEVICES", "2", 1);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), 0);
  CHECK_EQ_INT(inits(), 0); /* each context's aclInit released at its fini */
  /* ACL finalized and initialized again on this thread: the plugin must
   * bind the thread to its NPU again (the fake refuses stale bindings). */
  setenv("FAKE_ACL_DEVICES", "1", 1);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), 0);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), 0);
  CHECK_EQ_INT(inits(), 0);
  /* The application initialized ACL first: the plugin's fini leaves its
   * reference in place. */
  int (*app_init)(const char *);
  int (*app_fini)(void);
  *(void **)&app_init = dlsym(f, "aclInit");
  *(void **)&app_fini = dlsym(f, "aclFinalize");
  CHECK(app_init && app_fini);
  CHECK_EQ_INT(app_init(NULL), 0);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), 0);
  CHECK_EQ_INT(inits(), 1);
  CHECK_EQ_INT(app_fini(), 0);
  dlclose(f);
  dlclose(dl);
  printf("PASS\n");
  return mc_check_exit_status();
}
