/* rdma_ctx.h - the rdma plugin's context and objects, shared by its modules.
 *
 *   rdma_plugin.c  ops table, params, init/fini
 *   rdma_dev.c     devices and ports (rails), GID choice, sysfs, async events
 *   rdma_mem.c     registrations (MRs per rail, split at max_mr_size) and imports
 *   rdma_cuda.c    CUDA memory as a dma-buf fd (libcuda through dlopen)
 *   rdma_ep.c      endpoints, RC QPs, the control exchange, the fixer thread
 *   rdma_io.c      submit (chained WRs, selective signaling) and CQ threads
 *   rdma_wire.c    blob and message codecs
 *   rdma_verbs.c   libibverbs through dlopen */
#ifndef MC_RDMA_CTX_H
#define MC_RDMA_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mooncake/transport.h"
#include "rdma_verbs.h"
#include "rdma_wire.h"

#define RD_MAX_RAILS RDW_MAX_RAILS
#define RD_QTAB 4096 /* QPs a rail's CQ thread can map a completion to */
#define RD_MAX_PASSIVE 65536 /* QPs served to peers, all peers together */
#define RD_NOTE_RECVS 4      /* receives posted on a peer's notify QP */
#define RD_NOTE_BUF 4096     /* one receive buffer: MC_NOTIFY_MAX bytes */
#define RD_CQ_SPARE 1024     /* CQ entries beyond cq_size: notify SENDs, receives */
#define RD_WAITQ 4096        /* slices an endpoint holds while their QPs are made */
/* wr_id tags: bit 63 a receive (passive slot, buffer), bit 62 a notify SEND
 * (active slot, sequence); else a data WR (active slot, ring sequence). */
#define RD_WR_RECV (1ull << 63)
#define RD_WR_NOTE (1ull << 62)

typedef struct rd_cfg {
  char library[256];
  char cuda_library[256];
  char devices[512], exclude[512];
  int gid_index; /* -1: automatic */
  uint32_t qps_per_peer, max_send_wr, signal_every, cq_size;
  uint32_t max_endpoints;
  int timeout_ms, ctrl_timeout_ms;
  uint32_t mtu; /* enum ibv_mtu cap */
  uint64_t max_mr_chunk;
  int busy_poll_us;
  int backoff_ms, backoff_max_ms;
  uint32_t retry_cnt, ack_timeout, traffic_class, service_level;
  uint32_t max_peer_qps;
  uint32_t cq_threads; /* completion threads; 0: one per rail */
} rd_cfg;

struct rd_ctx;
struct rd_qp;

/* One rail: a port of a device, with its own context, PD and CQ. */
typedef struct rd_rail {
  struct rd_ctx *ctx;
  uint32_t idx;
  char name[MC_RAIL_NAME_MAX];
  char dev_name[64];
  char ibdev_path[256]; /* sysfs: GID types when re-querying */
  uint8_t port;
  struct ibv_context *vctx;
  struct ibv_pd *pd;
  struct ibv_comp_channel *ch;
  struct ibv_cq *cq;
  uint32_t cq_size;
  union ibv_gid gid;
  int gid_index;
  uint16_t lid;
  uint8_t link_ib;
  uint8_t mtu;
  int numa;
  uint32_t pci;
  uint64_t max_mr_size, bw_mbps;
  uint8_t rd_atom, init_rd_atom; /* outstanding READs: the device's limits, <= 16 */
  _Atomic int up;                 /* port active, device alive */
  _Atomic uint64_t backoff_until; /* ms: no new WRs before this */
  _Atomic uint32_t backoff_ms;    /* next back-off, doubles to the cap */
  _Atomic uint32_t outstanding;   /* WRs posted, not retired: <= cq_size */
  _Atomic uint64_t errors, bytes;
  _Atomic uint64_t qps_made; /* active QPs created (debug stat) */
  _Atomic uint32_t gid_gen;  /* bumped when the GID changed */
  pthread_mutex_t gid_lock;  /* gid, gid_index, lid: the async thread updates them */
  pthread_mutex_t qtab_lock;
  struct rd_qp *qtab[RD_QTAB];    /* wr_id's QP slot -> QP */
  pthread_mutex_t ptab_lock;
  struct rd_passive *ptab[RD_QTAB]; /* receive wr_id's slot -> passive QP */
  pthread_t async_thread;
  int threads;
} rd_rail;

/* A WR posted and not yet retired. */
typedef struct rd_pend {
  uint64_t token, len;
  uint64_t t_ms; /* when posted: the slice deadline counts from here */
  uint8_t last; /* the slice's last WR: complete it when this retires */
} rd_pend;

enum { RDQ_DOWN = 0, RDQ_READY = 1, RDQ_ERROR = 2 };

