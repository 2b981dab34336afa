/* The mc_host_api table handed to each plugin: logging tagged with the
 * plugin's name, its YAML subtree, and completion/notification entry points
 * into the engine. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine_internal.h"

static void host_log(void *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(void *host, int level, const char *fmt, ...) {
  mc_transport *t = host;
  if (!mc_log_enabled(&t->engine->log, level))
    return;
  va_list ap;
  va_start(ap, fmt);
  mc_vlog(&t->engine->log, level, t->plugin->name, fmt, ap);
  va_end(ap);
}

static int host_log_enabled(void *host, int level) {
  mc_transport *t = host;
  return mc_log_enabled(&t->engine->log, level);
}

static int host_config_get(void *host, const char *key, const char **val) {
  mc_transport *t = host;
  if (!key || !val)
    return MC_EINVAL;
  const char *v = mc_engine_transport_param(t, key);
  if (!v)
    return MC_ENOENT;
  *val = v;
  return 0;
}

static void host_complete(void *host, uint64_t token, int status,
                          uint64_t bytes, int32_t vendor_err) {
  (void)host;
  mc_slice_rec *s = (mc_slice_rec *)(uintptr_t)token;
  mc_batch_slice_done(s, status, bytes, vendor_err);
}

static void host_notify_recv(void *host, const char *peer, const void *msg,
                             size_t len) {
  mc_transport *t = host;
  if (len > MC_NOTIFY_MAX) {
    MC_WARN(&t->engine->log, t->plugin->name,
            "dropping %zu-byte notification from %s (max %d)", len,
            peer ? peer : "?", MC_NOTIFY_MAX);
    return;
  }
  mc_notify_queue_push(&t->engine->notes, peer ? peer : "", msg, len);
}

void mc_hostapi_fill(mc_transport *t) {
  memset(&t->host, 0, sizeof t->host);
  t->host.abi_major = MC_TRANSPORT_ABI_MAJOR;
  t->host.abi_minor = MC_TRANSPORT_ABI_MINOR;
  t->host.struct_size = sizeof t->host;
  t->host.host = t;
  t->host.log = host_log;
  t->host.log_enabled = host_log_enabled;
  t->host.config_get = host_config_get;
  t->host.complete = host_complete;
  t->host.notify_recv = host_notify_recv;
}
