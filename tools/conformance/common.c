/* mc-transport-conformance: reporting, the token tracker the host's
 * completions feed, loading the plugin, contexts, registrations and
 * transfers (conformance.h). */
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

/* ---- reporting ---------------------------------------------------------- */

int n_fail, n_pass, n_skip, verbose;

__attribute__((format(printf, 3, 0))) static void report(const char *what, const char *name,
                                                          const char *fmt, va_list ap) {
  printf("%s %s", what, name);
  if (fmt && fmt[0]) {
    printf(": ");
    vprintf(fmt, ap);
  }
  printf("\n");
  fflush(stdout);
}

__attribute__((format(printf, 2, 3))) void pass(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("PASS", name, fmt, ap);
  va_end(ap);
  n_pass++;
}
__attribute__((format(printf, 2, 3))) void fail(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("FAIL", name, fmt, ap);
  va_end(ap);
  n_fail++;
}
__attribute__((format(printf, 2, 3))) void skip(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("SKIP", name, fmt, ap);
  va_end(ap);
  n_skip++;
}

/* MC_CONFORMANCE_SKIP="name,name:reason;name:reason": checks a caller has
 * shown cannot run here (a wrapper that reproduced a provider bug first).
 * Each is reported SKIP with its group's reason, never passed. */
int skip_listed(const char *name) {
  const char *env = getenv("MC_CONFORMANCE_SKIP");
  size_t nl = strlen(name);
  for (const char *g = env; g && *g;) {
    const char *gend = strchr(g, ';');
    size_t glen = gend ? (size_t)(gend - g) : strlen(g);
    const char *colon = memchr(g, ':', glen);
    const char *lend = colon ? colon : g + glen;
    for (const char *q = g; q < lend;) {
      const char *e = memchr(q, ',', (size_t)(lend - q));
      size_t l = e ? (size_t)(e - q) : (size_t)(lend - q);
      if (l == nl && !memcmp(q, name, nl)) {
        if (colon)
          skip(name, "skipped by MC_CONFORMANCE_SKIP: %.*s", (int)(g + glen - colon - 1),
               colon + 1);
        else
          skip(name, "skipped by MC_CONFORMANCE_SKIP (no reason given)");
        return 1;
      }
      q += l + (e ? 1 : 0);
    }
    g += glen + (gend ? 1 : 0);
  }
  return 0;
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* ---- the host API -------------------------------------------------------
 * Each context gets an mc_fake_host (fake_host.h, shared with the tests)
 * whose completions and notifications feed the tracker T. */

tracker T;

/* MC_CONFORMANCE_PARAMS ("k=v;k=v"), read once in main before any plugin
 * runs; every context's host is given these keys. */
static const char *params_env;

void params_load(void) { params_env = getenv("MC_CONFORMANCE_PARAMS"); }

static void t_complete(void *arg, uint64_t token, int status, uint64_t bytes, int32_t verr) {
  (void)arg;
  (void)verr;
  pthread_mutex_lock(&T.lock);
  if (token >= MAX_TOKENS || token >= T.next) {
    T.strays++;
  } else {
    completion *c = &T.c[token];
    if (atomic_load(&c->count) > 0) {
      T.doubles++;
      atomic_fetch_add(&c->count, 1);
    } else {
      /* Status before count: readers test count, then read status. */
      c->status = status;
      c->bytes = bytes;
      atomic_store(&c->count, 1);
    }
    T.done++;
  }
  pthread_cond_broadcast(&T.cond);
  pthread_mutex_unlock(&T.lock);
}

static void t_notify(void *arg, const char *peer, const void *msg, size_t len) {
  (void)arg;
  pthread_mutex_lock(&T.lock);
  snprintf(T.notify_peer, sizeof T.notify_peer, "%s", peer ? peer : "(null)");
  T.notify_len = len > sizeof T.notify_msg ? sizeof T.notify_msg : len;
  memcpy(T.notify_msg, msg, T.notify_len);
  T.notifies++;
  pthread_cond_broadcast(&T.cond);
  pthread_mutex_unlock(&T.lock);
}

/* Reserves n tokens; returns the first. */
uint64_t tokens(uint32_t n) {
  pthread_mutex_lock(&T.lock);
  uint64_t t = T.next;
  if (T.next + n > MAX_TOKENS) {
    pthread_mutex_unlock(&T.lock);
    fprintf(stderr, "conformance: out of tokens\n");
    exit(2);
  }
  T.next += n;
  pthread_mutex_unlock(&T.lock);
  return t;
}

/* Waits until tokens [first, first+n) all completed; 0 or -1 on timeout. */
int wait_tokens(uint64_t first, uint32_t n, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  for (uint32_t i = 0; i < n; i++) {
    while (atomic_load(&T.c[first + i].count) == 0) {
      if (now_ms() > end)
        return -1;
      pthread_mutex_lock(&T.lock);
      if (atomic_load(&T.c[first + i].count) == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&T.cond, &T.lock, &ts);
      }
      pthread_mutex_unlock(&T.lock);
    }
  }
  return 0;
}

