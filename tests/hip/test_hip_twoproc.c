/* The hip plugin's own code between two processes over the fake HIP
 * runtime (fake_hip.c): the target exports a device buffer (IPC handle in
 * the remote key), the initiator imports it and reads and writes it from
 * its own device memory and from host memory, bytes checked on both
 * sides.  Also: query_mem, bounds, forged and foreign keys and
 * descriptors, a failing copy, back-pressure, disconnect and fini with
 * copies in flight (each slice completed exactly once), and nothing left
 * open afterwards.
 * argv[1] = mc-transport-hip.so, argv[2] = libmc-fake-amdhip64.so. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm_harness.h"

#define LEN (1u << 20)
#define OFF 4096 /* the registration starts inside the allocation */

typedef int (*malloc_fn)(void **, size_t);
typedef int (*free_fn)(void *);
typedef void (*fail_fn)(int);
typedef int (*count_fn)(void);

static struct {
  void *dl;
  malloc_fn hmalloc;
  free_fn hfree;
  fail_fn fail_copies;
  count_fn allocs, host_registered;
} fk;

/* The fake runtime as the plugin loaded it (same path: same instance). */
static void fake_bind(const char *path) {
  fk.dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  CHECK_MSG(fk.dl, "%s", dlerror());
  *(void **)&fk.hmalloc = dlsym(fk.dl, "hipMalloc");
  *(void **)&fk.hfree = dlsym(fk.dl, "hipFree");
  *(void **)&fk.fail_copies = dlsym(fk.dl, "fake_hip_fail_copies");
  *(void **)&fk.allocs = dlsym(fk.dl, "fake_hip_allocs");
  *(void **)&fk.host_registered = dlsym(fk.dl, "fake_hip_host_registered");
  CHECK(fk.hmalloc && fk.hfree && fk.fail_copies && fk.allocs && fk.host_registered);
}

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed + i * 13 + (i >> 11));
}

static int same(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed + i * 13 + (i >> 11)))
      return 0;
  return 1;
}

static void *dev_alloc(size_t n) {
  void *p = NULL;
  CHECK_EQ_INT(fk.hmalloc(&p, n), 0);
  return p;
}

static int reg(h_plugin *h, void *addr, uint64_t len, uint32_t kind, void **mem, uint8_t *rkey,
               size_t *rkey_len) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, kind, 0, kind == MC_MEM_HIP ? "hip:0" : "cpu:0"};
  *rkey_len = MC_RKEY_MAX;
  return h->ops->register_mem(h->ctx, &d, mem, rkey, rkey_len);
}

/* ---- target (child) ---- */

static int target(const char *so, const char *fake, int rd, int wr) {
  h_plugin h;
  h_load(&h, so);
  h_opt(&h, "library", fake);
  CHECK_OK(h_init(&h, "hip-target:1"));
  fake_bind(fake);
  uint8_t *dev = dev_alloc(LEN + 2 * OFF);
  fill(dev + OFF, LEN, 7);
  void *mem = NULL;
  uint8_t rkey[MC_RKEY_MAX];
  size_t rkey_len = 0;
  CHECK_OK(reg(&h, dev + OFF, LEN, MC_MEM_HIP, &mem, rkey, &rkey_len));
  uint8_t desc[MC_DESC_MAX];
  size_t dlen = h_desc(&h, desc, sizeof desc);
  uint64_t base = (uint64_t)(uintptr_t)(dev + OFF);
  h_send(wr, desc, (uint32_t)dlen);
  h_send(wr, rkey, (uint32_t)rkey_len);
  h_send(wr, &base, sizeof base);
  /* Commands: 'c' seed -> check the buffer holds pattern seed; 'q' quit. */
  for (;;) {
    uint8_t cmd[2];
    uint32_t n = h_recv(rd, cmd, sizeof cmd);
    CHECK(n != UINT32_MAX);
    if (cmd[0] == 'q')
      break;
    uint8_t ok = (uint8_t)same(dev + OFF, LEN, cmd[1]);
    /* The bytes around the registration are never touched. */
    for (size_t i = 0; i < OFF; i++)
      ok &= dev[i] == 0 && dev[OFF + LEN + i] == 0;
    h_send(wr, &ok, 1);
  }
  CHECK_OK(h.ops->deregister_mem(h.ctx, mem));
  h_fini(&h);
  CHECK_EQ_INT(fk.hfree(dev), 0);
  CHECK_EQ_INT(fk.allocs(), 0);
  h_unload(&h);
  return mc_check_exit_status();
}

