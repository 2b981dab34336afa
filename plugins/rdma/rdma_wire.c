/* rdma_wire.c - see rdma_wire.h. */
#include "rdma_wire.h"

#include <string.h>

#include "mooncake/errors.h"

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- descriptor: magic(4) ver(1) nrails(1) pad(2) nonce(8), then 20 B a rail */
#define DESC_HDR 16
#define DESC_RAIL 20

int rdw_desc_encode(const rdw_desc *d, void *buf, size_t *len) {
  if (d->nrails == 0 || d->nrails > RDW_MAX_RAILS)
    return MC_EINVAL;
  size_t need = DESC_HDR + (size_t)d->nrails * DESC_RAIL;
  if (!buf || *len < need) {
    *len = need;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  memset(p, 0, need);
  put32(p, RDW_DESC_MAGIC);
  p[4] = RDW_VERSION;
  p[5] = (uint8_t)d->nrails;
  put64(p + 8, d->nonce);
  for (uint32_t i = 0; i < d->nrails; i++) {
    uint8_t *r = p + DESC_HDR + i * DESC_RAIL;
    memcpy(r, d->rails[i].gid, 16);
    put16(r + 16, d->rails[i].lid);
    r[18] = d->rails[i].link_ib;
    r[19] = d->rails[i].mtu;
  }
  *len = need;
  return 0;
}

int rdw_desc_decode(const void *buf, size_t len, rdw_desc *d) {
  const uint8_t *p = buf;
  if (!buf || len < DESC_HDR || get32(p) != RDW_DESC_MAGIC || p[4] != RDW_VERSION)
    return MC_EPROTO;
  uint32_t n = p[5];
  if (n == 0 || n > RDW_MAX_RAILS || len != DESC_HDR + (size_t)n * DESC_RAIL || p[6] || p[7])
    return MC_EPROTO;
  memset(d, 0, sizeof *d);
  d->nonce = get64(p + 8);
  d->nrails = n;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *r = p + DESC_HDR + i * DESC_RAIL;
    memcpy(d->rails[i].gid, r, 16);
    d->rails[i].lid = get16(r + 16);
    d->rails[i].link_ib = r[18];
    d->rails[i].mtu = r[19];
    if (d->rails[i].link_ib > 1 || d->rails[i].mtu < 1 || d->rails[i].mtu > 5)
      return MC_EPROTO;
  }
  return 0;
}

/* ---- rkey: magic(2) ver(1) nrails(1) nchunks(2) pad(2) nonce base len chunk */

size_t rdw_rkey_size(uint32_t nkeys) { return RDW_RKEY_HDR + (size_t)nkeys * 4; }

