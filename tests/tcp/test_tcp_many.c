/* test_tcp_many.c - 256 peer engines move data to one target at once.
 *
 * The target context runs in this process; PROCS child processes run
 * PEERS / PROCS initiator contexts each (every context is a whole plugin
 * instance: its own listener, endpoint and connections, as an engine's).
 * After all are up, a barrier releases them together: each peer WRITEs its
 * own region of the target's buffer (a pattern of its own) in SLICE-sized
 * slices over its rails, then READs it back and compares every byte; the
 * parent then checks the whole buffer.  Meanwhile a sampler records the
 * target process's peak thread count, RSS and fds, printed at the end; the
 * thread count must stay under 64 (the event-driven target: it must not
 * grow with peers).
 *
 *   test_tcp_many <path/to/mc-transport-tcp.so> */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcp_test_host.h"

#define PEERS 256u
#define PROCS 8u
#define PER_PROC (PEERS / PROCS)
#define REGION ((size_t)256 << 10) /* bytes per peer in the target buffer */
#define SLICE ((size_t)64 << 10)
#define NSLICE ((uint32_t)(REGION / SLICE))
#define MAX_THREADS 64

static uint8_t pat(uint32_t peer, uint64_t off) {
  return (uint8_t)(peer * 37u + off * 13u + (off >> 9));
}

/* What the target publishes; the children inherit it through fork. */
static uint8_t t_desc[MC_DESC_MAX], t_rkey[MC_RKEY_MAX];
static size_t t_desc_len, t_rkey_len;
static uint64_t t_base;

typedef struct peer_state {
  th_host h;
  void *ctx, *ep, *rmem, *lmem;
  uint8_t *buf; /* [0, REGION): source of the write; [REGION, 2x): read back */
} peer_state;

typedef struct child_result {
  uint32_t peers_ok, slice_errors, bad_peers;
} child_result;

