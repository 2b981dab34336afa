/* The conductor: instances, their event streams into the prefix index,
 * the per-instance load accounting and mc_cond_schedule, which runs the
 * three policies of its ops tables. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cond_util.h"
#include "index.h"
#include "mooncake/conductor.h"

typedef struct inst {
  /* What a decision reads of every instance first, in 64 bytes: a
   * decision walks all of them, and on a cold cache (after the thread was
   * preempted) each line is a miss. */
  uint8_t used, roles;
  /* prefill queue: queued predicted work, counted down from anchor */
  uint32_t queued;
  /* decode: decoding now, and admitted but still in prefill */
  uint32_t dec_batch, dec_incoming;
  const mc_cond_profile *prof; /* in mc_cond.profs, shared (see profs) */
  uint64_t blocks;
  double queue_sum, queue_anchor;
  double dec_tokens, inc_tokens;
  /* the rest */
  int prof_slot;
  uint64_t last_seq;
  int needs_resync;
  char name[MC_COND_NAME_MAX + 1];
} inst;

_Static_assert(offsetof(inst, prof_slot) <= 64, "the hot part of inst fits a cache line");

enum { R_FREE = 0, R_PREFILL, R_DECODE };

typedef struct req {
  uint64_t id;
  int state, prefill_done;
  int p, d;
  double work_s;       /* predicted transfer + prefill, in p's queue */
  double pred_end;     /* predicted end of prefill (absolute) */
  double decode_start;
  double tokens;       /* KV tokens it holds at decode */
  double tbt_slo;
} req;

struct mc_cond {
  mc_cond_opts o;
  inst in[MC_COND_MAX_INSTANCES];
  int n_inst;
  mc_cond_index idx;
  /* The instances' profiles, one copy per distinct profile, with the
   * number of instances using it: candidates with the same profile then
   * carry the same pointer, and a policy costs each distinct (profile,
   * prefix) once per decision instead of once per candidate. */
  mc_cond_profile profs[MC_COND_MAX_INSTANCES];
  int prof_refs[MC_COND_MAX_INSTANCES];
  req *reqs;
  size_t n_reqs, cap_reqs; /* slots in use up to n_reqs (high-water) */
  size_t *free_slots;
  size_t n_free;
  uint64_t gen, rand_ctr;
  mc_cond_stats st;
  /* ids in use, and those with each role, in id order (rebuilt on
   * add/remove) so a decision never scans the empty slots */
  int ids[MC_COND_MAX_INSTANCES], pf_ids[MC_COND_MAX_INSTANCES], dc_ids[MC_COND_MAX_INSTANCES];
  int n_ids, n_pf, n_dc;
  /* scratch of mc_cond_schedule */
  uint32_t len[MC_COND_MAX_INSTANCES];
  mc_cond_pcand pc[MC_COND_MAX_INSTANCES];
  mc_cond_dcand dc[MC_COND_MAX_INSTANCES];
};

void mc_cond_opts_init(mc_cond_opts *o) {
  memset(o, 0, sizeof *o);
  o->kvcache_balancing_threshold = 1.5;
  o->ttft_slo_s = 30;
  o->tbt_slo_s = 0.1;
  o->decode_time_s = 20;
  o->load_limit = 1.0;
  o->seed = 1;
  o->max_requests = 1000000;
}

