/* nvme_gds.c - GPU memory through cuFile (GPUDirect Storage) (nvme.h).
 *
 * libcufile is loaded with dlopen at init (key `cufile_library`); absent,
 * GPU registrations are MC_ENOTSUP and another transport must carry them.
 * cuFileRead/cuFileWrite block, so GPU slices are queued (at most
 * queue_depth) to the plugin's GDS threads, which move them and complete
 * them; short transfers are continued, a read that reaches the end of the
 * file fails MC_ERANGE.  Each import gets its cuFile handle (over its
 * O_DIRECT descriptor) on its first GPU slice. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nvme.h"

/* The cuFile ABI, as libcufile exports it (cufile.h). */
typedef struct cu_err {
  int err;    /* CUfileOpError, 0 = CU_FILE_SUCCESS */
  int cu_err; /* CUresult */
} cu_err;
typedef struct cu_descr {
  int type; /* CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1 */
  union {
    int fd;
    void *handle;
  } handle;
  const void *fs_ops;
} cu_descr;

typedef cu_err (*fn_void)(void);
typedef cu_err (*fn_hreg)(void **fh, cu_descr *d);
typedef void (*fn_hdereg)(void *fh);
typedef cu_err (*fn_breg)(const void *p, size_t len, int flags);
typedef cu_err (*fn_bdereg)(const void *p);
typedef ssize_t (*fn_read)(void *fh, void *p, size_t n, off_t off, off_t poff);
typedef ssize_t (*fn_write)(void *fh, const void *p, size_t n, off_t off, off_t poff);

static struct {
  fn_void open, close;
  fn_hreg hreg;
  fn_hdereg hdereg;
  fn_breg breg;
  fn_bdereg bdereg;
} cu; /* per nv_gds in practice; one libcufile per process */

static int w_open(void) { return cu.open().err; }
static void w_close(void) {
  if (cu.close)
    cu.close();
}
static int w_hreg(void **fh, int fd) {
  cu_descr d;
  memset(&d, 0, sizeof d);
  d.type = 1;
  d.handle.fd = fd;
  return cu.hreg(fh, &d).err;
}
static void w_hdereg(void *fh) { cu.hdereg(fh); }
static int w_breg(const void *p, size_t len) { return cu.breg(p, len, 0).err; }
static void w_bdereg(const void *p) { cu.bdereg(p); }

static void gop_run(nv_ctx *c, nv_gop *op) {
  nv_gds *g = c->gds;
  nv_imp *imp = op->imp;
  int st = 0;
  pthread_mutex_lock(&imp->lock);
  if (!imp->cufh) {
    int e = g->handle_register(&imp->cufh, imp->fd);
    if (e) {
      imp->cufh = NULL;
      NV_LOG(c, MC_LOG_WARN, "'%s': cuFileHandleRegister failed (cuFile error %d)", imp->path,
             e);
      st = MC_EIO;
    }
  }
  void *fh = imp->cufh;
  pthread_mutex_unlock(&imp->lock);
  uint64_t done = 0;
  while (!st && done < op->len) {
    size_t n = op->len - done;
    ssize_t r = op->opc == MC_OP_READ
                    ? g->read(fh, op->base, n, (off_t)(op->off + done), (off_t)(op->boff + done))
                    : g->write(fh, op->base, n, (off_t)(op->off + done), (off_t)(op->boff + done));
    if (r < 0) {
      NV_LOG(c, MC_LOG_WARN, "'%s': cuFile%s of %" PRIu64 " bytes at %" PRIu64 " failed (%zd)",
             imp->path, op->opc == MC_OP_READ ? "Read" : "Write", op->len, op->off, r);
      st = MC_EIO;
    } else if (r == 0) {
      NV_LOG(c, MC_LOG_WARN, "'%s': %s of %" PRIu64 " bytes at %" PRIu64
             " stopped after %" PRIu64 ": the file ends there", imp->path,
             op->opc == MC_OP_READ ? "read" : "write", op->len, op->off, done);
      st = op->opc == MC_OP_READ ? MC_ERANGE : MC_EIO;
    } else {
      done += (uint64_t)r;
    }
  }
  c->host->complete(c->host->host, op->token, st, st ? 0 : op->len, 0);
  free(op);
}

static void *gds_main(void *arg) {
  nv_ctx *c = arg;
  nv_gds *g = c->gds;
  pthread_mutex_lock(&g->lock);
  for (;;) {
    while (!g->head && !g->stop)
      pthread_cond_wait(&g->cond, &g->lock);
    if (g->stop)
      break;
    nv_gop *op = g->head;
    g->head = op->next;
    if (!g->head)
      g->tail = NULL;
    pthread_mutex_unlock(&g->lock);
    gop_run(c, op);
    pthread_mutex_lock(&g->lock);
    g->queued--;
  }
  pthread_mutex_unlock(&g->lock);
  return NULL;
}

