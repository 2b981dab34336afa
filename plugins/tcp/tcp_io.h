/* tcp_io.h - socket helpers: options, listening, peer addresses, and the
 * monotonic clock every deadline of the plugin is measured with.  Nothing
 * here waits: all sockets are non-blocking and driven by epoll. */
#ifndef MC_TCP_IO_H
#define MC_TCP_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tcp_ctx.h"

int64_t tcp_now_ms(void);

/* Applies TCP_NODELAY, keepalive, TCP_USER_TIMEOUT and buffer sizes. */
void tcp_sock_setup(int fd, const tcp_cfg *cfg);

/* The remote address of connected fd: ip (the per-source key) and
 * "ip:port" (for logs); "?" when unknown. */
void tcp_format_peer(int fd, char *ip, size_t iplen, char *addr, size_t addrlen);

/* Binds and listens on host:port (port 0 = ephemeral); *bound gets the
 * port.  Returns the fd or MC_E*. */
int tcp_listen(const char *host, uint16_t port, uint16_t *bound);

#endif
