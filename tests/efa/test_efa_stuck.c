/* test_efa_stuck.c - deadlines hold while libfabric does not return.
 *
 * A provider call can block for good: libfabric 1.17's shm spins on a
 * lock in the shared region of a peer that was SIGKILLed holding it, and
 * the rail's worker never comes back from fi_read/fi_cq_read.  The plugin
 * must still complete every accepted slice by its deadline, exactly once,
 * and must not touch an op the provider may still own.
 *
 * Deterministic version: a context over the real provider (tcp;ofi_rxm on
 * lo by default) connected to itself; rail 0's fi_read is hooked (the
 * endpoint's RMA ops table, which fi_read calls through) so that it refuses
 * (-FI_EAGAIN) on the submitting thread and blocks on the worker thread
 * until released.  Checks: the slices fail MC_ETIMEDOUT within the
 * deadline while the worker is still blocked; once released (the call
 * returns -FI_EAGAIN: the provider never took the op) nothing completes a
 * second time; with the hook removed, a real read works and fini returns.
 *
 *   test_efa_stuck <mc-transport-efa.so> <provider> [domain]
 * Exit 77 with the reason when the provider is not offered here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efa_ctx.h"
#include "tcp_test_host.h"

#define TIMEOUT_MS 300
#define LEN 65536

static pthread_mutex_t hk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hk_cond = PTHREAD_COND_INITIALIZER;
static int hk_release, hk_inside, hk_returned;
static efa_rail *hk_rail;

static ssize_t stuck_read(struct fid_ep *ep, void *buf, size_t len, void *desc,
                          fi_addr_t src, uint64_t addr, uint64_t key, void *context) {
  (void)ep, (void)buf, (void)len, (void)desc, (void)src, (void)addr, (void)key, (void)context;
  if (!pthread_equal(pthread_self(), hk_rail->thr))
    return -FI_EAGAIN; /* the submitter: leave it queued for the worker */
  pthread_mutex_lock(&hk_lock);
  hk_inside++;
  pthread_cond_broadcast(&hk_cond);
  while (!hk_release)
    pthread_cond_wait(&hk_cond, &hk_lock);
  hk_inside--;
  hk_returned++;
  pthread_cond_broadcast(&hk_cond);
  pthread_mutex_unlock(&hk_lock);
  return -FI_EAGAIN; /* refused after all: the op was never the provider's */
}

