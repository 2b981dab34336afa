/* hip_api.h - the HIP runtime entry points this plugin calls, reached
 * through dlopen so the plugin loads (and mc-info lists it) on hosts
 * without ROCm.  The types come from Debian's libamdhip64-dev headers
 * (hip/hip_runtime_api.h, built with __HIP_PLATFORM_AMD__); the calls are
 * only ever made through this table, never linked. */
#ifndef MC_HIP_API_H
#define MC_HIP_API_H

#include <stddef.h>

#include <hip/hip_runtime_api.h>

typedef struct hip_api {
  void *dl;
  hipError_t (*Init)(unsigned int flags);
  hipError_t (*GetDeviceCount)(int *count);
  hipError_t (*SetDevice)(int device);
  hipError_t (*GetLastError)(void);
  const char *(*GetErrorName)(hipError_t e);
  hipError_t (*DeviceGetPCIBusId)(char *bus, int len, int device);
  hipError_t (*PointerGetAttributes)(hipPointerAttribute_t *a, const void *p);
  hipError_t (*MemGetAddressRange)(hipDeviceptr_t *base, size_t *size, hipDeviceptr_t p);
  hipError_t (*HostRegister)(void *p, size_t len, unsigned int flags);
  hipError_t (*HostUnregister)(void *p);
  hipError_t (*IpcGetMemHandle)(hipIpcMemHandle_t *h, void *p);
  hipError_t (*IpcOpenMemHandle)(void **p, hipIpcMemHandle_t h, unsigned int flags);
  hipError_t (*IpcCloseMemHandle)(void *p);
  hipError_t (*StreamCreateWithFlags)(hipStream_t *s, unsigned int flags);
  hipError_t (*StreamDestroy)(hipStream_t s);
  hipError_t (*StreamSynchronize)(hipStream_t s);
  hipError_t (*EventCreateWithFlags)(hipEvent_t *e, unsigned flags);
  hipError_t (*EventDestroy)(hipEvent_t e);
  hipError_t (*EventRecord)(hipEvent_t e, hipStream_t s);
  hipError_t (*EventQuery)(hipEvent_t e);
  hipError_t (*MemcpyAsync)(void *dst, const void *src, size_t n, hipMemcpyKind k,
                            hipStream_t s);
} hip_api;

/* Opens `lib` (NULL or "": libamdhip64.so.5, then libamdhip64.so) and
 * resolves every entry.  0, or -1 with the reason (the library and the
 * dlerror text, or the missing symbol) in why. */
int hip_api_load(hip_api *a, const char *lib, char *why, size_t whylen);
/* dlcloses the library. */
void hip_api_unload(hip_api *a);
/* The runtime's name for e ("hipErrorNoDevice"), or "hipError <n>". */
const char *hip_api_errname(const hip_api *a, hipError_t e, char *buf, size_t len);

#endif