/* ---- initiator (parent) ---- */

static void ask(int rd, int wr, uint8_t seed) {
  uint8_t cmd[2] = {'c', seed}, ok = 0;
  h_send(wr, cmd, 2);
  CHECK(h_recv(rd, &ok, 1) == 1);
  CHECK_MSG(ok == 1, "the target's buffer does not hold pattern %u", seed);
}

/* n slices of len bytes each, submitted at once (resubmitting what
 * back-pressure refused); returns how many completed with status 0.
 * Every token must complete exactly once. */
static int burst(h_plugin *h, void *ep, uint32_t op, void *lmem, uint8_t *loc, void *rmem,
                 uint64_t base, uint32_t n, uint64_t len, uint32_t *first_accepted) {
  static uint64_t tok = 1u << 20;
  mc_slice s[256];
  CHECK(n <= 256);
  uint64_t t0 = tok;
  for (uint32_t i = 0; i < n; i++)
    s[i] = (mc_slice){++tok, op, 0, lmem, (uint64_t)(uintptr_t)(loc + i * len), rmem,
                      base + i * len, len};
  h_clear(h);
  uint32_t done = 0;
  *first_accepted = UINT32_MAX;
  for (int spins = 0; done < n; spins++) {
    uint32_t acc = 0;
    int rc = h->ops->submit(h->ctx, ep, s + done, n - done, &acc);
    CHECK(rc == 0 || (rc == MC_EAGAIN && acc == 0));
    if (*first_accepted == UINT32_MAX)
      *first_accepted = acc;
    done += acc;
    if (acc == 0)
      usleep(1000);
    CHECK(spins < 20000);
  }
  CHECK(h_wait(h, (int)n, 20000) == 0);
  usleep(20000); /* a duplicate completion would show up here */
  CHECK_EQ_INT(h_ndone(h), n);
  int ok = 0;
  for (uint64_t t = t0 + 1; t <= t0 + n; t++) {
    CHECK_EQ_INT(h_count(h, t), 1);
    const h_done *d = h_find(h, t);
    ok += d->status == 0 && d->bytes == len;
  }
  h_clear(h);
  return ok;
}

