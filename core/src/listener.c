/* The engine's handshake listener (listener.h): one epoll thread for the
 * network, a pending pool for unauthenticated connections, a served pool
 * for authenticated ones, a few workers for CTRL handlers (started with the
 * first CTRL request). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "descriptor.h"
#include "mooncake/errors.h"
#include "mooncake/transport.h"
#include "net.h"
#include "p2p/p2p_wire.h" /* the handshake framing (core/metadata/p2p) */
#include "token.h"

#define COMP "listener"
#define DEF_PENDING_MAX 32u
#define DEF_PER_SOURCE 8u
#define DEF_PENDING_MS 1000u
#define DEF_SERVED_MAX 256u
#define DEF_WORKERS 2u
#define DEF_TIMEOUT_MS 5000u
#define MAX_TIMEOUT_MS 3600000u
#define MIN_DEADLINE_MS 100u
#define ACCEPT_PAUSE_MS 100u
#define WARN_EVERY_MS 5000u /* at most one summary of refusals per 5 s */
#define EV_STOP UINT64_MAX
#define EV_WAKE (UINT64_MAX - 1)
#define EV_LISTEN (UINT64_MAX - 2)

_Static_assert(sizeof(((mc_p2p_ctrl *)0)->token) == MC_TOKEN_MAX + 1,
               "p2p_wire.h's token buffer must hold a cluster token");

typedef struct snap {
  int refs; /* under l->mu */
  char name[MC_NAME_MAX];
  size_t len;
  char *json;
} snap;

enum { C_FREE = 0, C_READ, C_WORK, C_WRITE };

typedef struct lconn {
  int fd;
  int state;
  int authed;         /* in the served pool */
  uint32_t gen;       /* tells stale epoll events apart */
  uint64_t born;      /* accept time (eviction picks the oldest) */
  uint64_t deadline;
  uint8_t src[17];    /* family byte + address: the per-source key */
  char peer[64];      /* for logs */
  uint8_t *buf;       /* request, MC_P2P_CTRL_REQ_MAX bytes */
  size_t got;
  uint8_t *out;       /* reply head (+ CTRL reply), malloc'd */
  size_t out_len, sent;
  snap *body;         /* GET reply's JSON, sent after out */
  mc_p2p_ctrl ctrl;   /* C_WORK: the parsed request (req points into buf) */
  struct lconn *next; /* work / done queues */
} lconn;

struct mc_listener {
  const mc_logger *log;
  char token[MC_TOKEN_MAX + 1];
  uint32_t timeout_ms, pending_ms, pending_max, per_source, served_max;
  int lfd, ep, stop_fd, wake_fd;
  uint16_t port;
  char local[MC_NAME_MAX];
  pthread_t thread;
  pthread_mutex_t mu; /* snapshot, queues */
  pthread_cond_t cv;  /* work queue */
  snap *snap;
  lconn *work_head, *work_tail, *done;
  int stopping; /* under mu: workers exit */
  pthread_t *workers;
  uint32_t nworkers; /* the most */
  uint32_t started;  /* loop thread (and close, after it): workers running */
  pthread_rwlock_t ctrl_rw; /* handler calls hold it shared */
  mc_listener_ctrl_fn ctrl_fn;
  void *ctrl_arg;
  char ctrl_name[MC_NAME_MAX];
  /* loop thread only */
  lconn *conns;
  uint32_t nconns, pending, served;
  uint64_t accept_pause_until;
  uint64_t warned_at, drop_source, drop_full, drop_expired, drop_unauth;
  char unauth_from[64]; /* the last refused client, for the warning */
  /* counters */
  _Atomic uint64_t st_accepted, st_evicted, st_expired, st_unauth, st_busy,
      st_served;
  _Atomic uint32_t st_pending, st_served_now;
};

/* ---- published descriptor ---- */

static void snap_unref(mc_listener *l, snap *s) {
  if (!s)
    return;
  pthread_mutex_lock(&l->mu);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&l->mu);
  if (last) {
    free(s->json);
    free(s);
  }
}

