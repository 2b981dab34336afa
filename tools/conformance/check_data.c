/* mc-transport-conformance: rails, descriptors, blob fuzzing, loopback
 * data, back-pressure, notifications and cancel. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

void check_rails(const plugin *p, tctx *a, uint32_t *nrails) {
  uint32_t n = 0;
  int rc = p->ops->query_rails(a->ctx, NULL, &n);
  *nrails = 1;
  if (rc != MC_ENOSPC || n < 1) {
    fail("rails.query", "capacity 0 gave %s and n=%u, expected ENOSPC and n>=1", mc_errname(rc), n);
    return;
  }
  mc_rail_info *r = calloc(n, sizeof *r);
  uint32_t m = n;
  rc = p->ops->query_rails(a->ctx, r, &m);
  int ok = rc == 0 && m == n;
  for (uint32_t i = 0; ok && i < n; i++) {
    if (!r[i].name[0] || memchr(r[i].name, 0, sizeof r[i].name) == NULL)
      ok = 0;
    for (uint32_t j = 0; j < i && ok; j++)
      if (!strcmp(r[i].name, r[j].name))
        ok = 0;
  }
  if (ok) {
    pass("rails.query", "%u rails, first '%s'", n, r[0].name);
    *nrails = n;
  } else {
    fail("rails.query", "%s, %u rails, names empty or duplicate", mc_errname(rc), m);
  }
  free(r);
}

void check_desc(const plugin *p, tctx *a) {
  size_t len = 0;
  int rc = p->ops->local_desc(a->ctx, NULL, &len);
  uint8_t again[MC_DESC_MAX];
  size_t alen = sizeof again;
  int rc2 = p->ops->local_desc(a->ctx, again, &alen);
  if (rc != MC_ENOSPC || len != a->desc_len || rc2 || alen != a->desc_len ||
      memcmp(again, a->desc, alen) || a->desc_len == 0 || a->desc_len > MC_DESC_MAX)
    fail("desc.local", "size query %s/%zu, refetch %s/%zu, first %zu bytes (stable, <= %d)",
         mc_errname(rc), len, mc_errname(rc2), alen, a->desc_len, MC_DESC_MAX);
  else
    pass("desc.local", "%zu bytes, stable, ENOSPC reports the size", a->desc_len);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

void check_blob_fuzz(const plugin *p, tctx *b, const tctx *a, const reg *ra,
                            uint64_t base, uint64_t len) {
  uint8_t blob[MC_DESC_MAX];
  int bad = 0, accepted = 0;
  void *ep = NULL;
  /* Truncations and random garbage must be refused. */
  for (size_t l = 0; l < a->desc_len; l++) {
    if (p->ops->connect(b->ctx, "fuzz", a->desc, l, &ep) == 0) {
      bad++;
      p->ops->disconnect(b->ctx, ep);
    }
  }
  for (int i = 0; i < 300; i++) {
    size_t l = rng() % 96;
    for (size_t k = 0; k < l; k++)
      blob[k] = (uint8_t)rng();
    if (p->ops->connect(b->ctx, "fuzz", blob, l, &ep) == 0) {
      bad++;
      p->ops->disconnect(b->ctx, ep);
    }
  }
  /* Bit flips may still be valid descriptors: they must only not crash. */
  for (size_t k = 0; k < a->desc_len * 8 && k < 2048; k++) {
    memcpy(blob, a->desc, a->desc_len);
    blob[k / 8] ^= (uint8_t)(1u << (k % 8));
    if (p->ops->connect(b->ctx, "fuzz", blob, a->desc_len, &ep) == 0) {
      accepted++;
      p->ops->disconnect(b->ctx, ep);
    }
  }
  if (bad)
    fail("fuzz.desc", "%d truncated/garbage descriptors accepted by connect", bad);
  else
    pass("fuzz.desc", "truncated and garbage refused; %d bit-flipped variants accepted", accepted);

  /* import_mem on a real endpoint. */
  if (p->ops->connect(b->ctx, a->host.name, a->desc, a->desc_len, &ep)) {
    fail("fuzz.rkey", "connect to a valid descriptor failed");
    return;
  }
  bad = accepted = 0;
  void *rm = NULL;
  for (size_t l = 0; l < ra->rkey_len; l++)
    if (p->ops->import_mem(b->ctx, ep, base, len, ra->rkey, l, &rm) == 0) {
      bad++;
      p->ops->release_mem(b->ctx, rm);
    }
  for (int i = 0; i < 300; i++) {
    size_t l = rng() % (MC_RKEY_MAX + 1);
    for (size_t k = 0; k < l; k++)
      blob[k] = (uint8_t)rng();
    if (p->ops->import_mem(b->ctx, ep, base, len, blob, l, &rm) == 0) {
      bad++;
      p->ops->release_mem(b->ctx, rm);
    }
  }
  for (size_t k = 0; k < ra->rkey_len * 8; k++) {
    memcpy(blob, ra->rkey, ra->rkey_len);
    blob[k / 8] ^= (uint8_t)(1u << (k % 8));
    if (p->ops->import_mem(b->ctx, ep, base, len, blob, ra->rkey_len, &rm) == 0) {
      accepted++;
      p->ops->release_mem(b->ctx, rm);
    }
  }
  p->ops->disconnect(b->ctx, ep);
  if (bad)
    fail("fuzz.rkey", "%d truncated/garbage remote keys accepted by import_mem", bad);
  else
    pass("fuzz.rkey", "truncated and garbage refused; %d bit-flipped variants accepted", accepted);
}

