/* mc_cond_schedule end to end on a hand-built cluster: Algorithm 1 with
 * the queue accounting and hot-block replication, decode admission, the
 * three admission policies (the predicted one admitting what early
 * rejection refuses), bad requests, custom ops. */
#include "check.h"
#include "cond_fixture.h"

static uint64_t blocks[10] = {100, 101, 102, 103, 104, 105, 106, 107, 108, 109};

static mc_cond *make(const char *admit, int *p0, int *p1, int *d0) {
  mc_cond_opts o;
  mc_cond_opts_init(&o);
  o.admit = mc_cond_admit_policy(admit);
  o.ttft_slo_s = 10;
  o.tbt_slo_s = 0.035; /* step 10 ms + 10 ms per request: 2 fit */
  o.decode_time_s = 10;
  o.decode_load_scope = MC_COND_SCOPE_CHOSEN;
  mc_cond *c;
  CHECK_OK(mc_cond_create(&o, &c, NULL, 0));
  mc_cond_profile p = fx_profile();
  CHECK_OK(mc_cond_add_instance(c, "p0", MC_COND_PREFILL, &p, p0));
  CHECK_OK(mc_cond_add_instance(c, "p1", MC_COND_PREFILL, &p, p1));
  CHECK_OK(mc_cond_add_instance(c, "d0", MC_COND_DECODE, &p, d0));
  /* p0 holds the first 8 blocks. */
  CHECK_OK(mc_cond_apply_event(c, *p0, 1, MC_COND_EV_STORED, blocks, 8));
  return c;
}

static mc_cond_req req(double now) {
  return (mc_cond_req){.blocks = blocks, .n_blocks = 10, .input_len = 1000,
                       .output_len = 0, .now_s = now};
}

static void test_algorithm1(void) {
  int p0, p1, d0;
  mc_cond *c = make("baseline", &p0, &p1, &d0);
  mc_cond_req r = req(0);
  mc_cond_decision d;
  /* p0: 0.2 s of prefill with its 8 blocks. */
  CHECK_OK(mc_cond_schedule(c, &r, &d));
  CHECK_EQ_INT(d.reject, MC_COND_ADMITTED);
  CHECK_EQ_INT(d.prefill.id, p0);
  CHECK_EQ_INT(d.prefill.fetch_from, -1);
  CHECK(FX_NEAR(d.prefill.ttft_s, 0.2));
  CHECK_EQ_INT(d.decode.id, d0);
  uint64_t first = d.req_id;
  /* Again at once: p0 has 0.2 s queued (0.4 total); p1 fetches the 8
   * blocks from p0 (8e-4 s) and prefills 0.2 s -> p1, hot-block copy. */
  CHECK_OK(mc_cond_schedule(c, &r, &d));
  CHECK_EQ_INT(d.prefill.id, p1);
  CHECK_EQ_INT(d.prefill.fetch_from, p0);
  CHECK_EQ_INT(d.prefill.prefix_blocks, 8);
  CHECK_EQ_INT(d.prefill.local_blocks, 0);
  CHECK(FX_NEAR(d.prefill.ttft_s, 0.2008));
  uint64_t second = d.req_id;
  mc_cond_inst_stats st;
  CHECK_OK(mc_cond_instance_stats(c, p0, 0.05, &st));
  CHECK(FX_NEAR(st.queue_s, 0.15)); /* counted down since 0 */
  CHECK_EQ_INT(st.prefill_queued, 1);
  /* p1 reports the copy: now both hold the prefix. */
  CHECK_OK(mc_cond_apply_event(c, p1, 1, MC_COND_EV_STORED, blocks, 10));
  uint32_t len[MC_COND_MAX_INSTANCES];
  CHECK_EQ_INT(mc_cond_match(c, blocks, 10, len), 10);
  CHECK_EQ_INT(len[p0], 8);
  /* Prefill done, decode admits (batch 1: 20 ms <= 35 ms). */
  int rej = -1;
  CHECK_OK(mc_cond_decode_admit(c, first, 0.2, &rej));
  CHECK_EQ_INT(rej, 0);
  CHECK_OK(mc_cond_instance_stats(c, p0, 0.2, &st));
  CHECK_EQ_INT(st.prefill_queued, 0);
  CHECK(FX_NEAR(st.queue_s, 0));
  CHECK_OK(mc_cond_decode_admit(c, second, 0.21, &rej));
  CHECK_EQ_INT(rej, 0);
  CHECK_OK(mc_cond_instance_stats(c, d0, 0.21, &st));
  CHECK_EQ_INT(st.decode_batch, 2);
  /* A third: baseline admits it (prefill is free) and the decode instance
   * refuses it after prefill (3 requests: 40 ms > 35 ms). */
  r.now_s = 1;
  CHECK_OK(mc_cond_schedule(c, &r, &d));
  CHECK_EQ_INT(d.reject, MC_COND_ADMITTED);
  CHECK_OK(mc_cond_decode_admit(c, d.req_id, 1.2, &rej));
  CHECK_EQ_INT(rej, MC_COND_REJ_DECODE_LOCAL);
  CHECK_RC(mc_cond_request_done(c, d.req_id, 1.2), MC_ENOENT); /* released */
  CHECK_OK(mc_cond_request_done(c, first, 2));
  CHECK_OK(mc_cond_request_done(c, second, 2));
  CHECK_RC(mc_cond_request_done(c, second, 2), MC_ENOENT);
  mc_cond_stats cs;
  mc_cond_get_stats(c, &cs);
  CHECK_EQ_U64(cs.active, 0);
  CHECK_EQ_U64(cs.admitted, 3);
  CHECK_EQ_U64(cs.rejected[MC_COND_REJ_DECODE_LOCAL], 1);
  mc_cond_destroy(c);
}

