/* tcp_serve.c - workers serving authenticated connections (tcp_serve.h).
 *
 * Each connection belongs to one worker for its whole life, so its state is
 * touched by that thread only; the one shared piece is the hand-over list
 * (incoming, under the worker's lock, announced through an eventfd).
 *
 * A turn reads what the socket has (up to SV_IN_CAP bytes at once, so a
 * burst of READ headers costs one recv), serves the complete frames in
 * order and sends their responses together.  Inside a frame (a WRITE
 * payload, the rest of a header) the worker waits for the bytes with a
 * timeout_ms deadline: a peer that has sent a frame's start sends the rest
 * at once, and only an authenticated peer can get this far. */
#include "tcp_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_io.h"
#include "tcp_wire.h"

#define SV_IN_CAP 4096u
#define SV_OUT_MAX 32u               /* responses per sendmsg */
#define SV_TURN_FRAMES 64u           /* a connection's turn ends after these */
#define SV_TURN_BYTES (16ull << 20)  /* ... or these many payload bytes */
#define SV_SCRATCH (64u * 1024u)
#define SV_WAKE UINT64_MAX           /* epoll tag of the worker's eventfd */
#define SV_SCAN_MS 1000              /* idle scan period, at most */

typedef struct sv_conn {
  int fd;
  int ready; /* complete frames still buffered: on the ready list */
  int64_t last_ms;
  struct sv_conn *prev, *next, *rnext;
  char peer[TCPW_MAX_NAME + 1];
  char addr[64];
  size_t in_len;
  uint8_t in[SV_IN_CAP];
} sv_conn;

typedef struct sv_out {
  uint32_t n, niov, npin;
  uint8_t hdr[SV_OUT_MAX][TCPW_HDR_SIZE];
  struct iovec iov[2 * SV_OUT_MAX];
  tcp_buf *pin[SV_OUT_MAX];
} sv_out;

typedef struct sv_worker {
  tcp_serve *sv;
  pthread_t th;
  int started;
  int ep, evfd;
  pthread_mutex_t lock; /* incoming */
  sv_conn *incoming;
  sv_conn *conns;       /* this worker's, doubly linked */
  sv_conn *ready;       /* served but with frames left in their buffer */
  sv_out out;
  char *scratch;        /* drain buffer for refused WRITEs */
} sv_worker;

struct tcp_serve {
  tcp_ctx *ctx;
  const atomic_int *stop;
  uint32_t nw;
  sv_worker *w;
  atomic_uint rr;    /* round-robin hand-over */
  atomic_uint count; /* connections served */
};

static int64_t frame_deadline(const sv_worker *w) {
  return tcp_now_ms() + w->sv->ctx->cfg.timeout_ms;
}

static void consume(sv_conn *c, size_t n) {
  c->in_len -= n;
  if (c->in_len)
    memmove(c->in, c->in + n, c->in_len);
}

static void out_push(sv_worker *w, const tcpw_hdr *h, const void *payload, size_t plen,
                     tcp_buf *pin) {
  sv_out *o = &w->out;
  tcpw_hdr_encode(h, o->hdr[o->n]);
  o->iov[o->niov++] = (struct iovec){o->hdr[o->n], TCPW_HDR_SIZE};
  if (plen)
    o->iov[o->niov++] = (struct iovec){(void *)(uintptr_t)payload, plen};
  if (pin)
    o->pin[o->npin++] = pin;
  o->n++;
}

/* Releases the pins of gathered responses and forgets them. */
static void out_reset(sv_worker *w) {
  sv_out *o = &w->out;
  for (uint32_t i = 0; i < o->npin; i++)
    tcp_reg_release(&w->sv->ctx->reg, o->pin[i]);
  o->n = o->niov = o->npin = 0;
}

static int flush(sv_worker *w, sv_conn *c) {
  if (!w->out.n)
    return 0;
  int rc = tcp_send_iov(c->fd, w->out.iov, (int)w->out.niov, frame_deadline(w),
                        w->sv->stop);
  out_reset(w);
  return rc;
}

/* Takes up to n bytes of the frame's payload from the input buffer into dst
 * (NULL: discard), then the rest from the socket. */
