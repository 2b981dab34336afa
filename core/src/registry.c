/* Local memory registry (registry.h): the buffers this engine exposes,
 * registered with every transport that can serve their memory kind. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"

#define COMP "registry"

struct mc_local_buf {
  uint64_t addr, len;
  uint32_t kind;
  int32_t device;
  char location[32];
  int shared_by; /* transport index that allocated it (mc_alloc_shared), -1 */
  /* MC_MEM_FILE (mc_register_file): the file range this buffer stands for;
   * [addr, +len) is address space the registry reserved (PROT_NONE). */
  char *path;
  uint64_t file_offset;
  uint32_t file_flags;
  void *mem[MC_MAX_TRANSPORTS];
  uint32_t rkey_len[MC_MAX_TRANSPORTS];
  uint8_t *rkey[MC_MAX_TRANSPORTS];
  _Atomic int64_t inflight; /* requests using it */
  /* 0 while the range is reserved and the transports register it (no
   * lock held): lookups, publication and unregistration skip it. */
  int ready;
  /* Rails of each transport ranked for this buffer's location. */
  mc_rail_rank rank[MC_MAX_TRANSPORTS];
};

struct mc_registry {
  mc_tset *set;
  const mc_topology *topo;
  mc_logger *log;
  mc_registry_publish_fn publish;
  void *publish_arg;
  pthread_rwlock_t lock;
  mc_local_buf **bufs; /* sorted by addr */
  size_t nbufs, capbufs;
};

int mc_registry_create(mc_tset *set, const mc_topology *topo,
                       mc_registry_publish_fn publish, void *arg,
                       mc_registry **out) {
  mc_registry *r = calloc(1, sizeof *r);
  if (!r)
    return MC_ENOMEM;
  r->set = set;
  r->topo = topo;
  r->log = set->log;
  r->publish = publish;
  r->publish_arg = arg;
  pthread_rwlock_init(&r->lock, NULL);
  *out = r;
  return 0;
}

static int publish(mc_registry *e) {
  return e->publish ? e->publish(e->publish_arg) : 0;
}

void *mc_lbuf_mem(const mc_local_buf *b, int t) { return b->mem[t]; }
uint32_t mc_lbuf_kind(const mc_local_buf *b) { return b->kind; }
const char *mc_lbuf_location(const mc_local_buf *b) { return b->location; }
const mc_rail_rank *mc_lbuf_rank(const mc_local_buf *b, int t) {
  return b->rank[t].rails ? &b->rank[t] : NULL;
}

