/* tcp_serve.h - target side, authenticated connections: a fixed set of
 * io_threads workers, each with its own epoll set, serving the READ, WRITE
 * and NOTIFY frames of every connection handed to it.  The thread count does
 * not grow with peers; a connection costs one fd and a 4 KiB input buffer.
 *
 * A worker gives each ready connection a bounded, non-blocking turn
 * (tcp_frames.h: frames served in order, responses gathered into one
 * sendmsg, payloads straight between the socket and registered memory),
 * so busy or stalled peers share the thread without holding it.
 * Connections idle for idle_timeout_ms are closed (the initiator dials
 * again on its next slice), and so are those stuck inside a frame for
 * timeout_ms. */
#ifndef MC_TCP_SERVE_H
#define MC_TCP_SERVE_H

#include <stdatomic.h>

#include "tcp_ctx.h"

typedef struct tcp_serve tcp_serve;

/* Starts cfg.io_threads workers; they stop when *stop is set (and
 * tcp_serve_stop is called).  0 or MC_ENOMEM; *out is set in both cases,
 * and after a failure the caller sets *stop and calls tcp_serve_stop. */
int tcp_serve_start(tcp_ctx *ctx, const atomic_int *stop, tcp_serve **out);
/* Takes over an authenticated connection (its HELLO named `peer`; `addr`
 * is ip:port for logs).  0, or MC_EBUSY at max_connections and MC_ENOMEM:
 * then fd is still the caller's. */
int tcp_serve_add(tcp_serve *sv, int fd, const char *peer, const char *addr);
/* Joins the workers (the caller has set *stop), closes every connection. */
void tcp_serve_stop(tcp_serve *sv);

#endif