int mc_cond_create(const mc_cond_opts *o, mc_cond **out, char *err, size_t errlen) {
  if (!out)
    return MC_EINVAL;
  *out = NULL;
  mc_cond_opts d;
  if (!o) {
    mc_cond_opts_init(&d);
    o = &d;
  }
#define BAD(cond, what)                                                        \
  if (cond) {                                                                  \
    mc_cond_seterr(err, errlen, "conductor option %s", what);                  \
    return MC_EINVAL;                                                          \
  }
  BAD(!(o->kvcache_balancing_threshold >= 1), "kvcache_balancing_threshold must be >= 1");
  BAD(!(o->ttft_slo_s > 0), "ttft_slo_s must be positive");
  BAD(!(o->tbt_slo_s > 0), "tbt_slo_s must be positive");
  BAD(!(o->decode_time_s > 0), "decode_time_s must be positive");
  BAD(!(o->load_limit > 0), "load_limit must be positive");
  BAD(!o->max_requests, "max_requests must be positive");
  BAD(o->decode_load_scope != MC_COND_SCOPE_MEAN && o->decode_load_scope != MC_COND_SCOPE_CHOSEN,
      "decode_load_scope must be MC_COND_SCOPE_MEAN or MC_COND_SCOPE_CHOSEN");
  BAD(o->prefill && !o->prefill->select, "prefill: ops without a select function");
  BAD(o->decode && !o->decode->select, "decode: ops without a select function");
  BAD(o->admit && !o->admit->admit, "admit: ops without an admit function");
#undef BAD
  mc_cond *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->o = *o;
  if (!c->o.prefill)
    c->o.prefill = mc_cond_prefill_policy("cache-global");
  if (!c->o.decode)
    c->o.decode = mc_cond_decode_policy("slo-balance");
  if (!c->o.admit)
    c->o.admit = mc_cond_admit_policy("early");
  if (mc_cond_index_init(&c->idx, o->index_blocks_hint)) {
    free(c);
    return MC_ENOMEM;
  }
  *out = c;
  return 0;
}

void mc_cond_destroy(mc_cond *c) {
  if (!c)
    return;
  mc_cond_index_free(&c->idx);
  free(c->reqs);
  free(c->free_slots);
  free(c);
}

static void relist(mc_cond *c) {
  c->n_ids = c->n_pf = c->n_dc = 0;
  for (int i = 0; i < MC_COND_MAX_INSTANCES; i++) {
    if (!c->in[i].used)
      continue;
    c->ids[c->n_ids++] = i;
    if (c->in[i].roles & MC_COND_PREFILL)
      c->pf_ids[c->n_pf++] = i;
    if (c->in[i].roles & MC_COND_DECODE)
      c->dc_ids[c->n_dc++] = i;
  }
}

#define SAME(f) (!memcmp(&a->f, &b->f, sizeof a->f))
/* A and B predict alike, bit for bit (padding aside), and say the same. */
static int same_profile(const mc_cond_profile *a, const mc_cond_profile *b) {
  if (strncmp(a->name, b->name, sizeof a->name) || !SAME(block_tokens) ||
      !SAME(bytes_per_token) || !SAME(n_terms) || !SAME(decode_base_s) ||
      !SAME(decode_per_seq_s) || !SAME(decode_per_token_s) || !SAME(kv_capacity_tokens) ||
      !SAME(link_gbps) || !SAME(transfer_setup_s))
    return 0;
  for (unsigned i = 0; i < MC_COND_MAX_TERMS; i++)
    if (!SAME(prefill[i]))
      return 0;
  return 1;
}
#undef SAME

/* The slot of a profile like P (taken once more), or a new one. */
static int profile_ref(mc_cond *c, const mc_cond_profile *p) {
  int fresh = -1;
  for (int k = 0; k < MC_COND_MAX_INSTANCES; k++) {
    if (!c->prof_refs[k]) {
      if (fresh < 0)
        fresh = k;
    } else if (same_profile(&c->profs[k], p)) {
      c->prof_refs[k]++;
      return k;
    }
  }
  /* There are as many slots as instances: one is free. */
  c->profs[fresh] = *p;
  c->prof_refs[fresh] = 1;
  return fresh;
}

static inst *get(const mc_cond *c, int id) {
  if (!c || id < 0 || id >= MC_COND_MAX_INSTANCES || !c->in[id].used)
    return NULL;
  return (inst *)&c->in[id];
}

int mc_cond_add_instance(mc_cond *c, const char *name, unsigned roles,
                         const mc_cond_profile *p, int *id) {
  if (!c || !name || !p)
    return MC_EINVAL;
  size_t n = strlen(name);
  if (!n || n > MC_COND_NAME_MAX)
    return MC_EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
      return MC_EINVAL;
  if (!roles || (roles & ~7u) || !p->block_tokens)
    return MC_EINVAL;
  if ((roles & MC_COND_DECODE) && !(p->kv_capacity_tokens > 0))
    return MC_EINVAL;
  if (mc_cond_find_instance(c, name) >= 0)
    return MC_EEXIST;
  for (int i = 0; i < MC_COND_MAX_INSTANCES; i++) {
    if (c->in[i].used)
      continue;
    inst *x = &c->in[i];
    memset(x, 0, sizeof *x);
    x->used = 1;
    memcpy(x->name, name, n + 1);
    x->roles = (uint8_t)roles;
    x->prof_slot = profile_ref(c, p);
    x->prof = &c->profs[x->prof_slot];
    c->n_inst++;
    relist(c);
    if (id)
      *id = i;
    return 0;
  }
  return MC_ENOSPC;
}

