/* The handshake listener's pools and the clients' retry (issue 12), with
 * small limits so every case is exact:
 *   - a source at its pending limit loses its oldest pending connection to
 *     a newer one (answered BUSY), and a full pending pool its oldest one;
 *   - a pending connection that sends nothing is closed at its deadline;
 *   - authenticated requests use the served pool: with it full (a control
 *     handler held), a request is answered BUSY, and the p2p fetch
 *     (mc_segment_open's path) and mc_ctrl_call retry it with back-off
 *     until the slot frees, within their timeout;
 *   - a wrong token is refused and summarized in one rate-limited warning
 *     with the count;
 *   - stats count what happened. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ctrl.h"
#include "descriptor.h"
#include "listener.h"
#include "metadata.h"
#include "net.h"
#include "p2p_wire.h"
#include "testutil.h"

static const char *TOKEN = "listener-test-token-0123456789";

/* A connection to 127.0.0.1:port from 127.0.0.<src>. */
static int conn_from(int src, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src)};
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&d, sizeof d) == 0);
  return fd;
}

/* Waits up to ms for fd to be closed by the server: the status of the
 * reply header received first (-1 none), or -2 when still open. */
static int closed_status(int fd, int ms) {
  uint8_t buf[256];
  size_t got = 0;
  uint64_t end = mc_now_ms() + (uint64_t)ms;
  for (;;) {
    uint64_t now = mc_now_ms();
    if (now >= end)
      return -2;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)(end - now)) <= 0)
      continue;
    ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    if (n < 0 && errno != ECONNRESET)
      continue;
    mc_p2p_hdr h;
    if (got >= MC_P2P_HDR_LEN && mc_p2p_parse_reply_hdr(buf, got, &h) == 0)
      return h.status;
    return -1;
  }
}

static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  CHECK(d != NULL);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static mc_listener *open_listener(const char *token, uint32_t timeout_ms) {
  mc_listener_args a = {.listen = "127.0.0.1:0",
                        .token = token,
                        .timeout_ms = timeout_ms,
                        .pending_max = 4,
                        .pending_per_source = 2,
                        .pending_ms = 400,
                        .served_max = 1,
                        .workers = 1};
  mc_listener *l = NULL;
  char err[256];
  CHECK_RC(mc_listener_open(&a, &l, err, sizeof err), 0);
  return l;
}

static void test_pending_pool(void) {
  mc_listener *l = open_listener(TOKEN, 2000);
  uint16_t port = mc_listener_port(l);
  /* Per source: a third connection from .2 evicts .2's oldest. */
  int a1 = conn_from(2, port), a2 = conn_from(2, port);
  usleep(50 * 1000);
  int a3 = conn_from(2, port);
  CHECK_EQ_INT(closed_status(a1, 1000), MC_P2P_BUSY);
  CHECK_EQ_INT(closed_status(a2, 50), -2);
  /* The pool (4): .3 and .4 fill it, then .5 evicts the oldest (a2). */
  int b1 = conn_from(3, port);
  usleep(20 * 1000);
  int c1 = conn_from(4, port);
  usleep(20 * 1000);
  int d1 = conn_from(5, port);
  CHECK_EQ_INT(closed_status(a2, 1000), MC_P2P_BUSY);
  CHECK_EQ_INT(closed_status(a3, 50), -2);
  mc_listener_stats st;
  mc_listener_get_stats(l, &st);
  CHECK_EQ_U64(st.evicted, 2);
  CHECK_EQ_INT((int)st.pending_now, 4);
  /* Silent ones end at the pending deadline (400 ms). */
  uint64_t t0 = mc_now_ms();
  CHECK_EQ_INT(closed_status(d1, 3000), -1);
  uint64_t took = mc_now_ms() - t0;
  CHECK(took >= 250 && took < 2500);
  close(a1);
  close(a2);
  close(a3);
  close(b1);
  close(c1);
  close(d1);
  mc_listener_close(l);
}

