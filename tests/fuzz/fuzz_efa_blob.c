/* Fuzzes the efa transport's blob parsers (endpoint descriptors and remote
 * keys come from peers): no crash or sanitizer report on any input, and
 * whatever decodes re-encodes to the same bytes.  efa_blob.c is libc only,
 * so this target builds without libfabric. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "efa/efa_blob.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t out[4096];
  static efab_desc d;
  if (efab_desc_decode(data, size, &d) == 0) {
    size_t len = sizeof out;
    if (efab_desc_encode(&d, out, &len) || len != size || memcmp(out, data, size))
      abort();
  }
  efab_rkey k;
  if (efab_rkey_decode(data, size, &k) == 0) {
    size_t len = sizeof out;
    if (efab_rkey_encode(&k, out, &len) || len != size || memcmp(out, data, size))
      abort();
  }
  return 0;
}
