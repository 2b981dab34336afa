/* Fuzzes the segment descriptor decoder (JSON off the network).  Whatever
 * decodes must encode again, and that encoding must decode to the same
 * text; lookups on the result must stay in bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"
#include "mooncake/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mc_seg_desc *d;
  char err[256];
  int rc = mc_desc_decode((const char *)data, size, &d, err, sizeof err);
  if (rc) {
    if (rc != MC_EPROTO && rc != MC_ENOMEM)
      abort();
    if (rc == MC_EPROTO && err[0] == '\0')
      abort(); /* every rejection says why */
    return 0;
  }
  char *json;
  size_t len;
  if (mc_desc_encode(d, &json, &len))
    abort();
  mc_seg_desc *d2;
  if (mc_desc_decode(json, len, &d2, err, sizeof err))
    abort();
  char *json2;
  size_t len2;
  if (mc_desc_encode(d2, &json2, &len2) || len2 != len ||
      memcmp(json, json2, len) != 0)
    abort();
  for (uint32_t i = 0; i < d->nbuffers; i++) {
    const mc_desc_buffer *b = &d->buffers[i];
    if (mc_desc_find_buffer(d, b->addr, b->len) != (long)i ||
        mc_desc_find_buffer(d, b->addr + b->len - 1, 1) != (long)i)
      abort();
    for (uint32_t k = 0; k < b->nkeys; k++)
      if (b->keys[k].transport >= d->ntransports ||
          b->keys[k].len > MC_RKEY_MAX)
        abort();
  }
  for (uint32_t i = 0; i < d->ntransports; i++)
    if (mc_desc_find_transport(d, d->transports[i].name) != (int)i)
      abort();
  free(json);
  free(json2);
  mc_desc_free(d);
  mc_desc_free(d2);
  return 0;
}
