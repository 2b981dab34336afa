/* tcp_frames.c - the target's non-blocking frame machine (tcp_frames.h).
 *
 * Frames are served in order.  READ: the buffer is checked and pinned and
 * the response (header, then the bytes straight from registered memory) is
 * queued; up to SV_OUT_MAX queued responses go out in one sendmsg.  WRITE:
 * checked and pinned, the payload is received straight into registered
 * memory (what arrived with the header is copied from the input buffer),
 * a refused one is drained, never stored.  NOTIFY: delivered once whole,
 * after every frame before it was served. */
#include "tcp_frames.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tcp_file.h"
#include "tcp_io.h"

int sv_busy(const sv_conn *c) { return c->in_write || c->on > 0 || c->in_len > 0; }

static void out_reset(tcp_ctx *ctx, sv_conn *c) {
  for (uint32_t i = 0; i < c->onpin; i++)
    tcp_reg_release(&ctx->reg, c->opin[i]);
  c->on = c->oniov = c->opos = c->onpin = 0;
  free(c->ofile);
  c->ofile = NULL;
}

void sv_release(tcp_ctx *ctx, sv_conn *c) {
  out_reset(ctx, c);
  if (c->wpin)
    tcp_reg_release(&ctx->reg, c->wpin);
  c->wpin = NULL;
  c->in_write = 0;
  free(c->wfile);
  c->wfile = NULL;
}

static void out_push(sv_conn *c, const tcpw_hdr *h, const void *payload, size_t plen,
                     tcp_buf *pin) {
  tcpw_hdr_encode(h, c->ohdr[c->on]);
  c->oiov[c->oniov++] = (struct iovec){c->ohdr[c->on], TCPW_HDR_SIZE};
  if (plen)
    c->oiov[c->oniov++] = (struct iovec){(void *)(uintptr_t)payload, plen};
  if (pin)
    c->opin[c->onpin++] = pin;
  c->on++;
}

/* Sends pending responses: 0 all sent (and released), 1 the socket is
 * full, MC_EPEER. */
static int out_send(tcp_ctx *ctx, sv_conn *c) {
  while (c->opos < c->oniov) {
    struct msghdr m = {.msg_iov = c->oiov + c->opos,
                       .msg_iovlen = (size_t)(c->oniov - c->opos)};
    ssize_t k = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : MC_EPEER;
    }
    c->last_ms = tcp_now_ms();
    size_t done = (size_t)k;
    while (c->opos < c->oniov && done >= c->oiov[c->opos].iov_len)
      done -= c->oiov[c->opos++].iov_len;
    if (c->opos < c->oniov) {
      c->oiov[c->opos].iov_base = (char *)c->oiov[c->opos].iov_base + done;
      c->oiov[c->opos].iov_len -= done;
    }
  }
  out_reset(ctx, c);
  return 0;
}

/* Consumed input is skipped, not moved (a burst of READ headers would
 * otherwise cost a memmove of the rest per frame); recv compacts. */
static void consume(sv_conn *c, size_t n) {
  c->in_len -= n;
  c->in_off = c->in_len ? c->in_off + n : 0;
}

