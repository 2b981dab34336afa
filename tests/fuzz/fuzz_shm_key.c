/* Fuzzes the shm transport's blob parsers (remote keys and endpoint
 * descriptors come from peers): no crash or sanitizer report on any input,
 * and whatever decodes re-encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/shm_blob.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *why = NULL;
  uint8_t out[4096];
  shm_rkey k;
  if (shm_rkey_decode(data, size, &k, &why) == 0) {
    size_t len = sizeof out;
    if (shm_rkey_encode(&k, out, &len) || len != size || memcmp(out, data, size))
      abort();
  } else if (!why) {
    abort(); /* every refusal names its reason */
  }
  shm_desc d;
  why = NULL;
  if (shm_desc_decode(data, size, &d, &why) == 0) {
    size_t len = sizeof out;
    if (shm_desc_encode(&d, out, &len) || len != size || memcmp(out, data, size))
      abort();
  } else if (!why) {
    abort();
  }
  return 0;
}
