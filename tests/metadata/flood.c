/* See flood.h. */
#include "flood.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct fconn {
  int fd;
  int src;
  int up;   /* connected */
  int sent; /* bytes of the slow text sent */
} fconn;

struct tu_flood {
  tu_flood_args a;
  char *slow;
  fconn *c;
  pthread_t th;
  atomic_int stop;
  atomic_int open_now;
  atomic_long connects, closed, refused;
};

static uint64_t ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void open_one(tu_flood *f, fconn *k) {
  k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  k->up = 0;
  k->sent = 0;
  if (k->fd < 0) {
    atomic_fetch_add(&f->refused, 1);
    return;
  }
  struct sockaddr_in src = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)k->src)};
  int one = 1;
  setsockopt(k->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(f->a.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(k->fd, (struct sockaddr *)&src, sizeof src) != 0 ||
      (connect(k->fd, (struct sockaddr *)&dst, sizeof dst) != 0 &&
       errno != EINPROGRESS)) {
    close(k->fd);
    k->fd = -1;
    atomic_fetch_add(&f->refused, 1);
  }
}

static void drop(tu_flood *f, fconn *k, int by_server) {
  if (k->up)
    atomic_fetch_sub(&f->open_now, 1);
  if (by_server)
    atomic_fetch_add(&f->closed, 1);
  close(k->fd);
  k->fd = -1;
  k->up = 0;
}

static void *flood_main(void *arg) {
  tu_flood *f = arg;
  int n = f->a.n;
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  uint64_t next_slow = ms_now() + (uint64_t)f->a.slow_ms;
  uint64_t next_reopen = 0;
  while (p && !atomic_load(&f->stop)) {
    uint64_t now = ms_now();
    if (f->a.reconnect && now >= next_reopen) {
      for (int i = 0; i < n; i++)
        if (f->c[i].fd < 0)
          open_one(f, &f->c[i]);
      next_reopen = now + 5; /* a busy attacker, not a spinning one */
    }
    for (int i = 0; i < n; i++) {
      fconn *k = &f->c[i];
      p[i].fd = k->fd;
      p[i].events = k->up ? POLLIN : POLLOUT;
      p[i].revents = 0;
    }
    int r = poll(p, (nfds_t)n, 20);
    now = ms_now();
    for (int i = 0; r > 0 && i < n; i++) {
      fconn *k = &f->c[i];
      if (k->fd < 0 || !p[i].revents)
        continue;
      if (!k->up) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          atomic_fetch_add(&f->refused, 1);
          close(k->fd);
          k->fd = -1;
          continue;
        }
        k->up = 1;
        atomic_fetch_add(&f->open_now, 1);
        atomic_fetch_add(&f->connects, 1);
        continue;
      }
      char buf[4096];
      ssize_t got = recv(k->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
        drop(f, k, 1);
    }
    if (f->slow && now >= next_slow) {
      for (int i = 0; i < n; i++) {
        fconn *k = &f->c[i];
        if (k->fd < 0 || !k->up)
          continue;
        int at = k->sent < f->a.slow_len
                     ? k->sent
                     : f->a.slow_loop +
                           (k->sent - f->a.slow_loop) % (f->a.slow_len - f->a.slow_loop);
        if (send(k->fd, f->slow + at, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
          k->sent++;
      }
      next_slow = now + (uint64_t)f->a.slow_ms;
    }
  }
  free(p);
  return NULL;
}

tu_flood *tu_flood_start(const tu_flood_args *a) {
  tu_flood *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->a = *a;
  f->c = calloc((size_t)a->n, sizeof *f->c);
  if (a->slow) {
    f->slow = malloc((size_t)a->slow_len);
    if (f->slow)
      memcpy(f->slow, a->slow, (size_t)a->slow_len);
  }
  if (!f->c || (a->slow && !f->slow) || (a->slow && a->slow_loop >= a->slow_len)) {
    free(f->c);
    free(f->slow);
    free(f);
    return NULL;
  }
  for (int i = 0; i < a->n; i++) {
    f->c[i].src = a->first_src + i % (a->nsrc > 0 ? a->nsrc : 1);
    open_one(f, &f->c[i]);
  }
  if (pthread_create(&f->th, NULL, flood_main, f) != 0) {
    for (int i = 0; i < a->n; i++)
      if (f->c[i].fd >= 0)
        close(f->c[i].fd);
    free(f->c);
    free(f->slow);
    free(f);
    return NULL;
  }
  return f;
}

void tu_flood_get(tu_flood *f, tu_flood_stats *s) {
  s->open_now = atomic_load(&f->open_now);
  s->connects = atomic_load(&f->connects);
  s->closed = atomic_load(&f->closed);
  s->refused = atomic_load(&f->refused);
}

void tu_flood_stop(tu_flood *f) {
  if (!f)
    return;
  atomic_store(&f->stop, 1);
  pthread_join(f->th, NULL);
  for (int i = 0; i < f->a.n; i++)
    if (f->c[i].fd >= 0)
      close(f->c[i].fd);
  free(f->c);
  free(f->slow);
  free(f);
}

long tu_raise_nofile(long want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= want
                      ? (rlim_t)want
                      : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? want : (long)rl.rlim_cur;
}
