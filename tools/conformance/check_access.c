/* mc-transport-conformance: access control -- out-of-range and wrong-key
 * accesses, and the hostile initiator. */
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

void check_refusals(pair *x) {
  const plugin *p = x->p;
  /* Out of the imported range: refused (at submit or completion). */
  fill_pattern(x->bbuf, 4096, 77);
  uint8_t *snap = malloc(BUF_SIZE);
  memcpy(snap, x->abuf, BUF_SIZE);
  int serr = 0;
  int st1 = one_slice(x, x->rmem, MC_OP_WRITE, (uint64_t)(uintptr_t)x->abuf + BUF_SIZE - 100, 4096, &serr);
  int st2 = one_slice(x, x->rmem, MC_OP_READ, (uint64_t)(uintptr_t)x->abuf - 8, 4096, &serr);
  if (st1 == HANG || st2 == HANG)
    fail("access.range", "out-of-range slice never completed");
  else if (st1 == 0 || st2 == 0)
    fail("access.range", "out-of-range write/read succeeded (%s/%s)", mc_errname(st1), mc_errname(st2));
  else if (memcmp(snap, x->abuf, BUF_SIZE))
    fail("access.range", "target memory changed by a refused write");
  else
    pass("access.range", "refused with %s/%s, target memory unchanged", mc_errname(st1), mc_errname(st2));

  /* Wrong keys: every single-bit flip of the key that import_mem accepts
   * either is refused on access (memory unchanged) or writes only inside
   * the addressed range; at least one must be refused. */
  int imp_rej = 0, refused = 0, allowed = 0, bad = 0;
  uint64_t target = (uint64_t)(uintptr_t)x->abuf + 4096;
  for (size_t k = 0; k < x->ra.rkey_len; k++) {
    uint8_t key[MC_RKEY_MAX];
    memcpy(key, x->ra.rkey, x->ra.rkey_len);
    key[k] ^= 1;
    void *rm = NULL;
    if (p->ops->import_mem(x->b->ctx, x->ep, (uint64_t)(uintptr_t)x->abuf, BUF_SIZE, key,
                           x->ra.rkey_len, &rm)) {
      imp_rej++;
      continue;
    }
    memcpy(snap, x->abuf, BUF_SIZE);
    fill_pattern(x->bbuf, 512, (uint32_t)k);
    int st = one_slice(x, rm, MC_OP_WRITE, target, 512, &serr);
    if (st == HANG) {
      bad++;
    } else if (st != 0) {
      refused++;
      if (memcmp(snap, x->abuf, BUF_SIZE))
        bad++;
    } else {
      allowed++;
      memcpy(snap + 4096, x->bbuf, 512);
      if (memcmp(snap, x->abuf, BUF_SIZE))
        bad++;
    }
    p->ops->release_mem(x->b->ctx, rm);
  }
  if (bad)
    fail("access.wrong_key", "%d forged keys hung or changed memory outside their write", bad);
  else if (refused == 0 && allowed > 0)
    fail("access.wrong_key", "no forged key was refused (%d accepted)", allowed);
  else
    pass("access.wrong_key", "%d forged keys refused on access, %d at import, %d equivalent",
         refused, imp_rej, allowed);

  free(snap);
}

/* ---- the hostile initiator ----------------------------------------------
 *
 * The initiator context (b) is the attacker: it imports the target's (a)
 * buffer with a forged length, with forged keys and with keys whose
 * registration was revoked, then reads and writes beyond what a currently
 * holds registered -- accesses its own plugin code believes legitimate,
 * because they lie inside what it imported.  Only the target side can
 * refuse them.  The registration sits in the middle of one allocation with
 * HG guard bytes on each side; every access must be refused, no byte outside
 * the live registration may change and a refused read must not bring back
 * any byte from outside it. */
#define HG ((size_t)64 << 10)  /* guard bytes on each side */
#define HL ((size_t)256 << 10) /* registered length */
#define HOSTILE_WAIT_MS 10000
#define HOSTILE_MAX_IMPORTS 6000

typedef struct hostile {
  pair *x;
  uint8_t *raw;              /* HG + HL + HG */
  uint8_t *snap;             /* what raw must hold outside the live range */
  uint64_t R;                /* registered address: raw + HG */
  uint64_t live_lo, live_hi; /* live registration now; empty when revoked */
  int strict;                /* any success is a violation (stale keys) */
  int imports, imports_refused, accesses, refused, hung;
  char bad[320]; /* first violation */
} hostile;

__attribute__((format(printf, 2, 3))) static void hostile_bad(hostile *h, const char *fmt, ...) {
  if (h->bad[0])
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->bad, sizeof h->bad, fmt, ap);
  va_end(ap);
}

