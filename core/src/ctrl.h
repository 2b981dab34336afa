/* Internal: the client side of the control channel (ABI 1.2,
 * mc_host_api.ctrl_call).  A plugin's request goes to the engine serving
 * the peer segment: its handshake listener's address comes from the peer's
 * segment descriptor ("listen"), fetched through the metadata backend, so
 * the channel works with every backend.  The frame carries the cluster
 * token and this engine's segment name (p2p_wire.h, op CTRL). */
#ifndef MC_CTRL_H
#define MC_CTRL_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "metadata.h"
#include "mooncake/transport.h"

typedef struct mc_ctrl_client {
  mc_metadata *md;
  const char *token; /* cluster token or "" (the engine's buffer) */
  const char *self;  /* this engine's segment name (the engine's buffer) */
  const mc_logger *log;
  uint32_t timeout_ms; /* used when the caller passes 0 */
} mc_ctrl_client;

/* Sends req to transport `transport` in the engine serving `peer` and
 * waits for the reply, retrying a BUSY listener with back-off until the
 * deadline.  Results as documented for mc_host_api.ctrl_call (transport.h);
 * a failure also sets the thread's mc_last_error() text. */
int mc_ctrl_call(const mc_ctrl_client *c, const char *transport,
                 const char *peer, const void *req, size_t req_len, void *resp,
                 size_t *resp_len, uint32_t timeout_ms);

#endif
