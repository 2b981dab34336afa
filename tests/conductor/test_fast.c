/* The fast path of POST /schedule (conductor/service/fast.c) against the
 * general jansson path, byte for byte: two API instances with the same
 * cluster, index and clock, one with the fast path and one without, get
 * the same bodies (plain ones the fast path reads, and every form it must
 * leave to jansson: other keys, duplicates, escapes, reals as block ids,
 * numbers out of range, trailing bytes, ...), plus deterministic
 * mutations of a plain body; status and answer must be identical, and
 * the plain bodies must really take the fast path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "check.h"
#include "fast.h"

static double fixed_clock(void) {
  return 1000.0;
}

static cs_api fast, slow;

static void both(const char *path, const char *body, size_t len, int *status) {
  char *o1 = NULL, *o2 = NULL;
  const char *ct;
  int s1 = cs_api_handle(&fast, "POST", path, NULL, body, len, &o1, &ct);
  int s2 = cs_api_handle(&slow, "POST", path, NULL, body, len, &o2, &ct);
  CHECK_MSG(s1 == s2, "%s %.*s: status %d (fast) vs %d (jansson)", path, (int)len, body, s1, s2);
  CHECK_MSG(o1 && o2 && !strcmp(o1, o2), "%s %.*s:\n  fast    %s\n  jansson %s", path, (int)len,
            body, o1 ? o1 : "(null)", o2 ? o2 : "(null)");
  if (status)
    *status = s1;
  free(o1);
  free(o2);
}

static void setup(cs_api *a, int no_fast) {
  mc_cond_profile p;
  memset(&p, 0, sizeof p);
  p.block_tokens = 512;
  p.bytes_per_token = 327680;
  p.n_terms = 2;
  p.prefill[0] = (mc_cond_term){1.25e-4, 1, 0};
  p.prefill[1] = (mc_cond_term){1.2e-9, 2, 0};
  p.decode_base_s = 0.015;
  p.decode_per_seq_s = 3e-4;
  p.kv_capacity_tokens = 1.3e6;
  p.link_gbps = 800;
  mc_cond_opts o;
  mc_cond_opts_init(&o);
  o.admit = mc_cond_admit_policy("predicted");
  o.max_requests = 20; /* so some calls answer 503 */
  CHECK(cs_api_init(a, &o, &p, NULL, 0) == 0);
  a->clock = fixed_clock;
  a->t0 = 0;
  a->no_fast = no_fast;
}

static void slowly(const char *path, const char *body) {
  int st;
  both(path, body, strlen(body), &st);
  CHECK_MSG(st == 200, "%s %s: %d", path, body, st);
}

