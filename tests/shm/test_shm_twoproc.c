/* shm plugin between two real processes: both modes (memfd pool, file pool
 * standing for a DAX device, plain memory via process_vm, with the copy
 * workers and with copy_threads 0) with data verified on both sides, then a
 * peer killed while it holds a mapped pool (both directions): the
 * survivor's memory and pool table stay intact and a dead peer's plain
 * memory reports MC_EPEER, also when it dies in the middle of queued
 * process_vm copies.  argv[1] = plugin .so. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm_harness.h"

#define LEN (4u << 20)

static const char *so;
static char pool_file[128];
static const char *copy_threads; /* initiators' copy_threads option, if set */

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed + i * 13 + (i >> 11));
}

static int check(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed + i * 13 + (i >> 11)))
      return 0;
  return 1;
}

typedef struct chan {
  int rd, wr;
} chan;

static pid_t spawn(chan *parent_side, chan *child_side) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(a[1]);
    close(b[0]);
    *child_side = (chan){a[0], b[1]};
  } else {
    close(a[0]);
    close(b[1]);
    *parent_side = (chan){b[0], a[1]};
  }
  return pid;
}

static void init_mode(h_plugin *h, const char *mode) {
  h_load(h, so);
  if (!strcmp(mode, "file")) {
    h_opt(h, "pool_path", pool_file);
    h_opt(h, "pool_size", "16M");
  }
  if (copy_threads)
    h_opt(h, "copy_threads", copy_threads);
  CHECK_RC(h_init(h, mode), 0);
}

/* Target side: exposes one buffer, later verifies what was written. */
static void *alloc_target(h_plugin *h, const char *mode) {
  void *p = NULL;
  if (!strcmp(mode, "vm"))
    p = malloc(LEN);
  else
    CHECK_RC(h->ops->alloc_mem(h->ctx, LEN, "cpu:0", &p), 0);
  CHECK(p);
  return p;
}

static void publish(h_plugin *h, chan c, void *buf, void **mem) {
  uint8_t desc[MC_DESC_MAX], key[MC_RKEY_MAX];
  size_t klen;
  h_send(c.wr, desc, (uint32_t)h_desc(h, desc, sizeof desc));
  CHECK_RC(h_register(h, buf, LEN, mem, key, &klen), 0);
  uint64_t base = (uint64_t)(uintptr_t)buf;
  h_send(c.wr, &base, 8);
  h_send(c.wr, key, (uint32_t)klen);
}

/* Initiator side: connects to and imports what publish() sent. */
static void *attach(h_plugin *h, chan c, uint64_t *base, void **ep) {
  uint8_t desc[MC_DESC_MAX], key[MC_RKEY_MAX];
  uint32_t dlen = h_recv(c.rd, desc, sizeof desc);
  CHECK(dlen != UINT32_MAX);
  CHECK_RC(h->ops->connect(h->ctx, "peer", desc, dlen, ep), 0);
  CHECK(h_recv(c.rd, base, 8) == 8);
  uint32_t klen = h_recv(c.rd, key, sizeof key);
  CHECK(klen != UINT32_MAX);
  void *rmem = NULL;
  CHECK_RC(h->ops->import_mem(h->ctx, *ep, *base, LEN, key, klen, &rmem), 0);
  return rmem;
}

