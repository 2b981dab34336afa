/* efa_notify.c - notifications: small fi_send messages to the peer's rail,
 * received into buffers each rail keeps posted.  A message carries the
 * sender's segment name and the target's own secret from the descriptor it
 * published (readable only by holders of the cluster token); the target
 * delivers only messages with its secret, under that name -- the same
 * attribution as the tcp plugin's HELLO.  Writes complete with
 * FI_DELIVERY_COMPLETE (or the provider orders sends after writes,
 * FI_ORDER_SAW), so a notification sent after a write completed is seen
 * after its data. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "efa_ctx.h"

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

int efa_notify_post_recvs(efa_rail *r) {
  efa_ctx *ctx = r->ctx;
  size_t total = (size_t)(EFA_RECV_SLOTS + EFA_SEND_SLOTS) * EFA_NOTE_MAX;
  r->note_mem = calloc(1, total);
  if (!r->note_mem)
    return MC_ENOMEM;
  if (ctx->mr_mode & FI_MR_LOCAL) {
    int rc = fi_mr_reg(r->domain, r->note_mem, total, FI_SEND | FI_RECV, 0, 0, 0,
                       &r->note_mr, NULL);
    if (!rc && (ctx->mr_mode & FI_MR_ENDPOINT)) {
      rc = fi_mr_bind(r->note_mr, &r->ep->fid, 0);
      if (!rc)
        rc = fi_mr_enable(r->note_mr);
    }
    if (rc) {
      EFA_LOG(ctx, MC_LOG_ERROR, "rail %s: cannot register notification buffers: %s",
              r->ri.name, fi_strerror(-rc));
      return MC_EIO;
    }
    r->note_desc = fi_mr_desc(r->note_mr);
  }
  for (uint32_t i = 0; i < EFA_SEND_SLOTS; i++) {
    r->send_ops[i].kind = EFA_OP_SEND;
    r->send_ops[i].buf = r->note_mem + (size_t)(EFA_RECV_SLOTS + i) * EFA_NOTE_MAX;
  }
  for (uint32_t i = 0; i < EFA_RECV_SLOTS; i++) {
    efa_op *op = &r->recv_ops[i];
    op->kind = EFA_OP_RECV;
    op->buf = r->note_mem + (size_t)i * EFA_NOTE_MAX;
    ssize_t rc = -FI_EAGAIN;
    /* -FI_EAGAIN asks for progress (a CQ read) before a retry; bounded. */
    for (int tries = 0; rc == -FI_EAGAIN && tries < 1000; tries++) {
      rc = fi_recv(r->ep, op->buf, EFA_NOTE_MAX, r->note_desc, FI_ADDR_UNSPEC, &op->fctx);
      if (rc == -FI_EAGAIN)
        (void)fi_cq_read(r->cq, NULL, 0);
    }
    if (rc) {
      EFA_LOG(ctx, MC_LOG_ERROR, "rail %s: fi_recv: %s", r->ri.name, fi_strerror((int)-rc));
      return MC_EIO;
    }
  }
  return 0;
}

/* A received message, rail lock held: checked, then handed to the core. */
void efa_notify_recv_done(efa_rail *r, efa_op *op, size_t len) {
  efa_ctx *ctx = r->ctx;
  const uint8_t *b = op->buf;
  if (len < EFA_NOTE_HDR || len > EFA_NOTE_MAX || get32(b) != EFA_NOTE_MAGIC || b[4] != 1)
    goto bad;
  size_t nl = b[5];
  if (nl == 0 || nl >= MC_NAME_MAX || len - EFA_NOTE_HDR < nl)
    goto bad;
  uint8_t diff = 0; /* constant time: no early exit on the first mismatch */
  for (size_t i = 0; i < EFAB_SECRET; i++)
    diff |= (uint8_t)(b[8 + i] ^ ctx->secret[i]);
  if (diff)
    goto bad;
  if (b[6] & EFA_NOTE_PING)
    return; /* a probe: its delivery is all the sender asked for */
  char name[MC_NAME_MAX];
  for (size_t i = 0; i < nl; i++) {
    char c = (char)b[EFA_NOTE_HDR + i];
    if (c < 0x20 || c > 0x7e)
      goto bad;
    name[i] = c;
  }
  name[nl] = '\0';
  size_t ml = len - EFA_NOTE_HDR - nl;
  if (ml > MC_NOTIFY_MAX)
    goto bad;
  ctx->host->notify_recv(ctx->host->host, name, b + EFA_NOTE_HDR + nl, ml);
  return;
bad:
  EFA_LOG(ctx, MC_LOG_WARN, "rail %s: dropped a malformed or unauthenticated notification "
          "(%zu bytes)", r->ri.name, len);
}

