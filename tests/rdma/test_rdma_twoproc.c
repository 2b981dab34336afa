/* test_rdma_twoproc.c - mc-transport-rdma in two processes over
 * libsoftverbs: this process is the initiator, a forked child the target
 * (its own plugin, its own soft NICs, its memory reached only through the
 * soft NIC's process_vm_writev/readv after the rkey, access and bounds
 * checks).  The child is driven over a pipe: checksum, fill, deregister.
 *
 *   test_rdma_twoproc PLUGIN SOFTVERBS MODE
 *   test_rdma_twoproc PLUGIN SOFTVERBS bench [SLICES [BYTES [4rails|1qp]]]
 *   test_rdma_twoproc PLUGIN SOFTVERBS cudamem FAKECUDA
 *   MODE: data | stripe | failover | rkey | peerkill | notify | faults | evict |
 *         simopen | select | enodev | realverbs | lazy | gid | cuda
 *   cudamem: both sides' memory is CUDA memory of the fake driver
 *   (tests/cuda/fakecuda), registered through its dma-buf export.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_raw.h"
#include "check.h"
#include "rdma_test_host.h"
#include "rdma_wire.h"
#include "softverbs.h"
#include "testutil.h"

#define BUF (16u << 20)
#define NNIC 4

static const char *plugin, *svlib, *mode;
static const char *cudalib; /* cudamem: the fake CUDA driver */
static char dir[256];
static int p2c[2], c2p[2];
static pid_t child;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void xread(int fd, void *b, size_t n) {
  uint8_t *p = b;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      fprintf(stderr, "pipe closed\n");
      exit(1);
    }
    p += r;
    n -= (size_t)r;
  }
}
static void xwrite(int fd, const void *b, size_t n) {
  if (write(fd, b, n) != (ssize_t)n)
    exit(1);
}

static const char *const base_kv[] = {"library", NULL, "busy_poll_us", "20", "timeout_ms",
                                      "3000", "ctrl_timeout_ms", "2000", "backoff_ms", "20",
                                      "backoff_max_ms", "200", "max_endpoints", "1024", NULL};
static const char *max_eps = "1024";
static const char *busy_poll = "20";

static const char *extra_kv[10]; /* more pairs, NULL-terminated */
static int bench_1qp;

static const char **kv_with_lib(void) {
  enum { NBASE = sizeof base_kv / sizeof base_kv[0] - 1 };
  static const char *kv[NBASE + 11];
  memcpy(kv, base_kv, NBASE * sizeof kv[0]);
  kv[1] = svlib;
  kv[3] = busy_poll;
  kv[13] = max_eps;
  size_t k = NBASE;
  for (int i = 0; i < 10 && extra_kv[i]; i++)
    kv[k++] = extra_kv[i];
  kv[k] = NULL;
  return kv;
}

/* ---- the fake CUDA driver (cudamem) ------------------------------------------ */

/* The few driver calls the test makes itself, from the same library the
 * plugin loads through cuda_library (so one driver state per process). */
typedef unsigned long long cu_ptr;
typedef struct fcu {
  void *dl;
  int (*init)(unsigned int flags);
  int (*alloc)(cu_ptr *p, size_t n);
  int (*free)(cu_ptr p);
  int (*htod)(cu_ptr dst, const void *src, size_t n);
  int (*dtoh)(void *dst, cu_ptr src, size_t n);
  int (*handle)(void *h, cu_ptr p, size_t n, int type, unsigned long long flags);
} fcu;

static int fcu_load(fcu *c) {
  memset(c, 0, sizeof *c);
  c->dl = dlopen(cudalib, RTLD_NOW | RTLD_LOCAL);
  if (!c->dl)
    return -1;
  *(void **)&c->init = dlsym(c->dl, "cuInit");
  *(void **)&c->alloc = dlsym(c->dl, "cuMemAlloc_v2");
  *(void **)&c->free = dlsym(c->dl, "cuMemFree_v2");
  *(void **)&c->htod = dlsym(c->dl, "cuMemcpyHtoD_v2");
  *(void **)&c->dtoh = dlsym(c->dl, "cuMemcpyDtoH_v2");
  *(void **)&c->handle = dlsym(c->dl, "cuMemGetHandleForAddressRange");
  if (!c->init || !c->alloc || !c->free || !c->htod || !c->dtoh || !c->handle || c->init(0))
    return -1;
  return 0;
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (!d)
    return -1;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* ---- the target ------------------------------------------------------------- */

typedef struct cmd {
  char op; /* 'C' checksum, 'F' fill, 'D' deregister, 'Q' quit, 'q' QPs per NIC,
              'G' fault `byte` on NIC sv<off> */
  uint8_t byte;
  uint64_t off, len;
} cmd;

static int target_main(void) {
  rt_node n;
  int rc = rt_node_init(&n, plugin, "target", dir, kv_with_lib());
  if (rc) {
    fprintf(stderr, "target init: %s\n", mc_strerror(rc));
    return 1;
  }
  /* cudamem: the buffer is fake-driver CUDA memory, registered through
   * its dma-buf; the checksums read it back with cuMemcpyDtoH. */
  fcu cu;
  uint8_t *buf, *host = NULL;
  cu_ptr dbuf = 0;
  if (cudalib) {
    if (fcu_load(&cu) || cu.alloc(&dbuf, BUF) || !(host = malloc(BUF)))
      return 1;
    buf = (uint8_t *)(uintptr_t)dbuf;
    memset(host, 0xAB, BUF);
    if (cu.htod(dbuf, host, BUF))
      return 1;
  } else {
    buf = aligned_alloc(4096, BUF);
    memset(buf, 0xAB, BUF);
  }
  mc_mem_desc d = {(uintptr_t)buf, BUF, cudalib ? MC_MEM_CUDA : MC_MEM_CPU, 0,
                   cudalib ? "cuda:0" : "cpu:0", NULL, 0, 0};
  void *mem = NULL;
  uint8_t rkey[MC_RKEY_MAX], desc[MC_DESC_MAX];
  size_t rl = sizeof rkey, dl = sizeof desc;
  if (n.ops->register_mem(n.ctx, &d, &mem, rkey, &rl) || n.ops->local_desc(n.ctx, desc, &dl))
    return 1;
  /* The soft NICs' test controls, in this process's copy of the library. */
  softverbs_fault_fn fault = NULL;
  softverbs_nic_qps_fn nic_qps = NULL;
  void *svh = dlopen(svlib, RTLD_NOW | RTLD_NOLOAD);
  if (svh) {
    *(void **)&fault = dlsym(svh, "softverbs_fault");
    *(void **)&nic_qps = dlsym(svh, "softverbs_nic_qps");
    dlclose(svh);
  }
  uint64_t addr = (uintptr_t)buf;
  xwrite(c2p[1], &addr, 8);
  xwrite(c2p[1], &dl, sizeof dl);
  xwrite(c2p[1], desc, dl);
  xwrite(c2p[1], &rl, sizeof rl);
  xwrite(c2p[1], rkey, rl);
  for (;;) {
    cmd c;
    xread(p2c[0], &c, sizeof c);
    uint64_t r = 0;
    if (c.op == 'C' && cudalib) {
      r = cu.dtoh(host, dbuf + c.off, c.len) ? 0 : fnv(host, c.len);
    } else if (c.op == 'C') {
      r = fnv(buf + c.off, c.len);
    } else if (c.op == 'F' && cudalib) {
      memset(host, c.byte, c.len);
      r = (uint64_t)cu.htod(dbuf + c.off, host, c.len);
    } else if (c.op == 'F') {
      memset(buf + c.off, c.byte, c.len);
    } else if (c.op == 'q') {
      /* 16 bits per NIC: sv0 in the low bits. */
      for (int i = 0; i < NNIC && nic_qps; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "sv%d", i);
        r |= (uint64_t)(nic_qps(nm) & 0xffffu) << (16 * i);
      }
    } else if (c.op == 'G') {
      char nm[8];
      snprintf(nm, sizeof nm, "sv%u", (unsigned)c.off);
      r = fault ? (uint64_t)(int64_t)fault(nm, c.byte, 0) : (uint64_t)-1;
    } else if (c.op == 'D') {
      n.ops->deregister_mem(n.ctx, mem);
      mem = NULL;
    } else if (c.op == 'S') {
      /* Simultaneous open: connect back to the initiator (which connects
       * again at the same moment) and write 64 KiB into its buffer. */
      uint8_t pd[MC_DESC_MAX], pk[MC_RKEY_MAX];
      size_t pdl, pkl;
      uint64_t paddr;
      xread(p2c[0], &pdl, sizeof pdl);
      xread(p2c[0], pd, pdl < sizeof pd ? pdl : sizeof pd);
      xread(p2c[0], &pkl, sizeof pkl);
      xread(p2c[0], pk, pkl < sizeof pk ? pkl : sizeof pk);
      xread(p2c[0], &paddr, 8);
      void *ep = NULL, *rm = NULL;
      int src = n.ops->connect(n.ctx, "init", pd, pdl, &ep);
      if (!src)
        src = n.ops->import_mem(n.ctx, ep, paddr, 2 * BUF, pk, pkl, &rm);
      if (!src) {
        mc_slice sl = {7, MC_OP_WRITE, 2, mem, (uintptr_t)buf + c.off, rm, paddr + c.off, c.len};
        rt_expect(&n, 7, 8);
        uint64_t before = n.done;
        src = rt_submit_all(&n, ep, &sl, 1, 10000);
        if (!src)
          src = rt_wait_done(&n, before + 1, 10000) ? MC_ETIMEDOUT : n.status[7];
      }
      if (rm)
        n.ops->release_mem(n.ctx, rm);
      if (ep)
        n.ops->disconnect(n.ctx, ep);
      r = (uint64_t)(int64_t)src;
    } else if (c.op == 'N') {
      r = (uint64_t)n.h.notifies;
      if (n.h.notifies)
        r |= (uint64_t)(strcmp(n.h.notify_peer, "init") == 0) << 32;
    } else {
      xwrite(c2p[1], &r, 8);
      break;
    }
    xwrite(c2p[1], &r, 8);
  }
  if (mem)
    n.ops->deregister_mem(n.ctx, mem);
  rt_node_fini(&n);
  if (cudalib) {
    cu.free(dbuf);
    free(host);
    dlclose(cu.dl);
  } else {
    free(buf);
  }
  return 0;
}