/* A control handler that holds its (only) served slot until released. */
static atomic_int held, release_it;
static int slow_handler(void *arg, const char *transport, const char *peer,
                        const void *req, size_t req_len, void *resp,
                        size_t *resp_len) {
  atomic_store(&held, 1);
  while (!atomic_load(&release_it))
    usleep(1000);
  memcpy(resp, "done", 4);
  *resp_len = 4;
  return 0;
}

typedef struct bg {
  uint16_t port;
  pthread_t th;
  int status;
} bg;

/* Sends one CTRL request and reads the answer's status. */
static void *ctrl_once(void *v) {
  bg *b = v;
  uint8_t *f = malloc(MC_P2P_CTRL_REQ_MAX);
  CHECK(f != NULL);
  size_t n = mc_p2p_build_ctrl(TOKEN, "peer-x", "me", "fx", "hold", 4, f,
                               MC_P2P_CTRL_REQ_MAX);
  CHECK(n > 0);
  int fd;
  CHECK_RC(mc_net_connect("127.0.0.1", b->port, 2000, &fd), 0);
  CHECK_RC(mc_net_write_full(fd, f, n, mc_now_ms() + 2000), 0);
  uint8_t h[MC_P2P_HDR_LEN];
  CHECK_RC(mc_net_read_full(fd, h, sizeof h, mc_now_ms() + 5000), 0);
  b->status = h[6] << 8 | h[7];
  close(fd);
  free(f);
  return NULL;
}

static void *release_later(void *v) {
  usleep((useconds_t)(uintptr_t)v * 1000);
  atomic_store(&release_it, 1);
  return NULL;
}

static void test_served_pool_and_retry(void) {
  int t0_threads = threads_now();
  mc_listener *l = open_listener(TOKEN, 3000);
  /* One thread until a control request comes (the workers start then). */
  CHECK_EQ_INT(threads_now(), t0_threads + 1);
  uint16_t port = mc_listener_port(l);
  mc_listener_set_ctrl(l, slow_handler, NULL, "me");
  /* Publish a descriptor (with the listener's address) for GET. */
  mc_seg_desc d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "me");
  snprintf(d.listen, sizeof d.listen, "%s", mc_listener_address(l));
  char *json;
  size_t jl;
  CHECK_RC(mc_desc_encode(&d, &json, &jl), 0);
  CHECK_RC(mc_listener_publish(l, "me", json, jl), 0);

  /* One request holds the only served slot... */
  atomic_store(&held, 0);
  atomic_store(&release_it, 0);
  bg first = {.port = port};
  CHECK(pthread_create(&first.th, NULL, ctrl_once, &first) == 0);
  while (!atomic_load(&held))
    usleep(1000);
  /* ...so another authenticated request is answered BUSY at once. */
  bg second = {.port = port};
  ctrl_once(&second);
  CHECK_EQ_INT(second.status, MC_P2P_BUSY);
  CHECK_EQ_INT(threads_now(), t0_threads + 1 + 1 + 1); /* + first's client */

  /* The p2p fetch (mc_segment_open's path) retries until the slot frees
   * (released after 300 ms), well within its 3 s timeout. */
  mc_metadata_args ma = {.url = "p2p", .listen = "127.0.0.1:0",
                         .timeout_ms = 3000, .token = TOKEN};
  mc_metadata *md = NULL;
  char err[256];
  CHECK_RC(mc_metadata_open(&ma, &md, err, sizeof err), 0);
  pthread_t rel;
  CHECK(pthread_create(&rel, NULL, release_later, (void *)(uintptr_t)300) == 0);
  char target[MC_NAME_MAX + 8];
  snprintf(target, sizeof target, "me@%s", mc_listener_address(l));
  char *got = NULL;
  size_t gl = 0;
  uint64_t t0 = mc_now_ms();
  CHECK_RC(mc_metadata_fetch(md, target, &got, &gl), 0);
  uint64_t took = mc_now_ms() - t0;
  CHECK(gl == jl && memcmp(got, json, jl) == 0);
  CHECK(took >= 200 && took < 2500);
  tu_note("p2p fetch retried a busy listener and succeeded after %llu ms",
          (unsigned long long)took);
  free(got);
  CHECK(pthread_join(rel, NULL) == 0);
  CHECK(pthread_join(first.th, NULL) == 0);
  CHECK_EQ_INT(first.status, MC_P2P_OK);

  /* mc_ctrl_call likewise: hold the slot again, release after 300 ms. */
  atomic_store(&held, 0);
  atomic_store(&release_it, 0);
  bg third = {.port = port};
  CHECK(pthread_create(&third.th, NULL, ctrl_once, &third) == 0);
  while (!atomic_load(&held))
    usleep(1000);
  CHECK(pthread_create(&rel, NULL, release_later, (void *)(uintptr_t)300) == 0);
  mc_ctrl_client cc;
  mc_ctrl_client_init(&cc);
  cc.md = md;
  cc.token = TOKEN;
  cc.self = "caller";
  cc.log = NULL;
  cc.timeout_ms = 3000;
  char resp[16];
  size_t rl = sizeof resp;
  t0 = mc_now_ms();
  CHECK_RC(mc_ctrl_call(&cc, "fx", target, "hi", 2, resp, &rl, 3000), 0);
  took = mc_now_ms() - t0;
  CHECK(rl == 4 && memcmp(resp, "done", 4) == 0);
  CHECK(took >= 200 && took < 2500);
  tu_note("ctrl_call retried a busy listener and succeeded after %llu ms",
          (unsigned long long)took);
  CHECK(pthread_join(rel, NULL) == 0);
  CHECK(pthread_join(third.th, NULL) == 0);

  /* A listener that stays busy: MC_ETIMEDOUT at the deadline, not sooner
   * and not much later. */
  atomic_store(&held, 0);
  atomic_store(&release_it, 0);
  bg fourth = {.port = port};
  CHECK(pthread_create(&fourth.th, NULL, ctrl_once, &fourth) == 0);
  while (!atomic_load(&held))
    usleep(1000);
  rl = sizeof resp;
  t0 = mc_now_ms();
  CHECK_RC(mc_ctrl_call(&cc, "fx", target, "hi", 2, resp, &rl, 500), MC_ETIMEDOUT);
  took = mc_now_ms() - t0;
  CHECK(took >= 450 && took < 1500);
  atomic_store(&release_it, 1);
  CHECK(pthread_join(fourth.th, NULL) == 0);

  mc_listener_stats st;
  mc_listener_get_stats(l, &st);
  CHECK(st.busy >= 3);
  mc_ctrl_client_fini(&cc);
  mc_metadata_close(md);
  mc_listener_set_ctrl(l, NULL, NULL, NULL);
  mc_listener_close(l);
  free(json);
}