int rdw_rkey_encode(const rdw_rkey *k, void *buf, size_t *len) {
  uint32_t nk = k->nrails * k->nchunks;
  if (k->nrails == 0 || k->nrails > RDW_MAX_RAILS || k->nchunks == 0 ||
      nk > RDW_RKEY_MAX_KEYS)
    return MC_ENOTSUP;
  size_t need = rdw_rkey_size(nk);
  if (!buf || *len < need) {
    *len = need;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  memset(p, 0, need);
  put16(p, RDW_RKEY_MAGIC);
  p[2] = RDW_VERSION;
  p[3] = (uint8_t)k->nrails;
  put16(p + 4, (uint16_t)k->nchunks);
  put64(p + 8, k->nonce);
  put64(p + 16, k->base);
  put64(p + 24, k->len);
  put64(p + 32, k->chunk);
  for (uint32_t i = 0; i < nk; i++)
    put32(p + RDW_RKEY_HDR + 4 * i, k->keys[i]);
  *len = need;
  return 0;
}

int rdw_rkey_decode(const void *buf, size_t len, rdw_rkey *k) {
  const uint8_t *p = buf;
  if (!buf || len < RDW_RKEY_HDR || get16(p) != RDW_RKEY_MAGIC || p[2] != RDW_VERSION)
    return MC_EPROTO;
  uint32_t nr = p[3], nc = get16(p + 4);
  if (nr == 0 || nr > RDW_MAX_RAILS || nc == 0 || nr * nc > RDW_RKEY_MAX_KEYS ||
      len != rdw_rkey_size(nr * nc) || p[6] || p[7])
    return MC_EPROTO;
  memset(k, 0, sizeof *k);
  k->nrails = nr;
  k->nchunks = nc;
  k->nonce = get64(p + 8);
  k->base = get64(p + 16);
  k->len = get64(p + 24);
  k->chunk = get64(p + 32);
  /* The chunks must cover [base, +len) exactly, without overflow. */
  if (k->len == 0 || k->base + k->len < k->base || k->chunk == 0 ||
      (k->len - 1) / k->chunk + 1 != nc)
    return MC_EPROTO;
  for (uint32_t i = 0; i < nr * nc; i++)
    k->keys[i] = get32(p + RDW_RKEY_HDR + 4 * i);
  return 0;
}

/* ---- ctrl: magic(2) ver(1) type(1) nqps(2) pad(2) init_nonce target_nonce ep_id */

int rdw_ctrl_encode(const rdw_ctrl *m, void *buf, size_t *len) {
  size_t body = m->type == RDW_NOTIFY ? m->payload_len : (size_t)m->nqps * RDW_QP_ENTRY;
  if (m->nqps > RDW_MAX_QPS || RDW_CTRL_HDR + body > 4096)
    return MC_EINVAL;
  size_t need = RDW_CTRL_HDR + body;
  if (!buf || *len < need) {
    *len = need;
    return MC_ENOSPC;
  }
  uint8_t *p = buf;
  memset(p, 0, need);
  put16(p, RDW_CTRL_MAGIC);
  p[2] = RDW_VERSION;
  p[3] = (uint8_t)m->type;
  put16(p + 4, (uint16_t)(m->type == RDW_NOTIFY ? 0 : m->nqps));
  put64(p + 8, m->init_nonce);
  put64(p + 16, m->target_nonce);
  put64(p + 24, m->ep_id);
  if (m->type == RDW_NOTIFY) {
    if (m->payload_len)
      memcpy(p + RDW_CTRL_HDR, m->payload, m->payload_len);
  } else {
    for (uint32_t i = 0; i < m->nqps; i++) {
      uint8_t *q = p + RDW_CTRL_HDR + i * RDW_QP_ENTRY;
      const rdw_qp *e = &m->qps[i];
      put16(q, e->qidx);
      q[2] = e->lrail;
      q[3] = e->rrail;
      put32(q + 4, e->qpn);
      put32(q + 8, e->psn);
      put16(q + 12, e->lid);
      q[14] = e->mtu;
      q[15] = e->flags;
      memcpy(q + 16, e->gid, 16);
    }
  }
  *len = need;
  return 0;
}

int rdw_ctrl_decode(const void *buf, size_t len, rdw_ctrl *m) {
  const uint8_t *p = buf;
  if (!buf || len < RDW_CTRL_HDR || len > 4096 || get16(p) != RDW_CTRL_MAGIC ||
      p[2] != RDW_VERSION)
    return MC_EPROTO;
  uint32_t type = p[3], nq = get16(p + 4);
  if (type < RDW_CONNECT || type > RDW_NOTIFY || p[6] || p[7])
    return MC_EPROTO;
  m->type = type;
  m->init_nonce = get64(p + 8);
  m->target_nonce = get64(p + 16);
  m->ep_id = get64(p + 24);
  m->payload = NULL;
  m->payload_len = 0;
  m->nqps = 0;
  if (type == RDW_NOTIFY) {
    if (nq)
      return MC_EPROTO;
    m->payload = p + RDW_CTRL_HDR;
    m->payload_len = len - RDW_CTRL_HDR;
    return 0;
  }
  if (nq > RDW_MAX_QPS || len != RDW_CTRL_HDR + (size_t)nq * RDW_QP_ENTRY)
    return MC_EPROTO;
  m->nqps = nq;
  for (uint32_t i = 0; i < nq; i++) {
    const uint8_t *q = p + RDW_CTRL_HDR + i * RDW_QP_ENTRY;
    rdw_qp *e = &m->qps[i];
    e->qidx = get16(q);
    e->lrail = q[2];
    e->rrail = q[3];
    e->qpn = get32(q + 4);
    e->psn = get32(q + 8);
    e->lid = get16(q + 12);
    e->mtu = q[14];
    e->flags = q[15];
    memcpy(e->gid, q + 16, 16);
    /* Unknown flags refused, QPNs and PSNs are 24-bit: one encoding per
     * message. */
    if (e->lrail >= RDW_MAX_RAILS || e->rrail >= RDW_MAX_RAILS || e->mtu < 1 || e->mtu > 5 ||
        e->qpn == 0 || e->qpn > 0xffffffu || e->psn > 0xffffffu || (q[15] & ~RDW_QP_NOTIFY))
      return MC_EPROTO;
  }
  return 0;
}
