/* The mc_host_api table handed to each plugin: logging tagged with the
 * plugin's name, its YAML subtree (as text and, since ABI 1.1, typed),
 * completion/notification entry points into the engine and, since ABI 1.2,
 * the control channel. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctrl.h"
#include "hostapi.h"
#include "log.h"
#include "pipeline.h"

static void host_log(void *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(void *host, int level, const char *fmt, ...) {
  mc_transport *t = host;
  if (!mc_log_enabled(t->set->log, level))
    return;
  va_list ap;
  va_start(ap, fmt);
  mc_vlog(t->set->log, level, t->plugin->name, fmt, ap);
  va_end(ap);
}

static int host_log_enabled(void *host, int level) {
  mc_transport *t = host;
  return mc_log_enabled(t->set->log, level);
}

static int host_config_get(void *host, const char *key, const char **val) {
  mc_transport *t = host;
  if (!key || !val)
    return MC_EINVAL;
  const char *v = mc_transport_param(t, key);
  if (!v)
    return MC_ENOENT;
  *val = v;
  return 0;
}

/* The typed getters (ABI 1.1).  The value is the configured one, else the
 * param's default_text; mc_config_check_plugin checked both against the
 * param's type and range before init, so they fail only on the plugin's
 * own mistakes: MC_EINVAL for a key it did not declare or of another type,
 * MC_ENOENT when the key is unset and has no default.  The parsers are the
 * ones that checked the value (config.c), so the getters agree with the
 * check by construction. */
static int typed_value(mc_transport *t, const char *key, uint32_t type,
                       const char **val) {
  mc_param_info pi;
  if (!key || mc_param_find(t->ops, key, &pi) != 0 || pi.type != type)
    return MC_EINVAL;
  const char *v = mc_transport_param(t, key);
  if (!v)
    v = pi.default_text;
  if (!v || !*v)
    return MC_ENOENT;
  *val = v;
  return 0;
}

static int host_config_get_size(void *host, const char *key, uint64_t *out) {
  const char *v = NULL;
  uint64_t x;
  int rc = out ? typed_value(host, key, MC_PARAM_SIZE, &v) : MC_EINVAL;
  if (rc == 0 && mc_config_parse_size(v, &x) != 0)
    rc = MC_EINVAL;
  if (rc == 0)
    *out = x;
  return rc;
}

static int host_config_get_int(void *host, const char *key, int64_t *out) {
  const char *v = NULL;
  int64_t x;
  int rc = out ? typed_value(host, key, MC_PARAM_INT, &v) : MC_EINVAL;
  if (rc == 0 && mc_config_parse_int(v, &x) != 0)
    rc = MC_EINVAL;
  if (rc == 0)
    *out = x;
  return rc;
}

static int host_config_get_bool(void *host, const char *key, int *out) {
  const char *v = NULL;
  int x;
  int rc = out ? typed_value(host, key, MC_PARAM_BOOL, &v) : MC_EINVAL;
  if (rc == 0 && mc_config_parse_bool(v, &x) != 0)
    rc = MC_EINVAL;
  if (rc == 0)
    *out = x;
  return rc;
}

static void host_complete(void *host, uint64_t token, int status,
                          uint64_t bytes, int32_t vendor_err) {
  (void)host;
  mc_pipeline_complete(token, status, bytes, vendor_err);
}

static void host_notify_recv(void *host, const char *peer, const void *msg,
                             size_t len) {
  mc_transport *t = host;
  if (len > MC_NOTIFY_MAX) {
    MC_WARN(t->set->log, t->plugin->name,
            "dropping %zu-byte notification from %s (max %d)", len,
            peer ? peer : "?", MC_NOTIFY_MAX);
    return;
  }
  mc_notify_queue_push(t->notes, peer ? peer : "", msg, len);
}

/* The control channel (ABI 1.2): to the same transport in the engine
 * serving `peer` (ctrl.c). */
static int host_ctrl_call(void *host, const char *peer, const void *req,
                          size_t req_len, void *resp, size_t *resp_len,
                          uint32_t timeout_ms) {
  mc_transport *t = host;
  if (!t->set->ctrl)
    return MC_ENOTSUP;
  return mc_ctrl_call(t->set->ctrl, t->plugin->name, peer, req, req_len, resp,
                      resp_len, timeout_ms);
}

void mc_hostapi_fill(mc_transport *t, mc_notify_queue *notes) {
  t->notes = notes;
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
  t->host.config_get_size = host_config_get_size;
  t->host.config_get_int = host_config_get_int;
  t->host.config_get_bool = host_config_get_bool;
  t->host.ctrl_call = host_ctrl_call;
}
