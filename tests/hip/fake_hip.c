/* fake_hip.c - a software AMD GPU behind the HIP runtime API, so the hip
 * plugin's own code moves data between two processes in CI (built as
 * libmc-fake-amdhip64.so; the tests point transports.hip.library at it).
 *
 * Only the calls the plugin makes (plugins/hip/hip_api.c) plus hipMalloc
 * and hipFree for the tests, with the prototypes of Debian's
 * hip/hip_runtime_api.h, so the compiler checks the fake against the real
 * API.  What it models:
 *   - device memory: each hipMalloc is its own memfd, mapped shared (so the
 *     test can also read it directly, as a host-coherent BAR would allow);
 *   - IPC: a handle is (magic, pid, fd, size, nonce); hipIpcOpenMemHandle
 *     opens /proc/<pid>/fd/<fd> (falling back to pidfd_getfd) and maps it,
 *     and checks the nonce stored in the memfd's name so a forged handle
 *     naming some other fd of the process is refused;
 *   - streams: one worker thread each, running copies and event markers in
 *     order; events are NotReady until their marker ran, so completions
 *     really are asynchronous.  FAKE_HIP_COPY_DELAY_US slows every copy;
 *     fake_hip_fail_copies(n) makes the next n hipMemcpyAsync fail.
 *   - hipPointerGetAttributes/hipMemGetAddressRange answer for device
 *     allocations (imported ones too) and fail with hipErrorInvalidValue
 *     for anything else, setting the thread's last error.
 * FAKE_HIP_DEVICES sets the device count (default 1). */
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
#include <time.h>
#include <unistd.h>

#include <hip/hip_runtime_api.h>

#define FAKE_EXPORT __attribute__((visibility("default")))

/* Test controls (looked up with dlsym by the tests). */
FAKE_EXPORT void fake_hip_fail_copies(int n);
FAKE_EXPORT int fake_hip_host_registered(void);
FAKE_EXPORT int fake_hip_allocs(void);
#define FAKE_MAGIC 0x50494846u /* "FHIP" */

typedef struct alloc {
  struct alloc *next;
  uint8_t *base;
  size_t size;
  int fd;       /* our memfd; -1 for an imported mapping */
  uint64_t nonce;
  int device;
} alloc;

typedef struct handle_fmt {
  uint32_t magic, pid;
  int32_t fd, device;
  uint64_t size, nonce;
} handle_fmt;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static alloc *g_allocs;
static _Thread_local hipError_t last_err;
static _Thread_local int cur_device;
static atomic_int fail_copies;
static atomic_int host_registered;

static hipError_t err(hipError_t e) {
  if (e != hipSuccess)
    last_err = e;
  return e;
}

static int ndevices(void) {
  const char *s = getenv("FAKE_HIP_DEVICES");
  int n = s ? atoi(s) : 1;
  return n < 0 ? 0 : n;
}

/* The allocation containing p (lock held). */
static alloc *find(const void *p) {
  for (alloc *a = g_allocs; a; a = a->next)
    if ((const uint8_t *)p >= a->base && (const uint8_t *)p < a->base + a->size)
      return a;
  return NULL;
}

FAKE_EXPORT void fake_hip_fail_copies(int n) { atomic_store(&fail_copies, n); }
FAKE_EXPORT int fake_hip_host_registered(void) { return atomic_load(&host_registered); }
/* Allocations alive in this process (hipMalloc'ed and imported). */
FAKE_EXPORT int fake_hip_allocs(void) {
  int n = 0;
  pthread_mutex_lock(&g_lock);
  for (alloc *a = g_allocs; a; a = a->next)
    n++;
  pthread_mutex_unlock(&g_lock);
  return n;
}

hipError_t hipInit(unsigned int flags) {
  return err(flags ? hipErrorInvalidValue : hipSuccess);
}