static int take_payload(sv_worker *w, sv_conn *c, uint8_t *dst, uint64_t n) {
  size_t have = c->in_len < n ? c->in_len : (size_t)n;
  if (have) {
    if (dst)
      memcpy(dst, c->in, have);
    consume(c, have);
    n -= have;
    if (dst)
      dst += have;
  }
  if (!n)
    return 0;
  if (dst)
    return tcp_recv_all(c->fd, dst, (size_t)n, frame_deadline(w), w->sv->stop);
  if (!w->scratch && !(w->scratch = malloc(SV_SCRATCH)))
    return MC_ENOMEM;
  int rc = 0;
  while (n && !rc) {
    size_t k = n > SV_SCRATCH ? SV_SCRATCH : (size_t)n;
    rc = tcp_recv_all(c->fd, w->scratch, k, frame_deadline(w), w->sv->stop);
    n -= k;
  }
  return rc;
}

static void log_refusal(sv_worker *w, sv_conn *c, const tcpw_hdr *h, int rc) {
  tcp_ctx *ctx = w->sv->ctx;
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

static int serve_read(sv_worker *w, sv_conn *c, const tcpw_hdr *req) {
  tcp_buf *b = NULL;
  tcpw_hdr resp = {.type = TCPW_READ_RESP, .seq = req->seq, .len = req->len};
  int rc = tcp_reg_acquire(&w->sv->ctx->reg, req->buf_id, req->secret, req->addr,
                           req->len, &b);
  if (rc) {
    log_refusal(w, c, req, rc);
    resp.status = rc;
    out_push(w, &resp, NULL, 0, NULL);
    return 0;
  }
  /* The pin holds until the response is sent (flush). */
  out_push(w, &resp, (const void *)(uintptr_t)req->addr, (size_t)req->len, b);
  return 0;
}

static int serve_write(sv_worker *w, sv_conn *c, const tcpw_hdr *req) {
  tcp_buf *b = NULL;
  tcpw_hdr resp = {.type = TCPW_WRITE_RESP, .seq = req->seq, .len = req->len};
  int rc = tcp_reg_acquire(&w->sv->ctx->reg, req->buf_id, req->secret, req->addr,
                           req->len, &b);
  if (rc)
    log_refusal(w, c, req, rc);
  /* A refused payload is drained, never stored in the target's memory. */
  int io = take_payload(w, c, rc ? NULL : (uint8_t *)(uintptr_t)req->addr, req->len);
  if (b)
    tcp_reg_release(&w->sv->ctx->reg, b);
  if (io)
    return io;
  resp.status = rc;
  out_push(w, &resp, NULL, 0, NULL);
  return 0;
}

static int serve_notify(sv_worker *w, sv_conn *c, const tcpw_hdr *h) {
  tcp_ctx *ctx = w->sv->ctx;
  uint8_t msg[TCPW_MAX_NOTIFY];
  int rc = take_payload(w, c, msg, h->len);
  if (rc)
    return rc;
  /* Frames before it on this connection have been served: the data the
   * initiator saw complete is in memory before the message is delivered. */
  ctx->host->notify_recv(ctx->host->host, c->peer, msg, (size_t)h->len);
  return 0;
}

/* One turn of connection c.  0 (keep it) or MC_E* (close it). */
static int serve_turn(sv_worker *w, sv_conn *c) {
  uint32_t frames = 0;
  uint64_t bytes = 0;
  int rc = 0;
  c->last_ms = tcp_now_ms();
  while (!rc && frames < SV_TURN_FRAMES && bytes < SV_TURN_BYTES) {
    if (c->in_len < TCPW_HDR_SIZE) {
      ssize_t k = recv(c->fd, c->in + c->in_len, SV_IN_CAP - c->in_len, MSG_DONTWAIT);
      if (k > 0) {
        c->in_len += (size_t)k;
        continue;
      }
      if (k < 0 && errno == EINTR)
        continue;
      if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        rc = MC_EPEER;
        break;
      }
      if (c->in_len == 0)
        break; /* between frames: nothing more now */
      /* The rest of a header is on its way: answer what we have first. */
      rc = flush(w, c);
      if (!rc)
        rc = tcp_recv_all(c->fd, c->in + c->in_len, TCPW_HDR_SIZE - c->in_len,
                          frame_deadline(w), w->sv->stop);
      if (!rc)
        c->in_len = TCPW_HDR_SIZE;
      continue;
    }
    tcpw_hdr h;
    if (tcpw_hdr_decode(c->in, TCPW_HDR_SIZE, &h)) {
      rc = MC_EPROTO;
      break;
    }
    consume(c, TCPW_HDR_SIZE);
    frames++;
    switch (h.type) {
    case TCPW_READ:
      rc = serve_read(w, c, &h);
      bytes += h.len;
      break;
    case TCPW_WRITE:
      rc = serve_write(w, c, &h);
      bytes += h.len;
      break;
    case TCPW_NOTIFY:
      rc = serve_notify(w, c, &h);
      break;
    default:
      rc = MC_EPROTO;
    }
    if (!rc && w->out.n == SV_OUT_MAX)
      rc = flush(w, c);
  }
  if (!rc)
    rc = flush(w, c);
  else
    out_reset(w);
  if (rc == MC_EPROTO)
    TCP_LOG(w->sv->ctx, MC_LOG_WARN, "protocol error from peer '%s' (%s), closing",
            c->peer, c->addr);
  return rc;
}

