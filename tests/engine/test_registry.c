/* The registry on its own (core/src/registry.h), without an engine: two
 * fake transports built in this file, a publish callback that counts (and
 * can fail).  Registration, overlaps (MC_EEXIST), lookups, MC_EBUSY while a
 * buffer is in use, rollback when a plugin or the publication fails, the
 * descriptor's keys, batches, shared memory, and a registration that blocks
 * inside register_mem while lookups and an overlapping registration go on
 * (no plugin call under the registry's lock). */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_test_util.h"
#include "registry.h"

typedef struct fake {
  int id;
  int fail_len;          /* register_mem of this length fails (MC_EIO) */
  int notsup_len;        /* ... is MC_ENOTSUP (not served) */
  int block_len;         /* ... waits on `go` after posting `entered` */
  sem_t entered, go;
  _Atomic int regs, deregs, frees;
} fake;

static fake fakes[2];

static int f_reg(void *ctx, const mc_mem_desc *d, void **m, void *rkey, size_t *rl) {
  fake *f = ctx;
  if ((int)d->len == f->fail_len)
    return MC_EIO;
  if ((int)d->len == f->notsup_len)
    return MC_ENOTSUP;
  if ((int)d->len == f->block_len) {
    sem_post(&f->entered);
    sem_wait(&f->go);
  }
  atomic_fetch_add(&f->regs, 1);
  *m = (void *)(uintptr_t)(d->addr + (uint64_t)f->id + 1); /* a recognisable handle */
  uint8_t k[3] = {'k', (uint8_t)f->id, (uint8_t)d->len};
  memcpy(rkey, k, sizeof k);
  *rl = sizeof k;
  return 0;
}
static int f_dereg(void *ctx, void *m) {
  (void)m;
  atomic_fetch_add(&((fake *)ctx)->deregs, 1);
  return 0;
}
static int f_alloc(void *ctx, size_t len, const char *loc, void **out) {
  (void)ctx, (void)loc;
  *out = aligned_alloc(4096, len);
  return *out ? 0 : MC_ENOMEM;
}
static int f_free(void *ctx, void *addr, size_t len) {
  (void)len;
  atomic_fetch_add(&((fake *)ctx)->frees, 1);
  free(addr);
  return 0;
}

static mc_logger lg;
static mc_tset set;
static mc_plugin plugins[2];
static mc_transport tr[2];
static mc_rail_info rails[2];

static void setup(void) {
  lg.level = mc_log_env_level();
  set.log = &lg;
  set.n = 2;
  for (int i = 0; i < 2; i++) {
    fake *f = &fakes[i];
    memset(f, 0, sizeof *f);
    f->id = i;
    sem_init(&f->entered, 0, 0);
    sem_init(&f->go, 0, 0);
    snprintf(plugins[i].name, sizeof plugins[i].name, "fake%d", i);
    plugins[i].ops.local_mem_kinds = MC_MEM_CPU;
    plugins[i].ops.remote_mem_kinds = MC_MEM_CPU;
    plugins[i].ops.register_mem = f_reg;
    plugins[i].ops.deregister_mem = f_dereg;
    if (i == 1) {
      plugins[i].ops.alloc_mem = f_alloc;
      plugins[i].ops.free_mem = f_free;
    }
    memset(&tr[i], 0, sizeof tr[i]);
    tr[i].set = &set;
    tr[i].plugin = &plugins[i];
    tr[i].ops = &plugins[i].ops;
    tr[i].ctx = f;
    tr[i].index = i;
    snprintf(rails[i].name, sizeof rails[i].name, "r0");
    tr[i].rails = &rails[i];
    tr[i].nrails = 1;
    pthread_mutex_init(&tr[i].ctl_lock, NULL);
    set.t[i] = &tr[i];
  }
}

static _Atomic int publishes, publish_fail;
static int publish(void *arg) {
  (void)arg;
  atomic_fetch_add(&publishes, 1);
  return atomic_load(&publish_fail) ? MC_EIO : 0;
}

static uint8_t mem[1 << 20] __attribute__((aligned(4096)));
#define A(off) ((void *)(mem + (off)))
#define U(off) ((uint64_t)(uintptr_t)(mem + (off)))

