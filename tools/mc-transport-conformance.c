/* mc-transport-conformance - checks a transport plugin against transport.h.
 *
 *   mc-transport-conformance [-v] <path/to/mc-transport-NAME.so>
 *   mc-transport-conformance --help
 *
 * Uses only dlopen and mooncake/transport.h, with its own mc_host_api (ABI
 * 1.1, typed getters included).  It checks the ABI header, names and the
 * params table, fuzzes connect/import_mem with hostile blobs, runs loopback
 * transfers between two contexts of the plugin in this process (data
 * verified byte for byte), acts as a hostile initiator against the other
 * context (forged lengths, forged keys, revoked and stale keys: the target
 * must refuse every access outside its live registrations, whatever the
 * initiator claims), checks back-pressure, notify delivery, cancel, fini
 * with transfers in flight (exactly one completion per accepted slice),
 * what init..fini cycles leave behind (heap bytes, mappings, fds, threads)
 * and load/unload/reload.  One line per check: PASS, FAIL or SKIP with a
 * reason.
 *
 * Exit status: 0 when every check passed, 1 on any FAIL, 2 on a usage
 * error, 77 when the plugin cannot run on this host (init failed with
 * MC_ENODEV or MC_ENOTSUP) and every static check passed.
 *
 * Per-transport YAML keys can be given as MC_CONFORMANCE_PARAMS="k=v;k=v". */
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

#include "mooncake/errors.h"
#include "mooncake/transport.h"

#define MAX_TOKENS (1u << 18)
#define BUF_SIZE ((size_t)8 << 20)
#define WAIT_MS 60000

/* ---- allocation accounting --------------------------------------------
 *
 * The plugin is a dlopen'd object in this process, so this program defines
 * malloc and friends (and mmap/munmap/mremap) itself: by ELF interposition
 * every call the plugin (and libc on its behalf) makes goes through these
 * counters, which the leak checks read around init..fini cycles.  The heap
 * functions forward to glibc's __libc_* entry points; the mapping functions
 * go straight to the system calls, so only the mappings a caller asked for
 * are counted (not glibc's own thread stacks or heap arenas).
 *
 * Sanitizer runtimes interpose these functions themselves, and other C
 * libraries lack the __libc_* entry points: there the byte and mapping
 * accounting is off and the leak checks count fds and threads only. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                 \
    __has_feature(memory_sanitizer)
#define CONF_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CONF_SANITIZER 1
#endif

#if defined(__GLIBC__) && defined(__LP64__) && defined(SYS_mmap) && !defined(CONF_SANITIZER)
#define CONF_ACCOUNTING 1
#include <malloc.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_llong acct_bytes, acct_blocks, acct_mapped;

static void acct_add(void *p) {
  if (p) {
    atomic_fetch_add_explicit(&acct_bytes, (long long)malloc_usable_size(p), memory_order_relaxed);
    atomic_fetch_add_explicit(&acct_blocks, 1, memory_order_relaxed);
  }
}
static void acct_sub(void *p) {
  if (p) {
    atomic_fetch_sub_explicit(&acct_bytes, (long long)malloc_usable_size(p), memory_order_relaxed);
    atomic_fetch_sub_explicit(&acct_blocks, 1, memory_order_relaxed);
  }
}

void *malloc(size_t n) {
  void *p = __libc_malloc(n);
  acct_add(p);
  return p;
}
void *calloc(size_t a, size_t b) {
  void *p = __libc_calloc(a, b);
  acct_add(p);
  return p;
}
void *realloc(void *old, size_t n) {
  size_t was = old ? malloc_usable_size(old) : 0;
  void *p = __libc_realloc(old, n);
  if (!old) {
    acct_add(p);
  } else if (p) { /* moved or resized: one block either way */
    atomic_fetch_add_explicit(&acct_bytes, (long long)malloc_usable_size(p) - (long long)was,
                              memory_order_relaxed);
  } else if (n == 0) { /* realloc(p, 0) freed p */
    atomic_fetch_sub_explicit(&acct_bytes, (long long)was, memory_order_relaxed);
    atomic_fetch_sub_explicit(&acct_blocks, 1, memory_order_relaxed);
  }
  return p;
}
void *reallocarray(void *old, size_t a, size_t b) {
  size_t n;
  if (__builtin_mul_overflow(a, b, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(old, n);
}
void free(void *p) {
  acct_sub(p);
  __libc_free(p);
}
void *memalign(size_t align, size_t n) {
  void *p = __libc_memalign(align, n);
  acct_add(p);
  return p;
}
void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1)))
    return EINVAL;
  void *p = memalign(align, n);
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}
void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }
void *pvalloc(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return memalign(pg, (n + pg - 1) & ~(pg - 1));
}

static long long page_round(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return (long long)((n + pg - 1) & ~(pg - 1));
}
/* Defined under their exact symbol names: with _FILE_OFFSET_BITS=64 the
 * headers redirect mmap to mmap64, and both names must be caught. */
void *conf_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) __asm__("mmap");
void *conf_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __asm__("mmap64");
void *conf_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  if (r == -1)
    return MAP_FAILED;
  atomic_fetch_add_explicit(&acct_mapped, page_round(len), memory_order_relaxed);
  return (void *)r;
}
void *conf_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return conf_mmap(addr, len, prot, flags, fd, off);
}
int munmap(void *addr, size_t len) {
  long r = syscall(SYS_munmap, addr, len);
  if (r == 0)
    atomic_fetch_sub_explicit(&acct_mapped, page_round(len), memory_order_relaxed);
  return (int)r;
}
void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *want = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    want = va_arg(ap, void *);
    va_end(ap);
  }
  long r = syscall(SYS_mremap, old, old_len, new_len, flags, want);
  if (r == -1)
    return MAP_FAILED;
  atomic_fetch_add_explicit(&acct_mapped, page_round(new_len) - page_round(old_len),
                            memory_order_relaxed);
  return (void *)r;
}
#endif

/* ---- reporting ---------------------------------------------------------- */

static int n_fail, n_pass, n_skip, verbose;

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

