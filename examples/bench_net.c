/* bench_net.c - small blocking TCP helpers. */
#include "bench_net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Splits "host:port" or "[v6]:port". */
static int split_hostport(const char *hp, char *host, size_t hostlen, char *port,
                          size_t portlen) {
  const char *colon;
  if (hp[0] == '[') {
    const char *close = strchr(hp, ']');
    if (!close || close[1] != ':')
      return -1;
    if ((size_t)(close - hp - 1) >= hostlen)
      return -1;
    memcpy(host, hp + 1, (size_t)(close - hp - 1));
    host[close - hp - 1] = '\0';
    colon = close + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= hostlen)
      return -1;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
  }
  if (!colon[1] || strlen(colon + 1) >= portlen)
    return -1;
  strcpy(port, colon + 1);
  return 0;
}

static struct addrinfo *resolve(const char *hostport, int passive, char *err,
                                size_t errlen) {
  char host[256], port[16];
  if (split_hostport(hostport, host, sizeof host, port, sizeof port)) {
    snprintf(err, errlen, "bad address '%s' (want host:port)", hostport);
    return NULL;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve '%s': %s", hostport, gai_strerror(rc));
    return NULL;
  }
  return res;
}

int bench_listen(const char *hostport, char *addr, size_t addrlen, char *err,
                 size_t errlen) {
  struct addrinfo *res = resolve(hostport, 1, err, errlen);
  if (!res)
    return -1;
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
                  res->ai_protocol);
  if (fd < 0) {
    snprintf(err, errlen, "socket for '%s': %s", hostport, strerror(errno));
    freeaddrinfo(res);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    snprintf(err, errlen, "cannot listen on '%s': %s", hostport, strerror(errno));
    freeaddrinfo(res);
    close(fd);
    return -1;
  }
  freeaddrinfo(res);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
      getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port,
                  sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    snprintf(err, errlen, "getsockname for '%s': %s", hostport, strerror(errno));
    close(fd);
    return -1;
  }
  snprintf(addr, addrlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
           host, port);
  return fd;
}

void bench_sock_tune(int fd, int timeout_ms) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int bench_connect(const char *hostport, int timeout_ms, char *err,
                  size_t errlen) {
  struct addrinfo *res = resolve(hostport, 0, err, errlen);
  if (!res)
    return -1;
  int fd = -1, saved = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    bench_sock_tune(fd, timeout_ms); /* SO_SNDTIMEO also bounds connect() */
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    snprintf(err, errlen, "cannot connect to '%s': %s", hostport, strerror(saved));
  return fd;
}

int bench_send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int bench_recv_all(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len) {
    ssize_t n = recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = 0;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int bench_recv_line(int fd, char *line, size_t len) {
  size_t k = 0;
  for (;;) {
    char c;
    if (bench_recv_all(fd, &c, 1))
      return -1;
    if (c == '\n')
      break;
    if (k + 1 >= len)
      return -1;
    line[k++] = c;
  }
  line[k] = '\0';
  return 0;
}