static void wait_ok(pid_t pid) {
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_mode(const char *mode) {
  chan p, c;
  pid_t pid = spawn(&p, &c);
  if (pid == 0) {
    h_plugin h;
    init_mode(&h, mode);
    uint8_t *tgt = alloc_target(&h, mode);
    fill(tgt, LEN, 5);
    void *mem;
    publish(&h, c, tgt, &mem);
    char cmd;
    CHECK(h_recv(c.rd, &cmd, 1) == 1 && cmd == 'v');
    uint8_t ok = (uint8_t)check(tgt, LEN, 11);
    h_send(c.wr, &ok, 1);
    CHECK(h_recv(c.rd, &cmd, 1) == 1 && cmd == 'q');
    CHECK_RC(h.ops->deregister_mem(h.ctx, mem), 0);
    if (!strcmp(mode, "vm"))
      free(tgt);
    else
      CHECK_RC(h.ops->free_mem(h.ctx, tgt, LEN), 0);
    h_unload(&h);
    exit(0);
  }
  h_plugin h;
  init_mode(&h, "init");
  uint8_t *loc = malloc(LEN);
  void *lmem, *ep;
  uint8_t key[MC_RKEY_MAX];
  size_t klen;
  CHECK_RC(h_register(&h, loc, LEN, &lmem, key, &klen), 0);
  uint64_t base;
  void *rmem = attach(&h, p, &base, &ep);
  memset(loc, 0, LEN);
  for (uint64_t off = 0; off < LEN; off += 1u << 20) /* 1 MiB slices */
    CHECK_RC(h_xfer(&h, ep, MC_OP_READ, lmem, loc + off, rmem, base + off, 1u << 20), 0);
  CHECK(check(loc, LEN, 5));
  fill(loc, LEN, 11);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, lmem, loc, rmem, base, LEN), 0);
  h_send(p.wr, "v", 1);
  uint8_t ok = 0;
  CHECK(h_recv(p.rd, &ok, 1) == 1);
  CHECK_EQ_INT(ok, 1);
  h_send(p.wr, "q", 1);
  wait_ok(pid);
  CHECK_RC(h.ops->release_mem(h.ctx, rmem), 0);
  CHECK_RC(h.ops->disconnect(h.ctx, ep), 0);
  h_unload(&h);
  free(loc);
  close(p.rd);
  close(p.wr);
  printf("two processes, %s mode%s%s: data verified both ways\n", mode,
         copy_threads ? ", copy_threads " : "", copy_threads ? copy_threads : "");
}

/* The peer maps our pool and is killed in the middle of copies. */
static void test_kill_mapper(void) {
  h_plugin h;
  init_mode(&h, "memfd");
  uint8_t *pool = alloc_target(&h, "memfd");
  uint8_t *other = alloc_target(&h, "memfd");
  fill(pool, LEN, 21);
  fill(other, LEN, 22);
  chan p, c;
  pid_t pid = spawn(&p, &c);
  if (pid == 0) {
    h_plugin k;
    init_mode(&k, "child");
    uint8_t *loc = malloc(LEN);
    void *lmem, *ep;
    uint8_t key[MC_RKEY_MAX];
    size_t klen;
    CHECK_RC(h_register(&k, loc, LEN, &lmem, key, &klen), 0);
    uint64_t base;
    void *rmem = attach(&k, c, &base, &ep);
    h_send(c.wr, "r", 1);
    for (;;) { /* read it all and write the same bytes back, until killed */
      CHECK_RC(h_xfer(&k, ep, MC_OP_READ, lmem, loc, rmem, base, LEN), 0);
      CHECK_RC(h_xfer(&k, ep, MC_OP_WRITE, lmem, loc, rmem, base, LEN), 0);
    }
  }
  void *mem;
  publish(&h, p, pool, &mem);
  char r;
  CHECK(h_recv(p.rd, &r, 1) == 1 && r == 'r');
  usleep(50 * 1000);
  kill(pid, SIGKILL);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  CHECK(check(pool, LEN, 21));
  CHECK(check(other, LEN, 22));
  /* The pool table still works: free, allocate, use. */
  CHECK_RC(h.ops->deregister_mem(h.ctx, mem), 0);
  CHECK_RC(h.ops->free_mem(h.ctx, pool, LEN), 0);
  void *again = alloc_target(&h, "memfd");
  fill(again, LEN, 23);
  CHECK(check(again, LEN, 23) && check(other, LEN, 22));
  h_unload(&h); /* frees the remaining pools */
  close(p.rd);
  close(p.wr);
  printf("peer killed while mapping our pool: survivor intact\n");
}