static void child_main(const char *plugin, uint32_t first, int ready_fd, int start_fd,
                       int result_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  th_raise_nofile();
  void *dl;
  const mc_transport_ops *ops = th_load(plugin, &dl);
  peer_state *ps = calloc(PER_PROC, sizeof *ps);
  CHECK_MSG(ps != NULL, "calloc");
  for (uint32_t k = 0; k < PER_PROC; k++) {
    peer_state *p = &ps[k];
    char name[32];
    snprintf(name, sizeof name, "peer-%03u:1", first + k);
    th_host_init(&p->h, name, "connections=2;io_threads=1;timeout_ms=20000");
    mc_init_args a = {sizeof a, name, "127.0.0.1", "test"};
    CHECK_MSG(ops->init(&p->h.api, &a, &p->ctx) == 0, "peer init");
    p->buf = malloc(2 * REGION);
    CHECK_MSG(p->buf != NULL, "malloc");
    for (uint64_t off = 0; off < REGION; off++)
      p->buf[off] = pat(first + k, off);
    memset(p->buf + REGION, 0, REGION);
    mc_mem_desc d = {(uint64_t)(uintptr_t)p->buf, 2 * REGION, MC_MEM_CPU, -1, "cpu:0"};
    uint8_t rk[MC_RKEY_MAX];
    size_t rkl = sizeof rk;
    CHECK_MSG(ops->register_mem(p->ctx, &d, &p->lmem, rk, &rkl) == 0, "register");
    CHECK_MSG(ops->connect(p->ctx, "target:0", t_desc, t_desc_len, &p->ep) == 0, "connect");
    uint64_t rbase = t_base + (uint64_t)(first + k) * REGION;
    CHECK_MSG(ops->import_mem(p->ctx, p->ep, rbase, REGION, t_rkey, t_rkey_len,
                              &p->rmem) == 0, "import");
  }
  char c = 'r';
  CHECK_MSG(write(ready_fd, &c, 1) == 1, "ready");
  CHECK_MSG(read(start_fd, &c, 1) == 1, "start");

  child_result res = {0};
  /* Everyone writes at once, then everyone reads back. */
  for (uint32_t phase = 0; phase < 2; phase++) {
    uint32_t op = phase ? MC_OP_READ : MC_OP_WRITE;
    for (uint32_t k = 0; k < PER_PROC; k++) {
      peer_state *p = &ps[k];
      int rc = 0;
      /* remote addresses: the peer's region, slice by slice */
      uint64_t rbase = t_base + (uint64_t)(first + k) * REGION;
      mc_slice s[NSLICE];
      for (uint32_t i = 0; i < NSLICE; i++)
        s[i] = (mc_slice){phase * NSLICE + i, op, i, p->lmem,
                          (uint64_t)(uintptr_t)p->buf + (phase ? REGION : 0) + i * SLICE,
                          p->rmem, rbase + i * SLICE, SLICE};
      uint32_t done = 0;
      int64_t end = th_now_ms() + 20000;
      while (!rc && done < NSLICE) {
        uint32_t acc = 0;
        rc = ops->submit(p->ctx, p->ep, s + done, NSLICE - done, &acc);
        rc = rc == MC_EAGAIN ? 0 : rc;
        done += acc;
        if (th_now_ms() > end)
          rc = MC_ETIMEDOUT;
      }
      if (rc)
        res.slice_errors += NSLICE - done;
    }
    for (uint32_t k = 0; k < PER_PROC; k++) {
      peer_state *p = &ps[k];
      if (th_wait(&p->h, phase * NSLICE, NSLICE, 30000)) {
        res.slice_errors += NSLICE;
        continue;
      }
      for (uint32_t i = 0; i < NSLICE; i++)
        if (p->h.status[phase * NSLICE + i] != 0) {
          fprintf(stderr, "peer %u slice %u: status %d\n", first + k, i,
                  p->h.status[phase * NSLICE + i]);
          res.slice_errors++;
        }
    }
  }
  for (uint32_t k = 0; k < PER_PROC; k++) {
    peer_state *p = &ps[k];
    if (memcmp(p->buf, p->buf + REGION, REGION))
      res.bad_peers++;
    else
      res.peers_ok++;
    CHECK_MSG(p->h.doubles == 0, "double completion");
    CHECK_MSG(ops->fini(p->ctx) == 0, "peer fini");
    th_host_fini(&p->h);
    free(p->buf);
  }
  free(ps);
  CHECK_MSG(write(result_fd, &res, sizeof res) == (ssize_t)sizeof res, "result");
  _exit(0);
}

typedef struct sampler {
  pthread_t th;
  volatile int stop;
  int peak_threads, peak_fds;
  long peak_rss;
} sampler;