/* Index of the first buffer whose end is above addr (binary search). */
static size_t lower_bound(mc_registry *e, uint64_t addr) {
  size_t lo = 0, hi = e->nbufs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (e->bufs[mid]->addr + e->bufs[mid]->len <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int parse_location(const char *loc, uint32_t *kind, int32_t *dev) {
  static const struct {
    const char *prefix;
    uint32_t kind;
  } kinds[] = {{"cpu", MC_MEM_CPU}, {"cuda", MC_MEM_CUDA}, {"hip", MC_MEM_HIP},
               {"npu", MC_MEM_NPU}, {"file", MC_MEM_FILE}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    size_t n = strlen(kinds[i].prefix);
    if (strncmp(loc, kinds[i].prefix, n) != 0)
      continue;
    if (loc[n] == '\0') {
      *kind = kinds[i].kind;
      *dev = -1;
      return 0;
    }
    if (loc[n] != ':')
      return MC_EINVAL;
    char *end;
    long v = strtol(loc + n + 1, &end, 10);
    if (end == loc + n + 1 || *end || v < 0 || v > 4095)
      return MC_EINVAL;
    *kind = kinds[i].kind;
    *dev = (int32_t)v;
    return 0;
  }
  return MC_EINVAL;
}

static void buf_free(mc_registry *e, mc_local_buf *b) {
  int closing = atomic_load(&e->set->closing); /* fini released registrations */
  for (int i = 0; i < e->set->n; i++) {
    if (b->mem[i] && !closing) {
      mc_transport *t = e->set->t[i];
      pthread_mutex_lock(&t->ctl_lock);
      int rc = t->ops->deregister_mem(t->ctx, b->mem[i]);
      pthread_mutex_unlock(&t->ctl_lock);
      if (rc)
        MC_WARN(e->log, COMP, "%s: deregister of 0x%llx failed: %s",
                t->plugin->name, (unsigned long long)b->addr, mc_strerror(rc));
    }
    free(b->rkey[i]);
  }
  mc_rails_rank_free(b->rank);
  if (b->path) {
    munmap((void *)(uintptr_t)b->addr, b->len);
    free(b->path);
  }
  free(b);
}

/* Registers b with every transport that serves its memory kind; *served
 * counts them.  Called without the registry lock. */
static int register_with_transports(mc_registry *e, mc_local_buf *b, int *served) {
  for (int i = 0; i < e->set->n; i++) {
    mc_transport *t = e->set->t[i];
    if (!((t->ops->local_mem_kinds | t->ops->remote_mem_kinds) & b->kind))
      continue;
    mc_mem_desc md = {.addr = b->addr, .len = b->len, .kind = b->kind,
                      .device = b->device, .location = b->location,
                      .path = b->path, .file_offset = b->file_offset,
                      .flags = b->file_flags};
    uint8_t key[MC_RKEY_MAX];
    size_t klen = sizeof key;
    pthread_mutex_lock(&t->ctl_lock);
    int r = t->ops->register_mem(t->ctx, &md, &b->mem[i], key, &klen);
    pthread_mutex_unlock(&t->ctl_lock);
    if (r == MC_ENOTSUP) {
      b->mem[i] = NULL;
      continue;
    }
    if (r || klen > MC_RKEY_MAX) {
      MC_ERROR(e->log, COMP, "%s: register 0x%llx+%llu failed: %s",
               t->plugin->name, (unsigned long long)b->addr,
               (unsigned long long)b->len, mc_strerror(r ? r : MC_EPROTO));
      mc_last_error_set("mc_register 0x%llx+%llu (%s): transport %s refused it: %s",
                        (unsigned long long)b->addr, (unsigned long long)b->len,
                        b->location, t->plugin->name, mc_strerror(r ? r : MC_EPROTO));
      return r ? r : MC_EPROTO;
    }
    b->rkey[i] = malloc(klen ? klen : 1);
    if (!b->rkey[i])
      return MC_ENOMEM;
    memcpy(b->rkey[i], key, klen);
    b->rkey_len[i] = (uint32_t)klen;
    (*served)++;
  }
  return 0;
}

/* Takes entry b out of the list; under the write lock. */
static void list_remove(mc_registry *e, mc_local_buf *b) {
  size_t pos = lower_bound(e, b->addr);
  while (pos < e->nbufs && e->bufs[pos] != b)
    pos++;
  if (pos == e->nbufs)
    return;
  memmove(&e->bufs[pos], &e->bufs[pos + 1], (e->nbufs - pos - 1) * sizeof *e->bufs);
  e->nbufs--;
}

/* Memory registered without a location may be device memory only a
 * plugin's runtime knows (a cuMemAlloc'd pointer): asks every loaded
 * transport that has query_mem (ABI 1.3), in rank order.  Returns 1 with
 * loc set ("cuda:3") when one claims the range, 0 when none does (host
 * memory), or MC_EINVAL (mc_last_error set) when one says only part of
 * the range is its memory. */
static int ask_transports(mc_registry *e, uint64_t a, size_t len, char *loc,
                          size_t loclen) {
  static const struct {
    uint32_t kind;
    const char *prefix;
  } names[] = {{MC_MEM_CUDA, "cuda"}, {MC_MEM_HIP, "hip"}, {MC_MEM_NPU, "npu"}};
  for (int i = 0; i < e->set->n; i++) {
    mc_transport *t = e->set->t[i];
    if (!t->ops->query_mem)
      continue;
    uint32_t kind = 0;
    int32_t dev = -1;
    pthread_mutex_lock(&t->ctl_lock);
    int rc = t->ops->query_mem(t->ctx, a, len, &kind, &dev);
    pthread_mutex_unlock(&t->ctl_lock);
    if (rc == MC_ENOENT)
      continue;
    if (rc == MC_EINVAL) {
      MC_ERROR(e->log, COMP, "register 0x%llx+%zu: %s says only part of the "
               "range is its device memory", (unsigned long long)a, len,
               t->plugin->name);
      mc_last_error_set("mc_register 0x%llx+%zu: transport %s says only part "
                        "of the range is device memory (register each "
                        "allocation on its own)", (unsigned long long)a, len,
                        t->plugin->name);
      return MC_EINVAL;
    }
    const char *prefix = NULL;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
      if (names[k].kind == kind)
        prefix = names[k].prefix;
    if (rc || !prefix || dev < 0 || dev > 4095) {
      /* A plugin defect: say so and let the next one (or the topology)
       * decide rather than fail the user's call. */
      MC_WARN(e->log, COMP, "%s: query_mem(0x%llx) gave %s, kind 0x%x, device "
              "%d; ignored", t->plugin->name, (unsigned long long)a,
              mc_strerror(rc), kind, dev);
      continue;
    }
    snprintf(loc, loclen, "%s:%d", prefix, dev);
    MC_DEBUG(e->log, COMP, "0x%llx+%zu is %s memory (said %s)",
             (unsigned long long)a, len, loc, t->plugin->name);
    return 1;
  }
  return 0;
}

/* A new buffer record for [addr, addr+len) at location (NULL: the page's
 * NUMA node), its rails ranked; nothing registered yet. */
static int buf_new(mc_registry *e, void *addr, size_t len, const char *location,
                   int shared_by, mc_local_buf **out) {
  uint64_t a = (uint64_t)(uintptr_t)addr;
  char loc[32];
  int32_t dev = -1;
  uint32_t kind = MC_MEM_CPU;
  if (location) {
    if (strlen(location) >= sizeof loc || parse_location(location, &kind, &dev)) {
      MC_ERROR(e->log, COMP,
               "register 0x%llx+%zu: bad location '%s' (expected cpu:N, cuda:N, "
               "hip:N, npu:N or file:N)",
               (unsigned long long)a, len, location);
      mc_last_error_set("mc_register 0x%llx+%zu: bad location '%s' (expected "
                        "cpu:N, cuda:N, hip:N, npu:N or file:N)",
                        (unsigned long long)a, len, location);
      return MC_EINVAL;
    }
    snprintf(loc, sizeof loc, "%s", location);
  } else {
    int rc = ask_transports(e, a, len, loc, sizeof loc);
    if (rc < 0)
      return rc;
    if (rc == 0)
      mc_topo_locate_addr(addr, loc, sizeof loc); /* "cpu:N" of the page */
    parse_location(loc, &kind, &dev);
  }
  mc_local_buf *b = calloc(1, sizeof *b);
  if (!b)
    return MC_ENOMEM;
  b->addr = a;
  b->len = len;
  b->kind = kind;
  b->device = dev;
  b->shared_by = shared_by;
  snprintf(b->location, sizeof b->location, "%s", loc);
  if (mc_rails_rank(e->set, e->topo, b->location, b->rank)) {
    buf_free(e, b);
    return MC_ENOMEM;
  }
  *out = b;
  return 0;
}

/* Reserves b's range: the entry goes into the list not yet ready, so an
 * overlapping registration is refused (MC_EEXIST) while this one talks to
 * the plugins, and lookups and publication skip it until it is. */
static int reserve(mc_registry *e, mc_local_buf *b) {
  int rc = 0;
  pthread_rwlock_wrlock(&e->lock);
  size_t pos = lower_bound(e, b->addr);
  if (pos < e->nbufs && e->bufs[pos]->addr < b->addr + b->len) {
    MC_ERROR(e->log, COMP,
             "register 0x%llx+%llu overlaps registered 0x%llx+%llu",
             (unsigned long long)b->addr, (unsigned long long)b->len,
             (unsigned long long)e->bufs[pos]->addr,
             (unsigned long long)e->bufs[pos]->len);
    rc = MC_EEXIST;
  } else if (e->nbufs == e->capbufs) {
    size_t nc = e->capbufs ? e->capbufs * 2 : 16;
    mc_local_buf **nb = realloc(e->bufs, nc * sizeof *nb);
    if (nb) {
      e->bufs = nb;
      e->capbufs = nc;
    } else {
      rc = MC_ENOMEM;
    }
  }
  if (!rc) {
    memmove(&e->bufs[pos + 1], &e->bufs[pos], (e->nbufs - pos) * sizeof *e->bufs);
    e->bufs[pos] = b;
    e->nbufs++;
  }
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

/* Registers one buffer with the transports and inserts it; publishes
 * nothing.  shared_by: the transport whose alloc_mem made it, or -1. */
static int insert_new(mc_registry *e, mc_local_buf *b);

static int insert_buf(mc_registry *e, void *addr, size_t len,
                      const char *location, int shared_by) {
  if (!e || !addr || len == 0)
    return MC_EINVAL;
  uint64_t a = (uint64_t)(uintptr_t)addr;
  if (a + len < a)
    return MC_ERANGE;
  mc_local_buf *b = NULL;
  int rc = buf_new(e, addr, len, location, shared_by, &b);
  if (rc)
    return rc;
  return insert_new(e, b);
}

/* Reserves b's range, registers it with the transports and makes it ready;
 * frees b on failure. */
static int insert_new(mc_registry *e, mc_local_buf *b) {
  uint64_t a = b->addr;
  size_t len = (size_t)b->len;
  int rc = reserve(e, b);
  if (rc) {
    buf_free(e, b);
    return rc;
  }
  /* The plugins are called without the registry lock (pinning gigabytes
   * takes seconds; transfers on other buffers take the read lock
   * meanwhile); each transport's control calls stay serialized. */
  int served = 0;
  rc = register_with_transports(e, b, &served);
  if (!rc && !served) {
    MC_ERROR(e->log, COMP, "register 0x%llx+%zu (%s): no loaded transport serves this memory kind",
             (unsigned long long)a, len, b->location);
    /* tcp and shm move host memory only; device memory needs its own
     * transport (nvlink for cuda:N). */
    mc_last_error_set("mc_register 0x%llx+%zu (%s): no loaded transport serves "
                      "this memory kind%s", (unsigned long long)a, len, b->location,
                      b->kind == MC_MEM_CPU ? ""
                      : " (tcp and shm move host memory only; load the device's "
                        "transport, e.g. nvlink for cuda:N)");
    rc = MC_ENOTSUP;
  }
  /* Publish (ready) or roll back the reservation, under a short lock. */
  pthread_rwlock_wrlock(&e->lock);
  if (rc)
    list_remove(e, b);
  else
    b->ready = 1;
  pthread_rwlock_unlock(&e->lock);
  if (rc) {
    buf_free(e, b);
    return rc;
  }
  MC_DEBUG(e->log, COMP, "registered 0x%llx+%zu %s with %d transport(s)",
           (unsigned long long)a, len, b->location, served);
  return 0;
}

/* Takes the buffer starting at addr out of the list (not yet freed);
 * MC_EBUSY while local transfers use it.  Under the lock only the list
 * changes: once out of it no request can acquire it (and none holds it), so
 * the caller deregisters it from the transports (buf_free) unlocked. */
static int take_buf(mc_registry *e, void *addr, mc_local_buf **taken) {
  if (!e || !addr)
    return MC_EINVAL;
  uint64_t a = (uint64_t)(uintptr_t)addr;
  pthread_rwlock_wrlock(&e->lock);
  size_t pos = lower_bound(e, a);
  if (pos >= e->nbufs || e->bufs[pos]->addr != a || !e->bufs[pos]->ready) {
    pthread_rwlock_unlock(&e->lock);
    return MC_ENOENT;
  }
  mc_local_buf *b = e->bufs[pos];
  if (atomic_load(&b->inflight) > 0) {
    pthread_rwlock_unlock(&e->lock);
    return MC_EBUSY;
  }
  memmove(&e->bufs[pos], &e->bufs[pos + 1], (e->nbufs - pos - 1) * sizeof *e->bufs);
  e->nbufs--;
  pthread_rwlock_unlock(&e->lock);
  *taken = b;
  return 0;
}

/* Publishes after inserting regions [0, n); on failure takes them out
 * again (an error means "not registered": a caller that then frees the
 * memory must not leave it registered with the transports, nor in the
 * backend's desired state; no peer saw it yet). */
static int publish_or_undo(mc_registry *e, const mc_region *r, uint32_t n) {
  int rc = publish(e);
  if (!rc)
    return 0;
  MC_ERROR(e->log, COMP,
           "register of %u region(s) at 0x%llx rolled back: the segment could "
           "not be republished (%s)",
           n, (unsigned long long)(uintptr_t)r[0].addr, mc_strerror(rc));
  for (uint32_t i = 0; i < n; i++) {
    mc_local_buf *b = NULL;
    /* Busy only if the application already moves data through memory it
     * is still registering; then it stays registered rather than freed
     * under that transfer.  Freed ones are revoked in the transports, so a
     * retry of the failed publication that shows them to peers is harmless. */
    int trc = take_buf(e, r[i].addr, &b);
    if (trc == 0)
      buf_free(e, b);
    else
      MC_ERROR(e->log, COMP, "0x%llx stays registered: %s",
               (unsigned long long)(uintptr_t)r[i].addr, mc_strerror(trc));
  }
  publish(e); /* the backend's desired state without them */
  return rc;
}

int mc_registry_register(mc_registry *e, const mc_region *regions, uint32_t n,
                      uint32_t *failed) {
  if (failed)
    *failed = n;
  if (!e || (!regions && n))
    return MC_EINVAL;
  if (n == 0)
    return 0;
  for (uint32_t i = 0; i < n; i++) {
    int rc = insert_buf(e, regions[i].addr, regions[i].len, regions[i].location, -1);
    if (rc) {
      if (failed)
        *failed = i;
      for (uint32_t j = i; j-- > 0;) {
        mc_local_buf *b = NULL;
        if (take_buf(e, regions[j].addr, &b) == 0)
          buf_free(e, b);
      }
      return rc;
    }
  }
  return publish_or_undo(e, regions, n);
}

int mc_registry_unregister(mc_registry *e, void *const *addrs, uint32_t n,
                        uint32_t *failed) {
  if (failed)
    *failed = n;
  if (!e || (!addrs && n))
    return MC_EINVAL;
  if (n == 0)
    return 0;
  /* All or nothing: every address is checked under the lock before any is
   * taken out. */
  pthread_rwlock_wrlock(&e->lock);
  int rc = 0;
  uint32_t bad = n;
  for (uint32_t i = 0; i < n && !rc; i++) {
    uint64_t a = (uint64_t)(uintptr_t)addrs[i];
    size_t pos = lower_bound(e, a);
    if (!addrs[i] || pos >= e->nbufs || e->bufs[pos]->addr != a ||
        !e->bufs[pos]->ready)
      rc = addrs[i] ? MC_ENOENT : MC_EINVAL;
    else if (atomic_load(&e->bufs[pos]->inflight) > 0)
      rc = MC_EBUSY;
    else
      for (uint32_t j = 0; j < i && !rc; j++)
        if (addrs[j] == addrs[i])
          rc = MC_EINVAL; /* listed twice */
    if (rc)
      bad = i;
  }
  mc_local_buf **taken = rc ? NULL : calloc(n, sizeof *taken);
  if (!rc && !taken)
    rc = MC_ENOMEM;
  for (uint32_t i = 0; !rc && i < n; i++) {
    size_t pos = lower_bound(e, (uint64_t)(uintptr_t)addrs[i]);
    taken[i] = e->bufs[pos];
    memmove(&e->bufs[pos], &e->bufs[pos + 1], (e->nbufs - pos - 1) * sizeof *e->bufs);
    e->nbufs--;
  }
  pthread_rwlock_unlock(&e->lock);
  if (rc) {
    if (failed)
      *failed = bad;
    return rc;
  }
  /* Withdraw them from peers first (the backend retries a failed publish
   * by itself), then revoke them in the transports. */
  publish(e);
  for (uint32_t i = 0; i < n; i++)
    buf_free(e, taken[i]);
  free(taken);
  return 0;
}

int mc_registry_alloc_shared(mc_registry *e, size_t len, const char *location, void **addr) {
  if (!e || !addr || len == 0)
    return MC_EINVAL;
  for (int i = 0; i < e->set->n; i++) {
    mc_transport *t = e->set->t[i];
    if (!t->ops->alloc_mem)
      continue;
    void *p = NULL;
    pthread_mutex_lock(&t->ctl_lock);
    int rc = t->ops->alloc_mem(t->ctx, len, location ? location : "cpu:0", &p);
    pthread_mutex_unlock(&t->ctl_lock);
    if (rc == MC_ENOTSUP)
      continue;
    if (rc)
      return rc;
    mc_region r = {p, len, location ? location : "cpu:0"};
    rc = insert_buf(e, p, len, r.location, i);
    if (!rc)
      rc = publish_or_undo(e, &r, 1);
    if (rc) {
      pthread_mutex_lock(&t->ctl_lock);
      t->ops->free_mem(t->ctx, p, len);
      pthread_mutex_unlock(&t->ctl_lock);
      return rc;
    }
    *addr = p;
    return 0;
  }
  MC_ERROR(e->log, COMP,
           "mc_alloc_shared: no loaded transport offers shared memory (load shm)");
  return MC_ENOTSUP;
}

/* Size of the file or block device open at fd, or -1 (errno set). */
static int64_t file_size(int fd, const struct stat *st) {
  if (S_ISREG(st->st_mode))
    return st->st_size;
  if (S_ISBLK(st->st_mode)) {
    uint64_t sz = 0;
    if (ioctl(fd, BLKGETSIZE64, &sz) != 0)
      return -1;
    return (int64_t)sz;
  }
  errno = EINVAL;
  return -1;
}

int mc_registry_register_file(mc_registry *e, const char *path, uint64_t offset,
                              uint64_t len, uint32_t flags, void **addr) {
  if (!e || !path || !*path || !addr || (flags & ~MC_FILE_READ_ONLY)) {
    mc_last_error_set("mc_register_file: %s", !path || !*path ? "no path"
                      : !addr ? "addr is NULL" : "unknown flags");
    return MC_EINVAL;
  }
  /* Open it as the transports will, so a missing path or a permission
   * problem is reported here, naming the file, not at the first transfer. */
  int ro = (flags & MC_FILE_READ_ONLY) != 0;
  int fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    int rc = err == ENOENT || err == ENOTDIR ? MC_ENOENT
             : err == EACCES || err == EPERM || err == EROFS ? MC_EACCES
                                                              : MC_EINVAL;
    mc_last_error_set("mc_register_file: cannot open '%s' %s: %s%s", path,
                      ro ? "read-only" : "read-write", strerror(err),
                      rc == MC_EACCES && !ro ? " (MC_FILE_READ_ONLY opens it read-only)" : "");
    MC_ERROR(e->log, COMP, "%s", mc_last_error());
    return rc;
  }
  struct stat st;
  int64_t size = fstat(fd, &st) == 0 ? file_size(fd, &st) : -1;
  int err = errno;
  close(fd);
  if (size < 0) {
    mc_last_error_set("mc_register_file: '%s' is not a regular file or block device: %s",
                      path, strerror(err));
    MC_ERROR(e->log, COMP, "%s", mc_last_error());
    return MC_EINVAL;
  }
  if (len == 0) {
    if ((uint64_t)size <= offset) {
      mc_last_error_set("mc_register_file: '%s': offset %llu is at or past its end (%lld bytes)",
                        path, (unsigned long long)offset, (long long)size);
      return MC_EINVAL;
    }
    len = (uint64_t)size - offset;
  }
  /* A block device cannot grow; a regular file can (writes extend it), so
   * only the device's end bounds the range. */
  if (offset + len < offset || len > (UINT64_MAX >> 8) ||
      (S_ISBLK(st.st_mode) && offset + len > (uint64_t)size)) {
    mc_last_error_set("mc_register_file: '%s': range %llu+%llu is beyond the device (%lld bytes)",
                      path, (unsigned long long)offset, (unsigned long long)len,
                      (long long)size);
    return MC_ERANGE;
  }
  void *va = mmap(NULL, (size_t)len, PROT_NONE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (va == MAP_FAILED) {
    mc_last_error_set("mc_register_file: '%s': cannot reserve %llu bytes of address space: %s",
                      path, (unsigned long long)len, strerror(errno));
    return MC_ENOMEM;
  }
  mc_local_buf *b = NULL;
  int rc = buf_new(e, va, (size_t)len, "file", -1, &b);
  if (rc) {
    munmap(va, (size_t)len);
    return rc;
  }
  b->path = strdup(path); /* buf_free unmaps va from here on */
  if (!b->path) {
    munmap(va, (size_t)len);
    buf_free(e, b);
    return MC_ENOMEM;
  }
  b->file_offset = offset;
  b->file_flags = ro ? MC_MEM_F_READ_ONLY : 0;
  rc = insert_new(e, b);
  if (rc) {
    if (rc == MC_ENOTSUP)
      mc_last_error_set("mc_register_file: '%s': no loaded transport serves files "
                        "(load nvmeof)", path);
    else
      mc_last_error_set("mc_register_file: '%s': a transport refused it: %s", path,
                        mc_strerror(rc));
    return rc;
  }
  mc_region r = {va, (size_t)len, "file"};
  rc = publish_or_undo(e, &r, 1);
  if (rc) {
    mc_last_error_set("mc_register_file: '%s': the segment could not be republished: %s",
                      path, mc_strerror(rc));
    return rc;
  }
  *addr = va;
  return 0;
}

int mc_registry_free_shared(mc_registry *e, void *addr) {
  mc_local_buf *b = NULL;
  int rc = take_buf(e, addr, &b);
  if (rc)
    return rc;
  publish(e); /* withdraw it from peers before revoking it */
  int by = b->shared_by;
  uint64_t len = b->len;
  buf_free(e, b);
  if (by < 0) {
    MC_WARN(e->log, COMP, "mc_free_shared(%p): not from mc_alloc_shared; only unregistered",
            addr);
    return MC_EINVAL;
  }
  mc_transport *t = e->set->t[by];
  pthread_mutex_lock(&t->ctl_lock);
  rc = t->ops->free_mem(t->ctx, addr, len);
  pthread_mutex_unlock(&t->ctl_lock);
  return rc;
}

mc_local_buf *mc_registry_acquire(mc_registry *e, uint64_t addr, uint64_t len) {
  pthread_rwlock_rdlock(&e->lock);
  size_t pos = lower_bound(e, addr);
  mc_local_buf *b = NULL;
  if (pos < e->nbufs) {
    mc_local_buf *c = e->bufs[pos];
    if (c->ready && addr >= c->addr && addr + len >= addr &&
        addr + len <= c->addr + c->len) {
      b = c;
      atomic_fetch_add(&b->inflight, 1);
    }
  }
  pthread_rwlock_unlock(&e->lock);
  return b;
}

void mc_registry_release(mc_local_buf *b) {
  if (b)
    atomic_fetch_sub(&b->inflight, 1);
}

int mc_registry_fill_desc(mc_registry *e, mc_seg_desc *d) {
  pthread_rwlock_rdlock(&e->lock);
  d->nbuffers = 0;
  d->buffers = e->nbufs ? calloc(e->nbufs, sizeof *d->buffers) : NULL;
  if (e->nbufs && !d->buffers) {
    pthread_rwlock_unlock(&e->lock);
    return MC_ENOMEM;
  }
  for (size_t i = 0; i < e->nbufs; i++) {
    mc_local_buf *b = e->bufs[i];
    if (!b->ready)
      continue; /* still registering with the transports */
    mc_desc_buffer *db = &d->buffers[d->nbuffers++];
    db->addr = b->addr;
    db->len = b->len;
    db->kind = b->kind;
    snprintf(db->location, sizeof db->location, "%s", b->location);
    db->keys = calloc((size_t)e->set->n + 1, sizeof *db->keys);
    if (!db->keys) {
      pthread_rwlock_unlock(&e->lock);
      return MC_ENOMEM;
    }
    for (int t = 0; t < e->set->n; t++) {
      if (!b->mem[t])
        continue;
      mc_desc_key *k = &db->keys[db->nkeys++];
      k->transport = (uint32_t)t;
      k->len = b->rkey_len[t];
      memcpy(k->bytes, b->rkey[t], b->rkey_len[t]);
    }
  }
  pthread_rwlock_unlock(&e->lock);
  return 0;
}

void mc_registry_destroy(mc_registry *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->nbufs; i++) {
    mc_local_buf *b = e->bufs[i];
    int by = b->shared_by;
    void *addr = (void *)(uintptr_t)b->addr;
    uint64_t len = b->len;
    buf_free(e, b);
    if (by >= 0 && !atomic_load(&e->set->closing))
      e->set->t[by]->ops->free_mem(e->set->t[by]->ctx, addr, len);
  }
  free(e->bufs);
  pthread_rwlock_destroy(&e->lock);
  free(e);
}
