/* tcp_conn.c - the initiator's connection state machine (tcp_conn_p.h).
 *
 * Each connection is a state machine run by one io worker (tcp_iloop.c):
 * IDLE (no socket) -> CONNECTING -> HELLO (awaiting HELLO_ACK) -> READY.
 * submit() (tcp_ep.c) queues slices (under the connection's lock); the
 * queue is turned into batches of up to TX_MAX frames sent with one
 * sendmsg each (header + local memory for WRITE) by whoever holds the
 * connection's txlock: the submitting thread itself when the connection is
 * ready and has nothing half sent (tcp_conn_send_inline: no wake-up, no
 * hand-off), else the worker, kicked.  The worker alone reads the in-order
 * responses, several headers per recv, READ payloads straight into local
 * memory (with the next header in the same call), and alone changes the
 * socket (dial, drop: under txlock, so nobody is sending on it). 
 *
 * Failures: a socket error or EOF fails the in-flight slices (MC_EPEER, or
 * MC_ETIMEDOUT for those past their deadline); a slice past its deadline
 * drops the connection; queued slices dial again.  A dial (connect and
 * handshake) is retried DIAL_TRIES times within connect_timeout_ms, since
 * a busy target may evict a pending handshake; then the queued slices fail
 * with MC_EPEER.  An EOF on a connection with nothing in flight (the
 * target's idle limit) closes it quietly, and the next slice dials again;
 * the initiator itself closes a connection idle for half idle_timeout_ms,
 * so with the same setting on both sides it is the initiator that closes,
 * never racing a request. */
#include "tcp_conn_p.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "tcp_io.h"

static void finish(tcp_conn *c, const tcp_item *it, int st) {
  const mc_host_api *h = c->ep->ctx->host;
  atomic_fetch_sub(&c->nslices, 1);
  h->complete(h->host, it->token, st, st == 0 ? it->len : 0, 0);
}