int main(void) {
  setup(&fast, 0);
  setup(&slow, 1);
  slowly("/register", "{\"name\":\"p0\",\"role\":\"prefill\"}");
  slowly("/register", "{\"name\":\"p1\",\"role\":\"both\"}");
  slowly("/register", "{\"name\":\"d0\",\"role\":\"decode\"}");
  slowly("/events", "{\"instance\":\"p0\",\"events\":[{\"seq\":1,\"type\":\"stored\","
                    "\"blocks\":[1,2,3,4,5,6,7,8]}]}");
  slowly("/events", "{\"instance\":\"p1\",\"events\":[{\"seq\":1,\"type\":\"stored\","
                    "\"blocks\":[1,2,\"0xabc\",\"FFFFFFFFFFFFFFFF\"]}]}");

  /* Plain bodies: the fast path reads them. */
  static const char *const plain[] = {
      "{\"blocks\":[1,2,3,4,5],\"input_length\":4096}",
      "{\"blocks\":[1,2,3,4,5,6,7,8,9],\"input_length\":5000,\"output_length\":300}",
      " {\r\n\t\"input_length\" : 2e3 , \"blocks\" : [ 1 , 2 , \"0xabc\" ] } \n",
      "{\"blocks\":[1,2,\"abc\",\"ffffffffffffffff\"],\"input_length\":9000,\"ttft_slo_s\":0.5}",
      "{\"blocks\":[1,2,\"0XABC\"],\"input_length\":1e4,\"tbt_slo_s\":1e-9,\"ttft_slo_s\":1e9}",
      "{\"blocks\":[9223372036854775807],\"input_length\":4294967295,\"output_length\":0}",
      "{\"blocks\":[0],\"input_length\":1,\"output_length\":4294967295,\"ttft_slo_s\":-0.0}",
      "{\"blocks\":[1,2],\"input_length\":1.5,\"ttft_slo_s\":1e-320}",
      "{\"blocks\":[1,2,3],\"input_length\":3,\"ttft_slo_s\":1e-6}", /* rejected: 429 */
      "{\"blocks\":[1],\"input_length\":100,\"ttft_slo_s\":0}",
  };
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
    uint64_t buf[4];
    cs_sched_req q;
    CHECK_MSG(cs_fast_schedule_parse(plain[i], strlen(plain[i]), 1 << 16, buf, 4, &q) == 1,
              "not read by the fast path: %s", plain[i]);
    if (q.blocks != buf)
      free(q.blocks);
    both("/schedule", plain[i], strlen(plain[i]), NULL);
  }
  /* More block ids than the caller's buffer: a malloc'd array. */
  char big[4096] = "{\"input_length\":100000,\"blocks\":[";
  for (int i = 0; i < 300; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big), "%s%d", i ? "," : "", i % 9 + 1);
  strcat(big, "]}");
  both("/schedule", big, strlen(big), NULL);

  /* Forms the fast path leaves to jansson (same answer either way). */
  static const char *const other[] = {
      "", "{}", "[]", "null", "{\"blocks\":[1]}", "{\"input_length\":5}",
      "{\"blocks\":[],\"input_length\":5}",
      "{\"blocks\":[1],\"input_length\":5,\"extra\":{\"a\":[1,2]}}",
      "{\"blocks\":[1],\"blocks\":[2],\"input_length\":5}",
      "{\"blocks\":[1],\"input_length\":5,\"input_length\":6}",
      "{\"bl\\u006fcks\":[1],\"input_length\":5}",
      "{\"blocks\":[1.0],\"input_length\":5}", "{\"blocks\":[1e3],\"input_length\":5}",
      "{\"blocks\":[-1],\"input_length\":5}", "{\"blocks\":[-0],\"input_length\":5}",
      "{\"blocks\":[01],\"input_length\":5}", "{\"blocks\":[9223372036854775808],\"input_length\":5}",
      "{\"blocks\":[\"0x\"],\"input_length\":5}", "{\"blocks\":[\"\"],\"input_length\":5}",
      "{\"blocks\":[\"12345678901234567\"],\"input_length\":5}",
      "{\"blocks\":[\"0x0x1\"],\"input_length\":5}", "{\"blocks\":[\"1g\"],\"input_length\":5}",
      "{\"blocks\":[\"\\u0031\"],\"input_length\":5}", "{\"blocks\":[true],\"input_length\":5}",
      "{\"blocks\":[1],\"input_length\":0}", "{\"blocks\":[1],\"input_length\":4294967296}",
      "{\"blocks\":[1],\"input_length\":\"5\"}", "{\"blocks\":[1],\"input_length\":5,\"ttft_slo_s\":-1}",
      "{\"blocks\":[1],\"input_length\":5,\"ttft_slo_s\":1e999}",
      "{\"blocks\":[1],\"input_length\":99999999999999999999}",
      "{\"blocks\":[1],\"input_length\":5} x", "{\"blocks\":[1],\"input_length\":5}}",
      "{\"blocks\":[1],\"input_length\":5,}", "{\"blocks\":[1,],\"input_length\":5}",
      "{\"blocks\":[1 2],\"input_length\":5}", "{\"blocks\":[1],\"input_length\":-5}",
      "{\"blocks\":[1],\"input_length\":5.}", "{\"blocks\":[1],\"input_length\":.5}",
      "{\"blocks\":[1],\"input_length\":+5}", "{\"blocks\":[1],\"input_length\":5e}",
      "{\"blocks\":[1,2,3,4,5,6],\"input_length\":3}", /* more blocks than tokens: 400 */
      "{\"blocks\":[1],\"input_length\":5,\"tbt_slo_s\":null}",
  };
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
    both("/schedule", other[i], strlen(other[i]), NULL);
  /* A NUL inside the body. */
  both("/schedule", "{\"blocks\":[1],\"input_length\":5}\0", 32, NULL);

  /* Mutations of a plain body: every byte replaced by a few others,
   * deleted, or the body cut there.  Until the conductor is full (503)
   * and after: the states stay in step. */
  const char *seed = "{\"blocks\":[1,2,\"0xabc\",4],\"input_length\":4096,\"ttft_slo_s\":2.5e1}";
  size_t n = strlen(seed);
  static const char subst[] = "0 9\"x,.e-}]{[:\\a";
  char m[256];
  int fast_taken = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < sizeof subst - 1; k++) {
      memcpy(m, seed, n);
      m[i] = subst[k];
      uint64_t buf[8];
      cs_sched_req q;
      if (cs_fast_schedule_parse(m, n, 1 << 16, buf, 8, &q) == 1) {
        fast_taken++;
        if (q.blocks != buf)
          free(q.blocks);
      }
      both("/schedule", m, n, NULL);
    }
    memcpy(m, seed, i);
    memcpy(m + i, seed + i + 1, n - i - 1);
    both("/schedule", m, n - 1, NULL);
    both("/schedule", seed, i, NULL);
  }
  CHECK_MSG(fast_taken > 20, "only %d mutations read by the fast path", fast_taken);
  mc_cond_stats s1, s2;
  mc_cond_get_stats(fast.c, &s1);
  mc_cond_get_stats(slow.c, &s2);
  CHECK_EQ_U64(s1.scheduled, s2.scheduled);
  CHECK_EQ_U64(s1.admitted, s2.admitted);
  CHECK(s1.admitted >= 20); /* the 503 answers were compared too */
  cs_api_fini(&fast);
  cs_api_fini(&slow);
  printf("ok: /schedule fast path = jansson path (%d mutations on the fast path)\n", fast_taken);
  return 0;
}
