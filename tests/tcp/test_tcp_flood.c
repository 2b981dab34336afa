/* test_tcp_flood.c - a flood of idle and slow connections against a target
 * while a legitimate peer keeps transferring.
 *
 * The target (hello_pool=32, hello_per_source=4, hello_timeout_ms=1000) and
 * a legitimate initiator run in this process; a child process opens
 * FLOOD_N connections at once from 17 source addresses (127.0.0.1 ..
 * 127.0.0.17, so both the per-source limit and the pool size are exceeded)
 * and holds them: half never send a byte, half send a HELLO one byte every
 * 100 ms; each one the target closes is opened again 20 ms later.  During
 * the flood the legitimate peer writes and reads back a pattern in a loop
 * (every byte compared), and a second peer connects from scratch.  Checks:
 * zero errors, progress in every second, the late peer got in, the
 * flood was really refused (the attacker saw its connections closed), and
 * the target's warnings were rate-limited (at most about one line a
 * second, counted).  Prints throughput before and during the flood.
 *
 *   test_tcp_flood <path/to/mc-transport-tcp.so> */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcp_test_host.h"
#include "tcp_test_peer.h"

#define FLOOD_N 1000
#define SOURCES 17
#define FLOOD_MS 4000
#define WINDOW_MS 1000

typedef struct flood_stats {
  long connects, closed_by_target, max_open, slow_bytes;
} flood_stats;

static int64_t now_ms(void) { return th_now_ms(); }

