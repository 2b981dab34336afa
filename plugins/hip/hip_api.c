/* hip_api.c - dlopen of the HIP runtime and its entry table. */
#include "hip_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* The sonames tried when no `library` is configured: Debian's runtime
 * package (libamdhip64-5) ships only the versioned name; ROCm installs
 * both. */
static const char *const default_libs[] = {"libamdhip64.so.5", "libamdhip64.so"};

/* RTLD_NODELETE: the ROCm runtime (and the HSA runtime under it) keep
 * allocations from hipInit in their globals and cannot be unloaded
 * cleanly; once loaded it stays for the process's life (dlclose then only
 * drops the reference), so nothing it allocated becomes a leak under LSan
 * and a later init finds it initialized. */
#define HIP_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)

int hip_api_load(hip_api *a, const char *lib, char *why, size_t whylen) {
  memset(a, 0, sizeof *a);
  char first[256] = "";
  if (lib && lib[0]) {
    a->dl = dlopen(lib, HIP_DLOPEN_FLAGS);
    if (!a->dl) {
      const char *e = dlerror();
      snprintf(why, whylen, "cannot load %s: %s", lib, e ? e : "dlopen failed");
      return -1;
    }
  } else {
    for (size_t i = 0; i < sizeof default_libs / sizeof *default_libs && !a->dl; i++) {
      a->dl = dlopen(default_libs[i], HIP_DLOPEN_FLAGS);
      if (!a->dl && i == 0) {
        const char *e = dlerror();
        snprintf(first, sizeof first, "%s", e ? e : "dlopen failed");
      }
    }
    if (!a->dl) {
      snprintf(why, whylen, "cannot load the HIP runtime (libamdhip64.so.5: %s); "
               "install ROCm or libamdhip64-5, or set transports.hip.library", first);
      return -1;
    }
  }
  /* One row per entry: the symbol and where its address goes. */
  struct {
    const char *sym;
    void **slot;
  } t[] = {
      {"hipInit", (void **)&a->Init},
      {"hipGetDeviceCount", (void **)&a->GetDeviceCount},
      {"hipSetDevice", (void **)&a->SetDevice},
      {"hipGetLastError", (void **)&a->GetLastError},
      {"hipGetErrorName", (void **)&a->GetErrorName},
      {"hipDeviceGetPCIBusId", (void **)&a->DeviceGetPCIBusId},
      {"hipPointerGetAttributes", (void **)&a->PointerGetAttributes},
      {"hipMemGetAddressRange", (void **)&a->MemGetAddressRange},
      {"hipHostRegister", (void **)&a->HostRegister},
      {"hipHostUnregister", (void **)&a->HostUnregister},
      {"hipIpcGetMemHandle", (void **)&a->IpcGetMemHandle},
      {"hipIpcOpenMemHandle", (void **)&a->IpcOpenMemHandle},
      {"hipIpcCloseMemHandle", (void **)&a->IpcCloseMemHandle},
      {"hipStreamCreateWithFlags", (void **)&a->StreamCreateWithFlags},
      {"hipStreamDestroy", (void **)&a->StreamDestroy},
      {"hipStreamSynchronize", (void **)&a->StreamSynchronize},
      {"hipEventCreateWithFlags", (void **)&a->EventCreateWithFlags},
      {"hipEventDestroy", (void **)&a->EventDestroy},
      {"hipEventRecord", (void **)&a->EventRecord},
      {"hipEventQuery", (void **)&a->EventQuery},
      {"hipMemcpyAsync", (void **)&a->MemcpyAsync},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    *t[i].slot = dlsym(a->dl, t[i].sym);
    if (!*t[i].slot) {
      snprintf(why, whylen, "the HIP runtime %s lacks %s", lib && lib[0] ? lib : "libamdhip64",
               t[i].sym);
      dlclose(a->dl);
      memset(a, 0, sizeof *a);
      return -1;
    }
  }
  return 0;
}

void hip_api_unload(hip_api *a) {
  if (a->dl)
    dlclose(a->dl);
  memset(a, 0, sizeof *a);
}

const char *hip_api_errname(const hip_api *a, hipError_t e, char *buf, size_t len) {
  const char *n = a->GetErrorName ? a->GetErrorName(e) : NULL;
  if (n && n[0])
    return n;
  snprintf(buf, len, "hipError %d", (int)e);
  return buf;
}
