/* The oot example plugin through its ops table, without an engine: blobs
 * from peers are parsed defensively, foreign processes and foreign keys are
 * refused, every slice is bounds-checked and completed exactly once, and
 * the target refuses what the initiator's checks let through (forged
 * registration secrets, deregistered keys, torn-down contexts).
 *
 * argv[1]: path to an mc-transport-oot.so (the in-tree build). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fake_host.h"

/* Mirror oot_transport.c's blob layouts, to forge variants of them. */
typedef struct oot_desc {
  uint32_t magic, version;
  uint64_t pid;
  uint64_t ctx_id, secret;
  char host_id[64];
} oot_desc;

typedef struct oot_rkey {
  uint32_t magic, version;
  uint64_t ctx_id, secret;
  uint64_t addr, len;
  uint64_t reg_id, reg_secret;
} oot_rkey;

static const mc_transport_ops *ops;

/* A host for one context (the log tag is its boot id). */
static void host_init(mc_fake_host *h, const char *name) {
  mc_fake_host_init(h, name, ops);
  h->print_level = MC_LOG_TRACE;
  h->enabled_level = MC_LOG_TRACE;
}

static void *new_ctx(mc_fake_host *h, mc_host_api *api, const char *host_id) {
  *api = h->api;
  mc_init_args args = {sizeof args, "seg", "127.0.0.1", host_id};
  void *ctx = NULL;
  CHECK_RC(ops->init(api, &args, &ctx), 0);
  if (!ctx)
    exit(1);
  return ctx;
}

static void test_sizes(void *ctx) {
  mc_rail_info r[1];
  uint32_t n = 0;
  CHECK_RC(ops->query_rails(ctx, r, &n), MC_ENOSPC);
  CHECK_EQ_INT(n, 1);
  char d[8];
  size_t dl = sizeof d;
  CHECK_RC(ops->local_desc(ctx, d, &dl), MC_ENOSPC);
  CHECK(dl == sizeof(oot_desc));
  char buf[64];
  mc_mem_desc m = {(uint64_t)(uintptr_t)buf, sizeof buf, MC_MEM_CPU, 0, "cpu:0"};
  void *mem = NULL;
  size_t kl = 4;
  CHECK_RC(ops->register_mem(ctx, &m, &mem, d, &kl), MC_ENOSPC);
  CHECK(kl == sizeof(oot_rkey) && mem == NULL);
  m.kind = MC_MEM_CUDA;
  kl = MC_RKEY_MAX;
  uint8_t key[MC_RKEY_MAX];
  CHECK_RC(ops->register_mem(ctx, &m, &mem, key, &kl), MC_ENOTSUP);
}

static void test_connect_checks(void *ctx, mc_fake_host *h) {
  oot_desc d;
  size_t dl = sizeof d;
  void *ep = NULL;
  CHECK_RC(ops->local_desc(ctx, &d, &dl), 0);
  CHECK(d.pid == (uint64_t)getpid());

  CHECK_RC(ops->connect(ctx, "p", &d, sizeof d - 1, &ep), MC_EPROTO);
  CHECK_RC(ops->connect(ctx, "p", &d, 0, &ep), MC_EPROTO);
  oot_desc bad = d;
  bad.magic ^= 1;
  CHECK_RC(ops->connect(ctx, "p", &bad, sizeof bad, &ep), MC_EPROTO);
  bad = d;
  bad.version = d.version + 1;
  CHECK_RC(ops->connect(ctx, "p", &bad, sizeof bad, &ep), MC_EPROTO);
  bad = d;
  memset(bad.host_id, 'x', sizeof bad.host_id); /* no NUL */
  CHECK_RC(ops->connect(ctx, "p", &bad, sizeof bad, &ep), MC_EPROTO);

  /* Another process on this host, and this pid on another host. */
  bad = d;
  bad.pid = d.pid + 1;
  int before = h->nlogs;
  CHECK_RC(ops->connect(ctx, "peer-x", &bad, sizeof bad, &ep), MC_EPEER);
  CHECK(h->nlogs == before + 1);
  CHECK_HAS(h->log, "peer-x");
  CHECK_HAS(h->log, "only reaches engines of process");
  bad = d;
  snprintf(bad.host_id, sizeof bad.host_id, "elsewhere");
  CHECK_RC(ops->connect(ctx, "peer-y", &bad, sizeof bad, &ep), MC_EPEER);
  CHECK_HAS(h->log, "elsewhere");
  CHECK(ep == NULL);
}

/* Two contexts of one process (two engines): keys only work through the
 * endpoint of the context that issued them, and only inside their range. */
