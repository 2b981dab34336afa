/* fake_acl.c - a software Ascend NPU behind the CANN runtime calls the
 * ascend plugin makes (plugins/ascend/acl_api.h), built as
 * libmc-fake-ascendcl.so and named with transports.ascend.library, so the
 * plugin's own code moves data between two processes in CI.
 *
 *   - NPU memory: aclrtMalloc gives a memfd per allocation, mapped shared.
 *   - IPC: each exporting process keeps a registry memfd of its exports
 *     (key, data fd, offset, size, flags, whitelisted pids).  A key reads
 *     "fk:<pid>:<registry fd>:<slot>"; aclrtIpcMemImportByKey reads the
 *     exporter's registry through /proc/<pid>/fd, refuses a key that is
 *     not live there, refuses a process that is not whitelisted
 *     (aclrtIpcMemSetImportPid) unless the export disabled the check, then
 *     maps the data fd.  aclrtIpcMemClose unmaps an import, or retires an
 *     export (later imports fail).
 *   - aclrtMemcpyAsync checks the direction it is given against where
 *     the pointers are (host or NPU memory) and the bounds of NPU
 *     allocations, as the real runtime does; copies and event markers run
 *     in order on one worker thread per stream (FAKE_ACL_COPY_DELAY_US
 *     slows copies), so events really complete later.
 *   - a thread must select an NPU (aclrtSetDevice) after ACL was
 *     initialized before it creates or uses streams, events or IPC, as
 *     the real runtime binds a context to the calling thread; a thread
 *     whose binding predates the latest aclInit-from-zero is refused.
 * FAKE_ACL_DEVICES sets the NPU count (default 1). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))
typedef int aclError;

enum {
  OK = 0,
  E_PARAM = 100000,       /* ACL_ERROR_INVALID_PARAM */
  E_REPEAT_INIT = 100002, /* ACL_ERROR_REPEAT_INITIALIZE */
  E_DEVICE = 107001,      /* an invalid device */
  E_NOMEM = 207001,
  E_IPC = 507000, /* the fake's "IPC refused" */
};

/* ---- the calls (prototypes as the plugin declares them) ---- */
API aclError aclInit(const char *config);
API aclError aclFinalize(void);
API aclError aclFinalizeReference(uint64_t *refs);
API aclError aclrtSetDevice(int32_t dev);
API aclError aclrtGetDeviceCount(uint32_t *n);
API aclError aclrtMalloc(void **p, size_t size, int policy);
API aclError aclrtFree(void *p);
API aclError aclrtCreateStream(void **s);
API aclError aclrtDestroyStream(void *s);
API aclError aclrtSynchronizeStream(void *s);
API aclError aclrtMemcpyAsync(void *dst, size_t dmax, const void *src, size_t n, int kind,
                              void *s);
API aclError aclrtCreateEvent(void **e);
API aclError aclrtDestroyEvent(void *e);
API aclError aclrtRecordEvent(void *e, void *s);
API aclError aclrtQueryEventStatus(void *e, int *status);
API const char *aclGetRecentErrMsg(void);
API aclError aclrtPointerGetAttributes(const void *p, void *attrs);
API aclError aclrtIpcMemGetExportKey(void *p, size_t len, char *key, size_t keylen,
                                     uint64_t flags);
API aclError aclrtIpcMemSetImportPid(const char *key, int32_t *pid, size_t n);
API aclError aclrtIpcMemImportByKey(void **p, const char *key, uint64_t flags);
API aclError aclrtIpcMemClose(const char *key);
API aclError aclrtDeviceGetBareTgid(int32_t *pid);
/* Test controls. */
API int fake_acl_allocs(void);
API int fake_acl_inits(void);

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local char last_msg[160];
static int inits;
static unsigned gen; /* bumped when ACL goes from uninitialized to initialized */
static _Thread_local unsigned t_gen;
static _Thread_local int t_dev = -1;

static aclError fail(aclError e, const char *msg) {
  snprintf(last_msg, sizeof last_msg, "fake acl: %s", msg);
  return e;
}

static int ndevices(void) {
  const char *s = getenv("FAKE_ACL_DEVICES");
  int n = s ? atoi(s) : 1;
  return n < 0 ? 0 : n;
}

