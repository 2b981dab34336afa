/* shm plugin, any-memory mode, in one process: the copy workers.  Large
 * slices split into chunks and batched small slices arrive intact, an error
 * in one chunk fails its slice exactly once, a full queue back-pressures,
 * disconnect and fini with slices queued complete each exactly once, and
 * copy_threads 0 (copies inside submit) gives the same results.
 * argv[1] = plugin .so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shm_harness.h"

#define BIG (8u << 20)

static const char *so;
static uint64_t next_token = 1ull << 32;

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed + i * 31 + (i >> 12));
}

/* Index of the first byte that differs from the pattern, n if none. */
static size_t bad_at(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed + i * 31 + (i >> 12)))
      return i;
  return n;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A loopback context: one endpoint to itself, a local and a target buffer
 * (plain memory, so every slice goes through process_vm). */
typedef struct lb {
  h_plugin h;
  void *ep, *lmem, *tmem, *rmem;
  uint8_t *loc, *tgt;
  uint64_t len;
} lb;

static void lb_open(lb *b, const char *threads, const char *chunk,
                    uint64_t len) {
  h_load(&b->h, so);
  if (threads)
    h_opt(&b->h, "copy_threads", threads);
  if (chunk)
    h_opt(&b->h, "copy_chunk", chunk);
  CHECK_RC(h_init(&b->h, "self:1"), 0);
  uint8_t desc[MC_DESC_MAX], key[MC_RKEY_MAX];
  size_t dlen = h_desc(&b->h, desc, sizeof desc), klen;
  CHECK_RC(b->h.ops->connect(b->h.ctx, "self:1", desc, dlen, &b->ep), 0);
  b->len = len;
  /* mmap, so a test can punch a hole into the target. */
  b->loc = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
  b->tgt = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
  CHECK(b->loc != MAP_FAILED && b->tgt != MAP_FAILED);
  CHECK_RC(h_register(&b->h, b->loc, len, &b->lmem, key, &klen), 0);
  CHECK_RC(h_register(&b->h, b->tgt, len, &b->tmem, key, &klen), 0);
  CHECK_RC(b->h.ops->import_mem(b->h.ctx, b->ep, (uint64_t)(uintptr_t)b->tgt, len,
                            key, klen, &b->rmem),
       0);
}

static void lb_close(lb *b) {
  h_unload(&b->h); /* fini releases the endpoint, import, registrations */
  munmap(b->loc, b->len);
  munmap(b->tgt, b->len);
}

static mc_slice mk(lb *b, uint32_t op, uint64_t loff, uint64_t roff,
                   uint64_t len) {
  return (mc_slice){next_token++, op, 0, b->lmem,
                    (uint64_t)(uintptr_t)b->loc + loff, b->rmem,
                    (uint64_t)(uintptr_t)b->tgt + roff, len};
}

/* Submits all of s (resubmitting after back-pressure) and waits for every
 * completion; checks each token completed exactly once with the right
 * byte count. */
static void submit_all(lb *b, mc_slice *s, uint32_t n) {
  h_clear(&b->h);
  uint32_t done = 0;
  uint64_t deadline = now_ms() + 20000;
  while (done < n) {
    uint32_t acc = 0;
    int rc = b->h.ops->submit(b->h.ctx, b->ep, s + done, n - done, &acc);
    CHECK(rc == 0 || (rc == MC_EAGAIN && acc == 0));
    done += acc;
    if (done < n) {
      CHECK(now_ms() < deadline);
      usleep(1000);
    }
  }
  CHECK(h_wait(&b->h, (int)n, 20000) == 0);
  usleep(20000); /* a second completion of some slice would show up here */
  CHECK(h_ndone(&b->h) == (int)n);
  for (uint32_t i = 0; i < n; i++) {
    CHECK(h_count(&b->h, s[i].token) == 1);
    const h_done *d = h_find(&b->h, s[i].token);
    CHECK(d->bytes == (d->status ? 0 : s[i].len));
  }
}

static int status_of(lb *b, const mc_slice *s) {
  const h_done *d = h_find(&b->h, s->token);
  CHECK(d);
  return d->status;
}

/* Large slices (not multiples of the chunk, at odd offsets) and runs of
 * small ones, read then written, data checked. */