static void *sample_main(void *arg) {
  sampler *s = arg;
  while (!s->stop) {
    int t, f;
    long r;
    th_proc_stats(&t, &r, &f);
    if (t > s->peak_threads)
      s->peak_threads = t;
    if (f > s->peak_fds)
      s->peak_fds = f;
    if (r > s->peak_rss)
      s->peak_rss = r;
    th_sleep_ms(5);
  }
  return NULL;
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  th_raise_nofile();
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *h = calloc(1, sizeof *h);
  /* Every peer dials from 127.0.0.1: the per-source HELLO limit must let
   * a burst of 512 handshakes from one address through (the initiator
   * retries an evicted handshake), with the defaults otherwise. */
  th_host_init(h, "target:0", NULL);
  mc_init_args a = {sizeof a, "target:0", "127.0.0.1", "test"};
  void *ctx = NULL;
  CHECK_MSG(ops->init(&h->api, &a, &ctx) == 0, "target init");
  size_t total = PEERS * REGION;
  uint8_t *buf = calloc(1, total);
  CHECK_MSG(buf != NULL, "calloc");
  t_base = (uint64_t)(uintptr_t)buf;
  mc_mem_desc d = {t_base, total, MC_MEM_CPU, -1, "cpu:0"};
  void *mem;
  t_desc_len = sizeof t_desc;
  t_rkey_len = sizeof t_rkey;
  CHECK_MSG(ops->local_desc(ctx, t_desc, &t_desc_len) == 0, "local_desc");
  CHECK_MSG(ops->register_mem(ctx, &d, &mem, t_rkey, &t_rkey_len) == 0, "register");

  int ready[2], start[2], result[2];
  CHECK_MSG(pipe(ready) == 0 && pipe(start) == 0 && pipe(result) == 0, "pipe");
  pid_t pids[PROCS];
  int64_t t0 = th_now_ms();
  for (uint32_t i = 0; i < PROCS; i++) {
    pids[i] = fork();
    CHECK_MSG(pids[i] >= 0, "fork");
    if (pids[i] == 0) {
      close(ready[0]);
      close(start[1]);
      close(result[0]);
      child_main(argv[1], i * PER_PROC, ready[1], start[0], result[1]);
    }
  }
  close(ready[1]);
  close(start[0]);
  close(result[1]);
  for (uint32_t i = 0; i < PROCS; i++) {
    char c;
    CHECK_MSG(read(ready[0], &c, 1) == 1, "a peer process died while starting");
  }
  int64_t t_up = th_now_ms();
  int base_threads, base_fds;
  long base_rss;
  th_proc_stats(&base_threads, &base_rss, &base_fds);
  sampler smp = {0};
  CHECK_MSG(pthread_create(&smp.th, NULL, sample_main, &smp) == 0, "sampler");
  char go[PROCS];
  memset(go, 'g', sizeof go);
  CHECK_MSG(write(start[1], go, sizeof go) == (ssize_t)sizeof go, "start");
  child_result sum = {0};
  for (uint32_t i = 0; i < PROCS; i++) {
    child_result r;
    CHECK_MSG(read(result[0], &r, sizeof r) == (ssize_t)sizeof r,
              "a peer process died during the transfer");
    sum.peers_ok += r.peers_ok;
    sum.slice_errors += r.slice_errors;
    sum.bad_peers += r.bad_peers;
  }
  int64_t t_done = th_now_ms();
  smp.stop = 1;
  pthread_join(smp.th, NULL);
  for (uint32_t i = 0; i < PROCS; i++) {
    int st = 0;
    CHECK_MSG(waitpid(pids[i], &st, 0) == pids[i], "waitpid");
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer process %u failed (status %d)",
              i, st);
  }
  uint64_t bad = 0;
  for (uint32_t p = 0; p < PEERS; p++)
    for (uint64_t off = 0; off < REGION; off++)
      bad += buf[p * REGION + off] != pat(p, off);
  printf("%u peer engines in %u processes: up in %lld ms, %u x %zu KiB written and "
         "read back in %lld ms\n", PEERS, PROCS, (long long)(t_up - t0), PEERS,
         REGION >> 10, (long long)(t_done - t_up));
  printf("target: threads %d before, peak %d (limit %d); RSS %ld KiB before, peak %ld "
         "KiB; fds %d before, peak %d\n", base_threads, smp.peak_threads, MAX_THREADS - 1,
         base_rss, smp.peak_rss, base_fds, smp.peak_fds);
  printf("peers verified %u/%u, slice errors %u, bad target bytes %llu\n", sum.peers_ok,
         PEERS, sum.slice_errors, (unsigned long long)bad);
  CHECK_MSG(sum.slice_errors == 0, "%u slices failed", sum.slice_errors);
  CHECK_MSG(sum.peers_ok == PEERS, "%u peers read back wrong data", sum.bad_peers);
  CHECK_MSG(bad == 0, "%llu bytes of the target buffer wrong", (unsigned long long)bad);
  CHECK_MSG(smp.peak_threads < MAX_THREADS, "target peaked at %d threads",
            smp.peak_threads);
  CHECK_MSG(smp.peak_fds > (int)PEERS, "the target never held the peers' connections "
            "(peak %d fds): the test did not test", smp.peak_fds);
  CHECK_MSG(ops->fini(ctx) == 0, "target fini");
  th_host_fini(h);
  free(h);
  free(buf);
  dlclose(dl);
  printf("ok\n");
  return 0;
}