/* We map the peer's pool (and see its plain memory); the peer is killed. */
static void test_kill_owner(const char *mode) {
  chan p, c;
  pid_t pid = spawn(&p, &c);
  if (pid == 0) {
    h_plugin k;
    init_mode(&k, mode);
    uint8_t *tgt = alloc_target(&k, mode);
    uint8_t *vm = malloc(LEN);
    fill(tgt, LEN, 31);
    fill(vm, LEN, 32);
    void *m1, *m2;
    publish(&k, c, tgt, &m1);
    publish(&k, c, vm, &m2);
    for (;;)
      pause();
  }
  h_plugin h;
  init_mode(&h, "survivor");
  uint8_t *loc = malloc(LEN);
  void *lmem, *ep, *ep2;
  uint8_t key[MC_RKEY_MAX];
  size_t klen;
  CHECK_RC(h_register(&h, loc, LEN, &lmem, key, &klen), 0);
  uint64_t base, vbase;
  void *rpool = attach(&h, p, &base, &ep);
  void *rvm = attach(&h, p, &vbase, &ep2);
  CHECK_RC(h_xfer(&h, ep2, MC_OP_READ, lmem, loc, rvm, vbase, LEN), 0);
  CHECK(check(loc, LEN, 32));
  kill(pid, SIGKILL);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  /* The mapping outlives its owner: no SIGBUS, the last contents. */
  memset(loc, 0, LEN);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, lmem, loc, rpool, base, LEN), 0);
  CHECK(check(loc, LEN, 31));
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, lmem, loc, rpool, base, LEN), 0);
  /* Plain memory of a dead process: a clean peer error. */
  CHECK_RC(h_xfer(&h, ep2, MC_OP_READ, lmem, loc, rvm, vbase, 4096), MC_EPEER);
  CHECK_RC(h_xfer(&h, ep2, MC_OP_WRITE, lmem, loc, rvm, vbase, 4096), MC_EPEER);
  CHECK_RC(h.ops->release_mem(h.ctx, rpool), 0);
  CHECK_RC(h.ops->release_mem(h.ctx, rvm), 0);
  h_unload(&h);
  free(loc);
  close(p.rd);
  close(p.wr);
  printf("owner of a mapped %s pool killed: survivor reads on, vm gives EPEER\n",
         mode);
}

/* The owner of plain memory dies while a flood of process_vm reads of it
 * is queued in our copy workers: every slice completes exactly once, with
 * success (copied before the kill) or MC_EPEER, none hangs. */
static void test_kill_midcopy(void) {
  chan p, c;
  pid_t pid = spawn(&p, &c);
  if (pid == 0) {
    h_plugin k;
    init_mode(&k, "vm");
    uint8_t *tgt = alloc_target(&k, "vm");
    fill(tgt, LEN, 41);
    void *m;
    publish(&k, c, tgt, &m);
    for (;;)
      pause();
  }
  h_plugin h;
  init_mode(&h, "survivor");
  uint8_t *loc = malloc(LEN);
  void *lmem, *ep;
  uint8_t key[MC_RKEY_MAX];
  size_t klen;
  CHECK_RC(h_register(&h, loc, LEN, &lmem, key, &klen), 0);
  uint64_t base;
  void *rmem = attach(&h, p, &base, &ep);
  enum { N = 256 }; /* 1 GiB of copies: far from done when the kill lands */
  mc_slice s[N];
  for (uint32_t i = 0; i < N; i++)
    s[i] = (mc_slice){7000 + i, MC_OP_READ, 0, lmem, (uint64_t)(uintptr_t)loc,
                      rmem, base, LEN};
  h_clear(&h);
  uint32_t acc = 0;
  CHECK_RC(h.ops->submit(h.ctx, ep, s, N, &acc), 0);
  CHECK(acc == N);
  kill(pid, SIGKILL);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  CHECK(h_wait(&h, N, 20000) == 0);
  usleep(20000);
  CHECK(h_ndone(&h) == N);
  uint32_t ok = 0, peer = 0;
  for (uint32_t i = 0; i < N; i++) {
    CHECK(h_count(&h, s[i].token) == 1);
    const h_done *d = h_find(&h, s[i].token);
    CHECK(d->status == 0 || d->status == MC_EPEER);
    CHECK(d->bytes == (d->status ? 0 : LEN));
    ok += d->status == 0;
    peer += d->status == MC_EPEER;
  }
  CHECK(peer > 0);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, lmem, loc, rmem, base, LEN), MC_EPEER);
  h_unload(&h);
  free(loc);
  close(p.rd);
  close(p.wr);
  printf("owner of plain memory killed mid-copy: %u done, %u MC_EPEER, each "
         "once\n", ok, peer);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s mc-transport-shm.so\n", argv[0]);
    return 2;
  }
  so = argv[1];
  signal(SIGPIPE, SIG_IGN);
  snprintf(pool_file, sizeof pool_file, "/dev/shm/mc-test-2p-%d", (int)getpid());
  test_mode("memfd");
  test_mode("vm");
  copy_threads = "0";
  test_mode("vm");
  copy_threads = NULL;
  unlink(pool_file);
  test_mode("file");
  unlink(pool_file);
  test_kill_mapper();
  test_kill_owner("memfd");
  test_kill_owner("file");
  unlink(pool_file);
  test_kill_midcopy();
  copy_threads = "0"; /* inline copies meet the dead peer too */
  test_kill_owner("memfd");
  copy_threads = NULL;
  return 0;
}