aclError aclInit(const char *config) {
  (void)config;
  pthread_mutex_lock(&g_lock);
  int again = inits++ > 0;
  if (!again)
    gen++;
  pthread_mutex_unlock(&g_lock);
  return again ? E_REPEAT_INIT : OK;
}

/* References as CANN counts them: each aclInit adds one (answering
 * ACL_ERROR_REPEAT_INITIALIZE after the first), aclFinalizeReference drops
 * one, aclFinalize drops all. */
aclError aclFinalizeReference(uint64_t *refs) {
  pthread_mutex_lock(&g_lock);
  int ok = inits > 0;
  if (ok)
    inits--;
  if (refs)
    *refs = (uint64_t)inits;
  pthread_mutex_unlock(&g_lock);
  return ok ? OK : fail(E_PARAM, "aclFinalizeReference without aclInit");
}

aclError aclFinalize(void) {
  pthread_mutex_lock(&g_lock);
  int ok = inits > 0;
  inits = 0;
  pthread_mutex_unlock(&g_lock);
  return ok ? OK : fail(E_PARAM, "aclFinalize without aclInit");
}

int fake_acl_inits(void) {
  pthread_mutex_lock(&g_lock);
  int n = inits;
  pthread_mutex_unlock(&g_lock);
  return n;
}

aclError aclrtSetDevice(int32_t dev) {
  if (dev < 0 || dev >= ndevices())
    return fail(E_DEVICE, "no such device");
  pthread_mutex_lock(&g_lock);
  int up = inits > 0;
  t_gen = gen;
  pthread_mutex_unlock(&g_lock);
  t_dev = dev;
  return up ? OK : fail(E_PARAM, "aclrtSetDevice before aclInit");
}

/* The calling thread's context: set since the latest initialization. */
static aclError need_ctx(void) {
  pthread_mutex_lock(&g_lock);
  int ok = inits > 0 && t_dev >= 0 && t_gen == gen;
  pthread_mutex_unlock(&g_lock);
  return ok ? OK : fail(E_PARAM, "no context on this thread (aclrtSetDevice first)");
}

aclError aclrtGetDeviceCount(uint32_t *n) {
  *n = (uint32_t)ndevices();
  return OK;
}

const char *aclGetRecentErrMsg(void) { return last_msg[0] ? last_msg : NULL; }

aclError aclrtDeviceGetBareTgid(int32_t *pid) {
  *pid = (int32_t)getpid();
  return OK;
}

/* ---- NPU memory ---- */

typedef struct alloc {
  struct alloc *next;
  uint8_t *base;
  size_t size;
  int fd; /* -1: an import */
  char key[65]; /* imports: the key they came from */
} alloc;
static alloc *g_allocs;

static alloc *find(const void *p) {
  for (alloc *a = g_allocs; a; a = a->next)
    if ((const uint8_t *)p >= a->base && (const uint8_t *)p < a->base + a->size)
      return a;
  return NULL;
}

int fake_acl_allocs(void) {
  int n = 0;
  pthread_mutex_lock(&g_lock);
  for (alloc *a = g_allocs; a; a = a->next)
    n++;
  pthread_mutex_unlock(&g_lock);
  return n;
}

aclError aclrtMalloc(void **p, size_t size, int policy) {
  (void)policy;
  if (!p || !size)
    return fail(E_PARAM, "aclrtMalloc: bad argument");
  alloc *a = calloc(1, sizeof *a);
  if (!a)
    return fail(E_NOMEM, "out of memory");
  a->fd = memfd_create("fake-acl", MFD_CLOEXEC);
  if (a->fd < 0 || ftruncate(a->fd, (off_t)size) ||
      (a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0)) == MAP_FAILED) {
    if (a->fd >= 0)
      close(a->fd);
    free(a);
    return fail(E_NOMEM, "memfd");
  }
  a->size = size;
  pthread_mutex_lock(&g_lock);
  a->next = g_allocs;
  g_allocs = a;
  pthread_mutex_unlock(&g_lock);
  *p = a->base;
  return OK;
}

static alloc *take_where(int (*match)(const alloc *, const void *), const void *arg) {
  alloc *a = NULL;
  for (alloc **pp = &g_allocs; *pp; pp = &(*pp)->next)
    if (match(*pp, arg)) {
      a = *pp;
      *pp = a->next;
      break;
    }
  return a;
}

