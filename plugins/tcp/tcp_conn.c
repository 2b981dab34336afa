/* tcp_conn.c - initiator side of the TCP transport (see tcp_conn.h).
 *
 * Locking: each connection has one mutex and one condition variable
 * (broadcast on every state change).  complete() may be called with the
 * mutex held; the host never re-enters the plugin from it.
 *
 * Socket ownership: the sender creates the socket (dial) when there is none;
 * only the receiver closes it, after a failure marked it broken and the
 * sender is no longer writing to it, so an fd number is never reused under
 * a thread still using it. */
#include "tcp_conn.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcp_io.h"
#include "tcp_mem.h"
#include "tcp_wire.h"

#define OP_NOTIFY 2u
#define NOTIFY_SLOTS 16u

typedef struct notify_wait {
  const void *msg;
  size_t len;
  int done, rc;
} notify_wait;

typedef struct tcp_item {
  uint64_t token, seq, buf_id, raddr, laddr, len;
  int64_t deadline;
  uint32_t op;
  int canceled; /* cancel() reached it while queued */
  uint8_t secret[TCPW_SECRET_SIZE];
  notify_wait *nw;
} tcp_item;

typedef struct ring {
  tcp_item *v;
  uint32_t cap, head, count;
} ring;

typedef struct tcp_conn {
  tcp_ep *ep;
  uint32_t idx;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  ring q;               /* accepted, not yet written */
  ring inf;             /* written (or being written), awaiting response */
  uint32_t nslices;     /* slices in q and inf: admission control */
  int fd;               /* -1 when not connected */
  int broken;           /* fd failed; the receiver will close it */
  int sending;          /* the sender is writing to fd */
  uint64_t sending_seq; /* seq of the slice being written */
  int send_aborted, abort_status; /* it was failed while being written */
  uint64_t next_seq;
  int has_tx, has_rx, dead;
  pthread_t tx, rx;
  atomic_int stop;
} tcp_conn;

struct tcp_ep {
  tcp_ctx *ctx;
  char peer[MC_NAME_MAX];
  struct sockaddr_storage sa;
  socklen_t salen;
  uint8_t secret[16]; /* the peer endpoint's, sent in HELLO */
  uint32_t nconn;
  tcp_conn *conns;
  tcp_ep *next;
};

tcp_ep **tcp_ep_next(tcp_ep *ep) { return &ep->next; }

static tcp_item *ring_at(ring *r, uint32_t i) { return &r->v[(r->head + i) % r->cap]; }
static void ring_push(ring *r, const tcp_item *it) {
  r->v[(r->head + r->count) % r->cap] = *it;
  r->count++;
}
static tcp_item ring_pop(ring *r) {
  tcp_item it = r->v[r->head];
  r->head = (r->head + 1) % r->cap;
  r->count--;
  return it;
}

static void finish(tcp_conn *c, const tcp_item *it, int st) {
  const mc_host_api *h = c->ep->ctx->host;
  h->complete(h->host, it->token, st, st == 0 ? it->len : 0, 0);
}

/* Fails every queued item (lock held). */
static void fail_queued(tcp_conn *c, int st) {
  while (c->q.count) {
    tcp_item it = ring_pop(&c->q);
    if (it.op == OP_NOTIFY) {
      it.nw->rc = st;
      it.nw->done = 1;
    } else {
      c->nslices--;
      finish(c, &it, st);
    }
  }
  pthread_cond_broadcast(&c->cond);
}

/* Marks the socket failed and fails every in-flight slice (lock held):
 * MC_ETIMEDOUT for those past their deadline, `st` for the others,
 * MC_ECANCELED for all when stopping.  The slice the sender is writing is
 * left to the sender, which still reads its memory. */
static void break_locked(tcp_conn *c, int st) {
  int stopping = atomic_load(&c->stop);
  c->broken = 1;
  if (c->fd >= 0)
    shutdown(c->fd, SHUT_RDWR);
  int64_t now = tcp_now_ms();
  while (c->inf.count) {
    tcp_item it = ring_pop(&c->inf);
    c->nslices--;
    int s = stopping ? MC_ECANCELED : now >= it.deadline ? MC_ETIMEDOUT : st;
    if (c->sending && it.seq == c->sending_seq) {
      c->send_aborted = 1;
      c->abort_status = s;
    } else {
      finish(c, &it, s);
    }
  }
  pthread_cond_broadcast(&c->cond);
}

