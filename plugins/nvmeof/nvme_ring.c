/* nvme_ring.c - the nvmeof data path (nvme.h).
 *
 * One io_uring per rail (one rail per block device, plus "files" for file
 * systems on no known device), `queue_depth` slices in flight on each: a
 * slice takes one of the rail's op records or is pushed back to the core.
 * submit() prepares one SQE per slice and submits the whole batch with one
 * io_uring_enter; the rail's own thread reaps completions, continues short
 * transfers and completes the slices.  Local host memory is a fixed buffer
 * (io_uring_register_buffers) and imported files are fixed files where the
 * tables have room.  O_DIRECT needs the file offset, length and memory
 * aligned to the file's alignment: an unaligned read goes through an
 * aligned bounce buffer covering the enclosing blocks; an unaligned write
 * goes through a buffered descriptor of the same file (the page cache does
 * the read-modify-write of the partial blocks, which a bounce buffer could
 * not do safely beside a concurrent writer of the same block).  A file
 * system that refuses O_DIRECT at I/O time (EINVAL) is switched to buffered
 * I/O for good and the slice reissued. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "nvme.h"

#define NV_MAX_IO (1u << 30) /* one SQE moves at most this much */
#define NV_STOP_TAG 1        /* user_data of the NOP that stops a reaper */
#define NV_BUF_SLOTS 256
#define NV_BUF_MAX (1ull << 30) /* the kernel's limit for one fixed buffer */

static int err_rc(int e) {
  switch (e) {
  case EACCES:
  case EPERM:
  case EROFS:
  case EBADF:
    return MC_EACCES;
  case ENOMEM:
    return MC_ENOMEM;
  case EFBIG:
  case EOVERFLOW:
    return MC_ERANGE;
  case ECANCELED:
    return MC_ECANCELED;
  default:
    return MC_EIO;
  }
}

static int aligned(uint64_t v, uint32_t a) { return (v & (a - 1)) == 0; }

/* The descriptor and fixed-file flag an op of mode `mode` uses on imp. */
static int op_fd(nv_ctx *c, nv_imp *imp, int mode, int *fixed) {
  *fixed = 0;
  if (mode == NV_BUFFERED && imp->fd_direct)
    return nv_imp_fd_buf(c, imp);
  if (imp->fslot >= 0) {
    *fixed = 1;
    return imp->fslot;
  }
  return imp->fd;
}

/* Chooses op's mode (first issue); 0 or MC_ENOMEM. */
static int op_plan(nv_op *op) {
  nv_imp *imp = op->imp;
  uint32_t a = imp->align;
  if (!atomic_load(&imp->direct)) {
    op->mode = NV_BUFFERED;
    return 0;
  }
  if (aligned(op->off | op->len | (uint64_t)(uintptr_t)op->buf, a)) {
    op->mode = NV_DIRECT;
    return 0;
  }
  if (op->opc == MC_OP_WRITE && !aligned(op->off | op->len, a)) {
    op->mode = NV_BUFFERED;
    return 0;
  }
  op->mode = NV_BOUNCE;
  op->boff = op->off & ~(uint64_t)(a - 1);
  op->blen = ((op->off + op->len + a - 1) & ~(uint64_t)(a - 1)) - op->boff;
  void *b = NULL;
  if (posix_memalign(&b, a < 4096 ? 4096 : a, op->blen))
    return MC_ENOMEM;
  op->bounce = b;
  if (op->opc == MC_OP_WRITE)
    memcpy(op->bounce, op->buf, op->len); /* off and len aligned here */
  return 0;
}

