/* Fuzz target: YAML profiles (mc_cond_profile_parse), which the service
 * also accepts inline at /register ("profile_yaml"). */
#include <stdint.h>
#include <stdlib.h>

#include "mooncake/conductor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mc_cond_profile p;
  char err[256];
  if (mc_cond_profile_parse((const char *)data, size, "fuzz", &p, err, sizeof err) == 0) {
    /* A profile that parsed must predict finite, non-negative times. */
    if (!(mc_cond_prefill_time(&p, 1000, 500) >= 0) || !(mc_cond_transfer_time(&p, 3) >= 0))
      abort();
  }
  return 0;
}
