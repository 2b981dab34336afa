/* The prefix index through the public API: events with sequence numbers,
 * duplicates, a gap and the resync after it, longest-prefix matching, and
 * a randomized run against a plain model (growth and deletions). */
#include <stdlib.h>

#include "check.h"
#include "cond_fixture.h"

static uint32_t len[MC_COND_MAX_INSTANCES];

static void test_events(void) {
  mc_cond *c;
  mc_cond_profile p = fx_profile();
  CHECK_OK(mc_cond_create(NULL, &c, NULL, 0));
  int a, b;
  CHECK_OK(mc_cond_add_instance(c, "a", MC_COND_PREFILL, &p, &a));
  CHECK_OK(mc_cond_add_instance(c, "b", MC_COND_PREFILL, &p, &b));
  CHECK_RC(mc_cond_add_instance(c, "a", MC_COND_PREFILL, &p, NULL), MC_EEXIST);
  CHECK_RC(mc_cond_add_instance(c, "", MC_COND_PREFILL, &p, NULL), MC_EINVAL);
  CHECK_RC(mc_cond_add_instance(c, "bad\nname", MC_COND_PREFILL, &p, NULL), MC_EINVAL);
  CHECK_RC(mc_cond_add_instance(c, "x", 0, &p, NULL), MC_EINVAL);
  CHECK_EQ_INT(mc_cond_find_instance(c, "b"), b);
  CHECK_EQ_INT(mc_cond_find_instance(c, "zz"), MC_ENOENT);

  uint64_t k[] = {0, 1, 2, 3};
  CHECK_OK(mc_cond_apply_event(c, a, 1, MC_COND_EV_STORED, k, 3));  /* a: 0 1 2 */
  CHECK_OK(mc_cond_apply_event(c, b, 1, MC_COND_EV_STORED, k, 2));  /* b: 0 1 */
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 3);
  CHECK_EQ_INT(len[a], 3);
  CHECK_EQ_INT(len[b], 2);
  /* A chain matches only from its start: b holds 1 but not 0 after this. */
  CHECK_OK(mc_cond_apply_event(c, b, 2, MC_COND_EV_REMOVED, k, 1));
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 3);
  CHECK_EQ_INT(len[b], 0);
  /* Duplicate and replayed events are ignored. */
  CHECK_EQ_INT(mc_cond_apply_event(c, b, 2, MC_COND_EV_STORED, k, 1), 1);
  CHECK_EQ_INT(mc_cond_apply_event(c, b, 1, MC_COND_EV_STORED, k, 1), 1);
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 3);
  CHECK_EQ_INT(len[b], 0);
  /* Bad event and unknown instance. */
  CHECK_RC(mc_cond_apply_event(c, a, 2, 7, k, 1), MC_EINVAL);
  CHECK_RC(mc_cond_apply_event(c, 200, 1, MC_COND_EV_STORED, k, 1), MC_ENOENT);
  CHECK_RC(mc_cond_apply_event(c, -1, 1, MC_COND_EV_STORED, k, 1), MC_ENOENT);
  /* A gap: a's entries go, later events wait for a resync. */
  CHECK_RC(mc_cond_apply_event(c, a, 5, MC_COND_EV_STORED, k + 3, 1), MC_EPROTO);
  mc_cond_inst_stats st;
  CHECK_OK(mc_cond_instance_stats(c, a, 0, &st));
  CHECK_EQ_INT(st.needs_resync, 1);
  CHECK_EQ_U64(st.blocks, 0);
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 0);
  CHECK_RC(mc_cond_apply_event(c, a, 6, MC_COND_EV_STORED, k, 1), MC_EAGAIN);
  CHECK_OK(mc_cond_resync(c, a, 9, k, 2));
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 2);
  CHECK_EQ_INT(len[a], 2);
  CHECK_OK(mc_cond_apply_event(c, a, 10, MC_COND_EV_STORED, k + 2, 2));
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 4);
  mc_cond_stats cs;
  mc_cond_get_stats(c, &cs);
  CHECK_EQ_U64(cs.gaps, 1);
  CHECK_EQ_U64(cs.resyncs, 1);
  CHECK_EQ_U64(cs.duplicates, 2);
  CHECK_EQ_U64(cs.index_blocks, 4);
  /* Unregistering drops its entries. */
  CHECK_OK(mc_cond_remove_instance(c, a));
  CHECK_RC(mc_cond_remove_instance(c, a), MC_ENOENT);
  CHECK_EQ_INT(mc_cond_match(c, k, 4, len), 0);
  mc_cond_get_stats(c, &cs);
  CHECK_EQ_U64(cs.index_blocks, 1); /* b's block 1 */
  mc_cond_destroy(c);
}

