/* The nvlink plugin's ops table hosted by the fake host (no engine), over
 * the fake CUDA driver.  Modes (argv[3]):
 *   enodev    no driver library: init fails MC_ENODEV with one line naming it
 *   nodevice  the driver reports no device: MC_ENODEV, "no CUDA device"
 *   dlsym     the driver's cuGetProcAddress finds nothing: the plugin falls
 *             back to dlsym and still copies
 *   forged    a second process's keys, well-formed and forged: only the
 *             genuine one imports; out-of-range slices fail MC_ERANGE
 *   query     query_mem: device memory, host memory, a range running past
 *             its allocation
 *   wire      the descriptor and key codecs: round trips, encoded sizes,
 *             and 200000 random mutations and lengths fed to the decoders
 *             (run under ASan in CI) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cuda_fake.h"
#include "fake_host.h"
#include "nvl_wire.h"

static const mc_transport_ops *ops;
static test_cuda cu;

static void *start(mc_fake_host *h, const char *name, const char *lib) {
  mc_fake_host_init(h, name, ops);
  h->print_level = MC_LOG_ERROR;
  if (lib)
    CHECK_OK(mc_fake_host_set(h, "library", lib));
  mc_init_args a = {sizeof a, name, "127.0.0.1", "test-host"};
  void *ctx = NULL;
  int rc = ops->init(&h->api, &a, &ctx);
  if (rc) {
    ctx = NULL;
    h->last_status = rc; /* the caller looks at it */
  }
  return ctx;
}

static void wait_done(mc_fake_host *h, uint64_t n) {
  pthread_mutex_lock(&h->lock);
  for (int i = 0; i < 5000 && h->completions < n; i++) {
    pthread_mutex_unlock(&h->lock);
    usleep(1000);
    pthread_mutex_lock(&h->lock);
  }
  uint64_t got = h->completions;
  pthread_mutex_unlock(&h->lock);
  CHECK_EQ_U64(got, n);
}

static void mode_enodev(void) {
  mc_fake_host h;
  void *ctx = start(&h, "a", "/nonexistent/libcuda.so.1");
  CHECK(ctx == NULL);
  CHECK_RC(h.last_status, MC_ENODEV);
  CHECK_HAS(h.last_warn, "/nonexistent/libcuda.so.1");
  CHECK(strchr(h.last_warn, '\n') == NULL);
  printf("enodev: %s\n", h.last_warn);
  mc_fake_host_fini(&h);
}

static void mode_nodevice(const char *lib) {
  setenv("MC_FAKECUDA_DEVICES", "0", 1);
  mc_fake_host h;
  void *ctx = start(&h, "a", lib);
  CHECK(ctx == NULL);
  CHECK_RC(h.last_status, MC_ENODEV);
  CHECK_HAS(h.last_warn, "no CUDA device is present");
  printf("nodevice: %s\n", h.last_warn);
  mc_fake_host_fini(&h);
}

static int reg(void *ctx, void *p, size_t len, void **mem, uint8_t *key,
               size_t *klen) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)p, len, MC_MEM_CUDA, 0, "cuda:0",
                   NULL, 0, 0};
  *klen = MC_RKEY_MAX;
  return ops->register_mem(ctx, &d, mem, key, klen);
}

/* One process: register, import through a loopback endpoint, copy. */
static void mode_dlsym(const char *lib) {
  setenv("MC_FAKECUDA_NO_GETPROC", "1", 1);
  mc_fake_host h;
  void *ctx = start(&h, "a", lib);
  CHECK(ctx != NULL);
  uint8_t *a = test_cuda_alloc(&cu, 1 << 20), *b = test_cuda_alloc(&cu, 1 << 20);
  void *ma, *mb, *ep, *rm;
  uint8_t key[MC_RKEY_MAX], desc[MC_DESC_MAX];
  size_t klen, kb, dlen = sizeof desc;
  CHECK_OK(reg(ctx, a, 1 << 20, &ma, key, &kb));
  CHECK_OK(reg(ctx, b, 1 << 20, &mb, key, &klen));
  CHECK_OK(ops->local_desc(ctx, desc, &dlen));
  CHECK_OK(ops->connect(ctx, "a", desc, dlen, &ep));
  CHECK_OK(ops->import_mem(ctx, ep, (uint64_t)(uintptr_t)b, 1 << 20, key, klen, &rm));
  for (int i = 0; i < (1 << 20); i++)
    a[i] = (uint8_t)(i * 7);
  mc_slice s = {1, MC_OP_WRITE, 0, ma, (uint64_t)(uintptr_t)a, rm,
                (uint64_t)(uintptr_t)b, 1 << 20};
  uint32_t acc = 0;
  CHECK_OK(ops->submit(ctx, ep, &s, 1, &acc));
  CHECK_EQ_INT(acc, 1);
  wait_done(&h, 1);
  CHECK_RC(h.last_status, 0);
  CHECK(memcmp(a, b, 1 << 20) == 0);
  CHECK_OK(ops->release_mem(ctx, rm));
  CHECK_OK(ops->disconnect(ctx, ep));
  CHECK_OK(ops->deregister_mem(ctx, ma));
  CHECK_OK(ops->deregister_mem(ctx, mb));
  CHECK_OK(ops->fini(ctx));
  mc_fake_host_fini(&h);
  printf("dlsym fallback: loopback copy of 1 MiB checked\n");
}

