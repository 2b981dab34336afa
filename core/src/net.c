#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mooncake/errors.h"

uint64_t mc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mc_deadline_ts(struct timespec *ts, uint64_t timeout_ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(timeout_ms / 1000);
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

int mc_net_split_hostport(const char *hp, char *host, size_t hostlen,
                          uint16_t *port) {
  if (!hp || !*hp)
    return MC_EINVAL;
  const char *colon;
  const char *hs = hp;
  size_t hl;
  if (hp[0] == '[') {
    const char *end = strchr(hp, ']');
    if (!end || end[1] != ':')
      return MC_EINVAL;
    hs = hp + 1;
    hl = (size_t)(end - hs);
    colon = end + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon)
      return MC_EINVAL;
    hl = (size_t)(colon - hp);
  }
  if (hl == 0 || hl >= hostlen)
    return MC_EINVAL;
  char *endp;
  errno = 0;
  unsigned long p = strtoul(colon + 1, &endp, 10);
  if (errno || endp == colon + 1 || *endp || p > 65535)
    return MC_EINVAL;
  memcpy(host, hs, hl);
  host[hl] = '\0';
  *port = (uint16_t)p;
  return 0;
}

static int resolve(const char *host, uint16_t port, int passive,
                   struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  char ps[8];
  snprintf(ps, sizeof ps, "%u", port);
  return getaddrinfo(host, ps, &hints, res) == 0 ? 0 : MC_ENOENT;
}

int mc_net_listen(const char *host, uint16_t port, int backlog, int *fd,
                  uint16_t *bound_port) {
  struct addrinfo *res;
  int rc = resolve(host, port, 1, &res);
  if (rc)
    return rc;
  rc = MC_EIO;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (s < 0)
      continue;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, ai->ai_addr, ai->ai_addrlen) == 0 && listen(s, backlog) == 0) {
      struct sockaddr_storage ss;
      socklen_t sl = sizeof ss;
      getsockname(s, (struct sockaddr *)&ss, &sl);
      *bound_port = ntohs(ss.ss_family == AF_INET6
                              ? ((struct sockaddr_in6 *)&ss)->sin6_port
                              : ((struct sockaddr_in *)&ss)->sin_port);
      *fd = s;
      rc = 0;
      break;
    }
    rc = errno == EADDRINUSE ? MC_EEXIST : (errno == EACCES ? MC_EACCES : MC_EIO);
    close(s);
  }
  freeaddrinfo(res);
  return rc;
}

static int wait_fd(int fd, short ev, uint64_t deadline_ms) {
  for (;;) {
    uint64_t now = mc_now_ms();
    if (now >= deadline_ms)
      return MC_ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = ev};
    int n = poll(&p, 1, (int)(deadline_ms - now));
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return MC_EIO;
  }
}

int mc_net_connect(const char *host, uint16_t port, int timeout_ms, int *fd) {
  struct addrinfo *res;
  if (resolve(host, port, 0, &res))
    return MC_EPEER;
  uint64_t deadline = mc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
  int rc = MC_EPEER;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
      continue;
    int r = connect(s, ai->ai_addr, ai->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      r = wait_fd(s, POLLOUT, deadline);
      if (r == 0) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
        r = err ? -1 : 0;
      } else {
        rc = r;
        close(s);
        continue;
      }
    }
    if (r == 0) {
      int fl = fcntl(s, F_GETFL);
      fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
      int one = 1;
      setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      *fd = s;
      rc = 0;
      break;
    }
    close(s);
  }
  freeaddrinfo(res);
  return rc;
}

int mc_net_read_full(int fd, void *buf, size_t len, uint64_t deadline_ms) {
  char *p = buf;
  while (len) {
    int rc = wait_fd(fd, POLLIN, deadline_ms);
    if (rc)
      return rc;
    ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
    if (n == 0)
      return MC_EPEER;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return MC_EPEER;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mc_net_write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms) {
  const char *p = buf;
  while (len) {
    int rc = wait_fd(fd, POLLOUT, deadline_ms);
    if (rc)
      return rc;
    ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return MC_EPEER;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}
