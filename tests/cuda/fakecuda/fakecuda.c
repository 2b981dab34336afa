/* libcuda.so.1 for tests: the CUDA driver calls mc-transport-nvlink makes
 * (plus the allocation and copy calls its tests use), implemented over host
 * memory, so the plugin's own code runs unchanged in CI (like the software
 * verbs device of tests/rdma).
 *
 * "Device" memory: each cuMemAlloc is a memfd mapped MAP_SHARED (populated:
 * device memory takes no page faults, and neither should its stand-in), so
 * cuIpcGetMemHandle can name it by (pid, fd number, size, allocation id)
 * and cuIpcOpenMemHandle in another process of the same user takes the fd
 * with pidfd_getfd (or /proc/<pid>/fd/N) and maps it.  A handle whose fd is
 * not this library's memfd of that size is refused (CUDA_ERROR_INVALID_HANDLE),
 * as the driver refuses a forged one.  Streams and events: copies are done
 * at once in cuMemcpyAsync, so an event is done when recorded, unless
 * MC_FAKECUDA_EVENT_DELAY=N makes it "not ready" for the first N queries
 * after its record (the tests set it, so callers' polling paths run).  cuPointerGetAttribute knows allocations and IPC
 * mappings; any other pointer is host memory (CUDA_ERROR_INVALID_VALUE).
 * cuMemGetHandleForAddressRange(DMA_BUF_FD) stands in for the dma-buf
 * export (as the rdma plugin uses it with ibv_reg_dmabuf_mr): the fd is a
 * new open of the allocation's memfd whose file position is the range's
 * offset in the allocation, since a real dma-buf starts at the range while
 * a memfd cannot start mid-file; the soft verbs device (tests/rdma/
 * softverbs) adds that position to the offsets it maps.  Ranges not whole
 * host pages inside one allocation of ours are CUDA_ERROR_INVALID_VALUE.
 *
 * Environment:
 *   MC_FAKECUDA_DEVICES      device count (default 1; 0: cuInit fails
 *                            CUDA_ERROR_NO_DEVICE)
 *   MC_FAKECUDA_EVENT_DELAY  queries an event stays not ready (default 0)
 *   MC_FAKECUDA_NO_GETPROC   1: cuGetProcAddress finds nothing (callers
 *                            fall back to dlsym)
 *   MC_FAKECUDA_FAIL_COPY    fail the Nth cuMemcpyAsync and later ones
 *                            (CUDA_ERROR_ILLEGAL_ADDRESS) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long cuuint64_t;
typedef struct fctx *CUcontext;
typedef struct fstream *CUstream;
typedef struct fevent *CUevent;
typedef struct {
  char reserved[64];
} CUipcMemHandle;

/* Prototypes of the exported calls (-Wmissing-prototypes). */
API CUresult cuInit(unsigned int flags);
API CUresult cuDriverGetVersion(int *v);
API CUresult cuDeviceGetCount(int *n);
API CUresult cuDeviceGet(CUdevice *d, int ordinal);
API CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d);
API CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d);
API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d);
API CUresult cuCtxSetCurrent(CUcontext c);
API CUresult cuCtxSynchronize(void);
API CUresult cuGetErrorString(CUresult r, const char **s);
API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size);
API CUresult cuMemFree_v2(CUdeviceptr p);
API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p);
API CUresult cuPointerGetAttribute(void *data, int attr, CUdeviceptr p);
API CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr p);
API CUresult cuMemGetHandleForAddressRange(void *handle, CUdeviceptr p, size_t size, int type,
                                           unsigned long long flags);
API CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *p, CUipcMemHandle h, unsigned int flags);
API CUresult cuIpcCloseMemHandle(CUdeviceptr p);
API CUresult cuStreamCreate(CUstream *s, unsigned int flags);
API CUresult cuStreamDestroy_v2(CUstream s);
API CUresult cuStreamSynchronize(CUstream s);
API CUresult cuEventCreate(CUevent *e, unsigned int flags);
API CUresult cuEventRecord(CUevent e, CUstream s);
API CUresult cuEventQuery(CUevent e);
API CUresult cuEventSynchronize(CUevent e);
API CUresult cuEventDestroy_v2(CUevent e);
API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s);
API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n);
API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n);
API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n);
API CUresult cuGetProcAddress(const char *sym, void **pfn, int version, cuuint64_t flags);
API CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int version, cuuint64_t flags, int *status);

