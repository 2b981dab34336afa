/* tcp_frames.h - the target's per-connection frame machine: what one
 * authenticated connection is in the middle of, and a non-blocking turn
 * that advances it.  tcp_serve.c owns the connections and the epoll sets;
 * this file only reads, serves and answers frames.
 *
 * Nothing here waits: a WRITE payload that has not all arrived, a NOTIFY
 * not yet complete, and responses the socket cannot take yet are kept in
 * the connection, and the turn returns.  So one stalled peer never holds
 * a worker; tcp_serve.c closes a connection stuck inside a frame for
 * timeout_ms (sv_busy). */
#ifndef MC_TCP_FRAMES_H
#define MC_TCP_FRAMES_H

#include <stdint.h>
#include <sys/uio.h>

#include "tcp_ctx.h"
#include "tcp_wire.h"

/* Input buffer: a whole NOTIFY frame fits, and a burst of READ headers is
 * one recv. */
#define SV_IN_CAP (TCPW_HDR_SIZE + TCPW_MAX_NOTIFY + TCPW_HDR_SIZE)
#define SV_OUT_MAX 16u               /* responses gathered per sendmsg */
#define SV_TURN_FRAMES 64u           /* a turn ends after these frames */
#define SV_TURN_BYTES (16ull << 20)  /* ... or these many payload bytes */
#define SV_SCRATCH (64u * 1024u)     /* drain buffer of refused WRITEs */

typedef struct sv_conn {
  int fd;
  int ready;       /* on its worker's ready list (tcp_serve.c) */
  int want_out;    /* registered for EPOLLOUT instead of EPOLLIN */
  int64_t last_ms; /* last progress (bytes in or out) */
  struct sv_conn *prev, *next, *rnext;
  char peer[TCPW_MAX_NAME + 1];
  char addr[64];
  /* Input not yet served: in[in_off, +in_len). */
  size_t in_len, in_off;
  uint8_t in[SV_IN_CAP];
  /* A WRITE whose payload is still arriving (in_write): into wdst, or
   * drained when refused (wdst NULL); wpin holds the buffer meanwhile. */
  int in_write;
  uint8_t *wdst;
  uint64_t wleft;
  tcp_buf *wpin;
  tcpw_hdr wresp;
  /* ... a WRITE into a file range: the payload's buffer, written at waddr
   * once whole (tcp_file.c). */
  uint8_t *wfile;
  uint64_t waddr;
  /* Responses not yet sent: on frames, oiov[opos..oniov) left. */
  uint32_t on, oniov, opos, onpin;
  uint8_t ohdr[SV_OUT_MAX][TCPW_HDR_SIZE];
  struct iovec oiov[2 * SV_OUT_MAX];
  tcp_buf *opin[SV_OUT_MAX];
  /* The bytes of a READ of a file range, queued last: nothing more is
   * read until it is sent, so a connection holds at most one. */
  void *ofile;
} sv_conn;

/* One turn: sends what it can of pending responses, reads and serves
 * frames until the socket has no more, the frame or byte budget is spent,
 * or the socket cannot take more responses.  0 to keep the connection
 * (*again = 1: complete frames are still buffered, run it again soon), or
 * MC_EPEER (closed or reset), MC_EPROTO (bad frame; logged), MC_ENOMEM. */
int sv_turn(tcp_ctx *ctx, sv_conn *c, char *scratch, int *again);
/* 1 while c is inside a frame or has responses unsent. */
int sv_busy(const sv_conn *c);
/* Releases every buffer c pins (before closing it). */
void sv_release(tcp_ctx *ctx, sv_conn *c);

#endif