static void tcmd_send(char op, uint64_t off, uint64_t len) {
  cmd c = {op, 0, off, len};
  xwrite(p2c[1], &c, sizeof c);
}

static uint64_t tcmd(char op, uint64_t off, uint64_t len, uint8_t byte) {
  cmd c = {op, byte, off, len};
  xwrite(p2c[1], &c, sizeof c);
  uint64_t r;
  xread(c2p[0], &r, 8);
  return r;
}

/* ---- the initiator ---------------------------------------------------------- */

typedef struct world {
  rt_node n;
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
  uint8_t lkey[MC_RKEY_MAX];
  size_t lkey_len;
  void *ep, *lmem, *rmem;
  uint8_t *lbuf;
  uint64_t raddr;
  uint8_t rkey[MC_RKEY_MAX];
  size_t rkey_len;
  uint64_t next_token;
  softverbs_fault_fn fault;
  softverbs_nic_bytes_fn nic_bytes;
  softverbs_cq_overruns_fn overruns;
  softverbs_engine_cpu_fn engine_cpu;
  softverbs_nic_qps_fn nic_qps;
  softverbs_posts_fn posts;
} world;

static void world_up(world *w) {
  memset(w, 0, sizeof *w);
  CHECK_OK(rt_node_init(&w->n, plugin, "init", dir, kv_with_lib()));
  uint8_t desc[MC_DESC_MAX];
  size_t dl;
  xread(c2p[0], &w->raddr, 8);
  xread(c2p[0], &dl, sizeof dl);
  CHECK(dl <= sizeof desc);
  xread(c2p[0], desc, dl);
  xread(c2p[0], &w->rkey_len, sizeof w->rkey_len);
  CHECK(w->rkey_len <= sizeof w->rkey);
  xread(c2p[0], w->rkey, w->rkey_len);
  w->lbuf = aligned_alloc(4096, 2 * BUF);
  CHECK(w->lbuf != NULL);
  memset(w->lbuf, 0, 2 * BUF);
  mc_mem_desc d = {(uintptr_t)w->lbuf, 2 * BUF, MC_MEM_CPU, 0, "cpu:0"};
  w->lkey_len = sizeof w->lkey;
  CHECK_OK(w->n.ops->register_mem(w->n.ctx, &d, &w->lmem, w->lkey, &w->lkey_len));
  CHECK_OK(w->n.ops->connect(w->n.ctx, "target", desc, dl, &w->ep));
  memcpy(w->desc, desc, dl);
  w->desc_len = dl;
  CHECK_OK(w->n.ops->import_mem(w->n.ctx, w->ep, w->raddr, BUF, w->rkey, w->rkey_len, &w->rmem));
  uint32_t nr = 8;
  mc_rail_info ri[8];
  CHECK_OK(w->n.ops->query_rails(w->n.ctx, ri, &nr));
  if (!extra_kv[0]) { /* all four NICs, as configured */
    CHECK_EQ_INT(nr, NNIC);
    CHECK_STR(ri[2].name, "sv2");
    CHECK_EQ_INT(ri[2].numa_node, 1);
    CHECK_EQ_INT(ri[2].pci_bus_id, (0x0000u << 16) | (0x81u << 8) | (0u << 3) | 0u);
    CHECK_EQ_U64(ri[0].bandwidth_mbps, 200000);
  }
  void *h = dlopen(svlib, RTLD_NOW | RTLD_NOLOAD);
  CHECK(h != NULL);
  *(void **)&w->fault = dlsym(h, "softverbs_fault");
  *(void **)&w->nic_bytes = dlsym(h, "softverbs_nic_bytes");
  *(void **)&w->overruns = dlsym(h, "softverbs_cq_overruns");
  *(void **)&w->engine_cpu = dlsym(h, "softverbs_engine_cpu_ns");
  *(void **)&w->nic_qps = dlsym(h, "softverbs_nic_qps");
  *(void **)&w->posts = dlsym(h, "softverbs_posts");
  CHECK(w->fault && w->nic_bytes && w->overruns && w->nic_qps);
  dlclose(h);
}

static void world_down(world *w, int quit_target) {
  if (quit_target)
    tcmd('Q', 0, 0, 0);
  CHECK_OK(w->n.ops->release_mem(w->n.ctx, w->rmem));
  CHECK_OK(w->n.ops->disconnect(w->n.ctx, w->ep));
  CHECK_OK(w->n.ops->deregister_mem(w->n.ctx, w->lmem));
  CHECK_EQ_U64(w->overruns(), 0);
  CHECK_EQ_U64(w->n.dup, 0);
  rt_node_fini(&w->n);
  free(w->lbuf);
}

static mc_slice mk(world *w, int op, uint64_t loff, uint64_t roff, uint64_t len, uint32_t rail) {
  mc_slice s = {w->next_token++, (uint32_t)op, rail, w->lmem, (uintptr_t)w->lbuf + loff,
                w->rmem, w->raddr + roff, len};
  return s;
}

/* Submits cnt slices and waits for them; returns how many failed. */
static uint32_t run(world *w, mc_slice *s, uint32_t cnt) {
  rt_expect(&w->n, s[0].token, s[cnt - 1].token + 1);
  uint64_t before = w->n.done;
  CHECK_OK(rt_submit_all(&w->n, w->ep, s, cnt, 10000));
  CHECK_MSG(rt_wait_done(&w->n, before + cnt, 10000) == 0, "%u slices not completed", cnt);
  uint32_t bad = 0;
  for (uint32_t i = 0; i < cnt; i++)
    bad += w->n.status[s[i].token] != 0;
  if (bad && getenv("RT_VERBOSE"))
    for (uint32_t i = 0; i < cnt; i++)
      if (w->n.status[s[i].token])
        fprintf(stderr, "slice %u (rail %u): %s\n", i, s[i].rail, mc_errname(w->n.status[s[i].token]));
  return bad;
}

static uint64_t rnd(void) {
  static uint64_t x = 88172645463325252ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

static void fill_rand(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)rnd();
}

static void mode_data(world *w) {
  static const uint64_t sizes[] = {1, 7, 4096, 65533, 1u << 20, (4u << 20) + 1, 3u << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    uint64_t len = sizes[k], loff = rnd() % (BUF - len), roff = rnd() % (BUF - len);
    fill_rand(w->lbuf + loff, len);
    mc_slice s = mk(w, MC_OP_WRITE, loff, roff, len, (uint32_t)k % NNIC);
    CHECK_EQ_INT(run(w, &s, 1), 0);
    /* The target's own view of its memory. */
    CHECK_EQ_U64(tcmd('C', roff, len, 0), fnv(w->lbuf + loff, len));
    memset(w->lbuf + BUF, 0, len);
    s = mk(w, MC_OP_READ, BUF, roff, len, (uint32_t)(k + 1) % NNIC);
    CHECK_EQ_INT(run(w, &s, 1), 0);
    CHECK(memcmp(w->lbuf + BUF, w->lbuf + loff, len) == 0);
  }
  /* Across the 8 MiB MR chunk edge (sv0's max_mr_size) on both sides. */
  {
    uint64_t off = (8u << 20) - 1000, len = 5000;
    fill_rand(w->lbuf + off, len);
    mc_slice s = mk(w, MC_OP_WRITE, off, off, len, 0);
    CHECK_EQ_INT(run(w, &s, 1), 0);
    CHECK_EQ_U64(tcmd('C', off, len, 0), fnv(w->lbuf + off, len));
    s = mk(w, MC_OP_READ, BUF + off, off, len, 2);
    CHECK_EQ_INT(run(w, &s, 1), 0);
    CHECK(memcmp(w->lbuf + BUF + off, w->lbuf + off, len) == 0);
  }
  /* Thousands of batches of 8 random slices in 8 disjoint lanes. */
  const uint64_t lane = BUF / 8;
  for (int b = 0; b < 2000; b++) {
    mc_slice s[8];
    uint64_t len[8], ro[8];
    for (int i = 0; i < 8; i++) {
      len[i] = 1 + rnd() % (b % 10 == 0 ? lane / 4 : 16384);
      ro[i] = (uint64_t)i * lane + rnd() % (lane - len[i]);
      fill_rand(w->lbuf + ro[i], len[i] < 64 ? len[i] : 64);
      s[i] = mk(w, MC_OP_WRITE, ro[i], ro[i], len[i], (uint32_t)(b + i) % NNIC);
    }
    CHECK_EQ_INT(run(w, s, 8), 0);
    for (int i = 0; i < 8; i++)
      s[i] = mk(w, MC_OP_READ, BUF + ro[i], ro[i], len[i], (uint32_t)(b + i + 1) % NNIC);
    CHECK_EQ_INT(run(w, s, 8), 0);
    for (int i = 0; i < 8; i++)
      CHECK_MSG(memcmp(w->lbuf + ro[i], w->lbuf + BUF + ro[i], len[i]) == 0,
                "batch %d slice %d (%" PRIu64 " bytes) differs", b, i, len[i]);
  }
  printf("data: 7 sizes 1 B..4 MiB+1 and 2000 batches of 8 writes + 8 reads verified\n");
}

