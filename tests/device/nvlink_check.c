/* mc-nvlink-check: the nvlink transport for real on a GPU host (and, for
 * CI, over the fake driver).  Two processes on one GPU, each an engine with
 * only nvlink and p2p metadata; the target exposes a cuMemAlloc buffer
 * (registered without a location: the plugin's query_mem says cuda:0), the
 * initiator writes and reads it through CUDA IPC:
 *
 *   1. data: sizes 1 B .. 64 MiB written and read back, checked on the host
 *      (cuMemcpyHtoD / DtoH);
 *   2. bench: for each block size, batches of writes to the target for a
 *      fixed time, throughput and CPU per block; beside it in the same run
 *      the baseline, cuMemcpyDtoD between two buffers of the initiator's
 *      own (same block, same batch, waited per batch with
 *      cuCtxSynchronize);
 *   3. one summary line: the lowest nvlink/DtoD ratio over the 1 MiB+
 *      blocks, against the target (>= 0.90).
 *
 * The CUDA driver is dlopen'd like the plugin does (--libcuda); nothing
 * links it.  Exit 0 when the data checks pass (the ratio is reported, not
 * enforced: the coordinator judges figures), 1 on a failed check, 77 when
 * no driver or device is present. */
#include <dlfcn.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mooncake/engine.h"

typedef unsigned long long dptr;
static struct {
  int (*Init)(unsigned);
  int (*DeviceGet)(int *, int);
  int (*PrimaryCtxRetain)(void **, int);
  int (*CtxSetCurrent)(void *);
  int (*CtxSynchronize)(void);
  int (*MemAlloc)(dptr *, size_t);
  int (*MemFree)(dptr);
  int (*HtoD)(dptr, const void *, size_t);
  int (*DtoH)(void *, dptr, size_t);
  int (*DtoD)(dptr, dptr, size_t);
} cu;

static const char *libcuda = "libcuda.so.1";
static uint64_t buf_size = 256u << 20;
static double seconds = 1.0;

#define DIE(...)                                                               \
  do {                                                                         \
    fprintf(stderr, "mc-nvlink-check: " __VA_ARGS__);                          \
    fputc('\n', stderr);                                                       \
    exit(1);                                                                   \
  } while (0)
