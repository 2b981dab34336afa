/* shm plugin in one process, through the ABI: loopback in both modes, file
 * pools, bounds checks, malformed and forged blobs.  argv[1] = plugin .so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm_blob.h"
#include "shm_harness.h"

#define LEN (1u << 20)

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

static int check(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed + i * 7 + (i >> 9)))
      return 0;
  return 1;
}

/* Target buffer `tgt` (registered with rkey) read and written from `loc`. */
static void roundtrip(h_plugin *h, void *ep, uint8_t *tgt, const void *rkey,
                      size_t rkey_len, uint8_t *loc, void *lmem) {
  void *rmem = NULL;
  uint64_t base = (uint64_t)(uintptr_t)tgt;
  CHECK_RC(h->ops->import_mem(h->ctx, ep, base, LEN, rkey, rkey_len, &rmem), 0);
  fill(tgt, LEN, 3);
  memset(loc, 0, LEN);
  CHECK_RC(h_xfer(h, ep, MC_OP_READ, lmem, loc, rmem, base, LEN), 0);
  CHECK(check(loc, LEN, 3));
  fill(loc, LEN, 9);
  /* Two slices at an offset. */
  CHECK_RC(h_xfer(h, ep, MC_OP_WRITE, lmem, loc, rmem, base, LEN / 2), 0);
  CHECK_RC(h_xfer(h, ep, MC_OP_WRITE, lmem, loc + LEN / 2, rmem, base + LEN / 2,
              LEN / 2), 0);
  CHECK(check(tgt, LEN, 9));
  /* Out of bounds, remote and local: refused, nothing touched. */
  CHECK_RC(h_xfer(h, ep, MC_OP_WRITE, lmem, loc, rmem, base + 1, LEN), MC_ERANGE);
  CHECK_RC(h_xfer(h, ep, MC_OP_READ, lmem, loc, rmem, base - 4096, 16), MC_ERANGE);
  CHECK_RC(h_xfer(h, ep, MC_OP_READ, lmem, loc + 1, rmem, base, LEN), MC_ERANGE);
  CHECK_RC(h_xfer(h, ep, MC_OP_READ, lmem, loc, rmem, UINT64_MAX - 8, 16),
       MC_ERANGE);
  CHECK(check(tgt, LEN, 9));
  /* An import wider than the key is refused. */
  void *bad = NULL;
  CHECK_RC(h->ops->import_mem(h->ctx, ep, base, LEN + 1, rkey, rkey_len, &bad),
       MC_ERANGE);
  CHECK_RC(h->ops->release_mem(h->ctx, rmem), 0);
}

static void test_loopback(const char *so, const char *pool_path) {
  h_plugin h;
  h_load(&h, so);
  CHECK(h.ops->caps & MC_CAP_INTRA_NODE);
  CHECK(!(h.ops->caps & MC_CAP_INTER_NODE));
  CHECK(h.ops->alloc_mem && h.ops->free_mem && !h.ops->progress);
  if (pool_path) {
    h_opt(&h, "pool_path", pool_path);
    h_opt(&h, "pool_size", "8M");
  }
  CHECK_RC(h_init(&h, "self:1"), 0);
  uint8_t desc[MC_DESC_MAX];
  size_t dlen = h_desc(&h, desc, sizeof desc);
  void *ep = NULL;
  CHECK_RC(h.ops->connect(h.ctx, "self:1", desc, dlen, &ep), 0);

  uint8_t *loc = malloc(LEN);
  void *lmem;
  uint8_t lkey[MC_RKEY_MAX];
  size_t lkey_len;
  CHECK_RC(h_register(&h, loc, LEN, &lmem, lkey, &lkey_len), 0);

  /* any-memory mode: a malloc'd target. */
  uint8_t *vm = malloc(LEN);
  void *vmem;
  uint8_t vkey[MC_RKEY_MAX];
  size_t vkey_len;
  CHECK_RC(h_register(&h, vm, LEN, &vmem, vkey, &vkey_len), 0);
  shm_rkey k;
  const char *why;
  CHECK_RC(shm_rkey_decode(vkey, vkey_len, &k, &why), 0);
  CHECK(k.kind == SHM_RKEY_VM);
  roundtrip(&h, ep, vm, vkey, vkey_len, loc, lmem);

  /* shared-pool mode: two allocations from the pool. */
  void *p1 = NULL, *p2 = NULL;
  CHECK_RC(h.ops->alloc_mem(h.ctx, LEN, "cpu:0", &p1), 0);
  CHECK_RC(h.ops->alloc_mem(h.ctx, LEN, NULL, &p2), 0);
  CHECK(p1 != p2);
  void *pmem;
  uint8_t pkey[MC_RKEY_MAX];
  size_t pkey_len;
  CHECK_RC(h_register(&h, p2, LEN, &pmem, pkey, &pkey_len), 0);
  CHECK_RC(shm_rkey_decode(pkey, pkey_len, &k, &why), 0);
  CHECK(k.kind == (pool_path ? SHM_RKEY_FILE : SHM_RKEY_MEMFD));
  roundtrip(&h, ep, p2, pkey, pkey_len, loc, lmem);

  /* A key naming another pid is refused. */
  shm_rkey forged = k;
  forged.pid = k.pid == 1 ? 2 : 1;
  uint8_t fkey[MC_RKEY_MAX];
  size_t fkey_len = sizeof fkey;
  CHECK_RC(shm_rkey_encode(&forged, fkey, &fkey_len), 0);
  void *rm = NULL;
  CHECK_RC(h.ops->import_mem(h.ctx, ep, k.base, LEN, fkey, fkey_len, &rm), MC_EACCES);
  /* A memfd key with a wrong secret names a file that is not the pool. */
  if (!pool_path) {
    forged = k;
    forged.secret ^= 1;
    fkey_len = sizeof fkey;
    CHECK_RC(shm_rkey_encode(&forged, fkey, &fkey_len), 0);
    /* falls back to process_vm (allowed, proven): still correct data */
    CHECK_RC(h.ops->import_mem(h.ctx, ep, k.base, LEN, fkey, fkey_len, &rm), 0);
    CHECK_RC(h_xfer(&h, ep, MC_OP_READ, lmem, loc, rm, k.base, 64), 0);
    CHECK_RC(h.ops->release_mem(h.ctx, rm), 0);
  }
  /* A key whose registration secret is wrong is refused at import. */
  forged = k;
  forged.reg_secret ^= 1;
  fkey_len = sizeof fkey;
  CHECK_RC(shm_rkey_encode(&forged, fkey, &fkey_len), 0);
  CHECK_RC(h.ops->import_mem(h.ctx, ep, k.base, LEN, fkey, fkey_len, &rm), MC_EACCES);
  /* Revocation: after deregister_mem, a mapped pool import is refused. */
  CHECK_RC(h.ops->import_mem(h.ctx, ep, k.base, LEN, pkey, pkey_len, &rm), 0);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, lmem, loc, rm, k.base, 64), 0);
  CHECK_RC(h.ops->deregister_mem(h.ctx, pmem), 0);
  memset(p2, 0x5a, 64);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, lmem, loc, rm, k.base, 64), MC_EACCES);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, lmem, loc, rm, k.base, 64), MC_EACCES);
  CHECK(((uint8_t *)p2)[0] == 0x5a && ((uint8_t *)p2)[63] == 0x5a);
  CHECK_RC(h.ops->release_mem(h.ctx, rm), 0);
  CHECK_RC(h.ops->import_mem(h.ctx, ep, k.base, LEN, pkey, pkey_len, &rm), MC_EACCES);
  CHECK_RC(h_register(&h, p2, LEN, &pmem, pkey, &pkey_len), 0);
  /* Malformed key. */
  CHECK_RC(h.ops->import_mem(h.ctx, ep, k.base, LEN, pkey, pkey_len - 1, &rm),
       MC_EPROTO);

  /* Non-host locations are not pool memory. */
  void *gpu = NULL;
  CHECK_RC(h.ops->alloc_mem(h.ctx, LEN, "cuda:0", &gpu), MC_ENOTSUP);

  CHECK_RC(h.ops->deregister_mem(h.ctx, pmem), 0);
  CHECK_RC(h.ops->free_mem(h.ctx, p2, LEN), 0);
  CHECK_RC(h.ops->free_mem(h.ctx, p1, LEN), 0);
  CHECK_RC(h.ops->free_mem(h.ctx, p1, LEN), MC_ENOENT);
  CHECK_RC(h.ops->deregister_mem(h.ctx, vmem), 0);
  /* lmem and ep are left for fini to release. */
  h_unload(&h);
  free(loc);
  free(vm);
  printf("loopback %s: ok\n", pool_path ? pool_path : "memfd");
}