static uint64_t hraw(const hostile *h) { return (uint64_t)(uintptr_t)h->raw; }
static int in_live(const hostile *h, uint64_t a) { return a >= h->live_lo && a < h->live_hi; }

/* Describes address a relative to the registration, for messages. */
static void where(const hostile *h, uint64_t a, char *buf, size_t n) {
  if (a < h->R)
    snprintf(buf, n, "%" PRIu64 " bytes before the registration", h->R - a);
  else if (a >= h->R + HL)
    snprintf(buf, n, "%" PRIu64 " bytes past the end of the registration", a - (h->R + HL));
  else
    snprintf(buf, n, "offset %" PRIu64 " of the (revoked) registration", a - h->R);
}

/* One access of the attacker through rmem at [a, +len) (inside raw). */
static void hostile_access(hostile *h, const char *what, void *rmem, uint32_t op, uint64_t a,
                           uint64_t len) {
  pair *x = h->x;
  if (h->hung)
    return;
  uint8_t *src = h->raw + (a - hraw(h));
  /* Local bytes that differ from every byte the access could bring over. */
  for (uint64_t i = 0; i < len; i++)
    x->bbuf[i] = (uint8_t)~src[i];
  int serr = 0;
  h->accesses++;
  int st = one_slice_at(x, rmem, op, (uint64_t)(uintptr_t)x->bbuf, a, len, &serr, HOSTILE_WAIT_MS);
  char loc[96];
  where(h, a < h->R || h->strict ? a : a + len - 1, loc, sizeof loc);
  if (st == HANG) {
    h->hung = 1;
    hostile_bad(h, "%s: %s of [%s, +%" PRIu64 ") never completed", what,
                op == MC_OP_WRITE ? "write" : "read", loc, len);
    return;
  }
  int outside = h->strict;
  for (uint64_t i = 0; i < len && !outside; i++)
    outside = !in_live(h, a + i);
  if (st == 0 && outside) {
    hostile_bad(h, "%s: %s at %s (%" PRIu64 " bytes) succeeded", what,
                op == MC_OP_WRITE ? "write" : "read", loc, len);
  } else if (st != 0) {
    h->refused++;
  }
  /* No byte outside the live registration changed... */
  for (size_t i = 0; i < 2 * HG + HL; i++) {
    uint64_t ai = hraw(h) + i;
    if (h->raw[i] != h->snap[i]) {
      if (in_live(h, ai) && !h->strict) {
        h->snap[i] = h->raw[i]; /* the attacker may write what it owns */
        continue;
      }
      char w[96];
      where(h, ai, w, sizeof w);
      hostile_bad(h, "%s: %s at [%" PRIu64 " bytes from the registration, +%" PRIu64
                     ") (%s) changed the byte %s",
                  what, op == MC_OP_WRITE ? "write" : "read", a - h->R, len,
                  st ? mc_errname(st) : "succeeded", w);
      memcpy(h->raw, h->snap, 2 * HG + HL);
      break;
    }
  }
  /* ... and a read brought nothing back from outside it. */
  if (op == MC_OP_READ) {
    uint64_t leaked = 0;
    for (uint64_t i = 0; i < len; i++)
      if ((h->strict || !in_live(h, a + i)) && x->bbuf[i] == src[i])
        leaked++;
    if (leaked)
      hostile_bad(h, "%s: read at %s (%s) copied %" PRIu64 " bytes from outside the live "
                     "registration into the initiator's buffer",
                  what, loc, st ? mc_errname(st) : "succeeded", leaked);
  }
}

/* The accesses the attacker tries through an import of [base, +len): those
 * its own side believes legitimate (inside the import), beyond the live
 * registration or, with strict, anywhere. */
static void hostile_accesses(hostile *h, const char *what, void *rmem, uint64_t base,
                             uint64_t len) {
  const struct {
    int64_t off; /* from R */
    uint64_t len;
  } cand[] = {
      {(int64_t)HL - 64, 128},          /* straddles the end */
      {(int64_t)HL, 256},               /* just past the end */
      {(int64_t)(HL + HG) - 512, 512},  /* far end of the upper guard */
      {-128, 256},                      /* straddles the start */
      {-(int64_t)HG, 512},              /* far end of the lower guard */
      {0, 512},                         /* the registration's first bytes */
      {(int64_t)HL / 2 + 64, 512},      /* past a halved registration */
  };
  for (size_t i = 0; i < sizeof cand / sizeof cand[0] && !h->hung; i++) {
    uint64_t a = h->R + (uint64_t)cand[i].off, l = cand[i].len;
    int interesting = h->strict || !in_live(h, a) || !in_live(h, a + l - 1);
    if (!interesting || a < base || a - base > len || l > len - (a - base))
      continue;
    hostile_access(h, what, rmem, MC_OP_WRITE, a, l);
    hostile_access(h, what, rmem, MC_OP_READ, a, l);
  }
}