static int is_own_base(const alloc *a, const void *p) { return a->fd >= 0 && a->base == p; }
static int is_import_of(const alloc *a, const void *key) {
  return a->fd < 0 && !strcmp(a->key, key);
}

aclError aclrtFree(void *p) {
  pthread_mutex_lock(&g_lock);
  alloc *a = take_where(is_own_base, p);
  pthread_mutex_unlock(&g_lock);
  if (!a)
    return fail(E_PARAM, "aclrtFree: not an allocation");
  munmap(a->base, a->size);
  close(a->fd);
  free(a);
  return OK;
}

/* aclrtPtrAttributes: {u32 id; int type; u32 pageSize; u32 rsv[4]}. */
aclError aclrtPointerGetAttributes(const void *p, void *attrs) {
  struct {
    uint32_t id;
    int type;
    uint32_t page, rsv[4];
  } r = {0, 0, 4096, {0}};
  pthread_mutex_lock(&g_lock);
  r.type = find(p) ? 1 /* DEVICE */ : 2 /* UNREGISTERED host */;
  pthread_mutex_unlock(&g_lock);
  memcpy(attrs, &r, sizeof r);
  return OK;
}

/* ---- IPC ---- */

#define REG_SLOTS 64
typedef struct reg_entry {
  uint32_t live, flags;
  char key[65];
  int32_t fd;
  uint64_t off, size, alloc_size;
  int32_t pids[8];
  uint32_t npids;
} reg_entry;
static reg_entry *g_reg; /* this process's registry (mapped memfd) */
static int g_reg_fd = -1;

static int reg_open(void) {
  if (g_reg)
    return 0;
  g_reg_fd = memfd_create("fake-acl-ipc", MFD_CLOEXEC);
  if (g_reg_fd < 0 || ftruncate(g_reg_fd, REG_SLOTS * sizeof(reg_entry)))
    return -1;
  g_reg = mmap(NULL, REG_SLOTS * sizeof(reg_entry), PROT_READ | PROT_WRITE, MAP_SHARED,
               g_reg_fd, 0);
  if (g_reg == MAP_FAILED) {
    g_reg = NULL;
    return -1;
  }
  return 0;
}

