/* The segment allocator (store/master/alloc.c): invariants under a random
 * workload, exact reuse after frees, and its utilization under a
 * mixed-size workload (sizes log-uniform 4 KiB..4 MiB): fill a 1 GiB
 * segment until an allocation fails, free a random 30 % of the live
 * blocks, refill until the next failure, 50 times; utilization = bytes
 * allocated / capacity at each failure.  Issue 14 asks for >= 90 %
 * (upstream reports about 96 %). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct live {
  mcs_block *b;
  uint64_t off, size;
} live;

static void check_ok(mcs_alloc *a) {
  char why[200] = "";
  int rc = mcs_alloc_check(a, why, sizeof why);
  CHECK_MSG(rc == 0, "%s", why);
}

static void test_basic(void) {
  mcs_alloc *a;
  CHECK_RC(mcs_alloc_create(10, &a), MC_EINVAL);
  CHECK_OK(mcs_alloc_create(1 << 20, &a));
  uint64_t o1, o2, o3;
  mcs_block *b1 = mcs_alloc_get(a, 100, &o1);
  mcs_block *b2 = mcs_alloc_get(a, 1000, &o2);
  CHECK(b1 && b2 && o1 != o2);
  CHECK_EQ_U64(mcs_alloc_used(a), 128 + 1024);
  CHECK(mcs_alloc_get(a, 0, &o3) == NULL);
  CHECK(mcs_alloc_get(a, (1 << 20) + 1, &o3) == NULL);
  mcs_alloc_put(a, b1);
  mcs_alloc_put(a, b2);
  CHECK_EQ_U64(mcs_alloc_used(a), 0);
  CHECK_EQ_U64(mcs_alloc_free_ranges(a), 1); /* merged back into one */
  CHECK_EQ_U64(mcs_alloc_largest_free(a), 1 << 20);
  /* The whole segment in one block, then nothing more. */
  mcs_block *all = mcs_alloc_get(a, 1 << 20, &o3);
  CHECK(all != NULL && o3 == 0);
  CHECK(mcs_alloc_get(a, 64, &o1) == NULL);
  mcs_alloc_put(a, all);
  check_ok(a);
  /* Exactly full with equal blocks: no byte lost to the classes. */
  live l[16];
  for (int i = 0; i < 16; i++)
    CHECK((l[i].b = mcs_alloc_get(a, 65536, &l[i].off)) != NULL);
  CHECK_EQ_U64(mcs_alloc_used(a), 1 << 20);
  CHECK(mcs_alloc_get(a, 64, &o1) == NULL);
  /* A hole is reused by a request of its size, even the last class. */
  mcs_alloc_put(a, l[7].b);
  mcs_block *again = mcs_alloc_get(a, 65536, &o1);
  CHECK(again != NULL && o1 == l[7].off);
  l[7].b = again;
  for (int i = 0; i < 16; i++)
    mcs_alloc_put(a, l[i].b);
  check_ok(a);
  mcs_alloc_destroy(a);
}

static void test_random(void) {
  mcs_alloc *a;
  CHECK_OK(mcs_alloc_create(64u << 20, &a));
  enum { N = 4000 };
  live *l = calloc(N, sizeof(*l));
  for (int step = 0; step < 200000; step++) {
    int i = (int)(rnd() % N);
    if (l[i].b) {
      mcs_alloc_put(a, l[i].b);
      l[i].b = NULL;
    } else {
      l[i].size = 1 + rnd() % (256 * 1024);
      l[i].b = mcs_alloc_get(a, l[i].size, &l[i].off);
    }
    if (step % 20000 == 0)
      check_ok(a);
  }
  /* No two live blocks overlap. */
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N && l[i].b; j++)
      if (l[j].b)
        CHECK(l[i].off + l[i].size <= l[j].off || l[j].off + l[j].size <= l[i].off);
  for (int i = 0; i < N; i++)
    if (l[i].b)
      mcs_alloc_put(a, l[i].b);
  check_ok(a);
  CHECK_EQ_U64(mcs_alloc_used(a), 0);
  CHECK_EQ_U64(mcs_alloc_free_ranges(a), 1);
  free(l);
  mcs_alloc_destroy(a);
}

static uint64_t mixed_size(void) {
  /* log-uniform in [4 KiB, 4 MiB] */
  double x = (double)(rnd() % 1000000) / 1000000.0;
  return (uint64_t)(4096.0 * pow(1024.0, x));
}

static void test_utilization(void) {
  const uint64_t cap = 1ull << 30;
  mcs_alloc *a;
  CHECK_OK(mcs_alloc_create(cap, &a));
  size_t n = 0, max = 1 << 20;
  live *l = calloc(max, sizeof(*l));
  double sum = 0, minu = 1;
  int rounds = 50;
  uint64_t ops = 0;
  double t0 = now_s();
  for (int r = 0; r < rounds; r++) {
    for (;;) {
      uint64_t sz = mixed_size();
      live x = {.size = sz};
      x.b = mcs_alloc_get(a, sz, &x.off);
      ops++;
      if (!x.b)
        break;
      l[n++] = x;
    }
    double u = (double)mcs_alloc_used(a) / (double)cap;
    sum += u;
    if (u < minu)
      minu = u;
    /* free a random 30 % */
    size_t drop = n * 3 / 10;
    for (size_t k = 0; k < drop; k++) {
      size_t i = rnd() % n;
      mcs_alloc_put(a, l[i].b);
      ops++;
      l[i] = l[--n];
    }
  }
  double dt = now_s() - t0;
  check_ok(a);
  double avg = sum / rounds;
  printf("allocator utilization (mixed 4 KiB..4 MiB, 1 GiB segment, %d fill/free rounds): "
         "average %.2f %%, minimum %.2f %%; %.0f ns per operation (%llu operations)\n",
         rounds, avg * 100, minu * 100, dt * 1e9 / (double)ops, (unsigned long long)ops);
  CHECK_MSG(avg >= 0.90, "average utilization %.4f below 0.90", avg);
  while (n)
    mcs_alloc_put(a, l[--n].b);
  free(l);
  mcs_alloc_destroy(a);
}

int main(void) {
  test_basic();
  test_random();
  test_utilization();
  return 0;
}