enum {
  OK = 0,
  E_INVALID_VALUE = 1,
  E_OUT_OF_MEMORY = 2,
  E_NOT_INITIALIZED = 3,
  E_NO_DEVICE = 100,
  E_INVALID_DEVICE = 101,
  E_INVALID_CONTEXT = 201,
  E_INVALID_HANDLE = 400,
  E_NOT_FOUND = 500,
  E_NOT_READY = 600,
  E_ILLEGAL_ADDRESS = 700,
  E_NOT_SUPPORTED = 801,
};

struct fctx {
  int dev;
};
struct fstream {
  int dev;
};
struct fevent {
  int dev;
  int pending; /* queries left before it reports done */
};

/* A device allocation (ours) or an IPC mapping of another process's. */
typedef struct fmem {
  struct fmem *next;
  uint8_t *base;
  size_t size;
  int fd; /* ours: the memfd; mappings: -1 */
  int dev;
  int ipc;       /* 1: an IPC mapping */
  uint32_t pid;  /* mappings: the owner, with its allocation id */
  uint64_t id;
  int refs;
} fmem;

#define MAX_DEV 16
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fmem *mems;
static uint64_t next_id = 1;
static int ndev = -1;
static int event_delay;
static long fail_copy;
static long copies;
/* Bumped (under lock) whenever an allocation or mapping comes or goes, so
 * a thread's cached ranges below stay valid while it is unchanged. */
static _Atomic uint64_t generation = 1;
static struct fctx ctxs[MAX_DEV];
static int retained[MAX_DEV];
static __thread __attribute__((tls_model("initial-exec"))) CUcontext current;

static void env_load(void) {
  const char *v = getenv("MC_FAKECUDA_DEVICES");
  ndev = v ? atoi(v) : 1;
  if (ndev < 0 || ndev > MAX_DEV)
    ndev = 1;
  v = getenv("MC_FAKECUDA_EVENT_DELAY");
  event_delay = v ? atoi(v) : 0;
  v = getenv("MC_FAKECUDA_FAIL_COPY");
  fail_copy = v ? atol(v) : 0;
  for (int i = 0; i < MAX_DEV; i++)
    ctxs[i].dev = i;
}

/* The allocation or mapping containing [p, p+n), or NULL; under lock. */
static fmem *find(uint64_t p, size_t n) {
  for (fmem *m = mems; m; m = m->next) {
    uint64_t b = (uint64_t)(uintptr_t)m->base;
    if (p >= b && p < b + m->size)
      return p + n <= b + m->size ? m : NULL;
  }
  return NULL;
}

static int cur_dev(void) { return current ? current->dev : 0; }

API CUresult cuInit(unsigned int flags) {
  if (flags)
    return E_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  if (ndev < 0)
    env_load();
  int n = ndev;
  pthread_mutex_unlock(&lock);
  return n == 0 ? E_NO_DEVICE : OK;
}

API CUresult cuDriverGetVersion(int *v) {
  if (!v)
    return E_INVALID_VALUE;
  *v = 12040;
  return OK;
}

API CUresult cuDeviceGetCount(int *n) {
  if (ndev < 0)
    return E_NOT_INITIALIZED;
  *n = ndev;
  return OK;
}

API CUresult cuDeviceGet(CUdevice *d, int ordinal) {
  if (ndev < 0)
    return E_NOT_INITIALIZED;
  if (ordinal < 0 || ordinal >= ndev)
    return E_INVALID_DEVICE;
  *d = ordinal;
  return OK;
}

API CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
  if (d < 0 || d >= ndev || !v)
    return E_INVALID_DEVICE;
  switch (attr) {
  case 33: /* PCI bus id */
    *v = 0x10 + d;
    break;
  case 34: /* PCI device id */
  case 50: /* PCI domain */
    *v = 0;
    break;
  case 41: /* unified addressing */
    *v = 1;
    break;
  default: /* fabric handles, VMM, ...: not this device */
    *v = 0;
  }
  return OK;
}

API CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) {
  if (d < 0 || d >= ndev || !c)
    return E_INVALID_DEVICE;
  pthread_mutex_lock(&lock);
  retained[d]++;
  pthread_mutex_unlock(&lock);
  *c = &ctxs[d];
  return OK;
}

API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
  if (d < 0 || d >= ndev)
    return E_INVALID_DEVICE;
  pthread_mutex_lock(&lock);
  int bad = retained[d] <= 0;
  if (!bad)
    retained[d]--;
  pthread_mutex_unlock(&lock);
  return bad ? E_INVALID_CONTEXT : OK;
}