int mc_listener_publish(mc_listener *l, const char *segment, const char *json,
                        size_t len) {
  if (!l || !segment || !mc_p2p_name_ok(segment, strnlen(segment, MC_NAME_MAX)) ||
      !json || len == 0 || len > MC_DESC_JSON_MAX)
    return MC_EINVAL;
  snap *s = calloc(1, sizeof *s);
  if (!s || !(s->json = malloc(len))) {
    free(s);
    return MC_ENOMEM;
  }
  memcpy(s->json, json, len);
  s->len = len;
  s->refs = 1;
  snprintf(s->name, sizeof s->name, "%s", segment);
  pthread_mutex_lock(&l->mu);
  snap *old = l->snap;
  l->snap = s;
  pthread_mutex_unlock(&l->mu);
  snap_unref(l, old);
  return 0;
}

int mc_listener_unpublish(mc_listener *l, const char *segment) {
  if (!l || !segment)
    return MC_EINVAL;
  pthread_mutex_lock(&l->mu);
  snap *s = l->snap;
  if (!s || strcmp(s->name, segment) != 0) {
    pthread_mutex_unlock(&l->mu);
    return MC_ENOENT;
  }
  l->snap = NULL;
  pthread_mutex_unlock(&l->mu);
  snap_unref(l, s);
  return 0;
}

/* Whether a request for `name` addresses this listener: our address, or
 * any host with our port (the client reached us through that address). */
static int names_us(const mc_listener *l, const char *name) {
  if (strcmp(name, l->local) == 0)
    return 1;
  char host[MC_NAME_MAX];
  uint16_t port;
  return mc_net_split_hostport(name, host, sizeof host, &port) == 0 &&
         port == l->port;
}

static snap *snap_for(mc_listener *l, const char *name) {
  int ours = names_us(l, name);
  pthread_mutex_lock(&l->mu);
  snap *s = l->snap;
  if (s && (ours || strcmp(s->name, name) == 0))
    s->refs++;
  else
    s = NULL;
  pthread_mutex_unlock(&l->mu);
  return s;
}

int mc_listener_own(mc_listener *l, const char *segment, char **json,
                    size_t *len) {
  if (!l || !segment || !json || !len)
    return MC_EINVAL;
  int rc = MC_ENOENT;
  pthread_mutex_lock(&l->mu);
  snap *s = l->snap;
  if (s && (strcmp(segment, s->name) == 0 || strcmp(segment, l->local) == 0)) {
    char *p = malloc(s->len + 1);
    rc = p ? 0 : MC_ENOMEM;
    if (p) {
      memcpy(p, s->json, s->len);
      p[s->len] = '\0';
      *json = p;
      *len = s->len;
    }
  }
  pthread_mutex_unlock(&l->mu);
  return rc;
}

/* ---- connections ---- */

static uint64_t ev_key(const mc_listener *l, const lconn *k) {
  return (uint64_t)k->gen << 32 | (uint64_t)(k - l->conns);
}

static void conn_free(mc_listener *l, lconn *k, int abort) {
  if (abort) {
    /* Reset: an unsent reply is discarded at once instead of being kept
     * alive by the kernel. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(k->fd); /* also removes it from the epoll set */
  k->fd = -1;
  if (k->authed)
    l->served--;
  else
    l->pending--;
  k->state = C_FREE;
  k->authed = 0;
  free(k->buf);
  free(k->out);
  k->buf = k->out = NULL;
  snap_unref(l, k->body);
  k->body = NULL;
  atomic_store(&l->st_pending, l->pending);
  atomic_store(&l->st_served_now, l->served);
}

static void conn_write(mc_listener *l, lconn *k) {
  size_t body = k->body ? k->body->len : 0;
  struct iovec iov[2];
  int n = 0;
  if (k->sent < k->out_len)
    iov[n++] = (struct iovec){k->out + k->sent, k->out_len - k->sent};
  size_t boff = k->sent > k->out_len ? k->sent - k->out_len : 0;
  if (body > boff)
    iov[n++] = (struct iovec){k->body->json + boff, body - boff};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
  ssize_t w = n ? sendmsg(k->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      conn_free(l, k, 1);
    return;
  }
  k->sent += (size_t)w;
  if (k->sent == k->out_len + body) {
    atomic_fetch_add(&l->st_served, 1);
    conn_free(l, k, 0); /* one request per connection */
  }
}

/* Switches k to writing `out` (taken over) and tries at once: the socket is
 * usually writable. */
static void conn_send(mc_listener *l, lconn *k, uint8_t *out, size_t len) {
  free(k->out);
  k->out = out;
  k->out_len = len;
  k->sent = 0;
  k->state = C_WRITE;
  struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = ev_key(l, k)};
  if (epoll_ctl(l->ep, EPOLL_CTL_MOD, k->fd, &ev) != 0 &&
      epoll_ctl(l->ep, EPOLL_CTL_ADD, k->fd, &ev) != 0) {
    conn_free(l, k, 1);
    return;
  }
  conn_write(l, k);
}

