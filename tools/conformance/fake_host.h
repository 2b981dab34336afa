/* fake_host.h - an mc_host_api without an engine, for hosting a transport
 * plugin directly: mc-transport-conformance uses it, and so do the tests
 * that drive a plugin's ops table (tests/tcp, tests/shm, tests/loader,
 * tests/oot).  Static library mc_fake_host (tools/conformance/meson.build);
 * it links neither libmooncake nor its internals.
 *
 *   log, log_enabled  lines at or below print_level go to stderr tagged
 *                     "[name]"; log_enabled answers enabled_level; the last
 *                     line, and the last warning or error, are kept.
 *   config_get        from the key/value list the test gave.
 *   config_get_size/int/bool (ABI 1.1)  as an engine's: the param must be
 *                     one of ops's params with that type; the configured
 *                     text, else its default_text, parsed with the core's
 *                     value syntax (mc_config_parse_*).
 *   complete          counted, the last kept, then forwarded to on_complete.
 *   notify_recv       counted with the last message kept, then forwarded to
 *                     on_notify.
 *   ctrl_call (ABI 1.2)  routed by name: to the context of another host of
 *                     this process named `peer` (set with
 *                     mc_fake_host_set_ctx), else a loopback to this
 *                     host's own context (peer = this host's name), with
 *                     the core's argument checks (MC_EINVAL) and reply
 *                     handling (MC_ENOSPC with the size needed); MC_ENOTSUP
 *                     when the plugin has no ctrl_handle or no context is
 *                     set yet.  A reply longer than MC_CTRL_MAX is counted
 *                     in ctrl_violations and answered MC_EPROTO.
 * Every member is safe to call from the plugin's threads. */
#ifndef MC_FAKE_HOST_H
#define MC_FAKE_HOST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mooncake/transport.h"

#define MC_FAKE_MAX_KEYS 32

typedef void (*mc_fake_complete_fn)(void *arg, uint64_t token, int status, uint64_t bytes,
                                    int32_t vendor_err);
typedef void (*mc_fake_notify_fn)(void *arg, const char *peer, const void *msg, size_t len);

typedef struct mc_fake_host {
  mc_host_api api; /* hand &api to ops->init */
  char name[MC_NAME_MAX]; /* log tag */
  /* The plugin's table, for the typed getters (NULL: they fail MC_EINVAL). */
  const mc_transport_ops *ops;
  int print_level;   /* default MC_LOG_WARN */
  int enabled_level; /* default MC_LOG_WARN */
  /* Called after the host recorded the event; NULL for none. */
  mc_fake_complete_fn on_complete;
  mc_fake_notify_fn on_notify;
  void *cb_arg;

  /* Recorded; read under lock (or after the plugin stopped). */
  pthread_mutex_t lock;
  pthread_cond_t cond; /* broadcast on every completion and notification */
  char log[1024];      /* the last line logged, any level */
  char last_warn[1024]; /* the last warning or error */
  int nlogs;
  uint64_t completions;
  uint64_t last_token, last_bytes;
  int last_status;
  int notifies;
  char notify_peer[MC_NAME_MAX];
  uint8_t notify_msg[MC_NOTIFY_MAX];
  size_t notify_len;

  /* The control channel's loopback (mc_fake_host_set_ctx). */
  void *ctrl_ctx;
  struct mc_fake_host *route_next; /* hosts with a context (ctrl_call routing) */
  uint64_t ctrl_calls;      /* answered by ctrl_handle */
  uint64_t ctrl_violations; /* replies past MC_CTRL_MAX */

  /* The key/value list (mc_fake_host_set). */
  int nkeys, nretired;
  char *keys[MC_FAKE_MAX_KEYS], *vals[MC_FAKE_MAX_KEYS];
  char *retired[MC_FAKE_MAX_KEYS]; /* replaced values, freed by fini */
} mc_fake_host;

/* A host named `name` for plugin table ops (may be NULL, set h->ops later),
 * no keys set.  Pair with mc_fake_host_fini once the plugin's fini ran. */
void mc_fake_host_init(mc_fake_host *h, const char *name, const mc_transport_ops *ops);
void mc_fake_host_fini(mc_fake_host *h);
/* The plugin context whose ctrl_handle answers this host's ctrl_call
 * (NULL: none, MC_ENOTSUP). */
void mc_fake_host_set_ctx(mc_fake_host *h, void *ctx);
/* Sets key to val (copied; replaces an earlier value).  0, or MC_ENOSPC
 * past MC_FAKE_MAX_KEYS keys, MC_ENOMEM. */
int mc_fake_host_set(mc_fake_host *h, const char *key, const char *val);
/* Sets every "key=value" of a ';'-separated list (NULL: none).  0, or
 * MC_EINVAL for an entry without '=' (the rest are still set). */
int mc_fake_host_set_list(mc_fake_host *h, const char *list);
/* Sets the pairs of a NULL-terminated {"key", "value", ..., NULL} array. */
int mc_fake_host_set_pairs(mc_fake_host *h, const char *const *pairs);
/* Waits until h->notifies > n; 0, or -1 after timeout_ms. */
int mc_fake_host_wait_notifies(mc_fake_host *h, int n, int timeout_ms);

/* Values are parsed by the core's own parsers (core/src/config_value.h,
 * linked from the libmooncake_value archive), so the tool accepts exactly
 * what an engine accepts. */

/* Params entry i of ops, read with the plugin's declared stride (ABI 1.1)
 * into a zeroed mc_param_info. */
size_t mc_fake_param_stride(const mc_transport_ops *ops);
void mc_fake_param_at(const mc_transport_ops *ops, size_t i, mc_param_info *out);
/* The param named key: 0, or MC_ENOENT. */
int mc_fake_param_find(const mc_transport_ops *ops, const char *key, mc_param_info *out);

/* dlopen(path, RTLD_NOW | RTLD_LOCAL) and its entry point: the plugin's
 * table, or NULL with the reason in err. */
const mc_transport_ops *mc_fake_load(const char *path, void **dl, char *err, size_t errlen);

#endif