nv_gds *nv_gds_start(nv_ctx *c, const char *lib) {
  void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    NV_LOG(c, MC_LOG_DEBUG, "%s not loaded (%s): GPU memory is MC_ENOTSUP", lib, dlerror());
    return NULL;
  }
  cu.open = (fn_void)dlsym(dl, "cuFileDriverOpen");
  cu.close = (fn_void)dlsym(dl, "cuFileDriverClose");
  cu.hreg = (fn_hreg)dlsym(dl, "cuFileHandleRegister");
  cu.hdereg = (fn_hdereg)dlsym(dl, "cuFileHandleDeregister");
  cu.breg = (fn_breg)dlsym(dl, "cuFileBufRegister");
  cu.bdereg = (fn_bdereg)dlsym(dl, "cuFileBufDeregister");
  fn_read rd = (fn_read)dlsym(dl, "cuFileRead");
  fn_write wr = (fn_write)dlsym(dl, "cuFileWrite");
  int e = -1;
  if (!cu.open || !cu.hreg || !cu.hdereg || !cu.breg || !cu.bdereg || !rd || !wr ||
      (e = w_open()) != 0) {
    NV_LOG(c, MC_LOG_WARN, "%s: %s; GPU memory is MC_ENOTSUP", lib,
           e == -1 ? "not a cuFile library (symbols missing)" : "cuFileDriverOpen failed");
    dlclose(dl);
    return NULL;
  }
  nv_gds *g = calloc(1, sizeof *g);
  if (!g) {
    w_close();
    dlclose(dl);
    return NULL;
  }
  g->dl = dl;
  g->driver_close = w_close;
  g->handle_register = w_hreg;
  g->handle_deregister = w_hdereg;
  g->buf_register = w_breg;
  g->buf_deregister = w_bdereg;
  g->read = rd;
  g->write = wr;
  g->max = (uint32_t)c->depth;
  pthread_mutex_init(&g->lock, NULL);
  pthread_cond_init(&g->cond, NULL);
  c->gds = g;
  int want = c->depth < 4 ? (int)c->depth : 4;
  for (int i = 0; i < want; i++)
    if (pthread_create(&g->thr[g->nthr], NULL, gds_main, c) == 0)
      g->nthr++;
  if (!g->nthr) {
    nv_gds_stop(c);
    return NULL;
  }
  NV_LOG(c, MC_LOG_INFO, "cuFile loaded from %s: GPU memory moves with GPUDirect Storage", lib);
  return g;
}

void nv_gds_stop(nv_ctx *c) {
  nv_gds *g = c->gds;
  if (!g)
    return;
  pthread_mutex_lock(&g->lock);
  g->stop = 1;
  nv_gop *q = g->head;
  g->head = g->tail = NULL;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
  for (int i = 0; i < g->nthr; i++)
    pthread_join(g->thr[i], NULL);
  while (q) {
    nv_gop *n = q->next;
    c->host->complete(c->host->host, q->token, MC_ECANCELED, 0, 0);
    free(q);
    q = n;
  }
  for (nv_imp *m = c->imps; m; m = m->next)
    nv_gds_release(c, m);
  for (nv_lmem *m = c->lmems; m; m = m->next)
    if (m->gpu_reg) {
      g->buf_deregister((void *)(uintptr_t)m->addr);
      m->gpu_reg = 0;
    }
  g->driver_close();
  dlclose(g->dl);
  pthread_mutex_destroy(&g->lock);
  pthread_cond_destroy(&g->cond);
  free(g);
  c->gds = NULL;
}

int nv_gds_submit(nv_ctx *c, nv_gop *op) {
  nv_gds *g = c->gds;
  pthread_mutex_lock(&g->lock);
  if (g->queued >= g->max || g->stop) {
    pthread_mutex_unlock(&g->lock);
    return MC_EAGAIN;
  }
  op->next = NULL;
  if (g->tail)
    g->tail->next = op;
  else
    g->head = op;
  g->tail = op;
  g->queued++;
  pthread_cond_signal(&g->cond);
  pthread_mutex_unlock(&g->lock);
  return 0;
}

void nv_gds_release(nv_ctx *c, nv_imp *imp) {
  if (c->gds && imp->cufh) {
    c->gds->handle_deregister(imp->cufh);
    imp->cufh = NULL;
  }
}