static void conn_status(mc_listener *l, lconn *k, uint16_t status,
                        const char *reason) {
  uint8_t *out = malloc(MC_P2P_HDR_LEN + MC_P2P_REASON_MAX);
  if (!out) {
    conn_free(l, k, 1);
    return;
  }
  size_t n = mc_p2p_build_reply_head(out, MC_P2P_HDR_LEN + MC_P2P_REASON_MAX,
                                     status, reason, 0);
  conn_send(l, k, out, n);
}

static void conn_ctrl_reply(mc_listener *l, lconn *k, int32_t rc) {
  uint8_t *out = malloc(MC_P2P_HDR_LEN + 4);
  if (!out) {
    conn_free(l, k, 1);
    return;
  }
  mc_p2p_build_ctrl_reply_head(out, rc, 0);
  conn_send(l, k, out, MC_P2P_HDR_LEN + 4);
}

static void serve_get(mc_listener *l, lconn *k, const char *name) {
  snap *s = snap_for(l, name);
  if (!s) {
    char reason[MC_P2P_REASON_MAX];
    snprintf(reason, sizeof reason, "segment '%.200s' is not served here", name);
    conn_status(l, k, MC_P2P_NOT_FOUND, reason);
    return;
  }
  uint8_t *out = malloc(MC_P2P_HDR_LEN + 2 + MC_NAME_MAX);
  size_t n = out ? mc_p2p_build_reply_head(out, MC_P2P_HDR_LEN + 2 + MC_NAME_MAX,
                                           MC_P2P_OK, s->name, s->len)
                 : 0;
  if (n == 0) {
    free(out);
    snap_unref(l, s);
    conn_free(l, k, 1);
    return;
  }
  k->body = s;
  conn_send(l, k, out, n);
}

static void *worker_main(void *arg);

/* Workers start with the first control request, so an engine whose
 * transports never use the channel keeps one listener thread.  0, or
 * MC_ENOMEM when not even one could start. */
static int start_workers(mc_listener *l) {
  while (l->started < l->nworkers &&
         pthread_create(&l->workers[l->started], NULL, worker_main, l) == 0)
    l->started++;
  return l->started ? 0 : MC_ENOMEM;
}