/* Two requests decode from t=0 (t_d = 10 s).  At t=9.9 a third costs
 * 0.2 s of prefill: decode is full now (10 ms + 3 x 10 ms = 40 ms > 35),
 * but by t=10.1 both are predicted gone.  early rejects, predicted admits. */
static void test_prediction(void) {
  const char *adm[] = {"early", "predicted"};
  int want[] = {MC_COND_REJ_DECODE, MC_COND_ADMITTED};
  for (int k = 0; k < 2; k++) {
    int p0, p1, d0, rej;
    mc_cond *c = make(adm[k], &p0, &p1, &d0);
    mc_cond_req r = req(0);
    mc_cond_decision d;
    for (int i = 0; i < 2; i++) {
      CHECK_OK(mc_cond_schedule(c, &r, &d));
      CHECK_EQ_INT(d.reject, MC_COND_ADMITTED);
      CHECK_OK(mc_cond_decode_admit(c, d.req_id, 0, &rej));
      CHECK_EQ_INT(rej, 0);
    }
    /* At 5 s the two are predicted to stay: both reject. */
    r.now_s = 5;
    CHECK_OK(mc_cond_schedule(c, &r, &d));
    CHECK_EQ_INT(d.reject, k == 0 ? MC_COND_REJ_DECODE : MC_COND_REJ_PREDICTED);
    r.now_s = 9.9;
    CHECK_OK(mc_cond_schedule(c, &r, &d));
    CHECK_EQ_INT(d.reject, want[k]);
    CHECK(d.decode_load_now > 1.14 && d.decode_load_now < 1.15); /* 40/35 */
    if (k == 1)
      CHECK(FX_NEAR(d.decode_load_pred, 20.0 / 35.0)); /* only itself left */
    mc_cond_destroy(c);
  }
}

static int last_cand(const mc_cond_pctx *ctx, mc_cond_pchoice *out) {
  int rc = mc_cond_prefill_load_balance(ctx, out);
  out->id = ctx->cand[ctx->n_cand - 1].id;
  return rc;
}

static void test_bad_and_custom(void) {
  int p0, p1, d0;
  mc_cond *c = make("early", &p0, &p1, &d0);
  mc_cond_req r = req(0);
  mc_cond_decision d;
  r.n_blocks = 0;
  CHECK_RC(mc_cond_schedule(c, &r, &d), MC_EINVAL);
  r = req(0);
  r.input_len = 0;
  CHECK_RC(mc_cond_schedule(c, &r, &d), MC_EINVAL);
  r = req(0);
  r.blocks = NULL;
  CHECK_RC(mc_cond_schedule(c, &r, &d), MC_EINVAL);
  r = req(0);
  r.input_len = 9; /* 10 blocks cannot hold 9 tokens */
  CHECK_RC(mc_cond_schedule(c, &r, &d), MC_EINVAL);
  CHECK_RC(mc_cond_decode_admit(c, 12345, 0, &(int){0}), MC_ENOENT);
  CHECK_RC(mc_cond_prefill_done(c, 12345, 0), MC_ENOENT);
  /* No decode instance: rejected with the reason. */
  CHECK_OK(mc_cond_remove_instance(c, d0));
  r = req(0);
  CHECK_OK(mc_cond_schedule(c, &r, &d));
  CHECK_EQ_INT(d.reject, MC_COND_REJ_NO_INSTANCE);
  mc_cond_destroy(c);

  /* In-flight cap: the second admitted request finds it full. */
  mc_cond_opts o;
  mc_cond_opts_init(&o);
  o.max_requests = 1;
  CHECK_OK(mc_cond_create(&o, &c, NULL, 0));
  mc_cond_profile fp = fx_profile();
  CHECK_OK(mc_cond_add_instance(c, "p0", MC_COND_PREFILL, &fp, &p0));
  CHECK_OK(mc_cond_add_instance(c, "d0", MC_COND_DECODE, &fp, &d0));
  r = req(0);
  CHECK_OK(mc_cond_schedule(c, &r, &d));
  CHECK_EQ_INT(d.reject, MC_COND_ADMITTED);
  uint64_t only = d.req_id;
  CHECK_RC(mc_cond_schedule(c, &r, &d), MC_EBUSY);
  CHECK_OK(mc_cond_request_done(c, only, 1));
  CHECK_OK(mc_cond_schedule(c, &r, &d)); /* room again */
  CHECK_EQ_INT(d.reject, MC_COND_ADMITTED);
  mc_cond_destroy(c);
  /* Bad options. */
  mc_cond_opts_init(&o);
  o.kvcache_balancing_threshold = 0.5;
  char err[128] = "";
  CHECK_RC(mc_cond_create(&o, &c, err, sizeof err), MC_EINVAL);
  CHECK_HAS(err, "kvcache_balancing_threshold");
  /* A custom prefill policy from the caller's own ops table. */
  mc_cond_opts_init(&o);
  mc_cond_prefill_ops mine = {"last", last_cand};
  o.prefill = &mine;
  CHECK_OK(mc_cond_create(&o, &c, NULL, 0));
  mc_cond_profile p = fx_profile();
  CHECK_OK(mc_cond_add_instance(c, "p0", MC_COND_PREFILL, &p, &p0));
  CHECK_OK(mc_cond_add_instance(c, "p1", MC_COND_PREFILL, &p, &p1));
  CHECK_OK(mc_cond_add_instance(c, "d0", MC_COND_DECODE, &p, &d0));
  r = req(0);
  CHECK_OK(mc_cond_schedule(c, &r, &d));
  CHECK_EQ_INT(d.prefill.id, p1);
  /* Removing an instance releases its requests. */
  CHECK_OK(mc_cond_remove_instance(c, p1));
  mc_cond_stats cs;
  mc_cond_get_stats(c, &cs);
  CHECK_EQ_U64(cs.active, 0);
  mc_cond_destroy(c);
}

