/* tcp_server.c - the target side of the TCP transport.
 *
 * One accept thread and one thread per accepted connection.  A connection
 * must open with a valid HELLO within hello_timeout_ms (naming the peer
 * segment for attribution) or it is closed.  Then frames are served in
 * order: payloads move directly between the socket and registered memory,
 * after the buffer id, secret and range were checked and the buffer pinned
 * (tcp_reg_acquire), so a concurrent deregister_mem waits for the access. */
#include "tcp_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tcp_io.h"
#include "tcp_wire.h"

#define SRV_MAX_CONNS 1024
#define SRV_SCRATCH (64u * 1024u)

typedef struct srv_conn {
  tcp_server *srv;
  pthread_t th;
  int fd;
  atomic_int done;
  char peer[TCPW_MAX_NAME + 1]; /* segment name from HELLO */
  char addr[64];                /* remote ip:port, for logs before HELLO */
  struct srv_conn *next;
} srv_conn;

struct tcp_server {
  tcp_ctx *ctx;
  int lfd;
  pthread_t th;
  atomic_int stop;
  pthread_mutex_t lock; /* conns */
  srv_conn *conns;
  int nconns;
};

int tcp_warn_allowed(tcp_ctx *ctx, unsigned long *suppressed) {
  int64_t now = tcp_now_ms();
  long long last = atomic_load(&ctx->warn_ms);
  if (now - last >= 1000 && atomic_compare_exchange_strong(&ctx->warn_ms, &last, now)) {
    *suppressed = atomic_exchange(&ctx->warn_suppressed, 0);
    return 1;
  }
  atomic_fetch_add(&ctx->warn_suppressed, 1);
  return 0;
}

static int send_hdr(srv_conn *c, const tcpw_hdr *h, void *payload, size_t plen) {
  tcp_ctx *ctx = c->srv->ctx;
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr_encode(h, raw);
  struct iovec iov[2] = {{raw, sizeof raw}, {payload, plen}};
  return tcp_send_iov(c->fd, iov, plen ? 2 : 1, tcp_now_ms() + ctx->cfg.timeout_ms,
                      &c->srv->stop);
}

/* Reads and discards n payload bytes of a refused WRITE. */
static int drain(srv_conn *c, uint64_t n) {
  tcp_ctx *ctx = c->srv->ctx;
  char *scratch = malloc(SRV_SCRATCH);
  if (!scratch)
    return MC_ENOMEM;
  int rc = 0;
  while (n && !rc) {
    size_t k = n > SRV_SCRATCH ? SRV_SCRATCH : (size_t)n;
    rc = tcp_recv_all(c->fd, scratch, k, tcp_now_ms() + ctx->cfg.timeout_ms,
                      &c->srv->stop);
    n -= k;
  }
  free(scratch);
  return rc;
}

static void log_refusal(srv_conn *c, const tcpw_hdr *h, int rc) {
  tcp_ctx *ctx = c->srv->ctx;
  const char *op = h->type == TCPW_READ ? "read" : "write";
  if (rc == MC_EACCES) {
    unsigned long supp = 0;
    if (tcp_warn_allowed(ctx, &supp))
      ctx->host->log(ctx->host->host, MC_LOG_WARN,
                     "refused %s of [0x%" PRIx64 ", +%" PRIu64 ") in buffer %" PRIu64
                     " from peer '%s' (%s): wrong remote key (%lu more refusals suppressed)",
                     op, h->addr, h->len, h->buf_id, c->peer, c->addr, supp);
  } else {
    TCP_LOG(ctx, MC_LOG_DEBUG,
            "refused %s of [0x%" PRIx64 ", +%" PRIu64 ") in buffer %" PRIu64
            " from peer '%s': outside registered memory",
            op, h->addr, h->len, h->buf_id, c->peer);
  }
}

static int serve_read(srv_conn *c, const tcpw_hdr *req) {
  tcp_server *s = c->srv;
  tcp_buf *b = NULL;
  tcpw_hdr resp = {.type = TCPW_READ_RESP, .seq = req->seq, .len = req->len};
  int rc = tcp_reg_acquire(&s->ctx->reg, req->buf_id, req->secret, req->addr,
                           req->len, &b);
  if (rc) {
    log_refusal(c, req, rc);
    resp.status = rc;
    return send_hdr(c, &resp, NULL, 0);
  }
  rc = send_hdr(c, &resp, (void *)(uintptr_t)req->addr, (size_t)req->len);
  tcp_reg_release(&s->ctx->reg, b);
  return rc;
}

