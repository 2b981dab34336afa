/* store/common: what the Mooncake Store master and its clients share on
 * top of master.proto (store/proto/master.proto, which documents every
 * call): the method paths, the limits the master enforces, upstream's
 * error codes with names and text, and a typed call helper over
 * libmooncake-rpc.
 *
 * Internal to the store (hidden symbols, prefix mcs_); the client's public
 * API is mooncake/store.h. */
#ifndef MCS_STORE_PROTO_H
#define MCS_STORE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "master.pb-c.h"
#include "rpc/rpc.h"

/* The gRPC service: "/mcstore.Master/<Call>". */
#define MCS_SERVICE "/mcstore.Master/"
#define MCS_METHOD(call) MCS_SERVICE #call

/* The master's default port (upstream mooncake_master's). */
#define MCS_DEFAULT_PORT 50051

/* Limits checked by the master (and worth checking before sending). */
#define MCS_MAX_KEY_LEN 4095u   /* bytes; empty keys are invalid too */
#define MCS_MAX_REPLICAS 8u
#define MCS_MAX_BATCH 4096u     /* items per batch call */
#define MCS_CLIENT_ID_LEN 16u   /* client and segment ids */
#define MCS_MAX_NAME_LEN 255u   /* segment name, host, protocol */
#define MCS_MAX_TOKEN_LEN 256u

/* Upstream's codes: X(name, value, text).  The numeric values are those of
 * Mcstore__ErrorCode (MCSTORE__ERROR_CODE__<name>). */
#define MCS_ERROR_TABLE(X)                                                     \
  X(OK, 0, "success")                                                          \
  X(INTERNAL_ERROR, -1, "internal error")                                      \
  X(BUFFER_OVERFLOW, -10, "buffer overflow")                                   \
  X(SEGMENT_NOT_FOUND, -101, "segment not found")                              \
  X(SEGMENT_ALREADY_EXISTS, -102, "segment already exists")                    \
  X(CLIENT_NOT_FOUND, -103, "client not found")                                \
  X(NO_AVAILABLE_HANDLE, -200, "no space available for the object")           \
  X(INVALID_VERSION, -300, "invalid version")                                  \
  X(INVALID_KEY, -400, "invalid key (empty or 4096 bytes or more)")            \
  X(WRITE_FAIL, -500, "write failed")                                          \
  X(INVALID_PARAMS, -600, "invalid parameters")                                \
  X(ILLEGAL_CLIENT, -601, "illegal client")                                    \
  X(INVALID_WRITE, -700, "invalid write")                                      \
  X(INVALID_READ, -701, "invalid read")                                        \
  X(INVALID_REPLICA, -702, "invalid replica")                                  \
  X(REPLICA_IS_NOT_READY, -703, "replica is not ready")                        \
  X(OBJECT_NOT_FOUND, -704, "object not found")                                \
  X(OBJECT_ALREADY_EXISTS, -705, "object already exists")                      \
  X(OBJECT_HAS_LEASE, -706, "object has a lease")                              \
  X(LEASE_EXPIRED, -707, "lease expired before the read finished")             \
  X(TRANSFER_FAIL, -800, "transfer failed")                                    \
  X(CHECKSUM_MISMATCH, -801, "checksum mismatch")                              \
  X(RPC_FAIL, -900, "RPC to the master failed")                                \
  X(RPC_TIMEOUT, -901, "RPC to the master timed out")                          \
  X(UNAVAILABLE_IN_CURRENT_STATUS, -1010, "unavailable in current status")     \
  X(NOT_SUPPORTED, -1012, "not supported")

/* "OBJECT_NOT_FOUND" for -704; "UNKNOWN_ERROR" for a code not listed. */
const char *mcs_errname(int code);
/* Human-readable text; "unknown error" for a code not listed. */
const char *mcs_strerror(int code);

/* 1 if key (len bytes) is a valid object key: 1..MCS_MAX_KEY_LEN bytes. */
int mcs_key_valid(const char *key, size_t len);

/* Fills out with 16 random bytes (getrandom). 0 or MC_EIO. */
int mcs_random_id(uint8_t out[MCS_CLIENT_ID_LEN]);

/* Lower-case hex of a 16-byte id into buf (>= 33 bytes); returns buf. */
char *mcs_id_hex(const uint8_t *id, size_t len, char *buf, size_t buflen);

/* Points hdr (initialized here) at client_id (16 bytes) and token (may be
 * NULL); hdr borrows both. */
void mcs_header_set(Mcstore__RequestHeader *hdr, const uint8_t *client_id,
                    const void *token, size_t token_len);

/* One call to the master: packs req, sends it to MCS_SERVICE<call>,
 * unpacks the answer as resp_desc into *resp (free it with
 * protobuf_c_message_free_unpacked).  Returns 0, or RPC_TIMEOUT (deadline
 * passed) / RPC_FAIL (anything else at the RPC level: unreachable master,
 * refused or unparsable message), with st (may be NULL) saying why. */
int mcs_call(mc_rpc_channel *ch, const char *call, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
             int timeout_ms, mc_rpc_status *st);

#endif
