/* tcp_conn_p.h - the initiator's connection and endpoint structures,
 * shared by the connection state machine (tcp_conn.c, run by the io
 * workers) and the endpoint API (tcp_ep.c, called by the engine's
 * threads).  Not for the other modules: they see tcp_conn.h. */
#ifndef MC_TCP_CONN_P_H
#define MC_TCP_CONN_P_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "tcp_conn.h"
#include "tcp_iloop.h"
#include "tcp_wire.h"

#define OP_NOTIFY 2u
#define NOTIFY_SLOTS 16u
#define TX_MAX 64u          /* frames per sendmsg batch */
#define RX_CAP 4096u        /* input buffer: several response headers per recv */
#define RX_TURN (16u << 20) /* payload bytes per turn before others get theirs */
#define DIAL_TRIES 4
#define DIAL_BACKOFF_MS 10

enum { CS_IDLE, CS_CONNECTING, CS_HELLO, CS_READY };

typedef struct notify_wait {
  const void *msg;
  size_t len;
  int done, rc;
} notify_wait;

typedef struct tcp_item {
  uint64_t token, seq, buf_id, raddr, laddr, len;
  int64_t deadline;
  uint32_t op;
  int canceled; /* cancel() reached it while queued */
  uint8_t secret[TCPW_SECRET_SIZE];
  notify_wait *nw;
} tcp_item;

typedef struct ring {
  tcp_item *v;
  uint32_t cap, head, count;
} ring;

/* The in-flight ring: pushed by the sender (whoever holds txlock: the
 * worker, or a submitting thread sending inline), popped by the worker
 * alone as responses arrive.  Single producer, single consumer; free-running
 * counters over a power-of-two capacity. */
typedef struct inf_ring {
  tcp_item *v;
  uint32_t cap;
  atomic_uint head, tail;
} inf_ring;

typedef struct tcp_conn {
  tcp_ep *ep;
  uint32_t idx;
  tcp_ilink link;
  pthread_mutex_t lock; /* q, notify waits */
  pthread_cond_t cond;  /* a notify wait resolved */
  ring q;               /* accepted, not yet in a batch */
  atomic_uint nslices;  /* slices queued or in flight: admission control */
  /* The sending side: the socket's output, taken by the worker or (only
   * with trylock) by a submitting thread that finds the connection ready
   * and nothing half sent: it then sends its own slices at once, saving
   * the worker's wake-up.  Lock order: txlock, then lock. */
  pthread_mutex_t txlock;
  int tx_ready;         /* READY and fd usable for sending */
  int tx_err;           /* a send failed: the worker drops the connection */
  uint64_t next_seq;
  uint32_t tx_frames;   /* frames of the batch being sent (0: none) */
  int tx_niov, tx_pos;  /* its iovecs and the first not fully sent */
  struct iovec tx_iov[2 * TX_MAX];
  uint8_t tx_hdr[TX_MAX][TCPW_HDR_SIZE];
  notify_wait *tx_nw[TX_MAX];
  uint32_t tx_nnw;
  inf_ring inf;         /* in a batch, awaiting their response, in order */
  _Atomic int64_t last_ms; /* last progress, either direction */
  /* The worker's alone (fd is changed only while tx_ready is 0): */
  int fd, state, attempts;
  int64_t dial_deadline, retry_at;
  size_t rx_len, rx_off; /* input: rx[rx_off, +rx_len) */
  uint64_t rx_payload_done; /* of the head item's READ payload; with rx_in_payload */
  int rx_in_payload;
  uint8_t rx[RX_CAP];
} tcp_conn;

struct tcp_ep {
  tcp_ctx *ctx;
  char peer[MC_NAME_MAX];
  struct sockaddr_storage sa;
  socklen_t salen;
  uint8_t secret[16]; /* the peer endpoint's, sent in HELLO */
  uint32_t nconn;
  tcp_conn *conns;
  tcp_ep *next;
};

/* Consumer (worker) side: items in flight; the oldest; taking it. */
static inline uint32_t inf_count(inf_ring *r) {
  return atomic_load_explicit(&r->tail, memory_order_acquire) -
         atomic_load_explicit(&r->head, memory_order_relaxed);
}
static inline tcp_item *inf_head(inf_ring *r) {
  return &r->v[atomic_load_explicit(&r->head, memory_order_relaxed) & (r->cap - 1)];
}
static inline tcp_item inf_pop(inf_ring *r) {
  uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  tcp_item it = r->v[h & (r->cap - 1)];
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  return it;
}
/* Producer (txlock holder) side.  Never full: admission (nslices) keeps
 * queued + in flight under max_inflight <= cap. */
static inline void inf_push(inf_ring *r, const tcp_item *it) {
  uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  r->v[t & (r->cap - 1)] = *it;
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

static inline tcp_item *ring_at(ring *r, uint32_t i) { return &r->v[(r->head + i) % r->cap]; }
static inline void ring_push(ring *r, const tcp_item *it) {
  r->v[(r->head + r->count) % r->cap] = *it;
  r->count++;
}
static inline tcp_item ring_pop(ring *r) {
  tcp_item it = r->v[r->head];
  r->head = (r->head + 1) % r->cap;
  r->count--;
  return it;
}

#endif
