/* Two processes on loopback through the TCP transport: reads and writes
 * from 1 byte to 256 MiB at unaligned offsets with data verified, many
 * concurrent batches from several threads, notifications, out-of-range
 * access rejected with target memory unchanged, a buffer registered after
 * open, an unreachable segment, and a target killed mid-transfer. */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_test_util.h"
#include "mooncake/engine.h"


#define BIG (256ull << 20)

static const char *target_exe;
static mc_engine *eng;
static uint8_t *local;
static uint64_t local_len;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t remote_sum(peer *p, uint64_t off, uint64_t len) {
  char r[128];
  if (peer_cmd(p, r, sizeof r, "SUM %llu %llu\n", (unsigned long long)off,
               (unsigned long long)len))
    return 0;
  return strtoull(r + 4, NULL, 16);
}

static void test_sizes(peer *p, mc_segment *seg) {
  static const uint64_t sizes[] = {1, 7, 4095, 65535, 65536, 65537, (1 << 20) + 13,
                                   16u << 20, BIG - 4096};
  uint64_t seed = 1;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++, seed++) {
    uint64_t n = sizes[i];
    uint64_t roff = 3 + (i * 61) % 1000, loff = 5 + (i * 37) % 1000;
    /* WRITE: local pattern -> remote, compare hashes. */
    fill_pattern(local + loff, n, seed);
    mc_request w = {MC_OP_WRITE, local + loff, seg, p->addr + roff, n};
    uint64_t t0 = now_ms();
    int rc = mc_transfer_sync(eng, &w, 1, 60000);
    CHECK_MSG(rc == 0, "write %llu bytes: %s", (unsigned long long)n, mc_strerror(rc));
    CHECK_MSG(remote_sum(p, roff, n) == fnv64(local + loff, n), "write %llu bytes: data differs",
          (unsigned long long)n);
    /* READ: remote filled with another pattern -> local, compare bytes. */
    char r[64];
    peer_cmd(p, r, sizeof r, "FILL %llu %llu %llu\n", (unsigned long long)roff,
             (unsigned long long)n, (unsigned long long)seed + 100);
    memset(local + loff, 0, n);
    mc_request rd = {MC_OP_READ, local + loff, seg, p->addr + roff, n};
    rc = mc_transfer_sync(eng, &rd, 1, 60000);
    CHECK_MSG(rc == 0, "read %llu bytes: %s", (unsigned long long)n, mc_strerror(rc));
    uint64_t bad = n;
    for (uint64_t k = 0; k < n; k++)
      if (local[loff + k] != pattern_byte(k, seed + 100)) {
        bad = k;
        break;
      }
    CHECK_MSG(bad == n, "read %llu bytes: first difference at %llu", (unsigned long long)n,
          (unsigned long long)bad);
    if (n >= (16u << 20))
      printf("  %llu bytes write+read verified in %llu ms\n", (unsigned long long)n,
             (unsigned long long)(now_ms() - t0));
  }
}

typedef struct worker_arg {
  int id;
  peer *p;
  mc_segment *seg;
  int rc;
} worker_arg;

#define THREADS 4
#define REQS 16
#define REQ_LEN (192u << 10)

