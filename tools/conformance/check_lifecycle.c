/* mc-transport-conformance: teardown -- fini with transfers in flight, a
 * target that goes away, what init..fini cycles leak, load/unload/reload. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

void check_fini_inflight(const plugin *p, uint8_t *abuf, reg *ra, tctx *a) {
  /* An initiator ctx torn down with transfers in flight. */
  tctx c;
  if (ctx_init(p, &c, "conf-c:3")) {
    fail("fini.inflight", "init of a third context failed");
    return;
  }
  uint8_t *cbuf = malloc(BUF_SIZE);
  reg rc_;
  void *ep = NULL, *rm = NULL;
  if (do_register(p, &c, cbuf, BUF_SIZE, &rc_) ||
      p->ops->connect(c.ctx, a->host.name, a->desc, a->desc_len, &ep) ||
      p->ops->import_mem(c.ctx, ep, (uint64_t)(uintptr_t)abuf, BUF_SIZE, ra->rkey, ra->rkey_len, &rm)) {
    fail("fini.inflight", "setup failed");
    ctx_fini(&c);
    free(cbuf);
    return;
  }
  uint32_t nr = rail_count(p, c.ctx);
  uint64_t t0;
  uint32_t n = flood(p, c.ctx, ep, rc_.mem, cbuf, rm, abuf, nr, 400, &t0);
  sleep_ms(5);
  int64_t t = now_ms();
  int rc = ctx_fini(&c);
  int64_t took = now_ms() - t;
  uint64_t strays_before = T.strays, doubles_before = T.doubles;
  sleep_ms(100);
  int ok_n, err_n;
  if (rc)
    fail("fini.inflight", "fini returned %s", mc_errname(rc));
  else if (exactly_once(t0, n, &ok_n, &err_n) || T.doubles != doubles_before ||
           T.strays != strays_before)
    fail("fini.inflight", "not every accepted slice completed exactly once by fini");
  else
    pass("fini.inflight", "%u accepted: %d done, %d failed/canceled, fini took %" PRId64 " ms", n,
         ok_n, err_n, took);
  free(cbuf);
}

/* The target dies (fini) while a peer has transfers in flight to it. */
void check_target_gone(const plugin *p) {
  if (skip_listed("peer.gone")) {
    skip("peer.gone.after", "runs after peer.gone (skipped)");
    return;
  }
  tctx a, c;
  if (ctx_init(p, &a, "conf-t:4")) {
    fail("peer.gone", "init failed");
    return;
  }
  if (ctx_init(p, &c, "conf-i:5")) {
    fail("peer.gone", "init failed");
    ctx_fini(&a);
    return;
  }
  uint8_t *abuf = target_alloc(BUF_SIZE), *cbuf = malloc(BUF_SIZE);
  if (!abuf || !cbuf) {
    fail("peer.gone", "cannot allocate the buffers");
    ctx_fini(&a);
    ctx_fini(&c);
    target_free(abuf);
    free(cbuf);
    return;
  }
  reg ra, rc_;
  void *ep = NULL, *rm = NULL;
  uint32_t nr = rail_count(p, c.ctx);
  if (do_register(p, &a, abuf, BUF_SIZE, &ra) || do_register(p, &c, cbuf, BUF_SIZE, &rc_) ||
      p->ops->connect(c.ctx, a.host.name, a.desc, a.desc_len, &ep) ||
      p->ops->import_mem(c.ctx, ep, (uint64_t)(uintptr_t)abuf, BUF_SIZE, ra.rkey, ra.rkey_len, &rm)) {
    fail("peer.gone", "setup failed");
  } else {
    uint64_t t0;
    uint32_t n = flood(p, c.ctx, ep, rc_.mem, cbuf, rm, abuf, nr, 400, &t0);
    sleep_ms(5);
    ctx_fini(&a);
    int64_t t = now_ms();
    int w = wait_tokens(t0, n, 30000);
    int64_t took = now_ms() - t;
    int ok_n = 0, err_n = 0;
    if (w)
      fail("peer.gone", "slices still pending 30 s after the target went away");
    else if (exactly_once(t0, n, &ok_n, &err_n))
      fail("peer.gone", "a slice completed more than once");
    else
      pass("peer.gone", "%u slices: %d done, %d failed, all within %" PRId64 " ms", n, ok_n, err_n,
           took);
    /* Still usable afterwards: a new slice fails cleanly, no hang. */
    uint64_t t1 = tokens(1);
    mc_slice s = {t1, MC_OP_READ, 0, rc_.mem, (uint64_t)(uintptr_t)cbuf, rm,
                  (uint64_t)(uintptr_t)abuf, 4096};
    uint32_t acc = 0;
    int rc = p->ops->submit(c.ctx, ep, &s, 1, &acc);
    if (acc == 1 && wait_tokens(t1, 1, 30000))
      fail("peer.gone.after", "slice to a dead peer never completed");
    else if (acc == 1 && T.c[t1].status == 0)
      fail("peer.gone.after", "read from a dead peer succeeded");
    else
      pass("peer.gone.after", "new slice to the dead peer: %s",
           acc ? mc_errname(T.c[t1].status) : mc_errname(rc));
  }
  ctx_fini(&a);
  ctx_fini(&c);
  target_free(abuf);
  free(cbuf);
}

