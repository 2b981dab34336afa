/* The embedded ("p2p") metadata backend: no server.  Each engine runs a small
 * handshake listener that serves its own segment descriptor; a segment's
 * name is the listener's "host:port", so fetching a segment means asking
 * that address (framing in p2p_wire.h).
 *
 * Names accepted by fetch():
 *   "host:port"          the descriptor served at host:port, whatever the
 *                        segment is called there;
 *   "segment@host:port"  the descriptor of "segment", which must be the
 *                        one served at host:port (for engines configured
 *                        with a custom segment name).
 * Other names cannot be located without a registry: MC_ENOENT.
 *
 * The listener is one thread running a poll loop over at most MAX_CONNS
 * connections, each with a deadline, so a client that stalls or sends
 * garbage only costs one slot until its deadline and never delays others.
 * There is no generic key/value store here (kv_* answer MC_ENOTSUP) and no
 * watch: the engine refetches a segment when a lookup misses. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "descriptor.h"
#include "metadata.h"
#include "mooncake/errors.h"
#include "net.h"
#include "p2p_wire.h"
#include "token.h"

#define COMP "metadata-p2p"
#define MAX_CONNS 64
#define DEFAULT_TIMEOUT_MS 5000u
#define MIN_SERVE_MS 100u
#define ACCEPT_PAUSE_MS 100u
#define MAX_TIMEOUT_MS 3600000u /* keeps deadlines within an int of ms */
#define REFUSED_LOG_MS 1000u    /* at most one refusal warning a second */

/* One published descriptor; shared with connections still sending it. */
typedef struct p2p_snap {
  int refs; /* under p2p_ctx.mu */
  uint64_t gen;
  char name[MC_NAME_MAX];
  size_t len;
  char *json;
} p2p_snap;

typedef struct p2p_conn {
  int fd; /* -1: free slot */
  int writing;
  uint64_t deadline;
  size_t got;
  uint8_t req[MC_P2P_REQ_MAX];
  /* Reply: head (header + name or reason), then snap->json for OK. */
  uint8_t head[MC_P2P_HDR_LEN + 2 + MC_NAME_MAX + MC_P2P_REASON_MAX];
  size_t head_len;
  size_t sent;
  p2p_snap *snap;
  char peer[64]; /* client address, for logs */
} p2p_conn;

typedef struct p2p_ctx {
  const mc_logger *log;
  uint32_t timeout_ms;
  char token[MC_TOKEN_MAX + 1]; /* "" = serve anyone (token.h) */
  uint64_t refused_logged_at;   /* loop thread: rate limit of the warning */
  int lfd;
  int stop_fd; /* eventfd: close() wakes the loop */
  uint16_t port;
  char local[MC_NAME_MAX]; /* "host:port" peers reach us at */
  pthread_t thread;
  pthread_mutex_t mu;
  p2p_snap *snap; /* under mu */
  uint64_t gen;   /* under mu */
  uint64_t accept_pause_until; /* loop thread: back off when out of fds */
  p2p_conn conns[MAX_CONNS]; /* loop thread only */
} p2p_ctx;

/* ---- published descriptor ---- */

static void snap_unref(p2p_ctx *c, p2p_snap *s) {
  if (!s)
    return;
  pthread_mutex_lock(&c->mu);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&c->mu);
  if (last) {
    free(s->json);
    free(s);
  }
}

static int p2p_publish(void *ctx, const char *segment, const char *json,
                       size_t len) {
  p2p_ctx *c = ctx;
  if (!segment || !mc_p2p_name_ok(segment, strnlen(segment, MC_NAME_MAX)) ||
      !json || len == 0 || len > MC_DESC_JSON_MAX)
    return MC_EINVAL;
  p2p_snap *s = calloc(1, sizeof *s);
  if (!s)
    return MC_ENOMEM;
  s->json = malloc(len);
  if (!s->json) {
    free(s);
    return MC_ENOMEM;
  }
  memcpy(s->json, json, len);
  s->len = len;
  s->refs = 1;
  snprintf(s->name, sizeof s->name, "%s", segment);
  pthread_mutex_lock(&c->mu);
  p2p_snap *old = c->snap;
  s->gen = ++c->gen;
  c->snap = s;
  pthread_mutex_unlock(&c->mu);
  snap_unref(c, old);
  MC_DEBUG(c->log, COMP, "publishing segment '%s' (%zu bytes, generation %llu)",
           segment, len, (unsigned long long)s->gen);
  return 0;
}

