/* tcp_io.c - non-blocking socket I/O bounded by deadlines and stop flags. */
#include "tcp_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mooncake/errors.h"

int64_t tcp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls fd for `events` for at most one tick, honouring deadline and stop.
 * 1 ready, 0 tick passed, MC_ETIMEDOUT, MC_ECANCELED. */
static int wait_fd(int fd, short events, int64_t deadline, const atomic_int *stop) {
  if (stop && atomic_load_explicit(stop, memory_order_relaxed))
    return MC_ECANCELED;
  int tmo = TCP_IO_TICK_MS;
  if (deadline >= 0) {
    int64_t left = deadline - tcp_now_ms();
    if (left <= 0)
      return MC_ETIMEDOUT;
    if (left < tmo)
      tmo = (int)left;
  }
  struct pollfd p = {.fd = fd, .events = events};
  int n = poll(&p, 1, tmo);
  if (n < 0)
    return errno == EINTR ? 0 : MC_EPEER;
  return n > 0;
}

int tcp_send_iov(int fd, struct iovec *iov, int iovcnt, int64_t deadline,
                 const atomic_int *stop) {
  while (iovcnt > 0) {
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t k = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return MC_EPEER;
      int w = wait_fd(fd, POLLOUT, deadline, stop);
      if (w < 0)
        return w;
      continue;
    }
    size_t done = (size_t)k;
    while (iovcnt > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (char *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

int tcp_recv_all(int fd, void *buf, size_t len, int64_t deadline,
                 const atomic_int *stop) {
  char *p = buf;
  while (len > 0) {
    ssize_t k = recv(fd, p, len, MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      len -= (size_t)k;
      continue;
    }
    if (k == 0)
      return MC_EPEER;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return MC_EPEER;
    int w = wait_fd(fd, POLLIN, deadline, stop);
    if (w < 0)
      return w;
  }
  return 0;
}

void tcp_sock_setup(int fd, const tcp_cfg *cfg) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  int idle = 10, intvl = 5, cnt = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  /* Unacknowledged data older than the slice deadline kills the socket. */
  unsigned int uto = (unsigned int)cfg->timeout_ms;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof uto);
  if (cfg->socket_buffer) {
    int sz = cfg->socket_buffer > (1u << 30) ? (1 << 30) : (int)cfg->socket_buffer;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
}

int tcp_listen(const char *host, uint16_t port, uint16_t *bound) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char pstr[8];
  snprintf(pstr, sizeof pstr, "%u", (unsigned)port);
  if (getaddrinfo(host, pstr, &hints, &res) || !res)
    return MC_EINVAL;
  int rc = MC_EIO;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 128) ||
        getsockname(fd, (struct sockaddr *)&ss, &sl)) {
      close(fd);
      continue;
    }
    *bound = ntohs(ss.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    rc = fd;
    break;
  }
  freeaddrinfo(res);
  return rc;
}

void tcp_format_peer(int fd, char *ip, size_t iplen, char *addr, size_t addrlen) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char buf[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      port = ntohs(a->sin6_port);
    } else if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      port = ntohs(a->sin_port);
    }
  }
  snprintf(ip, iplen, "%s", buf);
  snprintf(addr, addrlen, "%s:%u", buf, port);
}
