/* The control channel (ABI 1.2, mc_host_api.ctrl_call) between real
 * engines, over their handshake listeners, with p2p metadata or with etcd
 * metadata (a real etcd started here):
 *
 *   test_ctrl p2p|etcd <ctrlfix dir> <oot plugin dir>
 *
 * Engines A and B (one cluster token, the ctrlfix transport) ask each other
 * (echo names both ends: the request reached the peer's context and the
 * peer learned who asked); replies of every size up to MC_CTRL_MAX and one
 * larger than the caller's buffer (MC_ENOSPC with the size); the peer's
 * error code passed through; an unknown segment (MC_ENOENT); a peer
 * without the transport (engine C, oot only: MC_ENOTSUP); a peer of
 * another cluster (engine D, other token: MC_EACCES); simultaneous open
 * (A and B connect to each other at once, each inside connect -- the
 * core's control lock held -- calling the other: both complete, data
 * verified); a peer process killed (MC_EPEER, well within the timeout).
 *
 * The peer process is this program re-run as
 *   test_ctrl --peer <metadata url> <token file> <name>
 * printing its segment name and waiting to be killed. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mooncake/engine.h"
#include "mooncake/transport.h"
#include "testutil.h"
#ifdef MC_TEST_ETCD
#include "etcd_fixture.h"
#endif

typedef int (*call_fn)(const char *self, const char *peer, const void *req,
                       size_t req_len, void *resp, size_t *resp_len,
                       uint32_t timeout_ms);
static call_fn fx_call;
static void (*fx_hello)(int n);
static long (*fx_handled)(void);

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static mc_engine *engine(const char *url, const char *token_file,
                         const char *name, const char *transports) {
  setenv("MC_CLUSTER_TOKEN_FILE", token_file, 1);
  mc_engine_opts o = {.struct_size = sizeof o,
                      .segment_name = name,
                      .listen = "127.0.0.1:0",
                      .metadata = url,
                      .transports = transports};
  mc_engine *e = NULL;
  char err[512] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc)
    fprintf(stderr, "engine %s: %s\n", name ? name : "(p2p)", err);
  CHECK_RC(rc, 0);
  unsetenv("MC_CLUSTER_TOKEN_FILE");
  return e;
}

static const char *seg(mc_engine *e) { return mc_engine_segment_name(e); }

static int call(mc_engine *from, const char *peer, const char *req, char *resp,
                size_t *rl) {
  return fx_call(seg(from), peer, req, strlen(req), resp, rl, 3000);
}

static void write_token(const char *path, const char *tok) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f, "%s\n", tok);
  fclose(f);
  CHECK(chmod(path, 0600) == 0);
}

/* Child mode: one engine until killed. */
static int peer_main(const char *url, const char *token_file, const char *name) {
  mc_engine *e = engine(url, token_file, strcmp(name, "-") ? name : NULL,
                        "ctrlfix");
  printf("%s\n", seg(e));
  fflush(stdout);
  char b;
  while (read(0, &b, 1) > 0)
    ;
  mc_engine_destroy(e);
  return 0;
}

typedef struct xfer_arg {
  mc_engine *e;
  mc_segment *s;
  uint8_t *local;
  uint64_t remote;
  size_t len;
  int rc;
} xfer_arg;

static void *xfer_main(void *v) {
  xfer_arg *a = v;
  mc_request w = {MC_OP_WRITE, a->local, a->s, a->remote, a->len};
  a->rc = mc_transfer_sync(a->e, &w, 1, 10000);
  return NULL;
}

/* A and B open each other and write at the same moment; the fixture's
 * connect waits for both connects, then each calls the other. */
