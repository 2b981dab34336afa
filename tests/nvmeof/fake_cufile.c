/* A software stand-in for libcufile (GPUDirect Storage), for the nvmeof
 * plugin's GPU path on hosts without a GPU: the same entry points and ABI
 * (cufile.h: CUfileError_t returned by value, CUfileDescr_t with an fd),
 * "device memory" being host memory the test registers as cuda:0, and
 * cuFileRead/cuFileWrite done with pread/pwrite on the registered fd.  It
 * counts calls (fake_cufile_stats) so the test can tell this path carried
 * the data, and checks that reads and writes stay inside registered
 * buffers, as the real library requires of registered memory. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

typedef struct cu_err {
  int err;
  int cu_err;
} cu_err;
typedef struct cu_descr {
  int type;
  union {
    int fd;
    void *handle;
  } handle;
  const void *fs_ops;
} cu_descr;

typedef struct fake_stats {
  long opens, closes, handles, bufs, reads, writes, outside;
} fake_stats;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fake_stats st;
static struct {
  const uint8_t *p;
  size_t len;
} bufs[64];

API void fake_cufile_stats(fake_stats *out);
API cu_err cuFileDriverOpen(void);
API cu_err cuFileDriverClose(void);
API cu_err cuFileHandleRegister(void **fh, cu_descr *d);
API void cuFileHandleDeregister(void *fh);
API cu_err cuFileBufRegister(const void *p, size_t len, int flags);
API cu_err cuFileBufDeregister(const void *p);
API ssize_t cuFileRead(void *fh, void *p, size_t n, off_t off, off_t poff);
API ssize_t cuFileWrite(void *fh, const void *p, size_t n, off_t off, off_t poff);

void fake_cufile_stats(fake_stats *out) {
  pthread_mutex_lock(&lock);
  *out = st;
  pthread_mutex_unlock(&lock);
}

static cu_err ok(void) { return (cu_err){0, 0}; }

cu_err cuFileDriverOpen(void) {
  pthread_mutex_lock(&lock);
  st.opens++;
  pthread_mutex_unlock(&lock);
  return ok();
}

cu_err cuFileDriverClose(void) {
  pthread_mutex_lock(&lock);
  st.closes++;
  pthread_mutex_unlock(&lock);
  return ok();
}

cu_err cuFileHandleRegister(void **fh, cu_descr *d) {
  if (!fh || !d || d->type != 1 || d->handle.fd < 0)
    return (cu_err){5004, 0}; /* an invalid-value error */
  int *h = malloc(sizeof *h);
  if (!h)
    return (cu_err){5018, 0};
  /* The real library bounces unaligned transfers itself; here a buffered
   * descriptor of the same file stands in for that. */
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", d->handle.fd);
  *h = open(p, O_RDWR | O_CLOEXEC);
  if (*h < 0)
    *h = open(p, O_RDONLY | O_CLOEXEC);
  if (*h < 0) {
    free(h);
    return (cu_err){5004, 0};
  }
  *fh = h;
  pthread_mutex_lock(&lock);
  st.handles++;
  pthread_mutex_unlock(&lock);
  return ok();
}

void cuFileHandleDeregister(void *fh) {
  close(*(int *)fh);
  free(fh);
  pthread_mutex_lock(&lock);
  st.handles--;
  pthread_mutex_unlock(&lock);
}

cu_err cuFileBufRegister(const void *p, size_t len, int flags) {
  (void)flags;
  pthread_mutex_lock(&lock);
  for (int i = 0; i < 64; i++)
    if (!bufs[i].p) {
      bufs[i].p = p;
      bufs[i].len = len;
      st.bufs++;
      pthread_mutex_unlock(&lock);
      return ok();
    }
  pthread_mutex_unlock(&lock);
  return (cu_err){5018, 0};
}

cu_err cuFileBufDeregister(const void *p) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < 64; i++)
    if (bufs[i].p == p) {
      bufs[i].p = NULL;
      st.bufs--;
    }
  pthread_mutex_unlock(&lock);
  return ok();
}

/* Counts an access [p+poff, +n) outside every registered buffer. */
static void check_inside(const void *p, size_t n, off_t poff) {
  const uint8_t *a = (const uint8_t *)p + poff;
  int in = 0;
  pthread_mutex_lock(&lock);
  for (int i = 0; i < 64 && !in; i++)
    in = bufs[i].p && a >= bufs[i].p && a + n <= bufs[i].p + bufs[i].len;
  if (!in)
    st.outside++;
  pthread_mutex_unlock(&lock);
}

ssize_t cuFileRead(void *fh, void *p, size_t n, off_t off, off_t poff) {
  check_inside(p, n, poff);
  pthread_mutex_lock(&lock);
  st.reads++;
  pthread_mutex_unlock(&lock);
  ssize_t r = pread(*(int *)fh, (uint8_t *)p + poff, n, off);
  return r < 0 ? -5011 : r; /* a negative CU_FILE error */
}

ssize_t cuFileWrite(void *fh, const void *p, size_t n, off_t off, off_t poff) {
  check_inside(p, n, poff);
  pthread_mutex_lock(&lock);
  st.writes++;
  pthread_mutex_unlock(&lock);
  ssize_t r = pwrite(*(int *)fh, (const uint8_t *)p + poff, n, off);
  return r < 0 ? -5011 : r;
}