/* Queues the rest of op on its rail's ring (lock held).  0, or MC_E*. */
static int op_issue(nv_rail *r, nv_op *op) {
  nv_ctx *c = r->ctx;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  if (!sqe) { /* never: at most depth ops exist, the SQ has depth entries */
    io_uring_submit(&r->ring);
    sqe = io_uring_get_sqe(&r->ring);
    if (!sqe)
      return MC_EAGAIN;
  }
  int fixed = 0;
  int fd = op_fd(c, op->imp, op->mode, &fixed);
  if (fd < 0) {
    io_uring_prep_nop(sqe); /* keep the SQ consistent; completes as a no-op */
    io_uring_sqe_set_data64(sqe, 0);
    return MC_EIO;
  }
  uint8_t *p;
  uint64_t off, left;
  if (op->mode == NV_BOUNCE) {
    p = op->bounce + op->done;
    off = op->boff + op->done;
    left = op->blen - op->done;
  } else {
    p = op->buf + op->done;
    off = op->off + op->done;
    left = op->len - op->done;
  }
  unsigned n = (unsigned)(left < NV_MAX_IO ? left : NV_MAX_IO);
  int rd = op->opc == MC_OP_READ;
  if (op->mode != NV_BOUNCE && op->slot >= 0) {
    if (rd)
      io_uring_prep_read_fixed(sqe, fd, p, n, off, op->slot);
    else
      io_uring_prep_write_fixed(sqe, fd, p, n, off, op->slot);
  } else if (rd) {
    io_uring_prep_read(sqe, fd, p, n, off);
  } else {
    io_uring_prep_write(sqe, fd, p, n, off);
  }
  if (fixed)
    sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data(sqe, op);
  return 0;
}

static void op_free(nv_rail *r, nv_op *op) {
  free(op->bounce);
  op->bounce = NULL;
  op->next_free = r->free;
  r->free = op;
  atomic_fetch_sub(&r->inflight, 1);
}

/* Ends op: returns it to the rail (lock held) and reports it after. */
static void op_end(nv_rail *r, nv_op *op, int status, int locked) {
  nv_ctx *c = r->ctx;
  uint64_t token = op->token, bytes = status ? 0 : op->len;
  if (!locked)
    pthread_mutex_lock(&r->lock);
  op_free(r, op);
  if (!locked)
    pthread_mutex_unlock(&r->lock);
  c->host->complete(c->host->host, token, status, bytes, 0);
}

/* One completion of op with result res; runs on the rail's thread. */
static void op_done(nv_rail *r, nv_op *op, int res) {
  nv_ctx *c = r->ctx;
  nv_imp *imp = op->imp;
  int rd = op->opc == MC_OP_READ;
  if (res == -EINTR || res == -EAGAIN)
    goto reissue;
  if (res == -EINVAL && op->mode != NV_BUFFERED && imp->fd_direct) {
    /* The file system took O_DIRECT at open but refuses it for I/O (or
     * the alignment was wrong): buffered from now on, this slice again. */
    if (atomic_exchange(&imp->direct, 0))
      NV_LOG(c, MC_LOG_WARN, "'%s': O_DIRECT refused at I/O (EINVAL); buffered I/O from now on",
             imp->path);
    free(op->bounce);
    op->bounce = NULL;
    op->mode = NV_BUFFERED;
    op->done = 0;
    goto reissue;
  }
  if (res < 0) {
    NV_LOG(c, MC_LOG_WARN, "'%s': %s of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s",
           imp->path, rd ? "read" : "write", op->len, op->off, strerror(-res));
    op_end(r, op, err_rc(-res), 0);
    return;
  }
  op->done += (uint64_t)res;
  uint64_t need = op->mode == NV_BOUNCE ? op->off + op->len - op->boff : op->len;
  if (op->done >= need) {
    if (op->mode == NV_BOUNCE && rd)
      memcpy(op->buf, op->bounce + (op->off - op->boff), op->len);
    op_end(r, op, 0, 0);
    return;
  }
  /* Short.  Zero bytes, or a direct transfer that stopped inside a block,
   * means the file ends before the slice: it shrank under the reader. */
  if (res == 0 || (op->mode != NV_BUFFERED && !aligned(op->done, imp->align))) {
    uint64_t got = op->mode == NV_BOUNCE
                       ? (op->boff + op->done > op->off ? op->boff + op->done - op->off : 0)
                       : op->done;
    NV_LOG(c, MC_LOG_WARN,
           "'%s': %s of %" PRIu64 " bytes at offset %" PRIu64 " stopped after %" PRIu64
           ": the file ends there (truncated under the transfer?)",
           imp->path, rd ? "read" : "write", op->len, op->off, got < op->len ? got : op->len);
    op_end(r, op, rd ? MC_ERANGE : MC_EIO, 0);
    return;
  }
reissue:
  pthread_mutex_lock(&r->lock);
  int rc = op_issue(r, op);
  if (rc == 0)
    io_uring_submit(&r->ring);
  pthread_mutex_unlock(&r->lock);
  if (rc)
    op_end(r, op, rc, 0);
}

