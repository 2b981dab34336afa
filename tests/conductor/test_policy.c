/* Each built-in policy on small hand-built cases with known answers. */
#include "check.h"
#include "cond_fixture.h"

static mc_cond_profile prof;

/* Three prefill candidates for a 1000-token prompt (10 blocks):
 *   A: holds nothing, queue 0      -> 1.0 s of prefill
 *   B: holds 8 blocks, queue 5 s   -> 5 + 0.2 s
 *   C: holds 4 blocks, queue 0     -> 0.6 s locally
 * The longest prefix anywhere is B's 8 blocks. */
static mc_cond_pcand cand[3];
static mc_cond_pctx ctx(double threshold, uint64_t rnd) {
  cand[0] = (mc_cond_pcand){10, 0, 0.0, &prof};
  cand[1] = (mc_cond_pcand){11, 8, 5.0, &prof};
  cand[2] = (mc_cond_pcand){12, 4, 0.0, &prof};
  return (mc_cond_pctx){.input_len = 1000, .n_blocks = 10, .cand = cand, .n_cand = 3,
                        .best_blocks = 8, .best_id = 11, .balancing_threshold = threshold,
                        .rand = rnd};
}

static void test_models(void) {
  CHECK(FX_NEAR(mc_cond_prefill_time(&prof, 1000, 400), 0.6));
  CHECK(FX_NEAR(mc_cond_prefill_time(&prof, 1000, 5000), 0)); /* prefix capped at input */
  CHECK(FX_NEAR(mc_cond_transfer_time(&prof, 8), 8e-4));
  CHECK(FX_NEAR(mc_cond_transfer_time(&prof, 0), 0));
  CHECK(FX_NEAR(mc_cond_decode_step(&prof, 3, 0), 0.04));
}

static void test_prefill(void) {
  mc_cond_pchoice o;
  mc_cond_pctx c = ctx(1.5, 4);
  /* random: rand % 3 = 1 -> B, with its own prefix. */
  CHECK_OK(mc_cond_prefill_random(&c, &o));
  CHECK_EQ_INT(o.id, 11);
  CHECK(FX_NEAR(o.ttft_s, 5.2));
  /* load-balance: the shortest queue, first of the tie A/C -> A. */
  CHECK_OK(mc_cond_prefill_load_balance(&c, &o));
  CHECK_EQ_INT(o.id, 10);
  CHECK(FX_NEAR(o.ttft_s, 1.0));
  CHECK_EQ_INT(o.fetch_from, -1);
  /* cache-local: A 1.0, B 5.2, C 0.6 -> C, no fetch. */
  CHECK_OK(mc_cond_prefill_cache_local(&c, &o));
  CHECK_EQ_INT(o.id, 12);
  CHECK(FX_NEAR(o.ttft_s, 0.6));
  CHECK_EQ_INT(o.prefix_blocks, 4);
  CHECK_EQ_INT(o.fetch_from, -1);
  /* cache-global, threshold 1.5: C's 8/4 = 2 > 1.5 -> fetch 4 blocks from
   * B: 4e-4 + 0.2; A fetches 8: 8e-4 + 0.2 -> C. */
  CHECK_OK(mc_cond_prefill_cache_global(&c, &o));
  CHECK_EQ_INT(o.id, 12);
  CHECK_EQ_INT(o.fetch_from, 11);
  CHECK_EQ_INT(o.prefix_blocks, 8);
  CHECK_EQ_INT(o.local_blocks, 4);
  CHECK(FX_NEAR(o.transfer_s, 4e-4));
  CHECK(FX_NEAR(o.ttft_s, 0.2004));
  /* threshold 2.5: C keeps its own 4 (0.6 s); A still fetches (own 0) -> A. */
  c = ctx(2.5, 0);
  CHECK_OK(mc_cond_prefill_cache_global(&c, &o));
  CHECK_EQ_INT(o.id, 10);
  CHECK_EQ_INT(o.fetch_from, 11);
  CHECK(FX_NEAR(o.ttft_s, 0.2008));
  /* B is the best holder itself: never fetches from itself. */
  cand[1].queue_s = 0;
  c.cand = cand;
  CHECK_OK(mc_cond_prefill_cache_global(&c, &o));
  CHECK_EQ_INT(o.id, 11);
  CHECK_EQ_INT(o.fetch_from, -1);
  CHECK(FX_NEAR(o.ttft_s, 0.2));
  /* No candidates. */
  c.n_cand = 0;
  CHECK_RC(mc_cond_prefill_cache_global(&c, &o), MC_EINVAL);
  CHECK_RC(mc_cond_prefill_random(&c, &o), MC_EINVAL);
}

