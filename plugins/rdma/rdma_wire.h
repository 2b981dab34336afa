/* rdma_wire.h - the rdma plugin's blobs: endpoint descriptor (local_desc),
 * remote key (register_mem) and control messages (ctrl_call/ctrl_handle).
 * All little-endian, versioned, and decoded defensively: they come from
 * peers.  Decoders never read past `len` and reject trailing bytes. */
#ifndef MC_RDMA_WIRE_H
#define MC_RDMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define RDW_VERSION 1
#define RDW_MAX_RAILS 32
#define RDW_DESC_MAGIC 0x4452434du /* "MCRD" */
#define RDW_RKEY_MAGIC 0x4b52u     /* "RK" */
#define RDW_CTRL_MAGIC 0x4352u     /* "RC" */

/* One rail of the descriptor: how peers address its port. */
typedef struct rdw_rail {
  uint8_t gid[16];
  uint16_t lid;
  uint8_t link_ib; /* 1: InfiniBand (LID routed), 0: Ethernet (GID) */
  uint8_t mtu;     /* enum ibv_mtu of the port (1..5) */
} rdw_rail;

typedef struct rdw_desc {
  uint64_t nonce; /* the context's random id: a restarted peer has another */
  uint32_t nrails;
  rdw_rail rails[RDW_MAX_RAILS];
} rdw_desc;

int rdw_desc_encode(const rdw_desc *d, void *buf, size_t *len);
int rdw_desc_decode(const void *buf, size_t len, rdw_desc *d);

/* Remote key: nrails x nchunks rkeys of a buffer registered in chunks. */
#define RDW_RKEY_HDR 40
#define RDW_RKEY_MAX_KEYS ((256 - RDW_RKEY_HDR) / 4)
typedef struct rdw_rkey {
  uint64_t nonce, base, len, chunk;
  uint32_t nrails, nchunks;
  uint32_t keys[RDW_RKEY_MAX_KEYS]; /* rail-major: keys[r * nchunks + c] */
} rdw_rkey;

size_t rdw_rkey_size(uint32_t nkeys);
int rdw_rkey_encode(const rdw_rkey *k, void *buf, size_t *len);
int rdw_rkey_decode(const void *buf, size_t len, rdw_rkey *k);

/* Control messages. */
enum { RDW_CONNECT = 1, RDW_CONNECT_OK = 2, RDW_DISCONNECT = 3, RDW_NOTIFY = 4 };
#define RDW_CTRL_HDR 32
#define RDW_QP_ENTRY 32
#define RDW_MAX_QPS ((4096 - RDW_CTRL_HDR) / RDW_QP_ENTRY)

/* One queue pair's address: the initiator's in CONNECT, the target's in
 * CONNECT_OK (same order). */
typedef struct rdw_qp {
  uint16_t qidx;       /* the initiator's QP index in its endpoint */
  uint8_t lrail;       /* initiator's rail */
  uint8_t rrail;       /* target's rail */
  uint32_t qpn, psn;
  uint16_t lid;
  uint8_t mtu;
  uint8_t flags; /* RDW_QP_NOTIFY: the target posts receives on this QP */
  uint8_t gid[16];
} rdw_qp;

#define RDW_QP_NOTIFY 1u

typedef struct rdw_ctrl {
  uint32_t type;
  uint64_t init_nonce;   /* initiator context */
  uint64_t target_nonce; /* the target context the initiator believes in */
  uint64_t ep_id;
  uint32_t nqps;
  rdw_qp qps[RDW_MAX_QPS];
  const uint8_t *payload; /* NOTIFY: points into the decoded buffer */
  size_t payload_len;
} rdw_ctrl;

int rdw_ctrl_encode(const rdw_ctrl *m, void *buf, size_t *len);
int rdw_ctrl_decode(const void *buf, size_t len, rdw_ctrl *m);

#endif