static void queue_work(mc_listener *l, lconn *k) {
  /* The worker owns k until it hands it back through the done list; the
   * fd leaves the epoll set meanwhile (a hang-up is seen when writing). */
  epoll_ctl(l->ep, EPOLL_CTL_DEL, k->fd, NULL);
  k->state = C_WORK;
  k->next = NULL;
  pthread_mutex_lock(&l->mu);
  if (l->work_tail)
    l->work_tail->next = k;
  else
    l->work_head = k;
  l->work_tail = k;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

static void serve_ctrl(mc_listener *l, lconn *k) {
  pthread_rwlock_rdlock(&l->ctrl_rw);
  int have = l->ctrl_fn != NULL;
  int ours = have && (strcmp(k->ctrl.to, l->ctrl_name) == 0 ||
                      names_us(l, k->ctrl.to));
  pthread_rwlock_unlock(&l->ctrl_rw);
  if (!have) {
    conn_ctrl_reply(l, k, MC_ENOTSUP);
  } else if (!ours) {
    char reason[MC_P2P_REASON_MAX];
    snprintf(reason, sizeof reason, "segment '%.200s' is not served here",
             k->ctrl.to);
    conn_status(l, k, MC_P2P_NOT_FOUND, reason);
  } else if (start_workers(l) != 0) {
    conn_ctrl_reply(l, k, MC_ENOMEM);
  } else {
    queue_work(l, k);
  }
}

/* Rate-limited summary of connections dropped without being served. */
static void warn_drops(mc_listener *l, uint64_t now) {
  uint64_t n = l->drop_source + l->drop_full + l->drop_expired;
  if ((n == 0 && l->drop_unauth == 0) || now - l->warned_at < WARN_EVERY_MS)
    return;
  if (l->drop_unauth)
    MC_WARN(l->log, COMP,
            "port %u: refused %llu request(s) for a wrong or missing cluster "
            "token (the last from %s)%s",
            (unsigned)l->port, (unsigned long long)l->drop_unauth,
            l->unauth_from, l->warned_at ? " since the last report" : "");
  l->drop_unauth = 0;
  if (n == 0) {
    l->warned_at = now;
    return;
  }
  MC_WARN(l->log, COMP,
          "port %u: dropped %llu unauthenticated connection(s)%s (%llu over "
          "the per-source limit of %u, %llu with the pool of %u full, %llu "
          "silent past %u ms)",
          (unsigned)l->port, (unsigned long long)n,
          l->warned_at ? " since the last report" : "",
          (unsigned long long)l->drop_source, l->per_source,
          (unsigned long long)l->drop_full, l->pending_max,
          (unsigned long long)l->drop_expired, l->pending_ms);
  l->warned_at = now;
  l->drop_source = l->drop_full = l->drop_expired = 0;
}

static void conn_read(mc_listener *l, lconn *k, uint64_t now) {
  ssize_t n = recv(k->fd, k->buf + k->got, MC_P2P_CTRL_REQ_MAX - k->got,
                   MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    conn_free(l, k, 1);
    return;
  }
  if (n < 0)
    return;
  k->got += (size_t)n;
  size_t need = 0;
  int ctrl = mc_p2p_peek_op(k->buf, k->got) == MC_P2P_OP_CTRL;
  char name[MC_NAME_MAX], token[MC_TOKEN_MAX + 1];
  int rc = ctrl ? mc_p2p_parse_ctrl(k->buf, k->got, &need, &k->ctrl)
                : mc_p2p_parse_request(k->buf, k->got, &need, name, sizeof name,
                                       token);
  if (rc == MC_EAGAIN)
    return;
  if (rc == MC_ENOTSUP) {
    conn_status(l, k, MC_P2P_BAD_VERSION, "unsupported protocol version");
    return;
  }
  if (rc) {
    MC_DEBUG(l->log, COMP, "malformed request from %s (%zu bytes)", k->peer,
             k->got);
    conn_status(l, k, MC_P2P_BAD_REQUEST, "malformed request");
    return;
  }
  const char *presented = ctrl ? k->ctrl.token : token;
  if (l->token[0] && !mc_token_equal(l->token, presented, strlen(presented))) {
    /* The same answer with no token and with a wrong one. */
    atomic_fetch_add(&l->st_unauth, 1);
    l->drop_unauth++;
    snprintf(l->unauth_from, sizeof l->unauth_from, "%s", k->peer);
    MC_DEBUG(l->log, COMP, "refused a request from %s: %s cluster token",
             k->peer, presented[0] ? "wrong" : "no");
    conn_status(l, k, MC_P2P_UNAUTHORIZED,
                "this engine answers only holders of its cluster token");
    return;
  }
  if (l->served >= l->served_max) {
    atomic_fetch_add(&l->st_busy, 1);
    conn_status(l, k, MC_P2P_BUSY, "too many requests in progress; retry");
    return;
  }
  /* Authenticated: out of the pending pool, into the served one. */
  l->pending--;
  l->served++;
  k->authed = 1;
  k->deadline = now + l->timeout_ms;
  atomic_store(&l->st_pending, l->pending);
  atomic_store(&l->st_served_now, l->served);
  if (ctrl)
    serve_ctrl(l, k);
  else
    serve_get(l, k, name);
}

/* Drops pending connection k for a newer one, telling it BUSY when the
 * socket takes it, so a legitimate client retries. */
static void evict(mc_listener *l, lconn *k) {
  uint8_t busy[MC_P2P_HDR_LEN];
  mc_p2p_put_hdr(busy, MC_P2P_OP_REPLY, MC_P2P_BUSY, 0);
  if (k->state == C_READ) {
    if (send(k->fd, busy, sizeof busy, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
      MC_DEBUG(l->log, COMP, "busy reply to %s failed", k->peer);
    /* Unread input would turn the close into a reset, which can discard
     * the answer on its way: read what is there (a request is small). */
    uint8_t junk[4096];
    for (int i = 0; i < 4; i++)
      if (recv(k->fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
        break;
  }
  atomic_fetch_add(&l->st_evicted, 1);
  conn_free(l, k, 0);
}

static void src_key(const struct sockaddr_storage *sa, uint8_t key[17]) {
  memset(key, 0, 17);
  if (sa->ss_family == AF_INET6) {
    key[0] = 6;
    memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  } else if (sa->ss_family == AF_INET) {
    key[0] = 4;
    memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  }
}

/* Makes room in the pending pool for a connection from src: evicts the
 * source's oldest when it is at its limit, else the oldest of all when
 * the pool is full. */
static void make_room(mc_listener *l, const uint8_t src[17]) {
  lconn *oldest_src = NULL, *oldest = NULL;
  uint32_t same = 0;
  for (uint32_t i = 0; i < l->nconns; i++) {
    lconn *k = &l->conns[i];
    if (k->state == C_FREE || k->authed)
      continue;
    if (!oldest || k->born < oldest->born)
      oldest = k;
    if (memcmp(k->src, src, 17) == 0) {
      same++;
      if (!oldest_src || k->born < oldest_src->born)
        oldest_src = k;
    }
  }
  if (same >= l->per_source && oldest_src) {
    l->drop_source++;
    evict(l, oldest_src);
  } else if (l->pending >= l->pending_max && oldest) {
    l->drop_full++;
    evict(l, oldest);
  }
}

static lconn *free_slot(mc_listener *l) {
  for (uint32_t i = 0; i < l->nconns; i++)
    if (l->conns[i].state == C_FREE)
      return &l->conns[i];
  return NULL;
}

static void accept_all(mc_listener *l, uint64_t now) {
  for (;;) {
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    int fd = accept4(l->lfd, (struct sockaddr *)&sa, &salen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* The backlog stays readable: pause instead of spinning. */
        char eb[64];
        MC_WARN(l->log, COMP, "accept on port %u: %s; pausing", l->port,
                strerror_r(errno, eb, sizeof eb));
        l->accept_pause_until = now + ACCEPT_PAUSE_MS;
        epoll_ctl(l->ep, EPOLL_CTL_DEL, l->lfd, NULL);
      }
      return;
    }
    atomic_fetch_add(&l->st_accepted, 1);
    uint8_t src[17];
    src_key(&sa, src);
    make_room(l, src);
    lconn *k = free_slot(l);
    uint8_t *buf = k ? malloc(MC_P2P_CTRL_REQ_MAX) : NULL;
    if (!buf) { /* cannot happen with the pools' sizes; be safe */
      close(fd);
      continue;
    }
    k->fd = fd;
    k->gen++;
    k->state = C_READ;
    k->authed = 0;
    k->born = now;
    k->deadline = now + l->pending_ms;
    memcpy(k->src, src, sizeof src);
    /* inet_ntop, not getnameinfo: cheap on the accept path of a flood. */
    const void *ip = sa.ss_family == AF_INET6
                         ? (const void *)&((struct sockaddr_in6 *)&sa)->sin6_addr
                         : (const void *)&((struct sockaddr_in *)&sa)->sin_addr;
    if (!inet_ntop(sa.ss_family, ip, k->peer, sizeof k->peer))
      snprintf(k->peer, sizeof k->peer, "?");
    k->buf = buf;
    k->got = 0;
    k->out = NULL;
    k->out_len = k->sent = 0;
    k->body = NULL;
    l->pending++;
    atomic_store(&l->st_pending, l->pending);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_key(l, k)};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      conn_free(l, k, 1);
      continue;
    }
    /* The request usually arrived with the handshake: serve it now. */
    conn_read(l, k, now);
  }
}

/* Hands the replies the workers finished to the network. */
static void drain_done(mc_listener *l) {
  uint64_t v;
  while (read(l->wake_fd, &v, sizeof v) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock(&l->mu);
  lconn *k = l->done;
  l->done = NULL;
  pthread_mutex_unlock(&l->mu);
  while (k) {
    lconn *next = k->next;
    uint8_t *out = k->out;
    k->out = NULL;
    conn_send(l, k, out, k->out_len);
    k = next;
  }
}

static void expire(mc_listener *l, uint64_t now, int *timeout) {
  for (uint32_t i = 0; i < l->nconns; i++) {
    lconn *k = &l->conns[i];
    if (k->state == C_FREE || k->state == C_WORK)
      continue;
    if (now >= k->deadline) {
      MC_DEBUG(l->log, COMP, "dropping a connection from %s past its deadline",
               k->peer);
      atomic_fetch_add(&l->st_expired, 1);
      if (!k->authed)
        l->drop_expired++;
      conn_free(l, k, 1);
      continue;
    }
    int left = (int)(k->deadline - now);
    if (*timeout < 0 || left < *timeout)
      *timeout = left;
  }
}

static void *loop_main(void *arg) {
  mc_listener *l = arg;
  struct epoll_event evs[64];
  for (;;) {
    uint64_t now = mc_now_ms();
    int timeout = -1;
    if (l->accept_pause_until) {
      if (now >= l->accept_pause_until) {
        l->accept_pause_until = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_LISTEN};
        epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev);
      } else {
        timeout = (int)(l->accept_pause_until - now);
      }
    }
    expire(l, now, &timeout);
    warn_drops(l, now);
    if (l->drop_source + l->drop_full + l->drop_expired + l->drop_unauth) {
      int64_t due = (int64_t)(l->warned_at + WARN_EVERY_MS) - (int64_t)now;
      int left = due < 1 ? 1 : (int)due + 1;
      if (timeout < 0 || left < timeout)
        timeout = left;
    }
    int n = epoll_wait(l->ep, evs, 64, timeout);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      char eb[64];
      MC_ERROR(l->log, COMP, "epoll_wait: %s; listener stopped",
               strerror_r(errno, eb, sizeof eb));
      return NULL;
    }
    now = mc_now_ms();
    int do_accept = 0;
    for (int i = 0; i < n; i++) {
      uint64_t key = evs[i].data.u64;
      if (key == EV_STOP)
        return NULL;
      if (key == EV_WAKE) {
        drain_done(l);
        continue;
      }
      if (key == EV_LISTEN) {
        do_accept = 1; /* after the others: an eviction must not race them */
        continue;
      }
      uint32_t idx = (uint32_t)key;
      if (idx >= l->nconns)
        continue;
      lconn *k = &l->conns[idx];
      if (k->gen != (uint32_t)(key >> 32) || k->state == C_FREE)
        continue;
      if (k->state == C_WRITE)
        conn_write(l, k);
      else if (k->state == C_READ)
        conn_read(l, k, now);
    }
    if (do_accept)
      accept_all(l, now);
  }
}