int mc_cond_find_instance(const mc_cond *c, const char *name) {
  if (!c || !name)
    return MC_EINVAL;
  for (int i = 0; i < MC_COND_MAX_INSTANCES; i++)
    if (c->in[i].used && !strcmp(c->in[i].name, name))
      return i;
  return MC_ENOENT;
}

const char *mc_cond_instance_name(const mc_cond *c, int id) {
  inst *x = get(c, id);
  return x ? x->name : NULL;
}

/* ---------------------------------------------------------------- events */

int mc_cond_apply_event(mc_cond *c, int id, uint64_t seq, int type, const uint64_t *blocks,
                        size_t n) {
  inst *x = get(c, id);
  if (!x)
    return MC_ENOENT;
  if ((type != MC_COND_EV_STORED && type != MC_COND_EV_REMOVED) || (n && !blocks))
    return MC_EINVAL;
  if (x->needs_resync)
    return MC_EAGAIN;
  if (seq <= x->last_seq) {
    c->st.duplicates++;
    return 1;
  }
  if (seq != x->last_seq + 1) {
    /* Events were lost: what the index says of this instance can no longer
     * be trusted, in either direction.  Forget it until a snapshot comes. */
    mc_cond_index_drop(&c->idx, id);
    x->blocks = 0;
    x->needs_resync = 1;
    c->st.gaps++;
    return MC_EPROTO;
  }
  for (size_t i = 0; i < n; i++) {
    if (type == MC_COND_EV_STORED) {
      int r = mc_cond_index_add(&c->idx, blocks[i], id);
      if (r < 0) {
        /* Partly applied: the stream is no longer in step. */
        mc_cond_index_drop(&c->idx, id);
        x->blocks = 0;
        x->needs_resync = 1;
        return r;
      }
      x->blocks += (uint64_t)r;
    } else {
      x->blocks -= (uint64_t)mc_cond_index_del(&c->idx, blocks[i], id);
    }
  }
  x->last_seq = seq;
  c->st.events++;
  return 0;
}

int mc_cond_resync(mc_cond *c, int id, uint64_t seq, const uint64_t *blocks, size_t n) {
  inst *x = get(c, id);
  if (!x)
    return MC_ENOENT;
  if (n && !blocks)
    return MC_EINVAL;
  mc_cond_index_drop(&c->idx, id);
  x->blocks = 0;
  for (size_t i = 0; i < n; i++) {
    int r = mc_cond_index_add(&c->idx, blocks[i], id);
    if (r < 0) {
      mc_cond_index_drop(&c->idx, id);
      x->blocks = 0;
      x->needs_resync = 1;
      return r;
    }
    x->blocks += (uint64_t)r;
  }
  x->last_seq = seq;
  x->needs_resync = 0;
  c->st.resyncs++;
  return 0;
}