static void *worker(void *va) {
  worker_arg *a = va;
  mc_batch *b;
  a->rc = mc_batch_create(eng, 2 * REQS, &b);
  if (a->rc)
    return NULL;
  /* Each thread owns a disjoint region on both sides. */
  uint64_t base = (uint64_t)a->id * REQS * REQ_LEN;
  mc_request reqs[REQS];
  for (int i = 0; i < REQS; i++) {
    uint64_t off = base + (uint64_t)i * REQ_LEN;
    fill_pattern(local + off, REQ_LEN - 1, (uint64_t)a->id * 1000 + i);
    reqs[i] = (mc_request){MC_OP_WRITE, local + off, a->seg, a->p->addr + off + 1, REQ_LEN - 1};
  }
  a->rc = mc_batch_submit(b, reqs, REQS);
  if (!a->rc)
    a->rc = mc_batch_wait(b, 60000);
  if (!a->rc) {
    /* Read the same ranges back into a second local region. */
    for (int i = 0; i < REQS; i++) {
      reqs[i].op = MC_OP_READ;
      reqs[i].local = (uint8_t *)reqs[i].local + (64u << 20);
    }
    a->rc = mc_batch_submit(b, reqs, REQS);
    if (!a->rc)
      a->rc = mc_batch_wait(b, 60000);
  }
  for (uint32_t i = 0; !a->rc && i < mc_batch_size(b); i++) {
    mc_transfer_status st;
    mc_batch_status(b, i, &st);
    if (st.state != MC_XFER_COMPLETED || st.bytes != REQ_LEN - 1)
      a->rc = MC_EIO;
  }
  for (int i = 0; !a->rc && i < REQS; i++) {
    uint64_t off = base + (uint64_t)i * REQ_LEN;
    if (memcmp(local + off, local + off + (64u << 20), REQ_LEN - 1) != 0)
      a->rc = MC_EPROTO;
  }
  mc_batch_destroy(b);
  return NULL;
}

static void test_threads(peer *p, mc_segment *seg) {
  pthread_t th[THREADS];
  worker_arg args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    args[i] = (worker_arg){i, p, seg, 0};
    pthread_create(&th[i], NULL, worker, &args[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    CHECK_MSG(args[i].rc == 0, "thread %d: %s", i, mc_strerror(args[i].rc));
  }
}

static void test_out_of_range(peer *p, mc_segment *seg) {
  uint64_t tail = 4096;
  uint64_t before = remote_sum(p, p->len - tail, tail);
  fill_pattern(local, 8192, 77);
  mc_request r = {MC_OP_WRITE, local, seg, p->addr + p->len - 100, 200};
  mc_batch *b;
  mc_batch_create(eng, 2, &b);
  mc_batch_submit(b, &r, 1);
  int rc = mc_batch_wait(b, 10000);
  mc_transfer_status st;
  mc_batch_status(b, 0, &st);
  CHECK_MSG(rc == MC_ERANGE && st.state == MC_XFER_INVALID, "write past the end: rc %s state %u",
        mc_strerror(rc), st.state);
  r.remote = p->addr - 4096;
  mc_batch_submit(b, &r, 1);
  mc_batch_wait(b, 10000);
  mc_batch_status(b, 1, &st);
  CHECK_MSG(st.state == MC_XFER_INVALID && st.error == MC_ERANGE, "write before the start: state %u",
        st.state);
  mc_batch_destroy(b);
  CHECK_MSG(remote_sum(p, p->len - tail, tail) == before, "target memory changed");
}

static void test_growth_and_notify(peer *p, mc_segment *seg) {
  char r[256];
  peer_cmd(p, r, sizeof r, "REG 100000\n");
  unsigned long long extra = 0;
  int rrc = -1;
  CHECK_MSG(sscanf(r, "BUF %llx %d", &extra, &rrc) == 2 && rrc == 0, "REG reply '%s'", r);
  fill_pattern(local, 100000, 5);
  mc_request w = {MC_OP_WRITE, local, seg, extra, 100000};
  mc_batch *b;
  mc_batch_create(eng, 1, &b);
  int rc = mc_batch_submit_notify(b, &w, 1, "kv-ready:42", 11);
  CHECK_MSG(rc == 0, "submit_notify: %s", mc_strerror(rc));
  rc = mc_batch_wait(b, 10000);
  CHECK_MSG(rc == 0, "write into buffer registered after open: %s", mc_strerror(rc));
  mc_batch_destroy(b);
  peer_cmd(p, r, sizeof r, "NOTE 5000\n");
  char expect[512];
  snprintf(expect, sizeof expect, "NOTE %s kv-ready:42", mc_engine_segment_name(eng));
  CHECK_MSG(strcmp(r, expect) == 0, "notification: got '%s', expected '%s'", r, expect);
}

/* Closing a segment while its transfers run must not disturb them, and a
 * reopened segment works (the transfers hold their own view of it). */
static void test_close_in_flight(peer *p) {
  mc_segment *s;
  int rc = mc_segment_open(eng, p->segment, &s);
  CHECK_MSG(rc == 0, "open: %s", mc_strerror(rc));
  if (rc)
    return;
  mc_segment *extra;
  CHECK_MSG(mc_segment_open(eng, p->segment, &extra) == 0 && extra == s, "second open shares the handle");
  mc_segment_close(extra);
  mc_batch *b;
  mc_batch_create(eng, 1, &b);
  mc_request r = {MC_OP_READ, local, s, p->addr, 32u << 20};
  mc_batch_submit(b, &r, 1);
  mc_segment_close(s); /* last reference */
  rc = mc_batch_wait(b, 30000);
  CHECK_MSG(rc == 0, "transfer across close: %s", mc_strerror(rc));
  mc_batch_destroy(b);
  rc = mc_segment_open(eng, p->segment, &s);
  CHECK_MSG(rc == 0, "reopen: %s", mc_strerror(rc));
  if (!rc) {
    r.segment = s;
    r.len = 4096;
    CHECK_MSG(mc_transfer_sync(eng, &r, 1, 10000) == 0, "transfer after reopen");
    mc_segment_close(s);
  }
}

/* An engine destroyed while its transfers run cancels them and returns
 * without touching freed memory (the batch is deliberately not destroyed
 * first).  Runs in a child, which leaves with _exit: the batch it leaks on
 * purpose is not a leak of the library. */
static void test_destroy_in_flight(peer *p) {
  pid_t pid = fork();
  if (pid == 0) {
    mc_engine *e2;
    mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0", .transports = "tcp"};
    if (mc_engine_create(&o, &e2))
      _exit(2);
    uint8_t *buf = aligned_alloc(4096, 64u << 20);
    mc_segment *s;
    if (mc_register(e2, buf, 64u << 20, NULL) || mc_segment_open(e2, p->segment, &s))
      _exit(3);
    mc_batch *b;
    mc_batch_create(e2, 4, &b);
    mc_request r[4];
    for (int i = 0; i < 4; i++)
      r[i] = (mc_request){MC_OP_READ, buf + (uint64_t)i * (16u << 20), s,
                          p->addr + (uint64_t)i * (16u << 20), 16u << 20};
    mc_batch_submit(b, r, 4);
    mc_engine_destroy(e2); /* transfers still running */
    _exit(0);
  }
  int st = 0;
  uint64_t t0 = now_ms();
  while (waitpid(pid, &st, WNOHANG) == 0 && now_ms() - t0 < 30000)
    usleep(10000);
  if (now_ms() - t0 >= 30000) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    CHECK_MSG(0, "engine destroy with transfers in flight hung");
    return;
  }
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "engine destroy with transfers in flight: child status 0x%x", st);
}