static void *reaper(void *arg) {
  nv_rail *r = arg;
  int stop = 0;
  while (!stop) {
    struct io_uring_cqe *cqe;
    int rc = io_uring_wait_cqe(&r->ring, &cqe);
    if (rc == -EINTR || rc == -EAGAIN)
      continue;
    if (rc < 0) {
      NV_LOG(r->ctx, MC_LOG_ERROR, "rail %s: io_uring_wait_cqe: %s", r->name, strerror(-rc));
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
      seen++;
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      if (ud == NV_STOP_TAG)
        stop = 1;
      else if (ud)
        op_done(r, (nv_op *)(uintptr_t)ud, cqe->res);
    }
    io_uring_cq_advance(&r->ring, seen);
  }
  return NULL;
}

int nv_submit(nv_ctx *c, const mc_slice *s, uint32_t n, uint32_t *accepted) {
  nv_rail *cur = NULL;
  uint32_t i = 0, queued = 0;
  int rc = 0;
  for (; i < n; i++) {
    const mc_slice *sl = &s[i];
    nv_imp *imp = sl->remote_mem;
    nv_lmem *lm = sl->local_mem;
    int bad = 0;
    if (!imp || !lm || (lm->kind != NV_KIND_CPU && lm->kind != NV_KIND_GPU) || sl->len == 0 ||
        (sl->op != MC_OP_READ && sl->op != MC_OP_WRITE))
      bad = MC_EINVAL;
    else if (sl->remote_addr < imp->base || sl->remote_addr - imp->base > imp->len ||
             sl->len > imp->len - (sl->remote_addr - imp->base) ||
             sl->local_addr < lm->addr || sl->local_addr - lm->addr > lm->len ||
             sl->len > lm->len - (sl->local_addr - lm->addr))
      bad = MC_ERANGE;
    else if (imp->owner && !atomic_load(&imp->owner->live))
      bad = MC_EACCES; /* deregistered in this process */
    else if (sl->op == MC_OP_WRITE && imp->ro)
      bad = MC_EACCES;
    if (bad) {
      if (bad == MC_EACCES && sl->op == MC_OP_WRITE && imp->ro)
        NV_LOG(c, MC_LOG_WARN, "'%s' is registered read-only: write refused", imp->path);
      c->host->complete(c->host->host, sl->token, bad, 0, 0);
      continue;
    }
    if (lm->kind == NV_KIND_GPU) {
      nv_gop *g = calloc(1, sizeof *g);
      if (!g) {
        rc = MC_ENOMEM;
        break;
      }
      *g = (nv_gop){.token = sl->token, .imp = imp, .base = (void *)(uintptr_t)lm->addr,
                    .boff = sl->local_addr - lm->addr, .len = sl->len,
                    .off = imp->file_off + (sl->remote_addr - imp->base), .opc = sl->op};
      if ((rc = nv_gds_submit(c, g)) != 0) {
        free(g);
        break; /* queue_depth GPU slices queued: back-pressure */
      }
      continue;
    }
    nv_rail *r = &c->rails[imp->rail];
    if (r != cur) {
      if (cur) {
        if (queued)
          io_uring_submit(&cur->ring);
        pthread_mutex_unlock(&cur->lock);
      }
      cur = r;
      queued = 0;
      pthread_mutex_lock(&r->lock);
    }
    nv_op *op = r->free;
    if (!op) {
      rc = MC_EAGAIN; /* queue_depth slices in flight on this rail */
      break;
    }
    r->free = op->next_free;
    atomic_fetch_add(&r->inflight, 1);
    memset(op, 0, sizeof *op);
    op->token = sl->token;
    op->imp = imp;
    op->buf = (uint8_t *)(uintptr_t)sl->local_addr;
    op->len = sl->len;
    op->off = imp->file_off + (sl->remote_addr - imp->base);
    op->opc = sl->op;
    op->slot = lm->slot;
    int err = op_plan(op);
    if (!err)
      err = op_issue(r, op);
    if (err) {
      op_end(r, op, err, 1);
      continue;
    }
    queued++;
  }
  if (cur) {
    if (queued)
      io_uring_submit(&cur->ring);
    pthread_mutex_unlock(&cur->lock);
  }
  *accepted = i;
  return i == 0 && n > 0 ? rc : 0;
}

