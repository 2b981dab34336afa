/* tcp_serve.h - target side, authenticated connections: a fixed set of
 * io_threads workers, each with its own epoll set, serving the READ, WRITE
 * and NOTIFY frames of every connection handed to it.  The thread count does
 * not grow with peers; a connection costs one fd and a 4 KiB input buffer.
 *
 * A worker serves one connection's frames in order, gathering up to
 * SV_OUT_MAX responses (headers and READ payloads straight from registered
 * memory) into one sendmsg, and receives WRITE payloads straight into
 * registered memory.  It gives each ready connection a bounded turn (frames
 * and bytes) so busy peers share the thread.  Connections idle for
 * idle_timeout_ms are closed (the initiator dials again on its next
 * slice). */
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
/* Connections being served now. */
unsigned tcp_serve_count(const tcp_serve *sv);
/* Joins the workers (the caller has set *stop), closes every connection. */
void tcp_serve_stop(tcp_serve *sv);

#endif