/* Random stored/removed events over NI instances and NK keys, checked
 * at the end against a plain bitmap (exercises table growth, arena
 * compaction, backward-shift deletion and dropping an instance; with many
 * instances on few keys, holder sets that move to the side pool and back
 * inline). */
static void test_random(int NI, uint64_t NK, int rounds) {
  mc_cond *c;
  mc_cond_profile p = fx_profile();
  CHECK_OK(mc_cond_create(NULL, &c, NULL, 0));
  int id[MC_COND_MAX_INSTANCES];
  uint64_t seq[MC_COND_MAX_INSTANCES] = {0};
  for (int i = 0; i < NI; i++) {
    char n[16];
    snprintf(n, sizeof n, "i%d", i);
    CHECK_OK(mc_cond_add_instance(c, n, MC_COND_PREFILL, &p, &id[i]));
  }
  unsigned char *held = calloc((size_t)NK * NI, 1);
  CHECK(held != NULL);
  uint64_t rng = 12345, batch[64];
  for (int round = 0; round < rounds; round++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    int i = (int)((rng >> 33) % NI), type = (rng >> 20) & 1 ? MC_COND_EV_STORED
                                                          : MC_COND_EV_REMOVED;
    if (round % 3 == 0)
      type = MC_COND_EV_STORED;
    size_t n = 1 + (rng >> 40) % 64;
    for (size_t j = 0; j < n; j++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      batch[j] = (rng >> 24) % NK;
      held[batch[j] * NI + (size_t)i] = type == MC_COND_EV_STORED;
    }
    CHECK_OK(mc_cond_apply_event(c, id[i], ++seq[i], type, batch, n));
    if (round == rounds * 2 / 3) {
      CHECK_OK(mc_cond_remove_instance(c, id[3]));
      for (size_t k = 0; k < NK; k++)
        held[k * NI + 3] = 0;
      CHECK_OK(mc_cond_add_instance(c, "i3", MC_COND_PREFILL, &p, &id[3]));
      seq[3] = 0;
    }
  }
  uint64_t total = 0;
  for (uint64_t k = 0; k < NK; k++) {
    int any = 0;
    uint32_t best = mc_cond_match(c, &k, 1, len);
    for (int i = 0; i < NI; i++) {
      CHECK_EQ_INT(len[id[i]], held[k * NI + (size_t)i]);
      any |= held[k * NI + (size_t)i];
    }
    CHECK_EQ_INT(best, any);
    total += (uint64_t)any;
  }
  mc_cond_stats cs;
  mc_cond_get_stats(c, &cs);
  CHECK_EQ_U64(cs.index_blocks, total);
  free(held);
  mc_cond_destroy(c);
}

/* One block held by 20 instances (its holders in the side pool), then
 * given up one by one down to none. */
