/* The prefill policies: each one function over a mc_cond_pctx. */
#include <string.h>

#include "mooncake/conductor.h"

/* The last model results of a policy's loop over the candidates: the
 * conductor gives candidates with the same profile the same pointer, so
 * most of them repeat the previous candidate's (profile, prefix, fetch)
 * and the models (polynomial, division) run once per distinct one. */
typedef struct memo {
  const mc_cond_profile *p;
  uint32_t prefix, fetch;
  double transfer_s, prefill_s;
} memo;

/* Costs candidate C reusing PREFIX blocks, FETCH of them remote.  M: the
 * memo of the loop, or NULL. */
static void cost(const mc_cond_pctx *ctx, const mc_cond_pcand *c, uint32_t prefix,
                 uint32_t fetch, int from, mc_cond_pchoice *o, memo *m) {
  const mc_cond_profile *p = c->profile;
  o->id = c->id;
  o->prefix_blocks = prefix;
  o->local_blocks = prefix - fetch;
  o->fetch_from = fetch ? from : -1;
  o->queue_s = c->queue_s;
  if (m && m->p == p && m->prefix == prefix && m->fetch == fetch) {
    o->transfer_s = m->transfer_s;
    o->prefill_s = m->prefill_s;
  } else {
    double prefix_tokens = (double)prefix * p->block_tokens;
    if (prefix_tokens > ctx->input_len)
      prefix_tokens = ctx->input_len;
    o->transfer_s = fetch ? mc_cond_transfer_time(p, fetch) : 0;
    o->prefill_s = mc_cond_prefill_time(p, ctx->input_len, prefix_tokens);
    if (m)
      *m = (memo){p, prefix, fetch, o->transfer_s, o->prefill_s};
  }
  o->ttft_s = o->queue_s + o->transfer_s + o->prefill_s;
}

int mc_cond_prefill_random(const mc_cond_pctx *ctx, mc_cond_pchoice *out) {
  if (!ctx || !ctx->n_cand || !out)
    return MC_EINVAL;
  const mc_cond_pcand *c = &ctx->cand[ctx->rand % ctx->n_cand];
  cost(ctx, c, c->local_blocks, 0, -1, out, NULL);
  return 0;
}

int mc_cond_prefill_load_balance(const mc_cond_pctx *ctx, mc_cond_pchoice *out) {
  if (!ctx || !ctx->n_cand || !out)
    return MC_EINVAL;
  size_t best = 0;
  for (size_t i = 1; i < ctx->n_cand; i++)
    if (ctx->cand[i].queue_s < ctx->cand[best].queue_s)
      best = i;
  /* The instance still reuses what it happens to hold. */
  cost(ctx, &ctx->cand[best], ctx->cand[best].local_blocks, 0, -1, out, NULL);
  return 0;
}

int mc_cond_prefill_cache_local(const mc_cond_pctx *ctx, mc_cond_pchoice *out) {
  if (!ctx || !ctx->n_cand || !out)
    return MC_EINVAL;
  mc_cond_pchoice o;
  memo m = {0};
  for (size_t i = 0; i < ctx->n_cand; i++) {
    cost(ctx, &ctx->cand[i], ctx->cand[i].local_blocks, 0, -1, &o, &m);
    if (i == 0 || o.ttft_s < out->ttft_s)
      *out = o;
  }
  return 0;
}

int mc_cond_prefill_cache_global(const mc_cond_pctx *ctx, mc_cond_pchoice *out) {
  if (!ctx || !ctx->n_cand || !out)
    return MC_EINVAL;
  mc_cond_pchoice o;
  memo m = {0};
  for (size_t i = 0; i < ctx->n_cand; i++) {
    const mc_cond_pcand *c = &ctx->cand[i];
    uint32_t own = c->local_blocks;
    /* Algorithm 1: best_len / prefix_len > threshold -> fetch the
     * difference from the best holder (own 0 counts as an infinite ratio);
     * otherwise recompute what is not held locally. */
    int remote = ctx->best_id >= 0 && ctx->best_id != c->id && ctx->best_blocks > own &&
                 (own == 0 || (double)ctx->best_blocks / own > ctx->balancing_threshold);
    if (remote)
      cost(ctx, c, ctx->best_blocks, ctx->best_blocks - own, ctx->best_id, &o, &m);
    else
      cost(ctx, c, own, 0, -1, &o, &m);
    if (i == 0 || o.ttft_s < out->ttft_s)
      *out = o;
  }
  return 0;
}

static const mc_cond_prefill_ops prefill_ops[] = {
    {"random", mc_cond_prefill_random},
    {"load-balance", mc_cond_prefill_load_balance},
    {"cache-local", mc_cond_prefill_cache_local},
    {"cache-global", mc_cond_prefill_cache_global},
};

const mc_cond_prefill_ops *mc_cond_prefill_policy(const char *name) {
  for (size_t i = 0; name && i < sizeof prefill_ops / sizeof prefill_ops[0]; i++)
    if (!strcmp(prefill_ops[i].name, name))
      return &prefill_ops[i];
  return NULL;
}
