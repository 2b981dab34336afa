#include "mooncake/errors.h"

const char *mc_strerror(int err) {
  switch (err) {
  case MC_OK: return "success";
  case MC_EINVAL: return "invalid argument";
  case MC_ENOMEM: return "out of memory";
  case MC_ENOTSUP: return "not supported";
  case MC_ENODEV: return "no such device";
  case MC_ENOENT: return "not found";
  case MC_ERANGE: return "address out of registered range";
  case MC_EACCES: return "access denied";
  case MC_EAGAIN: return "resource busy, try again";
  case MC_ETIMEDOUT: return "timed out";
  case MC_EPEER: return "peer unreachable or disconnected";
  case MC_ECANCELED: return "canceled";
  case MC_EPROTO: return "protocol error";
  case MC_EABI: return "plugin ABI mismatch";
  case MC_ENOSPC: return "buffer too small";
  case MC_EIO: return "I/O error";
  case MC_EEXIST: return "already exists";
  case MC_EBUSY: return "busy";
  default: return "unknown error";
  }
}