uint32_t mc_cond_match(const mc_cond *c, const uint64_t *blocks, size_t n, uint32_t *len) {
  if (!c || !len)
    return 0;
  memset(len, 0, sizeof(uint32_t) * MC_COND_MAX_INSTANCES);
  mc_cond_set alive = {{0}};
  for (int k = 0; k < c->n_ids; k++)
    if (c->in[c->ids[k]].blocks)
      alive.w[c->ids[k] >> 6] |= 1ull << (c->ids[k] & 63);
  if (!blocks)
    n = 0;
  /* One pass along the chain that ends when no instance is left: an
   * instance's match ends at its first miss (ALIVE loses it there).  Each
   * block's entry is looked for first right after the previous block's in
   * the arena (index.h); while that fails, the table slots of the blocks
   * AHEAD are prefetched so that their cache misses overlap. */
  enum { AHEAD = 16 };
  /* ALIVE and the holders of each block in four registers (the loop runs
   * once per block: a bitset in memory costs store-forwarding stalls). */
  _Static_assert(MC_COND_W == 4, "the match loop is unrolled for 256 instances");
  uint64_t a0 = alive.w[0], a1 = alive.w[1], a2 = alive.w[2], a3 = alive.w[3];
  uint32_t at = UINT32_MAX - 1;
  int chained = 1;
  size_t i = 0;
  for (; i < n && (a0 | a1 | a2 | a3); i++) {
    if (!chained && i + AHEAD < n)
      mc_cond_index_prefetch(&c->idx, blocks[i + AHEAD]);
    uint32_t hint = at + 1;
    const mc_cond_slot *s = mc_cond_index_find(&c->idx, blocks[i], hint, &at);
    if (s && at != hint && chained && i) {
      /* Off the chain: start the prefetches of the next blocks. */
      chained = 0;
      for (size_t k = i + 1; k < n && k <= i + AHEAD; k++)
        mc_cond_index_prefetch(&c->idx, blocks[k]);
    } else if (s && at == hint) {
      chained = 1;
    }
    /* On the chain the entries come in order: a few lines ahead are
     * asked for (a stream of ~60 lines is short for the hardware
     * prefetcher to pick up). */
    if (s && (at & 3) == 0 && (size_t)at + 16 < c->idx.n_ent)
      mc_cond_index_prefetch_ent(&c->idx, at + 16);
    uint64_t h0 = 0, h1 = 0, h2 = 0, h3 = 0;
    if (s && s->n == MC_COND_BIG) {
      const mc_cond_set *b = &c->idx.big[mc_cond_slot_big(s)];
      h0 = b->w[0], h1 = b->w[1], h2 = b->w[2], h3 = b->w[3];
    } else if (s) {
      for (int k = 0; k < s->n; k++) {
        uint64_t bit = 1ull << (s->ids[k] & 63);
        switch (s->ids[k] >> 6) {
        case 0: h0 |= bit; break;
        case 1: h1 |= bit; break;
        case 2: h2 |= bit; break;
        default: h3 |= bit; break;
        }
      }
    }
    uint64_t g[4] = {a0 & ~h0, a1 & ~h1, a2 & ~h2, a3 & ~h3};
    if (g[0] | g[1] | g[2] | g[3])
      for (int w = 0; w < 4; w++)
        for (uint64_t m = g[w]; m; m &= m - 1)
          len[w * 64 + __builtin_ctzll(m)] = (uint32_t)i;
    a0 &= h0, a1 &= h1, a2 &= h2, a3 &= h3;
  }
  alive.w[0] = a0, alive.w[1] = a1, alive.w[2] = a2, alive.w[3] = a3;
  /* The instances still alive matched all I blocks looked at; the longest
   * match is I when one did, else the last block where one was left. */
  int any = !mc_cond_set_empty(&alive);
  for (int w = 0; w < MC_COND_W; w++)
    for (uint64_t a = alive.w[w]; a; a &= a - 1)
      len[w * 64 + __builtin_ctzll(a)] = (uint32_t)i;
  if (any)
    return (uint32_t)i;
  uint32_t best = 0;
  for (int k = 0; k < c->n_ids; k++)
    if (len[c->ids[k]] > best)
      best = len[c->ids[k]];
  return best;
}

/* -------------------------------------------------------------- requests */

static req *req_get(const mc_cond *c, uint64_t id) {
  size_t slot = (size_t)(id & 0xffffffffu);
  if (slot >= c->n_reqs || c->reqs[slot].state == R_FREE || c->reqs[slot].id != id)
    return NULL;
  return &c->reqs[slot];
}

static req *req_new(mc_cond *c) {
  size_t slot;
  if (c->n_free) {
    slot = c->free_slots[--c->n_free];
  } else {
    if (c->n_reqs == c->cap_reqs) {
      size_t cap = c->cap_reqs ? c->cap_reqs * 2 : 256;
      if (cap > 0xffffffffu)
        return NULL;
      req *r = realloc(c->reqs, cap * sizeof *r);
      if (!r)
        return NULL;
      c->reqs = r;
      size_t *f = realloc(c->free_slots, cap * sizeof *f);
      if (!f)
        return NULL;
      c->free_slots = f;
      c->cap_reqs = cap;
    }
    slot = c->n_reqs++;
  }
  req *r = &c->reqs[slot];
  memset(r, 0, sizeof *r);
  r->id = (++c->gen << 32) | slot;
  return r;
}