static void test_wrong_token_summary(void) {
  mc_logger lg = {.level = MC_LOG_WARN};
  mc_listener_args a = {.listen = "127.0.0.1:0", .token = TOKEN, .log = &lg};
  mc_listener *l = NULL;
  char err[256];
  CHECK(tu_capture_begin() == 0);
  CHECK_RC(mc_listener_open(&a, &l, err, sizeof err), 0);
  uint16_t port = mc_listener_port(l);
  uint8_t req[MC_P2P_REQ_MAX];
  size_t n = mc_p2p_build_request("me", "another-cluster-token-000000", req, sizeof req);
  for (int i = 0; i < 20; i++) {
    int fd = conn_from(7, port);
    CHECK(send(fd, req, n, 0) == (ssize_t)n);
    CHECK_EQ_INT(closed_status(fd, 2000), MC_P2P_UNAUTHORIZED);
    close(fd);
  }
  usleep(100 * 1000);
  mc_listener_close(l);
  char *log = tu_capture_end();
  /* One line for the first refusal (then at most one per 5 s), with the
   * count and the address; not twenty. */
  CHECK(tu_count(log, "wrong or missing cluster token") >= 1);
  CHECK(tu_count(log, "wrong or missing cluster token") <= 2);
  CHECK_HAS(log, "127.0.0.7");
  free(log);
}

int main(void) {
  test_pending_pool();
  test_served_pool_and_retry();
  test_wrong_token_summary();
  printf("listener: all checks passed\n");
  return 0;
}
