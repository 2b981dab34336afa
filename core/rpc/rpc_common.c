/* Shared pieces of the RPC layer: gRPC init refcount, status mapping,
 * byte-buffer conversions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>

#include "mooncake/errors.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

int mc_rpc_global_init(void) {
  grpc_init(); /* reference-counted by gRPC itself */
  return 0;
}

void mc_rpc_global_fini(void) { grpc_shutdown(); }

int mc_rpc_code_to_mc(int code) {
  switch (code) {
  case GRPC_STATUS_OK: return 0;
  case GRPC_STATUS_DEADLINE_EXCEEDED: return MC_ETIMEDOUT;
  case GRPC_STATUS_UNAVAILABLE: return MC_EPEER;
  case GRPC_STATUS_NOT_FOUND: return MC_ENOENT;
  case GRPC_STATUS_CANCELLED: return MC_ECANCELED;
  case GRPC_STATUS_INVALID_ARGUMENT:
  case GRPC_STATUS_FAILED_PRECONDITION: return MC_EINVAL;
  case GRPC_STATUS_ALREADY_EXISTS: return MC_EEXIST;
  case GRPC_STATUS_UNIMPLEMENTED: return MC_ENOTSUP;
  case GRPC_STATUS_PERMISSION_DENIED:
  case GRPC_STATUS_UNAUTHENTICATED: return MC_EACCES;
  case GRPC_STATUS_RESOURCE_EXHAUSTED: return MC_EAGAIN;
  default: return MC_EIO;
  }
}

const char *mc_rpc_code_name(int code) {
  static const char *const names[] = {
      "OK",           "CANCELLED",          "UNKNOWN",
      "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED",  "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",       "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",            "UNAVAILABLE",
      "DATA_LOSS",    "UNAUTHENTICATED"};
  if (code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])))
    return names[code];
  return "UNKNOWN_CODE";
}

void mc_rpc_status_set(mc_rpc_status *st, int code, const char *detail,
                       size_t detail_len) {
  if (!st)
    return;
  st->code = code;
  if (detail_len > 200)
    detail_len = 200;
  snprintf(st->message, sizeof(st->message), "%s: %.*s", mc_rpc_code_name(code),
           (int)detail_len, detail ? detail : "");
}

grpc_byte_buffer *mc_rpc_bb_from(const void *data, size_t len) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

int mc_rpc_bb_to(grpc_byte_buffer *bb, void **out, size_t *len) {
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb))
    return MC_EPROTO;
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  size_t n = GRPC_SLICE_LENGTH(s);
  void *p = malloc(n ? n : 1);
  if (!p) {
    grpc_slice_unref(s);
    return MC_ENOMEM;
  }
  memcpy(p, GRPC_SLICE_START_PTR(s), n);
  grpc_slice_unref(s);
  *out = p;
  *len = n;
  return 0;
}

gpr_timespec mc_rpc_deadline(int timeout_ms) {
  if (timeout_ms < 0)
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

int mc_rpc_pack(const ProtobufCMessage *msg, void **out, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = malloc(n ? n : 1);
  if (!p)
    return MC_ENOMEM;
  protobuf_c_message_pack(msg, p);
  *out = p;
  *len = n;
  return 0;
}