/* ---- plugin handling ---------------------------------------------------- */


int plugin_open(const char *path, plugin *p, int quiet) {
  memset(p, 0, sizeof *p);
  p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!p->dl) {
    if (!quiet)
      fail("abi.dlopen", "%s", dlerror());
    return -1;
  }
  mc_transport_entry_v1_fn entry;
  *(void **)&entry = dlsym(p->dl, MC_TRANSPORT_ENTRY_V1);
  if (!entry) {
    if (!quiet)
      fail("abi.entry", "%s does not export %s", path, MC_TRANSPORT_ENTRY_V1);
    dlclose(p->dl);
    return -1;
  }
  p->raw = entry();
  if (!p->raw) {
    if (!quiet)
      fail("abi.entry", "%s returned NULL", MC_TRANSPORT_ENTRY_V1);
    dlclose(p->dl);
    return -1;
  }
  /* As the core does: members the plugin does not know read as 0. */
  size_t n = p->raw->struct_size < sizeof p->copy ? p->raw->struct_size : sizeof p->copy;
  if (n < offsetof(mc_transport_ops, name))
    n = offsetof(mc_transport_ops, name);
  memcpy(&p->copy, p->raw, n);
  p->ops = &p->copy;
  return 0;
}


static void *progress_main(void *v) {
  tctx *t = v;
  while (!atomic_load(&t->prog_stop)) {
    int n = t->p->ops->progress(t->ctx, 64);
    if (n <= 0)
      sleep_ms(1);
  }
  return NULL;
}

static void host_done(tctx *t) {
  if (t->host_on)
    mc_fake_host_fini(&t->host);
  t->host_on = 0;
}

int ctx_fini(tctx *t) {
  if (!t->ctx) {
    host_done(t);
    return 0;
  }
  if (t->prog_on) {
    atomic_store(&t->prog_stop, 1);
    pthread_join(t->prog, NULL);
    t->prog_on = 0;
  }
  mc_fake_host_set_ctx(&t->host, NULL);
  int rc = t->p->ops->fini(t->ctx);
  t->ctx = NULL;
  host_done(t);
  return rc;
}

int ctx_init(const plugin *p, tctx *t, const char *segment) {
  memset(t, 0, sizeof *t);
  mc_fake_host_init(&t->host, segment, p->ops);
  t->host_on = 1;
  t->host.enabled_level = verbose ? MC_LOG_TRACE : MC_LOG_WARN;
  t->host.print_level = verbose ? MC_LOG_TRACE : MC_LOG_ERROR;
  t->host.on_complete = t_complete;
  t->host.on_notify = t_notify;
  mc_fake_host_set_list(&t->host, params_env);
  t->p = p;
  mc_init_args a = {sizeof a, segment, "127.0.0.1", "conformance-host"};
  int rc = p->ops->init(&t->host.api, &a, &t->ctx);
  if (rc) {
    t->ctx = NULL;
    host_done(t); /* t->host.last_warn stays readable: the reason */
    return rc;
  }
  mc_fake_host_set_ctx(&t->host, t->ctx); /* the ctrl_call loopback */
  if (p->ops->progress) {
    if (pthread_create(&t->prog, NULL, progress_main, t)) {
      ctx_fini(t);
      return MC_ENOMEM;
    }
    t->prog_on = 1;
  }
  t->desc_len = sizeof t->desc;
  rc = p->ops->local_desc(t->ctx, t->desc, &t->desc_len);
  if (rc)
    ctx_fini(t);
  return rc;
}

