/* mc-transport-conformance - checks a transport plugin against transport.h.
 *
 *   mc-transport-conformance [-v] <path/to/mc-transport-NAME.so>
 *
 * Uses only dlopen and mooncake/transport.h, with its own mc_host_api.  It
 * checks the ABI header and table, fuzzes connect/import_mem with hostile
 * blobs, runs loopback transfers between two contexts of the plugin in this
 * process (data verified byte for byte), checks that out-of-range, revoked
 * and wrong-key accesses are refused with the target memory untouched,
 * back-pressure, notify delivery, fini with transfers in flight (exactly one
 * completion per accepted slice) and load/unload/reload.  One line per
 * check: PASS, FAIL or SKIP with a reason; exit status 1 on any FAIL.
 *
 * Per-transport YAML keys can be given as MC_CONFORMANCE_PARAMS="k=v;k=v".
 * Plugins that need hardware and fail init with MC_ENODEV/MC_ENOTSUP get
 * their runtime checks skipped. */
#include <dirent.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mooncake/transport.h"

#define MAX_TOKENS (1u << 18)
#define BUF_SIZE ((size_t)8 << 20)
#define WAIT_MS 60000

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

static const char *errname(int e) {
  static const char *names[] = {"OK",      "EINVAL",  "ENOMEM", "ENOTSUP",   "ENODEV",
                                "ENOENT",  "ERANGE",  "EACCES", "EAGAIN",    "ETIMEDOUT",
                                "EPEER",   "ECANCELED", "EPROTO", "EABI",    "ENOSPC",
                                "EIO",     "EEXIST",  "EBUSY"};
  if (e <= 0 && -e < (int)(sizeof names / sizeof names[0]))
    return names[-e];
  return "unknown";
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

__attribute__((format(printf, 3, 4))) static void h_log(void *host, int level, const char *fmt, ...) {
  if (!verbose && level > MC_LOG_ERROR)
    return;
  chost *h = host;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "  [%s] ", h->name);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static int h_log_enabled(void *host, int level) { return verbose || level <= MC_LOG_ERROR; }

/* Values from MC_CONFORMANCE_PARAMS; returned pointers stay valid (static
 * storage copied once). */
static int h_config_get(void *host, const char *key, const char **val) {
  static char store[1024];
  static char *keys[32], *vals[32];
  static int nkv = -1;
  if (nkv < 0) { /* parsed on first use, before any plugin thread runs */
    nkv = 0;
    const char *env = getenv("MC_CONFORMANCE_PARAMS");
    if (env) {
      snprintf(store, sizeof store, "%s", env);
      for (char *save = NULL, *kv = strtok_r(store, ";", &save); kv && nkv < 32;
           kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
          continue;
        *eq = '\0';
        keys[nkv] = kv;
        vals[nkv++] = eq + 1;
      }
    }
  }
  for (int i = 0; i < nkv; i++)
    if (!strcmp(keys[i], key)) {
      *val = vals[i];
      return 0;
    }
  return MC_ENOENT;
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
                         h, h_log, h_log_enabled, h_config_get, h_complete, h_notify_recv};
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
  const mc_transport_ops *ops;
  char name[128];
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
  p->ops = entry();
  if (!p->ops) {
    if (!quiet)
      fail("abi.entry", "%s returned NULL", MC_TRANSPORT_ENTRY_V1);
    dlclose(p->dl);
    return -1;
  }
  return 0;
}

typedef struct tctx {
  chost host;
  void *ctx;
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
} tctx;