static int p2p_unpublish(void *ctx, const char *segment) {
  p2p_ctx *c = ctx;
  if (!segment)
    return MC_EINVAL;
  pthread_mutex_lock(&c->mu);
  p2p_snap *s = c->snap;
  if (!s || strcmp(s->name, segment) != 0) {
    pthread_mutex_unlock(&c->mu);
    return MC_ENOENT;
  }
  c->snap = NULL;
  pthread_mutex_unlock(&c->mu);
  snap_unref(c, s);
  return 0;
}

/* A reference to the published descriptor if a request for name is ours:
 * the segment's own name, our address, or any host with our port (the
 * client reached this listener through that address). */
static p2p_snap *snap_for(p2p_ctx *c, const char *name) {
  int ours = strcmp(name, c->local) == 0;
  if (!ours) {
    char host[MC_NAME_MAX];
    uint16_t port;
    ours = mc_net_split_hostport(name, host, sizeof host, &port) == 0 &&
           port == c->port;
  }
  pthread_mutex_lock(&c->mu);
  p2p_snap *s = c->snap;
  if (s && (ours || strcmp(s->name, name) == 0))
    s->refs++;
  else
    s = NULL;
  pthread_mutex_unlock(&c->mu);
  return s;
}

/* ---- listener ---- */

/* Ends a connection.  abort resets it (SO_LINGER 0) so that a timed-out or
 * failed connection's unsent reply is discarded at once instead of being
 * kept alive by the kernel; a completed reply is closed gracefully. */
static void conn_end(p2p_ctx *c, p2p_conn *k, int abort) {
  if (abort) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(k->fd);
  k->fd = -1;
  snap_unref(c, k->snap);
  k->snap = NULL;
}

static void conn_drop(p2p_ctx *c, p2p_conn *k) { conn_end(c, k, 1); }

static void conn_reply(p2p_ctx *c, p2p_conn *k, uint16_t status,
                       const char *reason) {
  k->head_len = mc_p2p_build_reply_head(k->head, sizeof k->head, status, reason,
                                        0);
  k->writing = 1;
  k->sent = 0;
}

static void conn_request(p2p_ctx *c, p2p_conn *k, const char *name) {
  p2p_snap *s = snap_for(c, name);
  if (!s) {
    char reason[MC_P2P_REASON_MAX];
    snprintf(reason, sizeof reason, "segment '%.200s' is not served here", name);
    MC_DEBUG(c->log, COMP, "request for unknown segment '%s'", name);
    conn_reply(c, k, MC_P2P_NOT_FOUND, reason);
    return;
  }
  k->head_len = mc_p2p_build_reply_head(k->head, sizeof k->head, MC_P2P_OK,
                                        s->name, s->len);
  if (k->head_len == 0) { /* cannot happen: publish validated both */
    snap_unref(c, s);
    conn_reply(c, k, MC_P2P_BAD_REQUEST, "internal error");
    return;
  }
  k->snap = s;
  k->writing = 1;
  k->sent = 0;
}

static void conn_write(p2p_ctx *c, p2p_conn *k) {
  size_t body = k->snap ? k->snap->len : 0;
  struct iovec iov[2];
  int n = 0;
  if (k->sent < k->head_len)
    iov[n++] = (struct iovec){k->head + k->sent, k->head_len - k->sent};
  size_t boff = k->sent > k->head_len ? k->sent - k->head_len : 0;
  if (body > boff)
    iov[n++] = (struct iovec){k->snap->json + boff, body - boff};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
  ssize_t w = n ? sendmsg(k->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      conn_drop(c, k);
    return;
  }
  k->sent += (size_t)w;
  if (k->sent == k->head_len + body)
    conn_end(c, k, 0); /* one request per connection */
}