/* ---- what init..fini leaves behind ---------------------------------------
 *
 * Whole lifecycles -- two contexts, registrations, an endpoint, an import,
 * transfers (and a notification), then teardown -- repeated: two warm-up
 * cycles (lazy one-time setup in libc or the plugin), then LEAK_CYCLES
 * measured ones.  A resource leaks when it grew in every measured cycle:
 * that is what fini forgetting something looks like, while a one-off
 * allocation or a count that merely wobbles is not.  Heap bytes and blocks
 * and mapped bytes come from this program's own malloc/mmap (see
 * "allocation accounting"); fds and threads from /proc/self. */
#define LEAK_CYCLES 4
#define LEAK_BUF ((size_t)1 << 20)

/* One lifecycle.  keep: leave the endpoint, the import, the registrations
 * and slices in flight for fini to release.  0, or -1 with why set. */
static int leak_cycle(const plugin *p, int keep, uint8_t *abuf, uint8_t *bbuf, char *why,
                      size_t wn) {
  tctx a, b;
  int rc;
  if ((rc = ctx_init(p, &a, "conf-la:7"))) {
    snprintf(why, wn, "init: %s", mc_errname(rc));
    return -1;
  }
  if ((rc = ctx_init(p, &b, "conf-lb:8"))) {
    snprintf(why, wn, "init: %s", mc_errname(rc));
    ctx_fini(&a);
    return -1;
  }
  pair x = {.p = p, .a = &a, .b = &b, .abuf = abuf, .bbuf = bbuf};
  x.nrails = rail_count(p, b.ctx);
  int ok = 0, err = 0;
  if ((rc = do_register(p, &a, abuf, LEAK_BUF, &x.ra)) ||
      (rc = do_register(p, &b, bbuf, LEAK_BUF, &x.rb)))
    snprintf(why, wn, "register_mem: %s", mc_errname(rc));
  else if ((rc = p->ops->connect(b.ctx, a.host.name, a.desc, a.desc_len, &x.ep)) ||
           (rc = p->ops->import_mem(b.ctx, x.ep, (uint64_t)(uintptr_t)abuf, LEAK_BUF, x.ra.rkey,
                                    x.ra.rkey_len, &x.rmem)))
    snprintf(why, wn, "connect/import_mem: %s", mc_errname(rc));
  else if (xfer(&x, MC_OP_WRITE, 0, 0, 256 << 10, 64 << 10, &err) ||
           xfer(&x, MC_OP_READ, 256 << 10, 256 << 10, 256 << 10, 64 << 10, &err))
    snprintf(why, wn, "transfer: %s", mc_errname(err));
  else
    ok = 1;
  if (ok && (p->ops->caps & MC_CAP_NOTIFY)) {
    pthread_mutex_lock(&T.lock);
    int before = T.notifies;
    pthread_mutex_unlock(&T.lock);
    p->ops->send_notify(b.ctx, x.ep, "leak", 4);
    for (int64_t end = now_ms() + 5000; now_ms() < end;) {
      pthread_mutex_lock(&T.lock);
      int got = T.notifies > before;
      pthread_mutex_unlock(&T.lock);
      if (got)
        break;
      sleep_ms(1);
    }
  }
  if (ok && keep) {
    /* Slices in flight when fini comes; each still completes once. */
    uint32_t n = 32;
    mc_slice s[32];
    uint64_t t0 = tokens(n);
    for (uint32_t i = 0; i < n; i++)
      s[i] = (mc_slice){t0 + i, i % 2 ? MC_OP_WRITE : MC_OP_READ, i % x.nrails, x.rb.mem,
                        (uint64_t)(uintptr_t)bbuf + i * 16384u, x.rmem,
                        (uint64_t)(uintptr_t)abuf + i * 16384u, 16384};
    uint32_t acc = 0;
    p->ops->submit(b.ctx, x.ep, s, n, &acc);
    ctx_fini(&b);
    int ok_n, err_n;
    if (wait_tokens(t0, acc, 1000) || exactly_once(t0, acc, &ok_n, &err_n)) {
      snprintf(why, wn, "fini left accepted slices without exactly one completion");
      ok = 0;
    }
  }
  if (!keep) {
    if (x.rmem)
      p->ops->release_mem(b.ctx, x.rmem);
    if (x.ep)
      p->ops->disconnect(b.ctx, x.ep);
    if (x.rb.mem)
      p->ops->deregister_mem(b.ctx, x.rb.mem);
    if (x.ra.mem)
      p->ops->deregister_mem(a.ctx, x.ra.mem);
  }
  ctx_fini(&b);
  ctx_fini(&a);
  return ok ? 0 : -1;
}