/* Instances with different profiles among instances with the same one:
 * each candidate is costed with its own profile (the conductor shares one
 * copy per distinct profile and the policies reuse a result only for the
 * same copy), also after one is replaced by an instance of another. */
static void test_profiles(void) {
  for (int pol = 0; pol < 2; pol++) {
    mc_cond_opts o;
    mc_cond_opts_init(&o);
    o.prefill = mc_cond_prefill_policy(pol ? "cache-local" : "cache-global");
    o.ttft_slo_s = 100;
    mc_cond *c;
    CHECK_OK(mc_cond_create(&o, &c, NULL, 0));
    mc_cond_profile slow = fx_profile(), fast = fx_profile(), faster = fx_profile();
    slow.prefill[0].coef = 0.002;
    faster.prefill[0].coef = 0.0005;
    strcpy(faster.name, "faster");
    int s0, f1, s2, f3, d;
    CHECK_OK(mc_cond_add_instance(c, "s0", MC_COND_PREFILL, &slow, &s0));
    CHECK_OK(mc_cond_add_instance(c, "s2", MC_COND_PREFILL, &slow, &s2));
    CHECK_OK(mc_cond_add_instance(c, "f1", MC_COND_PREFILL, &fast, &f1));
    CHECK_OK(mc_cond_add_instance(c, "f3", MC_COND_PREFILL, &fast, &f3));
    CHECK_OK(mc_cond_add_instance(c, "d", MC_COND_DECODE, &fast, &d));
    mc_cond_req r = req(0);
    mc_cond_decision dd;
    CHECK_OK(mc_cond_schedule(c, &r, &dd));
    /* Nothing cached: the first fast one (the slow ones come first). */
    CHECK_EQ_INT(dd.prefill.id, f1);
    CHECK(FX_NEAR(dd.prefill.prefill_s, mc_cond_prefill_time(&fast, 1000, 0)));
    CHECK_OK(mc_cond_request_done(c, dd.req_id, 0));
    /* s0 and f1 go; a faster one takes f1's place. */
    CHECK_OK(mc_cond_remove_instance(c, s0));
    CHECK_OK(mc_cond_remove_instance(c, f1));
    int x;
    CHECK_OK(mc_cond_add_instance(c, "x", MC_COND_PREFILL, &faster, &x));
    CHECK_OK(mc_cond_schedule(c, &r, &dd));
    CHECK_EQ_INT(dd.prefill.id, x);
    CHECK(FX_NEAR(dd.prefill.prefill_s, mc_cond_prefill_time(&faster, 1000, 0)));
    CHECK_OK(mc_cond_request_done(c, dd.req_id, 0));
    /* Same coefficients, another name: not shared, still costed alike. */
    mc_cond_profile named = faster;
    strcpy(named.name, "named");
    int y;
    CHECK_OK(mc_cond_remove_instance(c, x));
    CHECK_OK(mc_cond_add_instance(c, "y", MC_COND_PREFILL, &named, &y));
    CHECK_OK(mc_cond_schedule(c, &r, &dd));
    CHECK_EQ_INT(dd.prefill.id, y);
    CHECK(FX_NEAR(dd.prefill.prefill_s, mc_cond_prefill_time(&named, 1000, 0)));
    mc_cond_destroy(c);
  }
}

int main(void) {
  test_algorithm1();
  test_profiles();
  test_prediction();
  test_bad_and_custom();
  printf("ok: conductor scheduling\n");
  return 0;
}
