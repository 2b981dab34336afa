/* The control channel's client (ctrl.h). */
#include "ctrl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "descriptor.h"
#include "listener.h"
#include "mooncake/errors.h"
#include "net.h"
#include "p2p/p2p_wire.h" /* the handshake framing (core/metadata/p2p) */

#define COMP "ctrl"

/* The peer's listener address, from its descriptor. */
static int peer_listener(const mc_ctrl_client *c, const char *peer,
                         char *host, size_t hostlen, uint16_t *port,
                         char name[MC_NAME_MAX]) {
  char *json = NULL;
  size_t len = 0;
  int rc = mc_metadata_fetch(c->md, peer, &json, &len);
  if (rc) {
    if (rc == MC_ENOENT)
      mc_last_error_set("ctrl_call: no segment '%s' in the metadata", peer);
    return rc;
  }
  mc_seg_desc *d = NULL;
  char why[256];
  rc = mc_desc_decode(json, len, &d, why, sizeof why);
  free(json);
  if (rc) {
    mc_last_error_set("ctrl_call: segment '%s': bad descriptor: %s", peer, why);
    return rc;
  }
  if (!d->listen[0]) {
    mc_last_error_set("ctrl_call: segment '%s' advertises no handshake "
                      "listener (an engine older than ABI 1.2)", peer);
    rc = MC_ENOTSUP;
  } else if (mc_net_split_hostport(d->listen, host, hostlen, port) ||
             *port == 0) {
    mc_last_error_set("ctrl_call: segment '%s': bad listener address '%s'",
                      peer, d->listen);
    rc = MC_EPROTO;
  } else if (c->host_id && d->host_id[0] && strcmp(c->host_id, d->host_id) != 0 &&
             (strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
              strcmp(host, "localhost") == 0)) {
    /* Its loopback is not ours: connecting would reach this host. */
    mc_last_error_set("ctrl_call: segment '%s' is on another host but "
                      "advertises a loopback listener (%s): set `listen` to "
                      "an address its peers can reach", peer, d->listen);
    rc = MC_EPEER;
  }
  /* The name the peer publishes itself under (p2p callers may say
   * host:port or name@host:port): its listener checks it. */
  memcpy(name, d->name, MC_NAME_MAX);
  mc_desc_free(d);
  return rc;
}

void mc_ctrl_client_init(mc_ctrl_client *c) {
  pthread_mutex_init(&c->mu, NULL);
  c->tick = 0;
  memset(c->cache, 0, sizeof c->cache);
}

void mc_ctrl_client_fini(mc_ctrl_client *c) { pthread_mutex_destroy(&c->mu); }

static int cache_get(mc_ctrl_client *c, const char *peer, char *host,
                     uint16_t *port, char *name) {
  int hit = 0;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < MC_CTRL_CACHE && !hit; i++) {
    mc_ctrl_addr *a = &c->cache[i];
    if (a->peer[0] && strcmp(a->peer, peer) == 0) {
      memcpy(host, a->host, MC_NAME_MAX);
      memcpy(name, a->name, MC_NAME_MAX);
      *port = a->port;
      a->used = ++c->tick;
      hit = 1;
    }
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}

static void cache_put(mc_ctrl_client *c, const char *peer, const char *host,
                      uint16_t port, const char *name) {
  pthread_mutex_lock(&c->mu);
  mc_ctrl_addr *slot = &c->cache[0];
  for (int i = 0; i < MC_CTRL_CACHE; i++) {
    mc_ctrl_addr *a = &c->cache[i];
    if (strcmp(a->peer, peer) == 0 || !a->peer[0]) {
      slot = a;
      break;
    }
    if (a->used < slot->used)
      slot = a; /* least recently used */
  }
  snprintf(slot->peer, sizeof slot->peer, "%s", peer);
  snprintf(slot->host, sizeof slot->host, "%s", host);
  snprintf(slot->name, sizeof slot->name, "%s", name);
  slot->port = port;
  slot->used = ++c->tick;
  pthread_mutex_unlock(&c->mu);
}

