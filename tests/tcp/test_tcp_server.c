/* test_tcp_server.c - the TCP plugin's target side driven by raw frames.
 *
 * A target context runs in this process; the test talks to its listener
 * with plain sockets and hand-built frames (tcp_wire.c), as a hostile or
 * buggy peer would: no HELLO, garbage, wrong keys, out-of-range addresses,
 * oversized frames.  The target must refuse, keep its memory untouched and
 * stay in sync on the connection where the protocol allows it.
 *
 *   test_tcp_server <path/to/mc-transport-tcp.so> */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_test_host.h"
#include "tcp_wire.h"

#define BUF (1u << 20)

static int dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_MSG(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect");
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    CHECK_MSG(k > 0, "send");
    c += k;
    n -= (size_t)k;
  }
}

static int recv_all(int fd, void *p, size_t n, int timeout_ms) {
  char *c = p;
  while (n) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, timeout_ms) <= 0)
      return -2; /* timeout */
    ssize_t k = recv(fd, c, n, 0);
    if (k <= 0)
      return -1; /* closed */
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

static void send_frame(int fd, tcpw_hdr *h, const void *payload, size_t plen) {
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr_encode(h, raw);
  send_all(fd, raw, sizeof raw);
  if (plen)
    send_all(fd, payload, plen);
}

static void recv_frame(int fd, tcpw_hdr *h) {
  uint8_t raw[TCPW_HDR_SIZE];
  CHECK_MSG(recv_all(fd, raw, sizeof raw, 5000) == 0, "no response frame");
  CHECK_MSG(tcpw_hdr_decode(raw, sizeof raw, h) == 0, "bad response frame");
}

/* Returns how long (ms) until the target closed fd, -1 if it did not
 * within limit_ms. */
static int64_t closed_within(int fd, int limit_ms) {
  int64_t t = th_now_ms();
  char c;
  int rc = recv_all(fd, &c, 1, limit_ms);
  return rc == -1 ? th_now_ms() - t : -1;
}

static uint8_t ep_secret[TCPW_SECRET_SIZE]; /* the target's, from its descriptor */

static int hello(uint16_t port, const char *name) {
  int fd = dial(port);
  tcpw_hdr h = {.type = TCPW_HELLO, .len = strlen(name)};
  memcpy(h.secret, ep_secret, sizeof h.secret);
  send_frame(fd, &h, name, strlen(name));
  recv_frame(fd, &h);
  CHECK_MSG(h.type == TCPW_HELLO_ACK, "expected HELLO_ACK, got %u", h.type);
  char peer[TCPW_MAX_NAME + 1];
  CHECK_MSG(recv_all(fd, peer, (size_t)h.len, 5000) == 0, "HELLO_ACK payload");
  peer[h.len] = '\0';
  CHECK_MSG(!strcmp(peer, "target:1"), "HELLO_ACK names '%s'", peer);
  return fd;
}