/* The number of rails of ctx, asked the way the contract allows: capacity
 * 0 first (MC_ENOSPC with the count), then a buffer that size.  1 when the
 * plugin does not say (check_rails reports that). */
uint32_t rail_count(const plugin *p, void *ctx) {
  uint32_t n = 0;
  if (p->ops->query_rails(ctx, NULL, &n) == MC_ENOSPC && n >= 1 && n <= 4096)
    return n;
  return 1;
}


int file_mode;

typedef struct fmap {
  uint8_t *base;
  size_t len;
  char path[256];
} fmap;
#define MAX_FMAPS 16
static fmap fmaps[MAX_FMAPS];
static pthread_mutex_t fm_lock = PTHREAD_MUTEX_INITIALIZER;

void *target_alloc(size_t n) {
  if (!file_mode)
    return malloc(n);
  const char *dir = getenv("MC_CONFORMANCE_FILE_DIR");
  fmap m = {.len = n};
  snprintf(m.path, sizeof m.path, "%s/mc-conformance-XXXXXX", dir && *dir ? dir : "/dev/shm");
  int fd = mkstemp(m.path);
  if (fd < 0)
    return NULL;
  if (ftruncate(fd, (off_t)n) == 0)
    m.base = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (!m.base || m.base == MAP_FAILED) {
    unlink(m.path);
    return NULL;
  }
  pthread_mutex_lock(&fm_lock);
  int i = 0;
  while (i < MAX_FMAPS && fmaps[i].base)
    i++;
  if (i < MAX_FMAPS)
    fmaps[i] = m;
  pthread_mutex_unlock(&fm_lock);
  if (i == MAX_FMAPS) {
    munmap(m.base, n);
    unlink(m.path);
    return NULL;
  }
  return m.base;
}

void target_free(void *p) {
  if (!file_mode || !p) {
    free(p);
    return;
  }
  pthread_mutex_lock(&fm_lock);
  for (int i = 0; i < MAX_FMAPS; i++)
    if (fmaps[i].base == p) {
      munmap(fmaps[i].base, fmaps[i].len);
      unlink(fmaps[i].path);
      fmaps[i].base = NULL;
    }
  pthread_mutex_unlock(&fm_lock);
}

int do_register_cpu(const plugin *p, tctx *t, void *addr, size_t len, reg *r) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, MC_MEM_CPU, -1, "cpu:0", NULL, 0, 0};
  r->rkey_len = sizeof r->rkey;
  return p->ops->register_mem(t->ctx, &d, &r->mem, r->rkey, &r->rkey_len);
}

int do_register(const plugin *p, tctx *t, void *addr, size_t len, reg *r) {
  uint8_t *a = addr;
  char path[256] = "";
  uint64_t off = 0;
  pthread_mutex_lock(&fm_lock);
  for (int i = 0; i < MAX_FMAPS; i++)
    if (fmaps[i].base && a >= fmaps[i].base && a < fmaps[i].base + fmaps[i].len) {
      snprintf(path, sizeof path, "%s", fmaps[i].path);
      off = (uint64_t)(a - fmaps[i].base);
    }
  pthread_mutex_unlock(&fm_lock);
  if (!path[0])
    return do_register_cpu(p, t, addr, len, r);
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, MC_MEM_FILE, -1, "file", path, off, 0};
  r->rkey_len = sizeof r->rkey;
  return p->ops->register_mem(t->ctx, &d, &r->mem, r->rkey, &r->rkey_len);
}

/* Submits all n slices, resubmitting what back-pressure left.  Returns 0,
 * or the error that stopped it; *partial counts partial acceptances. */
int submit_all(const plugin *p, void *ctx, void *ep, mc_slice *s, uint32_t n,
                      uint64_t *partial) {
  uint32_t off = 0;
  int64_t end = now_ms() + WAIT_MS;
  while (off < n) {
    uint32_t acc = 0;
    int rc = p->ops->submit(ctx, ep, s + off, n - off, &acc);
    if (acc > n - off)
      return MC_EPROTO;
    off += acc;
    if (rc && rc != MC_EAGAIN)
      return rc;
    if (off < n) {
      if (partial)
        (*partial)++;
      if (now_ms() > end)
        return MC_ETIMEDOUT;
      sleep_ms(1);
    }
  }
  return 0;
}

void fill_pattern(uint8_t *b, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (uint8_t)x;
  }
}


