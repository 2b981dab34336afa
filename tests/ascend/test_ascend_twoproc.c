/* The ascend plugin's own code between two processes over the fake CANN
 * runtime (fake_acl.c).  The target exports NPU memory with the runtime's
 * pid whitelist on (pid_check); the initiator's import asks the target to
 * whitelist it over the control channel -- here the initiator's
 * mc_host_api.ctrl_call is relayed through a pipe to the target's
 * ctrl_handle, as the core would carry it -- then reads and writes the
 * buffer from its own NPU memory (device to device) and from host memory
 * (the plugin names each direction; the fake refuses a wrong one), bytes
 * checked on both sides.  Also: a refused whitelist, hostile control
 * requests, query_mem, bounds, back-pressure, disconnect and fini with
 * copies in flight, aclInit/aclFinalize balanced and nothing left mapped.
 * argv[1] = mc-transport-ascend.so, argv[2] = libmc-fake-ascendcl.so. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ascend_blob.h"
#include "shm_harness.h"

#define LEN (1u << 20)
#define OFF 4096

static struct {
  void *dl;
  int (*npu_malloc)(void **, size_t, int);
  int (*npu_free)(void *);
  int (*allocs)(void);
  int (*inits)(void);
} fk;

static void fake_bind(const char *path) {
  fk.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* held: counters outlive fini */
  CHECK_MSG(fk.dl, "%s", dlerror());
  *(void **)&fk.npu_malloc = dlsym(fk.dl, "aclrtMalloc");
  *(void **)&fk.npu_free = dlsym(fk.dl, "aclrtFree");
  *(void **)&fk.allocs = dlsym(fk.dl, "fake_acl_allocs");
  *(void **)&fk.inits = dlsym(fk.dl, "fake_acl_inits");
  CHECK(fk.npu_malloc && fk.npu_free && fk.allocs && fk.inits);
}

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed + i * 29 + (i >> 10));
}

static int same(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed + i * 29 + (i >> 10)))
      return 0;
  return 1;
}

static void *npu_alloc(size_t n) {
  void *p = NULL;
  CHECK_EQ_INT(fk.npu_malloc(&p, n, 0), 0);
  return p;
}

static int reg(h_plugin *h, void *addr, uint64_t len, uint32_t kind, int32_t dev, void **mem,
               uint8_t *rkey, size_t *rkey_len) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, kind, dev, kind == MC_MEM_NPU ? "npu:0" : "cpu:0"};
  *rkey_len = MC_RKEY_MAX;
  return h->ops->register_mem(h->ctx, &d, mem, rkey, rkey_len);
}

/* ---- target (child) ---- */

static int target(const char *so, const char *fake, int rd, int wr) {
  h_plugin h;
  h_load(&h, so);
  h_opt(&h, "library", fake);
  CHECK_OK(h_init(&h, "asc-target:1"));
  fake_bind(fake);
  uint8_t *npu = npu_alloc(LEN + 2 * OFF);
  fill(npu + OFF, LEN, 5);
  void *mem = NULL;
  uint8_t rkey[MC_RKEY_MAX];
  size_t rkey_len = 0;
  CHECK_OK(reg(&h, npu + OFF, LEN, MC_MEM_NPU, 0, &mem, rkey, &rkey_len));
  uint8_t desc[MC_DESC_MAX];
  size_t dlen = h_desc(&h, desc, sizeof desc);
  uint64_t base = (uint64_t)(uintptr_t)(npu + OFF);
  h_send(wr, desc, (uint32_t)dlen);
  h_send(wr, rkey, (uint32_t)rkey_len);
  h_send(wr, &base, sizeof base);
  /* 'r' + request: answer with ctrl_handle (rc, reply); 'c' seed: check
   * the buffer; 'q': quit. */
  for (;;) {
    uint8_t msg[MC_CTRL_MAX + 1];
    uint32_t n = h_recv(rd, msg, sizeof msg);
    CHECK(n != UINT32_MAX && n >= 1);
    if (msg[0] == 'q')
      break;
    if (msg[0] == 'r') {
      uint8_t out[4 + MC_CTRL_MAX];
      size_t rl = MC_CTRL_MAX;
      int32_t rc = h.ops->ctrl_handle(h.ctx, "asc-initiator:2", msg + 1, n - 1, out + 4, &rl);
      CHECK(rl <= MC_CTRL_MAX);
      memcpy(out, &rc, 4);
      h_send(wr, out, (uint32_t)(4 + rl));
      continue;
    }
    uint8_t ok = (uint8_t)same(npu + OFF, LEN, msg[1]);
    for (size_t i = 0; i < OFF; i++)
      ok &= npu[i] == 0 && npu[OFF + LEN + i] == 0;
    h_send(wr, &ok, 1);
  }
  CHECK_OK(h.ops->deregister_mem(h.ctx, mem));
  h_fini(&h);
  CHECK_EQ_INT(fk.inits(), 0);
  CHECK_EQ_INT(fk.npu_free(npu), 0);
  CHECK_EQ_INT(fk.allocs(), 0);
  h_unload(&h);
  dlclose(fk.dl);
  return mc_check_exit_status();
}