aclError aclrtIpcMemGetExportKey(void *p, size_t len, char *key, size_t keylen,
                                 uint64_t flags) {
  if (need_ctx())
    return E_PARAM;
  if (!p || !len || !key || keylen != 65 || flags > 1)
    return fail(E_PARAM, "aclrtIpcMemGetExportKey: bad argument");
  pthread_mutex_lock(&g_lock);
  alloc *a = find(p);
  aclError rc = OK;
  if (!a || a->fd < 0 || (size_t)((uint8_t *)p - a->base) + len > a->size)
    rc = fail(E_PARAM, "aclrtIpcMemGetExportKey: not inside one NPU allocation");
  else if (reg_open())
    rc = fail(E_NOMEM, "registry");
  int slot = -1;
  for (int i = 0; rc == OK && i < REG_SLOTS && slot < 0; i++)
    if (!g_reg[i].live)
      slot = i;
  if (rc == OK && slot < 0)
    rc = fail(E_NOMEM, "too many exports");
  if (rc == OK) {
    reg_entry *e = &g_reg[slot];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "fk:%d:%d:%d", (int)getpid(), g_reg_fd, slot);
    e->fd = a->fd;
    e->off = (uint64_t)((uint8_t *)p - a->base);
    e->size = len;
    e->alloc_size = a->size;
    e->flags = (uint32_t)flags;
    e->live = 1;
    snprintf(key, keylen, "%s", e->key);
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

aclError aclrtIpcMemSetImportPid(const char *key, int32_t *pid, size_t n) {
  if (need_ctx())
    return E_PARAM;
  if (!key || !pid || !n)
    return fail(E_PARAM, "aclrtIpcMemSetImportPid: bad argument");
  aclError rc = fail(E_PARAM, "aclrtIpcMemSetImportPid: not our export");
  pthread_mutex_lock(&g_lock);
  for (int i = 0; g_reg && i < REG_SLOTS; i++) {
    reg_entry *e = &g_reg[i];
    if (!e->live || strcmp(e->key, key))
      continue;
    rc = OK;
    for (size_t j = 0; j < n; j++) {
      if (e->npids == 8) {
        rc = fail(E_NOMEM, "whitelist full");
        break;
      }
      e->pids[e->npids++] = pid[j];
    }
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

static int open_peer_fd(int pid, int fd) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  return open(path, O_RDWR | O_CLOEXEC);
}

aclError aclrtIpcMemImportByKey(void **p, const char *key, uint64_t flags) {
  if (need_ctx())
    return E_PARAM;
  (void)flags;
  int pid = 0, regfd = -1, slot = -1, used = 0;
  if (!p || !key || sscanf(key, "fk:%d:%d:%d%n", &pid, &regfd, &slot, &used) != 3 ||
      key[used] || slot < 0 || slot >= REG_SLOTS || pid == getpid())
    return fail(E_PARAM, "aclrtIpcMemImportByKey: not a key");
  int rfd = open_peer_fd(pid, regfd);
  if (rfd < 0)
    return fail(E_IPC, "aclrtIpcMemImportByKey: exporter gone");
  reg_entry e;
  ssize_t got = pread(rfd, &e, sizeof e, (off_t)slot * (off_t)sizeof e);
  close(rfd);
  if (got != (ssize_t)sizeof e || !e.live || strncmp(e.key, key, sizeof e.key))
    return fail(E_IPC, "aclrtIpcMemImportByKey: key not exported");
  if (!(e.flags & 1)) {
    int ok = 0;
    for (uint32_t i = 0; i < e.npids && i < 8; i++)
      ok |= e.pids[i] == (int32_t)getpid();
    if (!ok)
      return fail(E_IPC, "aclrtIpcMemImportByKey: this process is not whitelisted");
  }
  int fd = open_peer_fd(pid, e.fd);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_size < e.alloc_size ||
      e.off + e.size > e.alloc_size) {
    if (fd >= 0)
      close(fd);
    return fail(E_IPC, "aclrtIpcMemImportByKey: cannot open the memory");
  }
  alloc *a = calloc(1, sizeof *a);
  void *m = a ? mmap(NULL, e.alloc_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (m == MAP_FAILED) {
    free(a);
    return fail(E_NOMEM, "mmap");
  }
  a->base = m;
  a->size = e.alloc_size;
  a->fd = -1;
  snprintf(a->key, sizeof a->key, "%s", key);
  pthread_mutex_lock(&g_lock);
  a->next = g_allocs;
  g_allocs = a;
  pthread_mutex_unlock(&g_lock);
  *p = (uint8_t *)m + e.off;
  return OK;
}

aclError aclrtIpcMemClose(const char *key) {
  if (need_ctx())
    return E_PARAM;
  if (!key)
    return fail(E_PARAM, "aclrtIpcMemClose: NULL");
  pthread_mutex_lock(&g_lock);
  alloc *a = take_where(is_import_of, key);
  int found = a != NULL;
  for (int i = 0; !found && g_reg && i < REG_SLOTS; i++)
    if (g_reg[i].live && !strcmp(g_reg[i].key, key)) {
      g_reg[i].live = 0;
      found = 1;
    }
  pthread_mutex_unlock(&g_lock);
  if (a) {
    munmap(a->base, a->size);
    free(a);
  }
  return found ? OK : fail(E_PARAM, "aclrtIpcMemClose: unknown key");
}

/* ---- streams and events ---- */

typedef struct fevent {
  atomic_int state; /* 1: recorded, not reached yet */
} fevent;

typedef struct item {
  struct item *next;
  void *dst;
  const void *src;
  size_t n;
  fevent *ev;
} item;

typedef struct fstream {
  pthread_t th;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  item *head, **tail;
  int busy, stop;
} fstream;

static void *stream_main(void *arg) {
  fstream *s = arg;
  const char *d = getenv("FAKE_ACL_COPY_DELAY_US");
  long delay_us = d ? atol(d) : 0;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (!s->head && !s->stop)
      pthread_cond_wait(&s->cond, &s->lock);
    if (!s->head)
      break;
    item *it = s->head;
    s->head = it->next;
    if (!s->head)
      s->tail = &s->head;
    s->busy = 1;
    pthread_mutex_unlock(&s->lock);
    if (it->ev) {
      atomic_store(&it->ev->state, 0);
    } else {
      if (delay_us > 0) {
        struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
      }
      memmove(it->dst, it->src, it->n);
    }
    free(it);
    pthread_mutex_lock(&s->lock);
    s->busy = 0;
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

static void enqueue(fstream *s, item *it) {
  pthread_mutex_lock(&s->lock);
  it->next = NULL;
  *s->tail = it;
  s->tail = &it->next;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

aclError aclrtCreateStream(void **out) {
  if (need_ctx())
    return E_PARAM;
  fstream *s = calloc(1, sizeof *s);
  if (!s)
    return fail(E_NOMEM, "stream");
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  s->tail = &s->head;
  if (pthread_create(&s->th, NULL, stream_main, s)) {
    free(s);
    return fail(E_NOMEM, "stream thread");
  }
  *out = s;
  return OK;
}

aclError aclrtSynchronizeStream(void *st) {
  fstream *s = st;
  if (!s)
    return fail(E_PARAM, "NULL stream");
  pthread_mutex_lock(&s->lock);
  while (s->head || s->busy)
    pthread_cond_wait(&s->cond, &s->lock);
  pthread_mutex_unlock(&s->lock);
  return OK;
}

aclError aclrtDestroyStream(void *st) {
  if (need_ctx())
    return E_PARAM;
  fstream *s = st;
  if (!s)
    return fail(E_PARAM, "NULL stream");
  pthread_mutex_lock(&s->lock);
  s->stop = 1;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->th, NULL);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->lock);
  free(s);
  return OK;
}

aclError aclrtCreateEvent(void **out) {
  if (need_ctx())
    return E_PARAM;
  fevent *e = calloc(1, sizeof *e);
  if (!e)
    return fail(E_NOMEM, "event");
  *out = e;
  return OK;
}

aclError aclrtDestroyEvent(void *ev) {
  if (need_ctx())
    return E_PARAM;
  fevent *e = ev;
  if (!e)
    return fail(E_PARAM, "NULL event");
  while (atomic_load(&e->state) == 1)
    sched_yield();
  free(e);
  return OK;
}

aclError aclrtRecordEvent(void *ev, void *st) {
  if (need_ctx())
    return E_PARAM;
  if (!ev || !st)
    return fail(E_PARAM, "NULL event or stream");
  item *it = calloc(1, sizeof *it);
  if (!it)
    return fail(E_NOMEM, "item");
  it->ev = ev;
  atomic_store(&it->ev->state, 1);
  enqueue(st, it);
  return OK;
}

aclError aclrtQueryEventStatus(void *ev, int *status) {
  if (need_ctx())
    return E_PARAM;
  fevent *e = ev;
  if (!e || !status)
    return fail(E_PARAM, "NULL event");
  *status = atomic_load(&e->state) == 1 ? 0 /* NOT_READY */ : 1 /* COMPLETE */;
  return OK;
}

/* Where p lies: 1 NPU memory (n bytes inside one allocation), 0 host,
 * -1 an NPU range running past its allocation. */
static int where(const void *p, size_t n) {
  pthread_mutex_lock(&g_lock);
  alloc *a = find(p);
  int r = !a ? 0 : (size_t)((const uint8_t *)p - a->base) + n <= a->size ? 1 : -1;
  pthread_mutex_unlock(&g_lock);
  return r;
}

aclError aclrtMemcpyAsync(void *dst, size_t dmax, const void *src, size_t n, int kind, void *st) {
  if (need_ctx())
    return E_PARAM;
  if (!dst || !src || !st || dmax < n)
    return fail(E_PARAM, "aclrtMemcpyAsync: bad argument");
  int d = where(dst, n), s = where(src, n);
  static const int want[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}}; /* {src, dst} per kind */
  if (kind < 0 || kind > 3 || d < 0 || s < 0 || want[kind][0] != s || want[kind][1] != d)
    return fail(E_PARAM, "aclrtMemcpyAsync: the kind does not match the pointers");
  item *it = calloc(1, sizeof *it);
  if (!it)
    return fail(E_NOMEM, "item");
  it->dst = dst;
  it->src = src;
  it->n = n;
  enqueue(st, it);
  return OK;
}
