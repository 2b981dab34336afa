/* bench_ctl.c - the bench control channel (see bench_ctl.h). */
#include "bench_ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_net.h"
#include "bench_stats.h"
#include "mooncake/transport.h"

#define CTL_TIMEOUT_MS 30000

typedef struct ctl_conn {
  int fd;
  pthread_t th;
  struct bench_ctl *ctl;
  int done; /* conn_main returned; guarded by ctl->mu */
  struct ctl_conn *next;
} ctl_conn;

struct bench_ctl {
  int lfd;
  pthread_t accept_th;
  char addr[128];
  uint8_t *buf;
  uint64_t len;
  pthread_mutex_t mu; /* guards conns and stopping */
  ctl_conn *conns;
  int stopping;
};

static void stream_loop(ctl_conn *c, int write, uint64_t block, uint32_t batch,
                        uint64_t off) {
  uint8_t *base = c->ctl->buf + off;
  char ack = 'A';
  for (;;) {
    if (write) {
      for (uint32_t j = 0; j < batch; j++)
        if (bench_recv_all(c->fd, base + j * block, block))
          return;
      if (bench_send_all(c->fd, &ack, 1))
        return;
    } else {
      if (bench_recv_all(c->fd, &ack, 1))
        return;
      for (uint32_t j = 0; j < batch; j++)
        if (bench_send_all(c->fd, base + j * block, block))
          return;
    }
  }
}

static int reply(int fd, const char *line) {
  return bench_send_all(fd, line, strlen(line));
}

static void *conn_main(void *arg) {
  ctl_conn *c = arg;
  bench_ctl *ctl = c->ctl;
  char line[256], out[256];
  while (bench_recv_line(c->fd, line, sizeof line) == 0) {
    char dir = 0;
    uint64_t block = 0, off = 0;
    uint32_t batch = 0;
    if (strcmp(line, "INFO") == 0) {
      snprintf(out, sizeof out, "INFO %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
               (uint64_t)(uintptr_t)ctl->buf, ctl->len, bench_self_cpu_ns());
      if (reply(c->fd, out))
        break;
    } else if (sscanf(line, "STREAM %c %" SCNu64 " %" SCNu32 " %" SCNu64, &dir,
                      &block, &batch, &off) == 4) {
      /* Check the range against the buffer before touching it. */
      if ((dir != 'r' && dir != 'w') || block == 0 || batch == 0 ||
          block > ctl->len || batch > ctl->len / block ||
          off > ctl->len - block * batch) {
        snprintf(out, sizeof out,
                 "ERR range %" PRIu64 "+%" PRIu32 "x%" PRIu64
                 " outside the %" PRIu64 "-byte buffer\n",
                 off, batch, block, ctl->len);
        reply(c->fd, out);
        break;
      }
      if (reply(c->fd, "OK\n") == 0)
        stream_loop(c, dir == 'w', block, batch, off);
      break;
    } else {
      reply(c->fd, "ERR unknown command\n");
      break;
    }
  }
  shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_lock(&ctl->mu);
  c->done = 1;
  pthread_mutex_unlock(&ctl->mu);
  return NULL;
}

/* Joins and frees finished connections (so INFO polls do not pile up). */
static void reap_done(bench_ctl *ctl) {
  pthread_mutex_lock(&ctl->mu);
  ctl_conn **pp = &ctl->conns;
  while (*pp) {
    ctl_conn *c = *pp;
    if (c->done) {
      *pp = c->next;
      pthread_join(c->th, NULL);
      close(c->fd);
      free(c);
    } else {
      pp = &c->next;
    }
  }
  pthread_mutex_unlock(&ctl->mu);
}

static void *accept_main(void *arg) {
  bench_ctl *ctl = arg;
  for (;;) {
    int fd = accept4(ctl->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      pthread_mutex_lock(&ctl->mu);
      int stop = ctl->stopping;
      pthread_mutex_unlock(&ctl->mu);
      if (stop)
        return NULL;
      perror("mc-transfer-bench: control accept");
      return NULL;
    }
    reap_done(ctl);
    bench_sock_tune(fd, 0); /* no timeout: stop() shuts connections down */
    ctl_conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->ctl = ctl;
    pthread_mutex_lock(&ctl->mu);
    if (ctl->stopping || pthread_create(&c->th, NULL, conn_main, c) != 0) {
      pthread_mutex_unlock(&ctl->mu);
      close(fd);
      free(c);
      continue;
    }
    c->next = ctl->conns;
    ctl->conns = c;
    pthread_mutex_unlock(&ctl->mu);
  }
}