static void mode_query(const char *lib) {
  mc_fake_host h;
  void *ctx = start(&h, "a", lib);
  CHECK(ctx != NULL);
  uint8_t *d = test_cuda_alloc(&cu, 3 << 20);
  uint32_t kind = 0;
  int32_t dev = -1;
  CHECK_OK(ops->query_mem(ctx, (uint64_t)(uintptr_t)d + 5, 1 << 20, &kind, &dev));
  CHECK_EQ_INT(kind, MC_MEM_CUDA);
  CHECK_EQ_INT(dev, 0);
  uint8_t host[64];
  CHECK_RC(ops->query_mem(ctx, (uint64_t)(uintptr_t)host, sizeof host, &kind, &dev),
           MC_ENOENT);
  CHECK_RC(ops->query_mem(ctx, (uint64_t)(uintptr_t)d, (3 << 20) + 1, &kind, &dev),
           MC_EINVAL);
  /* Register refuses host memory claimed to be cuda, and non-cuda kinds. */
  void *m;
  uint8_t key[MC_RKEY_MAX];
  size_t klen;
  CHECK_RC(reg(ctx, host, sizeof host, &m, key, &klen), MC_EINVAL);
  mc_mem_desc cpu = {(uint64_t)(uintptr_t)host, sizeof host, MC_MEM_CPU, 0,
                     "cpu:0", NULL, 0, 0};
  klen = sizeof key;
  CHECK_RC(ops->register_mem(ctx, &cpu, &m, key, &klen), MC_ENOTSUP);
  CHECK_OK(ops->fini(ctx));
  mc_fake_host_fini(&h);
  printf("query_mem: cuda:0, host memory and a partial range told apart\n");
}

/* The owner: registers 1 MiB inside a 2 MiB allocation, sends its
 * descriptor and key, serves until the pipe closes. */
static void owner(const char *lib, int rd, int wr) {
  mc_fake_host h;
  void *ctx = start(&h, "owner", lib);
  CHECK(ctx != NULL);
  uint8_t *d = test_cuda_alloc(&cu, 2 << 20);
  for (int i = 0; i < (2 << 20); i++)
    d[i] = (uint8_t)(i ^ (i >> 8));
  void *m;
  uint8_t msg[MC_DESC_MAX + MC_RKEY_MAX + 32];
  size_t dlen = MC_DESC_MAX, klen;
  uint64_t addr = (uint64_t)(uintptr_t)d + 4096;
  CHECK_OK(reg(ctx, d + 4096, 1 << 20, &m, msg + 24 + MC_DESC_MAX, &klen));
  CHECK_OK(ops->local_desc(ctx, msg + 24, &dlen));
  memcpy(msg, &addr, 8);
  memcpy(msg + 8, &dlen, 8);
  memcpy(msg + 16, &klen, 8);
  CHECK(write(wr, msg, sizeof msg) == (ssize_t)sizeof msg);
  char c;
  while (read(rd, &c, 1) == 1)
    ;
  CHECK_OK(ops->deregister_mem(ctx, m));
  CHECK_OK(ops->fini(ctx));
  mc_fake_host_fini(&h);
  exit(0);
}