/* ---- workers ---- */

static void *worker_main(void *arg) {
  mc_listener *l = arg;
  for (;;) {
    pthread_mutex_lock(&l->mu);
    while (!l->work_head && !l->stopping)
      pthread_cond_wait(&l->cv, &l->mu);
    lconn *k = l->work_head;
    if (!k) {
      pthread_mutex_unlock(&l->mu);
      return NULL;
    }
    l->work_head = k->next;
    if (!l->work_head)
      l->work_tail = NULL;
    pthread_mutex_unlock(&l->mu);

    uint8_t *out = malloc(MC_P2P_CTRL_REPLY_MAX);
    size_t rl = MC_CTRL_MAX;
    int rc = MC_ENOMEM;
    if (out) {
      pthread_rwlock_rdlock(&l->ctrl_rw);
      rc = l->ctrl_fn ? l->ctrl_fn(l->ctrl_arg, k->ctrl.transport, k->ctrl.from,
                                   k->ctrl.req, k->ctrl.req_len,
                                   out + MC_P2P_HDR_LEN + 4, &rl)
                      : MC_ENOTSUP;
      pthread_rwlock_unlock(&l->ctrl_rw);
      if (rc > 0)
        rc = MC_EPROTO; /* not an MC_E* */
      if (rc || rl > MC_CTRL_MAX)
        rl = 0;
      mc_p2p_build_ctrl_reply_head(out, rc, rl);
    }
    /* Without memory, the I/O thread resets the connection. */
    k->out = out;
    k->out_len = out ? MC_P2P_HDR_LEN + 4 + rl : 0;
    pthread_mutex_lock(&l->mu);
    k->next = l->done;
    l->done = k;
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    while (write(l->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
      ;
  }
}

void mc_listener_set_ctrl(mc_listener *l, mc_listener_ctrl_fn fn, void *arg,
                          const char *segment) {
  if (!l)
    return;
  pthread_rwlock_wrlock(&l->ctrl_rw);
  l->ctrl_fn = fn;
  l->ctrl_arg = arg;
  snprintf(l->ctrl_name, sizeof l->ctrl_name, "%s", segment ? segment : "");
  pthread_rwlock_unlock(&l->ctrl_rw);
}

/* ---- local address ---- */

static int is_wildcard(const char *host) {
  return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
         strcmp(host, "*") == 0;
}

static int addr_text(const struct sockaddr *sa, char *buf, size_t len) {
  socklen_t sl = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in);
  return getnameinfo(sa, sl, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST);
}

/* The address peers most likely reach this host at: the source address of
 * the default route (a UDP connect sends nothing), else the first
 * non-loopback interface address, else loopback. */
static void primary_ip(int family, char *buf, size_t len) {
  struct sockaddr_storage dst;
  memset(&dst, 0, sizeof dst);
  socklen_t dl;
  if (family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dst;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(9);
    inet_pton(AF_INET6, "2001:db8::1", &a->sin6_addr);
    dl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&dst;
    a->sin_family = AF_INET;
    a->sin_port = htons(9);
    a->sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1, TEST-NET-1 */
    dl = sizeof *a;
  }
  int s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s >= 0) {
    struct sockaddr_storage src;
    socklen_t sl = sizeof src;
    int ok = connect(s, (struct sockaddr *)&dst, dl) == 0 &&
             getsockname(s, (struct sockaddr *)&src, &sl) == 0 &&
             addr_text((struct sockaddr *)&src, buf, len) == 0;
    close(s);
    if (ok)
      return;
  }
  struct ifaddrs *ifs;
  if (getifaddrs(&ifs) == 0) {
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != family ||
          !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
        continue;
      if (family == AF_INET6 &&
          IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
        continue;
      if (addr_text(i->ifa_addr, buf, len) == 0) {
        freeifaddrs(ifs);
        return;
      }
    }
    freeifaddrs(ifs);
  }
  snprintf(buf, len, "%s", family == AF_INET6 ? "::1" : "127.0.0.1");
}

