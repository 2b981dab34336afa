/* Internal: small socket helpers shared by the core's listeners and
 * clients (p2p metadata, HTTP).  All blocking calls take a deadline. */
#ifndef MC_NET_H
#define MC_NET_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in milliseconds. */
uint64_t mc_now_ms(void);

struct timespec;
/* Absolute CLOCK_MONOTONIC time timeout_ms from now, for
 * pthread_cond_timedwait on condvars set to that clock. */
void mc_deadline_ts(struct timespec *ts, uint64_t timeout_ms);

/* Splits "host:port" / "[v6]:port" into host and port.  MC_EINVAL if bad. */
int mc_net_split_hostport(const char *hp, char *host, size_t hostlen,
                          uint16_t *port);

/* Binds and listens on host:port (port 0 = any); *fd set, *bound_port gets
 * the real port.  Returns MC_E*. */
int mc_net_listen(const char *host, uint16_t port, int backlog, int *fd,
                  uint16_t *bound_port);

/* Connects with a timeout; TCP_NODELAY set, close-on-exec. MC_EPEER or
 * MC_ETIMEDOUT on failure. */
int mc_net_connect(const char *host, uint16_t port, int timeout_ms, int *fd);

/* Reads/writes exactly len bytes before deadline_ms (mc_now_ms based).
 * MC_EPEER on EOF/reset, MC_ETIMEDOUT past the deadline. */
int mc_net_read_full(int fd, void *buf, size_t len, uint64_t deadline_ms);
int mc_net_write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms);

#endif
