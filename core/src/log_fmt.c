/* log_fmt.c - the printf-style front of log.h (mc_log, mc_seterr), apart
 * from the sink: the core links it with log.c (stderr, per engine), the
 * metadata modules with module_host.c (the host table), so both share it. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

void mc_log(const mc_logger *lg, int level, const char *component,
            const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mc_vlog(lg, level, component, fmt, ap);
  va_end(ap);
}

void mc_seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}