static int make_local_name(mc_listener *l, const char *host) {
  char ip[INET6_ADDRSTRLEN + 8];
  if (is_wildcard(host)) {
    primary_ip(strcmp(host, "::") == 0 ? AF_INET6 : AF_INET, ip, sizeof ip);
    host = ip;
  }
  int n = strchr(host, ':')
              ? snprintf(l->local, sizeof l->local, "[%s]:%u", host, l->port)
              : snprintf(l->local, sizeof l->local, "%s:%u", host, l->port);
  return n > 0 && (size_t)n < sizeof l->local ? 0 : MC_EINVAL;
}

/* ---- life cycle ---- */

static uint32_t or_default(uint32_t v, uint32_t d) { return v ? v : d; }

static int ep_add(int ep, int fd, uint64_t key) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = key};
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : MC_EIO;
}

int mc_listener_open(const mc_listener_args *a, mc_listener **out, char *err,
                     size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  if (!a || !out)
    return MC_EINVAL;
  const char *listen = a->listen && *a->listen ? a->listen : "0.0.0.0:0";
  char host[MC_NAME_MAX];
  uint16_t port;
  if (mc_net_split_hostport(listen, host, sizeof host, &port)) {
    mc_seterr(err, errlen, "handshake listener: bad address '%s'", listen);
    return MC_EINVAL;
  }
  mc_listener *l = calloc(1, sizeof *l);
  if (!l)
    return MC_ENOMEM;
  l->log = a->log;
  if (a->token)
    snprintf(l->token, sizeof l->token, "%s", a->token);
  l->timeout_ms = or_default(a->timeout_ms, DEF_TIMEOUT_MS);
  if (l->timeout_ms > MAX_TIMEOUT_MS)
    l->timeout_ms = MAX_TIMEOUT_MS;
  if (l->timeout_ms < MIN_DEADLINE_MS)
    l->timeout_ms = MIN_DEADLINE_MS;
  l->pending_ms = or_default(a->pending_ms, DEF_PENDING_MS);
  if (l->pending_ms < MIN_DEADLINE_MS)
    l->pending_ms = MIN_DEADLINE_MS;
  l->pending_max = or_default(a->pending_max, DEF_PENDING_MAX);
  l->per_source = or_default(a->pending_per_source, DEF_PER_SOURCE);
  l->served_max = or_default(a->served_max, DEF_SERVED_MAX);
  l->nworkers = or_default(a->workers, DEF_WORKERS);
  /* +1: a slot for the newcomer while the pool is full (make_room frees
   * one first, but the count is what bounds memory). */
  l->nconns = l->pending_max + l->served_max + 1;
  l->lfd = l->ep = l->stop_fd = l->wake_fd = -1;
  l->warned_at = 0; /* the first report at once, then one per WARN_EVERY_MS */
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  pthread_rwlock_init(&l->ctrl_rw, NULL);
  l->conns = calloc(l->nconns, sizeof *l->conns);
  l->workers = calloc(l->nworkers, sizeof *l->workers);
  int rc = l->conns && l->workers ? 0 : MC_ENOMEM;
  for (uint32_t i = 0; !rc && i < l->nconns; i++)
    l->conns[i].fd = -1;
  if (!rc) {
    rc = mc_net_listen(host, port, 1024, &l->lfd, &l->port);
    if (rc)
      mc_seterr(err, errlen, "handshake listener: cannot listen on %s: %s",
                listen, mc_strerror(rc));
  }
  if (!rc && fcntl(l->lfd, F_SETFL, fcntl(l->lfd, F_GETFL) | O_NONBLOCK) < 0)
    rc = MC_EIO;
  if (!rc && make_local_name(l, host)) {
    mc_seterr(err, errlen, "handshake listener: host name '%s' too long", host);
    rc = MC_EINVAL;
  }
  if (!rc) {
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = l->ep >= 0 && l->stop_fd >= 0 && l->wake_fd >= 0 ? 0 : MC_EIO;
  }
  if (!rc)
    rc = ep_add(l->ep, l->stop_fd, EV_STOP);
  if (!rc)
    rc = ep_add(l->ep, l->wake_fd, EV_WAKE);
  if (!rc)
    rc = ep_add(l->ep, l->lfd, EV_LISTEN);
  if (!rc && pthread_create(&l->thread, NULL, loop_main, l))
    rc = MC_ENOMEM;
  if (rc) {
    if (err && errlen && !err[0])
      mc_seterr(err, errlen, "handshake listener on %s: %s", listen,
                mc_strerror(rc));
    goto fail;
  }
  MC_INFO(l->log, COMP, "listening on %s (advertised as %s)", listen, l->local);
  *out = l;
  return 0;
fail:
  if (l->ep >= 0)
    close(l->ep);
  if (l->stop_fd >= 0)
    close(l->stop_fd);
  if (l->wake_fd >= 0)
    close(l->wake_fd);
  if (l->lfd >= 0)
    close(l->lfd);
  free(l->conns);
  free(l->workers);
  pthread_rwlock_destroy(&l->ctrl_rw);
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
  free(l);
  return rc;
}

