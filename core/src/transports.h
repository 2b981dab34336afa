/* The engine's loaded transports: one mc_transport per plugin context
 * (its ops, rails, descriptor blob and the locks that serialize its control
 * calls), gathered in an mc_tset sorted by preference.  The modules above
 * (rails, registry, segments, the request pipeline, the host services) reach
 * the plugins only through these. */
#ifndef MC_TRANSPORTS_H
#define MC_TRANSPORTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "descriptor.h"
#include "loader.h"
#include "log.h"
#include "mooncake/transport.h"

#define MC_MAX_TRANSPORTS MC_DESC_MAX_TRANSPORTS

struct mc_notify_queue;
struct mc_ctrl_client;
typedef struct mc_tset mc_tset;

/* One loaded and initialized transport. */
typedef struct mc_transport {
  mc_tset *set;
  mc_plugin *plugin;
  const mc_transport_ops *ops; /* == &plugin->ops */
  void *ctx;
  int index; /* in set->t */
  int rank;  /* preference: lower is tried first */
  uint64_t slice_size; /* effective: config if set, else the plugin's hint */
  mc_host_api host;    /* filled by the host services (hostapi.h) */
  struct mc_notify_queue *notes; /* where notify_recv delivers */
  const mc_config_transport *cfg;
  mc_rail_info *rails;
  uint32_t nrails;
  _Atomic uint64_t *rail_down_until; /* per rail, mc_now_ms() deadline */
  _Atomic uint32_t *rail_inflight;   /* per rail, slices inside the plugin */
  _Atomic uint32_t rr;               /* round-robin cursor */
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
  int stopped;                 /* fini already called */
  pthread_mutex_t ctl_lock;    /* serializes control calls */
  pthread_mutex_t submit_lock; /* serializes submit without MT_SUBMIT */
} mc_transport;

/* The transports of one engine, sorted by rank. */
struct mc_tset {
  mc_logger *log;
  /* The control channel's client (ctrl.h), for mc_host_api.ctrl_call. */
  struct mc_ctrl_client *ctrl;
  mc_transport *t[MC_MAX_TRANSPORTS];
  int n;
  /* Set when the engine is destroyed with slices still in flight: the
   * transports were stopped first (fini releases their endpoints, imports
   * and registrations), so views and buffers are freed without calls into
   * the plugins. */
  _Atomic int closing;
};

/* The configured value of one of t's params, or NULL. */
const char *mc_transport_param(const mc_transport *t, const char *key);
/* Calls t's submit, serialized unless the plugin has MC_CAP_MT_SUBMIT;
 * *accepted is clamped to n. */
int mc_transport_submit(mc_transport *t, void *ep, const mc_slice *sl,
                        uint32_t n, uint32_t *accepted);

#endif
