/* sv.h - internals of libsoftverbs, a software verbs device for tests.
 *
 * libsoftverbs exports the libibverbs entry points mc-transport-rdma uses
 * (same names, same <infiniband/verbs.h> structs), so the plugin loads it
 * with its `library` key and runs its own, unchanged code over it.
 *
 * A "fabric" is one shared file (mapped by every process using the same
 * config) with a slot per process: that process's memory regions, queue
 * pairs and per-NIC fault flags and byte counters.  A NIC's "DMA engine"
 * (a thread per opened context) executes RDMA READ/WRITE work requests into
 * the peer process with process_vm_readv/writev after checking, on the
 * target's slot, what a NIC would check: the target QP exists and is in
 * RTR/RTS with remote access enabled, the rkey names a live MR of the same
 * PD with the needed access flag, and the range is inside it. */
#ifndef SV_H
#define SV_H

#include <infiniband/verbs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define SV_SLOTS 64
#define SV_MRS 4096
#define SV_QPS 1024
#define SV_NICS 8
#define SV_MAX_SGE 4
#define SV_MAGIC 0x53564642u /* "SVFB" */

/* Shared: one registered region.  rkey == lkey == (index << 12) | tag. */
typedef struct sv_mr_ent {
  _Atomic uint32_t live;  /* 0 free, 1 live, 2 being revoked */
  _Atomic uint32_t users; /* engines copying right now */
  uint32_t key, pd, access, pad;
  uint64_t addr, len; /* where the bytes are in the owner process */
  uint64_t iova;      /* the address WRs use: addr, or a dma-buf MR's iova */
  uint64_t map, map_len; /* a dma-buf MR: the engine's own mapping of the fd */
} sv_mr_ent;

#define SV_RQ 4 /* receive WRs a QP can hold (SEND targets) */

/* Shared: a posted receive, consumed by the sender's engine. */
typedef struct sv_rq_ent {
  uint64_t wr_id, addr;
  uint32_t len, lkey;
} sv_rq_ent;

/* Shared: a receive completion the sender's engine hands to the owner's
 * engine, which moves it into the owner's CQ. */
typedef struct sv_rc_ent {
  uint64_t wr_id;
  uint32_t byte_len, status;
} sv_rc_ent;

/* Shared: one QP as the target checks it, with its receive queue. */
typedef struct sv_qp_ent {
  _Atomic uint32_t state; /* enum ibv_qp_state; IBV_QPS_RESET when free */
  uint32_t used, pd, access, nic;
  uint32_t peer_gen; /* RoCE: the generation of the GID it answers to, or ~0 */
  _Atomic uint32_t rq_head, rq_tail; /* consumer: a sender; producer: owner */
  _Atomic uint32_t rc_head, rc_tail; /* consumer: owner; producer: a sender */
  sv_rq_ent rq[SV_RQ];
  sv_rc_ent rc[SV_RQ];
} sv_qp_ent;

/* Shared: a NIC of a slot, its faults and counters. */
typedef struct sv_nic_ent {
  _Atomic uint32_t dead;      /* the NIC is gone: every WR fails */
  _Atomic uint32_t port_down; /* link down: WRs fail, port reports DOWN */
  _Atomic uint32_t wc_err;    /* the next N WRs complete in error */
  _Atomic uint32_t qp_err;    /* request: force every QP of it to ERR */
  _Atomic uint32_t stall;     /* WRs wait (lost packets) until a QP leaves RTS */
  _Atomic uint32_t gid_gen;   /* bumped by a GID change: the port's GIDs carry it */
  uint32_t mtu;               /* the port's active MTU (enum ibv_mtu): a peer
                                 sending larger packets gets them dropped */
  _Atomic uint64_t bytes;     /* bytes moved as initiator */
  _Atomic uint64_t wrs;       /* work requests executed */
} sv_nic_ent;

typedef struct sv_slot {
  _Atomic int32_t pid;
  _Atomic uint32_t next_tag, next_pd;
  _Atomic uint64_t cq_overruns;
  sv_nic_ent nic[SV_NICS];
  sv_qp_ent qp[SV_QPS];
  sv_mr_ent mr[SV_MRS];
} sv_slot;

typedef struct sv_fabric {
  uint32_t magic;
  sv_slot slot[SV_SLOTS];
} sv_fabric;

/* Per process: the configured NICs. */
typedef struct sv_nic_cfg {
  char name[64];
  int numa;
  char pci[32];
  enum ibv_mtu mtu;
  uint64_t max_mr_size;
  int link_ib; /* 1: InfiniBand link layer (LID), 0: Ethernet (RoCE v2) */
} sv_nic_cfg;

typedef struct sv_global {
  int ok;
  char err[256];
  sv_fabric *fab;
  sv_slot *me;
  int slot;
  int nnic;
  sv_nic_cfg cfg[SV_NICS];
  struct ibv_device dev[SV_NICS];
  _Atomic uint64_t engine_cpu_ns;
  _Atomic uint64_t posts;   /* ibv_post_send calls (doorbells) */
  _Atomic uint32_t qp_alloc_lock; /* spin: qp/mr table slot allocation */
} sv_global;

extern sv_global sv_g;

/* Process-local objects. */
typedef struct sv_cq {
  struct ibv_cq cq;
  pthread_mutex_t lock;
  struct ibv_wc *ring;
  uint32_t cap, head, n;
  int armed;
} sv_cq;

typedef struct sv_wqe {
  uint64_t wr_id, remote_addr;
  uint32_t opcode, flags, rkey, nsge;
  struct ibv_sge sge[SV_MAX_SGE];
} sv_wqe;

typedef struct sv_qp {
  struct ibv_qp qp;
  int idx;                  /* in sv_g.me->qp */
  int nic;
  uint32_t access;
  int peer_slot;            /* resolved at RTR */
  int32_t peer_pid;
  uint32_t peer_qpn;
  uint32_t path_mtu;        /* enum ibv_mtu set at RTR */
  uint64_t rnr_until;       /* a SEND met no receive: retry after this (ns) */
  int global;               /* GID routed (RoCE): both ends' GIDs must still hold */
  uint32_t peer_gen, my_gen; /* GID generations when it went to RTR */
  sv_wqe *sq;
  uint32_t cap, head, n;    /* under ctx lock */
  struct sv_qp *next;       /* ctx list */
} sv_qp;

typedef struct sv_ctx {
  struct ibv_context ctx;
  int nic;
  int pipe_async[2];
  pthread_mutex_t lock;     /* QPs' send queues, qp list */
  pthread_cond_t cond;
  sv_qp *qps;
  sv_qp *busy;              /* QP whose WQEs the engine runs unlocked */
  int stop;
  int sleeping;             /* the engine waits on cond: a post rings it */
  pthread_t engine;
  uint32_t seen_qp_err;
  uint32_t seen_down, seen_dead, seen_gid;
} sv_ctx;

/* sv_fabric.c */
void sv_global_init(void);
int sv_gid_for(int slot, int nic, int v2, union ibv_gid *gid);
/* The GIDs carry the NIC's GID generation (a GID change gives new ones). */
int sv_gid_decode(const union ibv_gid *gid, int *slot, int *nic, uint32_t *gen);
/* sv_engine.c */
void *sv_engine_main(void *arg);
void sv_cq_push(sv_cq *cq, const struct ibv_wc *wc);
void sv_async(sv_ctx *c, enum ibv_event_type t, void *elem, int port);
int sv_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);

#endif
