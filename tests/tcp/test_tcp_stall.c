/* test_tcp_stall.c - authenticated peers that stall inside a frame, or ask
 * and never read, cannot hold the target's io threads.
 *
 * Target: io_threads=2, timeout_ms=1500.  STALLERS raw connections complete
 * HELLO (they hold the endpoint secret), send a WRITE header for 1 MiB and
 * 10 bytes of it, and stop; STALLERS more send 64 READs of 1 MiB each and
 * never read a byte.  That is far more stuck connections than io threads.
 * Meanwhile a legitimate peer keeps writing and reading back (every byte
 * compared): zero errors, progress in every second.  Then the target
 * closes every stuck connection after about timeout_ms without progress.
 *
 *   test_tcp_stall <path/to/mc-transport-tcp.so> */
#include <arpa/inet.h>
#include <errno.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_test_host.h"
#include "tcp_test_peer.h"
#include "tcp_wire.h"

#define STALLERS 8
#define RUN_MS 3000
#define WINDOW_MS 1000
#define MiB ((uint64_t)1 << 20)

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    CHECK_MSG(k > 0, "send");
    c += k;
    n -= (size_t)k;
  }
}

static int raw_hello(uint16_t port, const uint8_t *secret) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_MSG(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect");
  uint8_t raw[TCPW_HDR_SIZE + 8];
  tcpw_hdr h = {.type = TCPW_HELLO, .len = 8};
  memcpy(h.secret, secret, TCPW_SECRET_SIZE);
  tcpw_hdr_encode(&h, raw);
  memcpy(raw + TCPW_HDR_SIZE, "stall:99", 8);
  send_all(fd, raw, sizeof raw);
  size_t got = 0;
  while (got < TCPW_HDR_SIZE + 8) { /* HELLO_ACK: header + "target:1" */
    ssize_t k = recv(fd, raw + got, sizeof raw - got, 0);
    CHECK_MSG(k > 0, "no HELLO_ACK");
    got += (size_t)k;
  }
  return fd;
}

static void send_req(int fd, uint16_t type, uint64_t seq, const tcpw_rkey *k, uint64_t addr,
                     uint64_t len) {
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr h = {.type = type, .seq = seq, .buf_id = k->buf_id, .addr = addr, .len = len};
  memcpy(h.secret, k->secret, TCPW_SECRET_SIZE);
  tcpw_hdr_encode(&h, raw);
  send_all(fd, raw, sizeof raw);
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *t = calloc(1, sizeof *t);
  th_host_init(t, "target:1", "io_threads=2;timeout_ms=1500");
  mc_init_args a = {sizeof a, "target:1", "127.0.0.1", "test"};
  void *tctx = NULL;
  CHECK_MSG(ops->init(&t->api, &a, &tctx) == 0, "target init");
  size_t tlen = 2 * TP_REGION + MiB;
  uint8_t *tbuf = calloc(1, tlen);
  mc_mem_desc d = {(uint64_t)(uintptr_t)tbuf, tlen, MC_MEM_CPU, -1, "cpu:0"};
  uint8_t desc[MC_DESC_MAX], rkey[MC_RKEY_MAX], secret[TCPW_SECRET_SIZE];
  size_t dlen = sizeof desc, rklen = sizeof rkey;
  void *tmem;
  char host[TCPW_MAX_HOST + 1];
  uint16_t port = 0;
  tcpw_rkey k;
  CHECK_MSG(ops->local_desc(tctx, desc, &dlen) == 0, "local_desc");
  CHECK_MSG(tcpw_desc_decode(desc, dlen, host, sizeof host, &port, secret) == 0, "desc");
  CHECK_MSG(ops->register_mem(tctx, &d, &tmem, rkey, &rklen) == 0, "register");
  CHECK_MSG(tcpw_rkey_decode(rkey, rklen, &k) == 0, "rkey");
  uint64_t base = (uint64_t)(uintptr_t)tbuf, stall_area = base + 2 * TP_REGION;

  tp_peer *p = calloc(1, sizeof *p);
  tp_up(ops, p, "legit:2", "connections=2", desc, dlen, rkey, rklen, base);
  CHECK_MSG(tp_round_trip(ops, p, base, 1) == 0, "transfer before the stall");

  int fds[2 * STALLERS];
  uint8_t ten[10] = {0};
  for (int i = 0; i < STALLERS; i++) {
    fds[i] = raw_hello(port, secret);
    send_req(fds[i], TCPW_WRITE, 1, &k, stall_area, MiB);
    send_all(fds[i], ten, sizeof ten); /* and never the rest */
    int fd = raw_hello(port, secret);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    for (uint64_t s = 0; s < 64; s++)
      send_req(fd, TCPW_READ, s + 1, &k, stall_area, MiB); /* never read */
    fds[STALLERS + i] = fd;
  }
  int64_t start = th_now_ms(), window_end = start + WINDOW_MS;
  int errors = 0, windows = 0, empty = 0;
  uint32_t rounds = 0, in_window = 0, seed = 2;
  while (th_now_ms() - start < RUN_MS) {
    errors += tp_round_trip(ops, p, base, seed++);
    rounds++;
    in_window++;
    while (th_now_ms() >= window_end) {
      windows++;
      empty += in_window == 0;
      in_window = 0;
      window_end += WINDOW_MS;
    }
  }
  int64_t took = th_now_ms() - start;
  printf("legitimate peer beside %d stalled writers and %d non-readers (2 io threads): "
         "%.1f MB/s, %u verified round trips, %d errors, %d of %d seconds without "
         "progress\n", STALLERS, STALLERS, rounds * 2.0 * TP_REGION / 1e6 / (took / 1e3),
         rounds, errors, empty, windows);
  CHECK_MSG(errors == 0, "%d errors beside stalled peers", errors);
  CHECK_MSG(empty == 0, "the transfer stalled beside stalled peers");

  /* Every stuck connection is closed: its last progress was at least
   * RUN_MS ago, over timeout_ms; the scan runs every timeout_ms / 4. */
  int closed = 0;
  for (int i = 0; i < 2 * STALLERS; i++) {
    struct pollfd pf = {fds[i], POLLIN, 0};
    int64_t until = th_now_ms() + 3000;
    for (;;) {
      char buf[65536];
      if (poll(&pf, 1, 100) > 0) {
        ssize_t n = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          closed++;
          break;
        }
        if (i >= STALLERS && n > 0)
          continue; /* a non-reader finally reading: drain to the EOF */
      }
      if (th_now_ms() > until)
        break;
    }
    close(fds[i]);
  }
  printf("stuck connections closed by the target: %d of %d\n", closed, 2 * STALLERS);
  CHECK_MSG(closed == 2 * STALLERS, "only %d of %d stuck connections were closed", closed,
            2 * STALLERS);

  CHECK_MSG(ops->fini(p->ctx) == 0 && ops->fini(tctx) == 0, "fini");
  th_host_fini(&p->h);
  th_host_fini(t);
  free(p->buf);
  free(p);
  free(t);
  free(tbuf);
  dlclose(dl);
  printf("ok\n");
  return 0;
}
