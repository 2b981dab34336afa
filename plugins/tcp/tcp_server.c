/* tcp_server.c - the target side's listener and its pool of connections
 * that have not completed HELLO (tcp_server.h).
 *
 * One thread runs an epoll set with the listener and every unauthenticated
 * connection, reading each HELLO as its bytes come (a sender of one byte a
 * second costs a slot, never a thread).  The pool is small and bounded
 * (hello_pool), each entry has a short deadline (hello_timeout_ms), and one
 * source address holds at most hello_per_source entries.  A newcomer over
 * either limit evicts the oldest entry (of its address, else of the pool)
 * rather than being refused: a flood cannot keep a legitimate peer, whose
 * HELLO follows its connect at once, from getting in.  A valid HELLO (which
 * carries the endpoint secret from our descriptor) moves the connection to
 * the authenticated workers (tcp_serve.c), which have their own limit, so
 * nothing unauthenticated ever holds a slot or a thread of theirs.  Every
 * warning a stranger can provoke goes through one rate limiter (one line a
 * second, with the count of the rest). */
#include "tcp_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_io.h"
#include "tcp_serve.h"
#include "tcp_wire.h"

#define HS_LISTEN 0ull            /* epoll tags; slots are index + 1 */
#define HS_WAKE UINT64_MAX
#define HS_ACCEPT_BATCH 64        /* accepts per wake-up */
#define HS_PAUSE_MS 100           /* listener rest after EMFILE and friends */
#define HS_TICK_MS 200

typedef struct hs_slot {
  int fd;          /* -1: free */
  uint32_t gen;    /* bumped on reuse: stale epoll events are ignored */
  uint64_t order;  /* arrival order: the smallest is the oldest */
  int64_t deadline;
  size_t got, need;
  char ip[INET6_ADDRSTRLEN];
  char addr[INET6_ADDRSTRLEN + 8];
  uint8_t buf[TCPW_HDR_SIZE + TCPW_MAX_NAME];
} hs_slot;

struct tcp_server {
  tcp_ctx *ctx;
  int lfd, ep, evfd;
  pthread_t th;
  int has_th;
  atomic_int stop;
  tcp_serve *sv;
  hs_slot *slots;
  uint32_t nslots, used;
  uint64_t order;
  int64_t paused_until; /* listener out of the epoll set until then; 0 = in */
};

static void conn_warn(tcp_server *s, const char *addr, const char *what) {
  tcp_ctx *ctx = s->ctx;
  unsigned long supp = 0;
  if (tcp_ratelim_allow(&ctx->conn_warn, &supp))
    ctx->host->log(ctx->host->host, MC_LOG_WARN,
                   "refusing connection from %s: %s (%lu similar warnings suppressed)",
                   addr, what, supp);
}

static void slot_drop(tcp_server *s, hs_slot *sl, const char *why) {
  if (why)
    conn_warn(s, sl->addr, why);
  close(sl->fd);
  sl->fd = -1;
  sl->gen++;
  s->used--;
}

/* The HELLO is complete in sl->buf: check it, answer, hand over. */
static void hello_done(tcp_server *s, hs_slot *sl) {
  tcp_ctx *ctx = s->ctx;
  tcpw_hdr h;
  tcpw_hdr_decode(sl->buf, TCPW_HDR_SIZE, &h); /* checked when the header came */
  char peer[TCPW_MAX_NAME + 1];
  if (tcpw_name_check(sl->buf + TCPW_HDR_SIZE, (size_t)h.len)) {
    slot_drop(s, sl, "malformed HELLO");
    return;
  }
  /* Only a peer that read our descriptor knows this: the connection, and
   * every NOTIFY on it, is attributable to a holder of the metadata. */
  if (!tcp_secret_equal(h.secret, ctx->ep_secret)) {
    slot_drop(s, sl, "HELLO without this endpoint's secret (the peer has not read "
                     "our descriptor)");
    return;
  }
  memcpy(peer, sl->buf + TCPW_HDR_SIZE, (size_t)h.len);
  peer[h.len] = '\0';
  uint8_t ack[TCPW_HDR_SIZE + TCPW_MAX_NAME];
  tcpw_hdr a = {.type = TCPW_HELLO_ACK, .len = strlen(ctx->segment)};
  tcpw_hdr_encode(&a, ack);
  memcpy(ack + TCPW_HDR_SIZE, ctx->segment, (size_t)a.len);
  size_t alen = TCPW_HDR_SIZE + (size_t)a.len;
  /* A fresh socket's send buffer always takes these few bytes. */
  if (send(sl->fd, ack, alen, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)alen) {
    slot_drop(s, sl, "cannot send HELLO_ACK");
    return;
  }
  tcp_sock_setup(sl->fd, &ctx->cfg);
  /* Out of this thread's (level-triggered) set before a worker owns it:
   * left in, every frame the peer sends would wake this thread too, and
   * it would spin on events it ignores for the connection's whole life. */
  epoll_ctl(s->ep, EPOLL_CTL_DEL, sl->fd, NULL);
  int rc = tcp_serve_add(s->sv, sl->fd, peer, sl->addr);
  if (rc) {
    char why[128];
    snprintf(why, sizeof why, "peer '%.64s': %u connections served (max_connections)",
             peer, ctx->cfg.max_connections);
    slot_drop(s, sl, rc == MC_EBUSY ? why : "out of memory");
    return;
  }
  TCP_LOG(ctx, MC_LOG_DEBUG, "peer '%s' connected from %s", peer, sl->addr);
  sl->fd = -1; /* now the worker's */
  sl->gen++;
  s->used--;
}