int nv_bufs_add(nv_ctx *c, void *addr, uint64_t len) {
  if (!c->fixed_bufs || len > NV_BUF_MAX)
    return -1;
  pthread_mutex_lock(&c->lock);
  int slot = -1;
  for (int i = 0; i < c->nbufs && slot < 0; i++)
    if (!c->bused[i])
      slot = i;
  if (slot >= 0) {
    struct iovec iov = {addr, (size_t)len};
    __u64 tag = 0;
    int i = 0;
    for (; i < c->nrails; i++)
      if (io_uring_register_buffers_update_tag(&c->rails[i].ring, (unsigned)slot, &iov, &tag,
                                               1) < 0)
        break;
    if (i < c->nrails) {
      /* pinning refused (RLIMIT_MEMLOCK): this buffer goes unregistered */
      struct iovec none = {NULL, 0};
      for (int j = 0; j < i; j++)
        io_uring_register_buffers_update_tag(&c->rails[j].ring, (unsigned)slot, &none, &tag, 1);
      NV_LOG(c, MC_LOG_DEBUG, "buffer %p+%" PRIu64 " not registered with io_uring", addr, len);
      slot = -1;
    } else {
      c->bused[slot] = 1;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return slot;
}

void nv_bufs_del(nv_ctx *c, int slot) {
  struct iovec none = {NULL, 0};
  __u64 tag = 0;
  if (!c->bused) /* fini: the rings are gone already */
    return;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->nrails; i++)
    io_uring_register_buffers_update_tag(&c->rails[i].ring, (unsigned)slot, &none, &tag, 1);
  c->bused[slot] = 0;
  pthread_mutex_unlock(&c->lock);
}

int nv_files_add(nv_ctx *c, int rail, int fd) {
  nv_rail *r = &c->rails[rail];
  int slot = -1;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < r->nfiles && slot < 0; i++)
    if (!r->fused[i])
      slot = i;
  if (slot >= 0 && io_uring_register_files_update(&r->ring, (unsigned)slot, &fd, 1) == 1)
    r->fused[slot] = 1;
  else
    slot = -1;
  pthread_mutex_unlock(&c->lock);
  return slot;
}

void nv_files_del(nv_ctx *c, int rail, int slot) {
  nv_rail *r = &c->rails[rail];
  int none = -1;
  if (!r->ring_on || !r->fused) /* fini: the ring is gone already */
    return;
  pthread_mutex_lock(&c->lock);
  io_uring_register_files_update(&r->ring, (unsigned)slot, &none, 1);
  r->fused[slot] = 0;
  pthread_mutex_unlock(&c->lock);
}