#define CU(call)                                                               \
  do {                                                                         \
    int r_ = (call);                                                           \
    if (r_)                                                                    \
      DIE("%s failed: CUDA error %d", #call, r_);                              \
  } while (0)

static void cuda_open(void) {
  void *dl = dlopen(libcuda, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    printf("SKIP: cannot load %s (%s): no NVIDIA driver\n", libcuda, dlerror());
    exit(77);
  }
  struct {
    const char *name;
    void **fn;
  } t[] = {{"cuInit", (void **)&cu.Init},
           {"cuDeviceGet", (void **)&cu.DeviceGet},
           {"cuDevicePrimaryCtxRetain", (void **)&cu.PrimaryCtxRetain},
           {"cuCtxSetCurrent", (void **)&cu.CtxSetCurrent},
           {"cuCtxSynchronize", (void **)&cu.CtxSynchronize},
           {"cuMemAlloc_v2", (void **)&cu.MemAlloc},
           {"cuMemFree_v2", (void **)&cu.MemFree},
           {"cuMemcpyHtoD_v2", (void **)&cu.HtoD},
           {"cuMemcpyDtoH_v2", (void **)&cu.DtoH},
           {"cuMemcpyDtoD_v2", (void **)&cu.DtoD}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!(*t[i].fn = dlsym(dl, t[i].name)))
      DIE("%s lacks %s", libcuda, t[i].name);
  int r = cu.Init(0);
  if (r) {
    printf("SKIP: cuInit: CUDA error %d (no usable device)\n", r);
    exit(77);
  }
  int dev;
  void *ctx;
  CU(cu.DeviceGet(&dev, 0));
  CU(cu.PrimaryCtxRetain(&ctx, dev));
  CU(cu.CtxSetCurrent(ctx));
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static mc_engine *engine(void) {
  setenv("MC_TRANSPORTS", "nvlink", 1);
  setenv("MC_TRANSPORT_NVLINK_LIBRARY", libcuda, 1);
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  o.transports = "nvlink";
  mc_engine *e = NULL;
  char err[1024];
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc)
    DIE("engine with nvlink: %s: %s", mc_strerror(rc), err);
  return e;
}

typedef struct tinfo {
  char segment[MC_NAME_MAX];
  uint64_t buf;
} tinfo;

static void target(int rd, int wr) {
  cuda_open();
  mc_engine *e = engine();
  dptr d;
  CU(cu.MemAlloc(&d, buf_size));
  int rc = mc_register(e, (void *)(uintptr_t)d, buf_size, NULL);
  if (rc)
    DIE("target: mc_register: %s: %s", mc_strerror(rc), mc_last_error());
  tinfo ti = {{0}, d};
  snprintf(ti.segment, sizeof ti.segment, "%s", mc_engine_segment_name(e));
  if (write(wr, &ti, sizeof ti) != (ssize_t)sizeof ti)
    DIE("target: pipe");
  char c;
  while (read(rd, &c, 1) == 1)
    ;
  mc_unregister(e, (void *)(uintptr_t)d);
  cu.MemFree(d);
  mc_engine_destroy(e);
  exit(0);
}

static void xfer(mc_engine *e, mc_request *r, uint32_t n) {
  int rc = mc_transfer_sync(e, r, n, 60000);
  if (rc)
    DIE("transfer of %u x %" PRIu64 " bytes: %s (%s)", n, (uint64_t)r[0].len,
        mc_strerror(rc), mc_last_error());
}

static void pattern(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

static void check_data(mc_engine *e, mc_segment *s, dptr loc, const tinfo *ti) {
  static const uint64_t sizes[] = {1, 4097, 1u << 20, (4u << 20) + 3, 64u << 20};
  uint64_t top = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    uint64_t n = sizes[k];
    if (n > buf_size / 2)
      continue;
    uint8_t *a = malloc(n), *b = malloc(n);
    if (!a || !b)
      DIE("out of host memory");
    pattern(a, n, (uint32_t)k + 1);
    CU(cu.HtoD(loc, a, n));
    mc_request w = {MC_OP_WRITE, (void *)(uintptr_t)loc, s, ti->buf + k * 64, n};
    xfer(e, &w, 1);
    mc_request r = {MC_OP_READ, (void *)(uintptr_t)(loc + buf_size / 2), s,
                    ti->buf + k * 64, n};
    xfer(e, &r, 1);
    CU(cu.DtoH(b, loc + buf_size / 2, n));
    if (memcmp(a, b, n))
      DIE("data check: %" PRIu64 " bytes written and read back differ", n);
    free(a);
    free(b);
    top = n;
  }
  printf("data: 1 .. %" PRIu64 " bytes written to and read from the other "
         "process's GPU buffer over CUDA IPC, bytes checked\n", top);
}

/* Throughput (GB/s) and CPU microseconds per block of nvlink writes of
 * `block` bytes, batches of `n`, for `seconds`. */
static void bench_nvlink(mc_engine *e, mc_segment *s, dptr loc, const tinfo *ti,
                         uint64_t block, uint32_t n, double *gbs, double *cpu_us) {
  mc_request r[64];
  for (uint32_t i = 0; i < n; i++)
    r[i] = (mc_request){MC_OP_WRITE, (void *)(uintptr_t)(loc + i * block), s,
                        ti->buf + i * block, block};
  xfer(e, r, n); /* warm: imports, streams */
  uint64_t ops = 0;
  double c0 = cpu_now(), t0 = now(), t;
  do {
    xfer(e, r, n);
    ops += n;
  } while ((t = now()) - t0 < seconds);
  *gbs = (double)(ops * block) / (t - t0) / 1e9;
  *cpu_us = (cpu_now() - c0) / (double)ops * 1e6;
}

static void bench_dtod(dptr loc, uint64_t block, uint32_t n, double *gbs,
                       double *cpu_us) {
  dptr src = loc, dst = loc + buf_size / 2;
  for (uint32_t i = 0; i < n; i++)
    CU(cu.DtoD(dst + i * block, src + i * block, block));
  CU(cu.CtxSynchronize());
  uint64_t ops = 0;
  double c0 = cpu_now(), t0 = now(), t;
  do {
    for (uint32_t i = 0; i < n; i++)
      CU(cu.DtoD(dst + i * block, src + i * block, block));
    CU(cu.CtxSynchronize());
    ops += n;
  } while ((t = now()) - t0 < seconds);
  *gbs = (double)(ops * block) / (t - t0) / 1e9;
  *cpu_us = (cpu_now() - c0) / (double)ops * 1e6;
}

static uint64_t parse_size(const char *s) {
  char *end;
  uint64_t v = strtoull(s, &end, 10);
  if (*end == 'K')
    v <<= 10;
  else if (*end == 'M')
    v <<= 20;
  else if (*end == 'G')
    v <<= 30;
  else if (*end)
    DIE("bad size '%s'", s);
  return v;
}

int main(int argc, char **argv) {
  const char *blocks = "64K,1M,4M,16M,64M";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--libcuda") && i + 1 < argc)
      libcuda = argv[++i];
    else if (!strcmp(argv[i], "--buffer") && i + 1 < argc)
      buf_size = parse_size(argv[++i]);
    else if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
      blocks = argv[++i];
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--libcuda PATH] [--buffer SIZE] [--blocks "
              "64K,1M,...] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  if (buf_size < (8u << 20) || seconds <= 0 || seconds > 60)
    DIE("--buffer must be >= 8M and --seconds in (0, 60]");
  int a[2], b[2];
  if (pipe(a) || pipe(b))
    DIE("pipe");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    DIE("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(a[1]);
    close(b[0]);
    target(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  cuda_open();
  tinfo ti;
  if (read(b[0], &ti, sizeof ti) != (ssize_t)sizeof ti) {
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
      return 77;
    DIE("the target process failed to start");
  }
  mc_engine *e = engine();
  dptr loc;
  CU(cu.MemAlloc(&loc, buf_size));
  int rc = mc_register(e, (void *)(uintptr_t)loc, buf_size, NULL);
  if (rc)
    DIE("mc_register: %s: %s", mc_strerror(rc), mc_last_error());
  mc_segment *s;
  if ((rc = mc_segment_open(e, ti.segment, &s)))
    DIE("mc_segment_open(%s): %s", ti.segment, mc_strerror(rc));
  check_data(e, s, loc, &ti);

  double worst = -1;
  uint64_t worst_block = 0;
  char list[256];
  snprintf(list, sizeof list, "%s", blocks);
  printf("%-8s %12s %12s %8s %14s %14s\n", "block", "nvlink GB/s", "DtoD GB/s",
         "ratio", "nvlink cpu/op", "DtoD cpu/op");
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    uint64_t block = parse_size(tok);
    if (block == 0 || block > buf_size / 2)
      continue;
    uint64_t fit = buf_size / 2 / block;
    uint32_t n = fit > 16 ? 16 : (uint32_t)fit;
    double g1, c1, g2, c2;
    bench_nvlink(e, s, loc, &ti, block, n, &g1, &c1);
    bench_dtod(loc, block, n, &g2, &c2);
    double ratio = g2 > 0 ? g1 / g2 : 0;
    printf("%-8s %12.2f %12.2f %7.2fx %11.1f us %11.1f us\n", tok, g1, g2, ratio,
           c1, c2);
    if (block >= (1u << 20) && (worst < 0 || ratio < worst)) {
      worst = ratio;
      worst_block = block;
    }
  }
  mc_segment_close(s);
  mc_unregister(e, (void *)(uintptr_t)loc);
  cu.MemFree(loc);
  mc_engine_destroy(e);
  close(a[1]);
  int st;
  waitpid(pid, &st, 0);
  close(b[0]);
  if (worst < 0)
    printf("SUMMARY nvlink: data checked; no block of 1 MiB or more benchmarked\n");
  else
    printf("SUMMARY nvlink vs cuMemcpyDtoD (%s): lowest ratio %.2fx at %" PRIu64
           " KiB blocks over 1 MiB+ blocks (target >= 0.90x: %s)\n", libcuda,
           worst, worst_block >> 10, worst >= 0.9 ? "met" : "NOT met");
  return 0;
}