static void test_two_contexts(void *c1, mc_fake_host *h1, void *c2, mc_fake_host *h2) {
  static uint8_t src[4096], dst[4096];
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t)(i * 7 + 1);
  memset(dst, 0xee, sizeof dst);

  mc_mem_desc ms = {(uint64_t)(uintptr_t)src, sizeof src, MC_MEM_CPU, 0, NULL};
  mc_mem_desc md = {(uint64_t)(uintptr_t)dst, sizeof dst, MC_MEM_CPU, 0, NULL};
  void *lm = NULL, *tm = NULL, *ep12 = NULL, *ep11 = NULL, *rm = NULL;
  uint8_t key1[MC_RKEY_MAX], key2[MC_RKEY_MAX], desc2[MC_DESC_MAX],
      desc1[MC_DESC_MAX];
  size_t k1 = sizeof key1, k2 = sizeof key2, d2 = sizeof desc2,
         d1 = sizeof desc1;
  CHECK_RC(ops->register_mem(c1, &ms, &lm, key1, &k1), 0);
  CHECK_RC(ops->register_mem(c2, &md, &tm, key2, &k2), 0);
  CHECK_RC(ops->local_desc(c2, desc2, &d2), 0);
  CHECK_RC(ops->local_desc(c1, desc1, &d1), 0);
  CHECK_RC(ops->connect(c1, "two", desc2, d2, &ep12), 0);
  CHECK_RC(ops->connect(c1, "one", desc1, d1, &ep11), 0);

  /* c2's key through the endpoint to c1 itself: not issued by that peer. */
  CHECK_RC(ops->import_mem(c1, ep11, md.addr, md.len, key2, k2, &rm),
           MC_EACCES);
  /* Tampered secret. */
  uint8_t forged[MC_RKEY_MAX];
  memcpy(forged, key2, k2);
  forged[16] ^= 0x80;
  CHECK_RC(ops->import_mem(c1, ep12, md.addr, md.len, forged, k2, &rm),
           MC_EACCES);
  CHECK_RC(ops->import_mem(c1, ep12, md.addr, md.len, key2, k2 - 1, &rm),
           MC_EPROTO);
  forged[16] ^= 0x80;
  forged[0] ^= 1;
  CHECK_RC(ops->import_mem(c1, ep12, md.addr, md.len, forged, k2, &rm),
           MC_EPROTO);
  /* Outside the key's buffer, and wrapping around. */
  CHECK_RC(ops->import_mem(c1, ep12, md.addr + 1, md.len, key2, k2, &rm),
           MC_ERANGE);
  CHECK_RC(ops->import_mem(c1, ep12, md.addr - 1, 2, key2, k2, &rm),
           MC_ERANGE);
  CHECK_RC(ops->import_mem(c1, ep12, md.addr + 8, UINT64_MAX - 4, key2, k2,
                           &rm),
           MC_ERANGE);
  CHECK(rm == NULL);

  /* The second half only. */
  CHECK_RC(ops->import_mem(c1, ep12, md.addr + 2048, 2048, key2, k2, &rm), 0);
  CHECK(h1->completions == 0);

  mc_slice s[4] = {
      {1, MC_OP_WRITE, 0, lm, ms.addr, rm, md.addr + 2048, 1000},
      /* remote start before the imported range */
      {2, MC_OP_WRITE, 0, lm, ms.addr, rm, md.addr + 100, 10},
      /* local end past the registration */
      {3, MC_OP_READ, 0, lm, ms.addr + 4000, rm, md.addr + 2048, 200},
      /* unknown op */
      {4, 7, 0, lm, ms.addr, rm, md.addr + 2048, 1},
  };
  uint32_t acc = 0;
  int statuses[5] = {0};
  for (int i = 0; i < 4; i++) {
    CHECK_RC(ops->submit(c1, ep12, &s[i], 1, &acc), 0);
    CHECK(acc == 1 && h1->completions == (uint64_t)i + 1 && h1->last_token == s[i].token);
    statuses[i] = h1->last_status;
  }
  CHECK(statuses[0] == 0 && h1->completions == 4);
  CHECK(statuses[1] == MC_ERANGE && statuses[2] == MC_ERANGE);
  CHECK(statuses[3] == MC_EINVAL);
  CHECK(memcmp(dst + 2048, src, 1000) == 0);
  for (size_t i = 0; i < 4096; i++) {
    if (i >= 2048 && i < 3048)
      continue;
    if (dst[i] != 0xee) {
      CHECK(!"byte outside the written range changed");
      break;
    }
  }

  /* Read back into src's tail through the same import. */
  mc_slice r = {5, MC_OP_READ, 0, lm, ms.addr + 3000, rm, md.addr + 2048, 1000};
  CHECK_RC(ops->submit(c1, ep12, &r, 1, &acc), 0);
  CHECK(h1->last_status == 0 && h1->last_bytes == 1000);
  CHECK(memcmp(src + 3000, dst + 2048, 1000) == 0);
  CHECK(h2->completions == 0);

  CHECK_RC(ops->release_mem(c1, rm), 0);
  CHECK_RC(ops->disconnect(c1, ep12), 0);
  /* ep11, lm, tm are left for fini to free. */
}

