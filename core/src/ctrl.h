/* Internal: the client side of the control channel (ABI 1.2,
 * mc_host_api.ctrl_call).  A plugin's request goes to the engine serving
 * the peer segment: its handshake listener's address comes from the peer's
 * segment descriptor ("listen"), fetched through the metadata backend, so
 * the channel works with every backend.  The frame carries the cluster
 * token and this engine's segment name (p2p_wire.h, op CTRL). */
#ifndef MC_CTRL_H
#define MC_CTRL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "metadata.h"
#include "mooncake/transport.h"

#define MC_CTRL_CACHE 16

/* A peer's listener, remembered so that later calls skip the descriptor
 * fetch (one round trip instead of two, and the caller's timeout bounds
 * the call); dropped and fetched again when it stops answering. */
typedef struct mc_ctrl_addr {
  char peer[MC_NAME_MAX]; /* as the plugin named it; "" = free */
  char name[MC_NAME_MAX]; /* the name its descriptor gives */
  char host[MC_NAME_MAX];
  uint16_t port;
  uint64_t used;
} mc_ctrl_addr;

typedef struct mc_ctrl_client {
  mc_metadata *md;
  const char *token; /* cluster token or "" (the engine's buffer) */
  const char *self;  /* this engine's segment name (the engine's buffer) */
  const char *host_id; /* this engine's host identity, or NULL */
  const mc_logger *log;
  uint32_t timeout_ms; /* used when the caller passes 0 */
  pthread_mutex_t mu;  /* cache */
  uint64_t tick;
  mc_ctrl_addr cache[MC_CTRL_CACHE];
} mc_ctrl_client;

/* Initializes the cache's lock (fill the other members before or after). */
void mc_ctrl_client_init(mc_ctrl_client *c);
void mc_ctrl_client_fini(mc_ctrl_client *c);

/* Sends req to transport `transport` in the engine serving `peer` and
 * waits for the reply, retrying a BUSY listener with back-off until the
 * deadline; the peer's listener address is cached (a call that finds it
 * gone fetches the descriptor again once).  Results as documented for mc_host_api.ctrl_call (transport.h);
 * a failure also sets the thread's mc_last_error() text. */
int mc_ctrl_call(mc_ctrl_client *c, const char *transport,
                 const char *peer, const void *req, size_t req_len, void *resp,
                 size_t *resp_len, uint32_t timeout_ms);

#endif