int bench_ctl_start(const char *hostport, uint8_t *buf, uint64_t len,
                    bench_ctl **out, char *err, size_t errlen) {
  bench_ctl *ctl = calloc(1, sizeof *ctl);
  if (!ctl) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  ctl->buf = buf;
  ctl->len = len;
  ctl->lfd = bench_listen(hostport, ctl->addr, sizeof ctl->addr, err, errlen);
  if (ctl->lfd < 0) {
    free(ctl);
    return -1;
  }
  pthread_mutex_init(&ctl->mu, NULL);
  if (pthread_create(&ctl->accept_th, NULL, accept_main, ctl) != 0) {
    snprintf(err, errlen, "cannot start the control thread");
    close(ctl->lfd);
    pthread_mutex_destroy(&ctl->mu);
    free(ctl);
    return -1;
  }
  *out = ctl;
  return 0;
}

const char *bench_ctl_addr(const bench_ctl *ctl) { return ctl->addr; }

void bench_ctl_stop(bench_ctl *ctl) {
  if (!ctl)
    return;
  pthread_mutex_lock(&ctl->mu);
  ctl->stopping = 1;
  pthread_mutex_unlock(&ctl->mu);
  shutdown(ctl->lfd, SHUT_RDWR); /* wakes accept() */
  pthread_join(ctl->accept_th, NULL);
  close(ctl->lfd);
  /* No new connection can appear now: the accept thread is gone. */
  for (ctl_conn *c = ctl->conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  while (ctl->conns) {
    ctl_conn *c = ctl->conns;
    ctl->conns = c->next;
    pthread_join(c->th, NULL);
    close(c->fd);
    free(c);
  }
  pthread_mutex_destroy(&ctl->mu);
  free(ctl);
}

int bench_ctl_info(const char *ctl_addr, bench_target_info *info, char *err,
                   size_t errlen) {
  int fd = bench_connect(ctl_addr, CTL_TIMEOUT_MS, err, errlen);
  if (fd < 0)
    return -1;
  char line[256];
  int rc = -1;
  if (bench_send_all(fd, "INFO\n", 5) || bench_recv_line(fd, line, sizeof line))
    snprintf(err, errlen, "control %s: no INFO reply: %s", ctl_addr,
             errno ? strerror(errno) : "connection closed");
  else if (sscanf(line, "INFO %" SCNu64 " %" SCNu64 " %" SCNu64, &info->addr,
                  &info->len, &info->cpu_ns) != 3)
    snprintf(err, errlen, "control %s: bad INFO reply '%s'", ctl_addr, line);
  else
    rc = 0;
  close(fd);
  return rc;
}

int bench_ctl_stream(const char *ctl_addr, uint32_t op, uint64_t block,
                     uint32_t batch, uint64_t offset, char *err, size_t errlen) {
  int fd = bench_connect(ctl_addr, CTL_TIMEOUT_MS, err, errlen);
  if (fd < 0)
    return -1;
  char line[256];
  snprintf(line, sizeof line, "STREAM %c %" PRIu64 " %" PRIu32 " %" PRIu64 "\n",
           op == MC_OP_WRITE ? 'w' : 'r', block, batch, offset);
  if (bench_send_all(fd, line, strlen(line)) ||
      bench_recv_line(fd, line, sizeof line)) {
    snprintf(err, errlen, "control %s: no STREAM reply: %s", ctl_addr,
             errno ? strerror(errno) : "connection closed");
    close(fd);
    return -1;
  }
  if (strcmp(line, "OK") != 0) {
    snprintf(err, errlen, "control %s refused the stream: %s", ctl_addr, line);
    close(fd);
    return -1;
  }
  return fd;
}