static void mode_wire(void) {
  nvl_desc d = {NVL_DESC_FABRIC, 1234, 1000, 4026531836ull, 8, "boot-id-x"}, d2;
  nvl_rkey k = {NVL_RKEY_IPC, 3, 1234, 0x10000, 4096, 0x8000, 1 << 20, {7}}, k2;
  uint8_t db[NVL_DESC_SIZE + 8], kb[NVL_RKEY_SIZE + 8];
  size_t dl = 0, kl = 0;
  const char *why;
  CHECK_RC(nvl_desc_encode(&d, NULL, &dl), MC_ENOSPC);
  CHECK_EQ_U64(dl, NVL_DESC_SIZE);
  CHECK_RC(nvl_rkey_encode(&k, NULL, &kl), MC_ENOSPC);
  CHECK_EQ_U64(kl, NVL_RKEY_SIZE);
  memset(db, 0xee, sizeof db);
  memset(kb, 0xee, sizeof kb);
  CHECK_OK(nvl_desc_encode(&d, db, &dl));
  CHECK_OK(nvl_rkey_encode(&k, kb, &kl));
  CHECK(db[NVL_DESC_SIZE] == 0xee && kb[NVL_RKEY_SIZE] == 0xee); /* no overrun */
  CHECK_OK(nvl_desc_decode(db, dl, &d2, &why));
  CHECK(d2.pid == 1234 && d2.pidns == d.pidns && d2.ndev == 8 &&
        !strcmp(d2.host_id, "boot-id-x"));
  CHECK_OK(nvl_rkey_decode(kb, kl, &k2, &why));
  CHECK(k2.addr == k.addr && k2.alloc_size == k.alloc_size && k2.handle[0] == 7);
  srand(42);
  uint64_t ok = 0;
  for (int i = 0; i < 200000; i++) {
    uint8_t m[NVL_RKEY_SIZE + 16];
    int key = i & 1;
    size_t n = key ? kl : dl;
    memcpy(m, key ? kb : db, n);
    for (int f = rand() % 4; f >= 0; f--)
      m[(size_t)rand() % n] ^= (uint8_t)(1u << (rand() % 8));
    if (rand() % 8 == 0)
      n = (size_t)rand() % sizeof m;
    /* A heap copy of exactly n bytes, so ASan sees any overread. */
    uint8_t *h = malloc(n ? n : 1);
    memcpy(h, m, n);
    int rc = key ? nvl_rkey_decode(h, n, &k2, &why) : nvl_desc_decode(h, n, &d2, &why);
    CHECK(rc == 0 || rc == MC_EPROTO);
    if (rc == 0 && key)
      CHECK(k2.addr >= k2.alloc_base && k2.addr + k2.len <= k2.alloc_base + k2.alloc_size &&
            k2.len > 0);
    if (rc == 0 && !key)
      CHECK(memchr(d2.host_id, 0, sizeof d2.host_id) != NULL);
    ok += rc == 0;
    free(h);
  }
  printf("wire: round trips, sizes %zu/%zu, 200000 mutations (%llu still valid)\n",
         dl, kl, (unsigned long long)ok);
}

static uint64_t erange_seen;
static void on_complete(void *arg, uint64_t token, int status, uint64_t bytes,
                        int32_t verr) {
  (void)arg, (void)bytes, (void)verr;
  if (token == 2 && status == MC_ERANGE)
    erange_seen = 1;
}