int main(int argc, char **argv) {
  CHECK_MSG(argc == 2, "usage: %s plugin.so", argv[0]);
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  /* Bad parameters fail init cleanly; good spellings are accepted. */
  static const char *bad[] = {"connections=0", "connections=65", "connections=abc",
                              "timeout_ms=-5", "socket_buffer=4Q", "port=70000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    th_host *hb = calloc(1, sizeof *hb);
    th_host_init(hb, "cfg:1", bad[i]);
    mc_init_args ba = {sizeof ba, "cfg:1", "127.0.0.1", "test"};
    void *bctx = NULL;
    CHECK_MSG(ops->init(&hb->api, &ba, &bctx) == MC_EINVAL, "init accepted '%s'", bad[i]);
    th_host_fini(hb);
    free(hb);
  }
  {
    th_host *hg = calloc(1, sizeof *hg);
    th_host_init(hg, "cfg:1", "connections=2;socket_buffer=4MiB;max_inflight=8");
    mc_init_args ga = {sizeof ga, "cfg:1", "127.0.0.1", "test"};
    void *gctx = NULL;
    CHECK_MSG(ops->init(&hg->api, &ga, &gctx) == 0, "init refused good parameters");
    mc_rail_info rails[4];
    uint32_t nr = 4;
    CHECK_MSG(ops->query_rails(gctx, rails, &nr) == 0 && nr == 2 && !strcmp(rails[1].name, "conn1"),
             "connections=2 gave %u rails", nr);
    CHECK_MSG(ops->fini(gctx) == 0, "fini");
    th_host_fini(hg);
    free(hg);
  }
  printf("ok: parameters validated\n");
  th_host *h = calloc(1, sizeof *h);
  th_host_init(h, "target:1", "hello_timeout_ms=300");
  mc_init_args a = {sizeof a, "target:1", "127.0.0.1", "test"};
  void *ctx = NULL;
  CHECK_MSG(ops->init(&h->api, &a, &ctx) == 0, "init");
  uint8_t desc[MC_DESC_MAX];
  size_t dl_len = sizeof desc;
  CHECK_MSG(ops->local_desc(ctx, desc, &dl_len) == 0, "local_desc");
  char host[TCPW_MAX_HOST + 1];
  uint16_t port;
  CHECK_MSG(tcpw_desc_decode(desc, dl_len, host, sizeof host, &port, ep_secret) == 0,
           "desc");
  CHECK_MSG(!strcmp(host, "127.0.0.1"), "published host %s", host);

  uint8_t *mem = malloc(BUF), *snap = malloc(BUF), *io = malloc(BUF);
  for (uint32_t i = 0; i < BUF; i++)
    mem[i] = (uint8_t)(i * 7);
  mc_mem_desc md = {(uint64_t)(uintptr_t)mem, BUF, MC_MEM_CPU, -1, "cpu:0"};
  uint8_t rk[MC_RKEY_MAX];
  size_t rkl = sizeof rk;
  void *hmem;
  CHECK_MSG(ops->register_mem(ctx, &md, &hmem, rk, &rkl) == 0, "register");
  tcpw_rkey key;
  CHECK_MSG(tcpw_rkey_decode(rk, rkl, &key) == 0, "rkey");
  CHECK_MSG(key.base == md.addr && key.len == BUF, "rkey range");

  /* 1. No HELLO: closed after hello_timeout_ms (300 ms). */
  int fd = dial(port);
  int64_t t = closed_within(fd, 3000);
  CHECK_MSG(t >= 200 && t < 3000, "silent connection closed after %lld ms", (long long)t);
  close(fd);
  printf("ok: silent connection closed after %lld ms\n", (long long)t);

  /* 2. Garbage instead of HELLO: closed at once. */
  fd = dial(port);
  uint8_t junk[TCPW_HDR_SIZE];
  memset(junk, 0x41, sizeof junk);
  send_all(fd, junk, sizeof junk);
  CHECK_MSG(closed_within(fd, 2000) >= 0, "garbage HELLO not closed");
  close(fd);
  /* A data frame before HELLO: closed, memory untouched. */
  memcpy(snap, mem, BUF);
  fd = dial(port);
  tcpw_hdr w = {.type = TCPW_WRITE, .buf_id = key.buf_id, .addr = key.base, .len = 16};
  memcpy(w.secret, key.secret, 16);
  send_frame(fd, &w, "0123456789abcdef", 16);
  CHECK_MSG(closed_within(fd, 2000) >= 0, "WRITE before HELLO not closed");
  CHECK_MSG(!memcmp(snap, mem, BUF), "memory changed by an unattributed WRITE");
  close(fd);
  /* A well-formed HELLO without the endpoint's secret (a client that never
   * read the descriptor): no HELLO_ACK, closed, and a NOTIFY sent after it
   * is never delivered. */
  for (int variant = 0; variant < 2; variant++) {
    fd = dial(port);
    tcpw_hdr hh = {.type = TCPW_HELLO, .len = 10};
    if (variant) { /* one bit off */
      memcpy(hh.secret, ep_secret, sizeof hh.secret);
      hh.secret[15] ^= 1;
    }
    uint8_t frames[2 * TCPW_HDR_SIZE + 15];
    tcpw_hdr_encode(&hh, frames);
    memcpy(frames + TCPW_HDR_SIZE, "intruder:1", 10);
    tcpw_hdr nt0 = {.type = TCPW_NOTIFY, .len = 5};
    tcpw_hdr_encode(&nt0, frames + TCPW_HDR_SIZE + 10);
    memcpy(frames + 2 * TCPW_HDR_SIZE + 10, "spoof", 5);
    send_all(fd, frames, sizeof frames);
    CHECK_MSG(closed_within(fd, 2000) >= 0, "HELLO without the endpoint secret not closed");
    close(fd);
  }
  th_sleep_ms(50);
  CHECK_MSG(h->notifies == 0, "a NOTIFY from an unauthenticated connection was delivered");
  printf("ok: garbage, unattributed frames and HELLOs without the endpoint secret refused\n");

  /* 3. After HELLO: valid READ. */
  fd = hello(port, "raw-peer:9");
  tcpw_hdr r = {.type = TCPW_READ, .seq = 1, .buf_id = key.buf_id, .addr = key.base + 5,
                .len = 4096};
  memcpy(r.secret, key.secret, 16);
  send_frame(fd, &r, NULL, 0);
  tcpw_hdr resp;
  recv_frame(fd, &resp);
  CHECK_MSG(resp.type == TCPW_READ_RESP && resp.seq == 1 && resp.status == 0 && resp.len == 4096,
           "read response");
  CHECK_MSG(recv_all(fd, io, 4096, 5000) == 0 && !memcmp(io, mem + 5, 4096), "read data");

  /* Wrong secret on READ: EACCES, no payload. */
  r.seq = 2;
  r.secret[3] ^= 0x10;
  send_frame(fd, &r, NULL, 0);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.seq == 2 && resp.status == MC_EACCES && tcpw_payload_len(&resp) == 0,
           "wrong-key read: status %d", resp.status);

  /* Wrong secret on WRITE: EACCES, payload drained, memory unchanged. */
  memcpy(snap, mem, BUF);
  memset(io, 0xCC, 200000);
  tcpw_hdr wr = {.type = TCPW_WRITE, .seq = 3, .buf_id = key.buf_id, .addr = key.base,
                 .len = 200000};
  memcpy(wr.secret, key.secret, 16);
  wr.secret[15] ^= 1;
  send_frame(fd, &wr, io, 200000);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.type == TCPW_WRITE_RESP && resp.seq == 3 && resp.status == MC_EACCES,
           "wrong-key write: status %d", resp.status);
  CHECK_MSG(!memcmp(snap, mem, BUF), "memory changed by a wrong-key WRITE");

  /* Out of range, and unknown buffer: ERANGE, memory unchanged. */
  wr.seq = 4;
  wr.secret[15] ^= 1;
  wr.addr = key.base + BUF - 100;
  wr.len = 200;
  send_frame(fd, &wr, io, 200);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.seq == 4 && resp.status == MC_ERANGE, "out-of-range write: %d", resp.status);
  wr.seq = 5;
  wr.addr = key.base - 1;
  send_frame(fd, &wr, io, 200);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.seq == 5 && resp.status == MC_ERANGE, "write below base: %d", resp.status);
  r.seq = 6;
  r.buf_id = key.buf_id + 1000;
  send_frame(fd, &r, NULL, 0);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.seq == 6 && resp.status == MC_ERANGE, "unknown buffer: %d", resp.status);
  CHECK_MSG(!memcmp(snap, mem, BUF), "memory changed by refused WRITEs");

  /* The connection is still in sync: a valid WRITE lands. */
  wr.seq = 7;
  wr.addr = key.base + 1000;
  wr.len = 3000;
  send_frame(fd, &wr, io, 3000);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.seq == 7 && resp.status == 0, "valid write: %d", resp.status);
  CHECK_MSG(!memcmp(mem + 1000, io, 3000) && !memcmp(mem, snap, 1000) &&
           !memcmp(mem + 4000, snap + 4000, BUF - 4000), "valid write landed wrongly");
  printf("ok: wrong key (EACCES), out of range and unknown buffer (ERANGE) refused, memory intact\n");

  /* NOTIFY is attributed to the HELLO name. */
  tcpw_hdr nt = {.type = TCPW_NOTIFY, .len = 5};
  send_frame(fd, &nt, "ready", 5);
  int64_t end = th_now_ms() + 5000;
  while (h->notifies == 0 && th_now_ms() < end)
    th_sleep_ms(2);
  CHECK_MSG(h->notifies == 1, "notify not delivered");

  /* Oversized frame: connection closed. */
  tcpw_hdr big = {.type = TCPW_WRITE, .seq = 8, .buf_id = key.buf_id, .addr = key.base,
                  .len = TCPW_MAX_IO + 1};
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr_encode(&big, raw);
  send_all(fd, raw, sizeof raw);
  CHECK_MSG(closed_within(fd, 2000) >= 0, "oversized frame not closed");
  close(fd);
  printf("ok: notify attributed, oversized frame closes the connection\n");

  /* Deregister: the old key stops working. */
  fd = hello(port, "raw-peer:9");
  CHECK_MSG(ops->deregister_mem(ctx, hmem) == 0, "deregister");
  r.seq = 9;
  r.buf_id = key.buf_id;
  memcpy(r.secret, key.secret, 16);
  send_frame(fd, &r, NULL, 0);
  recv_frame(fd, &resp);
  CHECK_MSG(resp.seq == 9 && resp.status == MC_ERANGE, "read after deregister: %d", resp.status);
  close(fd);
  printf("ok: deregistered buffer unreachable\n");

  CHECK_MSG(ops->fini(ctx) == 0, "fini");
  dlclose(dl);
  th_host_fini(h);
  free(h);
  free(mem);
  free(snap);
  free(io);
  return 0;
}
