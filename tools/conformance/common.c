/* mc-transport-conformance: reporting, the host API handed to the plugin,
 * loading it, contexts, registrations and transfers (conformance.h). */
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

/* ---- the host API ------------------------------------------------------- */



tracker T;


/* The last warning or error the plugin logged: the reason given when init
 * refuses to run on this host. */
pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
char last_log[512];

__attribute__((format(printf, 3, 4))) static void h_log(void *host, int level, const char *fmt, ...) {
  chost *h = host;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (level <= MC_LOG_WARN) {
    pthread_mutex_lock(&log_lock);
    snprintf(last_log, sizeof last_log, "%s", line);
    pthread_mutex_unlock(&log_lock);
  }
  if (verbose || level <= MC_LOG_ERROR)
    fprintf(stderr, "  [%s] %s\n", h->name, line);
}

static int h_log_enabled(void *host, int level) { return verbose || level <= MC_LOG_WARN; }

/* Values from MC_CONFORMANCE_PARAMS, parsed once in main before any plugin
 * runs; returned pointers stay valid until exit. */
static char param_store[1024];
static char *param_keys[32], *param_vals[32];
static int param_n;

void params_load(void) {
  const char *env = getenv("MC_CONFORMANCE_PARAMS");
  if (!env)
    return;
  snprintf(param_store, sizeof param_store, "%s", env);
  for (char *save = NULL, *kv = strtok_r(param_store, ";", &save); kv && param_n < 32;
       kv = strtok_r(NULL, ";", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq)
      continue;
    *eq = '\0';
    param_keys[param_n] = kv;
    param_vals[param_n++] = eq + 1;
  }
}

static int h_config_get(void *host, const char *key, const char **val) {
  if (!key || !val)
    return MC_EINVAL;
  for (int i = 0; i < param_n; i++)
    if (!strcmp(param_keys[i], key)) {
      *val = param_vals[i];
      return 0;
    }
  return MC_ENOENT;
}

/* The plugin under test (a zero-padded copy of its table, as the core
 * keeps), for the typed getters. */
static const mc_transport_ops *cur_ops;

/* Entry i of a params array read with the plugin's declared stride (1.1),
 * into a zeroed mc_param_info: members past the stride read as 0. */
size_t param_stride(const mc_transport_ops *o) {
  return o->param_info_size ? o->param_info_size : MC_PARAM_INFO_V1_SIZE;
}
void param_at(const mc_transport_ops *o, size_t i, mc_param_info *out) {
  size_t st = param_stride(o);
  memset(out, 0, sizeof *out);
  memcpy(out, (const char *)o->params + i * st, st < sizeof *out ? st : sizeof *out);
}

/* The core's value syntax (core/src/config.c: mc_config_parse_size, _int,
 * _bool), so a default the core would refuse fails abi.params here too. */