void mc_listener_close(mc_listener *l) {
  if (!l)
    return;
  uint64_t one = 1;
  while (write(l->stop_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
  pthread_join(l->thread, NULL);
  pthread_mutex_lock(&l->mu);
  l->stopping = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  for (uint32_t i = 0; i < l->started; i++)
    pthread_join(l->workers[i], NULL);
  /* Work never started and replies never sent: their conns are freed
   * below with the rest (the queues only link slots). */
  for (uint32_t i = 0; i < l->nconns; i++)
    if (l->conns[i].state != C_FREE)
      conn_free(l, &l->conns[i], 1);
  snap_unref(l, l->snap);
  close(l->ep);
  close(l->lfd);
  close(l->stop_fd);
  close(l->wake_fd);
  free(l->conns);
  free(l->workers);
  pthread_rwlock_destroy(&l->ctrl_rw);
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

const char *mc_listener_address(const mc_listener *l) {
  return l ? l->local : "";
}

uint16_t mc_listener_port(const mc_listener *l) { return l ? l->port : 0; }

void mc_listener_get_stats(mc_listener *l, mc_listener_stats *s) {
  memset(s, 0, sizeof *s);
  if (!l)
    return;
  s->accepted = atomic_load(&l->st_accepted);
  s->evicted = atomic_load(&l->st_evicted);
  s->expired = atomic_load(&l->st_expired);
  s->unauthorized = atomic_load(&l->st_unauth);
  s->busy = atomic_load(&l->st_busy);
  s->served = atomic_load(&l->st_served);
  s->pending_now = atomic_load(&l->st_pending);
  s->served_now = atomic_load(&l->st_served_now);
}

uint32_t mc_listener_backoff_ms(unsigned attempt) {
  uint32_t base = 5;
  for (unsigned i = 1; i < attempt && base < 200; i++)
    base *= 2;
  if (base > 200)
    base = 200;
  /* Jitter (up to a half) spreads clients that were refused together. */
  static _Atomic uint32_t seed = 0x9e3779b9u;
  uint32_t x = atomic_fetch_add(&seed, 0x6d2b79f5u);
  x ^= x >> 15;
  x *= 0x2c1b3c6du;
  x ^= x >> 12;
  return base / 2 + x % (base / 2 + 1);
}
