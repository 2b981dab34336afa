/* efa_ctx.h - the efa plugin's state: a context owns one libfabric
 * fabric/domain/endpoint/AV/CQ per rail (one device), each served by one
 * worker thread that reads the rail's CQ, posts queued operations and
 * enforces deadlines.  Peers (connect) hold the peer's per-rail endpoint
 * names and the AV addresses they resolve to. */
#ifndef MC_EFA_CTX_H
#define MC_EFA_CTX_H

#include <pthread.h>
#include <stdint.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_rma.h>

#include "efa_blob.h"
#include "mooncake/transport.h"

#define EFA_LOG(ctx, lvl, ...) (ctx)->host->log((ctx)->host->host, (lvl), __VA_ARGS__)

/* Notification wire header (fi_send payload): magic, version, name length,
 * flags, 0, the target's secret, then the sender's segment name and the
 * message.  Flag EFA_NOTE_PING: a liveness probe, dropped by the target
 * once authenticated (its completion at the sender is the answer). */
#define EFA_NOTE_PING 1u
#define EFA_NOTE_MAGIC 0x45544f4eu /* "NOTE" */
#define EFA_NOTE_HDR (4 + 1 + 1 + 2 + EFAB_SECRET)
#define EFA_NOTE_MAX (EFA_NOTE_HDR + MC_NAME_MAX + MC_NOTIFY_MAX)
#define EFA_RECV_SLOTS 16u
#define EFA_SEND_SLOTS 16u

typedef struct efa_cfg {
  char provider[128];
  char domains[256];
  uint32_t rails;
  int timeout_ms;
  uint32_t max_inflight;
  int poll_us;
  int spin_us;
  int hmem; /* ask for FI_HMEM (hmem: auto resolved by the provider) */
} efa_cfg;

enum efa_op_kind { EFA_OP_RMA = 1, EFA_OP_SEND, EFA_OP_RECV };
enum efa_op_state {
  EFA_ST_FREE = 0,
  EFA_ST_QUEUED,
  EFA_ST_POSTED,
  EFA_ST_ABANDONED,
  EFA_ST_PROBING /* parked in rail->probing until its peer answers a probe */
};

struct efa_peer;
struct efa_ctx;

/* One operation handed to libfabric.  fctx is first: its address is the
 * operation context libfabric returns in the CQ (FI_CONTEXT2 mode). */
typedef struct efa_op {
  struct fi_context2 fctx;
  uint8_t kind, state;
  uint32_t op; /* enum mc_op */
  uint64_t token;
  uint64_t laddr, len, raddr, key;
  void *ldesc;
  struct efa_peer *peer;
  uint32_t prail; /* the peer's rail */
  int64_t deadline_ms;
  int64_t not_before_ms; /* a retried op waits until then */
  uint32_t retries;
  uint8_t probed; /* the peer answered a probe after this op's failures */
  uint8_t ping;   /* EFA_OP_SEND: a liveness probe of peer (no message) */
  uint8_t probe_failed; /* parked, and a probe of its peer failed since */
  struct efa_op *prev, *next; /* queued, posted or probing list */
  uint8_t *buf;               /* EFA_OP_SEND / EFA_OP_RECV: EFA_NOTE_MAX bytes */
} efa_op;

typedef struct efa_list {
  efa_op *head, *tail;
  uint32_t n;
} efa_list;

typedef struct efa_av_entry {
  uint16_t len;
  uint8_t addr[EFAB_MAX_ADDR];
  fi_addr_t fa;
} efa_av_entry;

typedef struct efa_rail {
  struct efa_ctx *ctx;
  uint32_t idx;
  struct fi_info *info; /* a copy owned by the rail */
  struct fid_fabric *fabric;
  struct fid_domain *domain;
  struct fid_av *av;
  struct fid_cq *cq;
  struct fid_ep *ep;
  struct fid_mr *note_mr; /* the notification buffers (FI_MR_LOCAL) */
  void *note_desc;
  uint8_t *note_mem; /* (EFA_RECV_SLOTS + EFA_SEND_SLOTS) x EFA_NOTE_MAX */
  int cq_wait;       /* the CQ has a wait object: fi_cq_sread works */
  /* Rails without a wait object: counts RMA that peers completed into
   * this endpoint (FI_RMA_EVENT), when the provider offers it; NULL else.
   * Read by the worker only. */
  struct fid_cntr *rcntr;
  uint8_t addr[EFAB_MAX_ADDR];
  size_t addr_len;
  mc_rail_info ri;

  /* Serialises this rail's posting calls (fi_read/fi_write/fi_send/
   * fi_recv) as the rail lock did before; never taken by the deadline
   * thread, never held with the rail lock. */
  pthread_mutex_t post_lock;
  pthread_mutex_t lock; /* everything below */
  pthread_cond_t cond;  /* a send slot came free */
  efa_op *ops;          /* max_inflight RMA ops */
  efa_op *free_ops;
  efa_op recv_ops[EFA_RECV_SLOTS];
  efa_op send_ops[EFA_SEND_SLOTS];
  efa_list queued, posted;
  /* RMA ops that failed with connection-level errors RETRY_MAX times,
   * waiting for the answer to a probe of their peer (efa_xfer.c). */
  efa_list probing;
  uint32_t abandoned;
  int64_t last_submit_ns; /* the latest submit of an op here (keeps a polled rail spinning) */
  int av_work; /* a peer connected: resolve its address here */
  int64_t av_retry_ms; /* a failed insert to try again then (0: none) */
  /* Addresses inserted into av so far: a peer seen again (a descriptor
   * refresh, a second view) reuses its entry, as some providers refuse a
   * second insert of one address.  Entries live until fini. */
  struct efa_av_entry *av_cache;
  uint32_t av_n, av_cap;
  int stop;
  int draining; /* fini waits for posted ops: post nothing new */
  int exited; /* the worker returned (set under lock, cond broadcast) */
  pthread_t thr;
  int thr_started;
} efa_rail;