static void simultaneous_open(mc_engine *a, mc_engine *b) {
  const size_t len = 256 << 10;
  uint8_t *ba = malloc(2 * len), *bb = malloc(2 * len);
  CHECK(ba && bb);
  for (size_t i = 0; i < len; i++) {
    ba[i] = (uint8_t)(i * 7 + 1);
    bb[i] = (uint8_t)(i * 13 + 5);
  }
  memset(ba + len, 0, len);
  memset(bb + len, 0, len);
  CHECK_RC(mc_register(a, ba, 2 * len, "cpu:0"), 0);
  CHECK_RC(mc_register(b, bb, 2 * len, "cpu:0"), 0);
  mc_segment *sb = NULL, *sa = NULL;
  CHECK_RC(mc_segment_open(a, seg(b), &sb), 0);
  CHECK_RC(mc_segment_open(b, seg(a), &sa), 0);
  long before = fx_handled();
  fx_hello(2);
  xfer_arg x[2] = {
      {a, sb, ba, (uint64_t)(uintptr_t)(bb + len), len, -1},
      {b, sa, bb, (uint64_t)(uintptr_t)(ba + len), len, -1},
  };
  pthread_t th[2];
  uint64_t t0 = now_ms();
  for (int i = 0; i < 2; i++)
    CHECK(pthread_create(&th[i], NULL, xfer_main, &x[i]) == 0);
  for (int i = 0; i < 2; i++)
    CHECK(pthread_join(th[i], NULL) == 0);
  fx_hello(0);
  CHECK_RC(x[0].rc, 0);
  CHECK_RC(x[1].rc, 0);
  CHECK(memcmp(bb + len, ba, len) == 0);
  CHECK(memcmp(ba + len, bb, len) == 0);
  CHECK(fx_handled() - before >= 2); /* both hellos answered */
  tu_note("simultaneous open: both connects called each other and completed "
          "in %llu ms", (unsigned long long)(now_ms() - t0));
  mc_segment_close(sa);
  mc_segment_close(sb);
  CHECK_RC(mc_unregister(a, ba), 0);
  CHECK_RC(mc_unregister(b, bb), 0);
  free(ba);
  free(bb);
}