/* Descriptors that differ in host identity are refused. */
static void test_forged_desc(const char *so) {
  h_plugin h;
  h_load(&h, so);
  CHECK_RC(h_init(&h, "self:2"), 0);
  uint8_t desc[MC_DESC_MAX];
  size_t dlen = h_desc(&h, desc, sizeof desc);
  shm_desc d;
  const char *why;
  CHECK_RC(shm_desc_decode(desc, dlen, &d, &why), 0);
  void *ep = NULL;
  for (int i = 0; i < 5; i++) {
    shm_desc f = d;
    switch (i) {
    case 0: f.boot_id[3] ^= 1; break;
    case 1: f.ns_net++; break;
    case 2: f.ns_pid++; break;
    case 3: f.nonce[0] ^= 1; break;     /* proof fails */
    case 4: f.start_time++; break;      /* pid "restarted" */
    }
    uint8_t buf[MC_DESC_MAX];
    size_t len = sizeof buf;
    CHECK_RC(shm_desc_encode(&f, buf, &len), 0);
    CHECK_RC(h.ops->connect(h.ctx, "forged", buf, len, &ep), MC_EPEER);
  }
  CHECK_RC(h.ops->connect(h.ctx, "short", desc, dlen - 1, &ep), MC_EPROTO);
  size_t small = 4;
  CHECK_RC(h.ops->local_desc(h.ctx, desc, &small), MC_ENOSPC);
  CHECK(small == dlen);
  h_unload(&h);
  printf("forged descriptors: ok\n");
}

static void test_bad_options(const char *so) {
  h_plugin h;
  h_load(&h, so);
  h_opt(&h, "pool_path", "relative/path");
  CHECK_RC(h_init(&h, "x"), MC_EINVAL);
  h_unload(&h);
  h_load(&h, so);
  h_opt(&h, "pool_size", "12Q");
  CHECK_RC(h_init(&h, "x"), MC_EINVAL);
  h_unload(&h);
  h_load(&h, so);
  h_opt(&h, "allow_vm", "false");
  CHECK_RC(h_init(&h, "x"), 0);
  uint8_t buf[64], key[MC_RKEY_MAX];
  void *mem;
  size_t klen;
  CHECK_RC(h_register(&h, buf, sizeof buf, &mem, key, &klen), MC_ENOTSUP);
  h_unload(&h);
  printf("options: ok\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s mc-transport-shm.so\n", argv[0]);
    return 2;
  }
  char pool[64];
  snprintf(pool, sizeof pool, "/dev/shm/mc-test-pool-%d", (int)getpid());
  test_loopback(argv[1], NULL);
  test_loopback(argv[1], pool);
  unlink(pool);
  test_forged_desc(argv[1]);
  test_bad_options(argv[1]);
  return 0;
}