/* One transfer of len bytes split in slices of `slice` bytes over all
 * rails; returns 0 when every slice completed successfully. */
int xfer(pair *x, uint32_t op, size_t loff, size_t roff, size_t len, size_t slice,
                int *first_err) {
  uint32_t n = (uint32_t)((len + slice - 1) / slice);
  mc_slice *s = calloc(n, sizeof *s);
  uint64_t t0 = tokens(n);
  for (uint32_t i = 0; i < n; i++) {
    size_t off = (size_t)i * slice, l = len - off < slice ? len - off : slice;
    s[i] = (mc_slice){t0 + i, op, i % x->nrails, x->rb.mem,
                      (uint64_t)(uintptr_t)(x->bbuf + loff + off), x->rmem,
                      (uint64_t)(uintptr_t)(x->abuf + roff + off), l};
  }
  int rc = submit_all(x->p, x->b->ctx, x->ep, s, n, NULL);
  free(s);
  *first_err = rc;
  if (rc)
    return -1;
  if (wait_tokens(t0, n, WAIT_MS)) {
    *first_err = MC_ETIMEDOUT;
    return -1;
  }
  for (uint32_t i = 0; i < n; i++)
    if (T.c[t0 + i].status) {
      *first_err = T.c[t0 + i].status;
      return -1;
    }
  return 0;
}


/* One slice on (ep, rmem) at remote address raddr, from the start of the
 * initiator's buffer; returns its status, the error that made submit take
 * nothing (*submit_err set too), or HANG when it never completed. */
int one_slice_at(pair *x, void *rmem, uint32_t op, uint64_t laddr, uint64_t raddr,
                        uint64_t len, int *submit_err, int wait_ms) {
  uint64_t t = tokens(1);
  mc_slice s = {t, op, 0, x->rb.mem, laddr, rmem, raddr, len};
  uint32_t acc = 0;
  int rc = 0;
  *submit_err = 0;
  for (int64_t end = now_ms() + wait_ms;;) {
    rc = x->p->ops->submit(x->b->ctx, x->ep, &s, 1, &acc);
    if (acc || (rc && rc != MC_EAGAIN))
      break;
    if (now_ms() > end) /* back-pressure that never ends */
      return HANG;
    sleep_ms(1);
  }
  if (acc == 0) {
    *submit_err = rc;
    return rc;
  }
  if (wait_tokens(t, 1, wait_ms))
    return HANG;
  return T.c[t].status;
}

int one_slice(pair *x, void *rmem, uint32_t op, uint64_t raddr, uint64_t len,
                     int *submit_err) {
  return one_slice_at(x, rmem, op, (uint64_t)(uintptr_t)x->bbuf, raddr, len, submit_err, WAIT_MS);
}

/* Submits n large slices on (ctx, ep, rmem) without waiting. */
uint32_t flood(const plugin *p, void *ctx, void *ep, void *lmem, uint8_t *lbuf,
                      void *rmem, uint8_t *rbuf, uint32_t nrails, uint32_t n, uint64_t *t0) {
  mc_slice *s = calloc(n, sizeof *s);
  *t0 = tokens(n);
  for (uint32_t i = 0; i < n; i++)
    s[i] = (mc_slice){*t0 + i, i % 2 ? MC_OP_WRITE : MC_OP_READ, i % nrails, lmem,
                      (uint64_t)(uintptr_t)lbuf + (i % 4) * (1u << 20), rmem,
                      (uint64_t)(uintptr_t)rbuf + (i % 4) * (1u << 20), 1u << 20};
  uint32_t total = 0;
  for (int tries = 0; total < n && tries < 50; tries++) {
    uint32_t acc = 0;
    p->ops->submit(ctx, ep, s + total, n - total, &acc);
    total += acc;
    if (total < n)
      sleep_ms(1);
  }
  free(s);
  return total;
}

/* Every token of [t0, t0+n) completed exactly once and stays so. */
int exactly_once(uint64_t t0, uint32_t n, int *st_ok, int *st_err) {
  *st_ok = *st_err = 0;
  for (uint32_t i = 0; i < n; i++) {
    int c = atomic_load(&T.c[t0 + i].count);
    if (c != 1)
      return -1;
    if (T.c[t0 + i].status)
      (*st_err)++;
    else
      (*st_ok)++;
  }
  return 0;
}