API CUresult cuCtxSetCurrent(CUcontext c) {
  if (c && (c < &ctxs[0] || c >= &ctxs[MAX_DEV]))
    return E_INVALID_CONTEXT;
  current = c;
  return OK;
}

API CUresult cuCtxSynchronize(void) { return OK; }

static const char *err_text(CUresult r) {
  switch (r) {
  case OK: return "no error";
  case E_INVALID_VALUE: return "invalid argument";
  case E_OUT_OF_MEMORY: return "out of memory";
  case E_NOT_INITIALIZED: return "initialization error";
  case E_NO_DEVICE: return "no CUDA-capable device is detected";
  case E_INVALID_DEVICE: return "invalid device ordinal";
  case E_INVALID_CONTEXT: return "invalid device context";
  case E_INVALID_HANDLE: return "invalid resource handle";
  case E_NOT_FOUND: return "named symbol not found";
  case E_NOT_READY: return "device not ready";
  case E_ILLEGAL_ADDRESS: return "an illegal memory access was encountered";
  case E_NOT_SUPPORTED: return "operation not supported";
  default: return NULL;
  }
}

API CUresult cuGetErrorString(CUresult r, const char **s) {
  *s = err_text(r);
  return *s ? OK : E_INVALID_VALUE;
}

API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size) {
  if (!p || size == 0)
    return E_INVALID_VALUE;
  size_t len = (size + 4095) & ~(size_t)4095;
  int fd = memfd_create("fakecuda", MFD_CLOEXEC);
  if (fd < 0)
    return E_OUT_OF_MEMORY;
  if (ftruncate(fd, (off_t)len)) {
    close(fd);
    return E_OUT_OF_MEMORY;
  }
  void *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  fmem *m = calloc(1, sizeof *m);
  if (b == MAP_FAILED || !m) {
    if (b != MAP_FAILED)
      munmap(b, len);
    close(fd);
    free(m);
    return E_OUT_OF_MEMORY;
  }
  m->base = b;
  m->size = size;
  m->fd = fd;
  m->dev = cur_dev();
  pthread_mutex_lock(&lock);
  m->id = next_id++;
  m->next = mems;
  mems = m;
  atomic_fetch_add(&generation, 1);
  pthread_mutex_unlock(&lock);
  *p = (CUdeviceptr)(uintptr_t)b;
  return OK;
}

static void unlink_mem(fmem *dead) {
  atomic_fetch_add(&generation, 1);
  for (fmem **pp = &mems; *pp; pp = &(*pp)->next)
    if (*pp == dead) {
      *pp = dead->next;
      return;
    }
}

API CUresult cuMemFree_v2(CUdeviceptr p) {
  pthread_mutex_lock(&lock);
  fmem *m = find(p, 1);
  if (!m || m->ipc || (uint64_t)(uintptr_t)m->base != p) {
    pthread_mutex_unlock(&lock);
    return E_INVALID_VALUE;
  }
  unlink_mem(m);
  pthread_mutex_unlock(&lock);
  munmap(m->base, (m->size + 4095) & ~(size_t)4095);
  close(m->fd);
  free(m);
  return OK;
}

API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size,
                                     CUdeviceptr p) {
  pthread_mutex_lock(&lock);
  fmem *m = find(p, 1);
  if (m) {
    if (base)
      *base = (CUdeviceptr)(uintptr_t)m->base;
    if (size)
      *size = m->size;
  }
  pthread_mutex_unlock(&lock);
  return m ? OK : E_NOT_FOUND;
}

API CUresult cuPointerGetAttribute(void *data, int attr, CUdeviceptr p) {
  pthread_mutex_lock(&lock);
  fmem *m = find(p, 1);
  fmem c = m ? *m : (fmem){0};
  pthread_mutex_unlock(&lock);
  if (!m)
    return E_INVALID_VALUE; /* host memory the driver never saw */
  switch (attr) {
  case 2: /* memory type */
    *(unsigned int *)data = 2; /* CU_MEMORYTYPE_DEVICE */
    return OK;
  case 9: /* device ordinal */
    *(int *)data = c.dev;
    return OK;
  case 10: /* legacy IPC capable */
    *(int *)data = 1;
    return OK;
  case 11: /* range start */
    *(CUdeviceptr *)data = (CUdeviceptr)(uintptr_t)c.base;
    return OK;
  case 12: /* range size */
    *(size_t *)data = c.size;
    return OK;
  default:
    return E_INVALID_VALUE;
  }
}

