/* The nvlink plugin's real code in two engines (engine.h only, p2p
 * metadata, no other transport loaded) over the fake CUDA driver
 * (tests/cuda/fakecuda): "device" buffers registered without a location
 * (the plugin's query_mem classifies them as cuda:0), cuda:0 -> cuda:0
 * through IPC handles carried in the remote keys.  Modes (argv[2]):
 *   data      sizes 1 B .. 64 MiB both ways, then many mixed batches,
 *             bytes checked, every request carried by nvlink;
 *   peerkill  the target is killed mid-run: transfers fail (never hang)
 *             and the engine shuts down cleanly;
 *   refuse    tcp and shm refuse cuda memory: MC_ENOTSUP with a clear
 *             mc_last_error();
 *   auto      without a CUDA driver, an engine with "auto" still starts
 *             and one naming nvlink fails saying why. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cuda_fake.h"
#include "mooncake/engine.h"

#define BUF (64u << 20)
#define TBUF (BUF + (1u << 20)) /* target: room for offsets */

static test_cuda cu;
static const char *libcuda; /* the driver the plugin loads */

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 7;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

/* The plugin's `library` key goes in by variable, which the core accepts
 * only for a configured transport, so the list goes in by variable too. */
static void configure(const char *transports) {
  setenv("MC_TRANSPORTS", transports, 1);
  if (strstr(transports, "nvlink") || !strcmp(transports, "auto"))
    setenv("MC_TRANSPORT_NVLINK_LIBRARY", libcuda, 1);
  else
    unsetenv("MC_TRANSPORT_NVLINK_LIBRARY");
}

static mc_engine *engine(const char *transports, int must) {
  configure(transports);
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  o.transports = transports;
  mc_engine *e = NULL;
  char err[1024] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc && must) {
    fprintf(stderr, "engine (%s): %s: %s\n", transports, mc_strerror(rc), err);
    exit(1);
  }
  return rc ? NULL : e;
}

typedef struct target_info {
  char segment[MC_NAME_MAX];
  uint64_t buf;
} target_info;

/* Serves a TBUF "device" buffer until its pipe closes. */
static void target(int rd, int wr) {
  mc_engine *e = engine("nvlink", 1);
  uint8_t *buf = test_cuda_alloc(&cu, TBUF);
  CHECK_OK(mc_register(e, buf, TBUF, NULL)); /* query_mem: cuda:0 */
  target_info ti = {{0}, (uint64_t)(uintptr_t)buf};
  snprintf(ti.segment, sizeof ti.segment, "%s", mc_engine_segment_name(e));
  CHECK(write(wr, &ti, sizeof ti) == (ssize_t)sizeof ti);
  char c;
  while (read(rd, &c, 1) == 1)
    ;
  CHECK_OK(mc_unregister(e, buf));
  cu.MemFree((unsigned long long)(uintptr_t)buf);
  mc_engine_destroy(e);
  exit(0);
}

static pid_t spawn_target(int *to, int *from, target_info *ti) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(a[1]);
    close(b[0]);
    target(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  CHECK(read(b[0], ti, sizeof *ti) == (ssize_t)sizeof *ti);
  *to = a[1];
  *from = b[0];
  return pid;
}

/* Runs reqs[0..n) in one batch; checks every one went over nvlink. */
static int run(mc_engine *e, const mc_request *r, uint32_t n, int must) {
  mc_batch *b;
  CHECK_OK(mc_batch_create(e, n, &b));
  CHECK_OK(mc_batch_submit(b, r, n));
  int rc = mc_batch_wait(b, 30000);
  CHECK(rc != MC_ETIMEDOUT);
  for (uint32_t i = 0; i < n && !rc; i++) {
    mc_transfer_status st;
    CHECK_OK(mc_batch_status(b, i, &st));
    CHECK_EQ_INT(st.state, MC_XFER_COMPLETED);
    CHECK_STR(st.transport, "nvlink");
    CHECK_EQ_U64(st.bytes, r[i].len);
  }
  if (rc && must) {
    fprintf(stderr, "batch of %u: %s (%s)\n", n, mc_strerror(rc), mc_last_error());
    exit(1);
  }
  mc_batch_destroy(b);
  return rc;
}