static int flood_open(uint16_t port, int src) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in me = {.sin_family = AF_INET};
  me.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)src);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&me, sizeof me) ||
      (connect(fd, (struct sockaddr *)&to, sizeof to) && errno != EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* The attacker: runs until its control pipe closes, then reports. */
static void flood_main(uint16_t port, int ctl, int out) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  static int fd[FLOOD_N];
  static int64_t reopen[FLOOD_N], next_byte[FLOOD_N];
  static int sent[FLOOD_N];
  static struct pollfd pf[FLOOD_N + 1];
  /* A syntactically valid HELLO header with a wrong secret. */
  static const uint8_t hello[64] = {'M', 'C', 'T', 'W', 1, 0, 1, 0, [40] = 8};
  flood_stats st = {0};
  for (int i = 0; i < FLOOD_N; i++)
    fd[i] = -1;
  fcntl(ctl, F_SETFL, O_NONBLOCK);
  for (;;) {
    int64_t now = now_ms();
    long open_now = 0;
    for (int i = 0; i < FLOOD_N; i++) {
      if (fd[i] < 0 && now >= reopen[i]) {
        fd[i] = flood_open(port, i % SOURCES);
        sent[i] = 0;
        next_byte[i] = now;
        st.connects += fd[i] >= 0;
      }
      if (fd[i] >= 0 && (i & 1) && now >= next_byte[i] && sent[i] < 64) {
        if (send(fd[i], &hello[sent[i]], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
          sent[i]++;
          st.slow_bytes++;
        }
        next_byte[i] = now + 100;
      }
      open_now += fd[i] >= 0;
      pf[i] = (struct pollfd){fd[i], POLLIN, 0};
    }
    if (open_now > st.max_open)
      st.max_open = open_now;
    pf[FLOOD_N] = (struct pollfd){ctl, POLLIN, 0};
    if (poll(pf, FLOOD_N + 1, 20) < 0 && errno != EINTR)
      break;
    if (pf[FLOOD_N].revents)
      break; /* the parent is done */
    now = now_ms();
    for (int i = 0; i < FLOOD_N; i++) {
      if (fd[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char b[64];
      ssize_t k = recv(fd[i], b, sizeof b, MSG_DONTWAIT);
      if (k > 0)
        continue; /* nothing is sent to strangers; ignore */
      if (k < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      close(fd[i]);
      fd[i] = -1;
      reopen[i] = now + 20;
      st.closed_by_target++;
    }
  }
  if (write(out, &st, sizeof st) != (ssize_t)sizeof st)
    _exit(3);
  _exit(0);
}

/* The peer that connects during the flood, on its own thread so the
 * legitimate peer's loop never waits for its dial. */
typedef struct late_arg {
  const mc_transport_ops *ops;
  tp_peer *p;
  const uint8_t *desc, *rkey;
  size_t dlen, rklen;
  uint64_t rbase;
  int errors;
} late_arg;

static void *late_main(void *v) {
  late_arg *a = v;
  tp_up(a->ops, a->p, "late:3", "connections=2", a->desc, a->dlen, a->rkey, a->rklen,
        a->rbase);
  a->errors = tp_round_trip(a->ops, a->p, a->rbase, 99);
  return NULL;
}

static int target_logs(th_host *t) {
  pthread_mutex_lock(&t->fh.lock);
  int n = t->fh.nlogs;
  pthread_mutex_unlock(&t->fh.lock);
  return n;
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  th_raise_nofile();
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *t = calloc(1, sizeof *t);
  th_host_init(t, "target:1",
               "hello_timeout_ms=1000;hello_pool=32;hello_per_source=4;io_threads=2");
  mc_init_args a = {sizeof a, "target:1", "127.0.0.1", "test"};
  void *tctx = NULL;
  CHECK_MSG(ops->init(&t->api, &a, &tctx) == 0, "target init");
  uint8_t *tbuf = calloc(1, 2 * TP_REGION);
  mc_mem_desc d = {(uint64_t)(uintptr_t)tbuf, 2 * TP_REGION, MC_MEM_CPU, -1, "cpu:0"};
  uint8_t desc[MC_DESC_MAX], rkey[MC_RKEY_MAX];
  size_t dlen = sizeof desc, rklen = sizeof rkey;
  void *tmem;
  CHECK_MSG(ops->local_desc(tctx, desc, &dlen) == 0, "local_desc");
  CHECK_MSG(ops->register_mem(tctx, &d, &tmem, rkey, &rklen) == 0, "register");
  uint16_t port = (uint16_t)(desc[6] | desc[7] << 8); /* tcp_wire.h: descriptor */

  tp_peer *legit = calloc(1, sizeof *legit), *late = calloc(1, sizeof *late);
  uint64_t base = (uint64_t)(uintptr_t)tbuf;
  tp_up(ops, legit, "legit:2", "connections=2", desc, dlen, rkey, rklen, base);

  /* Before the flood: the same loop for one second, for comparison. */
  int64_t t0 = now_ms();
  uint32_t seed = 1, rounds_before = 0;
  while (now_ms() - t0 < 1000) {
    CHECK_MSG(tp_round_trip(ops, legit, base, seed++) == 0, "transfer failed before the flood");
    rounds_before++;
  }
  double mbs_before = rounds_before * 2.0 * TP_REGION / 1e6 / ((now_ms() - t0) / 1e3);

  int ctl[2], res[2];
  CHECK_MSG(pipe(ctl) == 0 && pipe(res) == 0, "pipe");
  pid_t pid = fork();
  CHECK_MSG(pid >= 0, "fork");
  if (pid == 0) {
    close(ctl[1]);
    close(res[0]);
    flood_main(port, ctl[0], res[1]);
  }
  close(ctl[0]);
  close(res[1]);
  th_sleep_ms(300); /* let the flood fill the pool */
  int logs0 = target_logs(t);
  int64_t start = now_ms();
  int errors = 0, windows = 0, empty_windows = 0, late_started = 0;
  uint32_t rounds = 0, in_window = 0;
  int64_t window_end = start + WINDOW_MS;
  /* A peer that was not connected before the flood gets in. */
  late_arg la = {ops, late, desc, rkey, dlen, rklen, base + TP_REGION, -1};
  pthread_t late_th;
  while (now_ms() - start < FLOOD_MS) {
    errors += tp_round_trip(ops, legit, base, seed++);
    rounds++;
    in_window++;
    if (!late_started && now_ms() - start > FLOOD_MS / 4) {
      CHECK_MSG(pthread_create(&late_th, NULL, late_main, &la) == 0, "late peer thread");
      late_started = 1;
    }
    while (now_ms() >= window_end) {
      windows++;
      empty_windows += in_window == 0;
      in_window = 0;
      window_end += WINDOW_MS;
    }
  }
  int64_t took = now_ms() - start;
  int logs = target_logs(t) - logs0;
  if (late_started)
    pthread_join(late_th, NULL);
  int late_errors = la.errors, late_ok = late_started && late_errors == 0;
  close(ctl[1]);
  flood_stats fs = {0};
  CHECK_MSG(read(res[0], &fs, sizeof fs) == (ssize_t)sizeof fs, "flood process report");
  int st = 0;
  waitpid(pid, &st, 0);
  int threads, fds;
  long rss;
  th_proc_stats(&threads, &rss, &fds);
  double mbs = rounds * 2.0 * TP_REGION / 1e6 / (took / 1e3);
  printf("flood: %ld connections opened (%ld open at once at most, from %d addresses), "
         "%ld closed by the target, %ld slow HELLO bytes\n",
         fs.connects, fs.max_open, SOURCES, fs.closed_by_target, fs.slow_bytes);
  printf("legitimate peer: %.1f MB/s before, %.1f MB/s during the flood (%u verified round "
         "trips), %d errors, %d of %d seconds without progress; late peer %s\n",
         mbs_before, mbs, rounds, errors, empty_windows, windows,
         late_ok ? "connected and transferred" : "FAILED");
  printf("target: %d warning lines in %.1f s of flood (rate-limited); last: %s\n", logs,
         took / 1e3, t->fh.last_warn);
  printf("process: %d threads, RSS %ld KiB, %d fds\n", threads, rss, fds);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "flood process failed");
  CHECK_MSG(errors == 0, "%d errors during the flood", errors);
  CHECK_MSG(late_ok, "a new peer could not connect during the flood (%d errors)",
            late_errors);
  CHECK_MSG(empty_windows == 0, "the transfer stalled during the flood");
  CHECK_MSG(fs.max_open > 32 * 2, "the flood never exceeded the pool");
  CHECK_MSG(fs.closed_by_target > FLOOD_N, "the target did not refuse the flood");
  CHECK_MSG(logs >= 1 && logs <= took / 1000 + 3, "%d warning lines in %lld ms", logs,
            (long long)took);
  CHECK_MSG(strstr(t->fh.last_warn, "suppressed") && !strstr(t->fh.last_warn, "(0 similar"),
            "the last warning does not count suppressed ones: %s", t->fh.last_warn);

  CHECK_MSG(ops->fini(late->ctx) == 0 && ops->fini(legit->ctx) == 0, "peer fini");
  CHECK_MSG(ops->fini(tctx) == 0, "target fini");
  th_host_fini(&late->h);
  th_host_fini(&legit->h);
  th_host_fini(t);
  free(late->buf);
  free(legit->buf);
  free(late);
  free(legit);
  free(t);
  free(tbuf);
  dlclose(dl);
  printf("ok\n");
  return 0;
}
