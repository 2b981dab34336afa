/* nvme.h - the nvmeof plugin's internal types.
 *
 * A file registration (nv_freg, nvme_file.c) is the target side: the path
 * opened as the engine registered it (O_DIRECT when the file system takes
 * it), its remote key saying how other hosts reach the same bytes (host
 * and path, and the NVMe-oF subsystem NQN and namespace id when the path
 * is a namespace).  An import (nv_imp) is the initiator side: its own
 * descriptor of that file, reached by path on the same host or through
 * the namespace this host connected.  Data moves between the initiator's
 * registered host memory (nv_lmem) and the file with io_uring, one ring and
 * one reaping thread per rail, one rail per block device (nvme_ring.c). */
#ifndef MC_NVME_H
#define MC_NVME_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mooncake/transport.h"
#include "nvme_key.h"
#include "nvme_sysfs.h"

#define NV_MAX_RAILS 16
#define NV_OTHER_RAIL "files" /* files on no known block device (tmpfs, NFS) */

/* A file registration; process-wide (nv_freg_find) so an import made in
 * this process (loopback) sees its revocation. */
typedef struct nv_freg {
  struct nv_freg *next;
  atomic_int refs;
  atomic_int live; /* 0 once deregistered: imports in this process refuse */
  int fd;
  int direct; /* fd has O_DIRECT */
  uint32_t align;
  char disk[NV_DISK_NAME];
  nv_key key; /* what register_mem published */
} nv_freg;

/* register_mem's handle. */
typedef struct nv_lmem {
  struct nv_lmem *next, *prev; /* ctx->lmems */
  uint32_t kind;               /* NV_KIND_* */
  uint64_t addr, len;
  int gpu_reg; /* cuFileBufRegister succeeded */
  int slot;      /* fixed-buffer slot (same in every ring), -1: none */
  nv_freg *freg; /* NV_KIND_FILE */
} nv_lmem;

/* import_mem's handle. */
typedef struct nv_imp {
  struct nv_imp *next, *prev; /* ctx->imps */
  uint64_t base, len;         /* the imported range, owner addresses */
  uint64_t file_off;          /* file offset of base */
  int fd;                     /* opened with O_DIRECT when fd_direct */
  int fd_direct;
  atomic_int direct; /* O_DIRECT still in use (0 once the fs refused it) */
  int fd_buf; /* buffered descriptor: unaligned writes, refused O_DIRECT */
  pthread_mutex_t lock; /* opening fd_buf */
  int ro;
  uint32_t align;
  int rail;
  int fslot;      /* registered-file slot in the rail's ring, -1: none */
  nv_freg *owner; /* the registration when it lives in this process */
  char *path;     /* what was opened, for messages */
  void *cufh;     /* cuFile handle of fd (GPU slices), registered on first use */
} nv_imp;

enum nv_mode { NV_DIRECT, NV_BOUNCE, NV_BUFFERED };

/* One slice in flight. */
typedef struct nv_op {
  struct nv_op *next_free;
  uint64_t token;
  nv_imp *imp;
  uint8_t *buf; /* local memory */
  uint64_t len, off, done;
  uint32_t opc; /* MC_OP_* */
  int slot;     /* fixed buffer of buf, -1 */
  int mode;     /* enum nv_mode */
  uint8_t *bounce;
  uint64_t boff, blen; /* aligned file range the bounce buffer covers */
} nv_op;

typedef struct nv_ctx nv_ctx;

/* GPU slices: cuFile (GPUDirect Storage) loaded with dlopen, its blocking
 * calls made by the plugin's GDS threads (nvme_gds.c). */
typedef struct nv_gop {
  struct nv_gop *next;
  uint64_t token;
  nv_imp *imp;
  void *base;         /* the registered GPU buffer */
  uint64_t boff, len; /* offset in it, bytes */
  uint64_t off;       /* file offset */
  uint32_t opc;
} nv_gop;

