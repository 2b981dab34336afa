/* Decode selection and admission: each policy one function. */
#include <string.h>

#include "mooncake/conductor.h"

int mc_cond_decode_slo_balance(const mc_cond_dctx *ctx, mc_cond_dchoice *out) {
  if (!ctx || !ctx->n_cand || !out)
    return MC_EINVAL;
  int have_fit = 0;
  for (size_t i = 0; i < ctx->n_cand; i++) {
    const mc_cond_dcand *c = &ctx->cand[i];
    double tokens = c->tokens + ctx->req_tokens;
    double tbt = mc_cond_decode_step(c->profile, c->batch + 1.0, tokens);
    int fits = tbt <= ctx->tbt_slo_s && tokens <= c->profile->kv_capacity_tokens;
    /* A fitting instance beats any that does not; then the smaller step. */
    if (i == 0 || (fits && !have_fit) || (fits == have_fit && tbt < out->tbt_s)) {
      out->id = c->id;
      out->tbt_s = tbt;
      out->fits = fits;
      have_fit |= fits;
    }
  }
  return 0;
}

int mc_cond_admit_baseline(const mc_cond_actx *ctx) {
  return ctx->prefill_load > ctx->limit ? MC_COND_REJ_TTFT : MC_COND_ADMITTED;
}

int mc_cond_admit_early(const mc_cond_actx *ctx) {
  if (ctx->prefill_load > ctx->limit)
    return MC_COND_REJ_TTFT;
  /* The decode load as it is now: it lags behind what the requests now in
   * prefill will bring (the oscillation of arXiv v3 Fig. 9). */
  if (ctx->decode_load_now > ctx->limit)
    return MC_COND_REJ_DECODE;
  return MC_COND_ADMITTED;
}

int mc_cond_admit_predicted(const mc_cond_actx *ctx) {
  if (ctx->prefill_load > ctx->limit)
    return MC_COND_REJ_TTFT;
  if (ctx->decode_load_pred > ctx->limit)
    return MC_COND_REJ_PREDICTED;
  return MC_COND_ADMITTED;
}

static const mc_cond_decode_ops decode_ops[] = {{"slo-balance", mc_cond_decode_slo_balance}};
static const mc_cond_admit_ops admit_ops[] = {
    {"baseline", mc_cond_admit_baseline, 0},
    {"early", mc_cond_admit_early, 0},
    {"predicted", mc_cond_admit_predicted, 1},
};

const mc_cond_decode_ops *mc_cond_decode_policy(const char *name) {
  for (size_t i = 0; name && i < sizeof decode_ops / sizeof decode_ops[0]; i++)
    if (!strcmp(decode_ops[i].name, name))
      return &decode_ops[i];
  return NULL;
}

const mc_cond_admit_ops *mc_cond_admit_policy(const char *name) {
  for (size_t i = 0; name && i < sizeof admit_ops / sizeof admit_ops[0]; i++)
    if (!strcmp(admit_ops[i].name, name))
      return &admit_ops[i];
  return NULL;
}

const char *mc_cond_reject_str(int reason) {
  switch (reason) {
  case MC_COND_ADMITTED: return "admitted";
  case MC_COND_REJ_TTFT: return "ttft-slo";
  case MC_COND_REJ_DECODE: return "decode-load";
  case MC_COND_REJ_PREDICTED: return "predicted-decode-load";
  case MC_COND_REJ_DECODE_LOCAL: return "decode-refused";
  case MC_COND_REJ_NO_INSTANCE: return "no-instance";
  default: return "unknown";
  }
}