static void mode_stripe(world *w) {
  uint64_t b0[NNIC];
  static const char *const nics[NNIC] = {"sv0", "sv1", "sv2", "sv3"};
  for (int i = 0; i < NNIC; i++)
    b0[i] = w->nic_bytes(nics[i]);
  /* What the core does: round robin over the preferred rails. */
  enum { N = 4096, LEN = 32768 };
  static mc_slice s[N];
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, (i * (uint64_t)LEN) % BUF, (i * (uint64_t)LEN) % BUF, LEN, i % NNIC);
  CHECK_EQ_INT(run(w, s, N), 0);
  uint64_t mn = UINT64_MAX, mx = 0, sum = 0;
  for (int i = 0; i < NNIC; i++) {
    uint64_t d = w->nic_bytes(nics[i]) - b0[i];
    printf("stripe: %s moved %" PRIu64 " bytes\n", nics[i], d);
    mn = d < mn ? d : mn;
    mx = d > mx ? d : mx;
    sum += d;
  }
  CHECK_EQ_U64(sum, (uint64_t)N * LEN);
  CHECK_MSG(mx * 100 <= mn * 110, "NIC bytes differ by more than 10%%: %" PRIu64 "..%" PRIu64,
            mn, mx);
}

static void mode_failover(world *w) {
  enum { N = 24000, LEN = 4096 };
  static mc_slice s[N];
  static uint8_t tries[N];
  memset(tries, 0, sizeof tries);
  fill_rand(w->lbuf, BUF);
  uint64_t t0 = w->next_token;
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, (i * (uint64_t)LEN) % BUF, (i * (uint64_t)LEN) % BUF, LEN, i % NNIC);
  rt_expect(&w->n, t0, t0 + N);
  uint64_t dead_bytes = 0;
  uint32_t retried = 0;
  /* Submit in windows; kill sv1 a third of the way; resubmit failures on
   * another rail, as the core does (batch.c: retryable codes). */
  uint32_t next = 0, final_ok = 0;
  uint64_t base_done = w->n.done, expect = 0;
  while (next < N) {
    uint32_t cnt = N - next < 512 ? N - next : 512;
    if (next >= N / 3 && next < N / 3 + 512) {
      CHECK_OK(w->fault("sv1", SOFTVERBS_NIC_DEAD, 0));
      printf("failover: sv1 dead after %u slices\n", next);
    }
    CHECK_OK(rt_submit_all(&w->n, w->ep, s + next, cnt, 10000));
    expect += cnt;
    next += cnt;
    CHECK(rt_wait_done(&w->n, base_done + expect, 10000) == 0);
    /* Retry what failed. */
    for (;;) {
      mc_slice again[512];
      uint32_t na = 0;
      pthread_mutex_lock(&w->n.lock);
      for (uint32_t i = next - cnt; i < next; i++) {
        uint64_t t = s[i].token;
        if (w->n.seen[t] && w->n.status[t] != 0 && tries[i] < 8) {
          int st = w->n.status[t];
          CHECK_MSG(st == MC_EPEER || st == MC_EIO || st == MC_ETIMEDOUT,
                    "unexpected status %s", mc_errname(st));
          tries[i]++;
          w->n.seen[t] = 0;
          w->n.status[t] = 1;
          s[i].rail = (s[i].rail + 1) % NNIC;
          again[na++] = s[i];
        }
      }
      pthread_mutex_unlock(&w->n.lock);
      if (!na)
        break;
      retried += na;
      CHECK_OK(rt_submit_all(&w->n, w->ep, again, na, 10000));
      expect += na;
      CHECK(rt_wait_done(&w->n, base_done + expect, 10000) == 0);
    }
    if (next > N / 3 + 512 && !dead_bytes)
      dead_bytes = w->nic_bytes("sv1");
  }
  for (uint32_t i = 0; i < N; i++)
    final_ok += w->n.seen[s[i].token] && w->n.status[s[i].token] == 0;
  CHECK_EQ_INT(final_ok, N);
  CHECK_EQ_U64(w->nic_bytes("sv1"), dead_bytes); /* nothing more went through it */
  /* Every byte landed: the target's checksum of the whole region. */
  uint64_t span = ((uint64_t)N * LEN) < BUF ? (uint64_t)N * LEN : BUF;
  CHECK_EQ_U64(tcmd('C', 0, span, 0), fnv(w->lbuf, span));
  printf("failover: %u slices all completed OK, %u retried on another rail\n", N, retried);
}

static void mode_rkey(world *w) {
  tcmd('F', 0, BUF, 0x5A);
  uint64_t ck = tcmd('C', 0, 1 << 20, 0);
  fill_rand(w->lbuf, 1 << 20);
  /* A forged key: every rkey bit-flipped in the blob (offsets per
   * rdma_wire.h: 40-byte header, then 4-byte keys). */
  uint8_t forged[MC_RKEY_MAX];
  memcpy(forged, w->rkey, w->rkey_len);
  for (size_t i = 40; i + 4 <= w->rkey_len; i += 4)
    forged[i] ^= 0x5;
  void *frm = NULL;
  CHECK_OK(w->n.ops->import_mem(w->n.ctx, w->ep, w->raddr, BUF, forged, w->rkey_len, &frm));
  mc_slice s = {w->next_token++, MC_OP_WRITE, 0, w->lmem, (uintptr_t)w->lbuf, frm, w->raddr, 65536};
  CHECK_EQ_INT(run(w, &s, 1), 1);
  CHECK_RC(w->n.status[s.token], MC_EACCES);
  s.token = w->next_token++;
  s.op = MC_OP_READ;
  CHECK_EQ_INT(run(w, &s, 1), 1);
  CHECK_RC(w->n.status[s.token], MC_EACCES);
  CHECK_EQ_U64(tcmd('C', 0, 1 << 20, 0), ck); /* nothing written */
  CHECK_OK(w->n.ops->release_mem(w->n.ctx, frm));
  /* A good key works (the QP broken by the refusal is rebuilt). */
  mc_slice g = mk(w, MC_OP_WRITE, 0, 0, 4096, 1);
  for (int tries = 0; tries < 50; tries++) {
    if (run(w, &g, 1) == 0)
      break;
    g.token = w->next_token++;
    usleep(20000);
  }
  CHECK_EQ_INT(w->n.status[g.token], 0);
  CHECK_EQ_U64(tcmd('C', 0, 4096, 0), fnv(w->lbuf, 4096));
  /* Revoked: the target deregisters; the old key must not write. */
  tcmd('F', 0, 1 << 20, 0x5A);
  ck = tcmd('C', 0, 1 << 20, 0);
  tcmd('D', 0, 0, 0);
  for (uint32_t r = 0; r < NNIC; r++) {
    mc_slice v = mk(w, MC_OP_WRITE, 0, 4096 * r, 4096, r);
    CHECK_EQ_INT(run(w, &v, 1), 1);
    CHECK_RC(w->n.status[v.token], MC_EACCES);
  }
  CHECK_EQ_U64(tcmd('C', 0, 1 << 20, 0), ck);
  printf("rkey: forged and revoked keys refused (MC_EACCES), target memory unchanged\n");
}

static void mode_peerkill(world *w) {
  enum { N = 256 };
  static mc_slice s[N];
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, (i * 65536ull) % BUF, (i * 65536ull) % BUF, 65536, i % NNIC);
  rt_expect(&w->n, s[0].token, s[N - 1].token + 1);
  uint64_t before = w->n.done;
  CHECK_OK(rt_submit_all(&w->n, w->ep, s, N / 2, 10000));
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  child = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint32_t acc = 0;
  int rc = w->n.ops->submit(w->n.ctx, w->ep, s + N / 2, N / 2, &acc);
  CHECK(rc == 0 || rc == MC_EAGAIN || rc == MC_EPEER);
  CHECK(rt_wait_done(&w->n, before + N / 2 + acc, 10000) == 0);
  uint32_t ok = 0, failed = 0;
  for (uint32_t i = 0; i < N / 2 + acc; i++) {
    int st = w->n.status[s[i].token];
    if (st == 0)
      ok++;
    else {
      failed++;
      CHECK_MSG(st == MC_EPEER || st == MC_EIO || st == MC_ETIMEDOUT, "status %s",
                mc_errname(st));
    }
  }
  CHECK(failed > 0);
  /* The endpoint is found dead: submit fails fast with MC_EPEER. */
  int dead = 0;
  for (int i = 0; i < 400 && !dead; i++) {
    mc_slice p = mk(w, MC_OP_WRITE, 0, 0, 64, 0);
    rt_expect(&w->n, p.token, p.token + 1);
    uint64_t b = w->n.done;
    acc = 0;
    rc = w->n.ops->submit(w->n.ctx, w->ep, &p, 1, &acc);
    if (rc == MC_EPEER)
      dead = 1;
    else if (acc)
      CHECK(rt_wait_done(&w->n, b + 1, 10000) == 0);
    else
      usleep(10000);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(dead);
  long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  CHECK_MSG(ms < 3000 + 2000, "took %ld ms", ms);
  printf("peerkill: %u ok before the kill, %u failed, endpoint dead after %ld ms\n", ok, failed,
         ms);
}