int main(int argc, char **argv) {
  CHECK_MSG(argc >= 3, "usage: %s plugin.so provider [domain]", argv[0]);
  char params[512];
  snprintf(params, sizeof params, "provider=%s;timeout_ms=%d;rails=1%s%s", argv[2], TIMEOUT_MS,
           argc > 3 ? ";domain=" : "", argc > 3 ? argv[3] : "");
  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *H = calloc(1, sizeof *H);
  th_host_init(H, "self:1", params);
  mc_init_args a = {sizeof a, "self:1", "127.0.0.1", "test"};
  void *ctx = NULL;
  int rc = ops->init(&H->api, &a, &ctx);
  if (rc == MC_ENODEV || rc == MC_ENOTSUP) {
    printf("SKIP: libfabric provider '%s' not offered on this host: %s\n", argv[2],
           H->fh.last_warn);
    return 77;
  }
  CHECK_MSG(rc == 0, "init: %s", mc_errname(rc));

  uint8_t *buf = malloc(2 * LEN);
  for (size_t i = 0; i < LEN; i++)
    buf[LEN + i] = (uint8_t)(i * 13 + 5);
  memset(buf, 0, LEN);
  uint8_t desc[MC_DESC_MAX], rk[MC_RKEY_MAX];
  size_t dl_len = sizeof desc, rkl = sizeof rk;
  void *mem, *ep, *rmem;
  mc_mem_desc d = {(uint64_t)(uintptr_t)buf, 2 * LEN, MC_MEM_CPU, -1, "cpu:0"};
  CHECK_OK(ops->local_desc(ctx, desc, &dl_len));
  CHECK_OK(ops->register_mem(ctx, &d, &mem, rk, &rkl));
  CHECK_OK(ops->connect(ctx, "self:1", desc, dl_len, &ep));
  CHECK_OK(ops->import_mem(ctx, ep, d.addr, d.len, rk, rkl, &rmem));

  /* The plugin's context, seen through its own header (same build). */
  efa_rail *r = &((efa_ctx *)ctx)->rails[0];
  hk_rail = r;
  struct fi_ops_rma *orig = r->ep->rma, hooked = *orig;
  hooked.read = stuck_read;
  r->ep->rma = &hooked;

  enum { N = 8 };
  mc_slice s[N];
  for (uint32_t i = 0; i < N; i++)
    s[i] = (mc_slice){(uint64_t)i, MC_OP_READ, 0, mem, d.addr, rmem, d.addr + LEN, LEN};
  uint32_t acc = 0;
  CHECK_OK(ops->submit(ctx, ep, s, N, &acc));
  CHECK_MSG(acc == N, "accepted %u of %d", acc, N);
  int64_t t0 = th_now_ms();
  CHECK_MSG(th_wait(H, 0, N, TIMEOUT_MS + 3000) == 0,
            "slices pending while the worker is blocked in a provider call");
  int64_t took = th_now_ms() - t0;
  pthread_mutex_lock(&hk_lock);
  int inside = hk_inside;
  pthread_mutex_unlock(&hk_lock);
  CHECK_MSG(inside == 1, "the worker was not blocked in fi_read (%d)", inside);
  for (uint32_t i = 0; i < N; i++)
    CHECK_MSG(H->status[i] == MC_ETIMEDOUT, "slice %u: %s", i, mc_errname(H->status[i]));
  CHECK_MSG(took <= TIMEOUT_MS + 1000, "failures took %lld ms (deadline %d ms)",
            (long long)took, TIMEOUT_MS);
  printf("ok: %d slices failed MC_ETIMEDOUT in %lld ms while fi_read was blocked\n", N,
         (long long)took);

  /* Release the call: it returns -FI_EAGAIN, the op goes back to the free
   * list, and nothing completes twice. */
  pthread_mutex_lock(&hk_lock);
  hk_release = 1;
  pthread_cond_broadcast(&hk_cond);
  while (!hk_returned)
    pthread_cond_wait(&hk_cond, &hk_lock);
  pthread_mutex_unlock(&hk_lock);
  r->ep->rma = orig;
  th_sleep_ms(100);
  pthread_mutex_lock(&H->lock);
  uint64_t done = H->done, doubles = H->doubles;
  pthread_mutex_unlock(&H->lock);
  CHECK_MSG(doubles == 0 && done == N, "after the release: %llu completions, %llu doubles",
            (unsigned long long)done, (unsigned long long)doubles);
  pthread_mutex_lock(&r->lock);
  uint32_t posted = r->posted.n, queued = r->queued.n, abandoned = r->abandoned;
  pthread_mutex_unlock(&r->lock);
  CHECK_MSG(posted == 0 && queued == 0 && abandoned == 0,
            "ops left: %u posted, %u queued, %u abandoned", posted, queued, abandoned);
  printf("ok: released call refused, op freed, no second completion\n");

  /* The rail still works. */
  s[0].token = N;
  CHECK_OK(ops->submit(ctx, ep, s, 1, &acc));
  CHECK_MSG(acc == 1 && th_wait(H, N, 1, 5000) == 0, "read after the release never completed");
  CHECK_MSG(H->status[N] == 0, "read after the release: %s", mc_errname(H->status[N]));
  CHECK_MSG(!memcmp(buf, buf + LEN, LEN), "read after the release: bytes differ");
  CHECK_MSG(H->doubles == 0, "double completion");
  printf("ok: a read after the release moved the bytes\n");

  ops->release_mem(ctx, rmem);
  ops->disconnect(ctx, ep);
  ops->deregister_mem(ctx, mem);
  CHECK_MSG(ops->fini(ctx) == 0, "fini");
  th_host_fini(H);
  free(H);
  free(buf);
  printf("PASS\n");
  return 0;
}
