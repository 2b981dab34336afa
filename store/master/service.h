/* The master's gRPC service: registers one unary handler per call of
 * master.proto on an mc_rpc_server.  Every handler unpacks defensively
 * (a request that does not parse is INVALID_ARGUMENT at the gRPC level),
 * checks the RequestHeader (16-byte client id, the token when one is
 * configured) and answers with an in-band ErrorCode. */
#ifndef MCS_SERVICE_H
#define MCS_SERVICE_H

#include "master.h"
#include "rpc/rpc.h"

int mcs_service_register(mc_rpc_server *srv, mcs_master *m);

/* The i-th call's name ("PutStart"), NULL past the last: for in-process
 * callers (the fuzz test) that run handlers without a server. */
const char *mcs_service_call_name(size_t i);
/* Runs the i-th call's handler on req as the server would: returns the
 * gRPC status code; *resp (malloc'd) on OK. */
int mcs_service_call(mcs_master *m, size_t i, const void *req, size_t len, void **resp,
                     size_t *rlen, char *err, size_t errlen);

#endif
