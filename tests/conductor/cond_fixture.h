/* Hand-built profiles and instances for the conductor's unit tests. */
#ifndef MC_TEST_COND_FIXTURE_H
#define MC_TEST_COND_FIXTURE_H

#include <string.h>

#include "mooncake/conductor.h"

/* 100-token blocks, 1000 KV bytes per token (1e5 bytes per block), 8 Gbit/s
 * (1e-4 s per block, no setup), prefill 1 ms per new token, decode step
 * 10 ms + 10 ms per request, 10,000 tokens of KV memory. */
static inline mc_cond_profile fx_profile(void) {
  mc_cond_profile p;
  memset(&p, 0, sizeof p);
  strcpy(p.name, "fixture");
  p.block_tokens = 100;
  p.bytes_per_token = 1000;
  p.n_terms = 2;
  p.prefill[0] = (mc_cond_term){0.001, 1, 0};
  p.prefill[1] = (mc_cond_term){-0.001, 0, 1};
  p.decode_base_s = 0.01;
  p.decode_per_seq_s = 0.01;
  p.decode_per_token_s = 0;
  p.kv_capacity_tokens = 10000;
  p.link_gbps = 8;
  p.transfer_setup_s = 0;
  return p;
}

#define FX_NEAR(a, b) (((a) - (b)) < 1e-9 && ((b) - (a)) < 1e-9)

#endif
