/* tcp_serve.c - workers serving authenticated connections (tcp_serve.h).
 *
 * Each connection belongs to one worker for its whole life, so its state is
 * touched by that thread only; the one shared piece is the hand-over list
 * (incoming, under the worker's lock, announced through an eventfd).  The
 * frames themselves are tcp_frames.c's: a turn never waits, so a worker
 * serves every connection it has in turn, whatever one peer does.  A
 * connection waits for EPOLLIN, or for EPOLLOUT instead while responses it
 * asked for are unsent (so a peer that does not read stops being read).
 * The scan closes connections idle for idle_timeout_ms and connections
 * stuck inside a frame (no progress) for timeout_ms. */
#include "tcp_serve.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_frames.h"
#include "tcp_io.h"

#define SV_WAKE UINT64_MAX           /* epoll tag of the worker's eventfd */
#define SV_SCAN_MS 1000              /* idle and stall scan period, at most */

typedef struct sv_worker {
  tcp_serve *sv;
  pthread_t th;
  int started;
  int ep, evfd;
  pthread_mutex_t lock; /* incoming */
  sv_conn *incoming;
  sv_conn *conns;       /* this worker's, doubly linked */
  sv_conn *ready;       /* served but with frames left in their buffer */
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

static void conn_close(sv_worker *w, sv_conn *c, const char *why) {
  if (c->ready) /* an event may close it while it waits on the ready list */
    for (sv_conn **p = &w->ready; *p; p = &(*p)->rnext)
      if (*p == c) {
        *p = c->rnext;
        break;
      }
  sv_release(w->sv->ctx, c);
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
  int again = 0;
  int rc = sv_turn(w->sv->ctx, c, w->scratch, &again);
  if (rc) {
    conn_close(w, c, rc == MC_EPEER ? "peer closed" : rc == MC_EPROTO ? "protocol error"
                                                                      : "error");
    return;
  }
  int want_out = c->on > 0;
  if (want_out != c->want_out) {
    struct epoll_event ev = {.events = (want_out ? EPOLLOUT : EPOLLIN) | EPOLLRDHUP,
                             .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev)) {
      conn_close(w, c, "epoll_ctl failed");
      return;
    }
    c->want_out = want_out;
  }
  if (again && !c->ready) {
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

static void scan(sv_worker *w, int64_t now) {
  const tcp_cfg *cfg = &w->sv->ctx->cfg;
  sv_conn *c = w->conns;
  while (c) {
    sv_conn *next = c->next;
    int64_t quiet = now - c->last_ms;
    if (c->ready) {
      /* being served */
    } else if (sv_busy(c) && quiet >= cfg->timeout_ms) {
      TCP_LOG(w->sv->ctx, MC_LOG_WARN,
              "closing connection from peer '%s' (%s): no progress inside a frame for "
              "%d ms (timeout_ms)", c->peer, c->addr, (int)quiet);
      conn_close(w, c, NULL);
    } else if (!sv_busy(c) && cfg->idle_timeout_ms > 0 && quiet >= cfg->idle_timeout_ms) {
      TCP_LOG(w->sv->ctx, MC_LOG_INFO,
              "closing connection from peer '%s' (%s): idle for %d ms (idle_timeout_ms)",
              c->peer, c->addr, (int)quiet);
      conn_close(w, c, NULL);
    }
    c = next;
  }
}

static void *worker_main(void *arg) {
  sv_worker *w = arg;
  struct epoll_event ev[64];
  /* Limits are kept to a quarter of themselves (the scan runs every
   * 50 ms .. 1 s). */
  const tcp_cfg *cfg = &w->sv->ctx->cfg;
  int period = cfg->timeout_ms / 4;
  if (cfg->idle_timeout_ms > 0 && cfg->idle_timeout_ms / 4 < period)
    period = cfg->idle_timeout_ms / 4;
  period = period < 50 ? 50 : period > SV_SCAN_MS ? SV_SCAN_MS : period;
  int64_t next_scan = tcp_now_ms() + period;
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
      scan(w, now);
      next_scan = now + period;
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

static void worker_free(sv_worker *w) {
  w->ready = NULL;
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
    w->scratch = malloc(SV_SCRATCH);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SV_WAKE};
    if (w->ep < 0 || w->evfd < 0 || !w->scratch || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) ||
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