static int rail_start(nv_ctx *c, nv_rail *r) {
  r->ctx = c;
  r->depth = (uint32_t)c->depth;
  pthread_mutex_init(&r->lock, NULL);
  int rc = io_uring_queue_init(r->depth, &r->ring, 0);
  if (rc < 0) {
    NV_LOG(c, MC_LOG_WARN, "io_uring unavailable on this host (io_uring_queue_init: %s)",
           strerror(-rc));
    return MC_ENODEV;
  }
  r->ring_on = 1;
  r->ops = calloc(r->depth, sizeof *r->ops);
  if (!r->ops)
    return MC_ENOMEM;
  for (uint32_t i = 0; i < r->depth; i++) {
    r->ops[i].next_free = r->free;
    r->free = &r->ops[i];
  }
  if (c->fixed_bufs && io_uring_register_buffers_sparse(&r->ring, NV_BUF_SLOTS) < 0) {
    NV_LOG(c, MC_LOG_INFO, "rail %s: no registered buffers (plain reads and writes)", r->name);
    c->fixed_bufs = 0;
  }
  if (c->nfiles > 0) {
    r->fused = calloc((size_t)c->nfiles, 1);
    if (r->fused && io_uring_register_files_sparse(&r->ring, (unsigned)c->nfiles) == 0)
      r->nfiles = (int)c->nfiles;
  }
  if (pthread_create(&r->thr, NULL, reaper, r))
    return MC_ENOMEM;
  r->thr_on = 1;
  return 0;
}

int nv_rails_start(nv_ctx *c) {
  char names[NV_MAX_RAILS][NV_DISK_NAME];
  int n = nv_sysfs_disks(c->sysroot, names, NV_MAX_RAILS - 1);
  for (int i = 0; i < n; i++)
    memcpy(c->rails[i].name, names[i], NV_DISK_NAME);
  snprintf(c->rails[n].name, sizeof c->rails[n].name, "%s", NV_OTHER_RAIL);
  c->nrails = n + 1;
  c->nbufs = NV_BUF_SLOTS;
  c->bused = calloc(NV_BUF_SLOTS, 1);
  if (!c->bused)
    return MC_ENOMEM;
  for (int i = 0; i < c->nrails; i++) {
    int rc = rail_start(c, &c->rails[i]);
    if (rc)
      return rc;
  }
  /* A sparse-buffer table only some rings accepted is of no use. */
  return 0;
}

void nv_rails_stop(nv_ctx *c) {
  /* Slices in flight finish with their real status (file I/O ends), then
   * each reaper is stopped by a NOP and joined. */
  for (int i = 0; i < c->nrails; i++) {
    nv_rail *r = &c->rails[i];
    for (int w = 0; r->thr_on && atomic_load(&r->inflight) > 0 && w < 30000; w++) {
      struct timespec ts = {0, 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    if (r->thr_on) {
      pthread_mutex_lock(&r->lock);
      struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
      if (!sqe) {
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
      }
      if (sqe) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, NV_STOP_TAG);
        io_uring_submit(&r->ring);
      }
      pthread_mutex_unlock(&r->lock);
      pthread_join(r->thr, NULL);
      r->thr_on = 0;
    }
    if (r->ring_on)
      io_uring_queue_exit(&r->ring);
    r->ring_on = 0;
    /* Whatever never completed (a device that hung past the wait). */
    for (uint32_t j = 0; r->ops && atomic_load(&r->inflight) > 0 && j < r->depth; j++) {
      nv_op *op = &r->ops[j];
      int free_ = 0;
      for (nv_op *f = r->free; f && !free_; f = f->next_free)
        free_ = f == op;
      if (!free_)
        op_end(r, op, MC_ECANCELED, 1);
    }
    free(r->ops);
    free(r->fused);
    r->ops = NULL;
    r->fused = NULL;
    pthread_mutex_destroy(&r->lock);
  }
  free(c->bused);
  c->bused = NULL;
}
