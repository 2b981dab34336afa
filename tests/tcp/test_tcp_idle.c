/* test_tcp_idle.c - the target's idle limit on authenticated connections,
 * and the initiator's transparent reconnect.
 *
 * Target: idle_timeout_ms=300.  (1) A raw connection that completes HELLO
 * and then says nothing is closed by the target after 300 ms (the scan runs
 * every second: within 300..2500 ms).  (2) An initiator with no idle limit
 * of its own transfers, sits idle while the target closes its connections,
 * and transfers again: zero errors (it notices the EOF and dials again).
 * (3) An initiator with the same idle_timeout_ms closes its connections
 * first (after half of it) and transfers again: zero errors.
 *
 *   test_tcp_idle <path/to/mc-transport-tcp.so> */
#include <arpa/inet.h>
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

static int raw_hello(uint16_t port, const uint8_t *secret) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_MSG(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect");
  uint8_t raw[TCPW_HDR_SIZE + 8];
  tcpw_hdr h = {.type = TCPW_HELLO, .len = 8};
  memcpy(h.secret, secret, TCPW_SECRET_SIZE);
  tcpw_hdr_encode(&h, raw);
  memcpy(raw + TCPW_HDR_SIZE, "raw:9999", 8);
  CHECK_MSG(send(fd, raw, sizeof raw, MSG_NOSIGNAL) == (ssize_t)sizeof raw, "send HELLO");
  size_t got = 0;
  while (got < TCPW_HDR_SIZE + 8) { /* HELLO_ACK: header + "target:1" */
    ssize_t k = recv(fd, raw + got, sizeof raw - got, 0);
    CHECK_MSG(k > 0, "no HELLO_ACK");
    got += (size_t)k;
  }
  return fd;
}

/* ms until the target closes fd, or -1 after limit_ms. */
static int64_t closed_after(int fd, int limit_ms) {
  int64_t t0 = th_now_ms();
  struct pollfd p = {fd, POLLIN, 0};
  while (th_now_ms() - t0 < limit_ms) {
    if (poll(&p, 1, 50) > 0) {
      char b;
      if (recv(fd, &b, 1, 0) <= 0)
        return th_now_ms() - t0;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *t = calloc(1, sizeof *t);
  th_host_init(t, "target:1", "idle_timeout_ms=300");
  mc_init_args a = {sizeof a, "target:1", "127.0.0.1", "test"};
  void *tctx = NULL;
  CHECK_MSG(ops->init(&t->api, &a, &tctx) == 0, "target init");
  uint8_t *tbuf = calloc(1, 2 * TP_REGION);
  mc_mem_desc d = {(uint64_t)(uintptr_t)tbuf, 2 * TP_REGION, MC_MEM_CPU, -1, "cpu:0"};
  uint8_t desc[MC_DESC_MAX], rkey[MC_RKEY_MAX], secret[TCPW_SECRET_SIZE];
  size_t dlen = sizeof desc, rklen = sizeof rkey;
  void *tmem;
  char host[TCPW_MAX_HOST + 1];
  uint16_t port = 0;
  CHECK_MSG(ops->local_desc(tctx, desc, &dlen) == 0, "local_desc");
  CHECK_MSG(tcpw_desc_decode(desc, dlen, host, sizeof host, &port, secret) == 0, "desc");
  CHECK_MSG(ops->register_mem(tctx, &d, &tmem, rkey, &rklen) == 0, "register");
  uint64_t base = (uint64_t)(uintptr_t)tbuf;

  int fd = raw_hello(port, secret);
  int64_t ms = closed_after(fd, 5000);
  close(fd);
  CHECK_MSG(ms >= 250 && ms <= 2500, "idle authenticated connection closed after %lld ms",
            (long long)ms);
  printf("ok: idle authenticated connection closed after %lld ms\n", (long long)ms);

  tp_peer *p = calloc(1, sizeof *p), *q = calloc(1, sizeof *q);
  tp_up(ops, p, "patient:2", "idle_timeout_ms=0", desc, dlen, rkey, rklen, base);
  CHECK_MSG(tp_round_trip(ops, p, base, 1) == 0, "first transfer");
  th_sleep_ms(1800); /* the target closes both of its connections */
  int errs = 0;
  for (uint32_t i = 0; i < 5; i++)
    errs += tp_round_trip(ops, p, base, 2 + i);
  CHECK_MSG(errs == 0, "%d errors after the target closed idle connections", errs);
  printf("ok: initiator reconnected after the target's idle close, 0 errors\n");

  tp_up(ops, q, "same:3", "idle_timeout_ms=300", desc, dlen, rkey, rklen, base + TP_REGION);
  CHECK_MSG(tp_round_trip(ops, q, base + TP_REGION, 9) == 0, "first transfer");
  th_sleep_ms(1800);
  errs = 0;
  for (uint32_t i = 0; i < 5; i++)
    errs += tp_round_trip(ops, q, base + TP_REGION, 10 + i);
  CHECK_MSG(errs == 0, "%d errors after an idle period", errs);
  printf("ok: initiator with the same idle limit closed first and reconnected, 0 errors\n");

  CHECK_MSG(ops->fini(p->ctx) == 0 && ops->fini(q->ctx) == 0 && ops->fini(tctx) == 0, "fini");
  th_host_fini(&p->h);
  th_host_fini(&q->h);
  th_host_fini(t);
  free(p->buf);
  free(q->buf);
  free(p);
  free(q);
  free(t);
  free(tbuf);
  dlclose(dl);
  return 0;
}
