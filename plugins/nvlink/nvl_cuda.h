/* nvl_cuda.h - the CUDA driver API as mc-transport-nvlink reaches it: one
 * table of function pointers filled from a dlopen'd libcuda.so.1 (key
 * `library`) through cuGetProcAddress, falling back to dlsym of the
 * versioned export names.  Nothing links libcuda. */
#ifndef MC_NVL_CUDA_H
#define MC_NVL_CUDA_H

#ifdef MC_NVL_HAVE_CUDA_H
#include <cuda.h>
#else
#include "cuda_min.h"
#endif

/* X(member, getproc name, dlsym name, return, params): every driver call the
 * plugin makes.  Member names carry no "cu" prefix so cuda.h's
 * `#define cuMemAlloc cuMemAlloc_v2` style macros never rename them. */
#define NVL_CUDA_CALLS(X)                                                      \
  X(Init, "cuInit", "cuInit", (unsigned int flags))                            \
  X(DriverGetVersion, "cuDriverGetVersion", "cuDriverGetVersion", (int *v))    \
  X(DeviceGetCount, "cuDeviceGetCount", "cuDeviceGetCount", (int *n))          \
  X(DeviceGet, "cuDeviceGet", "cuDeviceGet", (CUdevice * d, int ordinal))      \
  X(DeviceGetAttribute, "cuDeviceGetAttribute", "cuDeviceGetAttribute",        \
    (int *v, CUdevice_attribute a, CUdevice d))                                \
  X(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain",                        \
    "cuDevicePrimaryCtxRetain", (CUcontext * c, CUdevice d))                   \
  X(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease",                      \
    "cuDevicePrimaryCtxRelease_v2", (CUdevice d))                              \
  X(CtxSetCurrent, "cuCtxSetCurrent", "cuCtxSetCurrent", (CUcontext c))        \
  X(GetErrorString, "cuGetErrorString", "cuGetErrorString",                    \
    (CUresult r, const char **s))                                              \
  X(PointerGetAttribute, "cuPointerGetAttribute", "cuPointerGetAttribute",     \
    (void *data, CUpointer_attribute a, CUdeviceptr p))                        \
  X(MemGetAddressRange, "cuMemGetAddressRange", "cuMemGetAddressRange_v2",     \
    (CUdeviceptr * base, size_t *size, CUdeviceptr p))                         \
  X(IpcGetMemHandle, "cuIpcGetMemHandle", "cuIpcGetMemHandle",                 \
    (CUipcMemHandle * h, CUdeviceptr p))                                       \
  X(IpcOpenMemHandle, "cuIpcOpenMemHandle", "cuIpcOpenMemHandle_v2",           \
    (CUdeviceptr * p, CUipcMemHandle h, unsigned int flags))                   \
  X(IpcCloseMemHandle, "cuIpcCloseMemHandle", "cuIpcCloseMemHandle",           \
    (CUdeviceptr p))                                                           \
  X(StreamCreate, "cuStreamCreate", "cuStreamCreate",                          \
    (CUstream * s, unsigned int flags))                                        \
  X(StreamDestroy, "cuStreamDestroy", "cuStreamDestroy_v2", (CUstream s))      \
  X(EventCreate, "cuEventCreate", "cuEventCreate",                             \
    (CUevent * e, unsigned int flags))                                         \
  X(EventRecord, "cuEventRecord", "cuEventRecord", (CUevent e, CUstream s))    \
  X(EventQuery, "cuEventQuery", "cuEventQuery", (CUevent e))                   \
  X(EventSynchronize, "cuEventSynchronize", "cuEventSynchronize", (CUevent e)) \
  X(EventDestroy, "cuEventDestroy", "cuEventDestroy_v2", (CUevent e))          \
  X(MemcpyAsync, "cuMemcpyAsync", "cuMemcpyAsync",                             \
    (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s))

typedef struct nvl_cuda {
  void *dl;
  int version; /* cuDriverGetVersion */
  int via_getproc; /* calls resolved through cuGetProcAddress */
#define NVL_MEMBER(m, gp, ds, params) CUresult (*m) params;
  NVL_CUDA_CALLS(NVL_MEMBER)
#undef NVL_MEMBER
} nvl_cuda;

/* Loads `library` and resolves every call.  0, or MC_ENODEV with a one-line
 * reason in why (library missing, a call missing, cuInit failing, no
 * device). */
int nvl_cuda_load(nvl_cuda *d, const char *library, char *why, size_t whylen);
void nvl_cuda_unload(nvl_cuda *d);
/* The driver's text for r ("CUDA_ERROR_..." style), never NULL. */
const char *nvl_cuda_err(const nvl_cuda *d, CUresult r);

#endif
