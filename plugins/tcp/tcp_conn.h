/* tcp_conn.h - initiator side: endpoints and their connections (rails).
 *
 * An endpoint holds `connections` connections to one peer; slice.rail picks
 * one (mod N).  A connection is a bounded queue plus an in-flight ring,
 * driven by one of the context's io workers (tcp_iloop.h): it dials lazily,
 * sends batches of frames (header + local memory), matches the in-order
 * responses, receives READ payloads straight into local memory and enforces
 * slice deadlines (tcp_conn.c).  A dropped socket fails its in-flight
 * slices and the next queued slice dials again.  The calls below
 * (tcp_ep.c) run on the engine's threads and never block on the network;
 * tcp_ep_create needs ctx->iloop started. */
#ifndef MC_TCP_CONN_H
#define MC_TCP_CONN_H

#include <sys/socket.h>

#include "tcp_ctx.h"

typedef struct tcp_ep tcp_ep;

/* Resolves host:port now (MC_EPEER if it does not resolve); connects later,
 * presenting secret (the peer's, from its descriptor) in each HELLO. */
int tcp_ep_create(tcp_ctx *ctx, const char *peer, const char *host, uint16_t port,
                  const uint8_t secret[16], tcp_ep **out);
/* Stops and joins the connections; pending slices complete with `status`. */
void tcp_ep_destroy(tcp_ep *ep, int status);
/* submit() of the ABI for one endpoint. */
int tcp_ep_submit(tcp_ep *ep, const mc_slice *slices, uint32_t n, uint32_t *accepted);
/* Sends a NOTIFY on the endpoint's first connection; waits until written. */
int tcp_ep_notify(tcp_ep *ep, const void *msg, size_t len);

/* Marks a queued (not yet written) slice canceled; the sender completes it
 * with MC_ECANCELED.  Returns 1 when found.  Slices already written run to
 * their real status. */
int tcp_ep_cancel(tcp_ep *ep, uint64_t token);

struct tcp_conn;
/* A submitting thread's attempt to send a connection's queue itself: 1
 * when it did (all of it went out), 0 when the worker must be kicked (the
 * connection is not ready, busy, the socket is full, or a send failed). */
int tcp_conn_send_inline(struct tcp_conn *c);

/* Endpoint list linkage, owned by the ctx (under ctx->lock). */
tcp_ep **tcp_ep_next(tcp_ep *ep);

#endif