static double queue_at(const inst *x, double now) {
  if (!x->queued)
    return 0;
  double q = x->queue_sum - (now - x->queue_anchor);
  return q > 0 ? q : 0;
}

/* Takes R's work out of its prefill queue. */
static void leave_prefill(mc_cond *c, req *r, double now) {
  inst *p = get(c, r->p);
  if (!p || r->prefill_done)
    return;
  r->prefill_done = 1;
  if (p->queued)
    p->queued--;
  /* What remains is the other requests' predicted work. */
  p->queue_sum = p->queued ? fmax(0, p->queue_sum - r->work_s) : 0;
  /* Never move the anchor back (a caller's clock that went back, or an
   * instance removed at another instance's time). */
  p->queue_anchor = fmax(now, p->queue_anchor);
}

static void release(mc_cond *c, req *r, double now) {
  leave_prefill(c, r, now);
  inst *d = get(c, r->d);
  if (d) {
    if (r->state == R_DECODE) {
      d->dec_batch--;
      d->dec_tokens = fmax(0, d->dec_tokens - r->tokens);
    } else {
      d->dec_incoming--;
      d->inc_tokens = fmax(0, d->inc_tokens - r->tokens);
    }
  }
  r->state = R_FREE;
  c->free_slots[c->n_free++] = (size_t)(r - c->reqs);
  c->st.active--;
}

int mc_cond_remove_instance(mc_cond *c, int id) {
  inst *x = get(c, id);
  if (!x)
    return MC_ENOENT;
  for (size_t i = 0; i < c->n_reqs; i++) {
    req *r = &c->reqs[i];
    if (r->state != R_FREE && (r->p == id || r->d == id))
      release(c, r, x->queue_anchor);
  }
  mc_cond_index_drop(&c->idx, id);
  c->prof_refs[x->prof_slot]--;
  memset(x, 0, sizeof *x);
  c->n_inst--;
  relist(c);
  return 0;
}

static double inst_load(const inst *x, double batch, double tokens, double tbt_slo) {
  double tbt = batch > 0 ? mc_cond_decode_step(x->prof, batch, tokens) : 0;
  return fmax(tbt / tbt_slo, tokens / x->prof->kv_capacity_tokens);
}

/* Decode load with one more request of TOKENS on instance ON (-1: none):
 * ON's own when ONLY, else the mean over the decode instances. */
static double load_now(const mc_cond *c, int on, double tokens, double tbt_slo, int only) {
  double sum = 0;
  int n = 0;
  for (int k = 0; k < c->n_dc; k++) {
    int i = c->dc_ids[k];
    const inst *x = &c->in[i];
    if (only && i != on)
      continue;
    int e = i == on;
    sum += inst_load(x, x->dec_batch + e, x->dec_tokens + (e ? tokens : 0), tbt_slo);
    n++;
  }
  return n ? sum / n : 0;
}

static double load_at(const mc_cond *c, double now, double at, int on, double tokens,
                      double tbt_slo, int only) {
  double batch[MC_COND_MAX_INSTANCES] = {0}, tok[MC_COND_MAX_INSTANCES] = {0};
  double td = c->o.decode_time_s;
  for (size_t i = 0; i < c->n_reqs; i++) {
    const req *r = &c->reqs[i];
    if (r->state == R_FREE || r->d < 0)
      continue;
    /* The state now, changed by what is predicted to happen by AT: a
     * request in prefill arrives at its predicted end (and stays t_d); a
     * decoding one leaves t_d after it started.  One already decoding for
     * longer than t_d is still there now, so it stays counted. */
    int there;
    if (r->state == R_DECODE)
      there = !(r->decode_start + td > now && r->decode_start + td <= at);
    else
      there = r->pred_end <= at && r->pred_end + td > at;
    if (there) {
      batch[r->d] += 1;
      tok[r->d] += r->tokens;
    }
  }
  if (on >= 0) {
    batch[on] += 1;
    tok[on] += tokens;
  }
  double sum = 0;
  int n = 0;
  for (int k = 0; k < c->n_dc; k++) {
    int i = c->dc_ids[k];
    const inst *x = &c->in[i];
    if (only && i != on)
      continue;
    sum += inst_load(x, batch[i], tok[i], tbt_slo);
    n++;
  }
  return n ? sum / n : 0;
}