typedef struct nv_gds {
  void *dl;
  int (*driver_open)(void);
  void (*driver_close)(void);
  int (*handle_register)(void **fh, int fd);
  void (*handle_deregister)(void *fh);
  int (*buf_register)(const void *p, size_t len);
  void (*buf_deregister)(const void *p);
  ssize_t (*read)(void *fh, void *p, size_t n, off_t off, off_t poff);
  ssize_t (*write)(void *fh, const void *p, size_t n, off_t off, off_t poff);
  pthread_mutex_t lock;
  pthread_cond_t cond;
  nv_gop *head, *tail;
  uint32_t queued, max;
  int stop, nthr;
  pthread_t thr[4];
} nv_gds;

typedef struct nv_rail {
  nv_ctx *ctx;
  char name[NV_DISK_NAME];
  struct io_uring ring;
  int ring_on;
  pthread_mutex_t lock; /* the submission queue and the free list */
  nv_op *ops, *free;
  uint32_t depth;
  atomic_uint inflight;
  pthread_t thr;
  int thr_on;
  uint8_t *fused; /* registered-file slots in use */
  int nfiles;
} nv_rail;

struct nv_ctx {
  const mc_host_api *host;
  char host_id[128];
  uint64_t host_hash;
  nv_rail rails[NV_MAX_RAILS];
  int nrails;
  /* keys */
  int64_t depth, nfiles;
  int direct, fixed_bufs, local_paths;
  uint64_t align_override;
  char sysroot[256], devroot[256];
  /* fixed-buffer slots, shared by every ring */
  pthread_mutex_t lock; /* slots, lists */
  uint8_t *bused;
  int nbufs;
  nv_lmem *lmems;
  nv_imp *imps;
  struct nv_ep *eps; /* connect()ed, freed by fini when not disconnected */
  atomic_int stopping;
  nv_gds *gds; /* NULL when libcufile is absent: GPU memory MC_ENOTSUP */
};

#define NV_LOG(c, lvl, ...)                                                    \
  do {                                                                         \
    if ((c)->host->log_enabled((c)->host->host, lvl))                          \
      (c)->host->log((c)->host->host, lvl, __VA_ARGS__);                       \
  } while (0)

/* nvme_align.c */
uint32_t nv_dio_align(int fd);

/* nvme_file.c */
int nv_register(nv_ctx *c, const mc_mem_desc *d, void **mem, void *rkey, size_t *rkey_len);
int nv_deregister(nv_ctx *c, void *mem);
int nv_import(nv_ctx *c, uint64_t base, uint64_t len, const void *rkey, size_t rkey_len,
              void **rmem);
int nv_release(nv_ctx *c, void *rmem);
/* The buffered descriptor of imp (opened on first use); -1 on error. */
int nv_imp_fd_buf(nv_ctx *c, nv_imp *imp);
/* Rail index for a file on disk `disk` ("" unknown). */
int nv_rail_for(nv_ctx *c, const char *disk);

/* nvme_gds.c */
/* Loads cuFile from `lib` and opens its driver; NULL (logged) if absent. */
nv_gds *nv_gds_start(nv_ctx *c, const char *lib);
/* Fails queued GPU slices (MC_ECANCELED), joins the threads, unloads. */
void nv_gds_stop(nv_ctx *c);
/* Queues a GPU slice: 0, or MC_EAGAIN when gds->max are queued. */
int nv_gds_submit(nv_ctx *c, nv_gop *op);
void nv_gds_release(nv_ctx *c, nv_imp *imp);

/* nvme_ring.c */
int nv_rails_start(nv_ctx *c);
void nv_rails_stop(nv_ctx *c);
int nv_submit(nv_ctx *c, const mc_slice *s, uint32_t n, uint32_t *accepted);
/* Fixed buffers/files in every ring (or the rail's): slot or -1. */
int nv_bufs_add(nv_ctx *c, void *addr, uint64_t len);
void nv_bufs_del(nv_ctx *c, int slot);
int nv_files_add(nv_ctx *c, int rail, int fd);
void nv_files_del(nv_ctx *c, int rail, int slot);

#endif