static void test_decode(void) {
  mc_cond_profile small = prof;
  small.kv_capacity_tokens = 100;
  mc_cond_dcand d[2] = {{20, 10, 0, &prof}, {21, 2, 0, &prof}};
  mc_cond_dctx c = {.req_tokens = 50, .tbt_slo_s = 0.0125, .cand = d, .n_cand = 2};
  mc_cond_dchoice o;
  /* step with the request: D0 0.12, D1 0.04: neither within 12.5 ms ->
   * the smaller, fits = 0. */
  CHECK_OK(mc_cond_decode_slo_balance(&c, &o));
  CHECK_EQ_INT(o.id, 21);
  CHECK_EQ_INT(o.fits, 0);
  CHECK(FX_NEAR(o.tbt_s, 0.04));
  /* SLO 50 ms: D1 fits. */
  c.tbt_slo_s = 0.05;
  CHECK_OK(mc_cond_decode_slo_balance(&c, &o));
  CHECK_EQ_INT(o.id, 21);
  CHECK_EQ_INT(o.fits, 1);
  /* D1's memory is too small for 500 tokens; D0 fits at 0.2 s SLO. */
  d[1].profile = &small;
  c.req_tokens = 500;
  c.tbt_slo_s = 0.2;
  CHECK_OK(mc_cond_decode_slo_balance(&c, &o));
  CHECK_EQ_INT(o.id, 20);
  CHECK_EQ_INT(o.fits, 1);
  c.n_cand = 0;
  CHECK_RC(mc_cond_decode_slo_balance(&c, &o), MC_EINVAL);
}

static void test_admit(void) {
  mc_cond_actx a = {.prefill_load = 0.5, .decode_load_now = 5, .decode_load_pred = 0.9,
                    .decode_fits = 0, .limit = 1.0};
  CHECK_EQ_INT(mc_cond_admit_baseline(&a), MC_COND_ADMITTED);
  CHECK_EQ_INT(mc_cond_admit_early(&a), MC_COND_REJ_DECODE);
  CHECK_EQ_INT(mc_cond_admit_predicted(&a), MC_COND_ADMITTED);
  a.decode_load_pred = 1.1;
  CHECK_EQ_INT(mc_cond_admit_predicted(&a), MC_COND_REJ_PREDICTED);
  a.decode_load_now = 0.3;
  CHECK_EQ_INT(mc_cond_admit_early(&a), MC_COND_ADMITTED);
  a.prefill_load = 1.2;
  CHECK_EQ_INT(mc_cond_admit_baseline(&a), MC_COND_REJ_TTFT);
  CHECK_EQ_INT(mc_cond_admit_early(&a), MC_COND_REJ_TTFT);
  CHECK_EQ_INT(mc_cond_admit_predicted(&a), MC_COND_REJ_TTFT);
}

static void test_tables(void) {
  const char *p[] = {"random", "load-balance", "cache-local", "cache-global"};
  mc_cond_prefill_fn f[] = {mc_cond_prefill_random, mc_cond_prefill_load_balance,
                            mc_cond_prefill_cache_local, mc_cond_prefill_cache_global};
  for (int i = 0; i < 4; i++) {
    CHECK(mc_cond_prefill_policy(p[i]) != NULL);
    CHECK(mc_cond_prefill_policy(p[i])->select == f[i]);
    CHECK_STR(mc_cond_prefill_policy(p[i])->name, p[i]);
  }
  CHECK(mc_cond_prefill_policy("nope") == NULL);
  CHECK(mc_cond_prefill_policy(NULL) == NULL);
  CHECK(mc_cond_decode_policy("slo-balance")->select == mc_cond_decode_slo_balance);
  CHECK(mc_cond_admit_policy("baseline")->admit == mc_cond_admit_baseline);
  CHECK(mc_cond_admit_policy("early")->predicts == 0);
  CHECK(mc_cond_admit_policy("predicted")->predicts == 1);
  CHECK(mc_cond_admit_policy("x") == NULL);
  CHECK_STR(mc_cond_reject_str(MC_COND_REJ_PREDICTED), "predicted-decode-load");
  CHECK_STR(mc_cond_reject_str(99), "unknown");
}

int main(void) {
  prof = fx_profile();
  test_models();
  test_prefill();
  test_decode();
  test_admit();
  test_tables();
  printf("ok: conductor policies\n");
  return 0;
}