/* ---- initiator (parent) ---- */

static int g_rd, g_wr, g_refuse, g_relayed;

/* The initiator's ctrl_call: carried to the target's ctrl_handle. */
static int relay(void *host, const char *peer, const void *req, size_t req_len, void *resp,
                 size_t *resp_len, uint32_t timeout_ms) {
  (void)host;
  (void)timeout_ms;
  CHECK_STR(peer, "asc-target:1");
  g_relayed++;
  if (g_refuse)
    return MC_EACCES;
  uint8_t msg[1 + MC_CTRL_MAX], in[4 + MC_CTRL_MAX];
  CHECK(req_len >= 1 && req_len <= MC_CTRL_MAX);
  msg[0] = 'r';
  memcpy(msg + 1, req, req_len);
  h_send(g_wr, msg, (uint32_t)(1 + req_len));
  uint32_t n = h_recv(g_rd, in, sizeof in);
  CHECK(n != UINT32_MAX && n >= 4);
  int32_t rc;
  memcpy(&rc, in, 4);
  if (n - 4 > *resp_len)
    return MC_ENOSPC;
  memcpy(resp, in + 4, n - 4);
  *resp_len = n - 4;
  return rc;
}

static void ask(uint8_t seed) {
  uint8_t cmd[2] = {'c', seed}, ok = 0;
  h_send(g_wr, cmd, 2);
  CHECK(h_recv(g_rd, &ok, 1) == 1);
  CHECK_MSG(ok == 1, "the target's buffer does not hold pattern %u", seed);
}