static void mode_forged(const char *lib) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(a[1]);
    close(b[0]);
    owner(lib, a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  uint8_t msg[MC_DESC_MAX + MC_RKEY_MAX + 32];
  CHECK(read(b[0], msg, sizeof msg) == (ssize_t)sizeof msg);
  uint64_t addr;
  size_t dlen, klen;
  memcpy(&addr, msg, 8);
  memcpy(&dlen, msg + 8, 8);
  memcpy(&klen, msg + 16, 8);
  const uint8_t *desc = msg + 24, *key = msg + 24 + MC_DESC_MAX;
  CHECK_EQ_U64(klen, NVL_RKEY_SIZE);

  mc_fake_host h;
  void *ctx = start(&h, "importer", lib);
  CHECK(ctx != NULL);
  h.on_complete = on_complete;
  void *ep, *rm;
  CHECK_OK(ops->connect(ctx, "owner", desc, dlen, &ep));
  nvl_rkey k;
  const char *why;
  CHECK_OK(nvl_rkey_decode(key, klen, &k, &why));
  uint8_t f[MC_RKEY_MAX];
  size_t flen;
  /* Malformed: truncated, bad magic, unknown version. */
  CHECK_RC(ops->import_mem(ctx, ep, addr, 1 << 20, key, klen - 1, &rm), MC_EPROTO);
  memcpy(f, key, klen);
  f[0] ^= 0xff;
  CHECK_RC(ops->import_mem(ctx, ep, addr, 1 << 20, f, klen, &rm), MC_EPROTO);
  memcpy(f, key, klen);
  f[4] = 99;
  CHECK_RC(ops->import_mem(ctx, ep, addr, 1 << 20, f, klen, &rm), MC_EPROTO);
  /* Well-formed but forged: another fd number in the IPC handle (the
   * driver refuses it), an allocation bigger than the handle maps, a key
   * of another process, an import outside the key's range. */
  nvl_rkey g = k;
  int32_t fd = 0;
  memcpy(g.handle + 12, &fd, 4);
  flen = sizeof f;
  CHECK_OK(nvl_rkey_encode(&g, f, &flen));
  CHECK_RC(ops->import_mem(ctx, ep, addr, 1 << 20, f, flen, &rm), MC_EPROTO);
  CHECK_HAS(h.last_warn, "cuIpcOpenMemHandle refused");
  g = k;
  g.alloc_size = 64u << 20;
  g.len = 32u << 20;
  flen = sizeof f;
  CHECK_OK(nvl_rkey_encode(&g, f, &flen));
  CHECK_RC(ops->import_mem(ctx, ep, addr, 32u << 20, f, flen, &rm), MC_EPROTO);
  CHECK_HAS(h.last_warn, "claims an allocation");
  g = k;
  g.pid = k.pid + 1;
  flen = sizeof f;
  CHECK_OK(nvl_rkey_encode(&g, f, &flen));
  CHECK_RC(ops->import_mem(ctx, ep, addr, 1 << 20, f, flen, &rm), MC_EPROTO);
  CHECK_RC(ops->import_mem(ctx, ep, addr, (1 << 20) + 1, key, klen, &rm), MC_EPROTO);
  /* The genuine key imports, and copies move the owner's bytes. */
  CHECK_OK(ops->import_mem(ctx, ep, addr, 1 << 20, key, klen, &rm));
  uint8_t *loc = test_cuda_alloc(&cu, 1 << 20);
  void *lm;
  uint8_t lk[MC_RKEY_MAX];
  size_t lkl;
  CHECK_OK(reg(ctx, loc, 1 << 20, &lm, lk, &lkl));
  mc_slice s[2] = {{1, MC_OP_READ, 0, lm, (uint64_t)(uintptr_t)loc, rm, addr, 1 << 20},
                   {2, MC_OP_READ, 0, lm, (uint64_t)(uintptr_t)loc, rm,
                    addr + (1 << 20) - 8, 16}};
  uint32_t acc = 0;
  CHECK_OK(ops->submit(ctx, ep, s, 2, &acc));
  CHECK_EQ_INT(acc, 2);
  wait_done(&h, 2);
  CHECK_MSG(erange_seen, "a slice past the import did not fail MC_ERANGE");
  for (int i = 0; i < (1 << 20); i++) {
    int j = i + 4096;
    if (loc[i] != (uint8_t)(j ^ (j >> 8))) {
      fprintf(stderr, "byte %d differs\n", i);
      exit(1);
    }
  }
  /* The out-of-range slice completed first (inside submit), the copy after. */
  CHECK_OK(ops->release_mem(ctx, rm));
  CHECK_OK(ops->disconnect(ctx, ep));
  CHECK_OK(ops->deregister_mem(ctx, lm));
  CHECK_OK(ops->fini(ctx));
  mc_fake_host_fini(&h);
  close(a[1]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  printf("forged keys refused; the genuine one read 1 MiB of the owner's bytes\n");
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PLUGIN FAKE_LIBCUDA MODE\n", argv[0]);
    return 2;
  }
  char err[512];
  void *dl;
  ops = mc_fake_load(argv[1], &dl, err, sizeof err);
  if (!ops) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const char *mode = argv[3];
  /* Events stay "not ready" for a few queries: completions then go
   * through the plugin's poller thread, not only through submit. */
  setenv("MC_FAKECUDA_EVENT_DELAY", "2", 0);
  if (!strcmp(mode, "wire")) {
    mode_wire();
    return 0;
  }
  if (strcmp(mode, "enodev") && strcmp(mode, "nodevice"))
    test_cuda_open(&cu, argv[2]);
  if (!strcmp(mode, "enodev"))
    mode_enodev();
  else if (!strcmp(mode, "nodevice"))
    mode_nodevice(argv[2]);
  else if (!strcmp(mode, "dlsym"))
    mode_dlsym(argv[2]);
  else if (!strcmp(mode, "query"))
    mode_query(argv[2]);
  else if (!strcmp(mode, "forged"))
    mode_forged(argv[2]);
  else
    return 2;
  return 0;
}
