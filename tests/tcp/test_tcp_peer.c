/* test_tcp_peer.c - peer failure at plugin level, with real processes.
 *
 * Two child processes each run a target context of the TCP plugin.  The
 * parent reads from both; child A is killed (SIGKILL) in the middle of a
 * large read, child B is frozen (SIGSTOP).  Checks: every accepted slice
 * completes exactly once, failures are MC_EPEER/MC_ETIMEDOUT and come within
 * a bounded time, the surviving peer keeps working, nothing hangs.
 *
 *   test_tcp_peer <path/to/mc-transport-tcp.so> */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcp_test_host.h"

#define CHILD_BUF ((size_t)16 << 20)
#define MiB ((size_t)1 << 20)

typedef struct target_info {
  pid_t pid;
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
  uint8_t rkey[MC_RKEY_MAX];
  size_t rkey_len;
  uint64_t base;
} target_info;

static uint8_t pattern(uint64_t off) { return (uint8_t)(off * 131 + (off >> 12)); }

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = write(fd, c, n);
    if (k <= 0)
      return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n) {
    ssize_t k = read(fd, c, n);
    if (k <= 0)
      return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Child: serve a 16 MiB pattern buffer until killed. */
static void child_main(const char *plugin, const char *name, int wfd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  void *dl;
  const mc_transport_ops *ops = th_load(plugin, &dl);
  th_host *h = calloc(1, sizeof *h);
  th_host_init(h, name, NULL);
  mc_init_args a = {sizeof a, name, "127.0.0.1", "test"};
  void *ctx = NULL;
  if (ops->init(&h->api, &a, &ctx))
    _exit(2);
  uint8_t *buf = malloc(CHILD_BUF);
  for (size_t i = 0; i < CHILD_BUF; i++)
    buf[i] = pattern(i);
  target_info ti = {.pid = getpid(), .base = (uint64_t)(uintptr_t)buf};
  ti.desc_len = sizeof ti.desc;
  ti.rkey_len = sizeof ti.rkey;
  mc_mem_desc d = {ti.base, CHILD_BUF, MC_MEM_CPU, -1, "cpu:0"};
  void *mem;
  if (ops->local_desc(ctx, ti.desc, &ti.desc_len) ||
      ops->register_mem(ctx, &d, &mem, ti.rkey, &ti.rkey_len) ||
      write_all(wfd, &ti, sizeof ti))
    _exit(3);
  for (;;)
    pause();
}

static void spawn(const char *plugin, const char *name, target_info *ti) {
  int p[2];
  CHECK_MSG(pipe(p) == 0, "pipe");
  pid_t pid = fork();
  CHECK_MSG(pid >= 0, "fork");
  if (pid == 0) {
    close(p[0]);
    child_main(plugin, name, p[1]);
  }
  close(p[1]);
  CHECK_MSG(read_all(p[0], ti, sizeof *ti) == 0, "child %s did not start", name);
  close(p[0]);
  ti->pid = pid;
}

typedef struct peer {
  target_info ti;
  void *ep, *rmem;
} peer;

static uint64_t next_token;

/* Submits n reads of `len` bytes from peer offset 0.., all of them
 * (back-pressure resubmitted); returns the first token. */
static uint64_t submit_reads(const mc_transport_ops *ops, void *ctx, peer *p, void *lmem,
                             uint8_t *lbuf, uint32_t n, size_t len) {
  mc_slice *s = calloc(n, sizeof *s);
  uint64_t t0 = next_token;
  next_token += n;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t off = ((uint64_t)i * len) % CHILD_BUF;
    s[i] = (mc_slice){t0 + i, MC_OP_READ, i % 4, lmem, (uint64_t)(uintptr_t)lbuf + off,
                      p->rmem, p->ti.base + off, len};
  }
  uint32_t done = 0;
  int64_t end = th_now_ms() + 20000;
  while (done < n) {
    uint32_t acc = 0;
    int rc = ops->submit(ctx, p->ep, s + done, n - done, &acc);
    done += acc;
    CHECK_MSG(rc == 0 || rc == MC_EAGAIN, "submit: %d", rc);
    CHECK_MSG(th_now_ms() < end, "submit stuck in back-pressure");
    if (done < n)
      th_sleep_ms(1);
  }
  free(s);
  return t0;
}