/* A dma-buf of [p, p+size): see the top comment for the fd's shape. */
API CUresult cuMemGetHandleForAddressRange(void *handle, CUdeviceptr p, size_t size, int type,
                                           unsigned long long flags) {
  const uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
  if (!handle || size == 0 || flags || (p | size) & (pg - 1))
    return E_INVALID_VALUE;
  if (type != 1) /* CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, the only one */
    return E_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  /* The mapping is whole pages (cuMemAlloc rounds up), so the range may
   * end at the allocation's last page boundary. */
  fmem *m = NULL;
  for (fmem *i = mems; i; i = i->next) {
    uint64_t b = (uint64_t)(uintptr_t)i->base, e = b + ((i->size + pg - 1) & ~(pg - 1));
    if (p >= b && p < e) {
      if (size <= e - p)
        m = i;
      break;
    }
  }
  int fd = -1;
  uint64_t off = 0;
  CUresult r = OK;
  if (!m || m->ipc)
    r = E_INVALID_VALUE; /* host memory, past the end, or an IPC mapping */
  else {
    off = p - (uint64_t)(uintptr_t)m->base;
    /* A new open file description (not dup): its own file position. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", m->fd);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || lseek(fd, (off_t)off, SEEK_SET) != (off_t)off)
      r = E_OUT_OF_MEMORY;
  }
  pthread_mutex_unlock(&lock);
  if (r) {
    if (fd >= 0)
      close(fd);
    return r;
  }
  *(int *)handle = fd;
  return OK;
}

/* The handle's layout (this library's own). */
typedef struct ipc_wire {
  char magic[8]; /* "FAKECUDA" */
  uint32_t pid;
  int32_t fd;
  uint64_t size;
  uint64_t id;
  int32_t dev;
} ipc_wire;

API CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr p) {
  if (!h)
    return E_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  fmem *m = find(p, 1);
  ipc_wire w = {{'F', 'A', 'K', 'E', 'C', 'U', 'D', 'A'}, 0, 0, 0, 0, 0};
  if (m && !m->ipc) {
    w.pid = (uint32_t)getpid();
    w.fd = m->fd;
    w.size = m->size;
    w.id = m->id;
    w.dev = m->dev;
  }
  pthread_mutex_unlock(&lock);
  if (!m || m->ipc)
    return E_INVALID_VALUE;
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, &w, sizeof w);
  return OK;
}

/* Takes fd `fd` of process pid: pidfd_getfd, else /proc/<pid>/fd/<fd>. */
static int take_fd(uint32_t pid, int fd) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (pfd >= 0) {
    int got = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    close(pfd);
    if (got >= 0)
      return got;
  }
#endif
  char path[64];
  snprintf(path, sizeof path, "/proc/%u/fd/%d", pid, fd);
  return open(path, O_RDWR | O_CLOEXEC);
}

API CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *p, CUipcMemHandle h,
                                   unsigned int flags) {
  (void)flags;
  ipc_wire w;
  memcpy(&w, h.reserved, sizeof w);
  if (!p || memcmp(w.magic, "FAKECUDA", 8) || w.pid == 0 || w.size == 0 ||
      w.size > (1ull << 40))
    return E_INVALID_HANDLE;
  if (w.pid == (uint32_t)getpid())
    return E_INVALID_CONTEXT; /* as the driver: not within one process */
  pthread_mutex_lock(&lock);
  for (fmem *m = mems; m; m = m->next)
    if (m->ipc && m->pid == w.pid && m->id == w.id) {
      m->refs++;
      *p = (CUdeviceptr)(uintptr_t)m->base;
      pthread_mutex_unlock(&lock);
      return OK;
    }
  pthread_mutex_unlock(&lock);
  int fd = take_fd(w.pid, w.fd);
  if (fd < 0)
    return E_INVALID_HANDLE;
  /* Only this library's allocations of the size the handle says. */
  char link[64], target[128];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  struct stat st;
  size_t len = (w.size + 4095) & ~(size_t)4095;
  if (n <= 0 || (target[n] = 0, strncmp(target, "/memfd:fakecuda", 15)) ||
      fstat(fd, &st) || (uint64_t)st.st_size != len) {
    close(fd);
    return E_INVALID_HANDLE;
  }
  void *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  fmem *m = calloc(1, sizeof *m);
  if (b == MAP_FAILED || !m) {
    if (b != MAP_FAILED)
      munmap(b, len);
    free(m);
    return E_OUT_OF_MEMORY;
  }
  m->base = b;
  m->size = w.size;
  m->fd = -1;
  m->dev = w.dev;
  m->ipc = 1;
  m->pid = w.pid;
  m->id = w.id;
  m->refs = 1;
  pthread_mutex_lock(&lock);
  m->next = mems;
  mems = m;
  atomic_fetch_add(&generation, 1);
  pthread_mutex_unlock(&lock);
  *p = (CUdeviceptr)(uintptr_t)b;
  return OK;
}