static void test_data(const char *threads) {
  lb b;
  lb_open(&b, threads, "64K", BIG);
  fill(b.tgt, BIG, 7);
  memset(b.loc, 0, BIG);
  mc_slice s[400];
  uint32_t n = 0;
  s[n++] = mk(&b, MC_OP_READ, 3, 3, (5u << 20) + 123); /* ~81 chunks */
  uint64_t off = (5u << 20) + 126;
  while (off < BIG) { /* small slices, 1..20 KiB: batched per call */
    uint64_t len = 1024 + (n * 4099) % (20u << 10);
    if (len > BIG - off)
      len = BIG - off;
    s[n++] = mk(&b, MC_OP_READ, off, off, len);
    off += len;
  }
  s[n++] = mk(&b, MC_OP_READ, 0, 0, 3);
  CHECK(n < 400);
  submit_all(&b, s, n);
  for (uint32_t i = 0; i < n; i++)
    CHECK_RC(status_of(&b, &s[i]), 0);
  CHECK(bad_at(b.loc, BIG, 7) == BIG);

  /* Writes: one slice of the whole buffer, and interleaved directions. */
  fill(b.loc, BIG, 9);
  mc_slice w = mk(&b, MC_OP_WRITE, 0, 0, BIG);
  submit_all(&b, &w, 1);
  CHECK_RC(status_of(&b, &w), 0);
  CHECK(bad_at(b.tgt, BIG, 9) == BIG);
  fill(b.loc, 1u << 20, 13);
  n = 0;
  for (uint32_t i = 0; i < 16; i++) /* 64 KiB each: write, read back after */
    s[n++] = mk(&b, MC_OP_WRITE, i << 16, i << 16, 1u << 16);
  submit_all(&b, s, n);
  for (uint32_t i = 0; i < n; i++)
    CHECK_RC(status_of(&b, &s[i]), 0);
  CHECK(bad_at(b.tgt, 1u << 20, 13) == 1u << 20);
  lb_close(&b);
  printf("copy_threads %s: chunked and batched slices, data verified\n",
         threads);
}

/* A hole in the target: the slice over it fails once with MC_ERANGE (the
 * other chunks succeed or are skipped), and small slices batched with one
 * over the hole keep their own status. */
static void test_chunk_error(const char *threads) {
  lb b;
  lb_open(&b, threads, "1M", BIG);
  fill(b.tgt, BIG, 21);
  CHECK(munmap(b.tgt + (5u << 20), 4096) == 0);
  mc_slice s[4];
  s[0] = mk(&b, MC_OP_READ, 0, 0, BIG);
  submit_all(&b, s, 1);
  CHECK_RC(status_of(&b, &s[0]), MC_ERANGE);
  CHECK(h_find(&b.h, s[0].token)->verr != 0);
  s[0] = mk(&b, MC_OP_WRITE, 0, 0, BIG);
  submit_all(&b, s, 1);
  CHECK_RC(status_of(&b, &s[0]), MC_ERANGE);

  memset(b.loc, 0, BIG);
  uint64_t h = 5u << 20;
  s[0] = mk(&b, MC_OP_READ, h - 8192, h - 8192, 4096);
  s[1] = mk(&b, MC_OP_READ, h - 4096, h - 4096, 8192); /* into the hole */
  s[2] = mk(&b, MC_OP_READ, h + 4096, h + 4096, 4096);
  s[3] = mk(&b, MC_OP_READ, h + 8192, h + 8192, 4096);
  submit_all(&b, s, 4);
  CHECK_RC(status_of(&b, &s[0]), 0);
  CHECK_RC(status_of(&b, &s[1]), MC_ERANGE);
  CHECK_RC(status_of(&b, &s[2]), 0);
  CHECK_RC(status_of(&b, &s[3]), 0);
  /* The bytes on both sides of the hole arrived. */
  for (uint64_t i = h - 8192; i < h - 4096; i++)
    CHECK(b.loc[i] == b.tgt[i]);
  for (uint64_t i = h + 4096; i < h + 12288; i++)
    CHECK(b.loc[i] == b.tgt[i]);
  lb_close(&b); /* munmap of the range with its hole is fine */
  printf("copy_threads %s: an error in one chunk fails its slice once\n",
         threads);
}

/* More slices than the queue holds: a prefix is accepted, a submit on a
 * full queue is MC_EAGAIN with nothing taken, everything completes once. */