static void log_refusal(tcp_ctx *ctx, sv_conn *c, const tcpw_hdr *h, int rc) {
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

/* Receives the rest of a WRITE payload: 0 done (response queued), 1 more
 * to come, MC_EPEER. */
static int write_more(tcp_ctx *ctx, sv_conn *c, char *scratch, uint64_t *bytes) {
  while (c->wleft) {
    size_t want = c->wdst ? (size_t)c->wleft
                          : (c->wleft < SV_SCRATCH ? (size_t)c->wleft : SV_SCRATCH);
    /* The input buffer is empty while a payload arrives (what came with
     * the header was consumed first).  When this recv can take the whole
     * rest, the next frame's header is read by the same call: a stream of
     * WRITEs costs one system call per frame, not two, and no byte of a
     * payload goes through the input buffer. */
    struct iovec iov[2] = {{c->wdst ? (void *)c->wdst : scratch, want},
                           {c->in, TCPW_HDR_SIZE}};
    int chain = want == c->wleft && c->in_len == 0;
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = chain ? 2 : 1};
    ssize_t k = recvmsg(c->fd, &m, MSG_DONTWAIT);
    if (k > 0) {
      size_t pk = (size_t)k < want ? (size_t)k : want;
      if (c->wdst)
        c->wdst += pk;
      c->wleft -= (uint64_t)pk;
      *bytes += (uint64_t)pk;
      if ((size_t)k > pk) { /* the next header, or its first bytes */
        c->in_off = 0;
        c->in_len = (size_t)k - pk;
      }
      c->last_ms = tcp_now_ms();
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 1;
    return MC_EPEER;
  }
  if (c->wfile) { /* the whole payload of a WRITE into a file range */
    c->wresp.status = tcp_file_write_end(ctx, c->wpin, c->peer, c->waddr, c->wfile,
                                         c->wresp.len);
    free(c->wfile);
    c->wfile = NULL;
  }
  if (c->wpin)
    tcp_reg_release(&ctx->reg, c->wpin);
  c->wpin = NULL;
  c->in_write = 0;
  out_push(c, &c->wresp, NULL, 0, NULL);
  return 0;
}

/* Serves the complete frame at the head of the input buffer (its header
 * decoded into h).  0, 1 (a WRITE payload is still arriving), MC_E*. */
static int serve(tcp_ctx *ctx, sv_conn *c, const tcpw_hdr *h, char *scratch,
                 uint64_t *bytes) {
  tcp_buf *b = NULL;
  int rc;
  switch (h->type) {
  case TCPW_READ: {
    consume(c, TCPW_HDR_SIZE);
    tcpw_hdr resp = {.type = TCPW_READ_RESP, .seq = h->seq, .len = h->len};
    rc = tcp_reg_acquire(&ctx->reg, h->buf_id, h->secret, h->addr, h->len, &b);
    if (rc) {
      log_refusal(ctx, c, h, rc);
      resp.status = rc;
      out_push(c, &resp, NULL, 0, NULL);
    } else if (b->fd >= 0) { /* a file range: its bytes, read now */
      void *data = NULL;
      resp.status = tcp_file_read(ctx, b, c->peer, h->addr, h->len, &data);
      tcp_reg_release(&ctx->reg, b);
      out_push(c, &resp, data, resp.status ? 0 : (size_t)h->len, NULL);
      c->ofile = data;
      *bytes += resp.status ? 0 : h->len;
    } else {
      /* Pinned until the response is sent (out_send). */
      out_push(c, &resp, (const void *)(uintptr_t)h->addr, (size_t)h->len, b);
      *bytes += h->len;
    }
    return 0;
  }
  case TCPW_WRITE: {
    consume(c, TCPW_HDR_SIZE);
    rc = tcp_reg_acquire(&ctx->reg, h->buf_id, h->secret, h->addr, h->len, &b);
    void *file = NULL;
    if (rc) {
      log_refusal(ctx, c, h, rc);
    } else if (b->fd >= 0) { /* a file range: received whole, then written */
      rc = tcp_file_write_begin(ctx, b, c->peer, h->len, &file);
      if (rc) {
        tcp_reg_release(&ctx->reg, b);
        b = NULL;
      }
    }
    c->wresp = (tcpw_hdr){.type = TCPW_WRITE_RESP, .seq = h->seq, .len = h->len,
                          .status = rc};
    c->wfile = file;
    c->waddr = h->addr;
    /* A refused payload is drained, never stored in the target's memory. */
    c->wdst = rc ? NULL : file ? (uint8_t *)file : (uint8_t *)(uintptr_t)h->addr;
    c->wpin = b;
    c->wleft = h->len;
    c->in_write = 1;
    size_t have = c->in_len < h->len ? c->in_len : (size_t)h->len;
    if (have) {
      if (c->wdst) {
        memcpy(c->wdst, c->in + c->in_off, have);
        c->wdst += have;
      }
      consume(c, have);
      c->wleft -= have;
      *bytes += have;
    }
    return write_more(ctx, c, scratch, bytes);
  }
  case TCPW_NOTIFY: {
    /* Frames before it on this connection have been served: the data the
     * initiator saw complete is in memory before the message is
     * delivered. */
    ctx->host->notify_recv(ctx->host->host, c->peer, c->in + c->in_off + TCPW_HDR_SIZE,
                           (size_t)h->len);
    consume(c, TCPW_HDR_SIZE + (size_t)h->len);
    return 0;
  }
  default:
    return MC_EPROTO;
  }
}

int sv_turn(tcp_ctx *ctx, sv_conn *c, char *scratch, int *again) {
  uint32_t frames = 0;
  uint64_t bytes = 0;
  *again = 0;
  for (;;) {
    /* A full (or partly sent) response queue goes out before anything
     * new is read: the peer must read what it asked for. */
    if (c->on >= SV_OUT_MAX || c->opos > 0 || c->ofile) {
      int rc = out_send(ctx, c);
      if (rc)
        return rc < 0 ? rc : 0;
    }
    if (c->in_write) {
      int rc = write_more(ctx, c, scratch, &bytes);
      if (rc < 0)
        return rc;
      if (rc > 0)
        break; /* the rest of the payload is on its way */
      continue;
    }
    if (frames >= SV_TURN_FRAMES || bytes >= SV_TURN_BYTES) {
      *again = c->in_len >= TCPW_HDR_SIZE;
      break;
    }
    tcpw_hdr h;
    if (c->in_len >= TCPW_HDR_SIZE) {
      if (tcpw_hdr_decode(c->in + c->in_off, TCPW_HDR_SIZE, &h) ||
          (h.type != TCPW_READ && h.type != TCPW_WRITE && h.type != TCPW_NOTIFY)) {
        TCP_LOG(ctx, MC_LOG_WARN, "protocol error from peer '%s' (%s), closing", c->peer,
                c->addr);
        return MC_EPROTO;
      }
      if (h.type != TCPW_NOTIFY || c->in_len >= TCPW_HDR_SIZE + h.len) {
        frames++;
        int rc = serve(ctx, c, &h, scratch, &bytes);
        if (rc < 0)
          return rc;
        continue;
      }
    }
    if (c->in_off) { /* an incomplete frame: to the front, so a whole NOTIFY fits */
      memmove(c->in, c->in + c->in_off, c->in_len);
      c->in_off = 0;
    }
    ssize_t k = recv(c->fd, c->in + c->in_len, SV_IN_CAP - c->in_len, MSG_DONTWAIT);
    if (k > 0) {
      c->in_len += (size_t)k;
      c->last_ms = tcp_now_ms();
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      return MC_EPEER;
    break; /* nothing more now */
  }
  if (c->on) {
    int rc = out_send(ctx, c);
    if (rc < 0)
      return rc;
  }
  return 0;
}
