/* mc-transport-nvlink: GPU memory between processes of one host through
 * CUDA IPC (cuIpcGetMemHandle / cuIpcOpenMemHandle) and cuMemcpyAsync,
 * with the CUDA driver loaded at run time (nvl_cuda.c).  See README.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nvl_ctx.h"

static const mc_param_info nvl_params[] = {
    {MC_PARAM_STRING, "library", "libcuda.so.1",
     "the CUDA driver library to dlopen (a path, or a name the loader finds)",
     0, 0},
    {MC_PARAM_INT, "streams", "4",
     "CUDA streams per device that copies are spread over", 1, 64},
    {MC_PARAM_INT, "max_inflight", "8192",
     "slices queued on the devices at most (back-pressure beyond)", 16,
     1 << 20},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

/* Reads /proc/self/ns/pid's inode: peers in another pid namespace cannot
 * be watched by pid (nor reached by the fake driver's fd passing). */
static uint64_t pidns_inode(void) {
  char buf[64];
  ssize_t n = readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  if (n <= 0)
    return 0;
  buf[n] = 0;
  const char *p = strchr(buf, '[');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void boot_id(char *out, size_t len) {
  out[0] = 0;
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (!f)
    return;
  if (fgets(out, (int)len, f))
    out[strcspn(out, "\n")] = 0;
  fclose(f);
}

static void release_devs(nvl_ctx *c) {
  for (int i = 0; i < c->ndev; i++) {
    nvl_dev *d = &c->devs[i];
    if (!d->ctx)
      continue;
    c->cu.CtxSetCurrent(d->ctx);
    nvl_groups_free(c, d);
    for (uint32_t s = 0; d->streams && s < c->nstreams; s++)
      if (d->streams[s])
        c->cu.StreamDestroy(d->streams[s]);
    free(d->streams);
    c->cu.CtxSetCurrent(NULL);
    c->cu.DevicePrimaryCtxRelease(d->dev);
  }
  free(c->devs);
  c->devs = NULL;
}

static int open_devs(nvl_ctx *c) {
  int n = 0;
  CUresult r = c->cu.DeviceGetCount(&n);
  if (r != CUDA_SUCCESS || n <= 0)
    return MC_ENODEV;
  c->devs = calloc((size_t)n, sizeof *c->devs);
  if (!c->devs)
    return MC_ENOMEM;
  c->ndev = n;
  int fabric_all = 1;
  for (int i = 0; i < n; i++) {
    nvl_dev *d = &c->devs[i];
    if ((r = c->cu.DeviceGet(&d->dev, i)) != CUDA_SUCCESS ||
        (r = c->cu.DevicePrimaryCtxRetain(&d->ctx, d->dev)) != CUDA_SUCCESS ||
        (r = c->cu.CtxSetCurrent(d->ctx)) != CUDA_SUCCESS) {
      NVL_LOG(c, MC_LOG_ERROR, "cuda:%d: cannot open its primary context: %s",
              i, nvl_cuda_err(&c->cu, r));
      d->ctx = NULL;
      return MC_ENODEV;
    }
    d->streams = calloc(c->nstreams, sizeof *d->streams);
    if (!d->streams)
      return MC_ENOMEM;
    for (uint32_t s = 0; s < c->nstreams; s++) {
      if ((r = c->cu.StreamCreate(&d->streams[s], CU_STREAM_NON_BLOCKING)) !=
          CUDA_SUCCESS) {
        NVL_LOG(c, MC_LOG_ERROR, "cuda:%d: cuStreamCreate: %s", i,
                nvl_cuda_err(&c->cu, r));
        return MC_ENODEV;
      }
    }
    int v = 0, bus = 0, dev = 0, dom = 0;
    if (c->cu.DeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED,
                                 d->dev) != CUDA_SUCCESS)
      v = 0;
    d->fabric = v != 0;
    fabric_all &= d->fabric;
    c->cu.DeviceGetAttribute(&bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, d->dev);
    c->cu.DeviceGetAttribute(&dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, d->dev);
    c->cu.DeviceGetAttribute(&dom, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, d->dev);
    d->pci = (uint32_t)(dom & 0xffff) << 16 | (uint32_t)(bus & 0xff) << 8 |
             (uint32_t)(dev & 0x1f) << 3;
  }
  c->self.flags = fabric_all ? NVL_DESC_FABRIC : 0;
  return 0;
}

static int nvl_fini(void *vctx);