static void mode_notify(world *w) {
  mc_slice s = mk(w, MC_OP_WRITE, 0, 0, 4096, 0);
  CHECK_EQ_INT(run(w, &s, 1), 0);
  /* The SEND path, not the control-channel fallback (which logs at debug). */
  w->n.h.enabled_level = MC_LOG_DEBUG;
  int nlogs = w->n.h.nlogs;
  for (int i = 0; i < 10; i++)
    CHECK_OK(w->n.ops->send_notify(w->n.ctx, w->ep, "kv-ready", 8));
  CHECK_MSG(w->n.h.nlogs == nlogs, "%d lines logged, the last: %s", w->n.h.nlogs - nlogs, w->n.h.log);
  w->n.h.enabled_level = MC_LOG_WARN;
  uint64_t r = 0;
  for (int i = 0; i < 200 && (r & 0xffffffffu) < 10; i++) {
    r = tcmd('N', 0, 0, 0);
    usleep(5000);
  }
  CHECK_EQ_U64(r & 0xffffffffu, 10);
  CHECK_EQ_U64(r >> 32, 1); /* attributed to the caller's vouched name */
  /* With sv0's notify QP broken, the next rail's takes it. */
  CHECK_OK(w->fault("sv0", SOFTVERBS_QP_ERR, 0));
  usleep(100000);
  CHECK_OK(w->n.ops->send_notify(w->n.ctx, w->ep, "again", 5));
  for (int i = 0; i < 200 && (r & 0xffffffffu) < 11; i++) {
    r = tcmd('N', 0, 0, 0);
    usleep(5000);
  }
  CHECK_EQ_U64(r & 0xffffffffu, 11);
  uint8_t big[MC_NOTIFY_MAX + 1] = {0};
  CHECK_RC(w->n.ops->send_notify(w->n.ctx, w->ep, big, sizeof big), MC_EINVAL);
  printf("notify: 11 SENDs delivered after the data, attributed to 'init'\n");
}

/* Runs cnt slices; failures (retryable codes only) are resubmitted with the
 * same rail hint, up to 100 times 20 ms apart.  Returns how many never
 * succeeded; *errs counts the failures seen. */
static uint32_t run_retry(world *w, mc_slice *s, uint32_t cnt, uint32_t *errs) {
  uint32_t left = cnt;
  mc_slice *todo = calloc(cnt, sizeof *todo);
  CHECK(todo != NULL);
  memcpy(todo, s, cnt * sizeof *s);
  for (int round = 0; round < 100 && left; round++) {
    for (uint32_t i = 0; i < left; i++)
      todo[i].token = w->next_token++;
    run(w, todo, left);
    uint32_t k = 0;
    for (uint32_t i = 0; i < left; i++) {
      int st = w->n.status[todo[i].token];
      if (st) {
        CHECK_MSG(st == MC_EPEER || st == MC_EIO || st == MC_ETIMEDOUT, "status %s",
                  mc_errname(st));
        (*errs)++;
        todo[k++] = todo[i];
      }
    }
    left = k;
    if (left)
      usleep(20000);
  }
  free(todo);
  return left;
}

static void mode_faults(world *w) {
  enum { N = 64, LEN = 16384 };
  mc_slice s[N];
  uint32_t errs = 0;
  fill_rand(w->lbuf, BUF);
  /* 1. Work completions in error on sv0: failed, retried, all land. */
  CHECK_OK(w->fault("sv0", SOFTVERBS_WC_ERR, 3));
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 0);
  CHECK_EQ_INT(run_retry(w, s, N, &errs), 0);
  CHECK(errs >= 1);
  CHECK_EQ_U64(tcmd('C', 0, N * LEN, 0), fnv(w->lbuf, N * LEN));
  CHECK_OK(w->fault("sv0", SOFTVERBS_WC_ERR, 0)); /* injections not consumed yet */
  usleep(300000); /* sv0's back-off */
  printf("faults: 3 injected WC errors on sv0: %u slice failures, all retried OK\n", errs);
  /* 2. Every QP of sv2 forced to ERR (QP_FATAL events): rebuilt, and
   * traffic flows through sv2 again. */
  CHECK_OK(w->fault("sv2", SOFTVERBS_QP_ERR, 0));
  usleep(300000);
  uint64_t b0 = w->nic_bytes("sv2");
  errs = 0;
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 2);
  CHECK_EQ_INT(run_retry(w, s, N, &errs), 0);
  CHECK(w->nic_bytes("sv2") > b0);
  printf("faults: sv2 QPs forced to ERR: rebuilt, %" PRIu64 " bytes through sv2 after, %u "
         "failures on the way\n", w->nic_bytes("sv2") - b0, errs);
  /* 3. sv3's port goes down (PORT_ERR): its slices go elsewhere, no error;
   * it comes back (PORT_ACTIVE): used again. */
  CHECK_OK(w->fault("sv3", SOFTVERBS_PORT_DOWN, 0));
  usleep(300000);
  b0 = w->nic_bytes("sv3");
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 3);
  CHECK_EQ_INT(run(w, s, N), 0);
  CHECK_EQ_U64(w->nic_bytes("sv3"), b0);
  CHECK_OK(w->fault("sv3", SOFTVERBS_PORT_UP, 0));
  usleep(300000);
  errs = 0;
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 3);
  CHECK_EQ_INT(run_retry(w, s, N, &errs), 0);
  CHECK(w->nic_bytes("sv3") > b0);
  printf("faults: sv3 port down: slices moved to other rails with no error; port up: sv3 used "
         "again\n");
  /* 4. sv1 stops answering: its slices fail MC_ETIMEDOUT within the slice
   * deadline (timeout_ms 3000), then work again once it recovers. */
  CHECK_OK(w->fault("sv1", SOFTVERBS_STALL, 0));
  for (uint32_t i = 0; i < 8; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 1);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_EQ_INT(run(w, s, 8), 8);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  for (uint32_t i = 0; i < 8; i++)
    CHECK_RC(w->n.status[s[i].token], MC_ETIMEDOUT);
  CHECK_MSG(ms >= 2900 && ms < 5000, "deadline after %ld ms", ms);
  CHECK_OK(w->fault("sv1", SOFTVERBS_UNSTALL, 0));
  errs = 0;
  for (uint32_t i = 0; i < 8; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 1);
  CHECK_EQ_INT(run_retry(w, s, 8, &errs), 0);
  printf("faults: sv1 stalled: 8 slices MC_ETIMEDOUT after %ld ms, then OK again\n", ms);
}

/* max_endpoints 1: a second endpoint, once used, evicts the first one's
 * QPs (seen in the soft NICs' QP counts); the first is rebuilt on its next
 * use (its slice accepted and held meanwhile), evicting the second; data
 * intact. */
static void mode_evict(world *w, const uint8_t *desc, size_t dl) {
  void *ep2 = NULL, *rm2 = NULL;
  fill_rand(w->lbuf, 1 << 20);
  mc_slice s0 = mk(w, MC_OP_WRITE, 0, 0, 65536, 0);
  CHECK_EQ_INT(run(w, &s0, 1), 0); /* endpoint 1's (sv0, sv0) pair */
  CHECK_EQ_INT(w->nic_qps("sv0"), 2);
  CHECK_OK(w->n.ops->connect(w->n.ctx, "target", desc, dl, &ep2));
  CHECK_OK(w->n.ops->import_mem(w->n.ctx, ep2, w->raddr, BUF, w->rkey, w->rkey_len, &rm2));
  CHECK_EQ_INT(w->nic_qps("sv0"), 2); /* connect alone makes no QP, evicts nothing */
  mc_slice s2 = {w->next_token++, MC_OP_WRITE, 1, w->lmem, (uintptr_t)w->lbuf + 65536, rm2,
                 w->raddr + 65536, 65536};
  void *ep1 = w->ep;
  w->ep = ep2;
  CHECK_EQ_INT(run(w, &s2, 1), 0); /* endpoint 2 built on sv1: endpoint 1 evicted */
  w->ep = ep1;
  CHECK_EQ_INT(w->nic_qps("sv0"), 0);
  CHECK_EQ_INT(w->nic_qps("sv1"), 2);
  /* Evicted: the slice is taken at once (submit never blocks) and waits
   * for the fixer to rebuild the QPs, evicting endpoint 2 in turn. */
  uint32_t acc = 0;
  mc_slice s = mk(w, MC_OP_WRITE, 0, 0, 65536, 0);
  rt_expect(&w->n, s.token, s.token + 1);
  uint64_t before = w->n.done;
  CHECK_OK(w->n.ops->submit(w->n.ctx, w->ep, &s, 1, &acc));
  CHECK_EQ_INT(acc, 1);
  CHECK(rt_wait_done(&w->n, before + 1, 10000) == 0);
  CHECK_RC(w->n.status[s.token], 0);
  CHECK_EQ_INT(w->nic_qps("sv0"), 2);
  CHECK_EQ_INT(w->nic_qps("sv1"), 0);
  CHECK_EQ_U64(tcmd('C', 0, 131072, 0), fnv(w->lbuf, 131072));
  CHECK_OK(w->n.ops->release_mem(w->n.ctx, rm2));
  CHECK_OK(w->n.ops->disconnect(w->n.ctx, ep2));
  printf("evict: endpoint cache of 1: each endpoint's QPs evicted when the other was used, "
         "rebuilt on its next use, data intact\n");
}