hipError_t hipGetDeviceCount(int *count) {
  *count = ndevices();
  return err(*count ? hipSuccess : hipErrorNoDevice);
}

hipError_t hipSetDevice(int device) {
  if (device < 0 || device >= ndevices())
    return err(hipErrorInvalidDevice);
  cur_device = device;
  return hipSuccess;
}

hipError_t hipGetLastError(void) {
  hipError_t e = last_err;
  last_err = hipSuccess;
  return e;
}

const char *hipGetErrorName(hipError_t e) {
  switch (e) {
  case hipSuccess: return "hipSuccess";
  case hipErrorInvalidValue: return "hipErrorInvalidValue";
  case hipErrorInvalidDevice: return "hipErrorInvalidDevice";
  case hipErrorNoDevice: return "hipErrorNoDevice";
  case hipErrorNotReady: return "hipErrorNotReady";
  case hipErrorOutOfMemory: return "hipErrorOutOfMemory";
  case hipErrorInvalidHandle: return "hipErrorInvalidHandle";
  default: return "hipErrorUnknown";
  }
}

hipError_t hipDeviceGetPCIBusId(char *bus, int len, int device) {
  if (device < 0 || device >= ndevices() || len < 13)
    return err(hipErrorInvalidValue);
  snprintf(bus, (size_t)len, "0000:%02x:00.0", 0x10 + device);
  return hipSuccess;
}

hipError_t hipMalloc(void **p, size_t size) {
  if (!p || !size)
    return err(hipErrorInvalidValue);
  alloc *a = calloc(1, sizeof *a);
  if (!a)
    return err(hipErrorOutOfMemory);
  uint64_t nonce = 0;
  if (getentropy(&nonce, sizeof nonce))
    nonce = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
  char name[64];
  snprintf(name, sizeof name, "fake-hip-%016llx", (unsigned long long)nonce);
  a->fd = memfd_create(name, MFD_CLOEXEC);
  if (a->fd < 0 || ftruncate(a->fd, (off_t)size)) {
    if (a->fd >= 0)
      close(a->fd);
    free(a);
    return err(hipErrorOutOfMemory);
  }
  a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
  if (a->base == MAP_FAILED) {
    close(a->fd);
    free(a);
    return err(hipErrorOutOfMemory);
  }
  a->size = size;
  a->nonce = nonce;
  a->device = cur_device;
  pthread_mutex_lock(&g_lock);
  a->next = g_allocs;
  g_allocs = a;
  pthread_mutex_unlock(&g_lock);
  *p = a->base;
  return hipSuccess;
}

/* Unlinks the allocation starting at p (exact base); NULL if none. */
static alloc *take(void *p, int imported) {
  pthread_mutex_lock(&g_lock);
  alloc *a = NULL;
  for (alloc **pp = &g_allocs; *pp; pp = &(*pp)->next)
    if ((*pp)->base == p && ((*pp)->fd < 0) == imported) {
      a = *pp;
      *pp = a->next;
      break;
    }
  pthread_mutex_unlock(&g_lock);
  return a;
}

hipError_t hipFree(void *p) {
  alloc *a = take(p, 0);
  if (!a)
    return err(hipErrorInvalidValue);
  munmap(a->base, a->size);
  close(a->fd);
  free(a);
  return hipSuccess;
}

hipError_t hipPointerGetAttributes(hipPointerAttribute_t *attr, const void *p) {
  pthread_mutex_lock(&g_lock);
  alloc *a = find(p);
  if (a) {
    memset(attr, 0, sizeof *attr);
    attr->memoryType = hipMemoryTypeDevice;
    attr->device = a->device;
    attr->devicePointer = (void *)p;
  }
  pthread_mutex_unlock(&g_lock);
  return err(a ? hipSuccess : hipErrorInvalidValue);
}