/* An RC queue pair of an endpoint (active side). */
typedef struct rd_qp {
  struct rd_ep *ep;
  rd_rail *rail;
  uint32_t rrail; /* the peer's rail it is connected to */
  uint16_t qidx, slot;
  struct ibv_qp *qp;
  pthread_mutex_t lock; /* ring, state, qp */
  _Atomic int state;
  /* Lazy creation: `want` once the (local, remote) rail pair was used (the
   * fixer keeps a wanted QP up), `pending` from that first use until the
   * fixer's first attempt (submit pushes back meanwhile instead of
   * spilling to other rails). */
  _Atomic int want, pending;
  rd_pend *ring; /* allocated with the first QP */
  uint32_t cap, head, n;
  uint64_t seq; /* seq of ring[head] */
  uint32_t since_signal;
  int slice_status; /* first error of the slice being retired */
  int flush_status; /* status given to flushed WRs (MC_EIO, MC_ETIMEDOUT) */
  uint64_t slice_bytes; /* bytes of the slice being retired */
  uint64_t err_ms;
} rd_qp;

typedef struct rd_ep {
  struct rd_ctx *ctx;
  char peer[MC_NAME_MAX];
  uint64_t id;
  rdw_desc rdesc;
  uint32_t nqps, prn; /* prn: the peer's rails */
  /* Per (local rail, peer rail) pair, qps_per_peer each, created lazily:
   * qps[(lrail * prn + rrail) * qps_per_peer + k] (rd_ep_pair). */
  rd_qp *qps;
  _Atomic uint32_t rr;
  _Atomic uint64_t last_use;
  _Atomic int dead;       /* the peer did not answer the control exchange */
  /* Slices accepted for pairs whose QPs are being made (first use):
   * submit never blocks, so it keeps them here and the fixer posts them
   * once the QPs are up (or fails them: MC_EPEER, MC_ETIMEDOUT). */
  pthread_mutex_t wq_lock;
  mc_slice *wq;
  uint32_t wq_n, wq_cap;
  uint64_t wq_since; /* ms: when the oldest queued slice came */
  _Atomic int need_fix;
  uint64_t next_fix_ms;
  uint32_t fix_backoff_ms;
  /* Notifications: a registered send buffer, one SEND at a time. */
  uint8_t *nbuf;
  struct ibv_mr *nmr[RD_MAX_RAILS];
  uint32_t nseq;   /* the SEND waited for (low bits of its wr_id) */
  int ndone, nstatus;
  struct rd_ep *next;
} rd_ep;

/* A registration: an MR per rail and chunk. */
typedef struct rd_mr {
  uint64_t base, len, chunk;
  uint32_t nrails, nchunks;
  int dmabuf_fd;       /* device memory: its dma-buf while registering, else -1 */
  uint64_t dmabuf_base; /* the address at offset 0 of that dma-buf */
  struct ibv_mr **mrs; /* [rail * nchunks + c] */
  struct rd_mr *next;
} rd_mr;

/* An import of a peer's buffer. */
typedef struct rd_rmem {
  rd_ep *ep;
  uint64_t base, len; /* the imported range */
  rdw_rkey key;
  struct rd_rmem *next;
} rd_rmem;

/* QPs this context serves for a peer's endpoint (passive side). */
typedef struct rd_passive {
  char peer[MC_NAME_MAX];
  uint64_t init_nonce, ep_id;
  uint16_t qidx;
  uint16_t pslot; /* in rail->ptab when it has receives */
  rd_rail *rail;
  struct ibv_qp *qp;
  uint8_t *rbuf; /* RD_NOTE_RECVS buffers of RD_NOTE_BUF bytes */
  struct ibv_mr *rmr;
  struct rd_passive *next;
} rd_passive;

/* A completion thread: it polls the CQs of rails k, k + n, k + 2n, ... */
typedef struct rd_cqpoll {
  struct rd_ctx *ctx;
  uint32_t k, n;
  pthread_t th;
  int started;
} rd_cqpoll;

typedef struct rd_ctx {
  const mc_host_api *host;
  rd_cfg cfg;
  rd_verbs v;
  char segment[MC_NAME_MAX];
  uint64_t nonce;
  uint32_t nrails;
  rd_rail *rails[RD_MAX_RAILS];
  rd_cqpoll cqp[RD_MAX_RAILS];
  uint32_t ncqp;
  _Atomic int stop;

  pthread_mutex_t lock; /* eps, mrs, rmems lists */
  rd_ep *eps;
  rd_mr *mrs;
  rd_rmem *rmems;
  uint64_t next_ep_id;

  pthread_mutex_t plock; /* passive QPs */
  rd_passive *passive;
  uint32_t npassive;

  pthread_mutex_t nlock; /* endpoints' notify SEND state */
  pthread_cond_t ncond;

  pthread_mutex_t fix_lock;
  pthread_cond_t fix_cond;
  pthread_t fixer;
  _Atomic int fixer_started; /* read by rd_fixer_kick from any thread */
  _Atomic int fix_kick;
} rd_ctx;