double mc_cond_decode_load(const mc_cond *c, double now_s) {
  (void)now_s;
  return c ? load_now(c, -1, 0, c->o.tbt_slo_s, 0) : 0;
}

double mc_cond_decode_load_at(const mc_cond *c, double now_s, double at_s) {
  return c ? load_at(c, now_s, at_s, -1, 0, c->o.tbt_slo_s, 0) : 0;
}

int mc_cond_schedule(mc_cond *c, const mc_cond_req *r, mc_cond_decision *d) {
  if (!c || !r || !d)
    return MC_EINVAL;
  memset(d, 0, sizeof *d);
  d->prefill.id = d->prefill.fetch_from = d->decode.id = -1;
  /* A block holds at least one token, so more blocks than tokens is a
   * malformed request. */
  if (!r->blocks || !r->n_blocks || !r->input_len || r->n_blocks > r->input_len ||
      !isfinite(r->now_s) || r->ttft_slo_s < 0 || r->tbt_slo_s < 0)
    return MC_EINVAL;
  double ttft_slo = r->ttft_slo_s > 0 ? r->ttft_slo_s : c->o.ttft_slo_s;
  double tbt_slo = r->tbt_slo_s > 0 ? r->tbt_slo_s : c->o.tbt_slo_s;
  c->st.scheduled++;

  uint32_t best = mc_cond_match(c, r->blocks, r->n_blocks, c->len);
  mc_cond_pctx pctx = {.input_len = r->input_len, .n_blocks = (uint32_t)r->n_blocks,
                       .cand = c->pc, .best_blocks = best, .best_id = -1,
                       .balancing_threshold = c->o.kvcache_balancing_threshold,
                       .rand = mc_cond_mix64(c->o.seed ^ mc_cond_mix64(++c->rand_ctr))};
  mc_cond_dctx dctx = {.req_tokens = (double)r->input_len + r->output_len,
                       .tbt_slo_s = tbt_slo, .cand = c->dc};
  size_t np = 0, nd = 0;
  for (int k = 0; k < c->n_ids; k++) {
    int i = c->ids[k];
    inst *x = &c->in[i];
    if (best && pctx.best_id < 0 && c->len[i] == best)
      pctx.best_id = i;
    if (x->roles & MC_COND_PREFILL)
      c->pc[np++] = (mc_cond_pcand){i, c->len[i], queue_at(x, r->now_s), x->prof};
    if (x->roles & MC_COND_DECODE)
      c->dc[nd++] = (mc_cond_dcand){i, x->dec_batch + x->dec_incoming,
                                    x->dec_tokens + x->inc_tokens, x->prof};
  }
  /* The best holder should be a prefill instance when one holds as much:
   * no transfer needed if it is chosen. */
  for (size_t i = 0; best && i < np; i++)
    if (c->pc[i].local_blocks == best) {
      pctx.best_id = c->pc[i].id;
      break;
    }
  pctx.n_cand = np;
  dctx.n_cand = nd;
  if (!np || !nd) {
    d->reject = MC_COND_REJ_NO_INSTANCE;
    c->st.rejected[d->reject]++;
    return 0;
  }
  int rc = c->o.prefill->select(&pctx, &d->prefill);
  if (rc == 0)
    rc = c->o.decode->select(&dctx, &d->decode);
  if (rc)
    return rc < 0 ? rc : MC_EINVAL;
  if (!get(c, d->prefill.id) || !(c->in[d->prefill.id].roles & MC_COND_PREFILL) ||
      !get(c, d->decode.id) || !(c->in[d->decode.id].roles & MC_COND_DECODE))
    return MC_EPROTO; /* a custom policy chose what is not a candidate */

  mc_cond_actx a = {.prefill_load = d->prefill.ttft_s / ttft_slo,
                    .decode_load_now = load_now(c, d->decode.id, dctx.req_tokens, tbt_slo,
                                                c->o.decode_load_scope),
                    .decode_fits = d->decode.fits, .limit = c->o.load_limit};
  if (c->o.admit->predicts)
    a.decode_load_pred = load_at(c, r->now_s, r->now_s + d->prefill.ttft_s, d->decode.id,
                                 dctx.req_tokens, tbt_slo, c->o.decode_load_scope);
  d->prefill_load = a.prefill_load;
  d->decode_load_now = a.decode_load_now;
  d->decode_load_pred = a.decode_load_pred;
  d->reject = c->o.admit->admit(&a);
  if (d->reject < 0 || d->reject > MC_COND_REJ_NO_INSTANCE)
    d->reject = MC_COND_REJ_DECODE;
  if (d->reject) {
    c->st.rejected[d->reject]++;
    return 0;
  }

  if (c->st.active >= c->o.max_requests)
    return MC_EBUSY; /* callers that never report completion */
  req *q = req_new(c);
  if (!q)
    return MC_ENOMEM;
  q->state = R_PREFILL;
  q->p = d->prefill.id;
  q->d = d->decode.id;
  q->work_s = d->prefill.transfer_s + d->prefill.prefill_s;
  q->pred_end = r->now_s + d->prefill.ttft_s;
  q->tokens = dctx.req_tokens;
  q->tbt_slo = tbt_slo;
  inst *p = &c->in[q->p], *dx = &c->in[q->d];
  if (!p->queued) {
    p->queue_sum = 0;
    p->queue_anchor = r->now_s;
  }
  p->queue_sum += q->work_s;
  p->queued++;
  dx->dec_incoming++;
  dx->inc_tokens += q->tokens;
  d->req_id = q->id;
  c->st.admitted++;
  c->st.active++;
  return 0;
}