/* A connected peer (one per connect). */
typedef struct efa_peer {
  struct efa_ctx *ctx;
  char name[MC_NAME_MAX];
  efab_desc desc;
  /* Per local rail: the AV address of the peer's rail (i % nrails),
   * FI_ADDR_NOTAVAIL until the rail's worker inserted it. */
  fi_addr_t fa[EFAB_MAX_RAILS];
  int av_state[EFAB_MAX_RAILS];       /* 0 pending, 1 ready, <0 failed (MC_E*) */
  /* A failed fi_av_insert is tried again (worker only): the first
   * failure's time and when the next try may run. */
  int64_t av_first_fail_ms[EFAB_MAX_RAILS];
  int64_t av_after_ms[EFAB_MAX_RAILS];
  /* Probes per rail (rail lock): one in flight, failed ones in a row, and
   * when the next may go. */
  uint8_t ping[EFAB_MAX_RAILS];
  uint8_t ping_fails[EFAB_MAX_RAILS];
  int64_t ping_after_ms[EFAB_MAX_RAILS];
  struct efa_peer *next;
} efa_peer;

/* A local registration: one MR per rail's domain. */
typedef struct efa_mem {
  uint64_t base, len;
  struct fid_mr *mr[EFAB_MAX_RAILS];
  void *desc[EFAB_MAX_RAILS];
  uint64_t key[EFAB_MAX_RAILS];
  struct efa_mem *next;
} efa_mem;

/* An imported remote buffer. */
typedef struct efa_rmem {
  efa_peer *peer;
  uint64_t base, len; /* the imported view */
  efab_rkey k;
  struct efa_rmem *next;
} efa_rmem;

typedef struct efa_ctx {
  const mc_host_api *host;
  efa_cfg cfg;
  char segment[MC_NAME_MAX];
  uint8_t secret[EFAB_SECRET];
  uint32_t nrails;
  efa_rail rails[EFAB_MAX_RAILS];
  uint64_t mr_mode; /* the provider's FI_MR_* bits */
  size_t key_size;  /* domain_attr->mr_key_size */
  int hmem;         /* FI_HMEM granted */
  int drain_on_close; /* shm: let posted ops finish before closing (efa_plugin.c) */
  pthread_mutex_t lock; /* peers, mems, rmems */
  efa_peer *peers;
  efa_mem *mems;
  efa_rmem *rmems;
  /* The deadline thread (efa_xfer.c, reaper). */
  pthread_mutex_t reap_lock;
  pthread_cond_t reap_cond; /* CLOCK_MONOTONIC */
  int reap_stop;
  pthread_t reap_thr;
  int reap_started;
  int wedged; /* a worker never returned from libfabric: fini leaks, never frees */
} efa_ctx;

/* efa_fabric.c */
int efa_fabric_open(efa_ctx *ctx);
/* Providers whose CQ the workers poll (no wait object that peers wake):
 * shm. */
int efa_prov_polled(const char *prov);
void efa_fabric_close(efa_ctx *ctx);
void efa_fabric_close_eps(efa_ctx *ctx);
/* efa_mr.c */
int efa_mr_register(efa_ctx *ctx, const mc_mem_desc *d, efa_mem **out);
void efa_mr_close(efa_ctx *ctx, efa_mem *m);
int efa_fill_random(void *p, size_t n);
/* efa_xfer.c */
int efa_workers_start(efa_ctx *ctx);
/* Stops the workers and the deadline thread.  Returns MC_EBUSY (ctx->wedged
 * set) when a worker did not come back from a libfabric call in time: its
 * rail must then be neither closed nor freed. */
int efa_workers_stop(efa_ctx *ctx);
int efa_submit(efa_ctx *ctx, efa_peer *peer, const mc_slice *s, uint32_t n,
               uint32_t *accepted);
void efa_peer_cancel_all(efa_ctx *ctx, efa_peer *peer, int status);
int efa_cancel_token(efa_ctx *ctx, uint64_t token);
void efa_fail_all(efa_ctx *ctx, int status);
int64_t efa_now_ms(void);
/* efa_notify.c */
int efa_notify_post_recvs(efa_rail *r);
void efa_notify_recv_done(efa_rail *r, efa_op *op, size_t len);
int efa_notify_send(efa_ctx *ctx, efa_peer *peer, const void *msg, size_t len);
/* Posts a probe of peer on rail r (rail lock held; dropped around the
 * provider call).  0 when posted, -FI_EAGAIN to try later, or an error. */
int efa_ping_post(efa_rail *r, efa_peer *peer);
/* Errors of libfabric (positive FI_E* codes) as MC_E*. */
int efa_err_map(int fi_err);
/* The class of an RMA's completion error: EFA_ERR_ACCESS (the target
 * refused it: key, range, permission), EFA_ERR_CONN (connection-level:
 * worth a retry, and a probe of the peer when retries keep failing) or
 * EFA_ERR_OTHER. */
enum { EFA_ERR_OTHER = 0, EFA_ERR_ACCESS, EFA_ERR_CONN };
int efa_rma_err_class(int fi_err);

#endif