static int serve_write(srv_conn *c, const tcpw_hdr *req) {
  tcp_server *s = c->srv;
  tcp_buf *b = NULL;
  tcpw_hdr resp = {.type = TCPW_WRITE_RESP, .seq = req->seq, .len = req->len};
  int rc = tcp_reg_acquire(&s->ctx->reg, req->buf_id, req->secret, req->addr,
                           req->len, &b);
  if (rc) {
    log_refusal(c, req, rc);
    int d = drain(c, req->len); /* never into the target's memory */
    if (d)
      return d;
    resp.status = rc;
    return send_hdr(c, &resp, NULL, 0);
  }
  rc = tcp_recv_all(c->fd, (void *)(uintptr_t)req->addr, (size_t)req->len,
                    tcp_now_ms() + s->ctx->cfg.timeout_ms, &s->stop);
  tcp_reg_release(&s->ctx->reg, b);
  if (rc)
    return rc;
  return send_hdr(c, &resp, NULL, 0);
}

static int serve_notify(srv_conn *c, const tcpw_hdr *h) {
  tcp_ctx *ctx = c->srv->ctx;
  char msg[TCPW_MAX_NOTIFY];
  int rc = tcp_recv_all(c->fd, msg, (size_t)h->len, tcp_now_ms() + ctx->cfg.timeout_ms,
                        &c->srv->stop);
  if (rc)
    return rc;
  ctx->host->notify_recv(ctx->host->host, c->peer, msg, (size_t)h->len);
  return 0;
}

/* Reads a HELLO within hello_timeout_ms and answers with HELLO_ACK. */
static int handshake(srv_conn *c) {
  tcp_ctx *ctx = c->srv->ctx;
  int64_t deadline = tcp_now_ms() + ctx->cfg.hello_timeout_ms;
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr h;
  int rc = tcp_recv_all(c->fd, raw, sizeof raw, deadline, &c->srv->stop);
  if (!rc && (tcpw_hdr_decode(raw, sizeof raw, &h) || h.type != TCPW_HELLO))
    rc = MC_EPROTO;
  if (!rc)
    rc = tcp_recv_all(c->fd, c->peer, (size_t)h.len, deadline, &c->srv->stop);
  if (!rc && tcpw_name_check(c->peer, (size_t)h.len))
    rc = MC_EPROTO;
  /* Only a peer that read our descriptor knows this: the connection, and
   * every NOTIFY on it, is attributable to a holder of the metadata. */
  if (!rc && !tcp_secret_equal(h.secret, ctx->ep_secret))
    rc = MC_EACCES;
  if (rc) {
    unsigned long supp = 0;
    if (rc != MC_ECANCELED && tcp_warn_allowed(ctx, &supp))
      ctx->host->log(ctx->host->host, MC_LOG_WARN,
                     "closing connection from %s without a valid HELLO: %s (%lu similar "
                     "warnings suppressed)", c->addr,
                     rc == MC_EPROTO      ? "malformed"
                     : rc == MC_EACCES    ? "not this endpoint's secret (the peer has not "
                                            "read our descriptor)"
                     : rc == MC_ETIMEDOUT ? "timed out"
                                          : "dropped",
                     supp);
    c->peer[0] = '\0';
    return rc;
  }
  c->peer[h.len] = '\0';
  tcpw_hdr ack = {.type = TCPW_HELLO_ACK, .len = strlen(ctx->segment)};
  return send_hdr(c, &ack, ctx->segment, (size_t)ack.len);
}