/* QPs on each NIC: this side's and the target's, as "a,b,c,d|e,f,g,h". */
static void qp_counts(world *w, char *out, size_t cap) {
  uint64_t t = tcmd('q', 0, 0, 0);
  snprintf(out, cap, "%u,%u,%u,%u|%u,%u,%u,%u", w->nic_qps("sv0"), w->nic_qps("sv1"),
           w->nic_qps("sv2"), w->nic_qps("sv3"), (unsigned)(t & 0xffff),
           (unsigned)(t >> 16 & 0xffff), (unsigned)(t >> 32 & 0xffff),
           (unsigned)(t >> 48 & 0xffff));
}

/* QPs are created per (local NIC, remote NIC) pair on the pair's first
 * use: connect makes none; a transfer over one rail makes qps_per_peer (2)
 * on that NIC of each side and none elsewhere. */
static void mode_lazy(world *w) {
  char c[64];
  qp_counts(w, c, sizeof c);
  CHECK_STR(c, "0,0,0,0|0,0,0,0");
  fill_rand(w->lbuf, 1 << 20);
  mc_slice s[16];
  for (uint32_t i = 0; i < 16; i++)
    s[i] = mk(w, MC_OP_WRITE, i * 65536ull, i * 65536ull, 65536, 1);
  CHECK_EQ_INT(run(w, s, 16), 0);
  CHECK_EQ_U64(tcmd('C', 0, 1 << 20, 0), fnv(w->lbuf, 1 << 20));
  qp_counts(w, c, sizeof c);
  CHECK_STR(c, "0,2,0,0|0,2,0,0");
  CHECK_EQ_U64(w->nic_bytes("sv0") + w->nic_bytes("sv2") + w->nic_bytes("sv3"), 0);
  for (uint32_t i = 0; i < 16; i++) /* the same pair again: no new QP */
    s[i] = mk(w, MC_OP_READ, i * 65536ull, i * 65536ull, 65536, 1);
  CHECK_EQ_INT(run(w, s, 16), 0);
  qp_counts(w, c, sizeof c);
  CHECK_STR(c, "0,2,0,0|0,2,0,0");
  s[0] = mk(w, MC_OP_WRITE, 0, 0, 4096, 3); /* a second rail: its pair only */
  CHECK_EQ_INT(run(w, s, 1), 0);
  qp_counts(w, c, sizeof c);
  CHECK_STR(c, "0,2,0,2|0,2,0,2");
  printf("lazy: connect made no QP; rail 1 used: QPs on sv1 only (2 each side); then rail 3: "
         "2 more on sv3 (%s)\n", c);
  /* The peer dies; slices for a pair never used are taken (submit does
   * not block), wait for QPs that cannot be made, and fail well within the
   * deadline; then submit itself says MC_EPEER. */
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  child = 0;
  for (uint32_t i = 0; i < 8; i++)
    s[i] = mk(w, MC_OP_WRITE, i * 4096ull, i * 4096ull, 4096, 2);
  rt_expect(&w->n, s[0].token, s[7].token + 1);
  uint64_t before = w->n.done;
  uint32_t acc = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_OK(w->n.ops->submit(w->n.ctx, w->ep, s, 8, &acc));
  CHECK_EQ_INT(acc, 8);
  CHECK(rt_wait_done(&w->n, before + 8, 10000) == 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  /* MC_EPEER when the QPs could not be made; a slice the fixer sent on to
   * a rail whose QPs predate the kill fails there (MC_EPEER, or MC_EIO
   * when flushed behind the first failure). */
  for (uint32_t i = 0; i < 8; i++) {
    int st = w->n.status[s[i].token];
    CHECK_MSG(st == MC_EPEER || st == MC_EIO, "status %s", mc_errname(st));
  }
  long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  CHECK_MSG(ms < 3000, "took %ld ms", ms);
  CHECK_EQ_INT(w->nic_qps("sv2"), 0); /* the pair was never made */
  /* The pairs made before the kill fail their WRs in turn; then every
   * submit says MC_EPEER. */
  int dead = 0;
  for (int i = 0; i < 400 && !dead; i++) {
    mc_slice p = mk(w, MC_OP_WRITE, 0, 0, 64, 2);
    rt_expect(&w->n, p.token, p.token + 1);
    uint64_t b = w->n.done;
    int rc = w->n.ops->submit(w->n.ctx, w->ep, &p, 1, &acc);
    if (rc == MC_EPEER)
      dead = 1;
    else if (acc)
      CHECK(rt_wait_done(&w->n, b + 1, 10000) == 0);
    else
      usleep(10000);
  }
  CHECK(dead);
  printf("lazy: peer killed: 8 slices for a new pair taken, all failed after %ld ms (no QP "
         "made), then submit says MC_EPEER\n", ms);
}

/* Runs batches on `rail` until NIC `nic` moves bytes again (its rail may
 * be in back-off after its peer's GID changed under it): 1 when it did. */
static int rail_used_again(world *w, const char *nic, uint32_t rail, uint32_t *errs) {
  enum { N = 8, LEN = 16384 };
  mc_slice s[N];
  uint64_t b0 = w->nic_bytes(nic);
  for (int round = 0; round < 50; round++) {
    for (uint32_t i = 0; i < N; i++)
      s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, rail);
    CHECK_EQ_INT(run_retry(w, s, N, errs), 0);
    if (w->nic_bytes(nic) > b0)
      return 1;
    usleep(50000);
  }
  return 0;
}

static void rail_gids(world *w, uint8_t gids[NNIC][16]) {
  uint8_t d[MC_DESC_MAX];
  size_t dl = sizeof d;
  rdw_desc desc;
  CHECK_OK(w->n.ops->local_desc(w->n.ctx, d, &dl));
  CHECK_OK(rdw_desc_decode(d, dl, &desc));
  for (int i = 0; i < NNIC; i++)
    memcpy(gids[i], desc.rails[i].gid, 16);
}

/* Async events handled in place: a GID change on this side (re-queried,
 * in the descriptor, the port's QPs rebuilt with it), on the target's side
 * (its passive QPs fail; ours reconnect and learn the new GID), and a port
 * going down, changing GID and coming back: the rail pauses and resumes.
 * No engine restart, no slice lost (failed ones retried, data checked). */
static void mode_gid(world *w) {
  enum { N = 32, LEN = 16384 };
  mc_slice s[N];
  uint32_t errs = 0;
  fill_rand(w->lbuf, N * LEN);
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, i % NNIC);
  CHECK_EQ_INT(run(w, s, N), 0);
  uint8_t g0[NNIC][16], g1[NNIC][16];
  rail_gids(w, g0);
  /* 1. This side's sv1. */
  CHECK_OK(w->fault("sv1", SOFTVERBS_GID_CHANGE, 0));
  int changed = 0;
  for (int i = 0; i < 100 && !changed; i++) {
    usleep(20000);
    rail_gids(w, g1);
    changed = memcmp(g0[1], g1[1], 16) != 0;
  }
  CHECK_MSG(changed, "rail sv1's GID not re-queried after IBV_EVENT_GID_CHANGE");
  CHECK(memcmp(g0[0], g1[0], 16) == 0 && memcmp(g0[2], g1[2], 16) == 0);
  CHECK(rail_used_again(w, "sv1", 1, &errs));
  printf("gid: local sv1 GID changed (..%02x -> ..%02x): re-queried, QPs rebuilt, sv1 moves data "
         "again (%u slice failures retried)\n", g0[1][15], g1[1][15], errs);
  /* 2. The target's sv2. */
  errs = 0;
  CHECK_EQ_U64(tcmd('G', 2, 0, SOFTVERBS_GID_CHANGE), 0);
  usleep(100000);
  CHECK(rail_used_again(w, "sv2", 2, &errs));
  printf("gid: target sv2 GID changed: our QPs reconnected to its new GID, sv2 moves data again "
         "(%u slice failures retried)\n", errs);
  /* 3. sv3: port down (paused: no byte through it, no error), GID change
   * while down, port up (resumed with the new GID). */
  CHECK_OK(w->fault("sv3", SOFTVERBS_PORT_DOWN, 0));
  usleep(200000);
  uint64_t b3 = w->nic_bytes("sv3");
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, 3);
  CHECK_EQ_INT(run(w, s, N), 0);
  CHECK_EQ_U64(w->nic_bytes("sv3"), b3);
  CHECK_OK(w->fault("sv3", SOFTVERBS_GID_CHANGE, 0));
  CHECK_OK(w->fault("sv3", SOFTVERBS_PORT_UP, 0));
  errs = 0;
  CHECK(rail_used_again(w, "sv3", 3, &errs));
  rail_gids(w, g1);
  CHECK(memcmp(g0[3], g1[3], 16) != 0);
  /* Everything written landed. */
  fill_rand(w->lbuf, N * LEN);
  for (uint32_t i = 0; i < N; i++)
    s[i] = mk(w, MC_OP_WRITE, i * LEN, i * LEN, LEN, i % NNIC);
  errs = 0;
  CHECK_EQ_INT(run_retry(w, s, N, &errs), 0);
  CHECK_EQ_U64(tcmd('C', 0, N * LEN, 0), fnv(w->lbuf, N * LEN));
  printf("gid: sv3 port down (paused, %u slices elsewhere), GID change while down, port up: "
         "resumed with its new GID; data intact\n", (unsigned)N);
}

/* CUDA memory goes through ibv_reg_dmabuf_mr with a dma-buf fd from the
 * CUDA driver.  Here the driver is absent (cuda_library names a missing
 * file), or with RDMA_TEST_CUDA_LIBRARY one without dma-buf export:
 * registering CUDA memory is MC_ENOTSUP with the reason logged, as is HIP
 * memory; host memory keeps working. */