API CUresult cuIpcCloseMemHandle(CUdeviceptr p) {
  pthread_mutex_lock(&lock);
  fmem *m = find(p, 1);
  if (!m || !m->ipc || (uint64_t)(uintptr_t)m->base != p) {
    pthread_mutex_unlock(&lock);
    return E_INVALID_VALUE;
  }
  if (--m->refs > 0) {
    pthread_mutex_unlock(&lock);
    return OK;
  }
  unlink_mem(m);
  pthread_mutex_unlock(&lock);
  munmap(m->base, (m->size + 4095) & ~(size_t)4095);
  free(m);
  return OK;
}

API CUresult cuStreamCreate(CUstream *s, unsigned int flags) {
  (void)flags;
  if (!s)
    return E_INVALID_VALUE;
  if (!(*s = calloc(1, sizeof **s)))
    return E_OUT_OF_MEMORY;
  (*s)->dev = cur_dev();
  return OK;
}

API CUresult cuStreamDestroy_v2(CUstream s) {
  if (!s)
    return E_INVALID_HANDLE;
  free(s);
  return OK;
}

API CUresult cuStreamSynchronize(CUstream s) {
  (void)s;
  return OK;
}

API CUresult cuEventCreate(CUevent *e, unsigned int flags) {
  (void)flags;
  if (!e)
    return E_INVALID_VALUE;
  if (!(*e = calloc(1, sizeof **e)))
    return E_OUT_OF_MEMORY;
  (*e)->dev = cur_dev();
  return OK;
}

API CUresult cuEventRecord(CUevent e, CUstream s) {
  if (!e || (s && s->dev != e->dev))
    return E_INVALID_HANDLE;
  e->pending = event_delay; /* copies were done in cuMemcpyAsync */
  return OK;
}

API CUresult cuEventQuery(CUevent e) {
  if (!e)
    return E_INVALID_HANDLE;
  if (e->pending > 0) {
    e->pending--;
    return E_NOT_READY;
  }
  return OK;
}

API CUresult cuEventSynchronize(CUevent e) {
  if (!e)
    return E_INVALID_HANDLE;
  e->pending = 0;
  return OK;
}

API CUresult cuEventDestroy_v2(CUevent e) {
  if (!e)
    return E_INVALID_HANDLE;
  free(e);
  return OK;
}

/* The two ranges this thread's last copy found its pointers in: a copy
 * between the same two buffers again skips the lock and the list walk
 * (a real driver's copy costs the host no lock either).  Thread-locals
 * here are initial-exec: LeakSanitizer's exit scan crashed on the dynamic
 * TLS of this dlopen'd (and dlclose'd) library. */
static __thread __attribute__((tls_model("initial-exec"))) struct {
  uint64_t gen;
  uint64_t base[2], size[2];
} seen;

/* [p, p+n) against the device ranges: 0 when host memory or inside one
 * range, -1 when running past one.  Sets b and s to that range (0 if none).  Under
 * lock. */
static int classify_locked(uint64_t p, size_t n, uint64_t *b, uint64_t *s) {
  *b = *s = 0;
  for (fmem *m = mems; m; m = m->next) {
    uint64_t mb = (uint64_t)(uintptr_t)m->base;
    if (p >= mb && p < mb + m->size) {
      *b = mb;
      *s = m->size;
      return p + n > mb + m->size || p + n < p ? -1 : 0;
    }
  }
  return 0;
}

static int in_seen(uint64_t p, size_t n) {
  for (int i = 0; i < 2; i++)
    if (seen.size[i] && p >= seen.base[i] && p + n >= p &&
        p + n <= seen.base[i] + seen.size[i])
      return 1;
  return 0;
}

/* Copies with unified addressing: device ranges must lie inside their
 * allocation or mapping (an illegal address otherwise); other addresses
 * are host memory. */
