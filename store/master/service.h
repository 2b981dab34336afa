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

#endif
