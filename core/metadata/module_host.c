/* Module side of the metadata backend interface: the logging calls of
 * log.h, implemented over the host table the core hands the module at open
 * (backend.h), so module code (and the helpers compiled into it) logs
 * through the engine's logger without calling into libmooncake.
 *
 * The host table is the core's static const table, the same for every
 * open in the process; it is recorded once per process. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "backend.h"
#include "log.h"

static _Atomic(const mc_md_host *) host_table;

void mc_md_module_set_host(const mc_md_host *host) {
  atomic_store(&host_table, host);
}

int mc_log_enabled(const mc_logger *lg, int level) {
  const mc_md_host *h = atomic_load(&host_table);
  return h ? h->log_enabled(lg, level) : level <= MC_LOG_WARN;
}

void mc_vlog(const mc_logger *lg, int level, const char *component,
             const char *fmt, va_list ap) {
  const mc_md_host *h = atomic_load(&host_table);
  char msg[MC_ERR_MAX];
  if (!fmt || (h && !h->log_enabled(lg, level)))
    return;
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (h)
    h->log(lg, level, component, msg);
  else if (level <= MC_LOG_WARN)
    fprintf(stderr, "mooncake %s %s: %s\n", level == MC_LOG_ERROR ? "ERROR" : "WARN",
            component, msg);
}

void mc_last_error_set(const char *fmt, ...) {
  const mc_md_host *h = atomic_load(&host_table);
  char msg[MC_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (h)
    h->set_last_error(msg);
}