static void cache_drop(mc_ctrl_client *c, const char *peer) {
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < MC_CTRL_CACHE; i++)
    if (strcmp(c->cache[i].peer, peer) == 0)
      c->cache[i].peer[0] = '\0';
  pthread_mutex_unlock(&c->mu);
}

static void sleep_ms(uint32_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* One exchange on a new connection.  *retry is set when the listener
 * answered BUSY (it was full, or dropped us for a newer connection), so the
 * caller may try again. */
static int exchange(const mc_ctrl_client *c, const char *peer,
                    const char *host, uint16_t port, const uint8_t *frame,
                    size_t flen, void *resp, size_t *resp_len,
                    uint64_t deadline, int *retry) {
  *retry = 0;
  uint64_t now = mc_now_ms();
  int fd;
  int rc = mc_net_connect(host, port, (int)(deadline - now), &fd);
  if (rc) {
    mc_last_error_set("ctrl_call: segment '%s': cannot connect to its "
                      "listener %s:%u: %s", peer, host, (unsigned)port,
                      mc_strerror(rc));
    return rc;
  }
  uint8_t hb[MC_P2P_HDR_LEN + 4];
  mc_p2p_hdr h;
  rc = mc_net_write_full(fd, frame, flen, deadline);
  if (!rc)
    rc = mc_net_read_full(fd, hb, MC_P2P_HDR_LEN, deadline);
  if (!rc && mc_p2p_parse_ctrl_reply_hdr(hb, MC_P2P_HDR_LEN, &h))
    rc = MC_EPROTO;
  if (rc) {
    close(fd);
    mc_last_error_set("ctrl_call: segment '%s' (%s:%u): %s", peer, host,
                        (unsigned)port,
                        rc == MC_EPROTO ? "malformed answer" : mc_strerror(rc));
    return rc;
  }
  if (h.op == MC_P2P_OP_REPLY) { /* an error status with a reason */
    char reason[MC_P2P_REASON_MAX + 1];
    rc = mc_net_read_full(fd, reason, h.length, deadline);
    close(fd);
    reason[rc ? 0 : h.length] = '\0';
    switch (h.status) {
    case MC_P2P_BUSY:
      *retry = 1;
      return MC_EAGAIN;
    case MC_P2P_UNAUTHORIZED:
      mc_last_error_set("ctrl_call: segment '%s' refused %s cluster token: %s",
                        peer, c->token[0] ? "our" : "a request without a",
                        reason);
      return MC_EACCES;
    case MC_P2P_NOT_FOUND:
      /* Its address now belongs to another engine: the peer is gone. */
      mc_last_error_set("ctrl_call: segment '%s': its listener %s:%u no "
                        "longer serves it (%s)", peer, host, (unsigned)port,
                        reason);
      return MC_EPEER;
    case MC_P2P_BAD_VERSION:
      mc_last_error_set("ctrl_call: segment '%s': protocol version refused",
                        peer);
      return MC_ENOTSUP;
    default:
      mc_last_error_set("ctrl_call: segment '%s' refused the request: %s",
                        peer, reason);
      return MC_EPROTO;
    }
  }
  rc = mc_net_read_full(fd, hb + MC_P2P_HDR_LEN, 4, deadline);
  size_t dlen = h.length - 4;
  uint8_t data[MC_CTRL_MAX];
  if (!rc && dlen)
    rc = mc_net_read_full(fd, data, dlen, deadline);
  close(fd);
  if (rc) {
    mc_last_error_set("ctrl_call: segment '%s': reply cut short: %s", peer,
                      mc_strerror(rc));
    return rc;
  }
  const uint8_t *r = hb + MC_P2P_HDR_LEN;
  int32_t prc = (int32_t)((uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 |
                          (uint32_t)r[2] << 8 | r[3]);
  if (prc > 0 || prc < -1000) {
    mc_last_error_set("ctrl_call: segment '%s': bad status %d", peer, (int)prc);
    return MC_EPROTO;
  }
  if (prc < 0) {
    if (prc == MC_ENOTSUP)
      mc_last_error_set("ctrl_call: segment '%s' has no ctrl_handle for this "
                        "transport (or not this transport)", peer);
    return prc;
  }
  if (dlen > *resp_len) {
    *resp_len = dlen;
    return MC_ENOSPC;
  }
  if (dlen)
    memcpy(resp, data, dlen);
  *resp_len = dlen;
  return 0;
}

/* The exchange, retried with back-off while the listener answers BUSY,
 * until the deadline. */
static int call_at(const mc_ctrl_client *c, const char *peer,
                   const char *host, uint16_t port, const char *name,
                   const char *transport, const void *req, size_t req_len,
                   void *resp, size_t *resp_len, uint64_t deadline,
                   uint32_t timeout_ms) {
  uint8_t *frame = malloc(MC_P2P_CTRL_REQ_MAX);
  if (!frame)
    return MC_ENOMEM;
  size_t flen = mc_p2p_build_ctrl(c->token && c->token[0] ? c->token : NULL,
                                  c->self, name, transport, req, req_len, frame,
                                  MC_P2P_CTRL_REQ_MAX);
  if (flen == 0) {
    free(frame);
    mc_last_error_set("ctrl_call: segment '%s' cannot travel in a control "
                      "frame", peer);
    return MC_EINVAL;
  }
  int rc = 0;
  for (unsigned attempt = 1;; attempt++) {
    uint64_t now = mc_now_ms();
    if (now >= deadline) {
      mc_last_error_set("ctrl_call: segment '%s': no answer in %u ms%s", peer,
                        (unsigned)timeout_ms,
                        rc == MC_EAGAIN ? " (its listener stayed busy)" : "");
      rc = MC_ETIMEDOUT;
      break;
    }
    int retry = 0;
    rc = exchange(c, peer, host, port, frame, flen, resp, resp_len, deadline,
                  &retry);
    if (!retry)
      break;
    rc = MC_EAGAIN;
    uint32_t wait = mc_listener_backoff_ms(attempt);
    now = mc_now_ms();
    if (now + wait > deadline)
      wait = deadline > now ? (uint32_t)(deadline - now) : 0;
    MC_DEBUG(c->log, COMP, "segment '%s': listener busy, retrying in %u ms",
             peer, (unsigned)wait);
    sleep_ms(wait);
  }
  free(frame);
  return rc;
}

int mc_ctrl_call(mc_ctrl_client *c, const char *transport, const char *peer,
                 const void *req, size_t req_len, void *resp, size_t *resp_len,
                 uint32_t timeout_ms) {
  if (!c || !c->md || !transport || !peer || !req || req_len == 0 ||
      req_len > MC_CTRL_MAX || !resp_len || (!resp && *resp_len))
    return MC_EINVAL;
  if (timeout_ms == 0)
    timeout_ms = c->timeout_ms ? c->timeout_ms : 5000;
  uint64_t deadline = mc_now_ms() + timeout_ms;
  char host[MC_NAME_MAX], name[MC_NAME_MAX];
  uint16_t port = 0;
  if (cache_get(c, peer, host, &port, name)) {
    int rc = call_at(c, peer, host, port, name, transport, req, req_len, resp,
                     resp_len, deadline, timeout_ms);
    /* Gone from that address (or the address now serves another engine):
     * the descriptor may know better. */
    if (rc != MC_EPEER)
      return rc;
    cache_drop(c, peer);
  }
  int rc = peer_listener(c, peer, host, sizeof host, &port, name);
  if (rc)
    return rc;
  rc = call_at(c, peer, host, port, name, transport, req, req_len, resp,
               resp_len, deadline, timeout_ms);
  if (rc != MC_EPEER && rc != MC_ETIMEDOUT)
    cache_put(c, peer, host, port, name);
  return rc;
}