static int nvl_init(const mc_host_api *host, const mc_init_args *args,
                    void **out) {
  if (!MC_HOST_HAS(host, config_get_int)) {
    host->log(host->host, MC_LOG_ERROR,
              "host ABI %u.%u lacks the typed config getters of ABI 1.1: "
              "this plugin needs a libmooncake as new as itself",
              host->abi_major, host->abi_minor);
    return MC_EABI;
  }
  const char *lib = NULL;
  if (host->config_get(host->host, "library", &lib) || !lib || !lib[0])
    lib = "libcuda.so.1";
  int64_t streams = 4, inflight = 8192;
  int rc;
  if ((rc = host->config_get_int(host->host, "streams", &streams)) ||
      (rc = host->config_get_int(host->host, "max_inflight", &inflight))) {
    host->log(host->host, MC_LOG_ERROR, "cannot read the nvlink keys: %s",
              mc_strerror(rc));
    return rc;
  }
  nvl_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  c->nstreams = (uint32_t)streams;
  c->max_inflight = (uint32_t)inflight;
  char why[512];
  if ((rc = nvl_cuda_load(&c->cu, lib, why, sizeof why))) {
    NVL_LOG(c, MC_LOG_WARN, "%s", why); /* the one line saying why */
    free(c);
    return rc;
  }
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->wake, NULL);
  pthread_cond_init(&c->idle, NULL);
  if ((rc = open_devs(c)) || (rc = nvl_poller_start(c))) {
    nvl_fini(c);
    return rc;
  }
  c->self.pid = (uint32_t)getpid();
  c->self.uid = (uint32_t)getuid();
  c->self.pidns = pidns_inode();
  c->self.ndev = (uint32_t)c->ndev;
  const char *hid = NULL;
  if (args && args->struct_size >= offsetof(mc_init_args, host_id) +
                                       sizeof(args->host_id))
    hid = args->host_id;
  if (hid && hid[0])
    snprintf(c->self.host_id, sizeof c->self.host_id, "%s", hid);
  else
    boot_id(c->self.host_id, sizeof c->self.host_id);
  NVL_LOG(c, MC_LOG_INFO, "nvlink ready: %d device(s) via %s (driver %d, %s), "
          "%u streams each, MNNVL fabric handles %s", c->ndev, lib,
          c->cu.version, c->cu.via_getproc ? "cuGetProcAddress" : "dlsym",
          c->nstreams, c->self.flags & NVL_DESC_FABRIC ? "reported (not used by "
          "this version)" : "not supported");
  *out = c;
  return 0;
}

static void map_put(nvl_ctx *c, nvl_ep *ep, nvl_map *m) {
  if (--m->refs > 0)
    return;
  for (nvl_map **pp = &ep->maps; *pp; pp = &(*pp)->next)
    if (*pp == m) {
      *pp = m->next;
      break;
    }
  if (m->opened) {
    c->cu.CtxSetCurrent(c->devs[m->dev].ctx);
    CUresult r = c->cu.IpcCloseMemHandle(m->ptr);
    if (r != CUDA_SUCCESS)
      NVL_LOG(c, MC_LOG_WARN, "cuIpcCloseMemHandle: %s", nvl_cuda_err(&c->cu, r));
  }
  free(m);
}

static void rmem_free(nvl_ctx *c, nvl_rmem *rm) {
  nvl_ep *ep = rm->ep;
  for (nvl_rmem **pp = &ep->rmems; *pp; pp = &(*pp)->next)
    if (*pp == rm) {
      *pp = rm->next;
      break;
    }
  map_put(c, ep, rm->map);
  free(rm);
}

static void ep_free(nvl_ctx *c, nvl_ep *ep) {
  while (ep->rmems)
    rmem_free(c, ep->rmems);
  if (ep->pidfd >= 0)
    close(ep->pidfd);
  free(ep);
}

static int nvl_fini(void *vctx) {
  nvl_ctx *c = vctx;
  if (!c)
    return 0;
  nvl_poller_stop(c); /* pending slices fail MC_ECANCELED first */
  while (c->eps) {
    nvl_ep *ep = c->eps;
    c->eps = ep->next;
    ep_free(c, ep);
  }
  while (c->lmems) {
    nvl_lmem *m = c->lmems;
    c->lmems = m->next;
    free(m);
  }
  release_devs(c);
  nvl_cuda_unload(&c->cu);
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->idle);
  free(c);
  return 0;
}

static int nvl_query_rails(void *vctx, mc_rail_info *out, uint32_t *n) {
  nvl_ctx *c = vctx;
  uint32_t need = (uint32_t)c->ndev;
  if (!out || *n < need) {
    *n = need;
    return MC_ENOSPC;
  }
  for (uint32_t i = 0; i < need; i++) {
    memset(&out[i], 0, sizeof out[i]);
    snprintf(out[i].name, sizeof out[i].name, "cuda%u", i);
    out[i].numa_node = -1;
    out[i].pci_bus_id = c->devs[i].pci;
  }
  *n = need;
  return 0;
}

