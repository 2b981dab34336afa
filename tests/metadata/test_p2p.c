/* The p2p metadata backend over loopback: two listeners in one process
 * fetch each other's descriptors, and misbehaving raw clients (garbage, a
 * huge length, stalls, a full connection table, a reader that never reads)
 * are dropped without delaying well-behaved fetches. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h" /* tests/common */
#include "testutil.h"
#include "md_util.h" /* tu_make_desc */
#include "descriptor.h"
#include "metadata.h"
#include "mooncake/engine.h"
#include "net.h"
#include "p2p_wire.h"

static mc_metadata *open_p2p_token(uint32_t timeout_ms, char *name,
                                   const char *token) {
  mc_metadata_args a = {.url = "p2p", .listen = "127.0.0.1:0",
                        .timeout_ms = timeout_ms, .token = token};
  mc_metadata *md;
  char err[256];
  CHECK_RC(mc_metadata_open(&a, &md, err, sizeof err), 0);
  CHECK_RC(mc_metadata_local_name(md, name, MC_NAME_MAX), 0);
  return md;
}

static mc_metadata *open_p2p(uint32_t timeout_ms, char *name) {
  return open_p2p_token(timeout_ms, name, NULL);
}

static uint16_t port_of(const char *name) {
  const char *c = strrchr(name, ':');
  CHECK(c);
  return (uint16_t)atoi(c + 1);
}

static void publish(mc_metadata *md, const char *name, uint64_t version) {
  size_t len;
  char *json = tu_make_desc(name, version, &len);
  CHECK_RC(mc_metadata_publish(md, name, json, len), 0);
  free(json);
}

/* Fetches and decodes; checks name and version. */
static void expect_fetch(mc_metadata *md, const char *target,
                         const char *want_name, uint64_t want_version) {
  char *json;
  size_t len;
  CHECK_RC(mc_metadata_fetch(md, target, &json, &len), 0);
  CHECK(json[len] == '\0' && strlen(json) == len);
  mc_seg_desc *d;
  char err[256];
  CHECK_RC(mc_desc_decode(json, len, &d, err, sizeof err), 0);
  CHECK(strcmp(d->name, want_name) == 0);
  CHECK(d->version == want_version);
  CHECK(d->nbuffers == 1 && d->buffers[0].addr == 0x7f0000001000ull);
  mc_desc_free(d);
  free(json);
}

static int raw_connect(uint16_t port) {
  int fd;
  CHECK_RC(mc_net_connect("127.0.0.1", port, 1000, &fd), 0);
  return fd;
}

/* Waits up to ms for the server to close fd; returns what was read first
 * (up to cap bytes) or -1 if it stayed open. */
static long wait_closed(int fd, uint8_t *buf, size_t cap, int ms) {
  uint64_t deadline = mc_now_ms() + (uint64_t)ms;
  size_t got = 0;
  for (;;) {
    uint64_t now = mc_now_ms();
    int left = now < deadline ? (int)(deadline - now) : 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, left);
    if (r == 0 && left == 0)
      return -1;
    if (r <= 0)
      continue;
    uint8_t tmp[4096];
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return (long)got;
    if (n < 0)
      continue;
    size_t take = (size_t)n < cap - got ? (size_t)n : cap - got;
    memcpy(buf + got, tmp, take);
    got += take;
  }
}

/* Sends bytes on a fresh connection; expects an error reply with status,
 * then the server hanging up within ms. */
static void expect_error_reply(uint16_t port, const void *bytes, size_t n,
                               uint16_t status, int ms) {
  int fd = raw_connect(port);
  CHECK_RC(mc_net_write_full(fd, bytes, n, mc_now_ms() + 1000), 0);
  uint8_t buf[MC_P2P_HDR_LEN + MC_P2P_REASON_MAX];
  long got = wait_closed(fd, buf, sizeof buf, ms);
  CHECK(got >= MC_P2P_HDR_LEN);
  mc_p2p_hdr h;
  CHECK_RC(mc_p2p_parse_reply_hdr(buf, (size_t)got, &h), 0);
  CHECK(h.status == status);
  CHECK(h.length == (size_t)got - MC_P2P_HDR_LEN);
  close(fd);
}

