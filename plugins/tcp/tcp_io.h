/* tcp_io.h - socket helpers with deadlines and stop flags.
 *
 * Sockets are non-blocking; every helper polls in short ticks so that a
 * stop flag (fini, disconnect) is noticed within TCP_IO_TICK_MS and a
 * deadline (absolute, tcp_now_ms() clock, -1 = none) bounds every wait. */
#ifndef MC_TCP_IO_H
#define MC_TCP_IO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "tcp_ctx.h"

#define TCP_IO_TICK_MS 200

int64_t tcp_now_ms(void);

/* Sends the whole iovec (modified in place).  0, MC_ETIMEDOUT past the
 * deadline, MC_ECANCELED when *stop is set, MC_EPEER on a socket error. */
int tcp_send_iov(int fd, struct iovec *iov, int iovcnt, int64_t deadline,
                 const atomic_int *stop);
/* Receives exactly len bytes; as tcp_send_iov, MC_EPEER also on EOF. */
int tcp_recv_all(int fd, void *buf, size_t len, int64_t deadline,
                 const atomic_int *stop);
/* Applies TCP_NODELAY, keepalive, TCP_USER_TIMEOUT and buffer sizes. */
void tcp_sock_setup(int fd, const tcp_cfg *cfg);

/* The remote address of connected fd: ip (the per-source key) and
 * "ip:port" (for logs); "?" when unknown. */
void tcp_format_peer(int fd, char *ip, size_t iplen, char *addr, size_t addrlen);

/* Binds and listens on host:port (port 0 = ephemeral); *bound gets the
 * port.  Returns the fd or MC_E*. */
int tcp_listen(const char *host, uint16_t port, uint16_t *bound);

#endif
