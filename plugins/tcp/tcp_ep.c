/* tcp_ep.c - the initiator's endpoint API (tcp_conn.h): endpoints and
 * their connections' set-up, submit, notify, cancel.  These run on the
 * engine's threads and only queue work (under a connection's lock) and kick
 * its io worker; the connection's socket is tcp_conn.c's, on the worker. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp_conn_p.h"
#include "tcp_io.h"
#include "tcp_mem.h"

tcp_ep **tcp_ep_next(tcp_ep *ep) { return &ep->next; }

static int conn_init(tcp_conn *c, tcp_ep *ep, uint32_t idx, uint32_t cap) {
  c->ep = ep;
  c->idx = idx;
  c->fd = -1;
  c->q.cap = cap + NOTIFY_SLOTS;
  c->inf.cap = 1;
  while (c->inf.cap < cap)
    c->inf.cap <<= 1;
  c->q.v = calloc(c->q.cap, sizeof(tcp_item));
  c->inf.v = calloc(c->inf.cap, sizeof(tcp_item));
  if (!c->q.v || !c->inf.v) {
    free(c->q.v);
    free(c->inf.v);
    return MC_ENOMEM;
  }
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->txlock, NULL);
  pthread_cond_init(&c->cond, NULL);
  tcp_iloop_bind(ep->ctx->iloop, &c->link, c);
  return 0;
}

static void conn_free(tcp_conn *c) {
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->txlock);
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
        conn_free(&ep->conns[i]);
      free(ep->conns);
      free(ep);
      return MC_ENOMEM;
    }
  }
  *out = ep;
  return 0;
}

void tcp_ep_destroy(tcp_ep *ep, int status) {
  (void)status; /* everything pending completes with MC_ECANCELED */
  for (uint32_t i = 0; i < ep->nconn; i++)
    tcp_ilink_detach(&ep->conns[i].link);
  for (uint32_t i = 0; i < ep->nconn; i++)
    conn_free(&ep->conns[i]);
  free(ep->conns);
  free(ep);
}

/* 0 when the slice is well-formed and inside both registrations. */
static int check_slice(const mc_slice *s) {
  const tcp_buf *l = s->local_mem;
  const tcp_rmem *r = s->remote_mem;
  /* A local file range is address space, not memory (the core never
   * hands one over: local_mem_kinds is CPU). */
  if ((s->op != MC_OP_READ && s->op != MC_OP_WRITE) || !l || !r || s->len == 0 ||
      s->len > TCPW_MAX_IO || l->fd >= 0)
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
  /* One kick per connection used by this call, not one per slice. */
  uint64_t touched = 0;
  uint64_t wbytes[TCP_CONN_MAX] = {0}; /* WRITE payload per connection, this call */
  tcp_conn *held = NULL;
  for (; acc < n; acc++) {
    const mc_slice *s = &slices[acc];
    int bad = check_slice(s);
    if (bad) {
      ctx->host->complete(ctx->host->host, s->token, bad, 0, 0);
      continue;
    }
    tcp_conn *c = &ep->conns[s->rail % ep->nconn];
    if (c != held) {
      if (held)
        pthread_mutex_unlock(&held->lock);
      pthread_mutex_lock(&c->lock);
      held = c;
    }
    if (atomic_load(&c->nslices) >= ctx->cfg.max_inflight)
      break;
    const tcp_rmem *r = s->remote_mem;
    tcp_item it = {.token = s->token, .buf_id = r->buf_id, .raddr = s->remote_addr,
                   .laddr = s->local_addr, .len = s->len, .deadline = deadline,
                   .op = s->op};
    memcpy(it.secret, r->secret, sizeof it.secret);
    ring_push(&c->q, &it);
    atomic_fetch_add(&c->nslices, 1);
    touched |= 1ull << c->idx;
    if (s->op == MC_OP_WRITE)
      wbytes[c->idx] += s->len;
  }
  if (held)
    pthread_mutex_unlock(&held->lock);
  /* Each connection used: sent from this thread when it is ready and idle
   * and the payload is small (no wake-up, no hand-off), else its worker is
   * kicked.  Copying a large WRITE into the sockets is most of a write's
   * CPU; done here it would run on this one thread, connection after
   * connection, while the io threads copy for several connections at once
   * (a single-threaded caller's 1 MiB writes: ~0.8x of iperf3 inline,
   * ~1.0-1.2x handed over, on 2 cores). */
  for (uint32_t i = 0; i < ep->nconn; i++)
    if ((touched & (1ull << i)) &&
        (wbytes[i] > ctx->cfg.inline_write_max ||
         !tcp_conn_send_inline(&ep->conns[i])))
      tcp_ilink_kick(&ep->conns[i].link);
  *accepted = acc;
  return acc == 0 && n > 0 ? MC_EAGAIN : 0;
}

int tcp_ep_notify(tcp_ep *ep, const void *msg, size_t len) {
  tcp_conn *c = &ep->conns[0];
  notify_wait nw = {.msg = msg, .len = len};
  pthread_mutex_lock(&c->lock);
  while (c->q.count >= c->q.cap)
    pthread_cond_wait(&c->cond, &c->lock);
  tcp_item it = {.op = OP_NOTIFY, .nw = &nw};
  ring_push(&c->q, &it);
  pthread_mutex_unlock(&c->lock);
  tcp_ilink_kick(&c->link);
  /* The worker resolves nw on every path (sent, failed, detached). */
  pthread_mutex_lock(&c->lock);
  while (!nw.done)
    pthread_cond_wait(&c->cond, &c->lock);
  pthread_mutex_unlock(&c->lock);
  return nw.rc;
}

int tcp_ep_cancel(tcp_ep *ep, uint64_t token) {
  for (uint32_t i = 0; i < ep->nconn; i++) {
    tcp_conn *c = &ep->conns[i];
    pthread_mutex_lock(&c->lock);
    for (uint32_t k = 0; k < c->q.count; k++) {
      tcp_item *it = ring_at(&c->q, k);
      if (it->op != OP_NOTIFY && it->token == token) {
        it->canceled = 1; /* the worker completes it without sending */
        pthread_mutex_unlock(&c->lock);
        tcp_ilink_kick(&c->link);
        return 1;
      }
    }
    pthread_mutex_unlock(&c->lock);
  }
  return 0;
}
