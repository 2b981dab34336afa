/* Two engines in two processes (engine.h only) with transports hip,tcp,
 * the hip transport over the fake HIP runtime (MC_TRANSPORT_HIP_LIBRARY):
 * the target registers fake device memory as "hip:0" and host memory as
 * "cpu:0"; the initiator reads and writes the device buffer from its own
 * device memory and from host memory -- carried by hip -- and reads the
 * host buffer, which hip does not serve remotely -- carried by tcp.
 * Bytes checked on both sides.  argv[1] = libmc-fake-amdhip64.so. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mooncake/engine.h"

#define LEN (4u << 20)

static int (*hip_malloc)(void **, size_t);
static int (*hip_free)(void *);

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed ^ (i * 17) ^ (i >> 12));
}

static int same(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed ^ (i * 17) ^ (i >> 12)))
      return 0;
  return 1;
}

static mc_engine *engine(void) {
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  /* MC_TRANSPORTS (set in main), not o.transports: the core checks
   * MC_TRANSPORT_HIP_* against the configured list, which opts do not
   * count as. */
  mc_engine *e = NULL;
  char err[512];
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  CHECK_MSG(rc == 0, "engine: %s: %s", mc_strerror(rc), err);
  return e;
}

static void *dev_alloc(void) {
  void *p = NULL;
  CHECK_EQ_INT(hip_malloc(&p, LEN), 0);
  return p;
}

typedef struct target_info {
  char segment[MC_NAME_MAX];
  uint64_t dev, host;
} target_info;

static void target(int rd, int wr) {
  mc_engine *e = engine();
  uint8_t *dev = dev_alloc();
  uint8_t *host = malloc(LEN);
  fill(dev, LEN, 1);
  fill(host, LEN, 2);
  CHECK_OK(mc_register(e, dev, LEN, "hip:0"));
  CHECK_OK(mc_register(e, host, LEN, "cpu:0"));
  target_info ti = {{0}, (uint64_t)(uintptr_t)dev, (uint64_t)(uintptr_t)host};
  snprintf(ti.segment, sizeof ti.segment, "%s", mc_engine_segment_name(e));
  CHECK(write(wr, &ti, sizeof ti) == (ssize_t)sizeof ti);
  uint8_t cmd[2];
  while (read(rd, cmd, 2) == 2 && cmd[0] == 'v') {
    uint8_t ok = (uint8_t)same(dev, LEN, cmd[1]);
    CHECK(write(wr, &ok, 1) == 1);
  }
  CHECK_OK(mc_unregister(e, dev));
  CHECK_OK(mc_unregister(e, host));
  mc_engine_destroy(e);
  CHECK_EQ_INT(hip_free(dev), 0);
  free(host);
  exit(mc_check_exit_status());
}

static void xfer(mc_engine *e, uint32_t op, void *local, mc_segment *s, uint64_t remote,
                 const char *want) {
  mc_batch *b;
  CHECK_OK(mc_batch_create(e, 1, &b));
  mc_request r = {op, local, s, remote, LEN};
  CHECK_OK(mc_batch_submit(b, &r, 1));
  int rc = mc_batch_wait(b, 30000);
  mc_transfer_status st;
  CHECK_OK(mc_batch_status(b, 0, &st));
  CHECK_MSG(rc == 0 && st.state == MC_XFER_COMPLETED && !strcmp(st.transport, want),
            "%s: %s, state %u, carried by '%s' (want %s)", op == MC_OP_READ ? "read" : "write",
            mc_strerror(rc), st.state, st.transport, want);
  CHECK(st.bytes == LEN);
  mc_batch_destroy(b);
}

static void verify(int rd, int wr, uint8_t seed) {
  uint8_t cmd[2] = {'v', seed}, ok = 0;
  CHECK(write(wr, cmd, 2) == 2 && read(rd, &ok, 1) == 1);
  CHECK_MSG(ok == 1, "target's device buffer lacks pattern %u", seed);
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  setenv("MC_TRANSPORT_HIP_LIBRARY", argv[1], 1);
  setenv("FAKE_HIP_DEVICES", "1", 1);
  unsetenv("MC_CONFIG");
  setenv("MC_TRANSPORTS", "hip,tcp", 1);
  void *fk = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL); /* the instance the plugin opens */
  CHECK_MSG(fk, "%s", dlerror());
  *(void **)&hip_malloc = dlsym(fk, "hipMalloc");
  *(void **)&hip_free = dlsym(fk, "hipFree");
  CHECK(hip_malloc && hip_free);
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(60);
    close(a[1]);
    close(b[0]);
    target(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  alarm(90);
  target_info ti;
  CHECK(read(b[0], &ti, sizeof ti) == (ssize_t)sizeof ti);

  mc_engine *e = engine();
  uint8_t *dev = dev_alloc();
  uint8_t *host = malloc(LEN);
  CHECK_OK(mc_register(e, dev, LEN, "hip:0"));
  CHECK_OK(mc_register(e, host, LEN, "cpu:0"));
  mc_segment *s;
  CHECK_OK(mc_segment_open(e, ti.segment, &s));
  memset(dev, 0, LEN);
  xfer(e, MC_OP_READ, dev, s, ti.dev, "hip"); /* device <- device */
  CHECK(same(dev, LEN, 1));
  memset(host, 0, LEN);
  xfer(e, MC_OP_READ, host, s, ti.dev, "hip"); /* host <- device */
  CHECK(same(host, LEN, 1));
  fill(host, LEN, 3);
  xfer(e, MC_OP_WRITE, host, s, ti.dev, "hip"); /* host -> device */
  verify(b[0], a[1], 3);
  fill(dev, LEN, 4);
  xfer(e, MC_OP_WRITE, dev, s, ti.dev, "hip"); /* device -> device */
  verify(b[0], a[1], 4);
  memset(host, 0, LEN);
  xfer(e, MC_OP_READ, host, s, ti.host, "tcp"); /* remote host memory: not hip's */
  CHECK(same(host, LEN, 2));
  mc_segment_close(s);
  CHECK_OK(mc_unregister(e, dev));
  CHECK_OK(mc_unregister(e, host));
  mc_engine_destroy(e);
  CHECK_EQ_INT(hip_free(dev), 0);
  free(host);
  close(a[1]);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target status 0x%x", st);
  dlclose(fk);
  printf("PASS: two engines, hip over the fake runtime for device memory, tcp for host memory\n");
  return mc_check_exit_status();
}