static int nvl_local_desc(void *vctx, void *buf, size_t *len) {
  nvl_ctx *c = vctx;
  return nvl_desc_encode(&c->self, buf, len);
}

/* What the driver knows about p: 0 with the allocation's device, base and
 * size when p is device memory, MC_ENOENT when it is not (host memory the
 * driver never saw, pinned host or managed memory). */
static int classify(nvl_ctx *c, uint64_t p, int *dev, uint64_t *base,
                    uint64_t *size) {
  unsigned int type = 0;
  int ord = -1;
  CUdeviceptr b = 0;
  size_t s = 0;
  c->cu.CtxSetCurrent(c->devs[0].ctx);
  if (c->cu.PointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                (CUdeviceptr)p) != CUDA_SUCCESS ||
      type != CU_MEMORYTYPE_DEVICE)
    return MC_ENOENT;
  if (c->cu.PointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                (CUdeviceptr)p) != CUDA_SUCCESS ||
      ord < 0 || ord >= c->ndev)
    return MC_ENOENT;
  c->cu.CtxSetCurrent(c->devs[ord].ctx);
  if (c->cu.MemGetAddressRange(&b, &s, (CUdeviceptr)p) != CUDA_SUCCESS)
    return MC_ENOENT;
  *dev = ord;
  *base = b;
  *size = s;
  return 0;
}

static int nvl_query_mem(void *vctx, uint64_t addr, uint64_t len,
                         uint32_t *kind, int32_t *device) {
  nvl_ctx *c = vctx;
  int dev;
  uint64_t base, size;
  if (!kind || !device || len == 0 || addr + len < addr)
    return MC_EINVAL;
  if (classify(c, addr, &dev, &base, &size))
    return MC_ENOENT;
  if (addr + len > base + size)
    return MC_EINVAL; /* runs past the end of the allocation */
  *kind = MC_MEM_CUDA;
  *device = dev;
  return 0;
}

static int nvl_register(void *vctx, const mc_mem_desc *d, void **mem,
                        void *rkey, size_t *rkey_len) {
  nvl_ctx *c = vctx;
  if (!d || d->len == 0 || d->addr + d->len < d->addr)
    return MC_EINVAL;
  if (d->kind != MC_MEM_CUDA)
    return MC_ENOTSUP;
  if (!rkey || *rkey_len < NVL_RKEY_SIZE) {
    *rkey_len = NVL_RKEY_SIZE;
    return MC_ENOSPC;
  }
  int dev;
  uint64_t base, size;
  if (classify(c, d->addr, &dev, &base, &size)) {
    NVL_LOG(c, MC_LOG_ERROR, "register 0x%" PRIx64 "+%" PRIu64 " (%s): the CUDA "
            "driver does not know it as device memory", d->addr, d->len,
            d->location ? d->location : "?");
    return MC_EINVAL;
  }
  if (d->device >= 0 && d->device != dev) {
    NVL_LOG(c, MC_LOG_ERROR, "register 0x%" PRIx64 ": location says cuda:%d but "
            "the memory is on cuda:%d", d->addr, d->device, dev);
    return MC_EINVAL;
  }
  if (d->addr + d->len > base + size) {
    NVL_LOG(c, MC_LOG_ERROR, "register 0x%" PRIx64 "+%" PRIu64 ": runs past its "
            "allocation (0x%" PRIx64 "+%" PRIu64 ")", d->addr, d->len, base, size);
    return MC_EINVAL;
  }
  /* cuMemCreate (VMM) allocations have no legacy IPC handle; they need
   * cuMemExportToShareableHandle, which this version does not do. */
  int legacy = 1;
  if (c->cu.PointerGetAttribute(&legacy, CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE,
                                (CUdeviceptr)d->addr) != CUDA_SUCCESS)
    legacy = 1; /* drivers before 11.x: only legacy allocations exist */
  if (!legacy) {
    NVL_LOG(c, MC_LOG_WARN, "register 0x%" PRIx64 ": a VMM (cuMemCreate) "
            "allocation; nvlink only shares cuMemAlloc memory (legacy CUDA "
            "IPC) in this version", d->addr);
    return MC_ENOTSUP;
  }
  nvl_rkey k = {0};
  CUipcMemHandle h;
  CUresult r = c->cu.IpcGetMemHandle(&h, (CUdeviceptr)base);
  if (r != CUDA_SUCCESS) {
    NVL_LOG(c, MC_LOG_ERROR, "cuIpcGetMemHandle(0x%" PRIx64 "): %s", base,
            nvl_cuda_err(&c->cu, r));
    return MC_EIO;
  }
  nvl_lmem *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  k.kind = NVL_RKEY_IPC;
  k.device = dev;
  k.pid = c->self.pid;
  k.addr = d->addr;
  k.len = d->len;
  k.alloc_base = base;
  k.alloc_size = size;
  memcpy(k.handle, &h, NVL_HANDLE_SIZE);
  nvl_rkey_encode(&k, rkey, rkey_len);
  m->addr = d->addr;
  m->len = d->len;
  m->dev = dev;
  m->next = c->lmems;
  c->lmems = m;
  *mem = m;
  return 0;
}

