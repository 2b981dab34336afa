/* No plugin call under the registry lock (issue 11 item 5): while one
 * thread registers a buffer whose register_mem sleeps (the flaky test
 * transport with slow_reg_len: pinning gigabytes on a NIC takes seconds),
 * transfers on buffers registered before keep completing, an overlapping
 * registration is refused at once with MC_EEXIST, and the slow buffer is
 * usable once its registration returns.  Then the same while its
 * deregister_mem sleeps in mc_unregister. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_test_util.h"
#include "mooncake/engine.h"

typedef struct flaky_stats {
  _Atomic uint64_t slices, failed, bytes, max_len, min_len, notifies;
  _Atomic uint64_t per_rail[8];
  _Atomic uint64_t reg_sleeping, reg_slow, dereg_slow;
} flaky_stats;

#define SLOW_LEN (3u << 20)   /* the marked buffer's length */
#define SLOW_MS 1500          /* how long its register_mem sleeps */
#define MIN_DONE 50           /* transfers that must complete meanwhile */
#define MAX_WAIT_MS 500       /* the slowest of them */

static const char *plugin_dir;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static flaky_stats *stats(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/mc-transport-flaky.so", plugin_dir);
  void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (!h)
    return NULL;
  flaky_stats *s = dlsym(h, "flaky_stats_flaky");
  dlclose(h);
  return s;
}

static int make_engine(mc_engine **e) {
  char path[256], err[1024] = "";
  snprintf(path, sizeof path, "/tmp/mc-test-slowreg-%d.yaml", (int)getpid());
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fprintf(f, "transports:\n  flaky: {slow_reg_len: %u, slow_reg_ms: %d}\n",
          SLOW_LEN, SLOW_MS);
  fclose(f);
  mc_engine_opts o = {.struct_size = sizeof o, .config_path = path,
                      .plugin_path = plugin_dir};
  int rc = mc_engine_create_ex(&o, e, err, sizeof err);
  unlink(path);
  CHECK_MSG(rc == 0, "engine: %s (%s)", mc_strerror(rc), err);
  return rc;
}

typedef struct slow_reg {
  mc_engine *e;
  void *addr;
  int rc;
  uint64_t ms;
} slow_reg;

static void *register_slow(void *arg) {
  slow_reg *r = arg;
  uint64_t t0 = now_ms();
  r->rc = mc_register(r->e, r->addr, SLOW_LEN, NULL);
  r->ms = now_ms() - t0;
  return NULL;
}

static void *unregister_slow(void *arg) {
  slow_reg *r = arg;
  uint64_t t0 = now_ms();
  r->rc = mc_unregister(r->e, r->addr);
  r->ms = now_ms() - t0;
  return NULL;
}

/* Transfers 64 KiB writes from abuf while the plugin sleeps; returns how
 * many completed, *worst the slowest (ms). */
static uint64_t transfer_while_sleeping(mc_engine *a, mc_segment *seg, uint8_t *abuf,
                                        uint8_t *bbuf, flaky_stats *st, uint64_t *worst) {
  uint64_t done = 0;
  *worst = 0;
  while (atomic_load(&st->reg_sleeping)) {
    uint64_t s0 = now_ms();
    mc_request r = {MC_OP_WRITE, abuf, seg, (uint64_t)(uintptr_t)bbuf, 64 << 10};
    int rc = mc_transfer_sync(a, &r, 1, 5000);
    uint64_t took = now_ms() - s0;
    CHECK_MSG(rc == 0, "transfer during the slow plugin call: %s", mc_strerror(rc));
    if (rc)
      break;
    done++; /* started while the plugin slept */
    if (took > *worst)
      *worst = took;
    if (took > MAX_WAIT_MS)
      break;
  }
  return done;
}

static void wait_sleeping(flaky_stats *st) {
  uint64_t t0 = now_ms();
  while (!atomic_load(&st->reg_sleeping) && now_ms() - t0 < 5000)
    usleep(1000);
  CHECK_MSG(atomic_load(&st->reg_sleeping), "the plugin never started sleeping");
}

