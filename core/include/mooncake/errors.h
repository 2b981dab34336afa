/* mooncake/errors.h - error codes shared by the core, plugins and stores.
 *
 * Every mooncake function that can fail returns 0 on success or one of the
 * negative MC_E* codes below.  The values are part of the ABI: they never
 * change, new codes are only appended.  A transport may additionally report
 * a vendor code (ibv_wc_status, -FI_E*, cudaError_t) beside the MC_E* code;
 * see mc_host_api.complete in transport.h.
 */
#ifndef MOONCAKE_ERRORS_H
#define MOONCAKE_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum mc_error {
  MC_OK = 0,
  MC_EINVAL = -1,     /* bad argument or malformed input */
  MC_ENOMEM = -2,     /* allocation failed */
  MC_ENOTSUP = -3,    /* operation or feature not supported by this build/transport */
  MC_ENODEV = -4,     /* required device or vendor library absent */
  MC_ENOENT = -5,     /* no such segment, key, plugin or file */
  MC_ERANGE = -6,     /* address/length outside registered memory */
  MC_EACCES = -7,     /* permission or remote key refused */
  MC_EAGAIN = -8,     /* resource temporarily busy; retry later */
  MC_ETIMEDOUT = -9,  /* deadline passed */
  MC_EPEER = -10,     /* peer unreachable, died or dropped the connection */
  MC_ECANCELED = -11, /* canceled by the caller */
  MC_EPROTO = -12,    /* malformed or unexpected wire/metadata content */
  MC_EABI = -13,      /* plugin ABI mismatch */
  MC_ENOSPC = -14,    /* caller's buffer too small; the needed size is returned */
  MC_EIO = -15,       /* I/O or transport failure */
  MC_EEXIST = -16,    /* already exists (registration overlap, duplicate key) */
  MC_EBUSY = -17,     /* object in use (buffer with transfers in flight) */
};

/* Static, human-readable text for an MC_E* code ("unknown error" otherwise).
 * Thread-safe; never returns NULL. */
const char *mc_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