static void resolve_notify(tcp_conn *c, notify_wait *nw, int rc) {
  pthread_mutex_lock(&c->lock);
  nw->rc = rc;
  nw->done = 1;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

/* Fails every queued item. */
static void fail_queued(tcp_conn *c, int st) {
  pthread_mutex_lock(&c->lock);
  while (c->q.count) {
    tcp_item it = ring_pop(&c->q);
    if (it.op == OP_NOTIFY) {
      it.nw->rc = st;
      it.nw->done = 1;
    } else {
      finish(c, &it, st);
    }
  }
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

static uint32_t queued(tcp_conn *c) {
  pthread_mutex_lock(&c->lock);
  uint32_t n = c->q.count;
  pthread_mutex_unlock(&c->lock);
  return n;
}

static void start_dial(tcp_conn *c);

/* Closes the socket and fails what was in flight: MC_ETIMEDOUT for slices
 * past their deadline, `st` for the others.  The batch being sent is
 * abandoned (its slices are in flight); its notifications fail.  When work
 * is still queued, dials again.  The caller holds txlock: no thread is
 * sending on the socket it closes. */
static void drop_locked(tcp_conn *c, int st, int redial) {
  c->tx_ready = 0;
  c->tx_err = 0;
  if (c->fd >= 0)
    close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  c->state = CS_IDLE;
  int64_t now = tcp_now_ms();
  while (inf_count(&c->inf)) {
    tcp_item it = inf_pop(&c->inf);
    finish(c, &it, st == MC_ECANCELED ? st : now >= it.deadline ? MC_ETIMEDOUT : st);
  }
  for (uint32_t i = 0; i < c->tx_nnw; i++)
    resolve_notify(c, c->tx_nw[i], st == MC_ECANCELED ? st : MC_EPEER);
  c->tx_frames = 0;
  c->tx_nnw = 0;
  c->rx_len = c->rx_off = 0;
  c->rx_in_payload = 0;
  if (redial && queued(c))
    start_dial(c);
}

static void drop(tcp_conn *c, int st, int redial) {
  pthread_mutex_lock(&c->txlock);
  drop_locked(c, st, redial);
  pthread_mutex_unlock(&c->txlock);
}

static void dial_failed(tcp_conn *c, const char *why) {
  tcp_ctx *ctx = c->ep->ctx;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->state = CS_IDLE;
  int64_t now = tcp_now_ms();
  int64_t backoff = (int64_t)DIAL_BACKOFF_MS << c->attempts;
  if (++c->attempts < DIAL_TRIES && now + backoff < c->dial_deadline) {
    c->retry_at = now + backoff; /* tcp_conn_tick dials again */
    return;
  }
  c->retry_at = 0;
  c->attempts = 0;
  unsigned long supp = 0;
  if (tcp_warn_allowed(ctx, &supp))
    ctx->host->log(ctx->host->host, MC_LOG_WARN,
                   "cannot connect to peer '%s' (conn%u): %s (%lu similar warnings "
                   "suppressed)", c->ep->peer, c->idx, why, supp);
  fail_queued(c, MC_EPEER);
}

static void send_hello(tcp_conn *c) {
  tcp_ctx *ctx = c->ep->ctx;
  uint8_t raw[TCPW_HDR_SIZE + TCPW_MAX_NAME];
  tcpw_hdr h = {.type = TCPW_HELLO, .len = strlen(ctx->segment)};
  memcpy(h.secret, c->ep->secret, sizeof h.secret);
  tcpw_hdr_encode(&h, raw);
  memcpy(raw + TCPW_HDR_SIZE, ctx->segment, (size_t)h.len);
  size_t n = TCPW_HDR_SIZE + (size_t)h.len;
  /* A fresh socket's send buffer always takes these few bytes. */
  if (send(c->fd, raw, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) {
    dial_failed(c, "unreachable");
    return;
  }
  c->state = CS_HELLO;
  c->rx_len = c->rx_off = 0;
}

static void start_dial(tcp_conn *c) {
  tcp_ep *ep = c->ep;
  tcp_ctx *ctx = ep->ctx;
  int64_t now = tcp_now_ms();
  if (c->attempts == 0)
    c->dial_deadline = now + ctx->cfg.connect_timeout_ms;
  c->retry_at = 0;
  int fd = socket(ep->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    c->attempts = DIAL_TRIES; /* no point retrying */
    dial_failed(c, "no socket");
    return;
  }
  tcp_sock_setup(fd, &ctx->cfg);
  c->fd = fd;
  c->state = CS_CONNECTING;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.ptr = &c->link};
  if (epoll_ctl(tcp_ilink_epoll(&c->link), EPOLL_CTL_ADD, fd, &ev)) {
    c->attempts = DIAL_TRIES;
    dial_failed(c, "epoll_ctl failed");
    return;
  }
  if (connect(fd, (const struct sockaddr *)&ep->sa, ep->salen) == 0) {
    send_hello(c);
    return;
  }
  if (errno != EINPROGRESS)
    dial_failed(c, "unreachable");
  /* else EPOLLOUT reports the outcome */
}

/* Moves queued items into a new batch (items to inf, headers encoded).
 * Returns how many items left the queue. */
static uint32_t build_batch(tcp_conn *c) {
  int64_t now = tcp_now_ms();
  tcp_item dead[TX_MAX];
  int dead_st[TX_MAX];
  uint32_t ndead = 0;
  c->tx_frames = c->tx_nnw = 0;
  c->tx_niov = c->tx_pos = 0;
  pthread_mutex_lock(&c->lock);
  uint32_t before = c->q.count;
  if (before == c->q.cap)
    pthread_cond_broadcast(&c->cond); /* a notify may wait for room */
  while (c->q.count && c->tx_frames < TX_MAX && ndead < TX_MAX) {
    tcp_item it = ring_pop(&c->q);
    tcpw_hdr h = {0};
    uint8_t *raw = c->tx_hdr[c->tx_frames];
    if (it.op == OP_NOTIFY) {
      h.type = TCPW_NOTIFY;
      h.len = it.nw->len;
      tcpw_hdr_encode(&h, raw);
      c->tx_iov[c->tx_niov++] = (struct iovec){raw, TCPW_HDR_SIZE};
      if (it.nw->len)
        c->tx_iov[c->tx_niov++] = (struct iovec){(void *)it.nw->msg, it.nw->len};
      c->tx_nw[c->tx_nnw++] = it.nw;
      c->tx_frames++;
      continue;
    }
    if (it.canceled || now >= it.deadline) {
      dead_st[ndead] = it.canceled ? MC_ECANCELED : MC_ETIMEDOUT;
      dead[ndead++] = it;
      continue;
    }
    it.seq = c->next_seq++;
    h.type = it.op == MC_OP_READ ? TCPW_READ : TCPW_WRITE;
    h.seq = it.seq;
    h.buf_id = it.buf_id;
    h.addr = it.raddr;
    h.len = it.len;
    memcpy(h.secret, it.secret, sizeof h.secret);
    tcpw_hdr_encode(&h, raw);
    c->tx_iov[c->tx_niov++] = (struct iovec){raw, TCPW_HDR_SIZE};
    if (it.op == MC_OP_WRITE)
      c->tx_iov[c->tx_niov++] = (struct iovec){(void *)(uintptr_t)it.laddr, (size_t)it.len};
    /* In flight before the first byte goes out: its response may come
     * back before the batch is all sent. */
    inf_push(&c->inf, &it);
    c->tx_frames++;
  }
  uint32_t popped = before - c->q.count;
  pthread_mutex_unlock(&c->lock);
  for (uint32_t i = 0; i < ndead; i++)
    finish(c, &dead[i], dead_st[i]);
  return popped;
}

/* Sends batches until the queue is empty (0) or the socket is full (1);
 * -1 when a send failed (tx_err is set: the worker drops the connection).
 * The caller holds txlock and has seen tx_ready. */
static int tx_send(tcp_conn *c) {
  for (;;) {
    if (!c->tx_frames) {
      uint32_t popped;
      do
        popped = build_batch(c);
      while (popped && !c->tx_frames); /* all canceled or expired: next */
      if (!c->tx_frames)
        return 0;
    }
    while (c->tx_pos < c->tx_niov) {
      struct msghdr m = {.msg_iov = c->tx_iov + c->tx_pos,
                         .msg_iovlen = (size_t)(c->tx_niov - c->tx_pos)};
      ssize_t k = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return 1; /* EPOLLOUT (edge) resumes, on the worker */
        c->tx_err = 1;
        return -1;
      }
      size_t done = (size_t)k;
      while (c->tx_pos < c->tx_niov && done >= c->tx_iov[c->tx_pos].iov_len)
        done -= c->tx_iov[c->tx_pos++].iov_len;
      if (c->tx_pos < c->tx_niov) {
        struct iovec *v = &c->tx_iov[c->tx_pos];
        v->iov_base = (char *)v->iov_base + done;
        v->iov_len -= done;
      }
    }
    c->last_ms = tcp_now_ms();
    for (uint32_t i = 0; i < c->tx_nnw; i++)
      resolve_notify(c, c->tx_nw[i], 0);
    c->tx_frames = c->tx_nnw = 0;
  }
}

/* The worker's send: after a kick or EPOLLOUT. */
static void tx_run(tcp_conn *c) {
  pthread_mutex_lock(&c->txlock);
  if (c->tx_ready && (c->tx_err || tx_send(c) < 0))
    drop_locked(c, MC_EPEER, 1);
  pthread_mutex_unlock(&c->txlock);
}

int tcp_conn_send_inline(tcp_conn *c) {
  if (pthread_mutex_trylock(&c->txlock))
    return 0; /* the worker (or another submitter) is sending */
  /* Only a ready connection with nothing half sent: a half-sent batch
   * means the socket was full, and the worker waits for it to drain. */
  int sent = c->tx_ready && !c->tx_err && !c->tx_frames && tx_send(c) == 0;
  pthread_mutex_unlock(&c->txlock);
  return sent;
}

static void proto_error(tcp_conn *c) {
  TCP_LOG(c->ep->ctx, MC_LOG_WARN, "protocol error from peer '%s' (conn%u), reconnecting",
          c->ep->peer, c->idx);
  drop(c, MC_EPROTO, 1);
}

/* HELLO_ACK: header and name, from rx. */
static void rx_hello(tcp_conn *c) {
  for (;;) {
    size_t need = TCPW_HDR_SIZE;
    tcpw_hdr h;
    if (c->rx_len >= TCPW_HDR_SIZE) {
      if (tcpw_hdr_decode(c->rx, TCPW_HDR_SIZE, &h) || h.type != TCPW_HELLO_ACK) {
        dial_failed(c, "bad handshake");
        return;
      }
      need += (size_t)h.len;
      if (c->rx_len >= need) {
        if (tcpw_name_check(c->rx + TCPW_HDR_SIZE, (size_t)h.len) || c->rx_len > need) {
          dial_failed(c, "bad handshake");
          return;
        }
        c->rx_len = 0;
        c->state = CS_READY;
        c->attempts = 0;
        c->last_ms = tcp_now_ms();
        pthread_mutex_lock(&c->txlock);
        c->tx_ready = 1; /* from here submitters may send too */
        pthread_mutex_unlock(&c->txlock);
        tx_run(c);
        return;
      }
    }
    /* Only the ACK's bytes: the target sends nothing more unasked. */
    ssize_t k = recv(c->fd, c->rx + c->rx_len, need - c->rx_len, MSG_DONTWAIT);
    if (k > 0) {
      c->rx_len += (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    dial_failed(c, "unreachable"); /* evicted or refused by a busy target */
    return;
  }
}

/* Consumed input is skipped, not moved: a recv of many response headers
 * would otherwise cost a memmove of the rest per header. */
static void rx_consume(tcp_conn *c, size_t n) {
  c->rx_len -= n;
  c->rx_off = c->rx_len ? c->rx_off + n : 0;
}

/* Responses.  Returns after EAGAIN, a drop, or RX_TURN payload bytes
 * (then asks to run again). */
static void rx_run(tcp_conn *c) {
  uint64_t turn = 0;
  for (;;) {
    if (c->rx_in_payload) {
      tcp_item *it = inf_head(&c->inf);
      uint8_t *dst = (uint8_t *)(uintptr_t)it->laddr + c->rx_payload_done;
      size_t want = (size_t)(it->len - c->rx_payload_done);
      /* rx is empty while a payload arrives (what came with the header
       * was consumed first): the same call reads the next response's
       * header, so a stream of READs costs one system call per response
       * and no payload byte goes through rx. */
      struct iovec iov[2] = {{dst, want}, {c->rx, TCPW_HDR_SIZE}};
      struct msghdr m = {.msg_iov = iov, .msg_iovlen = c->rx_len == 0 ? 2 : 1};
      ssize_t k = recvmsg(c->fd, &m, MSG_DONTWAIT);
      if (k > 0) {
        if ((size_t)k > want) { /* the next header, or its first bytes */
          c->rx_off = 0;
          c->rx_len = (size_t)k - want;
          k = (ssize_t)want;
        }
        c->rx_payload_done += (uint64_t)k;
        turn += (uint64_t)k;
        if (c->rx_payload_done == it->len) {
          tcp_item done = inf_pop(&c->inf);
          c->rx_in_payload = 0;
          finish(c, &done, 0);
        }
        if (turn >= RX_TURN) {
          tcp_ilink_again(&c->link);
          return;
        }
        continue;
      }
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      drop(c, MC_EPEER, 1);
      return;
    }
    if (c->rx_len < TCPW_HDR_SIZE) {
      if (c->rx_off) { /* less than a header left: to the front */
        memmove(c->rx, c->rx + c->rx_off, c->rx_len);
        c->rx_off = 0;
      }
      /* Several response headers per call; but a READ response's header
       * alone, so that its payload is received straight into place (and
       * the next header with it: above) rather than through rx. */
      tcp_item *next = inf_count(&c->inf) ? inf_head(&c->inf) : NULL;
      size_t want = next && next->op == MC_OP_READ ? TCPW_HDR_SIZE - c->rx_len
                                                   : RX_CAP - c->rx_len;
      ssize_t k = recv(c->fd, c->rx + c->rx_len, want, MSG_DONTWAIT);
      if (k > 0) {
        c->rx_len += (size_t)k;
        continue;
      }
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      /* EOF or error.  Nothing outstanding: the target closed an idle
       * connection; quietly gone, the next slice dials again. */
      pthread_mutex_lock(&c->txlock);
      int idle = !inf_count(&c->inf) && !c->tx_frames && !c->rx_len;
      drop_locked(c, MC_EPEER, 1);
      pthread_mutex_unlock(&c->txlock);
      if (idle)
        TCP_LOG(c->ep->ctx, MC_LOG_DEBUG, "peer '%s' (conn%u) closed an idle connection",
                c->ep->peer, c->idx);
      return;
    }
    tcpw_hdr h;
    if (tcpw_hdr_decode(c->rx + c->rx_off, TCPW_HDR_SIZE, &h) ||
        (h.type != TCPW_READ_RESP && h.type != TCPW_WRITE_RESP)) {
      proto_error(c);
      return;
    }
    tcp_item *head = inf_count(&c->inf) ? inf_head(&c->inf) : NULL;
    if (!head || head->seq != h.seq || head->len != h.len ||
        (head->op == MC_OP_READ) != (h.type == TCPW_READ_RESP)) {
      proto_error(c);
      return;
    }
    rx_consume(c, TCPW_HDR_SIZE);
    c->last_ms = tcp_now_ms();
    if (h.type == TCPW_READ_RESP && h.status == 0) {
      /* Straight into the initiator's registered buffer (what came with
       * the header is copied: at most RX_CAP bytes). */
      size_t have = c->rx_len < h.len ? c->rx_len : (size_t)h.len;
      memcpy((void *)(uintptr_t)head->laddr, c->rx + c->rx_off, have);
      rx_consume(c, have);
      if (have < h.len) {
        c->rx_in_payload = 1;
        c->rx_payload_done = have;
        continue;
      }
    }
    tcp_item done = inf_pop(&c->inf);
    finish(c, &done, h.status);
  }
}

void tcp_conn_io(tcp_conn *c, uint32_t events) {
  switch (c->state) {
  case CS_CONNECTING: {
    int err = 0;
    socklen_t el = sizeof err;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
      dial_failed(c, "unreachable");
    else if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
      send_hello(c);
    /* else not connected yet (an event of an earlier socket) */
    return;
  }
  case CS_HELLO:
    rx_hello(c);
    return;
  case CS_READY:
    if (!events || (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
      rx_run(c);
    if (c->state == CS_READY && (events & EPOLLOUT))
      tx_run(c);
    return;
  default:
    return; /* an event of a socket already closed */
  }
}

void tcp_conn_kicked(tcp_conn *c) {
  if (c->state == CS_READY)
    tx_run(c);
  else if (c->state == CS_IDLE && !c->retry_at && queued(c))
    start_dial(c);
}

void tcp_conn_tick(tcp_conn *c, int64_t now) {
  tcp_ctx *ctx = c->ep->ctx;
  switch (c->state) {
  case CS_IDLE:
    if (c->retry_at && now >= c->retry_at)
      start_dial(c);
    return;
  case CS_CONNECTING:
  case CS_HELLO:
    if (now >= c->dial_deadline) {
      c->attempts = DIAL_TRIES;
      dial_failed(c, "timed out");
    }
    return;
  default:
    break;
  }
  if (inf_count(&c->inf)) {
    if (inf_head(&c->inf)->deadline <= now)
      drop(c, MC_EPEER, 1); /* its response stream can no longer be trusted */
    return;
  }
  int idle = ctx->cfg.idle_timeout_ms;
  if (idle <= 0 || now - c->last_ms < idle / 2)
    return;
  /* Under txlock: a submitter sending inline cannot slip a slice in
   * between this look and the close. */
  pthread_mutex_lock(&c->txlock);
  if (!inf_count(&c->inf) && !c->tx_frames && !queued(c)) {
    TCP_LOG(ctx, MC_LOG_DEBUG, "closing idle connection to peer '%s' (conn%u)", c->ep->peer,
            c->idx);
    drop_locked(c, MC_EPEER, 0);
  }
  pthread_mutex_unlock(&c->txlock);
}

void tcp_conn_detached(tcp_conn *c) {
  drop(c, MC_ECANCELED, 0);
  fail_queued(c, MC_ECANCELED);
}