/* Connects and exchanges HELLO/HELLO_ACK.  Returns the fd or MC_E*. */
static int dial_hello(tcp_conn *c) {
  tcp_ep *ep = c->ep;
  tcp_ctx *ctx = ep->ctx;
  int fd = tcp_dial(&ep->sa, ep->salen, ctx->cfg.connect_timeout_ms, &ctx->cfg, &c->stop);
  int rc = fd < 0 ? fd : 0;
  int64_t deadline = tcp_now_ms() + ctx->cfg.connect_timeout_ms;
  if (!rc) {
    uint8_t raw[TCPW_HDR_SIZE];
    tcpw_hdr h = {.type = TCPW_HELLO, .len = strlen(ctx->segment)};
    memcpy(h.secret, ep->secret, sizeof h.secret);
    tcpw_hdr_encode(&h, raw);
    struct iovec iov[2] = {{raw, sizeof raw}, {ctx->segment, (size_t)h.len}};
    rc = tcp_send_iov(fd, iov, 2, deadline, &c->stop);
    if (!rc)
      rc = tcp_recv_all(fd, raw, sizeof raw, deadline, &c->stop);
    if (!rc && (tcpw_hdr_decode(raw, sizeof raw, &h) || h.type != TCPW_HELLO_ACK))
      rc = MC_EPROTO;
    char name[TCPW_MAX_NAME + 1];
    if (!rc)
      rc = tcp_recv_all(fd, name, (size_t)h.len, deadline, &c->stop);
    if (!rc && tcpw_name_check(name, (size_t)h.len))
      rc = MC_EPROTO;
  }
  if (rc) {
    if (fd >= 0)
      close(fd);
    unsigned long supp = 0;
    if (rc != MC_ECANCELED && tcp_warn_allowed(ctx, &supp))
      ctx->host->log(ctx->host->host, MC_LOG_WARN,
                     "cannot connect to peer '%s' (conn%u): %s", ep->peer,
                     c->idx, rc == MC_EPROTO ? "bad handshake" :
                     rc == MC_ETIMEDOUT ? "timed out" : "unreachable");
    return rc == MC_ECANCELED || rc == MC_EPROTO ? rc : MC_EPEER;
  }
  return fd;
}