/* Reads what has arrived of sl's HELLO. */
static void hello_read(tcp_server *s, hs_slot *sl) {
  for (;;) {
    ssize_t k = recv(sl->fd, sl->buf + sl->got, sl->need - sl->got, MSG_DONTWAIT);
    if (k == 0) {
      slot_drop(s, sl, NULL); /* closed before HELLO: nothing to report */
      return;
    }
    if (k < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        slot_drop(s, sl, NULL);
      return;
    }
    sl->got += (size_t)k;
    if (sl->got < sl->need)
      continue;
    if (sl->need == TCPW_HDR_SIZE) {
      tcpw_hdr h;
      if (tcpw_hdr_decode(sl->buf, TCPW_HDR_SIZE, &h) || h.type != TCPW_HELLO) {
        slot_drop(s, sl, "not a HELLO (malformed, or a frame before HELLO)");
        return;
      }
      sl->need += (size_t)h.len; /* 1..TCPW_MAX_NAME, checked by decode */
      continue;
    }
    hello_done(s, sl);
    return;
  }
}

static hs_slot *oldest(tcp_server *s, const char *ip, uint32_t *count) {
  hs_slot *best = NULL;
  *count = 0;
  for (uint32_t i = 0; i < s->nslots; i++) {
    hs_slot *sl = &s->slots[i];
    if (sl->fd < 0 || (ip && strcmp(sl->ip, ip)))
      continue;
    (*count)++;
    if (!best || sl->order < best->order)
      best = sl;
  }
  return best;
}

static void admit(tcp_server *s, int fd) {
  tcp_ctx *ctx = s->ctx;
  hs_slot tmp = {.fd = fd};
  tcp_format_peer(fd, tmp.ip, sizeof tmp.ip, tmp.addr, sizeof tmp.addr);
  uint32_t n = 0;
  hs_slot *old = oldest(s, tmp.ip, &n);
  if (n >= ctx->cfg.hello_per_source) {
    slot_drop(s, old, "evicted: the oldest of the connections awaiting HELLO from "
                      "this address (hello_per_source)");
  } else if (s->used >= s->nslots) {
    old = oldest(s, NULL, &n);
    slot_drop(s, old, "evicted: the oldest of the connections awaiting HELLO "
                      "(hello_pool)");
  }
  hs_slot *sl = NULL;
  for (uint32_t i = 0; i < s->nslots && !sl; i++)
    if (s->slots[i].fd < 0)
      sl = &s->slots[i];
  uint32_t gen = sl->gen; /* a free slot exists: one was freed above if needed */
  memcpy(sl, &tmp, offsetof(hs_slot, buf));
  sl->gen = gen;
  sl->order = ++s->order;
  sl->deadline = tcp_now_ms() + ctx->cfg.hello_timeout_ms;
  sl->got = 0;
  sl->need = TCPW_HDR_SIZE;
  s->used++;
  hello_read(s, sl); /* a peer's HELLO usually arrived with the connect */
  if (sl->fd != fd || sl->gen != gen)
    return; /* done with it: handed over or dropped */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                           .data.u64 = ((uint64_t)gen << 32) | (uint64_t)(sl - s->slots + 1)};
  if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev))
    slot_drop(s, sl, "epoll_ctl failed");
}

static void listener_arm(tcp_server *s, int on) {
  struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = HS_LISTEN};
  epoll_ctl(s->ep, EPOLL_CTL_MOD, s->lfd, &ev);
}

