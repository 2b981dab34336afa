/* Shared helpers of the store's master and clients (store_proto.h). */
#include "store_proto.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "mooncake/errors.h"

/* The table's values must be the .proto's. */
#define MCS_CHECK_(name, value, text)                                          \
  _Static_assert((int)MCSTORE__ERROR_CODE__##name == (value), #name);
MCS_ERROR_TABLE(MCS_CHECK_)
#undef MCS_CHECK_

const char *mcs_errname(int code) {
#define MCS_NAME_(name, value, text)                                           \
  case value:                                                                  \
    return #name;
  switch (code) { MCS_ERROR_TABLE(MCS_NAME_) default: return "UNKNOWN_ERROR"; }
#undef MCS_NAME_
}

const char *mcs_strerror(int code) {
#define MCS_TEXT_(name, value, text)                                           \
  case value:                                                                  \
    return text;
  switch (code) { MCS_ERROR_TABLE(MCS_TEXT_) default: return "unknown error"; }
#undef MCS_TEXT_
}

int mcs_key_valid(const char *key, size_t len) {
  return key != NULL && len > 0 && len <= MCS_MAX_KEY_LEN;
}

int mcs_random_id(uint8_t out[MCS_CLIENT_ID_LEN]) {
  size_t got = 0;
  while (got < MCS_CLIENT_ID_LEN) {
    ssize_t n = getrandom(out + got, MCS_CLIENT_ID_LEN - got, 0);
    if (n <= 0)
      return MC_EIO;
    got += (size_t)n;
  }
  return 0;
}

char *mcs_id_hex(const uint8_t *id, size_t len, char *buf, size_t buflen) {
  static const char hx[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < len && o + 2 < buflen; i++) {
    buf[o++] = hx[id[i] >> 4];
    buf[o++] = hx[id[i] & 15];
  }
  if (buflen)
    buf[o < buflen ? o : buflen - 1] = 0;
  return buf;
}

void mcs_header_set(Mcstore__RequestHeader *hdr, const uint8_t *client_id,
                    const void *token, size_t token_len) {
  mcstore__request_header__init(hdr);
  hdr->client_id.data = (uint8_t *)client_id;
  hdr->client_id.len = client_id ? MCS_CLIENT_ID_LEN : 0;
  hdr->token.data = (uint8_t *)token;
  hdr->token.len = token ? token_len : 0;
}

int mcs_call(mc_rpc_channel *ch, const char *call, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
             int timeout_ms, mc_rpc_status *st) {
  char method[96];
  snprintf(method, sizeof method, MCS_SERVICE "%s", call);
  mc_rpc_call_opts o = {.timeout_ms = timeout_ms};
  int rc = mc_rpc_unary_pb(ch, method, req, resp_desc, resp, &o, st);
  if (rc == 0)
    return 0;
  return rc == MC_ETIMEDOUT ? MCSTORE__ERROR_CODE__RPC_TIMEOUT
                            : MCSTORE__ERROR_CODE__RPC_FAIL;
}