static int ctx_init(const plugin *p, tctx *t, const char *segment) {
  host_init(&t->host, segment);
  mc_init_args a = {sizeof a, segment, "127.0.0.1", "conformance-host"};
  int rc = p->ops->init(&t->host.api, &a, &t->ctx);
  if (rc)
    return rc;
  t->desc_len = sizeof t->desc;
  rc = p->ops->local_desc(t->ctx, t->desc, &t->desc_len);
  if (rc) {
    p->ops->fini(t->ctx);
    t->ctx = NULL;
  }
  return rc;
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
  pass("abi.header", "v%u.%u, struct_size %u", o->abi_major, o->abi_minor, o->struct_size);

  char expect[128];
  const char *b = base_name(path);
  size_t bl = strlen(b);
  if (strncmp(b, "mc-transport-", 13) || bl < 17 || strcmp(b + bl - 3, ".so")) {
    fail("abi.name", "file name %s is not mc-transport-<name>.so", b);
    ok = 0;
  } else {
    snprintf(expect, sizeof expect, "%.*s", (int)(bl - 16), b + 13);
    if (!o->name || strcmp(o->name, expect)) {
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

  int np = 0, pok = 1;
  if (o->params) {
    for (np = 0; np < 256 && o->params[np].type != MC_PARAM_END; np++) {
      const mc_param_info *pi = &o->params[np];
      if (pi->type > MC_PARAM_STRING || !pi->name || !pi->name[0] || !pi->help)
        pok = 0;
      for (int j = 0; j < np && pok; j++)
        if (!strcmp(o->params[j].name, pi->name))
          pok = 0;
    }
    if (np == 256)
      pok = 0;
  }
  if (pok)
    pass("abi.params", "%d documented keys", np);
  else {
    fail("abi.params", "params array malformed (unterminated, bad type, unnamed or duplicate key)");
    ok = 0;
  }
  return ok ? 0 : -1;
}

static void check_rails(const plugin *p, tctx *a, uint32_t *nrails) {
  uint32_t n = 0;
  int rc = p->ops->query_rails(a->ctx, NULL, &n);
  *nrails = 1;
  if (rc != MC_ENOSPC || n < 1) {
    fail("rails.query", "capacity 0 gave %s and n=%u, expected ENOSPC and n>=1", errname(rc), n);
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
    fail("rails.query", "%s, %u rails, names empty or duplicate", errname(rc), m);
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
         errname(rc), len, errname(rc2), alen, a->desc_len, MC_DESC_MAX);
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
                   errname(err));
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
static int one_slice(pair *x, void *rmem, uint32_t op, uint64_t raddr, uint64_t len,
                     int *submit_err) {
  uint64_t t = tokens(1);
  mc_slice s = {t, op, 0, x->rb.mem, (uint64_t)(uintptr_t)x->bbuf, rmem, raddr, len};
  uint32_t acc = 0;
  int rc = x->p->ops->submit(x->b->ctx, x->ep, &s, 1, &acc);
  *submit_err = 0;
  if (acc == 0) {
    *submit_err = rc ? rc : MC_EPROTO;
    return rc;
  }
  if (wait_tokens(t, 1, WAIT_MS))
    return 1; /* hang */
  return T.c[t].status;
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
  if (st1 == 1 || st2 == 1)
    fail("access.range", "out-of-range slice never completed");
  else if (st1 == 0 || st2 == 0)
    fail("access.range", "out-of-range write/read succeeded (%s/%s)", errname(st1), errname(st2));
  else if (memcmp(snap, x->abuf, BUF_SIZE))
    fail("access.range", "target memory changed by a refused write");
  else
    pass("access.range", "refused with %s/%s, target memory unchanged", errname(st1), errname(st2));

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
    if (st == 1) {
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

  /* A revoked registration: deregister, then access through the old key. */
  uint8_t *extra = calloc(1, 65536);
  reg rx;
  void *rm = NULL;
  if (do_register(p, x->a, extra, 65536, &rx) ||
      p->ops->import_mem(x->b->ctx, x->ep, (uint64_t)(uintptr_t)extra, 65536, rx.rkey,
                         rx.rkey_len, &rm)) {
    fail("access.revoked", "register/import of a second buffer failed");
  } else {
    int st0 = one_slice(x, rm, MC_OP_WRITE, (uint64_t)(uintptr_t)extra, 512, &serr);
    p->ops->deregister_mem(x->a->ctx, rx.mem);
    memset(extra, 0x5A, 65536);
    int st = one_slice(x, rm, MC_OP_WRITE, (uint64_t)(uintptr_t)extra, 512, &serr);
    int stread = one_slice(x, rm, MC_OP_READ, (uint64_t)(uintptr_t)extra, 512, &serr);
    int changed = 0;
    for (int i = 0; i < 65536; i++)
      changed |= extra[i] != 0x5A;
    if (st0 != 0)
      fail("access.revoked", "write before deregister failed: %s", errname(st0));
    else if (st == 0 || st == 1 || stread == 0 || stread == 1 || changed)
      fail("access.revoked", "access after deregister: write %s, read %s, memory %s",
           errname(st), errname(stread), changed ? "changed" : "unchanged");
    else
      pass("access.revoked", "refused with %s/%s after deregister_mem", errname(st), errname(stread));
    p->ops->release_mem(x->b->ctx, rm);
  }
  free(extra);
  free(snap);
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
    fail("submit.backpressure", "not every slice completed successfully: %s", errname(firstbad));
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
    fail("notify", "write before notify failed: %s", errname(err));
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
    fail("notify", "send_notify returned %s", errname(rc));
  else if (!got)
    fail("notify", "message not delivered intact within 10 s");
  else if (strcmp(peer, x->b->host.name))
    fail("notify", "delivered with peer '%s', expected '%s'", peer, x->b->host.name);
  else if (!data_ok)
    fail("notify", "delivered before the preceding write was visible");
  else
    pass("notify", "delivered from '%s' after the completed write", peer);
  rc = p->ops->send_notify(x->b->ctx, x->ep, msg, MC_NOTIFY_MAX + 1);
  if (rc == 0)
    fail("notify.size", "a %d-byte message was accepted (cap %d)", MC_NOTIFY_MAX + 1, MC_NOTIFY_MAX);
  else
    pass("notify.size", "oversized message refused with %s", errname(rc));
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
    p->ops->fini(c.ctx);
    free(cbuf);
    return;
  }
  uint32_t nr = 1;
  p->ops->query_rails(c.ctx, NULL, &nr);
  uint64_t t0;
  uint32_t n = flood(p, c.ctx, ep, rc_.mem, cbuf, rm, abuf, nr ? nr : 1, 400, &t0);
  sleep_ms(5);
  int64_t t = now_ms();
  int rc = p->ops->fini(c.ctx);
  int64_t took = now_ms() - t;
  uint64_t strays_before = T.strays, doubles_before = T.doubles;
  sleep_ms(100);
  int ok_n, err_n;
  if (rc)
    fail("fini.inflight", "fini returned %s", errname(rc));
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
    p->ops->fini(a.ctx);
    return;
  }
  uint8_t *abuf = malloc(BUF_SIZE), *cbuf = malloc(BUF_SIZE);
  reg ra, rc_;
  void *ep = NULL, *rm = NULL;
  uint32_t nr = 1;
  p->ops->query_rails(c.ctx, NULL, &nr);
  if (do_register(p, &a, abuf, BUF_SIZE, &ra) || do_register(p, &c, cbuf, BUF_SIZE, &rc_) ||
      p->ops->connect(c.ctx, a.host.name, a.desc, a.desc_len, &ep) ||
      p->ops->import_mem(c.ctx, ep, (uint64_t)(uintptr_t)abuf, BUF_SIZE, ra.rkey, ra.rkey_len, &rm)) {
    fail("peer.gone", "setup failed");
  } else {
    uint64_t t0;
    uint32_t n = flood(p, c.ctx, ep, rc_.mem, cbuf, rm, abuf, nr ? nr : 1, 400, &t0);
    sleep_ms(5);
    p->ops->fini(a.ctx);
    a.ctx = NULL;
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
           acc ? errname(T.c[t1].status) : errname(rc));
  }
  if (a.ctx)
    p->ops->fini(a.ctx);
  p->ops->fini(c.ctx);
  free(abuf);
  free(cbuf);
}