static void mode_data(void) {
  int to, from;
  target_info ti;
  pid_t pid = spawn_target(&to, &from, &ti);
  mc_engine *e = engine("nvlink", 1);
  uint8_t *loc = test_cuda_alloc(&cu, 2 * (size_t)BUF);
  CHECK_OK(mc_register(e, loc, 2 * (size_t)BUF, NULL));
  mc_segment *s;
  CHECK_OK(mc_segment_open(e, ti.segment, &s));
  static const size_t sizes[] = {1, 7, 4096, 65539, 1u << 20, (4u << 20) + 5,
                                 17u << 20, BUF};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    uint64_t roff = (k * 4099) % (1u << 20); /* unaligned remote offsets */
    fill(loc, n, (uint32_t)k);
    memset(loc + BUF, 0, n);
    mc_request w = {MC_OP_WRITE, loc, s, ti.buf + roff, n};
    run(e, &w, 1, 1);
    mc_request r = {MC_OP_READ, loc + BUF, s, ti.buf + roff, n};
    run(e, &r, 1, 1);
    CHECK_MSG(memcmp(loc, loc + BUF, n) == 0, "size %zu: bytes differ", n);
  }
  /* Many batches of mixed sizes and directions. */
  srand(7);
  for (int it = 0; it < 300; it++) {
    mc_request rq[16];
    uint64_t off = 0;
    uint32_t n = 1 + (uint32_t)(rand() % 16);
    for (uint32_t i = 0; i < n; i++) {
      size_t len = 1 + (size_t)(rand() % (256 << 10));
      fill(loc + off, len, (uint32_t)(it * 16 + i));
      rq[i] = (mc_request){MC_OP_WRITE, loc + off, s, ti.buf + off, len};
      off += len + (uint64_t)(rand() % 64);
    }
    run(e, rq, n, 1);
    for (uint32_t i = 0; i < n; i++) {
      rq[i].op = MC_OP_READ;
      rq[i].local = loc + BUF + ((uint8_t *)rq[i].local - loc);
      memset(rq[i].local, 0, rq[i].len);
    }
    run(e, rq, n, 1);
    for (uint32_t i = 0; i < n; i++)
      CHECK_MSG(memcmp(rq[i].local, (uint8_t *)rq[i].local - BUF, rq[i].len) == 0,
                "batch %d request %u: bytes differ", it, i);
  }
  /* Out of the target's range: refused, not copied. */
  mc_request bad = {MC_OP_READ, loc, s, ti.buf + TBUF - 10, 100};
  CHECK(mc_transfer_sync(e, &bad, 1, 10000) != 0);
  mc_segment_close(s);
  CHECK_OK(mc_unregister(e, loc));
  cu.MemFree((unsigned long long)(uintptr_t)loc);
  mc_engine_destroy(e);
  close(to);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(from);
  printf("nvlink data: 1 B .. 64 MiB and 300 mixed batches, cuda:0 -> cuda:0 "
         "over IPC, bytes checked\n");
}

static void mode_peerkill(void) {
  int to, from;
  target_info ti;
  pid_t pid = spawn_target(&to, &from, &ti);
  mc_engine *e = engine("nvlink", 1);
  uint8_t *loc = test_cuda_alloc(&cu, 4u << 20);
  CHECK_OK(mc_register(e, loc, 4u << 20, NULL));
  mc_segment *s;
  CHECK_OK(mc_segment_open(e, ti.segment, &s));
  int failed = 0, ok = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int it = 0; it < 2000 && !failed; it++) {
    if (it == 50)
      CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, NULL, 0) == pid);
    mc_request rq[4];
    for (int i = 0; i < 4; i++)
      rq[i] = (mc_request){i & 1 ? MC_OP_READ : MC_OP_WRITE, loc + (i << 20), s,
                           ti.buf + ((uint64_t)i << 20), 1u << 20};
    if (run(e, rq, 4, 0))
      failed = 1;
    else if (it < 50)
      ok++;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK_EQ_INT(ok, 50);
  CHECK_MSG(failed, "transfers to a dead peer kept succeeding");
  CHECK((t1.tv_sec - t0.tv_sec) < 60);
  mc_segment_close(s);
  CHECK_OK(mc_unregister(e, loc));
  cu.MemFree((unsigned long long)(uintptr_t)loc);
  mc_engine_destroy(e);
  close(to);
  close(from);
  printf("nvlink peerkill: transfers to the killed target failed, no hang\n");
}

static void mode_refuse(void) {
  mc_engine *e = engine("tcp,shm", 1);
  uint8_t *d = test_cuda_alloc(&cu, 1u << 20);
  CHECK_RC(mc_register(e, d, 1u << 20, "cuda:0"), MC_ENOTSUP);
  const char *why = mc_last_error();
  CHECK_HAS(why, "cuda:0");
  CHECK_HAS(why, "no loaded transport serves");
  CHECK_HAS(why, "tcp and shm move host memory only");
  printf("refused: %s\n", why);
  CHECK_RC(mc_register(e, d, 1u << 20, "cuda:x"), MC_EINVAL);
  CHECK_HAS(mc_last_error(), "bad location 'cuda:x'");
  cu.MemFree((unsigned long long)(uintptr_t)d);
  mc_engine_destroy(e);
}

static void mode_auto(void) {
  libcuda = "/nonexistent/libcuda.so.1";
  mc_engine *e = engine("auto", 1); /* nvlink fails init, others serve */
  uint8_t host[4096];
  CHECK_OK(mc_register(e, host, sizeof host, NULL)); /* no query_mem: cpu */
  CHECK_OK(mc_unregister(e, host));
  mc_engine_destroy(e);
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  o.transports = "nvlink";
  configure("nvlink");
  char err[1024] = "";
  CHECK_RC(mc_engine_create_ex(&o, &e, err, sizeof err), MC_ENODEV);
  printf("nvlink named without a driver: %s\n", err);
  CHECK_HAS(err, "nvlink");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s FAKE_LIBCUDA data|peerkill|refuse|auto\n", argv[0]);
    return 2;
  }
  libcuda = argv[1];
  /* Events stay "not ready" for a few queries: completions then go
   * through the plugin's poller thread, not only through submit. */
  setenv("MC_FAKECUDA_EVENT_DELAY", "2", 0);
  if (strcmp(argv[2], "auto"))
    test_cuda_open(&cu, argv[1]);
  if (!strcmp(argv[2], "data"))
    mode_data();
  else if (!strcmp(argv[2], "peerkill"))
    mode_peerkill();
  else if (!strcmp(argv[2], "refuse"))
    mode_refuse();
  else if (!strcmp(argv[2], "auto"))
    mode_auto();
  else
    return 2;
  return 0;
}