static void *tx_main(void *arg) {
  tcp_conn *c = arg;
  tcp_ctx *ctx = c->ep->ctx;
  pthread_mutex_lock(&c->lock);
  while (!atomic_load(&c->stop)) {
    if (!c->q.count || c->broken) {
      pthread_cond_wait(&c->cond, &c->lock);
      continue;
    }
    if (c->fd < 0) {
      pthread_mutex_unlock(&c->lock);
      int fd = dial_hello(c);
      pthread_mutex_lock(&c->lock);
      if (fd >= 0 && atomic_load(&c->stop)) {
        close(fd);
        break;
      }
      if (fd < 0)
        fail_queued(c, atomic_load(&c->stop) ? MC_ECANCELED : fd);
      else
        c->fd = fd;
      pthread_cond_broadcast(&c->cond);
      continue;
    }
    tcp_item it = ring_pop(&c->q);
    if (it.op != OP_NOTIFY && (it.canceled || tcp_now_ms() >= it.deadline)) {
      c->nslices--;
      finish(c, &it, it.canceled ? MC_ECANCELED : MC_ETIMEDOUT);
      continue;
    }
    tcpw_hdr h = {0};
    struct iovec iov[2];
    int niov = 1;
    int64_t deadline = it.deadline;
    if (it.op == OP_NOTIFY) {
      h.type = TCPW_NOTIFY;
      h.len = it.nw->len;
      iov[1] = (struct iovec){(void *)it.nw->msg, it.nw->len};
      niov = it.nw->len ? 2 : 1;
      deadline = tcp_now_ms() + ctx->cfg.timeout_ms;
      c->sending_seq = UINT64_MAX;
    } else {
      it.seq = c->next_seq++;
      h.type = it.op == MC_OP_READ ? TCPW_READ : TCPW_WRITE;
      h.seq = it.seq;
      h.buf_id = it.buf_id;
      h.addr = it.raddr;
      h.len = it.len;
      memcpy(h.secret, it.secret, sizeof h.secret);
      if (it.op == MC_OP_WRITE) {
        iov[1] = (struct iovec){(void *)(uintptr_t)it.laddr, (size_t)it.len};
        niov = 2;
      }
      /* In flight before the first byte goes out: the response may come
       * back before the sender reacquires the lock. */
      ring_push(&c->inf, &it);
      c->sending_seq = it.seq;
    }
    c->sending = 1;
    c->send_aborted = 0;
    int fd = c->fd;
    pthread_mutex_unlock(&c->lock);

    uint8_t raw[TCPW_HDR_SIZE];
    tcpw_hdr_encode(&h, raw);
    iov[0] = (struct iovec){raw, sizeof raw};
    int rc = tcp_send_iov(fd, iov, niov, deadline, &c->stop);

    pthread_mutex_lock(&c->lock);
    c->sending = 0;
    if (it.op == OP_NOTIFY) {
      it.nw->rc = rc == 0 ? 0 : rc == MC_ECANCELED ? rc : MC_EPEER;
      it.nw->done = 1;
    } else if (c->send_aborted) {
      finish(c, &it, c->abort_status);
    }
    if (rc && !c->broken)
      break_locked(c, MC_EPEER);
    pthread_cond_broadcast(&c->cond);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

/* Reads one response on fd and completes its slice.  0 or MC_E*. */
static int read_one(tcp_conn *c, int fd) {
  tcp_ctx *ctx = c->ep->ctx;
  pthread_mutex_lock(&c->lock);
  int64_t deadline = c->inf.count ? ring_at(&c->inf, 0)->deadline
                                  : tcp_now_ms() + ctx->cfg.timeout_ms;
  pthread_mutex_unlock(&c->lock);
  uint8_t raw[TCPW_HDR_SIZE];
  tcpw_hdr h;
  int rc = tcp_recv_all(fd, raw, sizeof raw, deadline, &c->stop);
  if (rc)
    return rc;
  if (tcpw_hdr_decode(raw, sizeof raw, &h) ||
      (h.type != TCPW_READ_RESP && h.type != TCPW_WRITE_RESP))
    goto proto;
  pthread_mutex_lock(&c->lock);
  tcp_item *head = c->inf.count ? ring_at(&c->inf, 0) : NULL;
  if (!head || head->seq != h.seq || head->len != h.len ||
      (head->op == MC_OP_READ) != (h.type == TCPW_READ_RESP)) {
    pthread_mutex_unlock(&c->lock);
    goto proto;
  }
  tcp_item it = ring_pop(&c->inf);
  c->nslices--;
  pthread_mutex_unlock(&c->lock);
  if (h.type == TCPW_READ_RESP && h.status == 0) {
    /* Straight into the initiator's registered buffer. */
    rc = tcp_recv_all(fd, (void *)(uintptr_t)it.laddr, (size_t)it.len, it.deadline,
                      &c->stop);
    if (rc) {
      finish(c, &it, rc == MC_ETIMEDOUT || rc == MC_ECANCELED ? rc : MC_EPEER);
      return rc;
    }
  }
  finish(c, &it, h.status);
  return 0;
proto:
  TCP_LOG(ctx, MC_LOG_WARN, "protocol error from peer '%s' (conn%u), reconnecting",
          c->ep->peer, c->idx);
  return MC_EPROTO;
}

static void *rx_main(void *arg) {
  tcp_conn *c = arg;
  pthread_mutex_lock(&c->lock);
  while (!atomic_load(&c->stop)) {
    if (c->fd < 0 || (c->broken && c->sending)) {
      pthread_cond_wait(&c->cond, &c->lock);
      continue;
    }
    if (c->broken) {
      close(c->fd);
      c->fd = -1;
      c->broken = 0;
      pthread_cond_broadcast(&c->cond);
      continue;
    }
    int fd = c->fd;
    int64_t now = tcp_now_ms(), until = now + TCP_IO_TICK_MS;
    if (c->inf.count) {
      int64_t d = ring_at(&c->inf, 0)->deadline;
      if (d <= now) {
        break_locked(c, MC_EPEER);
        continue;
      }
      if (d < until)
        until = d;
    }
    pthread_mutex_unlock(&c->lock);
    int rc = tcp_wait_readable(fd, until, &c->stop);
    if (rc > 0)
      rc = read_one(c, fd); /* also reads EOF of an idle socket */
    pthread_mutex_lock(&c->lock);
    if (rc < 0 && !c->broken)
      break_locked(c, rc == MC_EPROTO ? MC_EPROTO : MC_EPEER);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

static int conn_init(tcp_conn *c, tcp_ep *ep, uint32_t idx, uint32_t cap) {
  c->ep = ep;
  c->idx = idx;
  c->fd = -1;
  c->q.cap = cap + NOTIFY_SLOTS;
  c->inf.cap = cap;
  c->q.v = calloc(c->q.cap, sizeof(tcp_item));
  c->inf.v = calloc(c->inf.cap, sizeof(tcp_item));
  if (!c->q.v || !c->inf.v) {
    free(c->q.v);
    free(c->inf.v);
    return MC_ENOMEM;
  }
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  return 0;
}

/* Starts the threads on first use (lock held).  0 or MC_ENOMEM. */
static int conn_start(tcp_conn *c) {
  if (c->dead)
    return MC_ENOMEM;
  if (!c->has_rx)
    c->has_rx = pthread_create(&c->rx, NULL, rx_main, c) == 0;
  if (c->has_rx && !c->has_tx)
    c->has_tx = pthread_create(&c->tx, NULL, tx_main, c) == 0;
  if (c->has_rx && c->has_tx)
    return 0;
  if (c->has_rx)
    c->dead = 1; /* the lone receiver idles until destroy joins it */
  TCP_LOG(c->ep->ctx, MC_LOG_ERROR, "cannot start threads for peer '%s' (conn%u)",
          c->ep->peer, c->idx);
  return MC_ENOMEM;
}

static void conn_destroy(tcp_conn *c, int st) {
  if (c->has_tx)
    pthread_join(c->tx, NULL);
  if (c->has_rx)
    pthread_join(c->rx, NULL);
  /* Threads are gone: whatever is left fails here. */
  pthread_mutex_lock(&c->lock);
  while (c->inf.count) {
    tcp_item it = ring_pop(&c->inf);
    finish(c, &it, st);
  }
  fail_queued(c, st);
  if (c->fd >= 0)
    close(c->fd);
  pthread_mutex_unlock(&c->lock);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->lock);
  free(c->q.v);
  free(c->inf.v);
}

int tcp_ep_create(tcp_ctx *ctx, const char *peer, const char *host, uint16_t port,
                  const uint8_t secret[16], tcp_ep **out) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char pstr[8];
  snprintf(pstr, sizeof pstr, "%u", (unsigned)port);
  if (getaddrinfo(host, pstr, &hints, &res) || !res) {
    TCP_LOG(ctx, MC_LOG_WARN, "peer '%s': cannot resolve host '%s'", peer, host);
    return MC_EPEER;
  }
  tcp_ep *ep = calloc(1, sizeof *ep);
  if (!ep) {
    freeaddrinfo(res);
    return MC_ENOMEM;
  }
  memcpy(&ep->sa, res->ai_addr, res->ai_addrlen);
  ep->salen = res->ai_addrlen;
  freeaddrinfo(res);
  ep->ctx = ctx;
  memcpy(ep->secret, secret, sizeof ep->secret);
  snprintf(ep->peer, sizeof ep->peer, "%s", peer);
  ep->nconn = ctx->cfg.connections;
  ep->conns = calloc(ep->nconn, sizeof(tcp_conn));
  if (!ep->conns) {
    free(ep);
    return MC_ENOMEM;
  }
  for (uint32_t i = 0; i < ep->nconn; i++) {
    if (conn_init(&ep->conns[i], ep, i, ctx->cfg.max_inflight)) {
      while (i--)
        conn_destroy(&ep->conns[i], MC_ECANCELED);
      free(ep->conns);
      free(ep);
      return MC_ENOMEM;
    }
  }
  *out = ep;
  return 0;
}

void tcp_ep_destroy(tcp_ep *ep, int status) {
  /* Stop every connection first so they wind down in parallel. */
  for (uint32_t i = 0; i < ep->nconn; i++) {
    tcp_conn *c = &ep->conns[i];
    atomic_store(&c->stop, 1);
    pthread_mutex_lock(&c->lock);
    if (c->fd >= 0)
      shutdown(c->fd, SHUT_RDWR);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
  }
  for (uint32_t i = 0; i < ep->nconn; i++)
    conn_destroy(&ep->conns[i], status);
  free(ep->conns);
  free(ep);
}

/* 0 when the slice is well-formed and inside both registrations. */
static int check_slice(const mc_slice *s) {
  const tcp_buf *l = s->local_mem;
  const tcp_rmem *r = s->remote_mem;
  if ((s->op != MC_OP_READ && s->op != MC_OP_WRITE) || !l || !r || s->len == 0 ||
      s->len > TCPW_MAX_IO)
    return MC_EINVAL;
  if (!tcpw_range_inside(s->local_addr, s->len, l->base, l->len) ||
      !tcpw_range_inside(s->remote_addr, s->len, r->base, r->len))
    return MC_ERANGE;
  return 0;
}

int tcp_ep_submit(tcp_ep *ep, const mc_slice *slices, uint32_t n, uint32_t *accepted) {
  tcp_ctx *ctx = ep->ctx;
  int64_t deadline = tcp_now_ms() + ctx->cfg.timeout_ms;
  uint32_t acc = 0;
  int err = MC_EAGAIN;
  for (; acc < n; acc++) {
    const mc_slice *s = &slices[acc];
    int bad = check_slice(s);
    if (bad) {
      ctx->host->complete(ctx->host->host, s->token, bad, 0, 0);
      continue;
    }
    tcp_conn *c = &ep->conns[s->rail % ep->nconn];
    pthread_mutex_lock(&c->lock);
    if (c->nslices >= ctx->cfg.max_inflight) {
      pthread_mutex_unlock(&c->lock);
      break;
    }
    if ((!c->has_tx || !c->has_rx) && conn_start(c)) {
      pthread_mutex_unlock(&c->lock);
      err = MC_ENOMEM;
      break;
    }
    const tcp_rmem *r = s->remote_mem;
    tcp_item it = {.token = s->token, .buf_id = r->buf_id, .raddr = s->remote_addr,
                   .laddr = s->local_addr, .len = s->len, .deadline = deadline,
                   .op = s->op};
    memcpy(it.secret, r->secret, sizeof it.secret);
    ring_push(&c->q, &it);
    c->nslices++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
  }
  *accepted = acc;
  return acc == 0 && n > 0 ? err : 0;
}

int tcp_ep_notify(tcp_ep *ep, const void *msg, size_t len) {
  tcp_conn *c = &ep->conns[0];
  notify_wait nw = {.msg = msg, .len = len};
  pthread_mutex_lock(&c->lock);
  int rc = (!c->has_tx || !c->has_rx) ? conn_start(c) : 0;
  if (!rc) {
    while (c->q.count >= c->q.cap)
      pthread_cond_wait(&c->cond, &c->lock);
    tcp_item it = {.op = OP_NOTIFY, .nw = &nw};
    ring_push(&c->q, &it);
    pthread_cond_broadcast(&c->cond);
    /* The sender resolves nw on every path (sent, failed, stopped). */
    while (!nw.done)
      pthread_cond_wait(&c->cond, &c->lock);
    rc = nw.rc;
  }
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int tcp_ep_cancel(tcp_ep *ep, uint64_t token) {
  for (uint32_t i = 0; i < ep->nconn; i++) {
    tcp_conn *c = &ep->conns[i];
    pthread_mutex_lock(&c->lock);
    for (uint32_t k = 0; k < c->q.count; k++) {
      tcp_item *it = ring_at(&c->q, k);
      if (it->op != OP_NOTIFY && it->token == token) {
        it->canceled = 1; /* the sender completes it without sending */
        pthread_mutex_unlock(&c->lock);
        return 1;
      }
    }
    pthread_mutex_unlock(&c->lock);
  }
  return 0;
}