static void *conn_main(void *arg) {
  srv_conn *c = arg;
  tcp_server *s = c->srv;
  int rc = handshake(c);
  if (!rc)
    TCP_LOG(s->ctx, MC_LOG_DEBUG, "peer '%s' connected", c->peer);
  while (!rc) {
    uint8_t raw[TCPW_HDR_SIZE];
    /* Idle between frames is fine: keepalive/user timeout detect death. */
    rc = tcp_recv_all(c->fd, raw, sizeof raw, -1, &s->stop);
    if (rc)
      break;
    tcpw_hdr h;
    if (tcpw_hdr_decode(raw, sizeof raw, &h)) {
      rc = MC_EPROTO;
    } else {
      switch (h.type) {
      case TCPW_READ:
        rc = serve_read(c, &h);
        break;
      case TCPW_WRITE:
        rc = serve_write(c, &h);
        break;
      case TCPW_NOTIFY:
        rc = serve_notify(c, &h);
        break;
      default:
        rc = MC_EPROTO;
      }
    }
    if (rc == MC_EPROTO)
      TCP_LOG(s->ctx, MC_LOG_WARN, "protocol error from peer '%s' (%s), closing", c->peer, c->addr);
  }
  if (rc != MC_EPEER && rc != MC_ECANCELED && rc != MC_EPROTO && c->peer[0])
    TCP_LOG(s->ctx, MC_LOG_INFO, "connection from peer '%s' closed: error %d",
            c->peer, rc);
  shutdown(c->fd, SHUT_RDWR);
  atomic_store(&c->done, 1);
  return NULL;
}

static void format_addr(int fd, char *out, size_t n) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
      port = ntohs(a->sin6_port);
    } else if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
      port = ntohs(a->sin_port);
    }
  }
  snprintf(out, n, "%s:%u", ip, port);
}

/* Joins and frees finished connections (all of them when `all`). */
static void reap(tcp_server *s, int all) {
  pthread_mutex_lock(&s->lock);
  srv_conn **p = &s->conns;
  while (*p) {
    srv_conn *c = *p;
    if (all || atomic_load(&c->done)) {
      *p = c->next;
      s->nconns--;
      if (all)
        shutdown(c->fd, SHUT_RDWR);
      pthread_join(c->th, NULL);
      close(c->fd);
      free(c);
    } else {
      p = &c->next;
    }
  }
  pthread_mutex_unlock(&s->lock);
}

static void *accept_main(void *arg) {
  tcp_server *s = arg;
  while (!atomic_load(&s->stop)) {
    reap(s, 0);
    int w = tcp_wait_readable(s->lfd, tcp_now_ms() + TCP_IO_TICK_MS, &s->stop);
    if (w <= 0)
      continue;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* The pending connection stays readable: back off instead of spinning. */
        unsigned long supp = 0;
        if (tcp_warn_allowed(s->ctx, &supp))
          s->ctx->host->log(s->ctx->host->host, MC_LOG_WARN,
                            "accept failed: %s", strerror(errno));
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
      }
      continue;
    }
    srv_conn *c = s->nconns < SRV_MAX_CONNS ? calloc(1, sizeof *c) : NULL;
    if (!c) {
      TCP_LOG(s->ctx, MC_LOG_WARN, "refusing connection: too many (%d)", s->nconns);
      close(fd);
      continue;
    }
    tcp_sock_setup(fd, &s->ctx->cfg);
    c->srv = s;
    c->fd = fd;
    format_addr(fd, c->addr, sizeof c->addr);
    pthread_mutex_lock(&s->lock);
    if (pthread_create(&c->th, NULL, conn_main, c)) {
      pthread_mutex_unlock(&s->lock);
      close(fd);
      free(c);
      continue;
    }
    c->next = s->conns;
    s->conns = c;
    s->nconns++;
    pthread_mutex_unlock(&s->lock);
  }
  return NULL;
}

int tcp_server_start(tcp_ctx *ctx, const char *host, tcp_server **out) {
  tcp_server *s = calloc(1, sizeof *s);
  if (!s)
    return MC_ENOMEM;
  s->ctx = ctx;
  s->lfd = tcp_listen(host, ctx->cfg.port, &ctx->port);
  if (s->lfd < 0) {
    int rc = s->lfd;
    TCP_LOG(ctx, MC_LOG_ERROR, "cannot listen on %s port %u: %s", host,
            (unsigned)ctx->cfg.port, rc == MC_EINVAL ? "bad address" : "bind failed");
    free(s);
    return rc;
  }
  pthread_mutex_init(&s->lock, NULL);
  if (pthread_create(&s->th, NULL, accept_main, s)) {
    pthread_mutex_destroy(&s->lock);
    close(s->lfd);
    free(s);
    return MC_ENOMEM;
  }
  *out = s;
  return 0;
}

void tcp_server_stop(tcp_server *s) {
  atomic_store(&s->stop, 1);
  shutdown(s->lfd, SHUT_RDWR); /* wakes the accept thread's poll on Linux */
  pthread_join(s->th, NULL);
  close(s->lfd);
  reap(s, 1);
  pthread_mutex_destroy(&s->lock);
  free(s);
}
