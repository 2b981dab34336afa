/* mooncake/errors.h - error codes shared by the core, plugins and stores.
 *
 * Every mooncake function that can fail returns 0 on success or one of the
 * negative MC_E* codes below.  The values are part of the ABI: they never
 * change, new codes are only appended.  A transport may additionally report
 * a vendor code (ibv_wc_status, -FI_E*, cudaError_t) beside the MC_E* code;
 * see mc_host_api.complete in transport.h.
 *
 * Everything here is header-only (an enum and static inline functions), so
 * a transport plugin, which never links libmooncake, can use mc_strerror and
 * mc_errname too, and so can a plugin loaded with RTLD_LOCAL.
 */
#ifndef MOONCAKE_ERRORS_H
#define MOONCAKE_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* The one table: X(name, value, text).  Append only. */
#define MC_ERROR_TABLE(X)                                                      \
  X(MC_OK, 0, "success")                                                       \
  X(MC_EINVAL, -1, "invalid argument")                                         \
  X(MC_ENOMEM, -2, "out of memory")                                            \
  X(MC_ENOTSUP, -3, "not supported")                                           \
  X(MC_ENODEV, -4, "no such device")                                           \
  X(MC_ENOENT, -5, "not found")                                                \
  X(MC_ERANGE, -6, "address out of registered range")                          \
  X(MC_EACCES, -7, "access denied")                                            \
  X(MC_EAGAIN, -8, "resource busy, try again")                                 \
  X(MC_ETIMEDOUT, -9, "timed out")                                             \
  X(MC_EPEER, -10, "peer unreachable or disconnected")                         \
  X(MC_ECANCELED, -11, "canceled")                                             \
  X(MC_EPROTO, -12, "protocol error")                                          \
  X(MC_EABI, -13, "plugin ABI mismatch")                                       \
  X(MC_ENOSPC, -14, "buffer too small")                                        \
  X(MC_EIO, -15, "I/O error")                                                  \
  X(MC_EEXIST, -16, "already exists")                                          \
  X(MC_EBUSY, -17, "busy")

/* MC_EINVAL: bad argument or malformed input.  MC_ENOTSUP: not supported
 * by this build or transport.  MC_ENODEV: required device or vendor library
 * absent.  MC_ENOENT: no such segment, key, plugin or file.  MC_ERANGE:
 * address/length outside registered memory.  MC_EACCES: permission or
 * remote key refused.  MC_EAGAIN: temporarily busy, retry later.
 * MC_EPEER: peer unreachable, died or dropped the connection.  MC_EPROTO:
 * malformed or unexpected wire/metadata content.  MC_EABI: plugin ABI
 * mismatch.  MC_ENOSPC: caller's buffer too small (the size needed is
 * returned).  MC_EEXIST: already exists.  MC_EBUSY: object in use. */
#define MC_ERROR_ENUM_(name, value, text) name = value,
enum mc_error { MC_ERROR_TABLE(MC_ERROR_ENUM_) };
#undef MC_ERROR_ENUM_

/* Static, human-readable text for an MC_E* code ("unknown error"
 * otherwise).  Thread-safe; never returns NULL. */
static inline const char *mc_strerror(int err) {
#define MC_ERROR_TEXT_(name, value, text)                                      \
  case value:                                                                  \
    return text;
  switch (err) { MC_ERROR_TABLE(MC_ERROR_TEXT_) default: return "unknown error"; }
#undef MC_ERROR_TEXT_
}

/* The code's name ("MC_ENOENT"), or "MC_E?" for an unknown code.
 * Thread-safe; never returns NULL. */
static inline const char *mc_errname(int err) {
#define MC_ERROR_NAME_(name, value, text)                                      \
  case value:                                                                  \
    return #name;
  switch (err) { MC_ERROR_TABLE(MC_ERROR_NAME_) default: return "MC_E?"; }
#undef MC_ERROR_NAME_
}

#ifdef __cplusplus
}
#endif
#endif