static int initiator(const char *so, const char *fake) {
  uint8_t desc[MC_DESC_MAX], rkey[MC_RKEY_MAX];
  uint64_t base = 0;
  uint32_t dlen = h_recv(g_rd, desc, sizeof desc);
  uint32_t klen = h_recv(g_rd, rkey, sizeof rkey);
  CHECK(dlen != UINT32_MAX && klen != UINT32_MAX);
  CHECK(h_recv(g_rd, &base, sizeof base) == sizeof base);
  asc_key key;
  const char *why = NULL;
  CHECK_EQ_INT(asc_key_decode(rkey, klen, &key, &why), 0);
  CHECK(key.kind == ASC_KEY_IPC && (key.flags & ASC_KEY_F_PID));

  h_plugin h;
  h_load(&h, so);
  h.host.api.ctrl_call = relay;
  h_opt(&h, "library", fake);
  h_opt(&h, "max_inflight", "4");
  CHECK_OK(h_init(&h, "asc-initiator:2"));
  fake_bind(fake);
  CHECK_EQ_INT(fk.inits(), 1);

  uint8_t *npu = npu_alloc(LEN);
  uint8_t *host = malloc(LEN);
  uint32_t kind = 0;
  int32_t dev = -1;
  CHECK_OK(h.ops->query_mem(h.ctx, (uint64_t)(uintptr_t)(npu + 10), 100, &kind, &dev));
  CHECK(kind == MC_MEM_NPU && dev == 0);
  CHECK_RC(h.ops->query_mem(h.ctx, (uint64_t)(uintptr_t)host, 100, &kind, &dev), MC_ENOENT);

  void *nmem = NULL, *hmem = NULL, *bad = NULL;
  uint8_t k2[MC_RKEY_MAX];
  size_t k2len;
  CHECK_RC(reg(&h, npu, LEN, MC_MEM_NPU, 5, &bad, k2, &k2len), MC_EINVAL); /* no NPU 5 */
  CHECK_RC(reg(&h, npu + 8, LEN, MC_MEM_NPU, 0, &bad, k2, &k2len), MC_EIO); /* past its end */
  CHECK_RC(reg(&h, host, LEN, MC_MEM_HIP, 0, &bad, k2, &k2len), MC_ENOTSUP);
  CHECK_OK(reg(&h, npu, LEN, MC_MEM_NPU, 0, &nmem, k2, &k2len));
  CHECK_OK(reg(&h, host, LEN, MC_MEM_CPU, 0, &hmem, k2, &k2len));

  void *ep = NULL, *rmem = NULL;
  for (uint32_t cut = 0; cut < dlen; cut++)
    CHECK_RC(h.ops->connect(h.ctx, "x", desc, cut, &ep), MC_EPROTO);
  CHECK_OK(h.ops->connect(h.ctx, "asc-target:1", desc, dlen, &ep));
  for (uint32_t cut = 0; cut < klen; cut++)
    CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, cut, &rmem), MC_EPROTO);
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, k2, k2len, &rmem), MC_ENOTSUP); /* host key */
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN + 1, rkey, klen, &rmem), MC_ERANGE);

  /* Hostile control requests reach the target's ctrl_handle: refused. */
  uint8_t resp[64];
  size_t rl = sizeof resp;
  CHECK_RC(relay(NULL, "asc-target:1", "junk", 4, resp, &rl, 0), MC_EPROTO);
  asc_allow al = {.tgid = (int32_t)getpid()};
  snprintf(al.ipc_key, sizeof al.ipc_key, "fk:1:2:3"); /* not one of its exports */
  uint8_t req[ASC_ALLOW_SIZE];
  asc_allow_encode(&al, req, sizeof req);
  rl = sizeof resp;
  CHECK_RC(relay(NULL, "asc-target:1", req, sizeof req, resp, &rl, 0), MC_ENOENT);

  /* The exporter refuses (or cannot be reached): no import, nothing mapped. */
  g_refuse = 1;
  int before = g_relayed;
  CHECK_RC(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, klen, &rmem), MC_EACCES);
  CHECK_EQ_INT(g_relayed, before + 1);
  CHECK_EQ_INT(fk.allocs(), 1);
  g_refuse = 0;

  /* Whitelisted over the relay, then imported; a second import of the
   * same buffer reuses the first (no second request). */
  void *rmem2 = NULL;
  CHECK_OK(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, klen, &rmem));
  CHECK_EQ_INT(g_relayed, before + 2);
  CHECK_OK(h.ops->import_mem(h.ctx, ep, base + 8192, 8192, rkey, klen, &rmem2));
  CHECK_EQ_INT(g_relayed, before + 2);
  CHECK_EQ_INT(fk.allocs(), 2);

  memset(npu, 0, LEN);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, nmem, npu, rmem, base, LEN), 0); /* D2D */
  CHECK(same(npu, LEN, 5));
  memset(host, 0, LEN);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem, base, LEN), 0); /* D2H */
  CHECK(same(host, LEN, 5));
  fill(host, LEN, 61);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, hmem, host, rmem, base, LEN), 0); /* H2D */
  ask(61);
  fill(npu, LEN, 83);
  {
    /* 32 slices D2D with max_inflight 4: back-pressure, then all. */
    mc_slice s[32];
    uint64_t seg = LEN / 32;
    for (int i = 0; i < 32; i++)
      s[i] = (mc_slice){900 + (uint64_t)i, MC_OP_WRITE, 0, nmem,
                        (uint64_t)(uintptr_t)(npu + i * seg), rmem, base + i * seg, seg};
    h_clear(&h);
    uint32_t done = 0, first = UINT32_MAX;
    for (int spins = 0; done < 32; spins++) {
      uint32_t acc = 0;
      int rc = h.ops->submit(h.ctx, ep, s + done, 32 - done, &acc);
      CHECK(rc == 0 || (rc == MC_EAGAIN && acc == 0));
      if (first == UINT32_MAX)
        first = acc;
      done += acc;
      if (!acc)
        usleep(1000);
      CHECK(spins < 20000);
    }
    CHECK_MSG(first <= 4, "accepted %u with max_inflight 4", first);
    CHECK(h_wait(&h, 32, 20000) == 0);
    usleep(20000);
    CHECK_EQ_INT(h_ndone(&h), 32);
    for (int i = 0; i < 32; i++) {
      CHECK_EQ_INT(h_count(&h, 900 + (uint64_t)i), 1);
      CHECK_EQ_INT(h_find(&h, 900 + (uint64_t)i)->status, 0);
    }
    h_clear(&h);
  }
  ask(83);
  memset(host, 0, 8192);
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem2, base + 8192, 8192), 0);
  CHECK(!memcmp(host, npu + 8192, 8192));
  CHECK_RC(h_xfer(&h, ep, MC_OP_READ, hmem, host, rmem, base + 1, LEN), MC_ERANGE);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, nmem, npu + 1, rmem, base, LEN), MC_ERANGE);
  CHECK_RC(h_xfer(&h, ep, MC_OP_WRITE, hmem, host, rmem2, base, 16), MC_ERANGE);
  ask(83);

  /* disconnect and fini with copies in flight. */
  {
    mc_slice s[4];
    for (int i = 0; i < 4; i++)
      s[i] = (mc_slice){950 + (uint64_t)i, MC_OP_READ, 0, nmem,
                        (uint64_t)(uintptr_t)(npu + i * (LEN / 4)), rmem,
                        base + (uint64_t)i * (LEN / 4), LEN / 4};
    uint32_t acc = 0;
    h_clear(&h);
    CHECK_OK(h.ops->submit(h.ctx, ep, s, 4, &acc));
    CHECK(acc >= 1);
    CHECK_OK(h.ops->disconnect(h.ctx, ep));
    CHECK_EQ_INT(h_ndone(&h), acc);
    h_clear(&h);
    CHECK_EQ_INT(fk.allocs(), 1);
    CHECK_OK(h.ops->connect(h.ctx, "asc-target:1", desc, dlen, &ep));
    CHECK_OK(h.ops->import_mem(h.ctx, ep, base, LEN, rkey, klen, &rmem));
    for (int i = 0; i < 4; i++)
      s[i].token = 960 + (uint64_t)i, s[i].remote_mem = rmem;
    CHECK_OK(h.ops->submit(h.ctx, ep, s, 4, &acc));
    CHECK(acc >= 1);
    h_fini(&h);
    CHECK_EQ_INT(h_ndone(&h), acc);
    for (uint32_t i = 0; i < acc; i++)
      CHECK_EQ_INT(h_count(&h, 960 + i), 1);
  }
  CHECK_EQ_INT(fk.inits(), 0);
  CHECK_EQ_INT(fk.allocs(), 1);
  CHECK_EQ_INT(fk.npu_free(npu), 0);
  free(host);
  uint8_t q[2] = {'q', 0};
  h_send(g_wr, q, 2);
  h_unload(&h);
  dlclose(fk.dl);
  return mc_check_exit_status();
}

int main(int argc, char **argv) {
  CHECK(argc == 3);
  setenv("FAKE_ACL_COPY_DELAY_US", "2000", 1);
  setenv("FAKE_ACL_DEVICES", "1", 1);
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
  g_rd = to_parent[0];
  g_wr = to_child[1];
  alarm(90);
  int rc = initiator(argv[1], argv[2]);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target exited with status 0x%x", st);
  if (rc == 0)
    printf("PASS: ascend IPC between two processes over the fake runtime\n");
  return rc ? rc : mc_check_exit_status();
}