__attribute__((format(printf, 2, 3))) static void pass(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("PASS", name, fmt, ap);
  va_end(ap);
  n_pass++;
}
__attribute__((format(printf, 2, 3))) static void fail(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("FAIL", name, fmt, ap);
  va_end(ap);
  n_fail++;
}
__attribute__((format(printf, 2, 3))) static void skip(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("SKIP", name, fmt, ap);
  va_end(ap);
  n_skip++;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int count_dir(const char *path) {
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

typedef struct completion {
  atomic_int count;
  int status;
  uint64_t bytes;
} completion;

typedef struct tracker {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  completion *c;
  uint64_t next;      /* next token to hand out */
  uint64_t done;      /* completions seen */
  uint64_t doubles;   /* tokens completed twice */
  uint64_t strays;    /* unknown tokens */
  char notify_peer[MC_NAME_MAX];
  char notify_msg[MC_NOTIFY_MAX];
  size_t notify_len;
  int notifies;
} tracker;

static tracker T;

typedef struct chost {
  mc_host_api api;
  const char *name;
} chost;

/* The last warning or error the plugin logged: the reason given when init
 * refuses to run on this host. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_log[512];

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

static void params_load(void) {
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
static size_t param_stride(const mc_transport_ops *o) {
  return o->param_info_size ? o->param_info_size : MC_PARAM_INFO_V1_SIZE;
}
static void param_at(const mc_transport_ops *o, size_t i, mc_param_info *out) {
  size_t st = param_stride(o);
  memset(out, 0, sizeof *out);
  memcpy(out, (const char *)o->params + i * st, st < sizeof *out ? st : sizeof *out);
}

/* The core's value syntax (core/src/config.c: mc_config_parse_size, _int,
 * _bool), so a default the core would refuse fails abi.params here too. */
static int parse_size(const char *t, uint64_t *out) {
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
static int parse_int(const char *t, int64_t *out) {
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
static int parse_bool(const char *t, int *out) {
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

static void host_init(chost *h, const char *name) {
  memset(h, 0, sizeof *h);
  h->name = name;
  h->api = (mc_host_api){MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR, sizeof(mc_host_api),
                         h, h_log, h_log_enabled, h_config_get, h_complete, h_notify_recv,
                         h_config_get_size, h_config_get_int, h_config_get_bool};
}

/* Reserves n tokens; returns the first. */
static uint64_t tokens(uint32_t n) {
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
static int wait_tokens(uint64_t first, uint32_t n, int timeout_ms) {
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

typedef struct plugin {
  void *dl;
  const mc_transport_ops *raw; /* the plugin's own table */
  const mc_transport_ops *ops; /* &copy */
  mc_transport_ops copy;       /* min(struct_size, sizeof) bytes, rest zero */
} plugin;

static int plugin_open(const char *path, plugin *p, int quiet) {
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

/* One context of the plugin with its host table.  A plugin without
 * MC_CAP_OWN_THREADS gets a thread calling progress(), as the core's
 * progress worker would, from ctx_init until ctx_fini. */
typedef struct tctx {
  chost host;
  const plugin *p;
  void *ctx;
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
  pthread_t prog;
  atomic_int prog_stop;
  int prog_on;
} tctx;

static void *progress_main(void *v) {
  tctx *t = v;
  while (!atomic_load(&t->prog_stop)) {
    int n = t->p->ops->progress(t->ctx, 64);
    if (n <= 0)
      sleep_ms(1);
  }
  return NULL;
}

static int ctx_fini(tctx *t) {
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

static int ctx_init(const plugin *p, tctx *t, const char *segment) {
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
static uint32_t rail_count(const plugin *p, void *ctx) {
  uint32_t n = 0;
  if (p->ops->query_rails(ctx, NULL, &n) == MC_ENOSPC && n >= 1 && n <= 4096)
    return n;
  return 1;
}

typedef struct reg {
  void *mem;
  uint8_t rkey[MC_RKEY_MAX];
  size_t rkey_len;
} reg;

static int do_register(const plugin *p, tctx *t, void *addr, size_t len, reg *r) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, MC_MEM_CPU, -1, "cpu:0"};
  r->rkey_len = sizeof r->rkey;
  return p->ops->register_mem(t->ctx, &d, &r->mem, r->rkey, &r->rkey_len);
}

/* Submits all n slices, resubmitting what back-pressure left.  Returns 0,
 * or the error that stopped it; *partial counts partial acceptances. */
static int submit_all(const plugin *p, void *ctx, void *ep, mc_slice *s, uint32_t n,
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

static void fill_pattern(uint8_t *b, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (uint8_t)x;
  }
}

/* ---- checks ------------------------------------------------------------- */

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static int check_abi(const char *path, const plugin *p) {
  const mc_transport_ops *o = p->ops;
  int ok = 1;
  if (o->abi_major != MC_TRANSPORT_ABI_MAJOR) {
    fail("abi.header", "abi_major %u, expected %u", o->abi_major, MC_TRANSPORT_ABI_MAJOR);
    return -1;
  }
  if (o->struct_size < MC_TRANSPORT_OPS_V1_MIN_SIZE) {
    fail("abi.header", "struct_size %u < minimum %zu", o->struct_size,
         (size_t)MC_TRANSPORT_OPS_V1_MIN_SIZE);
    return -1;
  }
  if (o->abi_minor >= 1 && o->struct_size < offsetof(mc_transport_ops, param_info_size) +
                                                sizeof o->param_info_size) {
    fail("abi.header", "abi_minor %u but struct_size %u does not cover the 1.1 members",
         o->abi_minor, o->struct_size);
    return -1;
  }
  pass("abi.header", "v%u.%u, struct_size %u", o->abi_major, o->abi_minor, o->struct_size);

  char expect[128];
  const char *b = base_name(path);
  size_t bl = strlen(b);
  if (strncmp(b, "mc-transport-", 13) || bl < 17 || strcmp(b + bl - 3, ".so")) {
    fail("abi.name", "file name %s is not mc-transport-<name>.so", b);
    ok = 0;
  } else {
    snprintf(expect, sizeof expect, "%.*s", (int)(bl - 16), b + 13);
    int okname = expect[0] != '\0';
    for (const char *c = expect; *c; c++)
      okname &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (!okname) {
      fail("abi.name", "transport name '%s' is not [a-z0-9_]+ (the loader refuses it)", expect);
      ok = 0;
    } else if (!o->name || strcmp(o->name, expect)) {
      fail("abi.name", "name '%s' differs from file name '%s'", o->name ? o->name : "(null)",
           expect);
      ok = 0;
    } else {
      pass("abi.name", "'%s', version %s", o->name, o->version ? o->version : "(null)");
    }
  }

  const char *missing = NULL;
  if (!o->version) missing = "version";
  else if (!o->init) missing = "init";
  else if (!o->fini) missing = "fini";
  else if (!o->query_rails) missing = "query_rails";
  else if (!o->local_desc) missing = "local_desc";
  else if (!o->register_mem) missing = "register_mem";
  else if (!o->deregister_mem) missing = "deregister_mem";
  else if (!o->connect) missing = "connect";
  else if (!o->disconnect) missing = "disconnect";
  else if (!o->import_mem) missing = "import_mem";
  else if (!o->release_mem) missing = "release_mem";
  else if (!o->submit) missing = "submit";
  else if (!o->progress != !!(o->caps & MC_CAP_OWN_THREADS)) missing = "progress (NULL iff OWN_THREADS)";
  else if (!o->send_notify != !(o->caps & MC_CAP_NOTIFY)) missing = "send_notify (iff NOTIFY)";
  if (missing) {
    fail("abi.members", "member %s missing or inconsistent with caps", missing);
    ok = 0;
  } else {
    pass("abi.members", "caps 0x%" PRIx64 ", local kinds 0x%x, remote kinds 0x%x", o->caps,
         o->local_mem_kinds, o->remote_mem_kinds);
  }
  if (o->struct_size >= offsetof(mc_transport_ops, free_mem) + sizeof(void *) &&
      !o->alloc_mem != !o->free_mem) {
    fail("abi.alloc_mem", "alloc_mem and free_mem must come together");
    ok = 0;
  }

  /* The params table, read with the stride the plugin declares (1.1). */
  char why[256] = "";
  int np = 0;
  size_t stride = param_stride(o);
  if (o->params && o->abi_minor >= 1 && o->param_info_size == 0)
    snprintf(why, sizeof why,
             "abi_minor %u but param_info_size 0: the core would read the entries with the 1.0 "
             "stride (%zu bytes); set it to sizeof(mc_param_info)",
             o->abi_minor, (size_t)MC_PARAM_INFO_V1_SIZE);
  else if (stride < MC_PARAM_INFO_V1_SIZE)
    snprintf(why, sizeof why, "param_info_size %zu is smaller than a 1.0 entry (%zu bytes)",
             stride, (size_t)MC_PARAM_INFO_V1_SIZE);
  for (np = 0; o->params && !why[0]; np++) {
    mc_param_info pi;
    if (np == 256) {
      snprintf(why, sizeof why, "no MC_PARAM_END within 256 entries");
      break;
    }
    param_at(o, (size_t)np, &pi);
    if (pi.type == MC_PARAM_END)
      break;
    const char *nm = pi.name;
    int okname = nm && nm[0];
    for (const char *c = nm; okname && *c; c++)
      okname = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (pi.type > MC_PARAM_STRING) {
      snprintf(why, sizeof why, "entry %d: type %u", np, pi.type);
    } else if (!okname) {
      snprintf(why, sizeof why, "entry %d: name '%s' is not [a-z0-9_]+", np, nm ? nm : "(null)");
    } else if (!strcmp(nm, "optional")) {
      snprintf(why, sizeof why, "key 'optional' is reserved by the core");
    } else if (!pi.help || !pi.help[0]) {
      snprintf(why, sizeof why, "key '%s': no help text", nm);
    } else if ((pi.type == MC_PARAM_INT || pi.type == MC_PARAM_SIZE) && pi.min > pi.max) {
      snprintf(why, sizeof why, "key '%s': min %" PRId64 " > max %" PRId64, nm, pi.min, pi.max);
    } else if (pi.type == MC_PARAM_SIZE && pi.min < 0) {
      snprintf(why, sizeof why, "key '%s': SIZE with negative min %" PRId64, nm, pi.min);
    } else if (pi.default_text && pi.default_text[0] && pi.type != MC_PARAM_STRING) {
      /* The default must be a value the core accepts, inside the range. */
      uint64_t sz = 0;
      int64_t iv = 0;
      int bv, bad = 0, out = 0;
      if (pi.type == MC_PARAM_BOOL)
        bad = parse_bool(pi.default_text, &bv) != 0;
      else if (pi.type == MC_PARAM_INT) {
        bad = parse_int(pi.default_text, &iv) != 0;
        out = !bad && (pi.min || pi.max) && (iv < pi.min || iv > pi.max);
      } else {
        bad = parse_size(pi.default_text, &sz) != 0;
        out = !bad && (pi.min || pi.max) &&
              (sz > (uint64_t)INT64_MAX || (int64_t)sz < pi.min || (int64_t)sz > pi.max);
      }
      if (bad)
        snprintf(why, sizeof why, "key '%s': default '%s' is not a valid %s", nm, pi.default_text,
                 pi.type == MC_PARAM_BOOL ? "boolean" : pi.type == MC_PARAM_INT ? "integer" : "size");
      else if (out)
        snprintf(why, sizeof why, "key '%s': default '%s' outside [%" PRId64 ", %" PRId64 "]", nm,
                 pi.default_text, pi.min, pi.max);
    }
    for (int j = 0; j < np && !why[0]; j++) {
      mc_param_info pj;
      param_at(o, (size_t)j, &pj);
      if (!strcmp(pj.name, nm))
        snprintf(why, sizeof why, "key '%s' listed twice", nm);
    }
  }
  if (!why[0]) {
    pass("abi.params", "%d documented keys, entry size %zu%s", np, stride,
         o->param_info_size ? "" : " (1.0)");
  } else {
    /* Only the core reads params: the runtime checks can still run. */
    fail("abi.params", "%s", why);
  }
  return ok ? 0 : -1;
}

static void check_rails(const plugin *p, tctx *a, uint32_t *nrails) {
  uint32_t n = 0;
  int rc = p->ops->query_rails(a->ctx, NULL, &n);
  *nrails = 1;
  if (rc != MC_ENOSPC || n < 1) {
    fail("rails.query", "capacity 0 gave %s and n=%u, expected ENOSPC and n>=1", mc_errname(rc), n);
    return;
  }
  mc_rail_info *r = calloc(n, sizeof *r);
  uint32_t m = n;
  rc = p->ops->query_rails(a->ctx, r, &m);
  int ok = rc == 0 && m == n;
  for (uint32_t i = 0; ok && i < n; i++) {
    if (!r[i].name[0] || memchr(r[i].name, 0, sizeof r[i].name) == NULL)
      ok = 0;
    for (uint32_t j = 0; j < i && ok; j++)
      if (!strcmp(r[i].name, r[j].name))
        ok = 0;
  }
  if (ok) {
    pass("rails.query", "%u rails, first '%s'", n, r[0].name);
    *nrails = n;
  } else {
    fail("rails.query", "%s, %u rails, names empty or duplicate", mc_errname(rc), m);
  }
  free(r);
}

static void check_desc(const plugin *p, tctx *a) {
  size_t len = 0;
  int rc = p->ops->local_desc(a->ctx, NULL, &len);
  uint8_t again[MC_DESC_MAX];
  size_t alen = sizeof again;
  int rc2 = p->ops->local_desc(a->ctx, again, &alen);
  if (rc != MC_ENOSPC || len != a->desc_len || rc2 || alen != a->desc_len ||
      memcmp(again, a->desc, alen) || a->desc_len == 0 || a->desc_len > MC_DESC_MAX)
    fail("desc.local", "size query %s/%zu, refetch %s/%zu, first %zu bytes (stable, <= %d)",
         mc_errname(rc), len, mc_errname(rc2), alen, a->desc_len, MC_DESC_MAX);
  else
    pass("desc.local", "%zu bytes, stable, ENOSPC reports the size", a->desc_len);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void check_blob_fuzz(const plugin *p, tctx *b, const tctx *a, const reg *ra,
                            uint64_t base, uint64_t len) {
  uint8_t blob[MC_DESC_MAX];
  int bad = 0, accepted = 0;
  void *ep = NULL;
  /* Truncations and random garbage must be refused. */
  for (size_t l = 0; l < a->desc_len; l++) {
    if (p->ops->connect(b->ctx, "fuzz", a->desc, l, &ep) == 0) {
      bad++;
      p->ops->disconnect(b->ctx, ep);
    }
  }
  for (int i = 0; i < 300; i++) {
    size_t l = rng() % 96;
    for (size_t k = 0; k < l; k++)
      blob[k] = (uint8_t)rng();
    if (p->ops->connect(b->ctx, "fuzz", blob, l, &ep) == 0) {
      bad++;
      p->ops->disconnect(b->ctx, ep);
    }
  }
  /* Bit flips may still be valid descriptors: they must only not crash. */
  for (size_t k = 0; k < a->desc_len * 8 && k < 2048; k++) {
    memcpy(blob, a->desc, a->desc_len);
    blob[k / 8] ^= (uint8_t)(1u << (k % 8));
    if (p->ops->connect(b->ctx, "fuzz", blob, a->desc_len, &ep) == 0) {
      accepted++;
      p->ops->disconnect(b->ctx, ep);
    }
  }
  if (bad)
    fail("fuzz.desc", "%d truncated/garbage descriptors accepted by connect", bad);
  else
    pass("fuzz.desc", "truncated and garbage refused; %d bit-flipped variants accepted", accepted);

  /* import_mem on a real endpoint. */
  if (p->ops->connect(b->ctx, a->host.name, a->desc, a->desc_len, &ep)) {
    fail("fuzz.rkey", "connect to a valid descriptor failed");
    return;
  }
  bad = accepted = 0;
  void *rm = NULL;
  for (size_t l = 0; l < ra->rkey_len; l++)
    if (p->ops->import_mem(b->ctx, ep, base, len, ra->rkey, l, &rm) == 0) {
      bad++;
      p->ops->release_mem(b->ctx, rm);
    }
  for (int i = 0; i < 300; i++) {
    size_t l = rng() % (MC_RKEY_MAX + 1);
    for (size_t k = 0; k < l; k++)
      blob[k] = (uint8_t)rng();
    if (p->ops->import_mem(b->ctx, ep, base, len, blob, l, &rm) == 0) {
      bad++;
      p->ops->release_mem(b->ctx, rm);
    }
  }
  for (size_t k = 0; k < ra->rkey_len * 8; k++) {
    memcpy(blob, ra->rkey, ra->rkey_len);
    blob[k / 8] ^= (uint8_t)(1u << (k % 8));
    if (p->ops->import_mem(b->ctx, ep, base, len, blob, ra->rkey_len, &rm) == 0) {
      accepted++;
      p->ops->release_mem(b->ctx, rm);
    }
  }
  p->ops->disconnect(b->ctx, ep);
  if (bad)
    fail("fuzz.rkey", "%d truncated/garbage remote keys accepted by import_mem", bad);
  else
    pass("fuzz.rkey", "truncated and garbage refused; %d bit-flipped variants accepted", accepted);
}

typedef struct pair {
  const plugin *p;
  tctx *a, *b;      /* a: target, b: initiator */
  uint8_t *abuf, *bbuf;
  reg ra, rb;
  void *ep;         /* b -> a */
  void *rmem;       /* a's buffer imported on b */
  uint32_t nrails;
} pair;

/* One transfer of len bytes split in slices of `slice` bytes over all
 * rails; returns 0 when every slice completed successfully. */
static int xfer(pair *x, uint32_t op, size_t loff, size_t roff, size_t len, size_t slice,
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

static void check_loopback(pair *x) {
  static const size_t sizes[] = {1, 3, 4095, 4096, 65537, ((size_t)1 << 20) + 3, (size_t)4 << 20};
  static const size_t slices[] = {(size_t)64 << 10, (size_t)16 << 20};
  int ok = 1;
  char why[256] = "";
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0] && ok; si++) {
    for (size_t sl = 0; sl < 2 && ok; sl++) {
      for (uint32_t op = 0; op < 2 && ok; op++) {
        size_t len = sizes[si], loff = 1 + si * 7, roff = 3 + si * 5;
        uint8_t *src = op == MC_OP_WRITE ? x->bbuf + loff : x->abuf + roff;
        uint8_t *dst = op == MC_OP_WRITE ? x->abuf + roff : x->bbuf + loff;
        fill_pattern(src, len, (uint32_t)(si * 4 + sl * 2 + op));
        memset(dst, 0xEE, len);
        /* Guard bytes around dst must survive. */
        uint8_t before = dst[-1], after = dst[len];
        int err = 0;
        if (xfer(x, op, loff, roff, len, slices[sl], &err)) {
          snprintf(why, sizeof why, "%s of %zu bytes failed: %s", op ? "write" : "read", len,
                   mc_errname(err));
          ok = 0;
        } else if (memcmp(src, dst, len) || dst[-1] != before || dst[len] != after) {
          snprintf(why, sizeof why, "%s of %zu bytes: data mismatch", op ? "write" : "read", len);
          ok = 0;
        }
      }
    }
  }
  if (ok)
    pass("loopback.data", "read and write, 1 B .. 4 MiB, unaligned, one slice and 64 KiB slices over %u rails",
         x->nrails);
  else
    fail("loopback.data", "%s", why);
}

/* One slice on (ep, rmem) at remote address raddr; returns its status. */
/* Slices refused or never completed: one_slice's hang value. */
#define HANG 1

/* One slice on (ep, rmem) at remote address raddr, from the start of the
 * initiator's buffer; returns its status, the error that made submit take
 * nothing (*submit_err set too), or HANG when it never completed. */
static int one_slice_at(pair *x, void *rmem, uint32_t op, uint64_t laddr, uint64_t raddr,
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

static int one_slice(pair *x, void *rmem, uint32_t op, uint64_t raddr, uint64_t len,
                     int *submit_err) {
  return one_slice_at(x, rmem, op, (uint64_t)(uintptr_t)x->bbuf, raddr, len, submit_err, WAIT_MS);
}

static void check_refusals(pair *x) {
  const plugin *p = x->p;
  /* Out of the imported range: refused (at submit or completion). */
  fill_pattern(x->bbuf, 4096, 77);
  uint8_t *snap = malloc(BUF_SIZE);
  memcpy(snap, x->abuf, BUF_SIZE);
  int serr = 0;
  int st1 = one_slice(x, x->rmem, MC_OP_WRITE, (uint64_t)(uintptr_t)x->abuf + BUF_SIZE - 100, 4096, &serr);
  int st2 = one_slice(x, x->rmem, MC_OP_READ, (uint64_t)(uintptr_t)x->abuf - 8, 4096, &serr);
  if (st1 == HANG || st2 == HANG)
    fail("access.range", "out-of-range slice never completed");
  else if (st1 == 0 || st2 == 0)
    fail("access.range", "out-of-range write/read succeeded (%s/%s)", mc_errname(st1), mc_errname(st2));
  else if (memcmp(snap, x->abuf, BUF_SIZE))
    fail("access.range", "target memory changed by a refused write");
  else
    pass("access.range", "refused with %s/%s, target memory unchanged", mc_errname(st1), mc_errname(st2));

  /* Wrong keys: every single-bit flip of the key that import_mem accepts
   * either is refused on access (memory unchanged) or writes only inside
   * the addressed range; at least one must be refused. */
  int imp_rej = 0, refused = 0, allowed = 0, bad = 0;
  uint64_t target = (uint64_t)(uintptr_t)x->abuf + 4096;
  for (size_t k = 0; k < x->ra.rkey_len; k++) {
    uint8_t key[MC_RKEY_MAX];
    memcpy(key, x->ra.rkey, x->ra.rkey_len);
    key[k] ^= 1;
    void *rm = NULL;
    if (p->ops->import_mem(x->b->ctx, x->ep, (uint64_t)(uintptr_t)x->abuf, BUF_SIZE, key,
                           x->ra.rkey_len, &rm)) {
      imp_rej++;
      continue;
    }
    memcpy(snap, x->abuf, BUF_SIZE);
    fill_pattern(x->bbuf, 512, (uint32_t)k);
    int st = one_slice(x, rm, MC_OP_WRITE, target, 512, &serr);
    if (st == HANG) {
      bad++;
    } else if (st != 0) {
      refused++;
      if (memcmp(snap, x->abuf, BUF_SIZE))
        bad++;
    } else {
      allowed++;
      memcpy(snap + 4096, x->bbuf, 512);
      if (memcmp(snap, x->abuf, BUF_SIZE))
        bad++;
    }
    p->ops->release_mem(x->b->ctx, rm);
  }
  if (bad)
    fail("access.wrong_key", "%d forged keys hung or changed memory outside their write", bad);
  else if (refused == 0 && allowed > 0)
    fail("access.wrong_key", "no forged key was refused (%d accepted)", allowed);
  else
    pass("access.wrong_key", "%d forged keys refused on access, %d at import, %d equivalent",
         refused, imp_rej, allowed);

  free(snap);
}

/* ---- the hostile initiator ----------------------------------------------
 *
 * The initiator context (b) is the attacker: it imports the target's (a)
 * buffer with a forged length, with forged keys and with keys whose
 * registration was revoked, then reads and writes beyond what a currently
 * holds registered -- accesses its own plugin code believes legitimate,
 * because they lie inside what it imported.  Only the target side can
 * refuse them.  The registration sits in the middle of one allocation with
 * HG guard bytes on each side; every access must be refused, no byte outside
 * the live registration may change and a refused read must not bring back
 * any byte from outside it. */
#define HG ((size_t)64 << 10)  /* guard bytes on each side */
#define HL ((size_t)256 << 10) /* registered length */
#define HOSTILE_WAIT_MS 10000
#define HOSTILE_MAX_IMPORTS 6000

typedef struct hostile {
  pair *x;
  uint8_t *raw;              /* HG + HL + HG */
  uint8_t *snap;             /* what raw must hold outside the live range */
  uint64_t R;                /* registered address: raw + HG */
  uint64_t live_lo, live_hi; /* live registration now; empty when revoked */
  int strict;                /* any success is a violation (stale keys) */
  int imports, imports_refused, accesses, refused, hung;
  char bad[320]; /* first violation */
} hostile;

__attribute__((format(printf, 2, 3))) static void hostile_bad(hostile *h, const char *fmt, ...) {
  if (h->bad[0])
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->bad, sizeof h->bad, fmt, ap);
  va_end(ap);
}

static uint64_t hraw(const hostile *h) { return (uint64_t)(uintptr_t)h->raw; }
static int in_live(const hostile *h, uint64_t a) { return a >= h->live_lo && a < h->live_hi; }

/* Describes address a relative to the registration, for messages. */
static void where(const hostile *h, uint64_t a, char *buf, size_t n) {
  if (a < h->R)
    snprintf(buf, n, "%" PRIu64 " bytes before the registration", h->R - a);
  else if (a >= h->R + HL)
    snprintf(buf, n, "%" PRIu64 " bytes past the end of the registration", a - (h->R + HL));
  else
    snprintf(buf, n, "offset %" PRIu64 " of the (revoked) registration", a - h->R);
}

/* One access of the attacker through rmem at [a, +len) (inside raw). */
static void hostile_access(hostile *h, const char *what, void *rmem, uint32_t op, uint64_t a,
                           uint64_t len) {
  pair *x = h->x;
  if (h->hung)
    return;
  uint8_t *src = h->raw + (a - hraw(h));
  /* Local bytes that differ from every byte the access could bring over. */
  for (uint64_t i = 0; i < len; i++)
    x->bbuf[i] = (uint8_t)~src[i];
  int serr = 0;
  h->accesses++;
  int st = one_slice_at(x, rmem, op, (uint64_t)(uintptr_t)x->bbuf, a, len, &serr, HOSTILE_WAIT_MS);
  char loc[96];
  where(h, a < h->R || h->strict ? a : a + len - 1, loc, sizeof loc);
  if (st == HANG) {
    h->hung = 1;
    hostile_bad(h, "%s: %s of [%s, +%" PRIu64 ") never completed", what,
                op == MC_OP_WRITE ? "write" : "read", loc, len);
    return;
  }
  int outside = h->strict;
  for (uint64_t i = 0; i < len && !outside; i++)
    outside = !in_live(h, a + i);
  if (st == 0 && outside) {
    hostile_bad(h, "%s: %s at %s (%" PRIu64 " bytes) succeeded", what,
                op == MC_OP_WRITE ? "write" : "read", loc, len);
  } else if (st != 0) {
    h->refused++;
  }
  /* No byte outside the live registration changed... */
  for (size_t i = 0; i < 2 * HG + HL; i++) {
    uint64_t ai = hraw(h) + i;
    if (h->raw[i] != h->snap[i]) {
      if (in_live(h, ai) && !h->strict) {
        h->snap[i] = h->raw[i]; /* the attacker may write what it owns */
        continue;
      }
      char w[96];
      where(h, ai, w, sizeof w);
      hostile_bad(h, "%s: %s at [%" PRIu64 " bytes from the registration, +%" PRIu64
                     ") (%s) changed the byte %s",
                  what, op == MC_OP_WRITE ? "write" : "read", a - h->R, len,
                  st ? mc_errname(st) : "succeeded", w);
      memcpy(h->raw, h->snap, 2 * HG + HL);
      break;
    }
  }
  /* ... and a read brought nothing back from outside it. */
  if (op == MC_OP_READ) {
    uint64_t leaked = 0;
    for (uint64_t i = 0; i < len; i++)
      if ((h->strict || !in_live(h, a + i)) && x->bbuf[i] == src[i])
        leaked++;
    if (leaked)
      hostile_bad(h, "%s: read at %s (%s) copied %" PRIu64 " bytes from outside the live "
                     "registration into the initiator's buffer",
                  what, loc, st ? mc_errname(st) : "succeeded", leaked);
  }
}

/* The accesses the attacker tries through an import of [base, +len): those
 * its own side believes legitimate (inside the import), beyond the live
 * registration or, with strict, anywhere. */
static void hostile_accesses(hostile *h, const char *what, void *rmem, uint64_t base,
                             uint64_t len) {
  const struct {
    int64_t off; /* from R */
    uint64_t len;
  } cand[] = {
      {(int64_t)HL - 64, 128},          /* straddles the end */
      {(int64_t)HL, 256},               /* just past the end */
      {(int64_t)(HL + HG) - 512, 512},  /* far end of the upper guard */
      {-128, 256},                      /* straddles the start */
      {-(int64_t)HG, 512},              /* far end of the lower guard */
      {0, 512},                         /* the registration's first bytes */
      {(int64_t)HL / 2 + 64, 512},      /* past a halved registration */
  };
  for (size_t i = 0; i < sizeof cand / sizeof cand[0] && !h->hung; i++) {
    uint64_t a = h->R + (uint64_t)cand[i].off, l = cand[i].len;
    int interesting = h->strict || !in_live(h, a) || !in_live(h, a + l - 1);
    if (!interesting || a < base || a - base > len || l > len - (a - base))
      continue;
    hostile_access(h, what, rmem, MC_OP_WRITE, a, l);
    hostile_access(h, what, rmem, MC_OP_READ, a, l);
  }
}

/* import_mem as the attacker asks it; runs the accesses when accepted. */
static void hostile_import(hostile *h, const char *what, const void *key, size_t klen,
                           uint64_t base, uint64_t len) {
  pair *x = h->x;
  void *rm = NULL;
  h->imports++;
  if (x->p->ops->import_mem(x->b->ctx, x->ep, base, len, key, klen, &rm)) {
    h->imports_refused++;
    return;
  }
  hostile_accesses(h, what, rm, base, len);
  x->p->ops->release_mem(x->b->ctx, rm);
}

static void hostile_report(hostile *h, const char *name, const char *extra) {
  if (h->bad[0])
    fail(name, "%s", h->bad);
  else
    pass(name, "%d imports (%d refused there), %d accesses outside the live registration, all "
               "refused, no byte outside it changed or read%s",
         h->imports, h->imports_refused, h->accesses, extra);
  h->bad[0] = 0;
  h->imports = h->imports_refused = h->accesses = h->refused = 0;
}

static void put_word(uint8_t *k, size_t off, uint64_t v, int be) {
  for (int i = 0; i < 8; i++)
    k[off + (size_t)i] = (uint8_t)(v >> (be ? 56 - 8 * i : 8 * i));
}
static uint64_t get_word(const uint8_t *k, size_t off, int be) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)k[off + (size_t)i] << (be ? 56 - 8 * i : 8 * i);
  return v;
}

/* Imports of a mutated key over the whole allocation and over the upper
 * guard: the ranges a forged address or length field would claim. */
static void hostile_try_key(hostile *h, const uint8_t *key, size_t klen) {
  if (h->imports >= HOSTILE_MAX_IMPORTS || h->hung)
    return;
  hostile_import(h, "forged key", key, klen, hraw(h), HL + 2 * HG);
  hostile_import(h, "forged key", key, klen, h->R, HL + HG);
}

static void check_hostile(pair *x) {
  const plugin *p = x->p;
  hostile h = {.x = x};
  h.raw = malloc(HL + 2 * HG);
  h.snap = malloc(HL + 2 * HG);
  fill_pattern(h.raw, HL + 2 * HG, 0xbad);
  memcpy(h.snap, h.raw, HL + 2 * HG);
  h.R = hraw(&h) + HG;
  reg r;
  int rc = do_register(p, x->a, h.raw + HG, HL, &r);
  if (rc) {
    fail("hostile.setup", "register_mem of the target buffer failed: %s", mc_errname(rc));
    goto out;
  }
  h.live_lo = h.R;
  h.live_hi = h.R + HL;

  /* Forged lengths: the real key, a larger range. */
  hostile_import(&h, "forged length", r.rkey, r.rkey_len, h.R, HL + HG);
  hostile_import(&h, "forged length", r.rkey, r.rkey_len, hraw(&h), HL + 2 * HG);
  hostile_import(&h, "forged length", r.rkey, r.rkey_len, h.R, UINT64_MAX - h.R);
  hostile_report(&h, "hostile.forged_len", "");

  /* Forged keys: 64-bit fields (either byte order, every 4-byte offset)
   * moved or grown, alone and in pairs -- the shape of a key whose address
   * and length were rewritten -- then every single-bit flip. */
  uint8_t k[MC_RKEY_MAX];
  size_t kl = r.rkey_len;
  for (int be = 0; be < 2 && kl >= 8; be++) {
    for (size_t o = 0; o + 8 <= kl; o += 4) {
      const uint64_t d[] = {(uint64_t)HG, 2 * (uint64_t)HG, (uint64_t)-(int64_t)HG,
                            (uint64_t)HL + 2 * HG};
      for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        memcpy(k, r.rkey, kl);
        put_word(k, o, get_word(k, o, be) + d[i], be);
        hostile_try_key(&h, k, kl);
      }
    }
    for (size_t o1 = 0; o1 + 8 <= kl && o1 < 96; o1 += 4)
      for (size_t o2 = 0; o2 + 8 <= kl && o2 < 96; o2 += 4) {
        if (o2 < o1 + 8 && o1 < o2 + 8)
          continue;
        memcpy(k, r.rkey, kl);
        put_word(k, o1, get_word(k, o1, be) - HG, be);
        put_word(k, o2, get_word(k, o2, be) + 2 * HG, be);
        hostile_try_key(&h, k, kl);
      }
  }
  for (size_t b = 0; b < kl * 8; b++) {
    memcpy(k, r.rkey, kl);
    k[b / 8] ^= (uint8_t)(1u << (b % 8));
    hostile_try_key(&h, k, kl);
  }
  char note[96] = "";
  if (h.imports >= HOSTILE_MAX_IMPORTS)
    snprintf(note, sizeof note, " (stopped at %d imports)", HOSTILE_MAX_IMPORTS);
  hostile_report(&h, "hostile.forged_key", note);

  /* A revoked key: the import made while it was live, and a new import of
   * it, must reach nothing once deregister_mem returned. */
  void *live_rm = NULL;
  int serr = 0;
  rc = p->ops->import_mem(x->b->ctx, x->ep, h.R, HL, r.rkey, r.rkey_len, &live_rm);
  fill_pattern(x->bbuf, 512, 99);
  int st0 = rc ? rc : one_slice_at(x, live_rm, MC_OP_WRITE, (uint64_t)(uintptr_t)x->bbuf, h.R, 512,
                                   &serr, HOSTILE_WAIT_MS);
  if (st0) {
    fail("hostile.revoked", "a write through the live key failed first: %s", mc_errname(st0));
    if (!rc)
      p->ops->release_mem(x->b->ctx, live_rm);
    p->ops->deregister_mem(x->a->ctx, r.mem);
    goto out;
  }
  memcpy(h.snap, h.raw, HL + 2 * HG);
  p->ops->deregister_mem(x->a->ctx, r.mem);
  h.live_lo = h.live_hi = 0;
  h.strict = 1;
  h.imports++;
  hostile_accesses(&h, "revoked key (import made while live)", live_rm, h.R, HL);
  hostile_import(&h, "revoked key (new import)", r.rkey, r.rkey_len, h.R, HL);
  hostile_report(&h, "hostile.revoked", "");

  /* A stale key: the same address registered again, shorter.  The old key
   * must not reach the new registration, nor past its end. */
  reg r2;
  rc = do_register(p, x->a, h.raw + HG, HL / 2, &r2);
  if (rc) {
    fail("hostile.stale_key", "registering the range again failed: %s", mc_errname(rc));
    p->ops->release_mem(x->b->ctx, live_rm);
    goto out;
  }
  h.imports++;
  hostile_accesses(&h, "stale key (import made before)", live_rm, h.R, HL);
  hostile_import(&h, "stale key (new import)", r.rkey, r.rkey_len, h.R, HL);
  hostile_import(&h, "stale key (new import)", r.rkey, r.rkey_len, h.R, HL / 2);
  p->ops->release_mem(x->b->ctx, live_rm);
  /* The new key works, and only inside its own range. */
  h.strict = 0;
  h.live_lo = h.R;
  h.live_hi = h.R + HL / 2;
  void *rm2 = NULL;
  rc = p->ops->import_mem(x->b->ctx, x->ep, h.R, HL / 2, r2.rkey, r2.rkey_len, &rm2);
  fill_pattern(x->bbuf, 512, 98);
  st0 = rc ? rc : one_slice_at(x, rm2, MC_OP_WRITE, (uint64_t)(uintptr_t)x->bbuf, h.R, 512, &serr,
                               HOSTILE_WAIT_MS);
  if (st0 == 0)
    memcpy(h.snap, h.raw, HL + 2 * HG);
  if (!rc)
    p->ops->release_mem(x->b->ctx, rm2);
  hostile_import(&h, "new key, forged length", r2.rkey, r2.rkey_len, h.R, HL);
  if (st0 && !h.bad[0])
    hostile_bad(&h, "the new registration's own key did not work: %s", mc_errname(st0));
  hostile_report(&h, "hostile.stale_key", "");
  p->ops->deregister_mem(x->a->ctx, r2.mem);
out:
  free(h.raw);
  free(h.snap);
}

typedef struct mt_arg {
  pair *x;
  uint32_t n;
  uint64_t t0;
  uint64_t partial;
  int rc;
  int id;
} mt_arg;

static void *mt_main(void *v) {
  mt_arg *m = v;
  mc_slice *s = calloc(m->n, sizeof *s);
  for (uint32_t i = 0; i < m->n; i++) {
    uint64_t off = ((uint64_t)(i + m->id * 7919u) * 4096u) % (BUF_SIZE - 4096);
    s[i] = (mc_slice){m->t0 + i, i % 2 ? MC_OP_WRITE : MC_OP_READ, i % m->x->nrails,
                      m->x->rb.mem, (uint64_t)(uintptr_t)m->x->bbuf + (m->id ? BUF_SIZE / 2 : 0),
                      m->x->rmem, (uint64_t)(uintptr_t)m->x->abuf + off, 2048};
  }
  m->rc = submit_all(m->x->p, m->x->b->ctx, m->x->ep, s, m->n, &m->partial);
  free(s);
  return NULL;
}

static void check_backpressure(pair *x) {
  int mt = (x->p->ops->caps & MC_CAP_MT_SUBMIT) != 0;
  int nth = mt ? 2 : 1;
  mt_arg m[2];
  pthread_t th[2];
  int64_t t_start = now_ms();
  for (int i = 0; i < nth; i++) {
    m[i] = (mt_arg){x, 5000, tokens(5000), 0, 0, i};
    pthread_create(&th[i], NULL, mt_main, &m[i]);
  }
  int ok = 1, firstbad = 0;
  uint64_t partial = 0;
  for (int i = 0; i < nth; i++) {
    pthread_join(th[i], NULL);
    partial += m[i].partial;
    if (m[i].rc)
      ok = 0, firstbad = m[i].rc;
  }
  for (int i = 0; i < nth && ok; i++) {
    if (wait_tokens(m[i].t0, m[i].n, WAIT_MS)) {
      ok = 0;
      firstbad = MC_ETIMEDOUT;
    }
    for (uint32_t k = 0; k < m[i].n && ok; k++)
      if (T.c[m[i].t0 + k].status)
        ok = 0, firstbad = T.c[m[i].t0 + k].status;
  }
  if (ok)
    pass("submit.backpressure", "%d x 5000 slices%s, %" PRIu64 " partial acceptances, %" PRId64 " ms",
         nth, mt ? " from 2 threads" : "", partial, now_ms() - t_start);
  else
    fail("submit.backpressure", "not every slice completed successfully: %s", mc_errname(firstbad));
}

static void check_notify(pair *x) {
  const plugin *p = x->p;
  if (!(p->ops->caps & MC_CAP_NOTIFY)) {
    skip("notify", "plugin has no MC_CAP_NOTIFY");
    return;
  }
  /* Write, wait for completion, then notify: the data must be visible at
   * the target when the message arrives. */
  fill_pattern(x->bbuf, 65536, 4242);
  int err = 0;
  if (xfer(x, MC_OP_WRITE, 0, 0, 65536, 65536, &err)) {
    fail("notify", "write before notify failed: %s", mc_errname(err));
    return;
  }
  pthread_mutex_lock(&T.lock);
  int before = T.notifies;
  pthread_mutex_unlock(&T.lock);
  static const char msg[] = "conformance: kv ready";
  int rc = p->ops->send_notify(x->b->ctx, x->ep, msg, sizeof msg);
  int64_t end = now_ms() + 10000;
  int got = 0, data_ok = 0;
  char peer[MC_NAME_MAX] = "";
  while (!got && now_ms() < end) {
    pthread_mutex_lock(&T.lock);
    if (T.notifies > before) {
      got = T.notify_len == sizeof msg && !memcmp(T.notify_msg, msg, sizeof msg);
      snprintf(peer, sizeof peer, "%s", T.notify_peer);
      data_ok = !memcmp(x->abuf, x->bbuf, 65536);
      if (!got)
        end = 0;
    }
    pthread_mutex_unlock(&T.lock);
    if (!got)
      sleep_ms(5);
  }
  if (rc)
    fail("notify", "send_notify returned %s", mc_errname(rc));
  else if (!got)
    fail("notify", "message not delivered intact within 10 s");
  else if (strcmp(peer, x->b->host.name))
    fail("notify", "delivered with peer '%s', expected '%s'", peer, x->b->host.name);
  else if (!data_ok)
    fail("notify", "delivered before the preceding write was visible");
  else
    pass("notify", "delivered from '%s' after the completed write", peer);
  /* A real buffer of that size: a plugin may read it before refusing. */
  static char big[MC_NOTIFY_MAX + 1];
  memset(big, 'x', sizeof big);
  rc = p->ops->send_notify(x->b->ctx, x->ep, big, sizeof big);
  if (rc == 0)
    fail("notify.size", "a %d-byte message was accepted (cap %d)", MC_NOTIFY_MAX + 1, MC_NOTIFY_MAX);
  else
    pass("notify.size", "oversized message refused with %s", mc_errname(rc));
}

static uint32_t flood(const plugin *p, void *ctx, void *ep, void *lmem, uint8_t *lbuf,
                      void *rmem, uint8_t *rbuf, uint32_t nrails, uint32_t n, uint64_t *t0);
static int exactly_once(uint64_t t0, uint32_t n, int *st_ok, int *st_err);

/* cancel(): every slice still completes exactly once, as success or
 * MC_ECANCELED; unknown tokens are harmless. */
static void check_cancel(pair *x) {
  const plugin *p = x->p;
  if (!(p->ops->caps & MC_CAP_CANCEL) || !p->ops->cancel) {
    skip("cancel", "plugin has no MC_CAP_CANCEL");
    return;
  }
  uint64_t t0;
  uint32_t n = flood(p, x->b->ctx, x->ep, x->rb.mem, x->bbuf, x->rmem, x->abuf, x->nrails, 64, &t0);
  for (uint32_t i = 0; i < n; i++)
    p->ops->cancel(x->b->ctx, t0 + i);
  p->ops->cancel(x->b->ctx, MAX_TOKENS + 5);
  int ok_n = 0, err_n = 0, bad = 0;
  if (wait_tokens(t0, n, WAIT_MS)) {
    fail("cancel", "canceled slices never completed");
    return;
  }
  sleep_ms(50);
  for (uint32_t i = 0; i < n; i++)
    if (T.c[t0 + i].status != 0 && T.c[t0 + i].status != MC_ECANCELED)
      bad++;
  if (exactly_once(t0, n, &ok_n, &err_n) || bad)
    fail("cancel", "completions after cancel: not exactly once, or %d with other errors", bad);
  else
    pass("cancel", "%u slices: %d done, %d canceled", n, ok_n, err_n);
}

/* Submits n large slices on (ctx, ep, rmem) without waiting. */
static uint32_t flood(const plugin *p, void *ctx, void *ep, void *lmem, uint8_t *lbuf,
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
static int exactly_once(uint64_t t0, uint32_t n, int *st_ok, int *st_err) {
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

static void check_fini_inflight(const plugin *p, uint8_t *abuf, reg *ra, tctx *a) {
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
static void check_target_gone(const plugin *p) {
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
  uint8_t *abuf = malloc(BUF_SIZE), *cbuf = malloc(BUF_SIZE);
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
  free(abuf);
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

typedef struct usage {
  long long bytes, blocks, mapped;
  int fds, threads;
} usage;

static void usage_now(usage *u) {
#ifdef CONF_ACCOUNTING
  u->bytes = atomic_load(&acct_bytes);
  u->blocks = atomic_load(&acct_blocks);
  u->mapped = atomic_load(&acct_mapped);
#else
  u->bytes = u->blocks = u->mapped = 0;
#endif
  u->fds = count_dir("/proc/self/fd");
  u->threads = count_dir("/proc/self/task");
}

/* A joined thread can linger in /proc/self/task for a moment. */
static void threads_settle(int want) {
  for (int i = 0; i < 200 && count_dir("/proc/self/task") > want; i++)
    sleep_ms(10);
}

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

static void check_leaks(const plugin *p, int keep) {
  const char *name = keep ? "lifecycle.fini_releases" : "lifecycle.leaks";
  uint8_t *abuf = calloc(1, LEAK_BUF), *bbuf = calloc(1, LEAK_BUF);
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
  free(abuf);
  free(bbuf);
}

static void check_reload(const char *path) {
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
    uint8_t *buf = calloc(1, 1 << 20);
    reg r;
    void *ep = NULL, *rm = NULL;
    int ok = !do_register(&p, &a, buf, 1 << 20, &r) &&
             !p.ops->connect(a.ctx, a.host.name, a.desc, a.desc_len, &ep) &&
             !p.ops->import_mem(a.ctx, ep, (uint64_t)(uintptr_t)buf, 1 << 20, r.rkey, r.rkey_len, &rm);
    if (ok) { /* loop back onto itself: half the buffer into the other half */
      fill_pattern(buf, 4096, (uint32_t)round);
      uint64_t t = tokens(1);
      mc_slice s = {t, MC_OP_WRITE, 0, r.mem, (uint64_t)(uintptr_t)buf, rm,
                    (uint64_t)(uintptr_t)buf + (1 << 19), 4096};
      uint32_t acc = 0;
      p.ops->submit(a.ctx, ep, &s, 1, &acc);
      ok = acc == 1 && !wait_tokens(t, 1, WAIT_MS) && T.c[t].status == 0 &&
           !memcmp(buf, buf + (1 << 19), 4096);
    }
    ctx_fini(&a);
    free(buf);
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

static const char usage_text[] =
    "usage: %s [-v] path/to/mc-transport-NAME.so\n"
    "       %s --help\n"
    "\n"
    "Checks a transport plugin against mooncake/transport.h (ABI %d.%d), loading it\n"
    "with dlopen as the core does and driving two of its contexts in this process.\n"
    "\n"
    "  -v, --verbose  show the plugin's log lines (warnings and below)\n"
    "  -h, --help     this text\n"
    "\n"
    "Checks (one line each: PASS, FAIL or SKIP with the reason):\n"
    "  static   abi.entry abi.header abi.name abi.members abi.alloc_mem abi.params\n"
    "  runtime  init rails.query desc.local register.rkey_size fuzz.desc fuzz.rkey\n"
    "           connect loopback.data access.range access.wrong_key\n"
    "           hostile.forged_len hostile.forged_key hostile.revoked hostile.stale_key\n"
    "           submit.backpressure notify notify.size cancel fini.inflight\n"
    "           peer.gone peer.gone.after fini completions\n"
    "           lifecycle.leaks lifecycle.fini_releases reload\n"
    "\n"
    "Exit status: 0 all passed; 1 a check failed; 2 usage error; 77 the plugin\n"
    "cannot run on this host (init returned MC_ENODEV or MC_ENOTSUP: \"not runnable\n"
    "on this host\") and every static check passed -- a skip, not a failure.\n"
    "\n"
    "Environment: MC_CONFORMANCE_PARAMS=\"key=value;key=value\" sets the plugin's\n"
    "keys (as transports.<name>.<key> in the YAML would).\n";

static int result(int code) {
  printf("RESULT %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
  fflush(stdout);
  return code;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf(usage_text, argv[0], argv[0], MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR);
      return 0;
    } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
      verbose = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
      fprintf(stderr, usage_text, argv[0], argv[0], MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR);
      return 2;
    } else if (path) {
      fprintf(stderr, "%s: one plugin at a time ('%s' and '%s')\n", argv[0], path, argv[i]);
      return 2;
    } else {
      path = argv[i];
    }
  }
  if (!path) {
    fprintf(stderr, usage_text, argv[0], argv[0], MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR);
    return 2;
  }
  alarm(600); /* a hung plugin fails the run instead of blocking CI */
  params_load();
  pthread_mutex_init(&T.lock, NULL);
  pthread_cond_init(&T.cond, NULL);
  T.c = calloc(MAX_TOKENS, sizeof(completion));

  int threads0 = count_dir("/proc/self/task");
  plugin p;
  if (plugin_open(path, &p, 0))
    return result(1);
  const mc_transport_ops *again = NULL;
  {
    mc_transport_entry_v1_fn entry;
    *(void **)&entry = dlsym(p.dl, MC_TRANSPORT_ENTRY_V1);
    again = entry();
  }
  if (again != p.raw || count_dir("/proc/self/task") != threads0)
    fail("abi.entry", "entry point not idempotent or started threads");
  else
    pass("abi.entry", "%s is cheap and idempotent", MC_TRANSPORT_ENTRY_V1);
  if (check_abi(path, &p))
    return result(1);
  if (!(p.ops->local_mem_kinds & MC_MEM_CPU) || !(p.ops->remote_mem_kinds & MC_MEM_CPU)) {
    skip("runtime", "plugin does not move CPU memory on both sides");
    dlclose(p.dl);
    return result(0);
  }

  tctx a, b;
  pthread_mutex_lock(&log_lock);
  last_log[0] = '\0';
  pthread_mutex_unlock(&log_lock);
  int rc = ctx_init(&p, &a, "conf-a:1");
  if (rc == MC_ENODEV || rc == MC_ENOTSUP) {
    pthread_mutex_lock(&log_lock);
    skip("runtime", "not runnable on this host: init returned %s (%s)%s%s", mc_errname(rc),
         mc_strerror(rc), last_log[0] ? ": " : "; the plugin logged no reason",
         last_log);
    pthread_mutex_unlock(&log_lock);
    dlclose(p.dl);
    return result(n_fail ? 1 : 77);
  }
  if (rc || (rc = ctx_init(&p, &b, "conf-b:2"))) {
    fail("init", "init/local_desc failed: %s", mc_errname(rc));
    ctx_fini(&a);
    dlclose(p.dl);
    return result(1);
  }
  pass("init", "two contexts in one process%s", p.ops->progress ? ", progress() driven by a thread" : "");

  pair x = {.p = &p, .a = &a, .b = &b};
  check_rails(&p, &a, &x.nrails);
  check_desc(&p, &a);
  /* Buffers with a guard byte before and after. */
  uint8_t *araw = malloc(BUF_SIZE + 64), *braw = malloc(BUF_SIZE + 64);
  x.abuf = araw + 32;
  x.bbuf = braw + 32;
  memset(araw, 0, BUF_SIZE + 64);
  memset(braw, 0, BUF_SIZE + 64);
  size_t need = 0;
  mc_mem_desc probe = {(uint64_t)(uintptr_t)x.abuf, BUF_SIZE, MC_MEM_CPU, -1, "cpu:0"};
  void *pm = NULL;
  rc = p.ops->register_mem(a.ctx, &probe, &pm, NULL, &need);
  if (rc != MC_ENOSPC || need == 0 || need > MC_RKEY_MAX) {
    fail("register.rkey_size", "size query gave %s, %zu bytes", mc_errname(rc), need);
    if (rc == 0)
      p.ops->deregister_mem(a.ctx, pm);
  } else {
    pass("register.rkey_size", "%zu-byte remote key", need);
  }
  if ((rc = do_register(&p, &a, x.abuf, BUF_SIZE, &x.ra)) ||
      (rc = do_register(&p, &b, x.bbuf, BUF_SIZE, &x.rb))) {
    fail("register", "register_mem failed: %s", mc_errname(rc));
    goto fini_ab;
  }
  check_blob_fuzz(&p, &b, &a, &x.ra, (uint64_t)(uintptr_t)x.abuf, BUF_SIZE);
  if ((rc = p.ops->connect(b.ctx, a.host.name, a.desc, a.desc_len, &x.ep)) ||
      (rc = p.ops->import_mem(b.ctx, x.ep, (uint64_t)(uintptr_t)x.abuf, BUF_SIZE, x.ra.rkey,
                              x.ra.rkey_len, &x.rmem))) {
    fail("connect", "connect/import_mem failed: %s", mc_errname(rc));
    goto fini_ab;
  }
  pass("connect", "endpoint and import ready");
  check_loopback(&x);
  check_refusals(&x);
  check_hostile(&x);
  check_backpressure(&x);
  check_notify(&x);
  check_cancel(&x);
  check_fini_inflight(&p, x.abuf, &x.ra, &a);
  check_target_gone(&p);
fini_ab : {
  int64_t t = now_ms();
  int r1 = ctx_fini(&b), r2 = ctx_fini(&a);
  if (r1 || r2)
    fail("fini", "fini returned %s/%s", mc_errname(r1), mc_errname(r2));
  else
    pass("fini", "both contexts torn down in %" PRId64 " ms", now_ms() - t);
  free(araw);
  free(braw);
}
  if (T.strays || T.doubles)
    fail("completions", "%" PRIu64 " unknown tokens, %" PRIu64 " double completions", T.strays,
         T.doubles);
  check_leaks(&p, 0);
  check_leaks(&p, 1);
  threads_settle(threads0);
  int left = count_dir("/proc/self/task") - threads0;
  if (left > 0) {
    /* Unloading code that threads still run would crash this program. */
    fail("reload", "%d thread(s) of the plugin still running after every fini; not unloading it",
         left);
  } else {
    dlclose(p.dl);
    check_reload(path);
  }
  free(T.c);
  return result(n_fail ? 1 : 0);
}