static void test_unreachable(void) {
  mc_segment *s = NULL;
  uint64_t t0 = now_ms();
  int rc = mc_segment_open(eng, "127.0.0.1:1", &s);
  CHECK_MSG(rc == MC_EPEER || rc == MC_ETIMEDOUT, "open of a closed port: %s", mc_strerror(rc));
  CHECK_MSG(now_ms() - t0 < 15000, "open of a closed port took %llu ms",
        (unsigned long long)(now_ms() - t0));
  rc = mc_segment_open(eng, "no-port", &s);
  CHECK_MSG(rc != 0, "open of a malformed name succeeded");
}

static void test_killed_target(void) {
  peer v;
  if (peer_start(&v, target_exe, 64u << 20, "tcp")) {
    CHECK_MSG(0, "cannot start victim");
    return;
  }
  mc_segment *seg;
  int rc = mc_segment_open(eng, v.segment, &seg);
  CHECK_MSG(rc == 0, "open victim: %s", mc_strerror(rc));
  if (rc) {
    peer_stop(&v);
    return;
  }
  mc_batch *b;
  mc_batch_create(eng, 8, &b);
  mc_request reqs[4];
  for (int i = 0; i < 4; i++)
    reqs[i] = (mc_request){MC_OP_READ, local + (uint64_t)i * (16u << 20), seg,
                           v.addr + (uint64_t)i * (16u << 20), 16u << 20};
  /* Loop a few rounds so the kill lands while slices are in flight. */
  uint64_t t0 = now_ms();
  mc_batch_submit(b, reqs, 4);
  kill(v.pid, SIGKILL);
  rc = mc_batch_wait(b, 30000);
  uint64_t took = now_ms() - t0;
  CHECK_MSG(rc != MC_ETIMEDOUT, "requests still pending %llu ms after the kill",
        (unsigned long long)took);
  int failed = 0;
  for (int i = 0; i < 4; i++) {
    mc_transfer_status st;
    mc_batch_status(b, (uint32_t)i, &st);
    failed += st.state == MC_XFER_FAILED || st.state == MC_XFER_TIMEOUT;
    CHECK_MSG(st.state != MC_XFER_PENDING, "request %d still pending", i);
  }
  printf("  killed target: %d of 4 requests failed, settled in %llu ms\n", failed,
         (unsigned long long)took);
  /* A new transfer to the dead segment fails quickly, never hangs. */
  mc_request again = {MC_OP_READ, local, seg, v.addr, 4096};
  t0 = now_ms();
  rc = mc_transfer_sync(eng, &again, 1, 30000);
  CHECK_MSG(rc != 0 && rc != MC_ETIMEDOUT, "transfer to a dead target: %s", mc_strerror(rc));
  CHECK_MSG(now_ms() - t0 < 20000, "dead target took %llu ms", (unsigned long long)(now_ms() - t0));
  mc_batch_destroy(b);
  mc_segment_close(seg);
  int st;
  waitpid(v.pid, &st, 0);
  v.pid = 0;
  fclose(v.in);
  fclose(v.out);
}