/* What only the target can check.  c1 initiates, c2 is the target. */
static void test_target_checks(void *c1, mc_fake_host *h1, void *c2) {
  static uint8_t src[4096], dst[4096];
  memset(src, 0x11, sizeof src);
  memset(dst, 0xee, sizeof dst);
  mc_mem_desc ms = {(uint64_t)(uintptr_t)src, sizeof src, MC_MEM_CPU, 0, NULL};
  /* Only the middle of dst is registered. */
  mc_mem_desc md = {(uint64_t)(uintptr_t)dst + 1024, 2048, MC_MEM_CPU, 0, NULL};
  void *lm = NULL, *tm = NULL, *ep = NULL, *rm = NULL;
  oot_rkey key;
  uint8_t k2[MC_RKEY_MAX], desc2[MC_DESC_MAX];
  size_t kl = sizeof k2, d2 = sizeof desc2;
  CHECK_RC(ops->register_mem(c1, &ms, &lm, k2, &kl), 0);
  kl = sizeof k2;
  CHECK_RC(ops->register_mem(c2, &md, &tm, k2, &kl), 0);
  CHECK(kl == sizeof key);
  memcpy(&key, k2, sizeof key);
  CHECK_RC(ops->local_desc(c2, desc2, &d2), 0);
  CHECK_RC(ops->connect(c1, "two", desc2, d2, &ep), 0);
  uint64_t before = h1->completions;

  /* A forged length in the key: the initiator believes it, the target
   * refuses everything past the 2048 registered bytes. */
  oot_rkey forged = key;
  forged.addr -= 1024;
  forged.len += 2048;
  CHECK_RC(ops->import_mem(c1, ep, forged.addr, forged.len, &forged, sizeof forged, &rm), 0);
  uint32_t acc = 0;
  mc_slice w = {10, MC_OP_WRITE, 0, lm, ms.addr, rm, md.addr + 2000, 100};
  CHECK_RC(ops->submit(c1, ep, &w, 1, &acc), 0);
  CHECK(acc == 1 && h1->last_status == MC_ERANGE);
  mc_slice r = {11, MC_OP_READ, 0, lm, ms.addr, rm, forged.addr, 64};
  CHECK_RC(ops->submit(c1, ep, &r, 1, &acc), 0);
  CHECK(acc == 1 && h1->last_status == MC_ERANGE);
  CHECK(src[0] == 0x11);
  CHECK_RC(ops->release_mem(c1, rm), 0);

  /* A forged registration secret: accepted at import (only the target
   * knows it), refused on access. */
  forged = key;
  forged.reg_secret ^= 1;
  CHECK_RC(ops->import_mem(c1, ep, md.addr, md.len, &forged, sizeof forged, &rm), 0);
  w.token = 12;
  w.remote_mem = rm;
  w.remote_addr = md.addr;
  CHECK_RC(ops->submit(c1, ep, &w, 1, &acc), 0);
  CHECK(acc == 1 && h1->last_status == MC_EACCES);
  CHECK_RC(ops->release_mem(c1, rm), 0);
  for (size_t i = 0; i < sizeof dst; i++)
    if (dst[i] != 0xee) {
      CHECK(!"a refused write changed the target");
      break;
    }

  /* The real key works; after deregister_mem the same import is refused,
   * and so is the key once the range is registered again. */
  CHECK_RC(ops->import_mem(c1, ep, md.addr, md.len, &key, sizeof key, &rm), 0);
  w.token = 13;
  w.remote_mem = rm;
  CHECK_RC(ops->submit(c1, ep, &w, 1, &acc), 0);
  CHECK(acc == 1 && h1->last_status == 0 && dst[1024] == 0x11);
  CHECK_RC(ops->deregister_mem(c2, tm), 0);
  memset(dst, 0xee, sizeof dst);
  w.token = 14;
  CHECK_RC(ops->submit(c1, ep, &w, 1, &acc), 0);
  CHECK(acc == 1 && h1->last_status == MC_EACCES);
  kl = sizeof k2;
  CHECK_RC(ops->register_mem(c2, &md, &tm, k2, &kl), 0);
  w.token = 15;
  CHECK_RC(ops->submit(c1, ep, &w, 1, &acc), 0);
  CHECK(acc == 1 && h1->last_status == MC_EACCES && dst[1024] == 0xee);
  CHECK(h1->completions == before + 6);
  CHECK_RC(ops->release_mem(c1, rm), 0);
  CHECK_RC(ops->disconnect(c1, ep), 0);
  /* lm and tm are left for fini. */
}

