/* Error names and texts of mooncake/store.h, the per-thread last-error
 * line, and the mapping of engine (MC_E*) codes to store codes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mooncake/errors.h"
#include "sc.h"

const char *mc_store_errname(int err) {
#define SC_NAME_(name, value, text)                                            \
  case value:                                                                  \
    return #name + 9; /* without "MC_STORE_" */
  switch (err) { MC_STORE_ERROR_TABLE(SC_NAME_) default: return "UNKNOWN"; }
#undef SC_NAME_
}

const char *mc_store_strerror(int err) {
#define SC_TEXT_(name, value, text)                                            \
  case value:                                                                  \
    return text;
  switch (err) { MC_STORE_ERROR_TABLE(SC_TEXT_) default: return "unknown error"; }
#undef SC_TEXT_
}

static _Thread_local char sc_last[512];

const char *mc_store_last_error(void) { return sc_last; }

int sc_fail(int code, const char *fmt, ...) {
  /* Formatted aside first: callers pass the previous line
   * (mc_store_last_error()) as an argument to wrap it. */
  char line[sizeof sc_last];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof line - 24)
    snprintf(line + n, sizeof line - (size_t)n, " (%s)", mc_store_errname(code));
  memcpy(sc_last, line, sizeof sc_last);
  return code;
}

int sc_from_mc(int mc_err, int transfer) {
  switch (mc_err) {
  case MC_OK:
    return MC_STORE_OK;
  case MC_EINVAL:
  case MC_ERANGE:
    return MC_STORE_INVALID_PARAMS;
  case MC_ENOMEM:
    return MC_STORE_INTERNAL_ERROR;
  case MC_ENOTSUP:
    return MC_STORE_NOT_SUPPORTED;
  case MC_ETIMEDOUT:
    return transfer ? MC_STORE_TRANSFER_FAIL : MC_STORE_RPC_TIMEOUT;
  default:
    return transfer ? MC_STORE_TRANSFER_FAIL : MC_STORE_RPC_FAIL;
  }
}