static int initiator(const char *so, const char *fake, int rd, int wr) {
  uint8_t desc[MC_DESC_MAX], rkey[MC_RKEY_MAX];
  uint64_t base = 0;
  uint32_t dlen = h_recv(rd, desc, sizeof desc);
  uint32_t klen = h_recv(rd, rkey, sizeof rkey);
  CHECK(dlen != UINT32_MAX && klen != UINT32_MAX);
  CHECK(h_recv(rd, &base, sizeof base) == sizeof base);

  h_plugin h;
  h_load(&h, so);
  h_opt(&h, "library", fake);
  h_opt(&h, "max_inflight", "4");
  CHECK_OK(h_init(&h, "hip-initiator:2"));
  fake_bind(fake);

  /* query_mem: device memory with its ordinal, host memory not ours, a
   * range running past the allocation refused. */
  uint8_t *dev = dev_alloc(LEN);
  uint8_t *host = malloc(LEN);
  uint32_t kind = 0;
  int32_t devno = -1;
  CHECK_OK(h.ops->query_mem(h.ctx, (uint64_t)(uintptr_t)(dev + 100), 1000, &kind, &devno));
  CHECK_EQ_INT(kind, MC_MEM_HIP);
  CHECK_EQ_INT(devno, 0);
  CHECK_RC(h.ops->query_mem(h.ctx, (uint64_t)(uintptr_t)host, 64, &kind, &devno), MC_ENOENT);
  CHECK_RC(h.ops->query_mem(h.ctx, (uint64_t)(uintptr_t)dev, LEN + 1, &kind, &devno), MC_EINVAL);
  /* Registering device memory past its allocation is refused. */
  void *bad = NULL;
  uint8_t k2[MC_RKEY_MAX];
  size_t k2len;
  CHECK_RC(reg(&h, dev + 8, LEN, MC_MEM_HIP, &bad, k2, &k2len), MC_EINVAL);
  /* Kinds it does not serve. */
  CHECK_RC(reg(&h, host, LEN, MC_MEM_CUDA, &bad, k2, &k2len), MC_ENOTSUP);

  void *dmem = NULL, *hmem = NULL;
  uint8_t own[MC_RKEY_MAX];
  size_t own_len;
  CHECK_OK(reg(&h, dev, LEN, MC_MEM_HIP, &dmem, own, &own_len));
  CHECK_OK(reg(&h, host, LEN, MC_MEM_CPU, &hmem, k2, &k2len));
  CHECK_EQ_INT(fk.host_registered(), 1); /* pin_host */

  /* Descriptors: garbage, another host. */
  void *ep = NULL;
  CHECK_RC(h.ops->connect(h.ctx, "x", "garbage", 7, &ep), MC_EPROTO);
  uint8_t other[MC_DESC_MAX];
  memcpy(other, desc, dlen);
  other[10] ^= 1; /* a character of the host id */
  CHECK_RC(h.ops->connect(h.ctx, "x", other, dlen, &ep), MC_EPEER);
  for (uint32_t cut = 0; cut < dlen; cut++)
    CHECK_RC(h.ops->connect(h.ctx, "x", desc, cut, &ep), MC_EPROTO);
  CHECK_OK(h.ops->connect(h.ctx, "hip-target:1", desc, dlen, &ep));

  /* Keys: truncated, forged (another fd of the target), host-only, too
   * wide a range; nothing of it may crash or open anything. */
  void *rmem = NULL;
  for (uint32_t cut = 0; cut < klen; cut++)
    CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, cut, &rmem), MC_EPROTO);
  uint8_t forged[MC_RKEY_MAX];
  memcpy(forged, rkey, klen);
  forged[34 + 8] ^= 1; /* the fd inside the fake's handle */
  int rc = h.ops->import_mem(h.ctx, ep, base, LEN, forged, klen, &rmem);
  CHECK_MSG(rc == MC_EPROTO || rc == MC_EIO, "forged handle: %s", mc_errname(rc));
  /* A key whose offset or length reaches past the exported allocation
   * (the handle itself genuine): refused, the mapping closed again. */
  memcpy(forged, rkey, klen);
  forged[26 + 5] = 0x10; /* alloc_off += 1 TiB */
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, forged, klen, &rmem), MC_EPROTO);
  memcpy(forged, rkey, klen);
  forged[18 + 2] ^= 0x20; /* len += 2 MiB: past the 1 MiB + 8 KiB allocation */
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, forged, klen, &rmem), MC_EPROTO);
  CHECK_EQ_INT(fk.allocs(), 1);
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, k2, k2len, &rmem), MC_ENOTSUP);
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN + 1, rkey, klen, &rmem), MC_ERANGE);
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base - 1, 16, rkey, klen, &rmem), MC_ERANGE);
  CHECK_EQ_INT(fk.allocs(), 1); /* only our own hipMalloc */

  /* Two imports of one buffer share one hipIpcOpenMemHandle. */
  void *rmem2 = NULL;
  CHECK_OK(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, klen, &rmem));
  CHECK_OK(h.ops->import_mem(h.ctx, ep, base + 4096, 4096, rkey, klen, &rmem2));
  CHECK_EQ_INT(fk.allocs(), 2);

  /* Data, both directions, device and host memory on our side. */
  memset(dev, 0, LEN);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, dmem, dev, rmem, base, LEN), 0);
  CHECK(same(dev, LEN, 7));
  memset(host, 0, LEN);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem, base, LEN), 0);
  CHECK(same(host, LEN, 7));
  fill(host, LEN, 42);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, hmem, host, rmem, base, LEN), 0);
  ask(rd, wr, 42);
  fill(dev, LEN, 99);
  /* 64 slices of 16 KiB with max_inflight 4: back-pressure, then all. */
  uint32_t acc0 = 0;
  CHECK_EQ_INT(burst(&h, ep, MC_OP_WRITE, dmem, dev, rmem, base, 64, LEN / 64, &acc0), 64);
  CHECK_MSG(acc0 <= 4, "accepted %u with max_inflight 4", acc0);
  ask(rd, wr, 99);
  /* Through the second import (an offset inside the buffer). */
  memset(host, 0, 4096);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem2, base + 4096, 4096), 0);
  CHECK(!memcmp(host, dev + 4096, 4096));

  /* Bounds, on either side, refused before anything is queued. */
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem, base + 1, LEN), MC_ERANGE);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host + 1, rmem, base, LEN), MC_ERANGE);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, hmem, host, rmem2, base, 16), MC_ERANGE);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem, UINT64_MAX - 8, 16), MC_ERANGE);
  ask(rd, wr, 99); /* untouched */

  /* A copy the runtime refuses: MC_EIO, the HIP code as vendor error. */
  fk.fail_copies(1);
  {
    mc_slice s = {77, MC_OP_READ, 0, hmem, (uint64_t)(uintptr_t)host, rmem, base, 64};
    uint32_t acc = 0;
    h_clear(&h);
    CHECK_OK(h.ops->submit(h.ctx, ep, &s, 1, &acc));
    CHECK_EQ_INT(acc, 1);
    CHECK(h_wait(&h, 1, 5000) == 0);
    const h_done *d = h_find(&h, 77);
    CHECK(d && d->status == MC_EIO && d->verr == 1 /* hipErrorInvalidValue */);
    CHECK_STR(h.ops->vendor_strerror(h.ctx, d->verr), "hipErrorInvalidValue");
    h_clear(&h);
  }

  /* Slow copies in flight, then release and disconnect: disconnect waits
   * for them (each completed once, with its real status). */
  {
    mc_slice s[4];
    for (int i = 0; i < 4; i++)
      s[i] = (mc_slice){500 + (uint64_t)i, MC_OP_READ, 0, dmem,
                        (uint64_t)(uintptr_t)(dev + i * (LEN / 4)), rmem,
                        base + (uint64_t)i * (LEN / 4), LEN / 4};
    uint32_t acc = 0;
    h_clear(&h);
    CHECK_OK(h.ops->submit(h.ctx, ep, s, 4, &acc));
    CHECK(acc >= 1);
    CHECK_OK(h.ops->disconnect(h.ctx, ep)); /* releases both imports */
    CHECK_EQ_INT(h_ndone(&h), acc);
    for (uint32_t i = 0; i < acc; i++)
      CHECK_EQ_INT(h_count(&h, 500 + i), 1);
    h_clear(&h);
  }
  CHECK_EQ_INT(fk.allocs(), 1); /* the import was closed */

  /* Fini with copies in flight: every slice completed before it returns. */
  CHECK_OK(h.ops->connect(h.ctx, "hip-target:1", desc, dlen, &ep));
  CHECK_OK(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, klen, &rmem));
  {
    mc_slice s[4];
    for (int i = 0; i < 4; i++)
      s[i] = (mc_slice){600 + (uint64_t)i, MC_OP_READ, 0, hmem,
                        (uint64_t)(uintptr_t)(host + i * (LEN / 4)), rmem,
                        base + (uint64_t)i * (LEN / 4), LEN / 4};
    uint32_t acc = 0;
    h_clear(&h);
    CHECK_OK(h.ops->submit(h.ctx, ep, s, 4, &acc));
    CHECK(acc >= 1);
    h_fini(&h); /* also releases ep, the import and both registrations */
    CHECK_EQ_INT(h_ndone(&h), acc);
    for (uint32_t i = 0; i < acc; i++) {
      CHECK_EQ_INT(h_count(&h, 600 + i), 1);
      const h_done *d = h_find(&h, 600 + i);
      CHECK(d->status == 0 || d->status == MC_ECANCELED);
    }
  }
  CHECK_EQ_INT(fk.allocs(), 1);
  CHECK_EQ_INT(fk.host_registered(), 0);
  CHECK_EQ_INT(fk.hfree(dev), 0);
  free(host);
  uint8_t q[2] = {'q', 0};
  h_send(wr, q, 2);
  h_unload(&h);
  return mc_check_exit_status();
}

int main(int argc, char **argv) {
  CHECK(argc == 3);
  /* Slow copies so events are seen NotReady and back-pressure builds. */
  setenv("FAKE_HIP_COPY_DELAY_US", "2000", 1);
  setenv("FAKE_HIP_DEVICES", "1", 1);
  int to_child[2], to_parent[2];
  CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    alarm(60);
    exit(target(argv[1], argv[2], to_child[0], to_parent[1])); /* exit: LSan checks the target too */
  }
  close(to_child[0]);
  close(to_parent[1]);
  alarm(90);
  int rc = initiator(argv[1], argv[2], to_parent[0], to_child[1]);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target exited with status 0x%x", st);
  if (rc == 0)
    printf("PASS: hip IPC between two processes over the fake runtime\n");
  return rc ? rc : mc_check_exit_status();
}