/* Starts `self --peer ...`; returns its pid, its segment name in name. */
static pid_t spawn_peer(const char *self, const char *url, const char *tok,
                        const char *want, char *name, size_t cap, int *to_child) {
  int out[2], in[2];
  CHECK(pipe(out) == 0 && pipe(in) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    close(out[0]);
    close(in[1]);
    execl(self, self, "--peer", url, tok, want, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  close(in[0]);
  FILE *f = fdopen(out[0], "r");
  CHECK(f != NULL);
  CHECK(fgets(name, (int)cap, f) != NULL);
  name[strcspn(name, "\n")] = '\0';
  fclose(f);
  *to_child = in[1];
  return pid;
}

static void run(const char *self, const char *url, int etcd) {
  char dir[256];
  CHECK(tu_mkdtemp(dir, sizeof dir, "ctrl") == 0);
  char tok1[300], tok2[300];
  tu_join(tok1, sizeof tok1, dir, "token1");
  tu_join(tok2, sizeof tok2, dir, "token2");
  write_token(tok1, "cluster-one-0123456789abcdef0123");
  write_token(tok2, "cluster-two-0123456789abcdef0123");

  mc_engine *a = engine(url, tok1, etcd ? "ctrl-a" : NULL, "ctrlfix");
  mc_engine *b = engine(url, tok1, etcd ? "ctrl-b" : NULL, "ctrlfix");
  mc_engine *c = engine(url, tok1, etcd ? "ctrl-c" : NULL, "oot");
  mc_engine *d = engine(url, tok2, etcd ? "ctrl-d" : NULL, "ctrlfix");

  char resp[MC_CTRL_MAX + 1], want[3 * MC_NAME_MAX];
  size_t rl = sizeof resp;
  /* Both ways; the reply names the answering and the asking segment. */
  CHECK_RC(call(a, seg(b), "echo:from a", resp, &rl), 0);
  snprintf(want, sizeof want, "%s|%s|from a", seg(b), seg(a));
  CHECK(rl == strlen(want) && memcmp(resp, want, rl) == 0);
  rl = sizeof resp;
  CHECK_RC(call(b, seg(a), "echo:from b", resp, &rl), 0);
  snprintf(want, sizeof want, "%s|%s|from b", seg(a), seg(b));
  CHECK(rl == strlen(want) && memcmp(resp, want, rl) == 0);

  /* Reply sizes: empty, MC_CTRL_MAX, and larger than the buffer. */
  rl = sizeof resp;
  CHECK_RC(call(a, seg(b), "size:0", resp, &rl), 0);
  CHECK(rl == 0);
  rl = MC_CTRL_MAX;
  CHECK_RC(call(a, seg(b), "size:4096", resp, &rl), 0);
  CHECK(rl == MC_CTRL_MAX && resp[0] == 'z' && resp[MC_CTRL_MAX - 1] == 'z');
  rl = 100;
  CHECK_RC(call(a, seg(b), "size:3000", resp, &rl), MC_ENOSPC);
  CHECK(rl == 3000);
  rl = 3000;
  CHECK_RC(call(a, seg(b), "size:3000", resp, &rl), 0);
  CHECK(rl == 3000 && resp[2999] == 'z');
  /* The peer's own error comes back as is. */
  char req[32];
  snprintf(req, sizeof req, "err:%d", -MC_ERANGE);
  rl = sizeof resp;
  CHECK_RC(call(a, seg(b), req, resp, &rl), MC_ERANGE);
  /* Bad arguments stay here. */
  rl = sizeof resp;
  CHECK_RC(fx_call(seg(a), seg(b), "x", 0, resp, &rl, 1000), MC_EINVAL);
  static uint8_t huge[MC_CTRL_MAX + 1];
  CHECK_RC(fx_call(seg(a), seg(b), huge, sizeof huge, resp, &rl, 1000), MC_EINVAL);

  /* Unknown segment. */
  rl = sizeof resp;
  CHECK_RC(call(a, "ctrl-nobody", "echo:x", resp, &rl), MC_ENOENT);
  CHECK(strstr(mc_last_error(), "ctrl-nobody") != NULL);
  /* No such transport there. */
  rl = sizeof resp;
  CHECK_RC(call(a, seg(c), "echo:x", resp, &rl), MC_ENOTSUP);
  /* Another cluster's engine refuses our token. */
  rl = sizeof resp;
  CHECK_RC(call(a, seg(d), "echo:x", resp, &rl), MC_EACCES);
  rl = sizeof resp;
  CHECK_RC(call(d, seg(a), "echo:x", resp, &rl), MC_EACCES);

  simultaneous_open(a, b);

  /* A peer process killed: MC_EPEER, fast. */
  char ename[MC_NAME_MAX];
  int to_child;
  pid_t pid = spawn_peer(self, url, tok1, etcd ? "ctrl-e" : "-", ename,
                         sizeof ename, &to_child);
  rl = sizeof resp;
  CHECK_RC(call(a, ename, "echo:e", resp, &rl), 0);
  snprintf(want, sizeof want, "%s|%s|e", ename, seg(a));
  CHECK(rl == strlen(want) && memcmp(resp, want, rl) == 0);
  CHECK(kill(pid, SIGKILL) == 0);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  close(to_child);
  rl = sizeof resp;
  uint64_t t0 = now_ms();
  CHECK_RC(call(a, ename, "echo:e", resp, &rl), MC_EPEER);
  uint64_t took = now_ms() - t0;
  CHECK(took < 2000); /* the timeout is 3000 */
  tu_note("killed peer: MC_EPEER after %llu ms", (unsigned long long)took);

  mc_engine_destroy(d);
  mc_engine_destroy(c);
  mc_engine_destroy(b);
  mc_engine_destroy(a);
  tu_rmtree(dir);
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--peer") == 0)
    return peer_main(argv[2], argv[3], argv[4]);
  if (argc != 4) {
    fprintf(stderr, "usage: %s p2p|etcd <ctrlfix dir> <oot dir>\n", argv[0]);
    return 2;
  }
  char path[1024], plug[4096];
  snprintf(path, sizeof path, "%s/mc-transport-ctrlfix.so", argv[2]);
  snprintf(plug, sizeof plug, "%s:%s", argv[2], argv[3]);
  setenv("MC_PLUGIN_PATH", plug, 1);
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  *(void **)&fx_call = dlsym(dl, "ctrlfix_call");
  *(void **)&fx_hello = dlsym(dl, "ctrlfix_hello");
  *(void **)&fx_handled = dlsym(dl, "ctrlfix_handled");
  CHECK(fx_call && fx_hello && fx_handled);
  int rc = 0;
  if (strcmp(argv[1], "p2p") == 0) {
    run(argv[0], "p2p", 0);
  } else {
#ifdef MC_TEST_ETCD
    etcd_cluster ec;
    if (etcd_cluster_start(&ec, 1) != 0) {
      printf("SKIP: etcd is not installed\n");
      dlclose(dl);
      return 77;
    }
    char url[400];
    snprintf(url, sizeof url, "%s?ttl=5", ec.url);
    run(argv[0], url, 1);
    etcd_cluster_destroy(&ec);
#else
    printf("SKIP: built without the etcd metadata backend\n");
    rc = 77;
#endif
  }
  dlclose(dl);
  if (rc == 0)
    printf("ctrl channel (%s): all checks passed\n", argv[1]);
  return rc;
}
