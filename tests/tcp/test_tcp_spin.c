/* test_tcp_spin.c - a served connection with unread input costs the target
 * no CPU while its worker waits (for the peer to read its responses).
 *
 * Regression test: the HELLO thread used to keep every connection it
 * handed over in its own level-triggered epoll set, so any input waiting
 * on a served connection woke it in a loop (a core spent for the length of
 * every transfer, starving the workers).  Here an authenticated raw peer
 * sends 1,000 READs of 1 MiB and reads nothing: the target fills its send
 * buffer, waits for EPOLLOUT, and leaves most requests unread in the
 * socket.  Over the next second the whole process must use well under
 * SPIN_LIMIT_MS of CPU (a spinning thread takes a large share of a core
 * even on a loaded machine).
 *
 *   test_tcp_spin <path/to/mc-transport-tcp.so> */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_test_host.h"
#include "tcp_wire.h"

#define MiB ((uint64_t)1 << 20)
#define NREQ 1000
#define MEASURE_MS 1000
#define SPIN_LIMIT_MS 100

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    CHECK_MSG(k > 0, "send");
    c += k;
    n -= (size_t)k;
  }
}

static int64_t cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *t = calloc(1, sizeof *t);
  th_host_init(t, "target:1", "io_threads=1");
  mc_init_args a = {sizeof a, "target:1", "127.0.0.1", "test"};
  void *tctx = NULL;
  CHECK_MSG(ops->init(&t->api, &a, &tctx) == 0, "target init");
  uint8_t *tbuf = calloc(1, MiB);
  mc_mem_desc d = {(uint64_t)(uintptr_t)tbuf, MiB, MC_MEM_CPU, -1, "cpu:0"};
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

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_MSG(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect");
  uint8_t raw[TCPW_HDR_SIZE + 8];
  tcpw_hdr h = {.type = TCPW_HELLO, .len = 8};
  memcpy(h.secret, secret, TCPW_SECRET_SIZE);
  tcpw_hdr_encode(&h, raw);
  memcpy(raw + TCPW_HDR_SIZE, "slow:999", 8);
  send_all(fd, raw, sizeof raw);
  size_t got = 0;
  while (got < TCPW_HDR_SIZE + 8) { /* HELLO_ACK: header + "target:1" */
    ssize_t n = recv(fd, raw + got, sizeof raw - got, 0);
    CHECK_MSG(n > 0, "no HELLO_ACK");
    got += (size_t)n;
  }
  /* 64 KB of requests: they fit in the sockets' buffers, the responses
   * (1 GB) do not. */
  static uint8_t reqs[NREQ][TCPW_HDR_SIZE];
  for (uint64_t s = 0; s < NREQ; s++) {
    tcpw_hdr r = {.type = TCPW_READ, .seq = s + 1, .buf_id = k.buf_id,
                  .addr = (uint64_t)(uintptr_t)tbuf, .len = MiB};
    memcpy(r.secret, k.secret, TCPW_SECRET_SIZE);
    tcpw_hdr_encode(&r, reqs[s]);
  }
  send_all(fd, reqs, sizeof reqs);
  th_sleep_ms(300); /* the target fills its send buffer and waits */
  /* The target's end of the connection is a socket of this process: the
   * one other stream socket with input waiting. */
  int unread = 0;
  for (int f = 3; f < 1024; f++) {
    int type = 0, n = 0;
    socklen_t tl = sizeof type;
    if (f != fd && getsockopt(f, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
        type == SOCK_STREAM && ioctl(f, FIONREAD, &n) == 0 && n > unread)
      unread = n;
  }
  printf("requests not yet read by the target: %d bytes\n", unread);
  CHECK_MSG(unread > 0, "the target read every request: the test proves nothing");

  int64_t c0 = cpu_ms(), w0 = th_now_ms();
  th_sleep_ms(MEASURE_MS);
  int64_t used = cpu_ms() - c0, wall = th_now_ms() - w0;
  printf("target CPU while its peer does not read: %lld ms in %lld ms\n", (long long)used,
         (long long)wall);
  CHECK_MSG(used < SPIN_LIMIT_MS, "target used %lld ms of CPU in %lld ms waiting (a thread "
            "spins on the served connection)", (long long)used, (long long)wall);

  close(fd);
  CHECK_MSG(ops->fini(tctx) == 0, "fini");
  th_host_fini(t);
  free(t);
  free(tbuf);
  dlclose(dl);
  printf("ok\n");
  return 0;
}