static void mode_cuda(world *w) {
  uint8_t *b = aligned_alloc(4096, 1 << 20);
  CHECK(b != NULL);
  mc_mem_desc d = {(uintptr_t)b, 1 << 20, MC_MEM_CUDA, 0, "cuda:0", NULL, 0, 0};
  void *mem = NULL;
  uint8_t key[MC_RKEY_MAX];
  size_t kl = sizeof key;
  CHECK_RC(w->n.ops->register_mem(w->n.ctx, &d, &mem, key, &kl), MC_ENOTSUP);
  /* RDMA_TEST_CUDA_LIBRARY: a driver without dma-buf export instead. */
  const char *why = getenv("RDMA_TEST_CUDA_LIBRARY") ? "has no cuMemGetHandleForAddressRange"
                                                     : "cannot load the CUDA driver";
  CHECK_MSG(strstr(w->n.h.last_warn, why) != NULL, "log: %s", w->n.h.last_warn);
  printf("cuda: MC_ENOTSUP, logged \"%s\"\n", w->n.h.last_warn);
  d.kind = MC_MEM_HIP;
  d.location = "hip:0";
  kl = sizeof key;
  CHECK_RC(w->n.ops->register_mem(w->n.ctx, &d, &mem, key, &kl), MC_ENOTSUP);
  CHECK(strstr(w->n.h.last_warn, "not supported by the rdma transport") != NULL);
  free(b);
  fill_rand(w->lbuf, 65536);
  mc_slice s = mk(w, MC_OP_WRITE, 0, 0, 65536, 0);
  CHECK_EQ_INT(run(w, &s, 1), 0);
  CHECK_EQ_U64(tcmd('C', 0, 65536, 0), fnv(w->lbuf, 65536));
  printf("cuda: HIP memory MC_ENOTSUP; host memory still moves\n");
}

/* CUDA memory on both sides, through the plugin's real dma-buf path: the
 * fake driver exports each range (cuMemGetHandleForAddressRange) and the
 * soft NIC maps the fd in ibv_reg_dmabuf_mr, so the bytes below moved
 * through those mappings, never through the CUDA pointers.  The local
 * range starts mid-page inside its allocation (the export's offset), the
 * target's spans chunks of sv0's 8 MiB MR limit. */
static void mode_cudamem(world *w) {
  enum { ALLOC = 4u << 20, LEN = 2u << 20, OFF = 3 * 4096 + 512 };
  fcu c;
  CHECK_MSG(fcu_load(&c) == 0, "cannot load the fake CUDA driver %s", cudalib);
  cu_ptr dp = 0;
  CHECK_EQ_INT(c.alloc(&dp, ALLOC), 0);
  int fds0 = open_fds();
  mc_mem_desc d = {dp + OFF, LEN, MC_MEM_CUDA, 0, "cuda:0", NULL, 0, 0};
  void *mem = NULL;
  uint8_t key[MC_RKEY_MAX];
  size_t kl = sizeof key;
  CHECK_OK(w->n.ops->register_mem(w->n.ctx, &d, &mem, key, &kl));
  /* The MRs hold the dma-buf: the plugin closed its fd after registering. */
  CHECK_EQ_INT(open_fds(), fds0);
  uint8_t *pat = malloc(LEN), *back = malloc(LEN);
  CHECK(pat && back);
  fill_rand(pat, LEN);
  CHECK_EQ_INT(c.htod(dp + OFF, pat, LEN), 0);
  /* CUDA -> remote CUDA, one slice per rail, odd offsets and sizes. */
  const uint64_t part = LEN / NNIC - 3, roff = 9 * 4096 + 77;
  mc_slice s[NNIC];
  for (uint32_t i = 0; i < NNIC; i++)
    s[i] = (mc_slice){w->next_token++, MC_OP_WRITE, i, mem, d.addr + i * part, w->rmem,
                      w->raddr + roff + i * part, part};
  CHECK_EQ_INT(run(w, s, NNIC), 0);
  CHECK_EQ_U64(tcmd('C', roff, NNIC * part, 0), fnv(pat, NNIC * part));
  /* Remote CUDA -> CUDA: a region the target filled, read into the
   * second half of our range, checked through cuMemcpyDtoH. */
  const uint64_t roff2 = 12u << 20, half = LEN / 2;
  CHECK_EQ_U64(tcmd('F', roff2 - 4096, half + 8192, 0x5A), 0);
  s[0] = (mc_slice){w->next_token++, MC_OP_READ, 1, mem, d.addr + half, w->rmem,
                    w->raddr + roff2, half};
  CHECK_EQ_INT(run(w, s, 1), 0);
  CHECK_EQ_INT(c.dtoh(back, dp + OFF, LEN), 0);
  CHECK(memcmp(back, pat, half) == 0); /* the first half untouched */
  size_t bad = 0;
  for (uint64_t i = half; i < LEN; i++)
    bad += back[i] != 0x5A;
  CHECK_MSG(bad == 0, "%zu bytes wrong after the read", bad);
  /* Host memory -> remote CUDA (the remote range crosses the target's
   * 8 MiB chunk boundary) and back into our CUDA memory. */
  const uint64_t roff3 = (8u << 20) - 65536 - 11;
  fill_rand(w->lbuf, 3 * 65536);
  s[0] = mk(w, MC_OP_WRITE, 0, roff3, 3 * 65536, 2);
  CHECK_EQ_INT(run(w, s, 1), 0);
  CHECK_EQ_U64(tcmd('C', roff3, 3 * 65536, 0), fnv(w->lbuf, 3 * 65536));
  s[0] = (mc_slice){w->next_token++, MC_OP_READ, 3, mem, d.addr + 5, w->rmem, w->raddr + roff3,
                    3 * 65536};
  CHECK_EQ_INT(run(w, s, 1), 0);
  CHECK_EQ_INT(c.dtoh(back, dp + OFF + 5, 3 * 65536), 0);
  CHECK(memcmp(back, w->lbuf, 3 * 65536) == 0);
  CHECK_OK(w->n.ops->deregister_mem(w->n.ctx, mem));
  CHECK_EQ_INT(open_fds(), fds0);
  printf("cudamem: CUDA<->CUDA and host<->CUDA over 4 rails through dma-buf MRs; bytes intact\n");

  /* The export refuses what is not inside one allocation of its own. */
  const size_t pg = 4096;
  int fd = -1;
  CHECK_EQ_INT(c.handle(&fd, dp + ALLOC - pg, 2 * pg, 1, 0), 1); /* past the end */
  CHECK_EQ_INT(c.handle(&fd, (cu_ptr)(uintptr_t)w->lbuf, pg, 1, 0), 1); /* host memory */
  CHECK_EQ_INT(c.handle(&fd, dp + 512, pg, 1, 0), 1);                    /* not page aligned */
  CHECK_EQ_INT(fd, -1);
  CHECK_EQ_INT(c.handle(&fd, dp + pg, pg, 1, 0), 0);
  CHECK(fd >= 0);
  close(fd);
  /* ... and the plugin turns that into MC_ENOTSUP with the reason. */
  d.addr = dp + ALLOC - pg;
  d.len = 2 * pg;
  kl = sizeof key;
  CHECK_RC(w->n.ops->register_mem(w->n.ctx, &d, &mem, key, &kl), MC_ENOTSUP);
  CHECK_HAS(w->n.h.last_warn, "CUresult 1");
  printf("cudamem: a range past its allocation: MC_ENOTSUP, logged \"%s\"\n", w->n.h.last_warn);
  d.addr = (uintptr_t)w->lbuf;
  d.len = 65536;
  kl = sizeof key;
  CHECK_RC(w->n.ops->register_mem(w->n.ctx, &d, &mem, key, &kl), MC_ENOTSUP);
  CHECK_HAS(w->n.h.last_warn, "CUresult 1");
  CHECK_EQ_INT(open_fds(), fds0);
  free(pat);
  free(back);
  CHECK_EQ_INT(c.free(dp), 0);
  dlclose(c.dl);
}

static uint64_t clk(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU of this process's threads by role, from /proc/self/task/N/schedstat
 * (ns on CPU) and comm: the calling thread (submit and wait), the
 * plugin's CQ threads (rd-cq:N), the soft NICs' engines (sv-engine: the
 * "hardware", not counted), the rest (async, fixer, control threads). */
typedef struct tcpu {
  uint64_t main, cq, engine, other;
} tcpu;

static void thread_cpu(tcpu *t) {
  memset(t, 0, sizeof *t);
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return;
  struct dirent *e;
  long me = (long)getpid();
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char p[300], comm[32] = "";
    unsigned long long ns = 0;
    snprintf(p, sizeof p, "/proc/self/task/%s/schedstat", e->d_name);
    FILE *f = fopen(p, "r");
    if (!f)
      continue;
    int ok = fscanf(f, "%llu", &ns) == 1;
    fclose(f);
    snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
    if ((f = fopen(p, "r"))) {
      if (!fgets(comm, sizeof comm, f))
        comm[0] = '\0';
      fclose(f);
    }
    if (!ok)
      continue;
    if (atol(e->d_name) == me)
      t->main += ns;
    else if (!strncmp(comm, "rd-cq:", 6))
      t->cq += ns;
    else if (!strncmp(comm, "sv-engine", 9))
      t->engine += ns;
    else
      t->other += ns;
  }
  closedir(d);
}