#define RD_LOG(ctx, lvl, ...)                                                  \
  do {                                                                         \
    const mc_host_api *h_ = (ctx)->host;                                       \
    if (h_->log_enabled(h_->host, (lvl)))                                      \
      h_->log(h_->host, (lvl), __VA_ARGS__);                                   \
  } while (0)

uint64_t rd_now_ms(void);

/* rdma_dev.c */
int rd_rails_open(rd_ctx *ctx);
int rd_rails_start(rd_ctx *ctx);
void rd_rails_close(rd_ctx *ctx);
int rd_rail_usable(rd_rail *r, uint64_t now);
void rd_rail_fail(rd_rail *r);
void rd_rail_ok(rd_rail *r);
/* Copies the rail's current address (GID, index, LID) under gid_lock. */
void rd_rail_addr(rd_rail *r, union ibv_gid *gid, int *gid_index, uint16_t *lid);

/* rdma_mem.c */
int rd_mem_register(rd_ctx *ctx, const mc_mem_desc *d, rd_mr **out, void *rkey, size_t *rkey_len);
void rd_mem_deregister(rd_ctx *ctx, rd_mr *m);
int rd_mem_import(rd_ctx *ctx, rd_ep *ep, uint64_t base, uint64_t len, const void *rkey,
                  size_t rkey_len, rd_rmem **out);

/* rdma_cuda.c */
/* A dma-buf fd for the CUDA memory [addr, +len), from the driver (libcuda
 * dlopen'ed from cfg.cuda_library, cuMemGetHandleForAddressRange); the
 * buffer at offset 0 of the fd is at *base (addr rounded down to a page).
 * 0, or MC_ENOTSUP with the reason in why (no driver, no export). */
int rd_cuda_dmabuf(rd_ctx *ctx, uint64_t addr, uint64_t len, int *fd, uint64_t *base, char *why,
                   size_t whylen);

/* rdma_ep.c */
/* The first QP of the (local rail lr, peer rail rr) pair of ep. */
static inline rd_qp *rd_ep_pair(rd_ep *ep, uint32_t lr, uint32_t rr) {
  return &ep->qps[(lr * ep->prn + rr) * ep->ctx->cfg.qps_per_peer];
}
/* The peer rail a local rail's slices go to. */
static inline uint32_t rd_ep_rrail(const rd_ep *ep, uint32_t lr) { return lr % ep->prn; }
/* Asks the fixer for the QPs of pair pq (first use): 1 while they are
 * being built (push back), 0 when they were tried and are down. */
int rd_pair_request(rd_ep *ep, rd_qp *pq);
int rd_ep_connect(rd_ctx *ctx, const char *peer, const void *desc, size_t len, rd_ep **out);
void rd_ep_destroy(rd_ep *ep, int notify_peer);
int rd_ctrl_handle(rd_ctx *ctx, const char *peer, const void *req, size_t req_len, void *resp,
                   size_t *resp_len);
int rd_fixer_start(rd_ctx *ctx);
void rd_fixer_stop(rd_ctx *ctx);
void rd_fixer_kick(rd_ctx *ctx);
void rd_passive_free_all(rd_ctx *ctx);
int rd_qp_to_error(rd_qp *q, int flush_status);
/* Sends a notification as a SEND on one of ep's notify QPs and waits for
 * its completion: 0, or an error (the caller then uses the control
 * channel). */
int rd_notify_send(rd_ctx *ctx, rd_ep *ep, const void *msg, size_t len);
/* A receive completion on a passive QP (CQ thread). */
void rd_passive_recv(rd_rail *r, const struct ibv_wc *wc);
/* A notify SEND's completion (CQ thread). */
void rd_notify_done(rd_qp *q, uint64_t wr_id, int status);

/* rdma_io.c */
int rd_submit(rd_ctx *ctx, rd_ep *ep, const mc_slice *s, uint32_t n, uint32_t *accepted);
/* Keeps slice s until its pair's QPs are up: 0, or -1 when full. */
int rd_wq_add(rd_ep *ep, const mc_slice *s, uint64_t now);
void *rd_cq_main(void *arg);
/* Retires every WR still in q's ring with `status` (q->lock held). */
void rd_qp_fail_ring(rd_qp *q, int status);
int rd_wc_status(int wc_status);

#endif