static void conn_close(sv_worker *w, sv_conn *c, const char *why) {
  if (c->ready) /* an event may close it while it waits on the ready list */
    for (sv_conn **p = &w->ready; *p; p = &(*p)->rnext)
      if (*p == c) {
        *p = c->rnext;
        break;
      }
  epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  atomic_fetch_sub(&w->sv->count, 1);
  if (why)
    TCP_LOG(w->sv->ctx, MC_LOG_DEBUG, "connection from peer '%s' (%s) closed: %s",
            c->peer, c->addr, why);
  free(c);
}

/* Serves c; keeps it on the ready list while complete frames remain. */
static void run_conn(sv_worker *w, sv_conn *c) {
  int rc = serve_turn(w, c);
  if (rc) {
    conn_close(w, c, rc == MC_EPEER ? "peer closed" : rc == MC_ECANCELED ? NULL
                     : rc == MC_ETIMEDOUT ? "stalled in a frame" : "error");
    return;
  }
  if (c->in_len >= TCPW_HDR_SIZE && !c->ready) {
    c->ready = 1;
    c->rnext = w->ready;
    w->ready = c;
  }
}

static void adopt_incoming(sv_worker *w) {
  uint64_t v;
  while (read(w->evfd, &v, sizeof v) > 0) {
  }
  pthread_mutex_lock(&w->lock);
  sv_conn *list = w->incoming;
  w->incoming = NULL;
  pthread_mutex_unlock(&w->lock);
  while (list) {
    sv_conn *c = list;
    list = c->next;
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns)
      w->conns->prev = c;
    w->conns = c;
    c->last_ms = tcp_now_ms();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev))
      conn_close(w, c, "epoll_ctl failed");
  }
}

static void idle_scan(sv_worker *w, int64_t now) {
  int idle = w->sv->ctx->cfg.idle_timeout_ms;
  if (idle <= 0)
    return;
  sv_conn *c = w->conns;
  while (c) {
    sv_conn *next = c->next;
    if (!c->ready && now - c->last_ms >= idle) {
      TCP_LOG(w->sv->ctx, MC_LOG_INFO,
              "closing connection from peer '%s' (%s): idle for %d ms (idle_timeout_ms)",
              c->peer, c->addr, (int)(now - c->last_ms));
      conn_close(w, c, NULL);
    }
    c = next;
  }
}