static int nvl_deregister(void *vctx, void *mem) {
  nvl_ctx *c = vctx;
  for (nvl_lmem **pp = &c->lmems; *pp; pp = &(*pp)->next)
    if (*pp == mem) {
      *pp = ((nvl_lmem *)mem)->next;
      free(mem);
      return 0;
    }
  return MC_ENOENT;
}

static int open_pidfd(uint32_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
  (void)pid;
  return -1;
#endif
}

static int nvl_connect(void *vctx, const char *peer, const void *desc,
                       size_t len, void **out) {
  nvl_ctx *c = vctx;
  const char *name = peer ? peer : "?";
  nvl_desc d;
  const char *why = NULL;
  if (nvl_desc_decode(desc, len, &d, &why)) {
    NVL_LOG(c, MC_LOG_WARN, "peer %s: malformed nvlink descriptor (%s)", name, why);
    return MC_EPROTO;
  }
  if (strcmp(d.host_id, c->self.host_id) || d.pidns != c->self.pidns) {
    /* MNNVL would reach GPUs of other hosts through fabric handles; this
     * version does not export them, so it does not offer them either. */
    NVL_LOG(c, MC_LOG_INFO, "peer %s is not on this host (or in another pid "
            "namespace): CUDA IPC needs a same-host peer%s", name,
            (d.flags & c->self.flags & NVL_DESC_FABRIC)
                ? "; both sides report fabric handles, but MNNVL is not "
                  "implemented in this version"
                : "");
    return MC_EPEER;
  }
  nvl_ep *ep = calloc(1, sizeof *ep);
  if (!ep)
    return MC_ENOMEM;
  snprintf(ep->peer_name, sizeof ep->peer_name, "%s", name);
  ep->peer = d;
  ep->self = d.pid == c->self.pid;
  ep->pidfd = ep->self ? -1 : open_pidfd(d.pid);
  if (!ep->self && ep->pidfd < 0 && errno == ESRCH) {
    NVL_LOG(c, MC_LOG_WARN, "peer %s: process %u is gone", name, d.pid);
    free(ep);
    return MC_EPEER;
  }
  ep->next = c->eps;
  c->eps = ep;
  *out = ep;
  return 0;
}

static int nvl_disconnect(void *vctx, void *vep) {
  nvl_ctx *c = vctx;
  for (nvl_ep **pp = &c->eps; *pp; pp = &(*pp)->next)
    if (*pp == vep) {
      *pp = ((nvl_ep *)vep)->next;
      nvl_ep_drain(c, vep);
      ep_free(c, vep);
      return 0;
    }
  return MC_ENOENT;
}

/* The peer allocation of key k mapped here: cached per endpoint, opened
 * once (cuIpcOpenMemHandle maps an allocation once per context). */
