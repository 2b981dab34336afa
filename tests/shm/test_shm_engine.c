/* Two engines in two processes on one host: the target exposes a shared
 * pool (mc_alloc_shared) and plain memory (mc_register); the initiator reads
 * and writes both, data verified on both sides, and the engine must have
 * picked shm.  An initiator that did not load shm falls back to tcp for
 * the same segment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "check.h"
#include "mooncake/engine.h"

#define LEN (8u << 20)

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed ^ (i * 31) ^ (i >> 13));
}

static int check(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed ^ (i * 31) ^ (i >> 13)))
      return 0;
  return 1;
}

static mc_engine *engine(const char *transports) {
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  o.transports = transports;
  mc_engine *e = NULL;
  char err[512];
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc) {
    fprintf(stderr, "engine (%s): %s: %s\n", transports, mc_strerror(rc), err);
    exit(1);
  }
  return e;
}

typedef struct target_info {
  char segment[MC_NAME_MAX];
  uint64_t pool, plain;
} target_info;

static void target(int rd, int wr) {
  mc_engine *e = engine("shm,tcp");
  target_info ti = {0};
  snprintf(ti.segment, sizeof ti.segment, "%s", mc_engine_segment_name(e));
  void *pool = NULL;
  CHECK_OK(mc_alloc_shared(e, LEN, "cpu:0", &pool));
  uint8_t *plain = malloc(LEN);
  CHECK_OK(mc_register(e, plain, LEN, NULL));
  fill(pool, LEN, 1);
  fill(plain, LEN, 2);
  ti.pool = (uint64_t)(uintptr_t)pool;
  ti.plain = (uint64_t)(uintptr_t)plain;
  CHECK(write(wr, &ti, sizeof ti) == (ssize_t)sizeof ti);
  uint8_t cmd[3]; /* 'v', seed expected in the pool, seed in plain memory */
  while (read(rd, cmd, 3) == 3 && cmd[0] == 'v') {
    uint8_t ok = (uint8_t)(check(pool, LEN, cmd[1]) && check(plain, LEN, cmd[2]));
    CHECK(write(wr, &ok, 1) == 1);
  }
  CHECK_OK(mc_free_shared(e, pool));
  CHECK_OK(mc_unregister(e, plain));
  free(plain);
  mc_engine_destroy(e);
  exit(0);
}

/* One request through a batch; returns the transport that carried it. */
static void xfer(mc_engine *e, uint32_t op, void *local, mc_segment *s,
                 uint64_t remote, const char *want_transport) {
  mc_batch *b;
  CHECK_OK(mc_batch_create(e, 1, &b));
  mc_request r = {op, local, s, remote, LEN};
  CHECK_OK(mc_batch_submit(b, &r, 1));
  int rc = mc_batch_wait(b, 30000);
  mc_transfer_status st;
  CHECK_OK(mc_batch_status(b, 0, &st));
  if (rc || st.state != MC_XFER_COMPLETED || strcmp(st.transport, want_transport)) {
    fprintf(stderr, "%s of %u bytes: %s, state %u, carried by '%s' (want %s)\n",
            op == MC_OP_READ ? "read" : "write", LEN, mc_strerror(rc), st.state,
            st.transport, want_transport);
    exit(1);
  }
  CHECK(st.bytes == LEN);
  mc_batch_destroy(b);
}

/* Reads both buffers expecting seeds `seed` and seed+1, writes seed+2 and
 * seed+3, and has the target verify them. */
static void initiator(const char *transports, const char *want, int rd, int wr,
                      const target_info *ti, uint8_t seed) {
  mc_engine *e = engine(transports);
  uint8_t *loc = malloc(LEN);
  CHECK_OK(mc_register(e, loc, LEN, NULL));
  mc_segment *s;
  CHECK_OK(mc_segment_open(e, ti->segment, &s));
  memset(loc, 0, LEN);
  xfer(e, MC_OP_READ, loc, s, ti->pool, want);
  CHECK(check(loc, LEN, seed));
  memset(loc, 0, LEN);
  xfer(e, MC_OP_READ, loc, s, ti->plain, want);
  CHECK(check(loc, LEN, (uint8_t)(seed + 1)));
  fill(loc, LEN, (uint8_t)(seed + 2));
  xfer(e, MC_OP_WRITE, loc, s, ti->pool, want);
  fill(loc, LEN, (uint8_t)(seed + 3));
  xfer(e, MC_OP_WRITE, loc, s, ti->plain, want);
  uint8_t ok = 0;
  uint8_t cmd[3] = {'v', (uint8_t)(seed + 2), (uint8_t)(seed + 3)};
  CHECK(write(wr, cmd, 3) == 3 && read(rd, &ok, 1) == 1 && ok == 1);
  mc_segment_close(s);
  CHECK_OK(mc_unregister(e, loc));
  free(loc);
  mc_engine_destroy(e);
  printf("initiator with [%s]: both buffers read and written over %s, verified\n",
         transports, want);
}

int main(void) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(a[1]);
    close(b[0]);
    target(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  target_info ti;
  CHECK(read(b[0], &ti, sizeof ti) == (ssize_t)sizeof ti);
  initiator("shm,tcp", "shm", b[0], a[1], &ti, 1);
  initiator("tcp", "tcp", b[0], a[1], &ti, 3); /* shm not loaded: tcp */
  close(a[1]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  return 0;
}