static void check_reload(const char *path) {
  int threads0 = count_dir("/proc/self/task"), fds0 = count_dir("/proc/self/fd");
  for (int round = 0; round < 3; round++) {
    plugin p;
    if (plugin_open(path, &p, 1)) {
      fail("reload", "round %d: dlopen failed: %s", round, dlerror());
      return;
    }
    tctx a;
    int rc = ctx_init(&p, &a, "conf-r:6");
    if (rc) {
      fail("reload", "round %d: init failed: %s", round, errname(rc));
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
    p.ops->fini(a.ctx);
    dlclose(p.dl);
    free(buf);
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

int main(int argc, char **argv) {
  int ai = 1;
  if (ai < argc && !strcmp(argv[ai], "-v"))
    verbose = 1, ai++;
  if (ai >= argc) {
    fprintf(stderr, "usage: %s [-v] path/to/mc-transport-NAME.so\n", argv[0]);
    return 2;
  }
  const char *path = argv[ai];
  alarm(600); /* a hung plugin fails the run instead of blocking CI */
  pthread_mutex_init(&T.lock, NULL);
  pthread_cond_init(&T.cond, NULL);
  T.c = calloc(MAX_TOKENS, sizeof(completion));

  int threads0 = count_dir("/proc/self/task");
  plugin p;
  if (plugin_open(path, &p, 0))
    return 1;
  const mc_transport_ops *again = NULL;
  {
    mc_transport_entry_v1_fn entry;
    *(void **)&entry = dlsym(p.dl, MC_TRANSPORT_ENTRY_V1);
    again = entry();
  }
  if (again != p.ops || count_dir("/proc/self/task") != threads0)
    fail("abi.entry", "entry point not idempotent or started threads");
  else
    pass("abi.entry", "%s is cheap and idempotent", MC_TRANSPORT_ENTRY_V1);
  if (check_abi(path, &p)) {
    printf("RESULT %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return 1;
  }
  if (!(p.ops->local_mem_kinds & MC_MEM_CPU) || !(p.ops->remote_mem_kinds & MC_MEM_CPU)) {
    skip("runtime", "plugin does not move CPU memory on both sides");
    goto out;
  }
  if (!(p.ops->caps & MC_CAP_OWN_THREADS)) {
    skip("runtime", "plugin needs progress(); this program drives OWN_THREADS plugins only");
    goto out;
  }

  tctx a, b;
  int rc = ctx_init(&p, &a, "conf-a:1");
  if (rc == MC_ENODEV || rc == MC_ENOTSUP) {
    skip("runtime", "init: %s (no device on this host)", errname(rc));
    goto out;
  }
  if (rc || (rc = ctx_init(&p, &b, "conf-b:2"))) {
    fail("init", "init/local_desc failed: %s", errname(rc));
    goto out;
  }
  pass("init", "two contexts in one process");

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
    fail("register.rkey_size", "size query gave %s, %zu bytes", errname(rc), need);
    if (rc == 0)
      p.ops->deregister_mem(a.ctx, pm);
  } else {
    pass("register.rkey_size", "%zu-byte remote key", need);
  }
  if ((rc = do_register(&p, &a, x.abuf, BUF_SIZE, &x.ra)) ||
      (rc = do_register(&p, &b, x.bbuf, BUF_SIZE, &x.rb))) {
    fail("register", "register_mem failed: %s", errname(rc));
    goto fini_ab;
  }
  check_blob_fuzz(&p, &b, &a, &x.ra, (uint64_t)(uintptr_t)x.abuf, BUF_SIZE);
  if ((rc = p.ops->connect(b.ctx, a.host.name, a.desc, a.desc_len, &x.ep)) ||
      (rc = p.ops->import_mem(b.ctx, x.ep, (uint64_t)(uintptr_t)x.abuf, BUF_SIZE, x.ra.rkey,
                              x.ra.rkey_len, &x.rmem))) {
    fail("connect", "connect/import_mem failed: %s", errname(rc));
    goto fini_ab;
  }
  pass("connect", "endpoint and import ready");
  check_loopback(&x);
  check_refusals(&x);
  check_backpressure(&x);
  check_notify(&x);
  check_cancel(&x);
  check_fini_inflight(&p, x.abuf, &x.ra, &a);
  check_target_gone(&p);
fini_ab : {
  int64_t t = now_ms();
  int r1 = p.ops->fini(b.ctx), r2 = p.ops->fini(a.ctx);
  if (r1 || r2)
    fail("fini", "fini returned %s/%s", errname(r1), errname(r2));
  else
    pass("fini", "both contexts torn down in %" PRId64 " ms", now_ms() - t);
  free(araw);
  free(braw);
}
out:
  dlclose(p.dl);
  if (T.strays || T.doubles)
    fail("completions", "%" PRIu64 " unknown tokens, %" PRIu64 " double completions", T.strays,
         T.doubles);
  check_reload(path);
  printf("RESULT %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
  free(T.c);
  return n_fail ? 1 : 0;
}