static void test_basic(mc_registry *r) {
  int p0 = atomic_load(&publishes);
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(0), 4096, "cpu:0"}, 1, NULL) == 0, "register");
  CHECK_MSG(atomic_load(&publishes) == p0 + 1, "published once");
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(2048), 4096, NULL}, 1, NULL) == MC_EEXIST,
        "overlap");
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(0), 4096, "gpu:0"}, 1, NULL) == MC_EINVAL,
        "bad location");
  mc_local_buf *b = mc_registry_acquire(r, U(100), 200);
  CHECK_MSG(b != NULL, "acquire inside");
  CHECK_MSG(b && mc_lbuf_mem(b, 0) == (void *)(uintptr_t)(U(0) + 1) &&
            mc_lbuf_mem(b, 1) == (void *)(uintptr_t)(U(0) + 2), "per-transport handles");
  CHECK_MSG(b && mc_lbuf_kind(b) == MC_MEM_CPU && strcmp(mc_lbuf_location(b), "cpu:0") == 0,
        "kind/location");
  CHECK_MSG(b && mc_lbuf_rank(b, 0) && mc_lbuf_rank(b, 0)->n == 1, "rails ranked");
  CHECK_MSG(mc_registry_acquire(r, U(4000), 200) == NULL, "straddling range");
  CHECK_MSG(mc_registry_acquire(r, U(8192), 1) == NULL, "outside");
  void *addr = A(0);
  CHECK_MSG(mc_registry_unregister(r, &addr, 1, NULL) == MC_EBUSY, "unregister in use");
  mc_registry_release(b);
  int d0 = atomic_load(&fakes[0].deregs) + atomic_load(&fakes[1].deregs);
  CHECK_MSG(mc_registry_unregister(r, &addr, 1, NULL) == 0, "unregister");
  CHECK_MSG(atomic_load(&fakes[0].deregs) + atomic_load(&fakes[1].deregs) == d0 + 2,
        "deregistered from both transports");
  CHECK_MSG(mc_registry_unregister(r, &addr, 1, NULL) == MC_ENOENT, "twice");
}

static void test_rollback(mc_registry *r) {
  /* A plugin fails: the other's registration is undone, the range free. */
  fakes[1].fail_len = 8192;
  int d0 = atomic_load(&fakes[0].deregs);
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(0), 8192, NULL}, 1, NULL) == MC_EIO,
        "plugin failure");
  CHECK_MSG(atomic_load(&fakes[0].deregs) == d0 + 1, "rolled back in transport 0");
  CHECK_MSG(mc_registry_acquire(r, U(0), 1) == NULL, "not registered after failure");
  fakes[1].fail_len = 0;
  /* The publication fails: undone too. */
  atomic_store(&publish_fail, 1);
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(0), 8192, NULL}, 1, NULL) == MC_EIO,
        "publish failure");
  atomic_store(&publish_fail, 0);
  CHECK_MSG(mc_registry_acquire(r, U(0), 1) == NULL, "not registered after publish failure");
  /* A batch failing in the middle: the earlier ones are undone. */
  fakes[0].fail_len = 12288;
  mc_region rs[3] = {{A(0), 4096, NULL}, {A(4096), 12288, NULL}, {A(65536), 4096, NULL}};
  uint32_t failed = 99;
  CHECK_MSG(mc_registry_register(r, rs, 3, &failed) == MC_EIO && failed == 1, "batch: failed=%u",
        failed);
  CHECK_MSG(mc_registry_acquire(r, U(0), 1) == NULL, "batch rolled back");
  fakes[0].fail_len = 0;
  CHECK_MSG(mc_registry_register(r, rs, 3, &failed) == 0, "batch");
  void *addrs[3] = {A(0), A(4096), A(65536)};
  void *dup[2] = {A(0), A(0)};
  CHECK_MSG(mc_registry_unregister(r, dup, 2, &failed) == MC_EINVAL && failed == 1, "listed twice");
  CHECK_MSG(mc_registry_unregister(r, addrs, 3, NULL) == 0, "batch unregister");
}

static void test_desc(mc_registry *r) {
  fakes[1].notsup_len = 4096 * 3;
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(0), 4096 * 3, NULL}, 1, NULL) == 0, "reg");
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(65536), 4096, NULL}, 1, NULL) == 0, "reg 2");
  mc_seg_desc d;
  memset(&d, 0, sizeof d);
  CHECK_MSG(mc_registry_fill_desc(r, &d) == 0, "fill_desc");
  CHECK_MSG(d.nbuffers == 2, "%u buffers", d.nbuffers);
  if (d.nbuffers == 2) {
    CHECK_MSG(d.buffers[0].addr == U(0) && d.buffers[0].nkeys == 1 &&
              d.buffers[0].keys[0].transport == 0, "not-served transport has no key");
    CHECK_MSG(d.buffers[1].nkeys == 2 && d.buffers[1].keys[1].len == 3 &&
              d.buffers[1].keys[1].bytes[1] == 1, "keys of buffer 2");
  }
  for (uint32_t i = 0; i < d.nbuffers; i++)
    free(d.buffers[i].keys);
  free(d.buffers);
  fakes[1].notsup_len = 0;
  void *addrs[2] = {A(0), A(65536)};
  CHECK_MSG(mc_registry_unregister(r, addrs, 2, NULL) == 0, "unregister");
}

