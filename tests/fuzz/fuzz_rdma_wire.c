/* Fuzzes the rdma transport's blob and control message parsers (the
 * descriptor and remote keys come from peers through the metadata, control
 * messages through the core's control channel): no crash or sanitizer
 * report on any input, and whatever decodes re-encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/rdma_wire.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t out[4096];
  static rdw_ctrl m;
  rdw_desc d;
  size_t len = sizeof out;
  if (rdw_desc_decode(data, size, &d) == 0 &&
      (rdw_desc_encode(&d, out, &len) || len != size || memcmp(out, data, size)))
    abort();
  rdw_rkey k;
  len = sizeof out;
  if (rdw_rkey_decode(data, size, &k) == 0 &&
      (rdw_rkey_encode(&k, out, &len) || len != size || memcmp(out, data, size)))
    abort();
  len = sizeof out;
  if (rdw_ctrl_decode(data, size, &m) == 0) {
    if (m.type == RDW_NOTIFY && (m.payload != data + RDW_CTRL_HDR ||
                                 m.payload_len != size - RDW_CTRL_HDR))
      abort();
    if (rdw_ctrl_encode(&m, out, &len) || len != size || memcmp(out, data, size))
      abort();
  }
  return 0;
}
