/* The hip plugin on this host, without a GPU: the table is sane, and init
 * fails MC_ENODEV with one line saying why, for each way it can:
 *   - the system's HIP runtime (libamdhip64.so.5) when it loads here:
 *     "no AMD GPU on this host: hipInit ..." (and /dev/kfd named when it
 *     is absent); when it does not load: "cannot load the HIP runtime";
 *   - a `library` that does not exist: the path and dlerror;
 *   - the fake runtime (argv[2]) reporting no device: hipGetDeviceCount;
 *   - the fake runtime with a device: init succeeds, fini cleans up.
 * argv[1] = mc-transport-hip.so, argv[2] = libmc-fake-amdhip64.so. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fake_host.h"
#include "mooncake/transport.h"

static const mc_transport_ops *ops;

/* init with the given keys; returns its rc, the last warning in why. */
static int try_init(const char *const *pairs, char *why, size_t whylen) {
  mc_fake_host h;
  mc_fake_host_init(&h, "hip-test", ops);
  h.print_level = MC_LOG_WARN;
  if (pairs)
    CHECK_OK(mc_fake_host_set_pairs(&h, pairs));
  mc_init_args a = {sizeof a, "hip-test:1", "127.0.0.1", NULL};
  void *ctx = NULL;
  int rc = ops->init(&h.api, &a, &ctx);
  snprintf(why, whylen, "%s", h.last_warn);
  if (rc == 0) {
    CHECK(ctx != NULL);
    uint32_t n = 8;
    mc_rail_info r[8];
    CHECK_OK(ops->query_rails(ctx, r, &n));
    CHECK(n >= 1);
    CHECK_STR(r[0].name, "hip0");
    CHECK_EQ_U64(r[0].pci_bus_id, 0x10u << 8); /* the fake's 0000:10:00.0 */
    CHECK_OK(ops->fini(ctx));
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

  /* The table: what the README promises. */
  CHECK_STR(ops->name, "hip");
  CHECK_EQ_INT(ops->abi_major, MC_TRANSPORT_ABI_MAJOR);
  CHECK(ops->abi_minor >= 3 && ops->struct_size >= sizeof(mc_transport_ops));
  CHECK(ops->query_mem != NULL);
  CHECK(ops->caps & MC_CAP_INTRA_NODE);
  CHECK(!(ops->caps & MC_CAP_INTER_NODE));
  CHECK((ops->caps & MC_CAP_OWN_THREADS) && ops->progress == NULL);
  CHECK(!(ops->caps & MC_CAP_NOTIFY) && ops->send_notify == NULL);
  CHECK_EQ_INT(ops->local_mem_kinds, MC_MEM_HIP | MC_MEM_CPU);
  CHECK_EQ_INT(ops->remote_mem_kinds, MC_MEM_HIP);
  const char *keys[] = {"library", "streams", "max_inflight", "pin_host", "poll_us"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    mc_param_info pi;
    CHECK_MSG(mc_fake_param_find(ops, keys[i], &pi) == 0, "key %s", keys[i]);
  }

  char why[1024];
  /* The system runtime. */
  void *sys = dlopen("libamdhip64.so.5", RTLD_NOW | RTLD_LOCAL);
  int rc = try_init(NULL, why, sizeof why);
  printf("system runtime: %s: %s\n", mc_errname(rc), why);
  if (rc == 0) {
    printf("an AMD GPU is usable here: the no-device checks do not apply\n");
  } else {
    CHECK_EQ_INT(rc, MC_ENODEV);
    if (sys) {
      CHECK_MSG(strstr(why, "no AMD GPU on this host: hip"), "%s", why);
      if (access("/dev/kfd", F_OK))
        CHECK_MSG(strstr(why, "/dev/kfd is absent"), "%s", why);
    } else {
      CHECK_MSG(strstr(why, "cannot load the HIP runtime (libamdhip64.so.5: "), "%s", why);
    }
    CHECK(!strchr(why, '\n'));
  }
  if (sys)
    dlclose(sys);

  /* A library that is not there: named, with dlerror's text. */
  const char *missing[] = {"library", "/nonexistent/libamdhip64.so", NULL};
  CHECK_EQ_INT(try_init(missing, why, sizeof why), MC_ENODEV);
  CHECK_MSG(strstr(why, "cannot load /nonexistent/libamdhip64.so: "), "%s", why);

  /* A library without the HIP entry points (libc): the missing one named. */
  const char *notit[] = {"library", "libc.so.6", NULL};
  CHECK_EQ_INT(try_init(notit, why, sizeof why), MC_ENODEV);
  CHECK_MSG(strstr(why, "lacks hipInit"), "%s", why);

  /* The fake runtime without devices, then with one. */
  const char *fake[] = {"library", argv[2], NULL};
  setenv("FAKE_HIP_DEVICES", "0", 1);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), MC_ENODEV);
  CHECK_MSG(strstr(why, "no AMD GPU on this host: hipGetDeviceCount"), "%s", why);
  setenv("FAKE_HIP_DEVICES", "1", 1);
  CHECK_EQ_INT(try_init(fake, why, sizeof why), 0);

  dlclose(dl);
  printf("PASS\n");
  return mc_check_exit_status();
}
