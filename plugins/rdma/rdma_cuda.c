/* rdma_cuda.c - CUDA device memory for ibv_reg_dmabuf_mr: the CUDA driver
 * (libcuda.so.1, dlopen'ed on the first CUDA registration and kept, as the
 * driver expects) exports the range as a dma-buf fd, which the NIC maps.
 * Only the few driver prototypes needed are declared here: the plugin
 * builds without the CUDA toolkit and loads on hosts without a GPU. */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rdma_ctx.h"

/* From the CUDA driver API (cuda.h); values fixed by its ABI. */
typedef int rd_CUresult;
typedef unsigned long long rd_CUdeviceptr;
#define RD_CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD 1

typedef struct rd_cuda {
  int tried, ok;
  char err[640];
  rd_CUresult (*init)(unsigned int flags);
  rd_CUresult (*get_handle)(void *handle, rd_CUdeviceptr dptr, size_t size, int type,
                            unsigned long long flags);
} rd_cuda;

static pthread_mutex_t cu_lock = PTHREAD_MUTEX_INITIALIZER;
static rd_cuda cu; /* process-wide: one driver per process */

static void cuda_load(const char *path) {
  cu.tried = 1;
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!dl) {
    const char *e = dlerror();
    snprintf(cu.err, sizeof cu.err, "cannot load the CUDA driver %s: %s", path,
             e ? e : "unknown error");
    return;
  }
  void *i = dlsym(dl, "cuInit"), *g = dlsym(dl, "cuMemGetHandleForAddressRange");
  if (!i || !g) {
    snprintf(cu.err, sizeof cu.err,
             "the CUDA driver %s has no cuMemGetHandleForAddressRange (needs CUDA >= 11.7)",
             path);
    dlclose(dl);
    return;
  }
  memcpy(&cu.init, &i, sizeof i);
  memcpy(&cu.get_handle, &g, sizeof g);
  rd_CUresult r = cu.init(0);
  if (r) {
    snprintf(cu.err, sizeof cu.err, "cuInit failed (CUresult %d)", r);
    return;
  }
  cu.ok = 1;
}

int rd_cuda_dmabuf(rd_ctx *ctx, uint64_t addr, uint64_t len, int *fd, uint64_t *base, char *why,
                   size_t whylen) {
  pthread_mutex_lock(&cu_lock);
  if (!cu.tried)
    cuda_load(ctx->cfg.cuda_library);
  int ok = cu.ok;
  if (!ok)
    snprintf(why, whylen, "%s", cu.err);
  pthread_mutex_unlock(&cu_lock);
  if (!ok)
    return MC_ENOTSUP;
  /* The driver exports whole host pages of the range. */
  uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t b = addr & ~(pg - 1), e = (addr + len + pg - 1) & ~(pg - 1);
  int f = -1;
  rd_CUresult r = cu.get_handle(&f, (rd_CUdeviceptr)b, (size_t)(e - b),
                                RD_CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0);
  if (r || f < 0) {
    snprintf(why, whylen,
             "cuMemGetHandleForAddressRange(0x%" PRIx64 ", %" PRIu64 ", DMA_BUF_FD) failed "
             "(CUresult %d): the driver cannot export this memory as a dma-buf (open kernel "
             "modules and a dma-buf capable GPU needed)", b, e - b, r);
    return MC_ENOTSUP;
  }
  *fd = f;
  *base = b;
  return 0;
}