static void conn_read(p2p_ctx *c, p2p_conn *k) {
  ssize_t n = recv(k->fd, k->req + k->got, sizeof k->req - k->got,
                   MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    conn_drop(c, k);
    return;
  }
  if (n < 0)
    return;
  k->got += (size_t)n;
  size_t need;
  char name[MC_NAME_MAX], token[MC_TOKEN_MAX + 1];
  int rc = mc_p2p_parse_request(k->req, k->got, &need, name, sizeof name, token);
  if (rc == MC_EAGAIN)
    return;
  if (rc == MC_ENOTSUP) {
    conn_reply(c, k, MC_P2P_BAD_VERSION, "unsupported protocol version");
  } else if (rc) {
    MC_DEBUG(c->log, COMP, "dropping a malformed request from %s (%zu bytes)",
             k->peer, k->got);
    conn_reply(c, k, MC_P2P_BAD_REQUEST, "malformed request");
  } else if (c->token[0] && !mc_token_equal(c->token, token, strlen(token))) {
    /* The same answer with no token and with a wrong one. */
    uint64_t now = mc_now_ms();
    if (now - c->refused_logged_at >= REFUSED_LOG_MS) {
      c->refused_logged_at = now;
      MC_WARN(c->log, COMP,
              "refused a request for '%s' from %s: %s cluster token", name,
              k->peer, token[0] ? "wrong" : "no");
    }
    conn_reply(c, k, MC_P2P_UNAUTHORIZED,
               "this engine serves its descriptor only to holders of its "
               "cluster token");
  } else {
    conn_request(c, k, name);
  }
  conn_write(c, k); /* the socket is usually writable already */
}

static int addr_text(const struct sockaddr *sa, char *buf, size_t len);