void check_leaks(const plugin *p, int keep) {
  const char *name = keep ? "lifecycle.fini_releases" : "lifecycle.leaks";
  if (skip_listed(name))
    return;
  uint8_t *abuf = target_alloc(LEAK_BUF), *bbuf = calloc(1, LEAK_BUF);
  if (!abuf || !bbuf) {
    fail(name, "cannot allocate the buffers");
    target_free(abuf);
    free(bbuf);
    return;
  }
  memset(abuf, 0, LEAK_BUF);
  char why[256] = "";
  usage u0, u1;
  long long grew[5] = {0}, total[5] = {0};
  int cycles_grew[5] = {0};
  for (int c = 0; c < 2 + LEAK_CYCLES; c++) {
    usage_now(&u0);
    if (leak_cycle(p, keep, abuf, bbuf, why, sizeof why)) {
      fail(name, "cycle %d: %s", c + 1, why);
      goto out;
    }
    threads_settle(u0.threads);
    usage_now(&u1);
    if (c < 2)
      continue;
    long long d[5] = {u1.bytes - u0.bytes, u1.blocks - u0.blocks, u1.mapped - u0.mapped,
                      u1.fds - u0.fds, u1.threads - u0.threads};
    for (int i = 0; i < 5; i++) {
      total[i] += d[i];
      if (d[i] > 0) {
        cycles_grew[i]++;
        grew[i] = grew[i] == 0 || d[i] < grew[i] ? d[i] : grew[i];
      }
    }
  }
  static const char *what[5] = {"heap bytes", "heap blocks", "mapped bytes", "fds", "threads"};
  char msg[512] = "";
  size_t off = 0;
  for (int i = 0; i < 5; i++)
    if (cycles_grew[i] == LEAK_CYCLES && total[i] > 0)
      off += (size_t)snprintf(msg + off, off < sizeof msg ? sizeof msg - off : 0,
                              "%s%lld %s (at least %lld per cycle)", off ? ", " : "",
                              total[i], what[i], grew[i]);
  const char *teardown = keep ? "fini alone (nothing released first, slices in flight)"
                              : "release, disconnect, deregister, fini";
  if (msg[0])
    fail(name, "%d init..fini cycles with %s left behind %s", LEAK_CYCLES, teardown, msg);
  else
#ifdef CONF_ACCOUNTING
    pass(name, "%d cycles with %s after 2 warm-up ones: no heap, mapping, fd or thread growth "
               "(net %lld bytes, %lld mapped, %lld fds, %lld threads)",
         LEAK_CYCLES, teardown, total[0], total[2], total[3], total[4]);
#else
    pass(name, "%d cycles with %s after 2 warm-up ones: no fd or thread growth (heap and "
               "mapping accounting off in this build: sanitizer runtime or not glibc)",
         LEAK_CYCLES, teardown);
#endif
out:
  target_free(abuf);
  free(bbuf);
}