int parse_size(const char *t, uint64_t *out) {
  if (!t || *t < '0' || *t > '9')
    return -1;
  uint64_t v = 0;
  for (; *t >= '0' && *t <= '9'; t++) {
    unsigned d = (unsigned)(*t - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  unsigned sh = 0;
  switch (*t) {
  case 'k': case 'K': sh = 10; t++; break;
  case 'm': case 'M': sh = 20; t++; break;
  case 'g': case 'G': sh = 30; t++; break;
  case 't': case 'T': sh = 40; t++; break;
  default: break;
  }
  if (sh && *t == 'i')
    t++;
  if (*t == 'B') /* upper case only: "64kb" is refused */
    t++;
  if (*t || (sh && v > (UINT64_MAX >> sh)))
    return -1;
  *out = v << sh;
  return 0;
}
int parse_int(const char *t, int64_t *out) {
  if (!t)
    return -1;
  int neg = *t == '-';
  if (neg)
    t++;
  if (*t < '0' || *t > '9')
    return -1;
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; *t >= '0' && *t <= '9'; t++) {
    unsigned d = (unsigned)(*t - '0');
    if (v > (lim - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (*t)
    return -1;
  *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
  return 0;
}
int parse_bool(const char *t, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; t && i < 4; i++) {
    if (!strcasecmp(t, yes[i])) {
      *out = 1;
      return 0;
    }
    if (!strcasecmp(t, no[i])) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

/* The value text of typed key `key`: configured, else the default. */
static int typed_value(const char *key, uint32_t type, const char **val) {
  const mc_transport_ops *o = cur_ops;
  if (!o || !o->params || !key)
    return MC_EINVAL;
  for (size_t i = 0; i < 256; i++) {
    mc_param_info pi;
    param_at(o, i, &pi);
    if (pi.type == MC_PARAM_END)
      break;
    if (!pi.name || strcmp(pi.name, key))
      continue;
    if (pi.type != type)
      return MC_EINVAL;
    if (h_config_get(NULL, key, val) == 0)
      return 0;
    if (!pi.default_text || !pi.default_text[0])
      return MC_ENOENT; /* as the core's getters (core/src/hostapi.c) */
    *val = pi.default_text;
    return 0;
  }
  return MC_EINVAL;
}
static int h_config_get_size(void *host, const char *key, uint64_t *out) {
  const char *v;
  int rc = typed_value(key, MC_PARAM_SIZE, &v);
  return rc ? rc : parse_size(v, out) ? MC_EINVAL : 0;
}
static int h_config_get_int(void *host, const char *key, int64_t *out) {
  const char *v;
  int rc = typed_value(key, MC_PARAM_INT, &v);
  return rc ? rc : parse_int(v, out) ? MC_EINVAL : 0;
}
static int h_config_get_bool(void *host, const char *key, int *out) {
  const char *v;
  int rc = typed_value(key, MC_PARAM_BOOL, &v);
  return rc ? rc : parse_bool(v, out) ? MC_EINVAL : 0;
}

static void h_complete(void *host, uint64_t token, int status, uint64_t bytes, int32_t verr) {
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

static void h_notify_recv(void *host, const char *peer, const void *msg, size_t len) {
  pthread_mutex_lock(&T.lock);
  snprintf(T.notify_peer, sizeof T.notify_peer, "%s", peer ? peer : "(null)");
  T.notify_len = len > sizeof T.notify_msg ? sizeof T.notify_msg : len;
  memcpy(T.notify_msg, msg, T.notify_len);
  T.notifies++;
  pthread_cond_broadcast(&T.cond);
  pthread_mutex_unlock(&T.lock);
}

void host_init(chost *h, const char *name) {
  memset(h, 0, sizeof *h);
  h->name = name;
  h->api = (mc_host_api){MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR, sizeof(mc_host_api),
                         h, h_log, h_log_enabled, h_config_get, h_complete, h_notify_recv,
                         h_config_get_size, h_config_get_int, h_config_get_bool};
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
  cur_ops = p->ops;
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

int ctx_fini(tctx *t) {
  if (!t->ctx)
    return 0;
  if (t->prog_on) {
    atomic_store(&t->prog_stop, 1);
    pthread_join(t->prog, NULL);
    t->prog_on = 0;
  }
  int rc = t->p->ops->fini(t->ctx);
  t->ctx = NULL;
  return rc;
}

int ctx_init(const plugin *p, tctx *t, const char *segment) {
  memset(t, 0, sizeof *t);
  host_init(&t->host, segment);
  t->p = p;
  mc_init_args a = {sizeof a, segment, "127.0.0.1", "conformance-host"};
  int rc = p->ops->init(&t->host.api, &a, &t->ctx);
  if (rc) {
    t->ctx = NULL;
    return rc;
  }
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


int do_register(const plugin *p, tctx *t, void *addr, size_t len, reg *r) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, MC_MEM_CPU, -1, "cpu:0"};
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