static void accept_some(tcp_server *s) {
  for (int i = 0; i < HS_ACCEPT_BATCH; i++) {
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      admit(s, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      /* The pending connection stays readable: rest instead of spinning. */
      conn_warn(s, "(pending)", strerror(errno));
      listener_arm(s, 0);
      s->paused_until = tcp_now_ms() + HS_PAUSE_MS;
    }
    return;
  }
}

static void expire(tcp_server *s, int64_t now) {
  for (uint32_t i = 0; s->used && i < s->nslots; i++) {
    hs_slot *sl = &s->slots[i];
    if (sl->fd >= 0 && now >= sl->deadline)
      slot_drop(s, sl, "no valid HELLO within hello_timeout_ms");
  }
}

static void *hello_main(void *arg) {
  tcp_server *s = arg;
  struct epoll_event ev[64];
  while (!atomic_load(&s->stop)) {
    int64_t now = tcp_now_ms(), next = now + HS_TICK_MS;
    for (uint32_t i = 0; s->used && i < s->nslots; i++)
      if (s->slots[i].fd >= 0 && s->slots[i].deadline < next)
        next = s->slots[i].deadline;
    if (s->paused_until && s->paused_until < next)
      next = s->paused_until;
    int n = epoll_wait(s->ep, ev, 64, next > now ? (int)(next - now) : 0);
    for (int i = 0; i < n; i++) {
      uint64_t tag = ev[i].data.u64;
      if (tag == HS_WAKE)
        continue;
      if (tag == HS_LISTEN) {
        accept_some(s);
        continue;
      }
      uint32_t idx = (uint32_t)tag - 1, gen = (uint32_t)(tag >> 32);
      hs_slot *sl = &s->slots[idx];
      if (sl->fd >= 0 && sl->gen == gen)
        hello_read(s, sl);
    }
    now = tcp_now_ms();
    expire(s, now);
    if (s->paused_until && now >= s->paused_until) {
      s->paused_until = 0;
      listener_arm(s, 1);
    }
  }
  return NULL;
}

void tcp_server_stop(tcp_server *s) {
  if (!s)
    return;
  atomic_store(&s->stop, 1);
  uint64_t one = 1;
  if (s->evfd >= 0 && write(s->evfd, &one, sizeof one) < 0) {
    /* the thread notices the flag within HS_TICK_MS anyway */
  }
  if (s->has_th)
    pthread_join(s->th, NULL);
  tcp_serve_stop(s->sv);
  for (uint32_t i = 0; s->slots && i < s->nslots; i++)
    if (s->slots[i].fd >= 0)
      close(s->slots[i].fd);
  free(s->slots);
  if (s->lfd >= 0)
    close(s->lfd);
  if (s->ep >= 0)
    close(s->ep);
  if (s->evfd >= 0)
    close(s->evfd);
  free(s);
}

int tcp_server_start(tcp_ctx *ctx, const char *host, tcp_server **out) {
  tcp_server *s = calloc(1, sizeof *s);
  if (!s)
    return MC_ENOMEM;
  s->ctx = ctx;
  s->ep = s->evfd = -1;
  s->lfd = tcp_listen(host, ctx->cfg.port, &ctx->port);
  if (s->lfd < 0) {
    int rc = s->lfd;
    TCP_LOG(ctx, MC_LOG_ERROR, "cannot listen on %s port %u: %s", host,
            (unsigned)ctx->cfg.port, rc == MC_EINVAL ? "bad address" : "bind failed");
    free(s);
    return rc;
  }
  s->nslots = ctx->cfg.hello_pool ? ctx->cfg.hello_pool : 1;
  s->slots = calloc(s->nslots, sizeof *s->slots);
  int rc = s->slots ? 0 : MC_ENOMEM;
  for (uint32_t i = 0; !rc && i < s->nslots; i++)
    s->slots[i].fd = -1;
  if (!rc)
    rc = tcp_serve_start(ctx, &s->stop, &s->sv);
  if (!rc) {
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event l = {.events = EPOLLIN, .data.u64 = HS_LISTEN};
    struct epoll_event w = {.events = EPOLLIN, .data.u64 = HS_WAKE};
    if (s->ep < 0 || s->evfd < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &l) ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->evfd, &w))
      rc = MC_EIO;
  }
  if (!rc)
    s->has_th = pthread_create(&s->th, NULL, hello_main, s) == 0;
  if (!rc && !s->has_th)
    rc = MC_ENOMEM;
  if (rc) {
    tcp_server_stop(s);
    return rc;
  }
  *out = s;
  return 0;
}