void check_reload(const char *path) {
  int threads0 = count_dir("/proc/self/task"), fds0 = count_dir("/proc/self/fd");
  for (int round = 0; round < 3; round++) {
    int tround = count_dir("/proc/self/task");
    plugin p;
    if (plugin_open(path, &p, 1)) {
      fail("reload", "round %d: dlopen failed: %s", round, dlerror());
      return;
    }
    tctx a;
    int rc = ctx_init(&p, &a, "conf-r:6");
    if (rc) {
      fail("reload", "round %d: init failed: %s", round, mc_errname(rc));
      dlclose(p.dl);
      return;
    }
    uint8_t *buf = target_alloc(1 << 20);
    if (buf)
      memset(buf, 0, 1 << 20);
    reg r, l;
    void *ep = NULL, *rm = NULL;
    /* In file mode the buffer is a file range to the plugin; its mapping
     * is registered again as host memory for the local side. */
    int ok = buf && !do_register(&p, &a, buf, 1 << 20, &r) &&
             (!file_mode || !do_register_cpu(&p, &a, buf, 1 << 20, &l)) &&
             !p.ops->connect(a.ctx, a.host.name, a.desc, a.desc_len, &ep) &&
             !p.ops->import_mem(a.ctx, ep, (uint64_t)(uintptr_t)buf, 1 << 20, r.rkey, r.rkey_len, &rm);
    if (ok) { /* loop back onto itself: half the buffer into the other half */
      fill_pattern(buf, 4096, (uint32_t)round);
      uint64_t t = tokens(1);
      mc_slice s = {t, MC_OP_WRITE, 0, file_mode ? l.mem : r.mem, (uint64_t)(uintptr_t)buf, rm,
                    (uint64_t)(uintptr_t)buf + (1 << 19), 4096};
      uint32_t acc = 0;
      p.ops->submit(a.ctx, ep, &s, 1, &acc);
      ok = acc == 1 && !wait_tokens(t, 1, WAIT_MS) && T.c[t].status == 0 &&
           !memcmp(buf, buf + (1 << 19), 4096);
    }
    ctx_fini(&a);
    target_free(buf);
    threads_settle(tround);
    int left = count_dir("/proc/self/task") - tround;
    if (left > 0) {
      /* Unloading code that threads still run would crash this program. */
      fail("reload", "round %d: %d thread(s) still running after fini; not unloading the plugin",
           round, left);
      return;
    }
    dlclose(p.dl);
    if (!ok) {
      fail("reload", "round %d: self-transfer failed", round);
      return;
    }
  }
  int threads1 = count_dir("/proc/self/task"), fds1 = count_dir("/proc/self/fd");
  if (threads1 != threads0 || fds1 != fds0)
    fail("reload", "3 load/init/fini/unload rounds leaked: threads %d -> %d, fds %d -> %d",
         threads0, threads1, fds0, fds1);
  else
    pass("reload", "3 rounds of load/init/transfer/fini/unload, no thread or fd left");
}