static void accept_all(p2p_ctx *c, uint64_t now) {
  for (;;) {
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    int fd = accept4(c->lfd, (struct sockaddr *)&sa, &salen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* The backlog stays readable: pause instead of spinning. */
        char eb[64];
        MC_WARN(c->log, COMP, "accept on port %u: %s; pausing", c->port,
                strerror_r(errno, eb, sizeof eb));
        c->accept_pause_until = now + ACCEPT_PAUSE_MS;
      }
      return;
    }
    p2p_conn *k = NULL;
    for (int i = 0; i < MAX_CONNS && !k; i++)
      if (c->conns[i].fd < 0)
        k = &c->conns[i];
    if (!k) {
      /* Best effort: a full table answers BUSY and hangs up. */
      uint8_t busy[MC_P2P_HDR_LEN];
      mc_p2p_put_hdr(busy, MC_P2P_OP_REPLY, MC_P2P_BUSY, 0);
      if (send(fd, busy, sizeof busy, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        MC_DEBUG(c->log, COMP, "busy reply failed");
      close(fd);
      continue;
    }
    k->fd = fd;
    if (addr_text((const struct sockaddr *)&sa, k->peer, sizeof k->peer))
      snprintf(k->peer, sizeof k->peer, "?");
    k->writing = 0;
    k->got = 0;
    k->sent = 0;
    k->head_len = 0;
    k->snap = NULL;
    uint32_t serve = c->timeout_ms > MIN_SERVE_MS ? c->timeout_ms : MIN_SERVE_MS;
    k->deadline = now + serve;
  }
}

static void *serve_loop(void *arg) {
  p2p_ctx *c = arg;
  struct pollfd pfd[2 + MAX_CONNS];
  p2p_conn *who[2 + MAX_CONNS];
  for (;;) {
    uint64_t now = mc_now_ms();
    int n = 0, timeout = -1;
    pfd[n++] = (struct pollfd){.fd = c->stop_fd, .events = POLLIN};
    int paused = now < c->accept_pause_until;
    pfd[n++] = (struct pollfd){.fd = paused ? -1 : c->lfd, .events = POLLIN};
    if (paused)
      timeout = (int)(c->accept_pause_until - now);
    for (int i = 0; i < MAX_CONNS; i++) {
      p2p_conn *k = &c->conns[i];
      if (k->fd < 0)
        continue;
      if (now >= k->deadline) {
        MC_DEBUG(c->log, COMP, "dropping a connection past its deadline");
        conn_drop(c, k);
        continue;
      }
      int left = (int)(k->deadline - now);
      if (timeout < 0 || left < timeout)
        timeout = left;
      who[n] = k;
      pfd[n++] = (struct pollfd){.fd = k->fd,
                                 .events = k->writing ? POLLOUT : POLLIN};
    }
    int r = poll(pfd, (nfds_t)n, timeout);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      char eb[64];
      MC_ERROR(c->log, COMP, "poll: %s; listener stopped",
               strerror_r(errno, eb, sizeof eb));
      return NULL;
    }
    if (pfd[0].revents)
      return NULL;
    for (int i = 2; i < n; i++) {
      p2p_conn *k = who[i];
      if (!pfd[i].revents || k->fd < 0)
        continue;
      if (k->writing)
        conn_write(c, k);
      else if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
        conn_read(c, k);
    }
    if (pfd[1].revents & POLLIN)
      accept_all(c, mc_now_ms());
  }
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
      if (family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(
                                    &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
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

static int make_local_name(p2p_ctx *c, const char *host) {
  char ip[INET6_ADDRSTRLEN + 8];
  if (is_wildcard(host)) {
    primary_ip(strcmp(host, "::") == 0 ? AF_INET6 : AF_INET, ip, sizeof ip);
    host = ip;
  }
  int n = strchr(host, ':')
              ? snprintf(c->local, sizeof c->local, "[%s]:%u", host, c->port)
              : snprintf(c->local, sizeof c->local, "%s:%u", host, c->port);
  return n > 0 && (size_t)n < sizeof c->local ? 0 : MC_EINVAL;
}

/* ---- ops ---- */

static int p2p_open(const mc_metadata_args *args, void **out) {
  const char *listen = args->listen && *args->listen ? args->listen : "0.0.0.0:0";
  char host[MC_NAME_MAX];
  uint16_t port;
  if (mc_net_split_hostport(listen, host, sizeof host, &port)) {
    MC_ERROR(args->log, COMP, "listen address '%s': expected host:port", listen);
    return MC_EINVAL;
  }
  if (strcmp(host, "*") == 0)
    snprintf(host, sizeof host, "0.0.0.0");
  p2p_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->log = args->log;
  c->timeout_ms = args->timeout_ms ? args->timeout_ms : DEFAULT_TIMEOUT_MS;
  if (args->token) {
    size_t tl = strlen(args->token);
    if (!mc_token_ok(args->token, tl)) {
      MC_ERROR(args->log, COMP, "cluster token: %d..%d printable characters",
               MC_TOKEN_MIN, MC_TOKEN_MAX);
      free(c);
      return MC_EINVAL;
    }
    memcpy(c->token, args->token, tl + 1);
  }
  if (c->timeout_ms > MAX_TIMEOUT_MS)
    c->timeout_ms = MAX_TIMEOUT_MS;
  c->lfd = c->stop_fd = -1;
  for (int i = 0; i < MAX_CONNS; i++)
    c->conns[i].fd = -1;
  pthread_mutex_init(&c->mu, NULL);
  int rc = mc_net_listen(host, port, 128, &c->lfd, &c->port);
  if (rc) {
    MC_ERROR(c->log, COMP, "cannot listen on %s: %s", listen, mc_strerror(rc));
    goto fail;
  }
  /* accept_all drains the backlog until EAGAIN. */
  if (fcntl(c->lfd, F_SETFL, fcntl(c->lfd, F_GETFL) | O_NONBLOCK) < 0) {
    rc = MC_EIO;
    goto fail;
  }
  c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->stop_fd < 0) {
    rc = MC_EIO;
    goto fail;
  }
  rc = make_local_name(c, host);
  if (rc) {
    MC_ERROR(c->log, COMP, "listen address '%s': host name too long", listen);
    goto fail;
  }
  if (pthread_create(&c->thread, NULL, serve_loop, c)) {
    rc = MC_ENOMEM;
    goto fail;
  }
  MC_INFO(c->log, COMP, "listening on %s (segment address %s)", listen,
          c->local);
  *out = c;
  return 0;
fail:
  if (c->stop_fd >= 0)
    close(c->stop_fd);
  if (c->lfd >= 0)
    close(c->lfd);
  pthread_mutex_destroy(&c->mu);
  free(c);
  return rc;
}

static void p2p_close(void *ctx) {
  p2p_ctx *c = ctx;
  if (!c)
    return;
  uint64_t one = 1;
  while (write(c->stop_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
  pthread_join(c->thread, NULL);
  for (int i = 0; i < MAX_CONNS; i++)
    if (c->conns[i].fd >= 0)
      conn_drop(c, &c->conns[i]);
  snap_unref(c, c->snap);
  close(c->lfd);
  close(c->stop_fd);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static int p2p_local_name(void *ctx, char *buf, size_t len) {
  p2p_ctx *c = ctx;
  size_t n = strlen(c->local);
  if (!buf || len <= n)
    return MC_ENOSPC;
  memcpy(buf, c->local, n + 1);
  return 0;
}

static int copy_out(const char *src, size_t n, char **json, size_t *len) {
  char *p = malloc(n + 1);
  if (!p)
    return MC_ENOMEM;
  memcpy(p, src, n);
  p[n] = '\0';
  *json = p;
  *len = n;
  return 0;
}

static int status_rc(uint16_t status) {
  switch (status) {
  case MC_P2P_NOT_FOUND:
    return MC_ENOENT;
  case MC_P2P_BUSY:
    return MC_EAGAIN;
  case MC_P2P_UNAUTHORIZED:
    return MC_EACCES;
  default:
    return MC_EPROTO;
  }
}

/* Reads the reply header before deadline, checking the magic as soon as
 * its first bytes arrive, so a peer that is not a mooncake listener (an HTTP
 * server, anything that answers something else) is told apart at once
 * instead of after the whole timeout.  *got: bytes received.
 *   0              a full header (magic checked; the rest is not)
 *   MC_EPROTO      the bytes received so far are not our magic
 *   MC_EPEER       the peer closed (or reset) before a full header
 *   MC_ETIMEDOUT   silence until the deadline */
static int read_reply_hdr(int fd, uint8_t *hb, uint64_t deadline, size_t *got) {
  static const uint8_t magic[4] = {'M', 'C', 'P', '2'};
  *got = 0;
  while (*got < MC_P2P_HDR_LEN) {
    uint64_t now = mc_now_ms();
    if (now >= deadline)
      return MC_ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)(deadline - now));
    if (n < 0 && errno != EINTR)
      return MC_EIO;
    if (n <= 0)
      continue;
    ssize_t r = recv(fd, hb + *got, MC_P2P_HDR_LEN - *got, MSG_DONTWAIT);
    if (r == 0)
      return MC_EPEER;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return MC_EPEER;
    }
    *got += (size_t)r;
    if (memcmp(hb, magic, *got < 4 ? *got : 4) != 0)
      return MC_EPROTO;
  }
  return 0;
}

/* Printable rendering of the first bytes a peer sent, for logs. */
static void show_bytes(const uint8_t *b, size_t n, char *out, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < len; i++) {
    if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
      out[o++] = (char)b[i];
    else
      o += (size_t)snprintf(out + o, len - o, "\\x%02x", b[i]);
  }
  out[o] = '\0';
}

/* A failed fetch: logged, and kept as this thread's mc_last_error(), so the
 * caller of mc_segment_open learns what the peer did, not only the code. */
__attribute__((format(printf, 2, 3))) static void
fetch_fail(p2p_ctx *c, const char *fmt, ...) {
  char msg[MC_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  MC_WARN(c->log, COMP, "%s", msg);
  mc_last_error_set("%s", msg);
}

/* Asks host:port for seg; *json (NUL-terminated) on success.  Failures are
 * logged here with what the peer did (and, where the address is probably
 * not a mooncake listener at all, a hint), since the caller only gets the
 * code. */
static int fetch_remote(p2p_ctx *c, const char *name, const char *seg,
                        int by_name, const char *host, uint16_t port,
                        char **json, size_t *len) {
  uint64_t deadline = mc_now_ms() + c->timeout_ms;
  uint8_t req[MC_P2P_REQ_MAX];
  size_t rl =
      mc_p2p_build_request(seg, c->token[0] ? c->token : NULL, req, sizeof req);
  if (rl == 0)
    return MC_EINVAL;
  int fd;
  int rc = mc_net_connect(host, port, (int)c->timeout_ms, &fd);
  if (rc) {
    fetch_fail(c,
               "segment '%s': cannot connect to %s:%u: %s (is an engine "
               "listening there?)",
               name, host, (unsigned)port,
               rc == MC_ETIMEDOUT ? "no answer to the connection request"
                                  : "connection refused or host unreachable");
    return rc;
  }
  uint8_t hb[MC_P2P_HDR_LEN];
  mc_p2p_hdr h;
  uint8_t *body = NULL;
  size_t got = 0;
  rc = mc_net_write_full(fd, req, rl, deadline);
  if (rc) {
    fetch_fail(c, "segment '%s': sending the request to %s:%u failed: %s", name,
               host, (unsigned)port, mc_strerror(rc));
  } else {
    rc = read_reply_hdr(fd, hb, deadline, &got);
    if (rc == MC_EPROTO) {
      char seen[64];
      show_bytes(hb, got, seen, sizeof seen);
      fetch_fail(c,
                 "segment '%s': %s:%u is not a mooncake listener (it answered "
                 "\"%s...\"); a segment name is an engine's handshake listener "
                 "address (host:port, or name@host:port)",
                 name, host, (unsigned)port, seen);
    } else if (rc == MC_ETIMEDOUT && got == 0) {
      fetch_fail(c,
                 "segment '%s': %s:%u accepted the connection but sent nothing "
                 "in %u ms: is %s:%u a mooncake engine's listener?",
                 name, host, (unsigned)port, c->timeout_ms, host,
                 (unsigned)port);
    } else if (rc == MC_EPEER && got == 0) {
      fetch_fail(c,
                 "segment '%s': %s:%u closed the connection without answering: "
                 "is %s:%u a mooncake engine's listener?",
                 name, host, (unsigned)port, host, (unsigned)port);
    } else if (rc) {
      fetch_fail(c,
                 "segment '%s': %s:%u stopped after %zu bytes of "
                 "its reply: %s",
                 name, host, (unsigned)port, got, mc_strerror(rc));
    }
  }
  if (!rc && mc_p2p_parse_reply_hdr(hb, sizeof hb, &h)) {
    fetch_fail(c,
               "segment '%s': malformed reply header from %s:%u "
               "(another version of mooncake?)",
               name, host, (unsigned)port);
    rc = MC_EPROTO;
  }
  if (!rc) {
    body = malloc((size_t)h.length + 1);
    rc = body ? mc_net_read_full(fd, body, h.length, deadline) : MC_ENOMEM;
    if (rc && rc != MC_ENOMEM)
      fetch_fail(c, "segment '%s': reply from %s:%u cut short: %s", name, host,
                 (unsigned)port, mc_strerror(rc));
  }
  close(fd);
  mc_p2p_reply r;
  if (!rc && mc_p2p_parse_reply_body(&h, body, h.length, &r)) {
    fetch_fail(c, "segment '%s': malformed reply from %s:%u", name, host,
               (unsigned)port);
    rc = MC_EPROTO;
  }
  if (!rc && r.status != MC_P2P_OK) {
    rc = status_rc(r.status);
    if (r.status == MC_P2P_UNAUTHORIZED)
      fetch_fail(c,
                 "segment '%s': %s:%u refused %s cluster token (%.*s): set "
                 "cluster_token_file (or MC_CLUSTER_TOKEN_FILE) to the file "
                 "holding that cluster's token",
                 name, host, (unsigned)port,
                 c->token[0] ? "our" : "a request without a", (int)r.reason_len,
                 r.reason);
    else
      MC_DEBUG(c->log, COMP, "segment '%s': peer answered %s: %.*s", name,
               mc_strerror(rc), (int)r.reason_len, r.reason);
  }
  if (!rc && by_name &&
      (r.name_len != strlen(seg) || memcmp(r.name, seg, r.name_len) != 0)) {
    fetch_fail(c, "segment '%s': peer served '%.*s' instead", name,
               (int)r.name_len, r.name);
    rc = MC_EPROTO;
  }
  if (!rc) {
    /* Reuse the buffer: move the JSON to its start. */
    size_t n = r.json_len;
    memmove(body, r.json, n);
    body[n] = '\0';
    *json = (char *)body;
    *len = n;
    return 0;
  }
  free(body);
  return rc;
}

static int p2p_fetch(void *ctx, const char *segment, char **json, size_t *len) {
  p2p_ctx *c = ctx;
  if (!segment || !json || !len)
    return MC_EINVAL;
  size_t nl = strnlen(segment, MC_NAME_MAX);
  if (!mc_p2p_name_ok(segment, nl))
    return MC_EINVAL;
  /* Our own segment needs no round trip. */
  pthread_mutex_lock(&c->mu);
  p2p_snap *s = c->snap;
  if (s && (strcmp(segment, s->name) == 0 || strcmp(segment, c->local) == 0)) {
    int rc = copy_out(s->json, s->len, json, len);
    pthread_mutex_unlock(&c->mu);
    return rc;
  }
  pthread_mutex_unlock(&c->mu);

  char seg[MC_NAME_MAX];
  const char *addr = segment;
  const char *at = strrchr(segment, '@');
  int by_name = at != NULL;
  if (at) {
    size_t sl = (size_t)(at - segment);
    if (sl == 0)
      return MC_EINVAL;
    memcpy(seg, segment, sl);
    seg[sl] = '\0';
    addr = at + 1;
  } else {
    memcpy(seg, segment, nl + 1);
  }
  char host[MC_NAME_MAX];
  uint16_t port;
  if (mc_net_split_hostport(addr, host, sizeof host, &port) || port == 0) {
    MC_DEBUG(c->log, COMP,
             "segment '%s': not host:port or name@host:port, cannot locate "
             "it without a metadata server",
             segment);
    mc_last_error_set("segment '%s': with p2p metadata a segment name is the "
                      "peer's host:port (or name@host:port); other names need "
                      "etcd or HTTP metadata", segment);
    return MC_ENOENT;
  }
  return fetch_remote(c, segment, seg, by_name, host, port, json, len);
}

const mc_metadata_ops mc_metadata_p2p_ops = {
    .scheme = "p2p",
    .open = p2p_open,
    .close = p2p_close,
    .local_name = p2p_local_name,
    .publish = p2p_publish,
    .unpublish = p2p_unpublish,
    .fetch = p2p_fetch,
    .watch = NULL,
    .kv_put = NULL,
    .kv_get = NULL,
    .kv_delete = NULL,
};
