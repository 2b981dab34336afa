/* The RPC layer against itself: a server with unary methods on a free
 * loopback port, client unary calls, deadlines, cancellation, unknown
 * methods, an unreachable target and a large message. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "rpc/rpc.h"
#include "md_util.h"

static int echo(void *arg, const void *req, size_t len, void **resp,
                size_t *resp_len, char *msg, size_t msglen) {
  atomic_int *calls = arg;
  atomic_fetch_add(calls, 1);
  *resp = malloc(len ? len : 1);
  if (len)
    memcpy(*resp, req, len);
  *resp_len = len;
  return 0;
}

static int slow(void *arg, const void *req, size_t len, void **resp,
                size_t *resp_len, char *msg, size_t msglen) {
  tu_sleep_ms(1500);
  *resp = NULL;
  *resp_len = 0;
  return 0;
}

static int refuse(void *arg, const void *req, size_t len, void **resp,
                  size_t *resp_len, char *msg, size_t msglen) {
  snprintf(msg, msglen, "key %.*s is not mine", (int)len, (const char *)req);
  return 5; /* NOT_FOUND */
}

typedef struct {
  atomic_int flag;
} canceller;

static void *cancel_later(void *arg) {
  canceller *c = arg;
  tu_sleep_ms(200);
  atomic_store(&c->flag, 1);
  return NULL;
}

int main(void) {
  atomic_int calls = 0;
  mc_rpc_server *srv;
  CHECK_RC(mc_rpc_server_create("127.0.0.1:0", &srv), 0);
  CHECK_RC(mc_rpc_server_add_unary(srv, "/test.Svc/Echo", echo, &calls), 0);
  CHECK_RC(mc_rpc_server_add_unary(srv, "/test.Svc/Slow", slow, NULL), 0);
  CHECK_RC(mc_rpc_server_add_unary(srv, "/test.Svc/Refuse", refuse, NULL), 0);
  int port = 0;
  CHECK_RC(mc_rpc_server_start(srv, 2, &port), 0);
  CHECK(port > 0);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mc_rpc_channel *ch;
  CHECK_RC(mc_rpc_channel_create(target, &ch), 0);
  mc_rpc_call_opts o = {.timeout_ms = 3000};
  mc_rpc_status st;

  /* Unary echo, many times (the server re-arms after each call). */
  for (int i = 0; i < 50; i++) {
    char req[32];
    int n = snprintf(req, sizeof req, "hello %d", i);
    void *resp;
    size_t rl;
    CHECK_RC(mc_rpc_unary(ch, "/test.Svc/Echo", req, (size_t)n, &resp, &rl, &o, &st), 0);
    CHECK(rl == (size_t)n && memcmp(resp, req, rl) == 0);
    free(resp);
  }
  CHECK(atomic_load(&calls) == 50);

  /* A 4 MiB message both ways. */
  size_t big = 4u << 20;
  char *bb = malloc(big);
  for (size_t i = 0; i < big; i++)
    bb[i] = (char)(i * 7);
  void *resp;
  size_t rl;
  CHECK_RC(mc_rpc_unary(ch, "/test.Svc/Echo", bb, big, &resp, &rl, &o, &st), 0);
  CHECK(rl == big && memcmp(resp, bb, big) == 0);
  free(resp);
  free(bb);

  /* Handler error: the code and message reach the client. */
  CHECK_RC(mc_rpc_unary(ch, "/test.Svc/Refuse", "k1", 2, &resp, &rl, &o, &st), MC_ENOENT);
  CHECK(st.code == 5 && strstr(st.message, "key k1 is not mine"));
  printf("refuse: %s\n", st.message);

  /* Deadline shorter than the handler. */
  mc_rpc_call_opts shortd = {.timeout_ms = 300};
  uint64_t t0 = mc_now_ms();
  CHECK_RC(mc_rpc_unary(ch, "/test.Svc/Slow", "x", 1, &resp, &rl, &shortd, &st), MC_ETIMEDOUT);
  CHECK(mc_now_ms() - t0 < 1200);
  printf("deadline: %s\n", st.message);

  /* Cancellation from another thread. */
  canceller c = {0};
  pthread_t th;
  pthread_create(&th, NULL, cancel_later, &c);
  mc_rpc_call_opts co = {.timeout_ms = 5000, .cancel = &c.flag};
  t0 = mc_now_ms();
  CHECK_RC(mc_rpc_unary(ch, "/test.Svc/Slow", "x", 1, &resp, &rl, &co, &st), MC_ECANCELED);
  CHECK(mc_now_ms() - t0 < 1200);
  pthread_join(th, NULL);
  printf("cancel: %s\n", st.message);

  /* Unknown method. */
  CHECK_RC(mc_rpc_unary(ch, "/test.Svc/Nope", "x", 1, &resp, &rl, &o, &st), MC_ENOTSUP);
  printf("unknown: %s\n", st.message);

  /* A stream to an echo unary method: one message, then the status. */
  mc_rpc_stream *s;
  CHECK_RC(mc_rpc_stream_open(ch, "/test.Svc/Echo", &o, &s, &st), 0);
  CHECK_RC(mc_rpc_stream_send(s, "abc", 3, 1000, &st), 0);
  CHECK_RC(mc_rpc_stream_close_send(s, 1000, &st), 0);
  void *m;
  size_t ml;
  CHECK_RC(mc_rpc_stream_recv(s, &m, &ml, 2000, &st), 0);
  CHECK(ml == 3 && memcmp(m, "abc", 3) == 0);
  free(m);
  CHECK_RC(mc_rpc_stream_recv(s, &m, &ml, 2000, &st), MC_EPEER);
  CHECK(st.code == 0 && strstr(st.message, "closed"));
  mc_rpc_stream_destroy(s);

  mc_rpc_channel_destroy(ch);
  mc_rpc_server_destroy(srv);

  /* Nobody listening: a fast, clear UNAVAILABLE. */
  snprintf(target, sizeof target, "127.0.0.1:%d", tu_free_port());
  CHECK_RC(mc_rpc_channel_create(target, &ch), 0);
  t0 = mc_now_ms();
  int rc = mc_rpc_unary(ch, "/test.Svc/Echo", "x", 1, &resp, &rl, &o, &st);
  CHECK(rc == MC_EPEER);
  CHECK(st.code == 14);
  CHECK(mc_now_ms() - t0 < 3000);
  printf("unreachable: %s\n", st.message);
  mc_rpc_channel_destroy(ch);
  printf("rpc ok\n");
  return 0;
}