static void test_many_holders(void) {
  mc_cond *c;
  mc_cond_profile p = fx_profile();
  CHECK_OK(mc_cond_create(NULL, &c, NULL, 0));
  int id[20];
  uint64_t k[2] = {42, 43};
  for (int i = 0; i < 20; i++) {
    char n[16];
    snprintf(n, sizeof n, "h%d", i);
    CHECK_OK(mc_cond_add_instance(c, n, MC_COND_PREFILL, &p, &id[i]));
    CHECK_OK(mc_cond_apply_event(c, id[i], 1, MC_COND_EV_STORED, k, i % 2 ? 2 : 1));
  }
  mc_cond_stats cs;
  for (int i = 0; i < 20; i++) {
    CHECK_EQ_INT(mc_cond_match(c, k, 2, len), 2); /* h19 holds both */
    for (int j = 0; j < 20; j++)
      CHECK_EQ_INT(len[id[j]], j < i ? 0 : (j % 2 ? 2 : 1));
    CHECK_OK(mc_cond_apply_event(c, id[i], 2, MC_COND_EV_REMOVED, k, 2));
    mc_cond_get_stats(c, &cs);
    CHECK_EQ_U64(cs.index_blocks, (uint64_t)(i < 19 ? 2 : 0));
  }
  CHECK_EQ_INT(mc_cond_match(c, k, 2, len), 0);
  mc_cond_destroy(c);
}

/* Chains: events store and remove runs of consecutive keys (sometimes
 * backwards), so the arena holds chains with holes, is compacted and
 * grows; matches of runs (the arena's next-entry path) and of strided
 * keys (the table path) against a plain bitmap. */
static void test_chains(int NI, int remove_every) {
  enum { NK = 6000, Q = 3000 };
  mc_cond *c;
  mc_cond_profile p = fx_profile();
  CHECK_OK(mc_cond_create(NULL, &c, NULL, 0));
  int id[MC_COND_MAX_INSTANCES];
  uint64_t seq[MC_COND_MAX_INSTANCES] = {0};
  for (int i = 0; i < NI; i++) {
    char n[16];
    snprintf(n, sizeof n, "c%d", i);
    CHECK_OK(mc_cond_add_instance(c, n, MC_COND_PREFILL, &p, &id[i]));
  }
  unsigned char *held = calloc((size_t)NK * NI, 1);
  CHECK(held != NULL);
  uint64_t rng = 777, batch[128], q[128];
#define NEXT() (rng = rng * 6364136223846793005ull + 1442695040888963407ull, rng >> 24)
  for (int round = 0; round < 5000; round++) {
    int i = (int)(NEXT() % NI);
    int type = round % remove_every == 1 ? MC_COND_EV_REMOVED : MC_COND_EV_STORED;
    size_t n = 1 + NEXT() % 128;
    uint64_t start = NEXT() % (NK - n);
    int back = NEXT() % 5 == 0;
    for (size_t j = 0; j < n; j++) {
      batch[j] = back ? start + n - 1 - j : start + j;
      held[batch[j] * NI + (size_t)i] = type == MC_COND_EV_STORED;
    }
    CHECK_OK(mc_cond_apply_event(c, id[i], ++seq[i], type, batch, n));
  }
  for (int t = 0; t < Q; t++) {
    size_t n = 1 + NEXT() % 128;
    uint64_t stride = t % 3 == 2 ? 1 + NEXT() % 7 : 1;
    uint64_t start = NEXT() % (NK - n * stride);
    for (size_t j = 0; j < n; j++)
      q[j] = start + j * stride;
    uint32_t best = mc_cond_match(c, q, n, len), want_best = 0;
    for (int i = 0; i < NI; i++) {
      uint32_t want = 0;
      while (want < n && held[q[want] * NI + (size_t)i])
        want++;
      CHECK_EQ_INT(len[id[i]], want);
      if (want > want_best)
        want_best = want;
    }
    CHECK_EQ_INT(best, want_best);
  }
#undef NEXT
  free(held);
  mc_cond_destroy(c);
}

int main(void) {
  test_events();
  test_random(8, 20000, 3000);
  test_random(200, 300, 6000);
  test_random(MC_COND_MAX_INSTANCES, 40, 3000);
  test_chains(16, 4);
  test_chains(3, 2); /* keys left with no holder: holes, compaction */
  test_many_holders();
  printf("ok: conductor prefix index\n");
  return 0;
}