/* An access to a context that was torn down finds nothing. */
static void test_target_gone(void) {
  mc_fake_host h1, h2;
  host_init(&h1, "gone-1");
  host_init(&h2, "gone-2");
  mc_host_api a1, a2;
  void *c1 = new_ctx(&h1, &a1, "boot-1");
  void *c2 = new_ctx(&h2, &a2, "boot-1");
  static uint8_t src[64], dst[64];
  mc_mem_desc ms = {(uint64_t)(uintptr_t)src, sizeof src, MC_MEM_CPU, 0, NULL};
  mc_mem_desc md = {(uint64_t)(uintptr_t)dst, sizeof dst, MC_MEM_CPU, 0, NULL};
  void *lm = NULL, *tm = NULL, *ep = NULL, *rm = NULL;
  uint8_t k[MC_RKEY_MAX], desc2[MC_DESC_MAX];
  size_t kl = sizeof k, d2 = sizeof desc2;
  CHECK_RC(ops->register_mem(c1, &ms, &lm, k, &kl), 0);
  kl = sizeof k;
  CHECK_RC(ops->register_mem(c2, &md, &tm, k, &kl), 0);
  CHECK_RC(ops->local_desc(c2, desc2, &d2), 0);
  CHECK_RC(ops->connect(c1, "two", desc2, d2, &ep), 0);
  CHECK_RC(ops->import_mem(c1, ep, md.addr, md.len, k, kl, &rm), 0);
  CHECK_RC(ops->fini(c2), 0);
  mc_slice w = {20, MC_OP_WRITE, 0, lm, ms.addr, rm, md.addr, 64};
  uint32_t acc = 0;
  CHECK_RC(ops->submit(c1, ep, &w, 1, &acc), 0);
  CHECK(acc == 1 && h1.last_status == MC_EPEER);
  CHECK_RC(ops->fini(c1), 0);
  mc_fake_host_fini(&h1);
  mc_fake_host_fini(&h2);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s mc-transport-oot.so\n", argv[0]);
    return 2;
  }
  /* Failures are counted: every check runs, then the count decides. */
  mc_check_keep_going(1);
  void *dl = NULL;
  char err[1024];
  ops = mc_fake_load(argv[1], &dl, err, sizeof err);
  if (!ops) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  CHECK_EQ_INT(ops->abi_major, MC_TRANSPORT_ABI_MAJOR);
  CHECK(!ops->progress && (ops->caps & MC_CAP_OWN_THREADS));
  CHECK(ops->params && strcmp(ops->params[0].name, "rail_name") == 0);

  mc_fake_host h1, h2;
  host_init(&h1, "boot-1a");
  host_init(&h2, "boot-1b");
  CHECK_OK(mc_fake_host_set(&h2, "rail_name", "loopback7"));
  mc_host_api a1, a2;
  void *c1 = new_ctx(&h1, &a1, "boot-1");
  void *c2 = new_ctx(&h2, &a2, "boot-1");
  mc_rail_info rails[2];
  uint32_t n = 2;
  CHECK_RC(ops->query_rails(c1, rails, &n), 0);
  CHECK(n == 1 && strcmp(rails[0].name, "memcpy0") == 0);
  n = 2;
  CHECK_RC(ops->query_rails(c2, rails, &n), 0);
  CHECK(n == 1 && strcmp(rails[0].name, "loopback7") == 0);

  test_sizes(c1);
  test_connect_checks(c1, &h1);
  test_two_contexts(c1, &h1, c2, &h2);
  test_target_checks(c1, &h1, c2);
  test_target_gone();

  CHECK_RC(ops->fini(c1), 0);
  CHECK_RC(ops->fini(c2), 0);
  mc_fake_host_fini(&h1);
  mc_fake_host_fini(&h2);
  dlclose(dl);
  if (mc_check_exit_status())
    return 1;
  printf("oot plugin: all checks passed\n");
  return 0;
}