static void test_exchange(void) {
  char a_name[MC_NAME_MAX], b_name[MC_NAME_MAX];
  mc_metadata *a = open_p2p(2000, a_name);
  mc_metadata *b = open_p2p(2000, b_name);
  CHECK(strcmp(a_name, b_name) != 0);

  /* Nothing published yet. */
  char *json;
  size_t len;
  CHECK_RC(mc_metadata_fetch(b, a_name, &json, &len), MC_ENOENT);

  publish(a, a_name, 1);
  publish(b, b_name, 1);
  expect_fetch(b, a_name, a_name, 1);
  expect_fetch(a, b_name, b_name, 1);
  expect_fetch(a, a_name, a_name, 1); /* own segment */

  /* Republishing serves the new version. */
  publish(a, a_name, 2);
  expect_fetch(b, a_name, a_name, 2);
  publish(a, a_name, 3);
  expect_fetch(b, a_name, a_name, 3);

  /* A custom segment name: reachable by address or name@address; another
   * name at that address is not found. */
  publish(a, "prefill-0", 4);
  char target[MC_NAME_MAX + 16];
  expect_fetch(b, a_name, "prefill-0", 4);
  snprintf(target, sizeof target, "prefill-0@%s", a_name);
  expect_fetch(b, target, "prefill-0", 4);
  snprintf(target, sizeof target, "decode-1@%s", a_name);
  CHECK_RC(mc_metadata_fetch(b, target, &json, &len), MC_ENOENT);
  expect_fetch(a, "prefill-0", "prefill-0", 4); /* own, by name */
  CHECK_RC(mc_metadata_fetch(b, "prefill-0", &json, &len), MC_ENOENT);
  CHECK_RC(mc_metadata_fetch(b, "", &json, &len), MC_EINVAL);
  CHECK_RC(mc_metadata_fetch(b, "@127.0.0.1:1", &json, &len), MC_EINVAL);

  /* Unpublished: gone. */
  CHECK_RC(mc_metadata_unpublish(a, a_name), MC_ENOENT);
  CHECK_RC(mc_metadata_unpublish(a, "prefill-0"), 0);
  CHECK_RC(mc_metadata_fetch(b, a_name, &json, &len), MC_ENOENT);

  /* A port nobody listens on: MC_EPEER, quickly. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  CHECK(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(getsockname(s, (struct sockaddr *)&sa, &sl) == 0);
  snprintf(target, sizeof target, "127.0.0.1:%u", ntohs(sa.sin_port));
  uint64_t t0 = mc_now_ms();
  CHECK_RC(mc_metadata_fetch(b, target, &json, &len), MC_EPEER);
  CHECK(mc_now_ms() - t0 < 1000);
  close(s);

  mc_metadata_close(a);
  mc_metadata_close(b);
}

static void test_misbehaving_clients(void) {
  /* The server drops connections 1.5 s after accepting them. */
  char srv_name[MC_NAME_MAX], cli_name[MC_NAME_MAX];
  mc_metadata *srv = open_p2p(1500, srv_name);
  mc_metadata *cli = open_p2p(2000, cli_name);
  uint16_t port = port_of(srv_name);
  publish(srv, srv_name, 9);

  /* Garbage, a huge length, a wrong op, a newer version: error replies. */
  const char *http = "GET / HTTP/1.0\r\n\r\n";
  expect_error_reply(port, http, strlen(http), MC_P2P_BAD_REQUEST, 2000);
  uint8_t hdr[MC_P2P_HDR_LEN];
  mc_p2p_put_hdr(hdr, MC_P2P_OP_GET, 0, 0xffffffffu);
  expect_error_reply(port, hdr, sizeof hdr, MC_P2P_BAD_REQUEST, 2000);
  mc_p2p_put_hdr(hdr, MC_P2P_OP_REPLY, 0, 4);
  expect_error_reply(port, hdr, sizeof hdr, MC_P2P_BAD_REQUEST, 2000);
  mc_p2p_put_hdr(hdr, MC_P2P_OP_GET, 0, 0);
  expect_error_reply(port, hdr, sizeof hdr, MC_P2P_BAD_REQUEST, 2000);
  uint8_t ctl[MC_P2P_HDR_LEN + 3];
  mc_p2p_put_hdr(ctl, MC_P2P_OP_GET, 0, 3);
  memcpy(ctl + MC_P2P_HDR_LEN, "a\nb", 3);
  expect_error_reply(port, ctl, sizeof ctl, MC_P2P_BAD_REQUEST, 2000);
  mc_p2p_put_hdr(hdr, MC_P2P_OP_GET, 0, 4);
  hdr[4] = MC_P2P_VERSION + 1;
  expect_error_reply(port, hdr, sizeof hdr, MC_P2P_BAD_VERSION, 2000);
  uint8_t req[MC_P2P_REQ_MAX];
  size_t rl = mc_p2p_build_request("nobody", NULL, req, sizeof req);
  CHECK(rl > 0);
  expect_error_reply(port, req, rl, MC_P2P_NOT_FOUND, 2000);

  /* Stalled clients: one silent, one mid-header, one mid-name.  A good
   * fetch meanwhile completes well before their deadline. */
  int st[3];
  for (int i = 0; i < 3; i++)
    st[i] = raw_connect(port);
  CHECK(send(st[1], "MCP", 3, 0) == 3);
  rl = mc_p2p_build_request(srv_name, NULL, req, sizeof req);
  CHECK(send(st[2], req, rl - 2, 0) == (ssize_t)(rl - 2));
  expect_fetch(cli, srv_name, srv_name, 9);
  uint8_t junk[64];
  for (int i = 0; i < 3; i++) /* served while they were still connected */
    CHECK(wait_closed(st[i], junk, sizeof junk, 0) == -1);
  for (int i = 0; i < 3; i++) {
    CHECK(wait_closed(st[i], junk, sizeof junk, 3000) == 0);
    close(st[i]);
  }

  /* More idle connections than the unauthenticated pool holds (32, at most
   * 8 per source address) do not stop a fetch: a newcomer evicts the oldest
   * idle one of its source (answered BUSY), and a real request is served at
   * once.  Every idle connection ends by the pool's deadline (1 s). */
  int many[64];
  for (int i = 0; i < 64; i++)
    many[i] = raw_connect(port);
  usleep(100 * 1000); /* let the server accept them all */
  char *json;
  size_t len;
  expect_fetch(cli, srv_name, srv_name, 9);
  int evicted = 0;
  for (int i = 0; i < 64; i++) {
    long got = wait_closed(many[i], junk, sizeof junk, 3000);
    CHECK(got == 0 || got == MC_P2P_HDR_LEN);
    if (got == MC_P2P_HDR_LEN) {
      mc_p2p_hdr h;
      CHECK_RC(mc_p2p_parse_reply_hdr(junk, (size_t)got, &h), 0);
      CHECK(h.status == MC_P2P_BUSY);
      evicted++;
    }
    close(many[i]);
  }
  CHECK(evicted >= 64 - 8); /* all but the last 8 of one source */
  expect_fetch(cli, srv_name, srv_name, 9);

  /* A client that asks for a large descriptor and never reads it is cut
   * off at the deadline; others are served meanwhile. */
  size_t big_len = 8u << 20;
  char *big = malloc(big_len);
  CHECK(big);
  memset(big, ' ', big_len);
  big[0] = '{';
  big[big_len - 1] = '}';
  CHECK_RC(mc_metadata_publish(srv, "bulky", big, big_len), 0);
  int lazy = socket(AF_INET, SOCK_STREAM, 0);
  int rcvbuf = 4096; /* before connect, so the window stays small */
  CHECK(setsockopt(lazy, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(lazy, (struct sockaddr *)&sa, sizeof sa) == 0);
  rl = mc_p2p_build_request("bulky", NULL, req, sizeof req);
  CHECK(send(lazy, req, rl, 0) == (ssize_t)rl);
  usleep(50 * 1000);
  char bulky[MC_NAME_MAX + 8];
  snprintf(bulky, sizeof bulky, "bulky@%s", srv_name);
  CHECK_RC(mc_metadata_fetch(cli, bulky, &json, &len), 0);
  CHECK(len == big_len && memcmp(json, big, big_len) == 0);
  free(json);
  /* Past the server's deadline the lazy reader's connection is reset, with
   * only what fitted in its small window delivered. */
  usleep(2000 * 1000);
  uint64_t total = 0;
  uint64_t deadline = mc_now_ms() + 3000;
  for (;;) {
    CHECK(mc_now_ms() < deadline);
    uint8_t tmp[65536];
    ssize_t n = recv(lazy, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      break;
    if (n > 0)
      total += (uint64_t)n;
    else {
      CHECK(errno == EAGAIN);
      usleep(10 * 1000);
    }
  }
  CHECK(total < big_len);
  close(lazy);
  free(big);

  mc_metadata_close(cli);
  mc_metadata_close(srv);
}

static void test_close_with_client(void) {
  /* A client mid-request (its pending deadline is 1 s away): close() ends
   * the connection at once, without waiting for the deadline. */
  char name[MC_NAME_MAX];
  mc_metadata *md = open_p2p(30000, name);
  publish(md, name, 1);
  int fd = raw_connect(port_of(name));
  CHECK(send(fd, "MC", 2, 0) == 2);
  usleep(50 * 1000);
  uint64_t t0 = mc_now_ms();
  mc_metadata_close(md);
  CHECK(mc_now_ms() - t0 < 500);
  uint8_t junk[16];
  CHECK(wait_closed(fd, junk, sizeof junk, 1000) == 0);
  close(fd);
}

/* A listener with a cluster token serves only requests carrying it: not
 * plain GETs, not another cluster's token; the refusal reaches the
 * fetcher as MC_EACCES.  A listener without one serves everybody. */
static void test_cluster_token(void) {
  const char *tok = "0123456789abcdef0123456789abcdef";
  const char *other = "fedcba9876543210fedcba9876543210";
  char a_name[MC_NAME_MAX], b_name[MC_NAME_MAX], c_name[MC_NAME_MAX],
      o_name[MC_NAME_MAX];
  mc_metadata *a = open_p2p_token(2000, a_name, tok);
  mc_metadata *b = open_p2p_token(2000, b_name, tok);
  mc_metadata *c = open_p2p(2000, c_name);
  mc_metadata *o = open_p2p_token(2000, o_name, other);
  publish(a, a_name, 1);
  publish(c, c_name, 1);
  expect_fetch(b, a_name, a_name, 1);
  char *json = NULL;
  size_t len;
  CHECK(tu_capture_begin() == 0);
  CHECK_RC(mc_metadata_fetch(c, a_name, &json, &len), MC_EACCES);
  CHECK_RC(mc_metadata_fetch(o, a_name, &json, &len), MC_EACCES);
  char *log = tu_capture_end();
  /* Denied: the fetching side is told what to set. */
  CHECK_HAS(log, "refused a request without a cluster token");
  CHECK_HAS(log, "refused our cluster token");
  CHECK_HAS(log, "set cluster_token_file (or MC_CLUSTER_TOKEN_FILE)");
  free(log);
  CHECK(json == NULL);
  expect_fetch(b, c_name, c_name, 1); /* no token there: served */

  /* On the wire: the same UNAUTHORIZED for none, a wrong and a truncated
   * token; the right one is served. */
  uint16_t port = port_of(a_name);
  uint8_t req[MC_P2P_REQ_MAX];
  size_t rl = mc_p2p_build_request(a_name, NULL, req, sizeof req);
  expect_error_reply(port, req, rl, MC_P2P_UNAUTHORIZED, 2000);
  rl = mc_p2p_build_request(a_name, other, req, sizeof req);
  expect_error_reply(port, req, rl, MC_P2P_UNAUTHORIZED, 2000);
  char shorter[40];
  snprintf(shorter, sizeof shorter, "%.20s", tok);
  rl = mc_p2p_build_request(a_name, shorter, req, sizeof req);
  expect_error_reply(port, req, rl, MC_P2P_UNAUTHORIZED, 2000);
  CHECK(mc_p2p_build_request(a_name, "short", req, sizeof req) == 0);
  CHECK(mc_p2p_build_request(a_name, "0123456789abcdef 12", req, sizeof req) == 0);
  rl = mc_p2p_build_request(a_name, tok, req, sizeof req);
  CHECK(rl > 0);
  int fd = raw_connect(port);
  CHECK_RC(mc_net_write_full(fd, req, rl, mc_now_ms() + 1000), 0);
  uint8_t hb[MC_P2P_HDR_LEN];
  CHECK_RC(mc_net_read_full(fd, hb, sizeof hb, mc_now_ms() + 2000), 0);
  mc_p2p_hdr h;
  CHECK_RC(mc_p2p_parse_reply_hdr(hb, sizeof hb, &h), 0);
  CHECK(h.status == MC_P2P_OK);
  close(fd);

  /* A token that is not one is refused when opening. */
  mc_metadata_args bad = {.url = "p2p", .listen = "127.0.0.1:0",
                          .timeout_ms = 1000, .token = "short"};
  mc_metadata *md = NULL;
  char err[256];
  CHECK_RC(mc_metadata_open(&bad, &md, err, sizeof err), MC_EINVAL);
  mc_metadata_close(a);
  mc_metadata_close(b);
  mc_metadata_close(c);
  mc_metadata_close(o);
}

/* ---- segment names that point at something else than a listener ---- */

enum { FAKE_GARBAGE, FAKE_HANGUP };

typedef struct fake_peer {
  int lfd;
  int mode;
} fake_peer;

/* Accepts one connection, then answers like an HTTP server (and keeps the
 * connection open until the client leaves) or hangs up without a word. */
static void *fake_peer_main(void *arg) {
  fake_peer *f = arg;
  int fd = accept(f->lfd, NULL, NULL);
  CHECK(fd >= 0);
  if (f->mode == FAKE_GARBAGE) {
    static const char http[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    CHECK_RC(mc_net_write_full(fd, http, sizeof http - 1, mc_now_ms() + 2000), 0);
    uint8_t buf[256];
    wait_closed(fd, buf, sizeof buf, 10000);
  }
  close(fd);
  return NULL;
}

static int fake_listen(uint16_t *port) {
  int lfd;
  CHECK_RC(mc_net_listen("127.0.0.1", 0, 8, &lfd, port), 0);
  return lfd;
}

static void test_not_a_listener(void) {
  char me[MC_NAME_MAX], target[MC_NAME_MAX];
  mc_metadata *md = open_p2p(5000, me);
  char *json = NULL;
  size_t len;

  /* Something that answers, but not our protocol: told apart at once. */
  fake_peer f = {.mode = FAKE_GARBAGE};
  uint16_t port;
  f.lfd = fake_listen(&port);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, fake_peer_main, &f) == 0);
  snprintf(target, sizeof target, "127.0.0.1:%u", port);
  CHECK(tu_capture_begin() == 0);
  uint64_t t0 = mc_now_ms();
  CHECK_RC(mc_metadata_fetch(md, target, &json, &len), MC_EPROTO);
  uint64_t took = mc_now_ms() - t0;
  char *log = tu_capture_end();
  CHECK(took < 2000); /* not the 5 s timeout */
  CHECK_HAS(log, "is not a mooncake listener");
  CHECK_HAS(log, "HTTP/1.1 400");
  CHECK_HAS(log, target);
  free(log);
  CHECK(pthread_join(th, NULL) == 0);
  close(f.lfd);

  /* A listener that hangs up without answering. */
  f.mode = FAKE_HANGUP;
  f.lfd = fake_listen(&port);
  CHECK(pthread_create(&th, NULL, fake_peer_main, &f) == 0);
  snprintf(target, sizeof target, "127.0.0.1:%u", port);
  CHECK(tu_capture_begin() == 0);
  CHECK_RC(mc_metadata_fetch(md, target, &json, &len), MC_EPEER);
  log = tu_capture_end();
  CHECK_HAS(log, "closed the connection without answering");
  CHECK_HAS(log, "a mooncake engine's listener?");
  free(log);
  CHECK(pthread_join(th, NULL) == 0);
  close(f.lfd);

  /* A listener that accepts (the kernel completes the handshake) and stays
   * silent: times out with a hint naming the address. */
  mc_metadata_close(md);
  md = open_p2p(800, me);
  int lfd = fake_listen(&port);
  snprintf(target, sizeof target, "127.0.0.1:%u", port);
  CHECK(tu_capture_begin() == 0);
  CHECK_RC(mc_metadata_fetch(md, target, &json, &len), MC_ETIMEDOUT);
  log = tu_capture_end();
  char hint[MC_NAME_MAX + 64];
  snprintf(hint, sizeof hint, "is %s a mooncake engine's listener?", target);
  CHECK_HAS(log, hint);
  free(log);
  close(lfd);

  /* Nothing listening at all. */
  CHECK(tu_capture_begin() == 0);
  CHECK_RC(mc_metadata_fetch(md, target, &json, &len), MC_EPEER);
  log = tu_capture_end();
  CHECK_HAS(log, "cannot connect to");
  CHECK_HAS(log, target);
  free(log);
  CHECK(json == NULL);
  mc_metadata_close(md);
}

/* Through the engine: mc_segment_open returns the error at once and the
 * log says what the address is. */
static void test_engine_not_a_listener(void) {
  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0",
                      .transports = "tcp"};
  mc_engine *e = NULL;
  char err[512] = "";
  CHECK_RC(mc_engine_create_ex(&o, &e, err, sizeof err), 0);
  fake_peer f = {.mode = FAKE_GARBAGE};
  uint16_t port;
  f.lfd = fake_listen(&port);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, fake_peer_main, &f) == 0);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%u", port);
  mc_segment *seg = NULL;
  CHECK(tu_capture_begin() == 0);
  uint64_t t0 = mc_now_ms();
  CHECK_RC(mc_segment_open(e, target, &seg), MC_EPROTO);
  uint64_t took = mc_now_ms() - t0;
  char *log = tu_capture_end();
  CHECK(seg == NULL);
  CHECK(took < 2000); /* the engine's p2p timeout is 10 s */
  CHECK_HAS(log, "is not a mooncake listener");
  free(log);
  /* The caller gets the reason, not only the code. */
  CHECK_HAS(mc_last_error(), "is not a mooncake listener");
  CHECK_HAS(mc_last_error(), target);
  CHECK_RC(mc_segment_open(e, "no-such-name", &seg), MC_ENOENT);
  CHECK_HAS(mc_last_error(), "host:port");
  CHECK(pthread_join(th, NULL) == 0);
  close(f.lfd);
  mc_engine_destroy(e);
}

int main(void) {
  setenv("MC_LOG_LEVEL", "warn", 1); /* the checks read warnings */
  test_exchange();
  test_cluster_token();
  test_misbehaving_clients();
  test_close_with_client();
  test_not_a_listener();
  test_engine_not_a_listener();
  printf("p2p metadata tests passed\n");
  return 0;
}