static void test_backpressure(void) {
  lb b;
  lb_open(&b, "1", "1M", 4u << 20);
  fill(b.tgt, 4u << 20, 3);
  enum { N = 700 };
  mc_slice *s = calloc(N, sizeof *s);
  CHECK(s);
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(&b, MC_OP_READ, 0, 0, 4u << 20);
  uint32_t acc = 0;
  CHECK_RC(b.h.ops->submit(b.h.ctx, b.ep, s, N, &acc), 0);
  CHECK(acc > 0 && acc < N);
  /* Completions are in flight while we look, so only bounds hold. */
  uint32_t acc2 = 0;
  int rc = b.h.ops->submit(b.h.ctx, b.ep, s + acc, 1, &acc2);
  CHECK((rc == MC_EAGAIN && acc2 == 0) || (rc == 0 && acc2 == 1));
  uint32_t first = acc + acc2;
  CHECK(h_wait(&b.h, (int)first, 30000) == 0);
  /* the rest, through the usual loop (which clears the log) */
  for (uint32_t i = 0; i < first; i++)
    CHECK(h_count(&b.h, s[i].token) == 1 && h_find(&b.h, s[i].token)->status == 0);
  submit_all(&b, s + first, N - first);
  CHECK(bad_at(b.loc, 4u << 20, 3) == 4u << 20);
  free(s);
  lb_close(&b);
  printf("back-pressure: %u of %d accepted at once, all completed once\n", acc,
         N);
}

/* Submits n slices of len bytes (reads of the whole target) without
 * waiting; returns how many were accepted. */
static uint32_t flood(lb *b, mc_slice *s, uint32_t n, uint64_t len) {
  for (uint32_t i = 0; i < n; i++)
    s[i] = mk(b, MC_OP_READ, 0, 0, len);
  uint32_t acc = 0;
  CHECK_RC(b->h.ops->submit(b->h.ctx, b->ep, s, n, &acc), 0);
  return acc;
}

/* Checks the outcome of a canceled flood: each accepted slice completed
 * exactly once, with success or MC_ECANCELED, and some were canceled. */
static void check_canceled(lb *b, const mc_slice *s, uint32_t acc,
                           const char *what) {
  uint32_t ok = 0, canceled = 0;
  CHECK(h_ndone(&b->h) == (int)acc);
  for (uint32_t i = 0; i < acc; i++) {
    CHECK(h_count(&b->h, s[i].token) == 1);
    int st = h_find(&b->h, s[i].token)->status;
    CHECK(st == 0 || st == MC_ECANCELED);
    ok += st == 0;
    canceled += st == MC_ECANCELED;
  }
  /* 256 x 16 MiB cannot be copied between submit and the next call. */
  CHECK(canceled > 0);
  printf("%s with %u slices queued: %u done, %u MC_ECANCELED, each once\n",
         what, acc, ok, canceled);
}

static void test_fini_queued(void) {
  lb b;
  lb_open(&b, "2", "1M", 16u << 20);
  enum { N = 256 };
  mc_slice s[N];
  h_clear(&b.h);
  uint32_t acc = flood(&b, s, N, 16u << 20);
  CHECK(acc == N);
  uint64_t t0 = now_ms();
  h_fini(&b.h); /* the workers are joined: no completion can follow */
  CHECK(now_ms() - t0 < 10000);
  check_canceled(&b, s, acc, "fini");
  lb_close(&b);
}

static void test_disconnect_queued(void) {
  lb b;
  lb_open(&b, "2", "1M", 16u << 20);
  enum { N = 256 };
  mc_slice s[N];
  h_clear(&b.h);
  uint32_t acc = flood(&b, s, N, 16u << 20);
  CHECK(acc == N);
  /* Every slice of the endpoint is completed when disconnect returns. */
  CHECK_RC(b.h.ops->disconnect(b.h.ctx, b.ep), 0);
  check_canceled(&b, s, acc, "disconnect");
  usleep(20000);
  CHECK(h_ndone(&b.h) == (int)acc);
  lb_close(&b);
}

static void test_bad_options(void) {
  static const char *const bad[][2] = {
      {"copy_threads", "-2"}, {"copy_threads", "65"}, {"copy_threads", "two"},
      {"copy_chunk", "1K"},   {"copy_chunk", "2G"},   {"copy_chunk", "3M"},
      {"copy_chunk", "x"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    h_plugin h;
    h_load(&h, so);
    h_opt(&h, bad[i][0], bad[i][1]);
    CHECK_RC(h_init(&h, "x"), MC_EINVAL);
    h_unload(&h);
  }
  printf("bad copy_threads / copy_chunk refused\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s mc-transport-shm.so\n", argv[0]);
    return 2;
  }
  so = argv[1];
  test_data("3");
  test_data("0");
  test_data("-1");
  test_chunk_error("3");
  test_chunk_error("0");
  test_backpressure();
  test_fini_queued();
  test_disconnect_queued();
  test_bad_options();
  return 0;
}