/* import_mem as the attacker asks it; runs the accesses when accepted. */
static void hostile_import(hostile *h, const char *what, const void *key, size_t klen,
                           uint64_t base, uint64_t len) {
  pair *x = h->x;
  void *rm = NULL;
  h->imports++;
  if (x->p->ops->import_mem(x->b->ctx, x->ep, base, len, key, klen, &rm)) {
    h->imports_refused++;
    return;
  }
  hostile_accesses(h, what, rm, base, len);
  x->p->ops->release_mem(x->b->ctx, rm);
}

static void hostile_report(hostile *h, const char *name, const char *extra) {
  if (h->bad[0])
    fail(name, "%s", h->bad);
  else
    pass(name, "%d imports (%d refused there), %d accesses outside the live registration, all "
               "refused, no byte outside it changed or read%s",
         h->imports, h->imports_refused, h->accesses, extra);
  h->bad[0] = 0;
  h->imports = h->imports_refused = h->accesses = h->refused = 0;
}

static void put_word(uint8_t *k, size_t off, uint64_t v, int be) {
  for (int i = 0; i < 8; i++)
    k[off + (size_t)i] = (uint8_t)(v >> (be ? 56 - 8 * i : 8 * i));
}
static uint64_t get_word(const uint8_t *k, size_t off, int be) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)k[off + (size_t)i] << (be ? 56 - 8 * i : 8 * i);
  return v;
}

/* Imports of a mutated key over the whole allocation and over the upper
 * guard: the ranges a forged address or length field would claim. */
static void hostile_try_key(hostile *h, const uint8_t *key, size_t klen) {
  if (h->imports >= HOSTILE_MAX_IMPORTS || h->hung)
    return;
  hostile_import(h, "forged key", key, klen, hraw(h), HL + 2 * HG);
  hostile_import(h, "forged key", key, klen, h->R, HL + HG);
}

