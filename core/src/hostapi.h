/* The host services: the mc_host_api table handed to each plugin (logging
 * tagged with the plugin's name, its config subtree as text and typed, the
 * completion entry into the request pipeline, received notifications into
 * the engine's queue). */
#ifndef MC_HOSTAPI_H
#define MC_HOSTAPI_H

#include "notify.h"
#include "transports.h"

/* Fills t->host for t; notifications t receives go to notes. */
void mc_hostapi_fill(mc_transport *t, mc_notify_queue *notes);

#endif