static void print_result(const char *what, const bench_result *r) {
  printf("bench: %-30s %8.0f slices/s  CPU %5.0f ns/slice (posting %4.0f)  batch latency "
         "p50 %6.1f us p99 %6.1f us\n", what, (double)r->slices * 1e9 / (double)r->wall_ns,
         (double)r->cpu_ns / (double)r->slices, (double)r->post_ns / (double)r->slices,
         r->p50_ns / 1e3, r->p99_ns / 1e3);
}

/* CPU per slice posted and completed: the plugin (submit, chaining,
 * signaling, CQ thread, completion) against raw verbs on the same device.
 * CPU = this process's CPU time minus the soft NICs' engine threads (the
 * "hardware"); the target process's is not counted (an RDMA target spends
 * none). */
typedef struct plugin_pass {
  bench_result r;
  tcpu t; /* per thread class, ns over the pass */
  double posts_per_batch;
} plugin_pass;

/* One pass of nb batches of BENCH_BATCH slices through the plugin. */
#define BENCH_BATCH 64
static void plugin_pass_run(world *w, uint32_t nb, uint32_t len, uint64_t *lat, plugin_pass *out) {
  mc_slice s[BENCH_BATCH];
  tcpu t0, t1;
  thread_cpu(&t0);
  uint64_t posts0 = w->posts();
  uint64_t cpu0 = clk(CLOCK_PROCESS_CPUTIME_ID), eng0 = w->engine_cpu(),
           w0 = clk(CLOCK_MONOTONIC), post = 0;
  for (uint32_t b = 0; b < nb; b++) {
    for (uint32_t i = 0; i < BENCH_BATCH; i++)
      s[i] = mk(w, MC_OP_WRITE, (uint64_t)i * len, (uint64_t)i * len, len, i % NNIC);
    uint64_t t = clk(CLOCK_MONOTONIC);
    rt_expect(&w->n, s[0].token, s[BENCH_BATCH - 1].token + 1);
    uint64_t before = w->n.done, p0 = clk(CLOCK_THREAD_CPUTIME_ID);
    CHECK_OK(rt_submit_all(&w->n, w->ep, s, BENCH_BATCH, 10000));
    post += clk(CLOCK_THREAD_CPUTIME_ID) - p0;
    CHECK(rt_wait_done(&w->n, before + BENCH_BATCH, 10000) == 0);
    lat[b] = clk(CLOCK_MONOTONIC) - t;
  }
  for (uint32_t i = 0; i < BENCH_BATCH; i++)
    CHECK_EQ_INT(w->n.status[s[i].token], 0);
  memset(out, 0, sizeof *out);
  out->r = (bench_result){(uint64_t)nb * BENCH_BATCH, clk(CLOCK_MONOTONIC) - w0,
                          clk(CLOCK_PROCESS_CPUTIME_ID) - cpu0 - (w->engine_cpu() - eng0), 0, 0,
                          post};
  thread_cpu(&t1);
  out->t = (tcpu){t1.main - t0.main, t1.cq - t0.cq, t1.engine - t0.engine, t1.other - t0.other};
  out->posts_per_batch = (double)(w->posts() - posts0) / nb;
  bench_percentiles(lat, nb, &out->r);
}

/* CPU per slice posted and completed: the plugin (submit, chaining,
 * signaling, completion threads, completion) against raw verbs striped
 * over the same soft NICs the same way.  CPU = this process's CPU time
 * minus the soft NICs' engine threads (the "hardware": their copies, CQ
 * pushes, events); the target process's is not counted (an RDMA target
 * spends none).  The box may be loaded: ROUNDS alternating plugin and raw
 * passes, and the least CPU of each is compared (load only adds). */
static void mode_bench(world *w, uint32_t nslices, uint32_t len) {
  enum { ROUNDS = 5 };
  uint32_t nb = nslices / BENCH_BATCH / ROUNDS;
  if (nb < 10)
    nb = 10;
  uint64_t *lat = calloc(nb, sizeof *lat);
  CHECK(lat != NULL);
  uint32_t nnic = bench_1qp ? 1 : NNIC;
  plugin_pass p, best;
  bench_result raw, best_raw;
  plugin_pass_run(w, nb / 5 + 1, len, lat, &p); /* warm-up: QPs built, caches warm */
  char rounds[256] = "";
  for (int k = 0; k < ROUNDS; k++) {
    plugin_pass_run(w, nb, len, lat, &p);
    memset(&raw, 0, sizeof raw);
    CHECK_OK(bench_raw(svlib, nb * BENCH_BATCH, BENCH_BATCH, len, nnic, w->engine_cpu, &raw));
    if (!k || p.r.cpu_ns < best.r.cpu_ns)
      best = p;
    if (!k || raw.cpu_ns < best_raw.cpu_ns)
      best_raw = raw;
    snprintf(rounds + strlen(rounds), sizeof rounds - strlen(rounds), "%s%.0f/%.0f", k ? " " : "",
             (double)p.r.cpu_ns / (double)p.r.slices, (double)raw.cpu_ns / (double)raw.slices);
  }
  char what[64];
  snprintf(what, sizeof what, "plugin, %u B, %s:", len,
           bench_1qp ? "1 rail, 1 QP" : "4 rails x 2 QPs");
  if (getenv("RDMA_BENCH_CQ_THREADS"))
    printf("bench: cq_threads %s\n", getenv("RDMA_BENCH_CQ_THREADS"));
  print_result(what, &best.r);
  double per = (double)best.r.slices;
  printf("bench: plugin CPU by thread, ns/slice: submit+wait %.0f (of which in submit %.0f), "
         "CQ threads %.0f, other %.0f; soft NIC engines %.0f (not counted); %.1f posts per "
         "batch of %d\n",
         (double)best.t.main / per, (double)best.r.post_ns / per, (double)best.t.cq / per,
         (double)best.t.other / per, (double)best.t.engine / per, best.posts_per_batch,
         BENCH_BATCH);
  snprintf(what, sizeof what, "baseline raw verbs, %u B, %u NIC%s:", len, nnic,
           nnic > 1 ? "s" : "");
  print_result(what, &best_raw);
  printf("bench: plugin CPU per slice = %.2fx raw verbs (%.0f ns more per slice); "
         "posting side %.0f ns vs %.0f ns (%.2fx); least of %d rounds (plugin/raw ns: %s)\n",
         (double)best.r.cpu_ns / (double)best_raw.cpu_ns,
         ((double)best.r.cpu_ns - (double)best_raw.cpu_ns) / per,
         (double)best.r.post_ns / per, (double)best_raw.post_ns / (double)best_raw.slices,
         (double)best.r.post_ns / (double)best_raw.post_ns, ROUNDS, rounds);
  free(lat);
}

/* Rails of a node initialized with kv (library added); names joined by
 * ','; init's code returned. */
static int rails_of(const char *const *extra, char *names, size_t cap, rdw_desc *desc) {
  const char *kv[16] = {"library", svlib};
  int k = 2;
  for (; extra && *extra && k < 14; extra++)
    kv[k++] = *extra;
  kv[k] = NULL;
  rt_node n;
  int rc = rt_node_init(&n, plugin, "sel", dir, kv);
  names[0] = '\0';
  if (!rc) {
    mc_rail_info ri[8];
    uint32_t nr = 8;
    CHECK_OK(n.ops->query_rails(n.ctx, ri, &nr));
    for (uint32_t i = 0; i < nr; i++)
      snprintf(names + strlen(names), cap - strlen(names), "%s%s", i ? "," : "", ri[i].name);
    uint8_t d[MC_DESC_MAX];
    size_t dl = sizeof d;
    CHECK_OK(n.ops->local_desc(n.ctx, d, &dl));
    CHECK_OK(rdw_desc_decode(d, dl, desc));
  }
  rt_node_fini(&n);
  return rc;
}

/* Device allow/deny lists, automatic and forced GID index, the rails'
 * MTUs in the descriptor. */
static void mode_select(void) {
  char names[256];
  rdw_desc d;
  CHECK_OK(rails_of(NULL, names, sizeof names, &d));
  CHECK_STR(names, "sv0,sv1,sv2,sv3");
  /* Automatic: the RoCE v2, IPv4-mapped GID (index 1 of the soft NIC). */
  static const uint8_t v4pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  CHECK(memcmp(d.rails[0].gid, v4pre, 12) == 0);
  CHECK_EQ_INT(d.rails[3].mtu, 3); /* IBV_MTU_1024: this side's sv3 */
  CHECK_EQ_INT(d.rails[0].mtu, 5);
  const char *allow[] = {"devices", "sv1, sv3:1", NULL};
  CHECK_OK(rails_of(allow, names, sizeof names, &d));
  CHECK_STR(names, "sv1,sv3");
  const char *deny[] = {"exclude_devices", "sv0", NULL};
  CHECK_OK(rails_of(deny, names, sizeof names, &d));
  CHECK_STR(names, "sv1,sv2,sv3");
  const char *gid0[] = {"gid_index", "0", NULL};
  CHECK_OK(rails_of(gid0, names, sizeof names, &d));
  CHECK(d.rails[0].gid[0] == 0xfe && d.rails[0].gid[1] == 0x80); /* link-local, v1 */
  const char *gidbad[] = {"gid_index", "9", NULL};
  CHECK_RC(rails_of(gidbad, names, sizeof names, &d), MC_EINVAL);
  const char *none[] = {"devices", "mlx5_7", NULL};
  CHECK_RC(rails_of(none, names, sizeof names, &d), MC_ENODEV);
  const char *mtu[] = {"mtu", "2048", NULL};
  CHECK_OK(rails_of(mtu, names, sizeof names, &d));
  CHECK_EQ_INT(d.rails[0].mtu, 4); /* capped by the key */
  printf("select: allow/deny lists, GID auto (v2 IPv4-mapped) and forced, MTU cap: ok\n");
}

