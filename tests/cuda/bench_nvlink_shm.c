/* CPU per slice: the nvlink plugin over the fake driver against the shm
 * plugin over its memfd pool, in one run, on the same host and sizes.  Both
 * move bytes the same way underneath (a memcpy into a peer's memfd mapped
 * here: the fake driver's IPC mapping, shm's pool import), so what differs
 * is each plugin's own cost per slice: checks, queueing, completion.
 *
 *   bench-nvlink-shm NVLINK_SO SHM_SO FAKE_LIBCUDA [SLICES [SIZE...]]
 *
 * A target process registers a 16 MiB buffer with each plugin (fake device
 * memory for nvlink, an alloc_mem pool for shm); this process imports both
 * and writes batches of 16 slices, waiting for each batch's completions.
 * CPU is getrusage(RUSAGE_SELF) over the run: every thread of this
 * process, the plugins' own included.  Prints one line per size and plugin
 * and the nvlink/shm CPU ratio (lower is better; 1.00 = parity). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cuda_fake.h"
#include "fake_host.h"

#define LEN (16u << 20)
#define BATCH 16

typedef struct side {
  const mc_transport_ops *ops;
  mc_fake_host h;
  void *ctx;
} side;

static test_cuda cu;

static void side_start(side *s, const char *so, const char *name, const char *lib) {
  char err[512];
  void *dl;
  s->ops = mc_fake_load(so, &dl, err, sizeof err);
  if (!s->ops) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  mc_fake_host_init(&s->h, name, s->ops);
  if (lib)
    CHECK_OK(mc_fake_host_set(&s->h, "library", lib));
  mc_init_args a = {sizeof a, name, "127.0.0.1", "bench-host"};
  CHECK_OK(s->ops->init(&s->h.api, &a, &s->ctx));
}

typedef struct blob {
  uint64_t addr;
  size_t dlen, klen;
  uint8_t desc[MC_DESC_MAX], key[MC_RKEY_MAX];
} blob;

static void publish(side *s, void *p, uint32_t kind, const char *loc, blob *b) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)p, LEN, kind, 0, loc, NULL, 0, 0};
  void *m;
  b->addr = d.addr;
  b->klen = sizeof b->key;
  b->dlen = sizeof b->desc;
  CHECK_OK(s->ops->register_mem(s->ctx, &d, &m, b->key, &b->klen));
  CHECK_OK(s->ops->local_desc(s->ctx, b->desc, &b->dlen));
}

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes `slices` slices of `size` bytes in batches; returns CPU us per
 * slice (wall us per slice in *wall). */