static int map_get(nvl_ctx *c, nvl_ep *ep, const nvl_rkey *k, nvl_map **out) {
  for (nvl_map *m = ep->maps; m; m = m->next)
    if (m->alloc_base == k->alloc_base &&
        !memcmp(m->handle, k->handle, NVL_HANDLE_SIZE)) {
      if (k->alloc_size > m->alloc_size)
        return MC_EPROTO; /* same allocation, bigger: a forged key */
      m->refs++;
      *out = m;
      return 0;
    }
  nvl_map *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  m->alloc_base = k->alloc_base;
  m->alloc_size = k->alloc_size;
  memcpy(m->handle, k->handle, NVL_HANDLE_SIZE);
  m->dev = k->device < c->ndev ? k->device : 0;
  c->cu.CtxSetCurrent(c->devs[m->dev].ctx);
  CUdeviceptr base = 0;
  size_t size = 0;
  if (ep->self) {
    /* Our own memory (loopback): no IPC; the driver must know the range. */
    m->ptr = (CUdeviceptr)k->alloc_base;
  } else {
    CUipcMemHandle h;
    memcpy(&h, k->handle, NVL_HANDLE_SIZE);
    CUresult r = c->cu.IpcOpenMemHandle(&m->ptr, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
    if (r != CUDA_SUCCESS) {
      NVL_LOG(c, MC_LOG_WARN, "peer %s: cuIpcOpenMemHandle refused the key's "
              "handle: %s", ep->peer_name, nvl_cuda_err(&c->cu, r));
      free(m);
      return MC_EPROTO;
    }
    m->opened = 1;
  }
  /* The mapping must be as large as the key claims, or a forged key could
   * make us copy past it.  (The range attributes answer where a driver's
   * cuMemGetAddressRange does not for IPC mappings.) */
  if (c->cu.MemGetAddressRange(&base, &size, m->ptr) != CUDA_SUCCESS &&
      (c->cu.PointerGetAttribute(&base, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                                 m->ptr) != CUDA_SUCCESS ||
       c->cu.PointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE,
                                 m->ptr) != CUDA_SUCCESS))
    base = 0, size = 0;
  if (base != m->ptr || size < k->alloc_size) {
    NVL_LOG(c, MC_LOG_WARN, "peer %s: remote key claims an allocation of %" PRIu64
            " bytes but its handle maps %zu", ep->peer_name, k->alloc_size, size);
    if (m->opened)
      c->cu.IpcCloseMemHandle(m->ptr);
    free(m);
    return MC_EPROTO;
  }
  m->refs = 1;
  m->next = ep->maps;
  ep->maps = m;
  *out = m;
  return 0;
}

static int nvl_import_mem(void *vctx, void *vep, uint64_t base, uint64_t len,
                          const void *rkey, size_t rkey_len, void **rmem) {
  nvl_ctx *c = vctx;
  nvl_ep *ep = vep;
  nvl_rkey k;
  const char *why = NULL;
  if (!ep || !rmem)
    return MC_EINVAL;
  if (nvl_rkey_decode(rkey, rkey_len, &k, &why)) {
    NVL_LOG(c, MC_LOG_WARN, "peer %s: malformed nvlink remote key (%s)",
            ep->peer_name, why);
    return MC_EPROTO;
  }
  if (k.pid != ep->peer.pid) {
    NVL_LOG(c, MC_LOG_WARN, "peer %s: remote key of process %u, not of the "
            "peer (%u)", ep->peer_name, k.pid, ep->peer.pid);
    return MC_EPROTO;
  }
  if (len == 0 || base < k.addr || base + len < base || base + len > k.addr + k.len) {
    NVL_LOG(c, MC_LOG_WARN, "peer %s: import 0x%" PRIx64 "+%" PRIu64 " is not "
            "inside the key's range", ep->peer_name, base, len);
    return MC_EPROTO;
  }
  nvl_rmem *rm = calloc(1, sizeof *rm);
  if (!rm)
    return MC_ENOMEM;
  int rc = map_get(c, ep, &k, &rm->map);
  if (rc) {
    free(rm);
    return rc;
  }
  rm->ep = ep;
  rm->base = base;
  rm->len = len;
  rm->delta = (uint64_t)rm->map->ptr - k.alloc_base;
  rm->next = ep->rmems;
  ep->rmems = rm;
  *rmem = rm;
  return 0;
}

static int nvl_release_mem(void *vctx, void *rmem) {
  if (!rmem)
    return MC_EINVAL;
  rmem_free(vctx, rmem);
  return 0;
}

static const char *nvl_vendor_strerror(void *vctx, int32_t err) {
  nvl_ctx *c = vctx;
  return c ? nvl_cuda_err(&c->cu, err) : "CUDA error";
}

static const mc_transport_ops nvl_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "nvlink",
    .version = "0.1.0",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE | MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CUDA,
    .remote_mem_kinds = MC_MEM_CUDA,
    .params = nvl_params,
    .param_info_size = sizeof(mc_param_info),
    .init = nvl_init,
    .fini = nvl_fini,
    .query_rails = nvl_query_rails,
    .local_desc = nvl_local_desc,
    .register_mem = nvl_register,
    .deregister_mem = nvl_deregister,
    .connect = nvl_connect,
    .disconnect = nvl_disconnect,
    .import_mem = nvl_import_mem,
    .release_mem = nvl_release_mem,
    .submit = nvl_submit,
    .progress = NULL,
    .vendor_strerror = nvl_vendor_strerror,
    /* Copy engines move a few MiB per call near peak; smaller slices only
     * add calls, larger ones serialize a request on one stream. */
    .slice_size = 4u << 20,
    .query_mem = nvl_query_mem,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) {
  return &nvl_ops;
}