/* The header and the sender's name into b; returns the name's length. */
static size_t put_header(const efa_ctx *ctx, const efa_peer *peer, uint8_t *b, uint8_t flags) {
  size_t nl = strlen(ctx->segment);
  put32(b, EFA_NOTE_MAGIC);
  b[4] = 1;
  b[5] = (uint8_t)nl;
  b[6] = flags;
  b[7] = 0;
  memcpy(b + 8, peer->desc.secret, EFAB_SECRET);
  memcpy(b + EFA_NOTE_HDR, ctx->segment, nl);
  return nl;
}

/* A probe: an authenticated message the target drops; its completion
 * here (success, or an error when the peer is unreachable) answers
 * whether the peer is alive.  Rail lock held, dropped around fi_send. */
int efa_ping_post(efa_rail *r, efa_peer *peer) {
  if (peer->av_state[r->idx] <= 0)
    return peer->av_state[r->idx] < 0 ? -FI_EADDRNOTAVAIL : -FI_EAGAIN;
  efa_op *op = NULL;
  for (uint32_t i = 0; i < EFA_SEND_SLOTS && !op; i++)
    if (r->send_ops[i].state == EFA_ST_FREE)
      op = &r->send_ops[i];
  if (!op || pthread_mutex_trylock(&r->post_lock))
    return -FI_EAGAIN;
  size_t nl = put_header(r->ctx, peer, op->buf, EFA_NOTE_PING);
  op->state = EFA_ST_POSTED;
  op->ping = 1;
  op->peer = peer;
  peer->ping[r->idx] = 1;
  fi_addr_t fa = peer->fa[r->idx];
  pthread_mutex_unlock(&r->lock);
  ssize_t rc = fi_send(r->ep, op->buf, EFA_NOTE_HDR + nl, r->note_desc, fa, &op->fctx);
  pthread_mutex_unlock(&r->post_lock);
  pthread_mutex_lock(&r->lock);
  if (rc) {
    /* A disconnect meanwhile cleared op->peer (efa_peer_cancel_all) and
     * may have freed peer: touch it only when still named. */
    if (op->peer == peer)
      peer->ping[r->idx] = 0;
    op->state = EFA_ST_FREE;
    op->peer = NULL;
  }
  return (int)rc;
}

/* Posts the message on the first usable rail; waits (bounded by
 * timeout_ms) for the peer's address, a free slot or the provider. */
int efa_notify_send(efa_ctx *ctx, efa_peer *peer, const void *msg, size_t len) {
  size_t nl = strlen(ctx->segment);
  int64_t deadline = efa_now_ms() + ctx->cfg.timeout_ms;
  for (;;) {
    int64_t now = efa_now_ms();
    int ri = -1;
    for (uint32_t k = 0; k < ctx->nrails && ri < 0; k++)
      if (peer->av_state[k] >= 0)
        ri = (int)k;
    if (ri < 0)
      return MC_EPEER;
    efa_rail *r = &ctx->rails[ri];
    pthread_mutex_lock(&r->lock);
    efa_op *op = NULL;
    for (uint32_t i = 0; i < EFA_SEND_SLOTS && !op; i++)
      if (r->send_ops[i].state == EFA_ST_FREE)
        op = &r->send_ops[i];
    ssize_t rc = -FI_EAGAIN;
    if (op && peer->av_state[ri] > 0 && pthread_mutex_trylock(&r->post_lock) == 0) {
      uint8_t *b = op->buf;
      put_header(ctx, peer, b, 0);
      if (len)
        memcpy(b + EFA_NOTE_HDR + nl, msg, len);
      op->state = EFA_ST_POSTED;
      op->ping = 0;
      op->peer = NULL;
      fi_addr_t fa = peer->fa[ri];
      /* Not under the rail lock: a provider call may block (efa_xfer.c,
       * post_queued), and the deadline thread needs the lock.  The slot
       * is ours while POSTED; its CQ entry may free it before we relock. */
      pthread_mutex_unlock(&r->lock);
      rc = fi_send(r->ep, b, EFA_NOTE_HDR + nl + len, r->note_desc, fa, &op->fctx);
      pthread_mutex_unlock(&r->post_lock);
      pthread_mutex_lock(&r->lock);
      if (rc)
        op->state = EFA_ST_FREE;
    }
    if (rc == 0 || rc != -FI_EAGAIN) {
      pthread_mutex_unlock(&r->lock);
      if (rc)
        EFA_LOG(ctx, MC_LOG_WARN, "notification to '%s': fi_send: %s", peer->name,
                fi_strerror((int)-rc));
      return rc ? efa_err_map((int)-rc) : 0;
    }
    if (now >= deadline || r->stop) {
      pthread_mutex_unlock(&r->lock);
      return MC_ETIMEDOUT;
    }
    /* The worker progresses the provider and signals freed slots and
     * resolved addresses. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    pthread_mutex_unlock(&r->lock);
  }
}
