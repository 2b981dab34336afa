/* The embedded ("p2p") metadata backend: no server.  Each engine's
 * handshake listener (core/src/listener.c, run by the engine whatever its
 * metadata backend) serves its own segment descriptor; a segment's name is
 * the listener's "host:port", so fetching a segment means asking that
 * address (framing in p2p_wire.h).
 *
 * Names accepted by fetch():
 *   "host:port"          the descriptor served at host:port, whatever the
 *                        segment is called there;
 *   "segment@host:port"  the descriptor of "segment", which must be the
 *                        one served at host:port (for engines configured
 *                        with a custom segment name).
 * Other names cannot be located without a registry: MC_ENOENT.
 *
 * A listener that answers BUSY (as one under a flood of unauthenticated
 * connections does when it drops ours for a newer one) is asked again with
 * back-off until the deadline.  There is no generic key/value store
 * here (kv_* answer MC_ENOTSUP) and no watch: the engine refetches a
 * segment when a lookup misses. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "descriptor.h"
#include "listener.h"
#include "metadata.h"
#include "mooncake/errors.h"
#include "net.h"
#include "p2p_wire.h"
#include "token.h"

#define COMP "metadata-p2p"
#define DEFAULT_TIMEOUT_MS 5000u
#define MAX_TIMEOUT_MS 3600000u /* keeps deadlines within an int of ms */

typedef struct p2p_ctx {
  const mc_logger *log;
  uint32_t timeout_ms;
  char token[MC_TOKEN_MAX + 1]; /* "" = none (token.h) */
  mc_listener *lis; /* the engine's, or our own (own_lis) */
  int own_lis;
} p2p_ctx;

static int p2p_publish(void *ctx, const char *segment, const char *json,
                       size_t len) {
  p2p_ctx *c = ctx;
  int rc = mc_listener_publish(c->lis, segment, json, len);
  if (!rc)
    MC_DEBUG(c->log, COMP, "publishing segment '%s' (%zu bytes)", segment, len);
  return rc;
}

static int p2p_unpublish(void *ctx, const char *segment) {
  p2p_ctx *c = ctx;
  return mc_listener_unpublish(c->lis, segment);
}

/* ---- ops ---- */

static int p2p_open(const mc_metadata_args *args, void **out) {
  p2p_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->log = args->log;
  c->timeout_ms = args->timeout_ms ? args->timeout_ms : DEFAULT_TIMEOUT_MS;
  if (c->timeout_ms > MAX_TIMEOUT_MS)
    c->timeout_ms = MAX_TIMEOUT_MS;
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
  c->lis = args->listener;
  if (!c->lis) {
    /* Opened without an engine (tools, tests): run a listener of our own. */
    char err[512];
    mc_listener_args la = {.listen = args->listen && *args->listen
                                         ? args->listen
                                         : "0.0.0.0:0",
                           .token = c->token,
                           .timeout_ms = c->timeout_ms,
                           .log = args->log};
    int rc = mc_listener_open(&la, &c->lis, err, sizeof err);
    if (rc) {
      MC_ERROR(args->log, COMP, "%s", err);
      free(c);
      return rc;
    }
    c->own_lis = 1;
  }
  *out = c;
  return 0;
}

static void p2p_close(void *ctx) {
  p2p_ctx *c = ctx;
  if (!c)
    return;
  if (c->own_lis)
    mc_listener_close(c->lis);
  free(c);
}

static int p2p_local_name(void *ctx, char *buf, size_t len) {
  p2p_ctx *c = ctx;
  const char *local = mc_listener_address(c->lis);
  size_t n = strlen(local);
  if (!buf || len <= n)
    return MC_ENOSPC;
  memcpy(buf, local, n + 1);
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
                        uint64_t deadline, int *busy, char **json,
                        size_t *len) {
  *busy = 0;
  uint8_t req[MC_P2P_REQ_MAX];
  size_t rl =
      mc_p2p_build_request(seg, c->token[0] ? c->token : NULL, req, sizeof req);
  if (rl == 0)
    return MC_EINVAL;
  int fd;
  uint64_t now = mc_now_ms();
  int rc = now < deadline ? mc_net_connect(host, port, (int)(deadline - now), &fd)
                          : MC_ETIMEDOUT;
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
    *busy = r.status == MC_P2P_BUSY;
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
  int own = mc_listener_own(c->lis, segment, json, len);
  if (own != MC_ENOENT)
    return own;

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
  uint64_t deadline = mc_now_ms() + c->timeout_ms;
  for (unsigned attempt = 1;; attempt++) {
    int busy = 0;
    int rc = fetch_remote(c, segment, seg, by_name, host, port, deadline, &busy,
                          json, len);
    if (!busy)
      return rc;
    uint64_t now = mc_now_ms();
    uint32_t wait = mc_listener_backoff_ms(attempt);
    if (now + wait >= deadline) {
      fetch_fail(c, "segment '%s': %s:%u stayed busy for %u ms", segment, host,
                 (unsigned)port, c->timeout_ms);
      return MC_ETIMEDOUT;
    }
    MC_DEBUG(c->log, COMP, "segment '%s': listener busy, retrying in %u ms",
             segment, (unsigned)wait);
    struct timespec ts = {.tv_sec = wait / 1000,
                          .tv_nsec = (long)(wait % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  }
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