static void *worker_main(void *arg) {
  sv_worker *w = arg;
  struct epoll_event ev[64];
  /* The idle limit is kept to a quarter of itself (50 ms .. 1 s). */
  int idle = w->sv->ctx->cfg.idle_timeout_ms;
  int scan = idle > 0 && idle / 4 < SV_SCAN_MS ? (idle / 4 > 50 ? idle / 4 : 50) : SV_SCAN_MS;
  int64_t next_scan = tcp_now_ms() + scan;
  while (!atomic_load(w->sv->stop)) {
    int64_t left = next_scan - tcp_now_ms();
    int n = epoll_wait(w->ep, ev, 64, w->ready ? 0 : left > 0 ? (int)left : 0);
    /* Each connection appears at most once per batch, and only its own
     * turn closes it, so no pointer here is stale. */
    for (int i = 0; i < n; i++) {
      if (ev[i].data.u64 == SV_WAKE)
        adopt_incoming(w);
      else
        run_conn(w, ev[i].data.ptr);
    }
    sv_conn *r = w->ready;
    w->ready = NULL;
    while (r && !atomic_load(w->sv->stop)) {
      sv_conn *c = r;
      r = r->rnext;
      c->ready = 0;
      run_conn(w, c);
    }
    while (r) { /* stopping: forget the rest */
      r->ready = 0;
      r = r->rnext;
    }
    int64_t now = tcp_now_ms();
    if (now >= next_scan) {
      idle_scan(w, now);
      next_scan = now + scan;
    }
  }
  return NULL;
}

int tcp_serve_add(tcp_serve *sv, int fd, const char *peer, const char *addr) {
  if (atomic_fetch_add(&sv->count, 1) >= sv->ctx->cfg.max_connections) {
    atomic_fetch_sub(&sv->count, 1);
    return MC_EBUSY;
  }
  sv_conn *c = calloc(1, sizeof *c);
  if (!c) {
    atomic_fetch_sub(&sv->count, 1);
    return MC_ENOMEM;
  }
  c->fd = fd;
  snprintf(c->peer, sizeof c->peer, "%s", peer);
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  sv_worker *w = &sv->w[atomic_fetch_add(&sv->rr, 1) % sv->nw];
  pthread_mutex_lock(&w->lock);
  c->next = w->incoming;
  w->incoming = c;
  pthread_mutex_unlock(&w->lock);
  uint64_t one = 1;
  if (write(w->evfd, &one, sizeof one) < 0) {
    /* eventfd full cannot happen with one writer per add; the worker's
     * periodic wake-up would adopt it anyway. */
  }
  return 0;
}

unsigned tcp_serve_count(const tcp_serve *sv) { return atomic_load(&sv->count); }

static void worker_free(sv_worker *w) {
  while (w->conns)
    conn_close(w, w->conns, NULL);
  while (w->incoming) {
    sv_conn *c = w->incoming;
    w->incoming = c->next;
    close(c->fd);
    free(c);
  }
  if (w->ep >= 0)
    close(w->ep);
  if (w->evfd >= 0)
    close(w->evfd);
  pthread_mutex_destroy(&w->lock);
  free(w->scratch);
}

void tcp_serve_stop(tcp_serve *sv) {
  if (!sv)
    return;
  uint64_t one = 1;
  for (uint32_t i = 0; i < sv->nw; i++)
    if (sv->w[i].started && write(sv->w[i].evfd, &one, sizeof one) < 0) {
      /* the worker notices the stop flag within SV_SCAN_MS anyway */
    }
  for (uint32_t i = 0; i < sv->nw; i++) {
    if (sv->w[i].started)
      pthread_join(sv->w[i].th, NULL);
    worker_free(&sv->w[i]);
  }
  free(sv->w);
  free(sv);
}

int tcp_serve_start(tcp_ctx *ctx, const atomic_int *stop, tcp_serve **out) {
  tcp_serve *sv = calloc(1, sizeof *sv);
  if (!sv)
    return MC_ENOMEM;
  sv->ctx = ctx;
  sv->stop = stop;
  sv->nw = ctx->cfg.io_threads ? ctx->cfg.io_threads : 1;
  sv->w = calloc(sv->nw, sizeof *sv->w);
  if (!sv->w) {
    free(sv);
    return MC_ENOMEM;
  }
  int rc = 0;
  for (uint32_t i = 0; i < sv->nw; i++) {
    sv_worker *w = &sv->w[i];
    w->sv = sv;
    pthread_mutex_init(&w->lock, NULL);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SV_WAKE};
    if (w->ep < 0 || w->evfd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) ||
        pthread_create(&w->th, NULL, worker_main, w)) {
      rc = MC_ENOMEM;
      break;
    }
    w->started = 1;
  }
  if (rc)
    TCP_LOG(ctx, MC_LOG_ERROR, "cannot start %u io threads", sv->nw);
  *out = sv; /* also on failure: the caller stops what did start */
  return rc;
}