static double run(side *s, const blob *b, void *local, uint32_t kind,
                  const char *loc, uint64_t slices, uint64_t size, double *wall) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)local, LEN, kind, 0, loc, NULL, 0, 0};
  void *lm, *ep, *rm;
  uint8_t key[MC_RKEY_MAX];
  size_t klen = sizeof key;
  CHECK_OK(s->ops->register_mem(s->ctx, &d, &lm, key, &klen));
  CHECK_OK(s->ops->connect(s->ctx, "target", b->desc, b->dlen, &ep));
  CHECK_OK(s->ops->import_mem(s->ctx, ep, b->addr, LEN, b->key, b->klen, &rm));
  mc_slice sl[BATCH];
  uint64_t base = s->h.completions, sent = 0, token = 1;
  double c0 = cpu_now(), w0 = wall_now();
  while (sent < slices) {
    for (int i = 0; i < BATCH; i++) {
      uint64_t off = ((sent + (uint64_t)i) * size) % (LEN - size);
      sl[i] = (mc_slice){token++, MC_OP_WRITE, 0, lm, d.addr + off, rm,
                         b->addr + off, size};
    }
    uint32_t done = 0;
    while (done < BATCH) {
      uint32_t acc = 0;
      int rc = s->ops->submit(s->ctx, ep, sl + done, BATCH - done, &acc);
      CHECK(rc == 0 || rc == MC_EAGAIN);
      done += acc;
    }
    sent += BATCH;
    pthread_mutex_lock(&s->h.lock);
    while (s->h.completions - base < sent)
      pthread_cond_wait(&s->h.cond, &s->h.lock);
    CHECK_RC(s->h.last_status, 0);
    pthread_mutex_unlock(&s->h.lock);
  }
  double cpu = (cpu_now() - c0) / (double)sent * 1e6;
  *wall = (wall_now() - w0) / (double)sent * 1e6;
  CHECK_OK(s->ops->release_mem(s->ctx, rm));
  CHECK_OK(s->ops->disconnect(s->ctx, ep));
  CHECK_OK(s->ops->deregister_mem(s->ctx, lm));
  return cpu;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s NVLINK_SO SHM_SO FAKE_LIBCUDA [SLICES [SIZE...]]\n",
            argv[0]);
    return 2;
  }
  uint64_t slices = argc > 4 ? strtoull(argv[4], NULL, 10) : 200000;
  slices = (slices + BATCH - 1) / BATCH * BATCH;
  test_cuda_open(&cu, argv[3]);
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) { /* the target: one buffer per plugin */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(a[1]);
    close(b[0]);
    side nv, sh;
    side_start(&nv, argv[1], "target", argv[3]);
    side_start(&sh, argv[2], "target", NULL);
    blob bl[2];
    publish(&nv, test_cuda_alloc(&cu, LEN), MC_MEM_CUDA, "cuda:0", &bl[0]);
    void *pool;
    CHECK_OK(sh.ops->alloc_mem(sh.ctx, LEN, "cpu:0", &pool));
    publish(&sh, pool, MC_MEM_CPU, "cpu:0", &bl[1]);
    CHECK(write(b[1], bl, sizeof bl) == (ssize_t)sizeof bl);
    char c;
    while (read(a[0], &c, 1) == 1)
      ;
    _exit(0); /* the bench measures the initiator; no teardown needed */
  }
  close(a[0]);
  close(b[1]);
  blob bl[2];
  CHECK(read(b[0], bl, sizeof bl) == (ssize_t)sizeof bl);
  side nv, sh;
  side_start(&nv, argv[1], "initiator", argv[3]);
  side_start(&sh, argv[2], "initiator", NULL);
  /* Both plugins' local buffers are the same kind of memory (the fake
   * driver's populated memfd mappings, host memory underneath), as their
   * targets are, so the copies cost the same and the difference is the
   * plugins' own. */
  uint8_t *dev = test_cuda_alloc(&cu, LEN);
  uint8_t *host = test_cuda_alloc(&cu, LEN);
  memset(host, 1, LEN);
  memset(dev, 1, LEN);
  printf("%-8s %-7s %14s %14s\n", "size", "plugin", "cpu us/slice", "wall us/slice");
  int nsizes = argc > 5 ? argc - 5 : 2;
  for (int k = 0; k < nsizes; k++) {
    uint64_t size = argc > 5 ? strtoull(argv[5 + k], NULL, 10) : (k ? 65536 : 64);
    double w1, w2;
    double c1 = run(&nv, &bl[0], dev, MC_MEM_CUDA, "cuda:0", slices, size, &w1);
    double c2 = run(&sh, &bl[1], host, MC_MEM_CPU, "cpu:0", slices, size, &w2);
    printf("%-8llu %-7s %14.3f %14.3f\n", (unsigned long long)size, "nvlink", c1, w1);
    printf("%-8llu %-7s %14.3f %14.3f\n", (unsigned long long)size, "shm", c2, w2);
    printf("%-8llu nvlink/shm CPU per slice: %.2fx\n", (unsigned long long)size,
           c1 / c2);
  }
  CHECK_OK(nv.ops->fini(nv.ctx));
  CHECK_OK(sh.ops->fini(sh.ctx));
  mc_fake_host_fini(&nv.h);
  mc_fake_host_fini(&sh.h);
  cu.MemFree((unsigned long long)(uintptr_t)host);
  cu.MemFree((unsigned long long)(uintptr_t)dev);
  close(a[1]);
  waitpid(pid, NULL, 0);
  return 0;
}