void check_loopback(pair *x) {
  static const size_t sizes[] = {1, 3, 4095, 4096, 65537, ((size_t)1 << 20) + 3, (size_t)4 << 20};
  static const size_t slices[] = {(size_t)64 << 10, (size_t)16 << 20};
  int ok = 1;
  char why[256] = "";
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0] && ok; si++) {
    for (size_t sl = 0; sl < 2 && ok; sl++) {
      for (uint32_t op = 0; op < 2 && ok; op++) {
        size_t len = sizes[si], loff = 1 + si * 7, roff = 3 + si * 5;
        uint8_t *src = op == MC_OP_WRITE ? x->bbuf + loff : x->abuf + roff;
        uint8_t *dst = op == MC_OP_WRITE ? x->abuf + roff : x->bbuf + loff;
        fill_pattern(src, len, (uint32_t)(si * 4 + sl * 2 + op));
        memset(dst, 0xEE, len);
        /* Guard bytes around dst must survive. */
        uint8_t before = dst[-1], after = dst[len];
        int err = 0;
        if (xfer(x, op, loff, roff, len, slices[sl], &err)) {
          snprintf(why, sizeof why, "%s of %zu bytes failed: %s", op ? "write" : "read", len,
                   mc_errname(err));
          ok = 0;
        } else if (memcmp(src, dst, len) || dst[-1] != before || dst[len] != after) {
          snprintf(why, sizeof why, "%s of %zu bytes: data mismatch", op ? "write" : "read", len);
          ok = 0;
        }
      }
    }
  }
  if (ok)
    pass("loopback.data", "read and write, 1 B .. 4 MiB, unaligned, one slice and 64 KiB slices over %u rails",
         x->nrails);
  else
    fail("loopback.data", "%s", why);
}

/* One slice on (ep, rmem) at remote address raddr; returns its status. */
typedef struct mt_arg {
  pair *x;
  uint32_t n;
  uint64_t t0;
  uint64_t partial;
  int rc;
  int id;
} mt_arg;

static void *mt_main(void *v) {
  mt_arg *m = v;
  mc_slice *s = calloc(m->n, sizeof *s);
  for (uint32_t i = 0; i < m->n; i++) {
    uint64_t off = ((uint64_t)(i + m->id * 7919u) * 4096u) % (BUF_SIZE - 4096);
    s[i] = (mc_slice){m->t0 + i, i % 2 ? MC_OP_WRITE : MC_OP_READ, i % m->x->nrails,
                      m->x->rb.mem, (uint64_t)(uintptr_t)m->x->bbuf + (m->id ? BUF_SIZE / 2 : 0),
                      m->x->rmem, (uint64_t)(uintptr_t)m->x->abuf + off, 2048};
  }
  m->rc = submit_all(m->x->p, m->x->b->ctx, m->x->ep, s, m->n, &m->partial);
  free(s);
  return NULL;
}

void check_backpressure(pair *x) {
  int mt = (x->p->ops->caps & MC_CAP_MT_SUBMIT) != 0;
  int nth = mt ? 2 : 1;
  mt_arg m[2];
  pthread_t th[2];
  int64_t t_start = now_ms();
  for (int i = 0; i < nth; i++) {
    m[i] = (mt_arg){x, 5000, tokens(5000), 0, 0, i};
    pthread_create(&th[i], NULL, mt_main, &m[i]);
  }
  int ok = 1, firstbad = 0;
  uint64_t partial = 0;
  for (int i = 0; i < nth; i++) {
    pthread_join(th[i], NULL);
    partial += m[i].partial;
    if (m[i].rc)
      ok = 0, firstbad = m[i].rc;
  }
  for (int i = 0; i < nth && ok; i++) {
    if (wait_tokens(m[i].t0, m[i].n, WAIT_MS)) {
      ok = 0;
      firstbad = MC_ETIMEDOUT;
    }
    for (uint32_t k = 0; k < m[i].n && ok; k++)
      if (T.c[m[i].t0 + k].status)
        ok = 0, firstbad = T.c[m[i].t0 + k].status;
  }
  if (ok)
    pass("submit.backpressure", "%d x 5000 slices%s, %" PRIu64 " partial acceptances, %" PRId64 " ms",
         nth, mt ? " from 2 threads" : "", partial, now_ms() - t_start);
  else
    fail("submit.backpressure", "not every slice completed successfully: %s", mc_errname(firstbad));
}