static CUresult copy(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  if (!fail_copy && seen.gen == atomic_load(&generation) && in_seen(dst, n) &&
      in_seen(src, n)) {
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
    return OK;
  }
  pthread_mutex_lock(&lock);
  copies++;
  int fail = fail_copy > 0 && copies >= fail_copy;
  uint64_t b[2], sz[2];
  int bad = classify_locked(dst, n, &b[0], &sz[0]) |
            classify_locked(src, n, &b[1], &sz[1]);
  seen.gen = atomic_load(&generation);
  for (int i = 0; i < 2; i++) {
    seen.base[i] = b[i];
    seen.size[i] = bad ? 0 : sz[i];
  }
  pthread_mutex_unlock(&lock);
  if (fail || bad)
    return E_ILLEGAL_ADDRESS;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  return OK;
}

API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n,
                           CUstream s) {
  (void)s;
  return copy(dst, src, n);
}
API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  return copy(dst, src, n);
}
API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  return copy(dst, (CUdeviceptr)(uintptr_t)src, n);
}
API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  return copy((CUdeviceptr)(uintptr_t)dst, src, n);
}

/* cuGetProcAddress: every call above by its base name. */
#define ENTRY(name, fn) {name, (void *)fn}
static const struct {
  const char *name;
  void *fn;
} table[] = {
    ENTRY("cuInit", cuInit),
    ENTRY("cuDriverGetVersion", cuDriverGetVersion),
    ENTRY("cuDeviceGetCount", cuDeviceGetCount),
    ENTRY("cuDeviceGet", cuDeviceGet),
    ENTRY("cuDeviceGetAttribute", cuDeviceGetAttribute),
    ENTRY("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain),
    ENTRY("cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease_v2),
    ENTRY("cuCtxSetCurrent", cuCtxSetCurrent),
    ENTRY("cuCtxSynchronize", cuCtxSynchronize),
    ENTRY("cuGetErrorString", cuGetErrorString),
    ENTRY("cuMemAlloc", cuMemAlloc_v2),
    ENTRY("cuMemFree", cuMemFree_v2),
    ENTRY("cuMemGetAddressRange", cuMemGetAddressRange_v2),
    ENTRY("cuPointerGetAttribute", cuPointerGetAttribute),
    ENTRY("cuIpcGetMemHandle", cuIpcGetMemHandle),
    ENTRY("cuMemGetHandleForAddressRange", cuMemGetHandleForAddressRange),
    ENTRY("cuIpcOpenMemHandle", cuIpcOpenMemHandle_v2),
    ENTRY("cuIpcCloseMemHandle", cuIpcCloseMemHandle),
    ENTRY("cuStreamCreate", cuStreamCreate),
    ENTRY("cuStreamDestroy", cuStreamDestroy_v2),
    ENTRY("cuStreamSynchronize", cuStreamSynchronize),
    ENTRY("cuEventCreate", cuEventCreate),
    ENTRY("cuEventRecord", cuEventRecord),
    ENTRY("cuEventQuery", cuEventQuery),
    ENTRY("cuEventSynchronize", cuEventSynchronize),
    ENTRY("cuEventDestroy", cuEventDestroy_v2),
    ENTRY("cuMemcpyAsync", cuMemcpyAsync),
    ENTRY("cuMemcpyDtoD", cuMemcpyDtoD_v2),
    ENTRY("cuMemcpyHtoD", cuMemcpyHtoD_v2),
    ENTRY("cuMemcpyDtoH", cuMemcpyDtoH_v2),
};

static CUresult getproc(const char *sym, void **pfn, int version) {
  if (!sym || !pfn || version < 3020)
    return E_INVALID_VALUE;
  *pfn = NULL;
  const char *off = getenv("MC_FAKECUDA_NO_GETPROC");
  if (off && atoi(off))
    return E_NOT_FOUND;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (!strcmp(table[i].name, sym)) {
      *pfn = table[i].fn;
      return OK;
    }
  return E_NOT_FOUND;
}

API CUresult cuGetProcAddress(const char *sym, void **pfn, int version,
                              cuuint64_t flags) {
  (void)flags;
  return getproc(sym, pfn, version);
}

API CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int version,
                                 cuuint64_t flags, int *status) {
  (void)flags;
  CUresult r = getproc(sym, pfn, version);
  if (status)
    *status = r == OK ? 0 : 1; /* CU_GET_PROC_ADDRESS_SUCCESS / SYMBOL_NOT_FOUND */
  return r;
}