int main(int argc, char **argv) {
  mc_check_keep_going(1);
  if (argc < 2) {
    fprintf(stderr, "usage: %s TARGET_EXE\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  target_exe = argv[1];
  peer p;
  if (peer_start(&p, target_exe, BIG, "tcp")) {
    fprintf(stderr, "cannot start the target process %s\n", target_exe);
    return 1;
  }
  char err[1024] = "";
  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0", .transports = "tcp"};
  int rc = mc_engine_create_ex(&o, &eng, err, sizeof err);
  if (rc) {
    fprintf(stderr, "engine: %s: %s\n", mc_strerror(rc), err);
    peer_stop(&p);
    return 1;
  }
  local_len = BIG + 4096;
  local = aligned_alloc(4096, local_len);
  memset(local, 0, local_len);
  CHECK_MSG(mc_register(eng, local, local_len, NULL) == 0, "register local");
  test_close_in_flight(&p); /* before anything else holds the segment */
  mc_segment *seg;
  rc = mc_segment_open(eng, p.segment, &seg);
  CHECK_MSG(rc == 0, "open %s: %s", p.segment, mc_strerror(rc));
  if (!rc) {
    test_sizes(&p, seg);
    test_threads(&p, seg);
    test_out_of_range(&p, seg);
    test_growth_and_notify(&p, seg);
    test_destroy_in_flight(&p);
    test_unreachable();
    test_killed_target();
    /* The engine still serves the first target after the kill. */
    fill_pattern(local, 65536, 9);
    mc_request w = {MC_OP_WRITE, local, seg, p.addr, 65536};
    rc = mc_transfer_sync(eng, &w, 1, 10000);
    CHECK_MSG(rc == 0 && remote_sum(&p, 0, 65536) == fnv64(local, 65536),
          "transfer after another peer died: %s", mc_strerror(rc));
    mc_segment_close(seg);
  }
  mc_engine_destroy(eng);
  peer_stop(&p);
  free(local);
  if (!mc_check_failures())
    printf("two-process tcp: all checks passed\n");
  return mc_check_exit_status();
}