int main(int argc, char **argv) {
  mc_check_keep_going(1);
  if (argc < 2) {
    fprintf(stderr, "usage: %s <plugin dir>\n", argv[0]);
    return 2;
  }
  plugin_dir = argv[1];
  mc_engine *a = NULL, *b = NULL;
  if (make_engine(&a) || make_engine(&b))
    return 1;
  const size_t len = 1 << 20;
  uint8_t *abuf = aligned_alloc(4096, len), *bbuf = aligned_alloc(4096, len);
  uint8_t *slow = aligned_alloc(4096, SLOW_LEN);
  memset(abuf, 0x5a, len);
  memset(bbuf, 0, len);
  CHECK_MSG(mc_register(a, abuf, len, NULL) == 0, "register a");
  CHECK_MSG(mc_register(b, bbuf, len, NULL) == 0, "register b");
  mc_segment *seg = NULL;
  int rc = mc_segment_open(a, mc_engine_segment_name(b), &seg);
  CHECK_MSG(rc == 0, "open: %s", mc_strerror(rc));
  flaky_stats *st = stats();
  CHECK_MSG(st != NULL, "flaky stats not found");
  if (rc || !st)
    return 1;

  /* One transfer first: the endpoint and the import exist before the slow
   * registration starts (they are control calls, which the ABI serializes
   * per transport context, so a first connect would wait for it). */
  mc_request warm = {MC_OP_WRITE, abuf, seg, (uint64_t)(uintptr_t)bbuf, 4096};
  rc = mc_transfer_sync(a, &warm, 1, 5000);
  CHECK_MSG(rc == 0, "first transfer: %s", mc_strerror(rc));

  slow_reg sr = {.e = a, .addr = slow};
  pthread_t th;
  pthread_create(&th, NULL, register_slow, &sr);
  wait_sleeping(st); /* inside register_mem now */

  /* Meanwhile: an overlapping registration is refused at once, and the
   * reserved range is not usable yet. */
  uint64_t o0 = now_ms();
  rc = mc_register(a, slow + 4096, 4096, NULL);
  uint64_t overlap_ms = now_ms() - o0;
  CHECK_MSG(rc == MC_EEXIST, "overlap with a registration in progress: %s", mc_strerror(rc));
  CHECK_MSG(overlap_ms < MAX_WAIT_MS, "overlap refusal took %llu ms",
        (unsigned long long)overlap_ms);
  mc_request early = {MC_OP_WRITE, slow, seg, (uint64_t)(uintptr_t)bbuf, 4096};
  rc = mc_transfer_sync(a, &early, 1, 2000);
  CHECK_MSG(rc != 0, "a transfer from a buffer still registering succeeded");
  CHECK_MSG(mc_unregister(a, slow) == MC_ENOENT, "unregister of a buffer still registering");

  /* Transfers on the buffer registered before keep flowing. */
  uint64_t worst, done = transfer_while_sleeping(a, seg, abuf, bbuf, st, &worst);
  pthread_join(th, NULL);
  printf("slow register_mem: %llu ms; transfers completed meanwhile: %llu; "
         "slowest: %llu ms; overlap refused in %llu ms\n",
         (unsigned long long)sr.ms, (unsigned long long)done,
         (unsigned long long)worst, (unsigned long long)overlap_ms);
  CHECK_MSG(sr.rc == 0, "slow register: %s", mc_strerror(sr.rc));
  CHECK_MSG(sr.ms >= SLOW_MS - 50, "slow register took only %llu ms", (unsigned long long)sr.ms);
  CHECK_MSG(atomic_load(&st->reg_slow) == 1, "register_mem slept %llu times",
        (unsigned long long)atomic_load(&st->reg_slow));
  CHECK_MSG(done > MIN_DONE, "only %llu transfers completed during the %d ms registration",
        (unsigned long long)done, SLOW_MS);
  CHECK_MSG(worst < MAX_WAIT_MS, "a transfer waited %llu ms", (unsigned long long)worst);

  /* Published: the slow buffer now moves data. */
  memset(slow, 0x77, 4096);
  mc_request r = {MC_OP_WRITE, slow, seg, (uint64_t)(uintptr_t)bbuf + 8192, 4096};
  rc = mc_transfer_sync(a, &r, 1, 5000);
  CHECK_MSG(rc == 0, "transfer from the slow buffer: %s", mc_strerror(rc));
  CHECK_MSG(rc || bbuf[8192] == 0x77, "data not written");

  /* Unregistration: deregister_mem sleeps, transfers go on. */
  slow_reg su = {.e = a, .addr = slow};
  pthread_create(&th, NULL, unregister_slow, &su);
  wait_sleeping(st); /* inside deregister_mem now */
  /* Already out of the list (taken under the lock before the plugin call). */
  CHECK_MSG(mc_unregister(a, slow) == MC_ENOENT, "second unregister while the first runs");
  uint64_t dworst, ddone = transfer_while_sleeping(a, seg, abuf, bbuf, st, &dworst);
  pthread_join(th, NULL);
  printf("slow deregister_mem: %llu ms; transfers completed meanwhile: %llu; "
         "slowest: %llu ms\n",
         (unsigned long long)su.ms, (unsigned long long)ddone, (unsigned long long)dworst);
  CHECK_MSG(su.rc == 0, "slow unregister: %s", mc_strerror(su.rc));
  CHECK_MSG(atomic_load(&st->dereg_slow) == 1, "deregister_mem slept %llu times",
        (unsigned long long)atomic_load(&st->dereg_slow));
  CHECK_MSG(ddone > MIN_DONE, "only %llu transfers completed during the unregistration",
        (unsigned long long)ddone);
  CHECK_MSG(dworst < MAX_WAIT_MS, "a transfer waited %llu ms", (unsigned long long)dworst);

  mc_segment_close(seg);
  mc_engine_destroy(a);
  mc_engine_destroy(b);
  free(abuf);
  free(bbuf);
  free(slow);
  return mc_check_exit_status();
}
