/* Loading the CUDA driver at run time (nvl_cuda.h).  Like NCCL and PyTorch,
 * the plugin never links libcuda: it is only on hosts with an NVIDIA driver,
 * and CUDA is not packaged in Debian main. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "mooncake/errors.h"
#include "nvl_cuda.h"

/* The ABI version we ask cuGetProcAddress for: 12.0 gives the _v2 entry
 * points (64-bit sizes) every call here has had since CUDA 3.2/11.0. */
#define NVL_CUDA_API_VERSION 12000

typedef CUresult (*getproc_v1_fn)(const char *, void **, int, cuuint64_t);
typedef CUresult (*getproc_v2_fn)(const char *, void **, int, cuuint64_t,
                                  void *);

int nvl_cuda_load(nvl_cuda *d, const char *library, char *why, size_t whylen) {
  memset(d, 0, sizeof *d);
  d->dl = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!d->dl) {
    const char *e = dlerror();
    snprintf(why, whylen, "cannot load the CUDA driver library %s (%s): no "
             "NVIDIA driver on this host", library, e ? e : "?");
    return MC_ENODEV;
  }
  /* cuGetProcAddress (CUDA 11.3+) returns the entry point of the ABI
   * version asked for; the 12.x driver exports the 5-argument _v2 form. */
  getproc_v2_fn gp2 = NULL;
  getproc_v1_fn gp1 = NULL;
  *(void **)&gp2 = dlsym(d->dl, "cuGetProcAddress_v2");
  if (!gp2)
    *(void **)&gp1 = dlsym(d->dl, "cuGetProcAddress");
  int n = 0, via = 0;
#define NVL_RESOLVE(m, gp, ds, params)                                         \
  {                                                                            \
    void *f = NULL;                                                            \
    int st = 0;                                                                \
    if (gp2 && gp2(gp, &f, NVL_CUDA_API_VERSION, 0, &st) != CUDA_SUCCESS)      \
      f = NULL;                                                                \
    if (!f && gp1 && gp1(gp, &f, NVL_CUDA_API_VERSION, 0) != CUDA_SUCCESS)     \
      f = NULL;                                                                \
    if (f)                                                                     \
      via++;                                                                   \
    else                                                                       \
      f = dlsym(d->dl, ds);                                                    \
    if (!f) {                                                                  \
      snprintf(why, whylen, "%s lacks %s: driver too old for this plugin",     \
               library, ds);                                                   \
      dlclose(d->dl);                                                          \
      d->dl = NULL;                                                            \
      return MC_ENODEV;                                                        \
    }                                                                          \
    *(void **)&d->m = f;                                                       \
    n++;                                                                       \
  }
  NVL_CUDA_CALLS(NVL_RESOLVE)
#undef NVL_RESOLVE
  d->via_getproc = via == n;
  CUresult r = d->Init(0);
  int count = 0;
  if (r == CUDA_SUCCESS)
    r = d->DeviceGetCount(&count);
  if (r != CUDA_SUCCESS || count <= 0) {
    if (r == CUDA_ERROR_NO_DEVICE || (r == CUDA_SUCCESS && count <= 0))
      snprintf(why, whylen, "%s loaded but no CUDA device is present",
               library);
    else
      snprintf(why, whylen, "%s: cuInit failed: %s", library,
               nvl_cuda_err(d, r));
    dlclose(d->dl);
    d->dl = NULL;
    return MC_ENODEV;
  }
  if (d->DriverGetVersion(&d->version) != CUDA_SUCCESS)
    d->version = 0;
  return 0;
}

void nvl_cuda_unload(nvl_cuda *d) {
  if (d->dl)
    dlclose(d->dl);
  d->dl = NULL;
}

const char *nvl_cuda_err(const nvl_cuda *d, CUresult r) {
  const char *s = NULL;
  if (d->GetErrorString && d->GetErrorString(r, &s) == CUDA_SUCCESS && s)
    return s;
  return "unknown CUDA error";
}