hipError_t hipMemGetAddressRange(hipDeviceptr_t *base, size_t *size, hipDeviceptr_t p) {
  pthread_mutex_lock(&g_lock);
  alloc *a = find(p);
  if (a) {
    *base = a->base;
    *size = a->size;
  }
  pthread_mutex_unlock(&g_lock);
  return err(a ? hipSuccess : hipErrorInvalidValue);
}

hipError_t hipHostRegister(void *p, size_t len, unsigned int flags) {
  (void)flags;
  if (!p || !len)
    return err(hipErrorInvalidValue);
  atomic_fetch_add(&host_registered, 1);
  return hipSuccess;
}

hipError_t hipHostUnregister(void *p) {
  if (!p || atomic_fetch_sub(&host_registered, 1) <= 0) {
    atomic_fetch_add(&host_registered, 1);
    return err(hipErrorHostMemoryNotRegistered);
  }
  return hipSuccess;
}

hipError_t hipIpcGetMemHandle(hipIpcMemHandle_t *h, void *p) {
  pthread_mutex_lock(&g_lock);
  alloc *a = find(p);
  int ok = a && a->base == p && a->fd >= 0;
  handle_fmt f = {0};
  if (ok)
    f = (handle_fmt){FAKE_MAGIC, (uint32_t)getpid(), a->fd, a->device, a->size, a->nonce};
  pthread_mutex_unlock(&g_lock);
  if (!ok)
    return err(hipErrorInvalidValue);
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, &f, sizeof f);
  return hipSuccess;
}

static int open_peer_fd(uint32_t pid, int fd) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%u/fd/%d", pid, fd);
  int r = open(path, O_RDWR | O_CLOEXEC);
  if (r >= 0)
    return r;
#ifdef SYS_pidfd_open
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (pfd >= 0) {
    r = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    close(pfd);
  }
#endif
  return r;
}

hipError_t hipIpcOpenMemHandle(void **p, hipIpcMemHandle_t h, unsigned int flags) {
  (void)flags;
  handle_fmt f;
  memcpy(&f, h.reserved, sizeof f);
  if (f.magic != FAKE_MAGIC || f.fd < 0 || !f.size || f.pid == (uint32_t)getpid())
    return err(hipErrorInvalidValue);
  int fd = open_peer_fd(f.pid, f.fd);
  if (fd < 0)
    return err(hipErrorInvalidValue);
  /* The fd must be that allocation: its memfd name carries the nonce. */
  char want[80], link[128], got[128];
  snprintf(want, sizeof want, "/memfd:fake-hip-%016llx (deleted)", (unsigned long long)f.nonce);
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, got, sizeof got - 1);
  struct stat st;
  if (n < 0 || (got[n] = 0, strcmp(got, want)) || fstat(fd, &st) || (uint64_t)st.st_size < f.size) {
    close(fd);
    return err(hipErrorInvalidValue);
  }
  alloc *a = calloc(1, sizeof *a);
  void *m = a ? mmap(NULL, f.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (m == MAP_FAILED) {
    free(a);
    return err(hipErrorOutOfMemory);
  }
  a->base = m;
  a->size = f.size;
  a->fd = -1;
  a->device = cur_device;
  pthread_mutex_lock(&g_lock);
  a->next = g_allocs;
  g_allocs = a;
  pthread_mutex_unlock(&g_lock);
  *p = m;
  return hipSuccess;
}

hipError_t hipIpcCloseMemHandle(void *p) {
  alloc *a = take(p, 1);
  if (!a)
    return err(hipErrorInvalidValue);
  munmap(a->base, a->size);
  free(a);
  return hipSuccess;
}

/* ---- streams and events ---- */

typedef struct fevent {
  atomic_int state; /* 0 never recorded / done, 1 recorded and pending */
} fevent;

