/* Transfers through the out-of-tree plugin mc-transport-oot.so, found via
 * $MC_PLUGIN_PATH (run.sh builds it against the installed headers and
 * points the variable at it).
 *
 * Two engines in this process load `transports: oot`, register buffers, open
 * each other's segment and move data both ways; every byte is verified.  An
 * out-of-range request must fail without touching memory, and a peer engine
 * in another process must be unreachable for this in-process transport. */
#include <mooncake/engine.h>

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF_LEN (1u << 20)
#define TIMEOUT_MS 10000

static mc_engine *new_engine(void) {
  mc_engine_opts o = {.struct_size = sizeof o,
                      .listen = "127.0.0.1:0",
                      .metadata = "p2p",
                      .transports = "oot"};
  mc_engine *e = NULL;
  char err[1024] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc) {
    fprintf(stderr, "mc_engine_create: %s: %s\n", mc_strerror(rc), err);
    return NULL;
  }
  return e;
}

/* The engine must have loaded the plugin from $MC_PLUGIN_PATH, i.e. the
 * out-of-tree build, and report its rail. */
static void check_plugin_origin(mc_engine *e) {
  const char *dir = getenv("MC_PLUGIN_PATH");
  char want[4096];
  char *real = dir ? realpath(dir, NULL) : NULL;
  snprintf(want, sizeof want, "%s/mc-transport-oot.so", real ? real : "?");
  free(real);
  uint32_t n = 0;
  CHECK(mc_engine_plugins(e, NULL, &n) == MC_ENOSPC || n == 0);
  mc_plugin_info *pi = calloc(n ? n : 1, sizeof *pi);
  CHECK(pi && mc_engine_plugins(e, pi, &n) == 0);
  int found = 0;
  for (uint32_t i = 0; pi && i < n; i++) {
    if (strcmp(pi[i].name, "oot") != 0 || pi[i].state != MC_PLUGIN_LOADED)
      continue;
    found = 1;
    CHECK_STR(pi[i].path, want);
    CHECK_STR(pi[i].version, "1.0.0");
    CHECK(pi[i].abi_major == MC_TRANSPORT_ABI_MAJOR);
    CHECK_EQ_INT(pi[i].nrails, 1);
  }
  CHECK(found);
  free(pi);
  mc_rail_info rails[4];
  uint32_t nr = 4;
  CHECK(mc_engine_rails(e, "oot", rails, &nr) == 0 && nr == 1);
  CHECK(nr != 1 || strcmp(rails[0].name, "memcpy0") == 0);
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

/* Child: an engine in another process, alive until the parent closes fd. */
static void child_engine(int wfd, int rfd) {
  mc_engine *e = new_engine();
  static uint8_t buf[4096];
  if (e)
    mc_register(e, buf, sizeof buf, NULL);
  char msg[MC_NAME_MAX + 32] = "";
  if (e)
    snprintf(msg, sizeof msg, "%s %llu", mc_engine_segment_name(e),
             (unsigned long long)(uintptr_t)buf);
  if (write(wfd, msg, strlen(msg) + 1) < 0)
    _exit(3);
  char c;
  while (read(rfd, &c, 1) > 0) {
  }
  mc_engine_destroy(e);
  _exit(e ? 0 : 1);
}

/* The peer in another process is forked before this process starts any
 * engine thread, so the child begins from a clean single-threaded state. */
typedef struct peer {
  pid_t pid;
  int rfd, wfd; /* read its announcement; closing wfd lets it exit */
} peer;

static int spawn_peer(peer *p) {
  int up[2], down[2];
  if (pipe(up) != 0)
    return -1;
  if (pipe(down) != 0) {
    close(up[0]);
    close(up[1]);
    return -1;
  }
  fflush(NULL);
  p->pid = fork();
  if (p->pid == 0) {
    close(up[0]);
    close(down[1]);
    child_engine(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  p->rfd = up[0];
  p->wfd = down[1];
  return p->pid < 0 ? -1 : 0;
}

static void reap_peer(peer *p) {
  close(p->wfd);
  close(p->rfd);
  int st = 0;
  CHECK(waitpid(p->pid, &st, 0) == p->pid && WIFEXITED(st) &&
        WEXITSTATUS(st) == 0);
}

static void test_cross_process(mc_engine *e1, uint8_t *local, peer *p) {
  char msg[MC_NAME_MAX + 32] = "";
  ssize_t got = 0, k;
  while (got < (ssize_t)sizeof msg - 1 &&
         (k = read(p->rfd, msg + got, sizeof msg - 1 - (size_t)got)) > 0) {
    got += k;
    if (memchr(msg, '\0', (size_t)got))
      break;
  }
  char name[MC_NAME_MAX];
  unsigned long long raddr = 0;
  CHECK(got > 0 && sscanf(msg, "%255s %llu", name, &raddr) == 2);
  if (got > 0 && raddr) {
    mc_segment *s = NULL;
    int rc = mc_segment_open(e1, name, &s);
    if (rc == 0) {
      memset(local, 0x11, 64);
      mc_request r = {MC_OP_READ, local, s, raddr, 64};
      rc = mc_transfer_sync(e1, &r, 1, TIMEOUT_MS);
      mc_segment_close(s);
    }
    /* Either the open or the transfer fails; local memory is untouched. */
    CHECK(rc != 0);
    CHECK(local[0] == 0x11 && local[63] == 0x11);
  }
}

int main(void) {
  /* Failures are counted: every check runs, then the count decides. */
  mc_check_keep_going(1);
  peer other;
  if (spawn_peer(&other) != 0) {
    perror("spawn peer");
    return 1;
  }
  uint8_t *a = malloc(BUF_LEN), *b = malloc(BUF_LEN), *ref = malloc(BUF_LEN);
  if (!a || !b || !ref) {
    reap_peer(&other);
    return 1;
  }
  fill(a, BUF_LEN, 1);
  fill(b, BUF_LEN, 2);
  memcpy(ref, b, BUF_LEN);

  mc_engine *e1 = new_engine(), *e2 = new_engine();
  if (!e1 || !e2) {
    mc_engine_destroy(e1);
    mc_engine_destroy(e2);
    reap_peer(&other);
    return 1;
  }
  check_plugin_origin(e1);
  CHECK_OK(mc_register(e1, a, BUF_LEN, NULL));
  CHECK_OK(mc_register(e2, b, BUF_LEN, NULL));

  mc_segment *s2 = NULL;
  int rc = mc_segment_open(e1, mc_engine_segment_name(e2), &s2);
  CHECK(rc == 0);
  if (rc == 0) {
    /* Write a[0, 300000) to b[70000, ...): crosses slice boundaries. */
    mc_request w = {MC_OP_WRITE, a, s2, (uint64_t)(uintptr_t)(b + 70000),
                    300000};
    CHECK_OK(mc_transfer_sync(e1, &w, 1, TIMEOUT_MS));
    memcpy(ref + 70000, a, 300000);
    CHECK(memcmp(b, ref, BUF_LEN) == 0);

    /* Read b[500000, +400001) into a[600000, ...). */
    uint8_t *before = malloc(BUF_LEN);
    CHECK(before != NULL);
    if (before) {
      memcpy(before, a, BUF_LEN);
      mc_request r = {MC_OP_READ, a + 600000, s2,
                      (uint64_t)(uintptr_t)(b + 500000), 400001};
      CHECK_OK(mc_transfer_sync(e1, &r, 1, TIMEOUT_MS));
      memcpy(before + 600000, b + 500000, 400001);
      CHECK(memcmp(a, before, BUF_LEN) == 0);
      free(before);
    }

    /* A batch of small writes, each reported as carried by oot. */
    mc_batch *bt = NULL;
    CHECK_OK(mc_batch_create(e1, 8, &bt));
    if (bt) {
      mc_request reqs[8];
      for (int i = 0; i < 8; i++) {
        reqs[i] = (mc_request){MC_OP_WRITE, a + i * 4096, s2,
                               (uint64_t)(uintptr_t)(b + BUF_LEN - (i + 1) * 4096),
                               4096};
        memcpy(ref + BUF_LEN - (i + 1) * 4096, a + i * 4096, 4096);
      }
      CHECK_OK(mc_batch_submit(bt, reqs, 8));
      CHECK_OK(mc_batch_wait(bt, TIMEOUT_MS));
      for (uint32_t i = 0; i < 8; i++) {
        mc_transfer_status st;
        CHECK_OK(mc_batch_status(bt, i, &st));
        CHECK(st.state == MC_XFER_COMPLETED && st.bytes == 4096);
        CHECK_STR(st.transport, "oot");
      }
      mc_batch_destroy(bt);
      CHECK(memcmp(b, ref, BUF_LEN) == 0);
    }

    /* Past the end of b: refused, b unchanged. */
    mc_request bad = {MC_OP_WRITE, a, s2,
                      (uint64_t)(uintptr_t)(b + BUF_LEN - 100), 200};
    CHECK(mc_transfer_sync(e1, &bad, 1, TIMEOUT_MS) != 0);
    CHECK(memcmp(b, ref, BUF_LEN) == 0);
    mc_segment_close(s2);
  }

  test_cross_process(e1, a, &other);
  reap_peer(&other);

  CHECK_OK(mc_unregister(e1, a));
  CHECK_OK(mc_unregister(e2, b));
  mc_engine_destroy(e1);
  mc_engine_destroy(e2);
  free(a);
  free(b);
  free(ref);
  if (mc_check_exit_status())
    return 1;
  printf("oot: transfers verified\n");
  return 0;
}
