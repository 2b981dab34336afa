/* A peer in another network namespace is not on "our host" for shm: its
 * descriptor is refused with MC_EPEER, while the same peer without the
 * namespace is accepted (control).  Skips (exit 77, reason printed) only
 * where a network namespace cannot be created.  argv[1] = plugin .so. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm_harness.h"

static const char *so;
static char skip_why[256];

/* 1 connected, 0 refused with MC_EPEER, 77 skip. */
static int try_peer(int new_netns) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(a[1]);
    close(b[0]);
    if (new_netns && unshare(CLONE_NEWNET)) {
      uint8_t e = (uint8_t)errno;
      h_send(b[1], &e, 1); /* one byte = "could not unshare" */
      exit(0);
    }
    h_plugin h;
    h_load(&h, so);
    CHECK_RC(h_init(&h, "ns-peer"), 0);
    uint8_t desc[MC_DESC_MAX];
    h_send(b[1], desc, (uint32_t)h_desc(&h, desc, sizeof desc));
    char q;
    h_recv(a[0], &q, 1);
    h_unload(&h);
    exit(0);
  }
  close(a[0]);
  close(b[1]);
  uint8_t desc[MC_DESC_MAX];
  uint32_t len = h_recv(b[0], desc, sizeof desc);
  CHECK(len != UINT32_MAX);
  int result;
  if (len == 1) {
    snprintf(skip_why, sizeof skip_why,
             "cannot create a network namespace: unshare(CLONE_NEWNET): %s", strerror(desc[0]));
    result = 77;
  } else {
    h_plugin h;
    h_load(&h, so);
    CHECK_RC(h_init(&h, "local"), 0);
    void *ep = NULL;
    int rc = h.ops->connect(h.ctx, "ns-peer", desc, len, &ep);
    CHECK(rc == 0 || rc == MC_EPEER);
    result = rc == 0;
    h_unload(&h);
  }
  h_send(a[1], "q", 1);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(a[1]);
  close(b[0]);
  return result;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s mc-transport-shm.so\n", argv[0]);
    return 2;
  }
  so = argv[1];
  CHECK(try_peer(0) == 1);
  printf("peer in our namespaces: accepted\n");
  int r = try_peer(1);
  if (r == 77)
    SKIP("%s", skip_why);
  CHECK(r == 0);
  printf("peer in another network namespace: refused (not local)\n");
  return 0;
}