typedef struct item {
  struct item *next;
  void *dst;
  const void *src;
  size_t n;
  fevent *ev; /* non-NULL: an event marker */
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
  const char *d = getenv("FAKE_HIP_COPY_DELAY_US");
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

static hipError_t enqueue(fstream *s, item *it) {
  pthread_mutex_lock(&s->lock);
  it->next = NULL;
  *s->tail = it;
  s->tail = &it->next;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  return hipSuccess;
}

hipError_t hipStreamCreateWithFlags(hipStream_t *out, unsigned int flags) {
  (void)flags;
  fstream *s = calloc(1, sizeof *s);
  if (!s)
    return err(hipErrorOutOfMemory);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  s->tail = &s->head;
  if (pthread_create(&s->th, NULL, stream_main, s)) {
    free(s);
    return err(hipErrorOutOfMemory);
  }
  *out = (hipStream_t)s;
  return hipSuccess;
}

hipError_t hipStreamSynchronize(hipStream_t st) {
  fstream *s = (fstream *)st;
  if (!s)
    return err(hipErrorInvalidHandle);
  pthread_mutex_lock(&s->lock);
  while (s->head || s->busy)
    pthread_cond_wait(&s->cond, &s->lock);
  pthread_mutex_unlock(&s->lock);
  return hipSuccess;
}

hipError_t hipStreamDestroy(hipStream_t st) {
  fstream *s = (fstream *)st;
  if (!s)
    return err(hipErrorInvalidHandle);
  pthread_mutex_lock(&s->lock);
  s->stop = 1;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->th, NULL); /* runs what was queued first */
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->lock);
  free(s);
  return hipSuccess;
}

hipError_t hipEventCreateWithFlags(hipEvent_t *out, unsigned flags) {
  (void)flags;
  fevent *e = calloc(1, sizeof *e);
  if (!e)
    return err(hipErrorOutOfMemory);
  *out = (hipEvent_t)e;
  return hipSuccess;
}

hipError_t hipEventDestroy(hipEvent_t ev) {
  fevent *e = (fevent *)ev;
  if (!e)
    return err(hipErrorInvalidHandle);
  /* The runtime defers the free of a pending event; the fake waits. */
  while (atomic_load(&e->state) == 1)
    sched_yield();
  free(e);
  return hipSuccess;
}

hipError_t hipEventRecord(hipEvent_t ev, hipStream_t st) {
  fevent *e = (fevent *)ev;
  if (!e || !st)
    return err(hipErrorInvalidHandle);
  item *it = calloc(1, sizeof *it);
  if (!it)
    return err(hipErrorOutOfMemory);
  it->ev = e;
  atomic_store(&e->state, 1);
  return enqueue((fstream *)st, it);
}

hipError_t hipEventQuery(hipEvent_t ev) {
  fevent *e = (fevent *)ev;
  if (!e)
    return err(hipErrorInvalidHandle);
  return atomic_load(&e->state) == 1 ? hipErrorNotReady : hipSuccess;
}

/* Both ends must be device memory this process knows or plain host
 * memory; a device range running past its allocation is refused, as the
 * real runtime's address checks would. */
static int range_ok(const void *p, size_t n) {
  pthread_mutex_lock(&g_lock);
  alloc *a = find(p);
  int ok = !a || (size_t)((const uint8_t *)p - a->base) + n <= a->size;
  pthread_mutex_unlock(&g_lock);
  return ok;
}

hipError_t hipMemcpyAsync(void *dst, const void *src, size_t n, hipMemcpyKind kind,
                          hipStream_t st) {
  (void)kind;
  if (!st || !dst || !src)
    return err(hipErrorInvalidValue);
  int f = atomic_load(&fail_copies);
  while (f > 0 && !atomic_compare_exchange_weak(&fail_copies, &f, f - 1))
    ;
  if (f > 0 || !range_ok(dst, n) || !range_ok(src, n))
    return err(hipErrorInvalidValue);
  item *it = calloc(1, sizeof *it);
  if (!it)
    return err(hipErrorOutOfMemory);
  it->dst = dst;
  it->src = src;
  it->n = n;
  return enqueue((fstream *)st, it);
}
