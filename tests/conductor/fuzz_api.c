/* Fuzz target: the mooncake-conductor API (conductor/service/api.c) on
 * untrusted request bodies.  The first byte picks the endpoint, the rest
 * is the body (for GET /query, the ?blocks= value).  A fixed cluster is
 * registered once; state carries over between inputs, as in a service.
 * Any crash, sanitizer report or leak fails.  A twin instance without the
 * /schedule fast path (fast.h) gets every input too, on the same fixed
 * clock: the two must answer byte for byte the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static cs_api api, ref;
static int ready;

static double fixed_clock(void) {
  return 5.0;
}

static void setup_one(cs_api *a, int no_fast) {
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
  if (cs_api_init(a, &o, &p, NULL, 0))
    abort();
  a->clock = fixed_clock;
  a->t0 = 0;
  a->no_fast = no_fast;
  char *out;
  const char *ct;
  const char *regs[] = {"{\"name\":\"p0\",\"role\":\"prefill\"}", "{\"name\":\"p1\",\"role\":\"both\"}",
                        "{\"name\":\"d0\",\"role\":\"decode\"}", "{\"name\":\"pool\",\"role\":\"pool\"}"};
  for (int i = 0; i < 4; i++) {
    if (cs_api_handle(a, "POST", "/register", NULL, regs[i], strlen(regs[i]), &out, &ct) != 200)
      abort();
    free(out);
  }
}

static void setup(void) {
  setup_one(&api, 0);
  setup_one(&ref, 1);
  ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const paths[] = {"/register", "/unregister", "/events", "/schedule",
                                      "/complete", "/query", "/metrics", "/nowhere"};
  if (!ready)
    setup();
  if (!size)
    return 0;
  const char *path = paths[data[0] % 8];
  const char *method = (data[0] & 0x80) ? "GET" : "POST";
  char *body = malloc(size);
  if (!body)
    return 0;
  memcpy(body, data + 1, size - 1);
  body[size - 1] = 0;
  char *out = NULL;
  const char *ct;
  int st = cs_api_handle(&api, method, path, body, body, size - 1, &out, &ct);
  if (st < 200 || st > 599)
    abort();
  char *rout = NULL;
  int rst = cs_api_handle(&ref, method, path, body, body, size - 1, &rout, &ct);
  if (rst != st || !out != !rout || (out && strcmp(out, rout)))
    abort(); /* the fast path answered differently */
  free(out);
  free(rout);
  free(body);
  /* Keep the index bounded across many inputs. */
  mc_cond_stats s;
  mc_cond_get_stats(api.c, &s);
  if (s.instances < 2 || s.index_blocks > 100000) {
    cs_api_fini(&api);
    cs_api_fini(&ref);
    ready = 0;
  }
  return 0;
}