int mc_cond_prefill_done(mc_cond *c, uint64_t req_id, double now_s) {
  req *r = c ? req_get(c, req_id) : NULL;
  if (!r)
    return MC_ENOENT;
  leave_prefill(c, r, now_s);
  return 0;
}

int mc_cond_decode_admit(mc_cond *c, uint64_t req_id, double now_s, int *reject) {
  req *r = c ? req_get(c, req_id) : NULL;
  if (!r || !reject)
    return r ? MC_EINVAL : MC_ENOENT;
  if (r->state == R_DECODE) {
    *reject = 0;
    return 0;
  }
  leave_prefill(c, r, now_s);
  inst *d = &c->in[r->d];
  /* The local scheduler's check: the batch as it is now, plus this one. */
  double tokens = d->dec_tokens + r->tokens;
  double tbt = mc_cond_decode_step(d->prof, d->dec_batch + 1.0, tokens);
  if (tbt > r->tbt_slo || tokens > d->prof->kv_capacity_tokens) {
    *reject = MC_COND_REJ_DECODE_LOCAL;
    c->st.rejected[MC_COND_REJ_DECODE_LOCAL]++;
    release(c, r, now_s);
    return 0;
  }
  d->dec_incoming--;
  d->inc_tokens = fmax(0, d->inc_tokens - r->tokens);
  d->dec_batch++;
  d->dec_tokens += r->tokens;
  r->state = R_DECODE;
  r->decode_start = now_s;
  *reject = 0;
  return 0;
}

int mc_cond_request_done(mc_cond *c, uint64_t req_id, double now_s) {
  req *r = c ? req_get(c, req_id) : NULL;
  if (!r)
    return MC_ENOENT;
  release(c, r, now_s);
  return 0;
}

int mc_cond_instance_stats(const mc_cond *c, int id, double now_s, mc_cond_inst_stats *st) {
  const inst *x = get(c, id);
  if (!x || !st)
    return x ? MC_EINVAL : MC_ENOENT;
  memset(st, 0, sizeof *st);
  st->roles = x->roles;
  st->blocks = x->blocks;
  st->last_seq = x->last_seq;
  st->needs_resync = x->needs_resync;
  st->queue_s = queue_at(x, now_s);
  st->prefill_queued = x->queued;
  st->decode_batch = x->dec_batch;
  st->decode_incoming = x->dec_incoming;
  st->decode_tokens = x->dec_tokens;
  if (x->roles & MC_COND_DECODE)
    st->decode_load = inst_load(x, x->dec_batch, x->dec_tokens, c->o.tbt_slo_s);
  return 0;
}

void mc_cond_get_stats(const mc_cond *c, mc_cond_stats *st) {
  if (!st)
    return;
  memset(st, 0, sizeof *st);
  if (!c)
    return;
  *st = c->st;
  st->instances = (uint64_t)c->n_inst;
  st->index_blocks = c->idx.n;
}