static int verify(const uint8_t *b, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (b[i] != pattern(i))
      return -1;
  return 0;
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  peer A = {0}, B = {0};
  spawn(argv[1], "child-a:1", &A.ti);
  spawn(argv[1], "child-b:2", &B.ti);

  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *h = calloc(1, sizeof *h);
  th_host_init(h, "parent:3", "timeout_ms=2000;connections=4");
  mc_init_args a = {sizeof a, "parent:3", "127.0.0.1", "test"};
  void *ctx = NULL;
  CHECK_MSG(ops->init(&h->api, &a, &ctx) == 0, "init");
  uint8_t *lbuf = malloc(CHILD_BUF);
  mc_mem_desc d = {(uint64_t)(uintptr_t)lbuf, CHILD_BUF, MC_MEM_CPU, -1, "cpu:0"};
  uint8_t rk[MC_RKEY_MAX];
  size_t rkl = sizeof rk;
  void *lmem;
  CHECK_MSG(ops->register_mem(ctx, &d, &lmem, rk, &rkl) == 0, "register");
  peer *peers[2] = {&A, &B};
  for (int i = 0; i < 2; i++) {
    peer *p = peers[i];
    CHECK_MSG(ops->connect(ctx, i ? "child-b:2" : "child-a:1", p->ti.desc, p->ti.desc_len, &p->ep) == 0,
             "connect");
    CHECK_MSG(ops->import_mem(ctx, p->ep, p->ti.base, CHILD_BUF, p->ti.rkey, p->ti.rkey_len,
                             &p->rmem) == 0, "import");
    /* Both targets work: 16 MiB in 1 MiB slices, verified. */
    memset(lbuf, 0, CHILD_BUF);
    uint64_t t0 = submit_reads(ops, ctx, p, lmem, lbuf, 16, MiB);
    CHECK_MSG(th_wait(h, t0, 16, 20000) == 0, "reads from live peer hung");
    for (int k = 0; k < 16; k++)
      CHECK_MSG(h->status[t0 + k] == 0, "read from live peer: %d", h->status[t0 + k]);
    CHECK_MSG(verify(lbuf, CHILD_BUF) == 0, "data mismatch from peer %d", i);
  }
  printf("ok: both peers serve verified reads\n");

  /* Kill A while a large read stream is in flight. */
  uint64_t t0 = submit_reads(ops, ctx, &A, lmem, lbuf, 1024, MiB);
  th_sleep_ms(20);
  kill(A.ti.pid, SIGKILL);
  int64_t killed = th_now_ms();
  CHECK_MSG(th_wait(h, t0, 1024, 10000) == 0, "slices to a killed peer still pending after 10 s");
  int64_t took = th_now_ms() - killed;
  int ok = 0, failed = 0;
  for (int k = 0; k < 1024; k++) {
    int st = h->status[t0 + k];
    if (st == 0)
      ok++;
    else {
      CHECK_MSG(st == MC_EPEER || st == MC_ETIMEDOUT, "killed peer: slice status %d", st);
      failed++;
    }
  }
  CHECK_MSG(failed > 0, "the kill came after all 1024 MiB were read; test inconclusive");
  CHECK_MSG(h->doubles == 0, "double completion");
  CHECK_MSG(took < 5000, "failures took %lld ms", (long long)took);
  waitpid(A.ti.pid, NULL, 0);
  printf("ok: killed peer: %d slices done, %d failed (EPEER/ETIMEDOUT) within %lld ms\n", ok,
         failed, (long long)took);

  /* A new slice to the dead peer fails promptly. */
  t0 = submit_reads(ops, ctx, &A, lmem, lbuf, 4, MiB);
  CHECK_MSG(th_wait(h, t0, 4, 5000) == 0, "slice to dead peer hung");
  for (int k = 0; k < 4; k++)
    CHECK_MSG(h->status[t0 + k] == MC_EPEER, "dead peer: status %d", h->status[t0 + k]);
  printf("ok: new slices to the dead peer fail with EPEER\n");

  /* B is unaffected. */
  memset(lbuf, 0, CHILD_BUF);
  t0 = submit_reads(ops, ctx, &B, lmem, lbuf, 16, MiB);
  CHECK_MSG(th_wait(h, t0, 16, 20000) == 0, "reads from surviving peer hung");
  for (int k = 0; k < 16; k++)
    CHECK_MSG(h->status[t0 + k] == 0, "surviving peer: status %d", h->status[t0 + k]);
  CHECK_MSG(verify(lbuf, CHILD_BUF) == 0, "surviving peer: data mismatch");
  printf("ok: surviving peer still serves verified reads\n");

  /* Freeze B: its socket stays open, nothing is answered; the per-slice
   * deadline (2 s here) must fail the slices with ETIMEDOUT. */
  kill(B.ti.pid, SIGSTOP);
  th_sleep_ms(50);
  int64_t start = th_now_ms();
  t0 = submit_reads(ops, ctx, &B, lmem, lbuf, 64, MiB);
  CHECK_MSG(th_wait(h, t0, 64, 10000) == 0, "slices to a frozen peer still pending after 10 s");
  took = th_now_ms() - start;
  int timedout = 0;
  for (int k = 0; k < 64; k++) {
    int st = h->status[t0 + k];
    CHECK_MSG(st == MC_ETIMEDOUT || st == MC_EPEER, "frozen peer: slice status %d", st);
    timedout += st == MC_ETIMEDOUT;
  }
  CHECK_MSG(timedout > 0, "frozen peer: no slice timed out");
  CHECK_MSG(took >= 1500 && took < 6000, "frozen peer: deadline hit after %lld ms", (long long)took);
  printf("ok: frozen peer: %d slices timed out, all failed after %lld ms\n", timedout,
         (long long)took);

  /* fini with a frozen peer still connected: bounded. */
  start = th_now_ms();
  CHECK_MSG(ops->fini(ctx) == 0, "fini");
  took = th_now_ms() - start;
  CHECK_MSG(took < 3000, "fini took %lld ms", (long long)took);
  CHECK_MSG(h->doubles == 0, "double completion");
  kill(B.ti.pid, SIGKILL);
  waitpid(B.ti.pid, NULL, 0);
  dlclose(dl);
  th_host_fini(h);
  free(h);
  free(lbuf);
  printf("ok: fini in %lld ms\n", (long long)took);
  return 0;
}
