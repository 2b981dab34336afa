/* bench_net.h - small blocking TCP helpers for the bench control channel
 * and the socket baseline. */
#ifndef MC_BENCH_NET_H
#define MC_BENCH_NET_H

#include <stddef.h>
#include <stdint.h>

/* Binds and listens on "host:port" (port 0 = any free one); writes the
 * bound "host:port" into addr.  Returns the fd, or -1 with err set. */
int bench_listen(const char *hostport, char *addr, size_t addrlen, char *err,
                 size_t errlen);

/* Connects to "host:port" with TCP_NODELAY and a receive/send timeout of
 * timeout_ms (so a dead or stuck peer fails the call instead of hanging).
 * Returns the fd, or -1 with err set. */
int bench_connect(const char *hostport, int timeout_ms, char *err,
                  size_t errlen);

/* Sets TCP_NODELAY and the send/receive timeouts on a connected socket. */
void bench_sock_tune(int fd, int timeout_ms);

/* Whole-buffer I/O; 0 on success, -1 on error or EOF (errno 0 at EOF). */
int bench_send_all(int fd, const void *buf, size_t len);
int bench_recv_all(int fd, void *buf, size_t len);

/* Reads one '\n'-terminated line (without the newline) of at most len-1
 * bytes, byte by byte: fine for the few control lines.  0 or -1. */
int bench_recv_line(int fd, char *line, size_t len);

#endif
