/* tcp_io.c - socket set-up, listening, addresses and the clock. */
#include "tcp_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
    if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 1024) ||
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
