/* Internal helpers shared by rpc_client.c and rpc_server.c. */
#ifndef MC_RPC_INTERNAL_H
#define MC_RPC_INTERNAL_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "rpc/rpc.h"

void mc_rpc_status_set(mc_rpc_status *st, int code, const char *detail,
                       size_t detail_len);
/* Copies data into a new byte buffer (caller destroys). */
grpc_byte_buffer *mc_rpc_bb_from(const void *data, size_t len);
/* Flattens bb into a malloc'd copy. */
int mc_rpc_bb_to(grpc_byte_buffer *bb, void **out, size_t *len);
/* Absolute monotonic deadline timeout_ms from now; < 0: infinite. */
gpr_timespec mc_rpc_deadline(int timeout_ms);
/* protobuf-c pack into a malloc'd buffer. */
int mc_rpc_pack(const ProtobufCMessage *msg, void **out, size_t *len);

#endif