static void test_shared(mc_registry *r) {
  void *p = NULL;
  CHECK_MSG(mc_registry_alloc_shared(r, 8192, NULL, &p) == 0 && p, "alloc_shared");
  mc_local_buf *b = mc_registry_acquire(r, (uint64_t)(uintptr_t)p, 8192);
  CHECK_MSG(b != NULL, "shared memory is registered");
  CHECK_MSG(mc_registry_free_shared(r, p) == MC_EBUSY, "free_shared while in use");
  mc_registry_release(b);
  int f0 = atomic_load(&fakes[1].frees);
  CHECK_MSG(mc_registry_free_shared(r, p) == 0, "free_shared");
  CHECK_MSG(atomic_load(&fakes[1].frees) == f0 + 1, "freed by the transport that allocated");
  CHECK_MSG(mc_registry_free_shared(r, A(0)) == MC_ENOENT, "free_shared of unknown memory");
  void *q = NULL;
  CHECK_MSG(mc_registry_alloc_shared(r, 4096, "cpu:0", &q) == 0, "alloc_shared 2");
  /* left registered: destroy frees it */
}

typedef struct slow {
  mc_registry *r;
  int rc;
} slow;

static void *slow_register(void *arg) {
  slow *s = arg;
  s->rc = mc_registry_register(s->r, &(mc_region){A(131072), 20480, NULL}, 1, NULL);
  return NULL;
}

static void test_blocked_plugin(mc_registry *r) {
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(0), 4096, NULL}, 1, NULL) == 0, "reg");
  fakes[0].block_len = 20480;
  slow s = {r, -1};
  pthread_t th;
  pthread_create(&th, NULL, slow_register, &s);
  sem_wait(&fakes[0].entered); /* transport 0's register_mem is blocked now */
  /* Lookups and other registrations go on; the reserved range is refused
   * to an overlap and invisible to lookups, unregistration and the
   * descriptor. */
  mc_local_buf *b = mc_registry_acquire(r, U(0), 4096);
  CHECK_MSG(b != NULL, "lookup during a blocked registration");
  mc_registry_release(b);
  CHECK_MSG(mc_registry_register(r, &(mc_region){A(131072 + 4096), 4096, NULL}, 1, NULL) ==
            MC_EEXIST, "overlap with a reservation");
  /* (Another registration would wait for transport 0's control lock: the
   * ABI serializes control calls per context.) */
  CHECK_MSG(mc_registry_acquire(r, U(131072), 1) == NULL, "reserved range is not usable yet");
  void *addr = A(131072);
  CHECK_MSG(mc_registry_unregister(r, &addr, 1, NULL) == MC_ENOENT, "unregister reserved");
  mc_seg_desc d;
  memset(&d, 0, sizeof d);
  mc_registry_fill_desc(r, &d);
  CHECK_MSG(d.nbuffers == 2, "descriptor during the registration (A(0), the shared one): %u buffers", d.nbuffers);
  for (uint32_t i = 0; i < d.nbuffers; i++)
    free(d.buffers[i].keys);
  free(d.buffers);
  sem_post(&fakes[0].go);
  pthread_join(th, NULL);
  fakes[0].block_len = 0;
  CHECK_MSG(s.rc == 0, "blocked registration: %s", mc_strerror(s.rc));
  b = mc_registry_acquire(r, U(131072), 20480);
  CHECK_MSG(b != NULL, "usable once registered");
  mc_registry_release(b);
}

int main(void) {
  mc_check_keep_going(1);
  setup();
  mc_registry *r = NULL;
  CHECK_MSG(mc_registry_create(&set, NULL, publish, NULL, &r) == 0, "create");
  if (!r)
    return 1;
  test_basic(r);
  test_rollback(r);
  test_desc(r);
  test_shared(r);
  test_blocked_plugin(r);
  int d0 = atomic_load(&fakes[0].deregs);
  int f0 = atomic_load(&fakes[1].frees);
  mc_registry_destroy(r); /* frees what is left: 3 buffers, 1 of them shared */
  CHECK_MSG(atomic_load(&fakes[0].deregs) == d0 + 3, "destroy deregistered %d",
        atomic_load(&fakes[0].deregs) - d0);
  CHECK_MSG(atomic_load(&fakes[1].frees) == f0 + 1, "destroy freed the shared buffer");
  mc_registry_destroy(NULL);
  if (!mc_check_failures())
    printf("registry: ok\n");
  return mc_check_exit_status();
}