void check_hostile(pair *x) {
  const plugin *p = x->p;
  hostile h = {.x = x};
  h.raw = target_alloc(HL + 2 * HG);
  h.snap = malloc(HL + 2 * HG);
  if (!h.raw || !h.snap) {
    fail("hostile.setup", "cannot allocate the target buffer");
    goto out;
  }
  fill_pattern(h.raw, HL + 2 * HG, 0xbad);
  memcpy(h.snap, h.raw, HL + 2 * HG);
  h.R = hraw(&h) + HG;
  reg r;
  int rc = do_register(p, x->a, h.raw + HG, HL, &r);
  if (rc) {
    fail("hostile.setup", "register_mem of the target buffer failed: %s", mc_errname(rc));
    goto out;
  }
  h.live_lo = h.R;
  h.live_hi = h.R + HL;

  /* Forged lengths: the real key, a larger range. */
  hostile_import(&h, "forged length", r.rkey, r.rkey_len, h.R, HL + HG);
  hostile_import(&h, "forged length", r.rkey, r.rkey_len, hraw(&h), HL + 2 * HG);
  hostile_import(&h, "forged length", r.rkey, r.rkey_len, h.R, UINT64_MAX - h.R);
  hostile_report(&h, "hostile.forged_len", "");

  /* Forged keys: 64-bit fields (either byte order, every 4-byte offset)
   * moved or grown, alone and in pairs -- the shape of a key whose address
   * and length were rewritten -- then every single-bit flip. */
  uint8_t k[MC_RKEY_MAX];
  size_t kl = r.rkey_len;
  for (int be = 0; be < 2 && kl >= 8; be++) {
    for (size_t o = 0; o + 8 <= kl; o += 4) {
      const uint64_t d[] = {(uint64_t)HG, 2 * (uint64_t)HG, (uint64_t)-(int64_t)HG,
                            (uint64_t)HL + 2 * HG};
      for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        memcpy(k, r.rkey, kl);
        put_word(k, o, get_word(k, o, be) + d[i], be);
        hostile_try_key(&h, k, kl);
      }
    }
    for (size_t o1 = 0; o1 + 8 <= kl && o1 < 96; o1 += 4)
      for (size_t o2 = 0; o2 + 8 <= kl && o2 < 96; o2 += 4) {
        if (o2 < o1 + 8 && o1 < o2 + 8)
          continue;
        memcpy(k, r.rkey, kl);
        put_word(k, o1, get_word(k, o1, be) - HG, be);
        put_word(k, o2, get_word(k, o2, be) + 2 * HG, be);
        hostile_try_key(&h, k, kl);
      }
  }
  for (size_t b = 0; b < kl * 8; b++) {
    memcpy(k, r.rkey, kl);
    k[b / 8] ^= (uint8_t)(1u << (b % 8));
    hostile_try_key(&h, k, kl);
  }
  char note[96] = "";
  if (h.imports >= HOSTILE_MAX_IMPORTS)
    snprintf(note, sizeof note, " (stopped at %d imports)", HOSTILE_MAX_IMPORTS);
  hostile_report(&h, "hostile.forged_key", note);

  /* Both checks below make the target's provider refuse accesses; a
   * wrapper that showed the provider cannot survive that skips them. */
  int skip_revoked = skip_listed("hostile.revoked");
  int skip_stale = skip_listed("hostile.stale_key");
  if (skip_revoked || skip_stale) {
    if (!skip_revoked)
      skip("hostile.revoked", "runs only together with hostile.stale_key (skipped)");
    if (!skip_stale)
      skip("hostile.stale_key", "runs after hostile.revoked (skipped)");
    p->ops->deregister_mem(x->a->ctx, r.mem);
    goto out;
  }
  /* A revoked key: the import made while it was live, and a new import of
   * it, must reach nothing once deregister_mem returned. */
  void *live_rm = NULL;
  int serr = 0;
  rc = p->ops->import_mem(x->b->ctx, x->ep, h.R, HL, r.rkey, r.rkey_len, &live_rm);
  fill_pattern(x->bbuf, 512, 99);
  int st0 = rc ? rc : one_slice_at(x, live_rm, MC_OP_WRITE, (uint64_t)(uintptr_t)x->bbuf, h.R, 512,
                                   &serr, HOSTILE_WAIT_MS);
  if (st0) {
    fail("hostile.revoked", "a write through the live key failed first: %s", mc_errname(st0));
    if (!rc)
      p->ops->release_mem(x->b->ctx, live_rm);
    p->ops->deregister_mem(x->a->ctx, r.mem);
    goto out;
  }
  memcpy(h.snap, h.raw, HL + 2 * HG);
  p->ops->deregister_mem(x->a->ctx, r.mem);
  h.live_lo = h.live_hi = 0;
  h.strict = 1;
  h.imports++;
  hostile_accesses(&h, "revoked key (import made while live)", live_rm, h.R, HL);
  hostile_import(&h, "revoked key (new import)", r.rkey, r.rkey_len, h.R, HL);
  hostile_report(&h, "hostile.revoked", "");

  /* A stale key: the same address registered again, shorter.  The old key
   * must not reach the new registration, nor past its end. */
  reg r2;
  rc = do_register(p, x->a, h.raw + HG, HL / 2, &r2);
  if (rc) {
    fail("hostile.stale_key", "registering the range again failed: %s", mc_errname(rc));
    p->ops->release_mem(x->b->ctx, live_rm);
    goto out;
  }
  h.imports++;
  hostile_accesses(&h, "stale key (import made before)", live_rm, h.R, HL);
  hostile_import(&h, "stale key (new import)", r.rkey, r.rkey_len, h.R, HL);
  hostile_import(&h, "stale key (new import)", r.rkey, r.rkey_len, h.R, HL / 2);
  p->ops->release_mem(x->b->ctx, live_rm);
  /* The new key works, and only inside its own range. */
  h.strict = 0;
  h.live_lo = h.R;
  h.live_hi = h.R + HL / 2;
  void *rm2 = NULL;
  rc = p->ops->import_mem(x->b->ctx, x->ep, h.R, HL / 2, r2.rkey, r2.rkey_len, &rm2);
  fill_pattern(x->bbuf, 512, 98);
  st0 = rc ? rc : one_slice_at(x, rm2, MC_OP_WRITE, (uint64_t)(uintptr_t)x->bbuf, h.R, 512, &serr,
                               HOSTILE_WAIT_MS);
  if (st0 == 0)
    memcpy(h.snap, h.raw, HL + 2 * HG);
  if (!rc)
    p->ops->release_mem(x->b->ctx, rm2);
  hostile_import(&h, "new key, forged length", r2.rkey, r2.rkey_len, h.R, HL);
  if (st0 && !h.bad[0])
    hostile_bad(&h, "the new registration's own key did not work: %s", mc_errname(st0));
  hostile_report(&h, "hostile.stale_key", "");
  p->ops->deregister_mem(x->a->ctx, r2.mem);
out:
  target_free(h.raw);
  free(h.snap);
}