void check_notify(pair *x) {
  const plugin *p = x->p;
  if (!(p->ops->caps & MC_CAP_NOTIFY)) {
    skip("notify", "plugin has no MC_CAP_NOTIFY");
    return;
  }
  /* Write, wait for completion, then notify: the data must be visible at
   * the target when the message arrives. */
  fill_pattern(x->bbuf, 65536, 4242);
  int err = 0;
  if (xfer(x, MC_OP_WRITE, 0, 0, 65536, 65536, &err)) {
    fail("notify", "write before notify failed: %s", mc_errname(err));
    return;
  }
  pthread_mutex_lock(&T.lock);
  int before = T.notifies;
  pthread_mutex_unlock(&T.lock);
  static const char msg[] = "conformance: kv ready";
  int rc = p->ops->send_notify(x->b->ctx, x->ep, msg, sizeof msg);
  int64_t end = now_ms() + 10000;
  int got = 0, data_ok = 0;
  char peer[MC_NAME_MAX] = "";
  while (!got && now_ms() < end) {
    pthread_mutex_lock(&T.lock);
    if (T.notifies > before) {
      got = T.notify_len == sizeof msg && !memcmp(T.notify_msg, msg, sizeof msg);
      snprintf(peer, sizeof peer, "%s", T.notify_peer);
      data_ok = !memcmp(x->abuf, x->bbuf, 65536);
      if (!got)
        end = 0;
    }
    pthread_mutex_unlock(&T.lock);
    if (!got)
      sleep_ms(5);
  }
  if (rc)
    fail("notify", "send_notify returned %s", mc_errname(rc));
  else if (!got)
    fail("notify", "message not delivered intact within 10 s");
  else if (strcmp(peer, x->b->host.name))
    fail("notify", "delivered with peer '%s', expected '%s'", peer, x->b->host.name);
  else if (!data_ok)
    fail("notify", "delivered before the preceding write was visible");
  else
    pass("notify", "delivered from '%s' after the completed write", peer);
  /* A real buffer of that size: a plugin may read it before refusing. */
  static char big[MC_NOTIFY_MAX + 1];
  memset(big, 'x', sizeof big);
  rc = p->ops->send_notify(x->b->ctx, x->ep, big, sizeof big);
  if (rc == 0)
    fail("notify.size", "a %d-byte message was accepted (cap %d)", MC_NOTIFY_MAX + 1, MC_NOTIFY_MAX);
  else
    pass("notify.size", "oversized message refused with %s", mc_errname(rc));
}

/* cancel(): every slice still completes exactly once, as success or
 * MC_ECANCELED; unknown tokens are harmless. */
void check_cancel(pair *x) {
  const plugin *p = x->p;
  if (!(p->ops->caps & MC_CAP_CANCEL) || !p->ops->cancel) {
    skip("cancel", "plugin has no MC_CAP_CANCEL");
    return;
  }
  uint64_t t0;
  uint32_t n = flood(p, x->b->ctx, x->ep, x->rb.mem, x->bbuf, x->rmem, x->abuf, x->nrails, 64, &t0);
  for (uint32_t i = 0; i < n; i++)
    p->ops->cancel(x->b->ctx, t0 + i);
  p->ops->cancel(x->b->ctx, MAX_TOKENS + 5);
  int ok_n = 0, err_n = 0, bad = 0;
  if (wait_tokens(t0, n, WAIT_MS)) {
    fail("cancel", "canceled slices never completed");
    return;
  }
  sleep_ms(50);
  for (uint32_t i = 0; i < n; i++)
    if (T.c[t0 + i].status != 0 && T.c[t0 + i].status != MC_ECANCELED)
      bad++;
  if (exactly_once(t0, n, &ok_n, &err_n) || bad)
    fail("cancel", "completions after cancel: not exactly once, or %d with other errors", bad);
  else
    pass("cancel", "%u slices: %d done, %d canceled", n, ok_n, err_n);
}