/* Both engines open an endpoint to each other at the same moment (each
 * side's connect calls into the other's ctrl_handle while its own is
 * being called), then each writes into the other. */
static void mode_simopen(world *w) {
  uint8_t my[MC_DESC_MAX];
  size_t ml = sizeof my;
  CHECK_OK(w->n.ops->local_desc(w->n.ctx, my, &ml));
  uint64_t addr = (uintptr_t)w->lbuf;
  tcmd_send('S', 0, 65536);
  xwrite(p2c[1], &ml, sizeof ml);
  xwrite(p2c[1], my, ml);
  xwrite(p2c[1], &w->lkey_len, sizeof w->lkey_len);
  xwrite(p2c[1], w->lkey, w->lkey_len);
  xwrite(p2c[1], &addr, 8);
  void *ep2 = NULL, *rm2 = NULL;
  CHECK_OK(w->n.ops->connect(w->n.ctx, "target", w->desc, w->desc_len, &ep2));
  CHECK_OK(w->n.ops->import_mem(w->n.ctx, ep2, w->raddr, BUF, w->rkey, w->rkey_len, &rm2));
  uint64_t r;
  xread(c2p[0], &r, 8);
  CHECK_RC((int)(int64_t)r, 0);
  /* The target's bytes (0xAB) landed in ours. */
  for (int i = 0; i < 65536; i++)
    CHECK_MSG(w->lbuf[i] == 0xAB, "byte %d is 0x%02x", i, w->lbuf[i]);
  fill_rand(w->lbuf + 65536, 65536);
  mc_slice s = {w->next_token++, MC_OP_WRITE, 3, w->lmem, (uintptr_t)w->lbuf + 65536, rm2,
                w->raddr + 65536, 65536};
  void *ep1 = w->ep;
  w->ep = ep2;
  CHECK_EQ_INT(run(w, &s, 1), 0);
  w->ep = ep1;
  CHECK_EQ_U64(tcmd('C', 65536, 65536, 0), fnv(w->lbuf + 65536, 65536));
  CHECK_OK(w->n.ops->release_mem(w->n.ctx, rm2));
  CHECK_OK(w->n.ops->disconnect(w->n.ctx, ep2));
  printf("simopen: both sides connected at once and wrote into each other\n");
}

/* The host's own libibverbs.so.1 (the default `library`): on a host without
 * an RDMA device (or without rdma-core) init fails MC_ENODEV with one line
 * naming the library; on a host with one, this test has nothing to say. */
static void mode_realverbs(void) {
  rt_node n;
  const char *kv[] = {NULL};
  int rc = rt_node_init(&n, plugin, "real", dir, kv);
  if (rc == 0) {
    rt_node_fini(&n);
    tu_rmtree(dir);
    SKIP("this host has an RDMA device: the no-device path is not exercised here");
  }
  CHECK_RC(rc, MC_ENODEV);
  CHECK_EQ_INT(n.h.nlogs, 1);
  CHECK_HAS(n.h.last_warn, "libibverbs.so.1");
  printf("realverbs: %s\n", n.h.last_warn);
  rt_node_fini(&n);
}

static int mode_enodev(void) {
  rt_node n;
  const char *kv[] = {"library", "/nonexistent/libibverbs.so.1", NULL};
  int rc = rt_node_init(&n, plugin, "init", dir, kv);
  CHECK_RC(rc, MC_ENODEV);
  CHECK_EQ_INT(n.h.nlogs, 1);
  CHECK_HAS(n.h.last_warn, "/nonexistent/libibverbs.so.1");
  printf("enodev: %s\n", n.h.last_warn);
  rt_node_fini(&n);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PLUGIN SOFTVERBS MODE\n", argv[0]);
    return 2;
  }
  plugin = argv[1];
  svlib = argv[2];
  mode = argv[3];
  CHECK_OK(tu_mkdtemp(dir, sizeof dir, "rdma"));
  char conf[512], line[1024];
  snprintf(conf, sizeof conf, "%s/sv.conf", dir);
  FILE *f = NULL;
  /* Two configs: the target's sv1 and the initiator's sv3 have a 1024-byte
   * MTU, so both directions of the MTU negotiation are exercised (the soft
   * NIC drops packets above the receiving port's MTU). */
  char tconf[512];
  snprintf(tconf, sizeof tconf, "%s/sv-target.conf", dir);
  for (int side = 0; side < 2; side++) {
    f = fopen(side ? tconf : conf, "w");
    CHECK(f != NULL);
    fprintf(f, "fabric %s/fabric\n", dir);
    for (int i = 0; i < NNIC; i++) {
      int small = side ? i == 1 : i == 3;
      snprintf(line, sizeof line, "nic sv%d numa=%d pci=0000:%02x:00.0 mtu=%d max_mr_size=%u\n",
               i, i / 2, 0x3b + 0x23 * i, small ? 1024 : 4096,
               i == 0 ? (8u << 20) : (1u << 30));
      fputs(line, f);
    }
    fclose(f);
  }
  setenv("SOFTVERBS_CONFIG", conf, 1);
  if (!strcmp(mode, "realverbs")) {
    unsetenv("SOFTVERBS_CONFIG");
    mode_realverbs();
    tu_rmtree(dir);
    return mc_check_exit_status();
  }
  if (!strcmp(mode, "select")) {
    mode_select();
    tu_rmtree(dir);
    return mc_check_exit_status();
  }
  if (!strcmp(mode, "enodev")) {
    mode_enodev();
    tu_rmtree(dir);
    return mc_check_exit_status();
  }
  static char cudakv[300];
  if (!strcmp(mode, "cudamem")) {
    CHECK_MSG(argc > 4, "cudamem needs the fake CUDA driver's path");
    cudalib = argv[4];
    snprintf(cudakv, sizeof cudakv, "%s", cudalib);
    /* Both sides: the target registers CUDA memory too. */
    extra_kv[0] = "cuda_library";
    extra_kv[1] = cudakv;
  }
  CHECK(pipe(p2c) == 0 && pipe(c2p) == 0);
  child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    setenv("SOFTVERBS_CONFIG", tconf, 1);
    close(p2c[1]);
    close(c2p[0]);
    _exit(target_main());
  }
  close(p2c[0]);
  close(c2p[1]);
  if (!strcmp(mode, "evict"))
    max_eps = "1";
  static char nocuda[300];
  if (!strcmp(mode, "cuda")) {
    const char *drv = getenv("RDMA_TEST_CUDA_LIBRARY");
    if (drv)
      snprintf(nocuda, sizeof nocuda, "%s", drv);
    else
      snprintf(nocuda, sizeof nocuda, "%s/no-such-dir/libcuda.so.1", dir);
    extra_kv[0] = "cuda_library";
    extra_kv[1] = nocuda;
  }
  if (!strcmp(mode, "bench")) {
    busy_poll = "0"; /* CPU measured without spinning, as the baseline */
    if (argc > 6 && !strcmp(argv[6], "1qp")) {
      /* Like the baseline: one NIC, one QP, one completion per chain. */
      static const char *one[] = {"devices", "sv0", "qps_per_peer", "1", "signal_every", "64",
                                  NULL};
      memcpy(extra_kv, one, sizeof one);
      bench_1qp = 1;
    }
    /* RDMA_BENCH_CQ_THREADS: compare completion thread layouts. */
    if (getenv("RDMA_BENCH_CQ_THREADS")) {
      int k = 0;
      while (extra_kv[k])
        k++;
      extra_kv[k] = "cq_threads";
      extra_kv[k + 1] = getenv("RDMA_BENCH_CQ_THREADS");
    }
  }
  world w;
  world_up(&w);
  int quit = 1;
  if (!strcmp(mode, "data"))
    mode_data(&w);
  else if (!strcmp(mode, "stripe"))
    mode_stripe(&w);
  else if (!strcmp(mode, "failover"))
    mode_failover(&w);
  else if (!strcmp(mode, "rkey"))
    mode_rkey(&w);
  else if (!strcmp(mode, "notify"))
    mode_notify(&w);
  else if (!strcmp(mode, "faults"))
    mode_faults(&w);
  else if (!strcmp(mode, "bench"))
    mode_bench(&w, argc > 4 ? (uint32_t)atoi(argv[4]) : 200000,
               argc > 5 ? (uint32_t)atoi(argv[5]) : 64);
  else if (!strcmp(mode, "simopen"))
    mode_simopen(&w);
  else if (!strcmp(mode, "evict"))
    mode_evict(&w, w.desc, w.desc_len);
  else if (!strcmp(mode, "lazy")) {
    mode_lazy(&w);
    quit = 0; /* it killed the target */
  }
  else if (!strcmp(mode, "gid"))
    mode_gid(&w);
  else if (!strcmp(mode, "cuda"))
    mode_cuda(&w);
  else if (!strcmp(mode, "cudamem"))
    mode_cudamem(&w);
  else if (!strcmp(mode, "peerkill")) {
    mode_peerkill(&w);
    quit = 0;
  } else
    CHECK_MSG(0, "unknown mode %s", mode);
  world_down(&w, quit);
  if (child > 0) {
    int st = 0;
    waitpid(child, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target exited with status %d", st);
  }
  tu_rmtree(dir);
  return mc_check_exit_status();
}
