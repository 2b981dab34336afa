/* Fuzzes the nvmeof transport's blob parsers (remote keys and endpoint
 * descriptors come from peers): no crash or sanitizer report on any input,
 * and whatever decodes re-encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nvmeof/nvme_key.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static nv_key k; /* 4 KiB of path: not on the stack of every call */
  static uint8_t out[8192];
  if (nv_key_decode(data, size, &k) == 0) {
    size_t n = nv_key_encode(&k, out, sizeof out);
    if (n != size || memcmp(out, data, size))
      abort();
  }
  uint64_t h = 0;
  if (nv_desc_decode(data, size, &h) == 0) {
    uint8_t d[NV_DESC_LEN];
    nv_desc_encode(h, d);
    if (size != NV_DESC_LEN || memcmp(d, data, size))
      abort();
  }
  return 0;
}
