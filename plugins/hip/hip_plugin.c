/* mc-transport-hip: device-to-device and host/device copies between
 * processes of one host over HIP IPC (hipIpcGetMemHandle in the remote key,
 * hipIpcOpenMemHandle on the peer, hipMemcpyAsync on streams).  The HIP
 * runtime is reached with dlopen (hip_api.c).  See README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hip_ctx.h"

#define HIP_MAX_STREAMS 64

static const mc_param_info hip_params[] = {
    {MC_PARAM_STRING, "library", "\"\"",
     "HIP runtime to dlopen: empty = libamdhip64.so.5, then libamdhip64.so", 0, 0},
    {MC_PARAM_INT, "streams", "4", "copy streams per device", 1, HIP_MAX_STREAMS},
    {MC_PARAM_INT, "max_inflight", "1024",
     "slices queued on the streams at once (more is back-pressure)", 1, 65536},
    {MC_PARAM_BOOL, "pin_host", "true",
     "hipHostRegister host buffers at registration so copies run asynchronously", 0, 0},
    {MC_PARAM_INT, "poll_us", "20",
     "the completion poller's first pause when no event finished, doubled per idle "
     "round up to 16x (0 = spin)", 0, 10000},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

static const char *ename(hip_ctx *c, hipError_t e, char *b, size_t n) {
  return hip_api_errname(&c->api, e, b, n);
}

/* This host's identity for same-host checks: the core's host_id, else the
 * kernel's boot id. */
static void self_host_id(const mc_init_args *args, char *out) {
  out[0] = 0;
  if (args && args->struct_size >= offsetof(mc_init_args, host_id) + sizeof(args->host_id) &&
      args->host_id && args->host_id[0]) {
    snprintf(out, HIP_HOST_ID_MAX + 1, "%s", args->host_id);
  } else {
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
      if (!fgets(out, HIP_HOST_ID_MAX + 1, f))
        out[0] = 0;
      fclose(f);
    }
  }
  out[strcspn(out, " \t\r\n")] = 0;
}

static void free_devs(hip_ctx *c) {
  for (int d = 0; d < c->ndev && c->devs; d++) {
    if (!c->devs[d].streams)
      continue;
    c->api.SetDevice(c->devs[d].ordinal);
    for (int s = 0; s < c->nstreams; s++)
      if (c->devs[d].streams[s])
        c->api.StreamDestroy(c->devs[d].streams[s]);
    free(c->devs[d].streams);
  }
  free(c->devs);
  c->devs = NULL;
}

/* Finds the runtime and a device; MC_ENODEV after one line saying why. */
static int open_runtime(hip_ctx *c, const char *lib) {
  char why[512], b[32];
  if (hip_api_load(&c->api, lib, why, sizeof why)) {
    HIP_LOG(c, MC_LOG_WARN, "%s", why);
    return MC_ENODEV;
  }
  const char *libname = lib && lib[0] ? lib : "libamdhip64";
  /* The ROCm runtime reaches GPUs through /dev/kfd; saying when it is
   * absent turns the runtime's bare error code into a reason. */
  const char *kfd = access("/dev/kfd", F_OK) ? " (/dev/kfd is absent: no amdgpu compute driver)" : "";
  hipError_t e = c->api.Init(0);
  if (e != hipSuccess) {
    HIP_LOG(c, MC_LOG_WARN, "no AMD GPU on this host: hipInit (%s): %s%s",
            libname, ename(c, e, b, sizeof b), kfd);
    return MC_ENODEV;
  }
  int n = 0;
  e = c->api.GetDeviceCount(&n);
  if (e != hipSuccess || n <= 0) {
    HIP_LOG(c, MC_LOG_WARN, "no AMD GPU on this host: hipGetDeviceCount (%s): "
            "%s, %d devices%s", libname, e ? ename(c, e, b, sizeof b) : "ok", n, kfd);
    return MC_ENODEV;
  }
  c->devs = calloc((size_t)n, sizeof *c->devs);
  if (!c->devs)
    return MC_ENOMEM;
  c->ndev = n;
  for (int d = 0; d < n; d++) {
    hip_dev *dv = &c->devs[d];
    dv->ordinal = d;
    if (c->api.DeviceGetPCIBusId(dv->bus, (int)sizeof dv->bus, d) != hipSuccess)
      dv->bus[0] = 0;
    dv->streams = calloc((size_t)c->nstreams, sizeof *dv->streams);
    if (!dv->streams)
      return MC_ENOMEM;
    if ((e = c->api.SetDevice(d)) != hipSuccess) {
      HIP_LOG(c, MC_LOG_WARN, "hipSetDevice(%d): %s", d, ename(c, e, b, sizeof b));
      return MC_ENODEV;
    }
    for (int s = 0; s < c->nstreams; s++) {
      if ((e = c->api.StreamCreateWithFlags(&dv->streams[s], hipStreamNonBlocking)) != hipSuccess) {
        dv->streams[s] = NULL;
        HIP_LOG(c, MC_LOG_WARN, "hipStreamCreateWithFlags on device %d: %s", d,
                ename(c, e, b, sizeof b));
        return MC_ENODEV;
      }
    }
  }
  return 0;
}

static void ctx_free(hip_ctx *c) {
  free_devs(c);
  hip_api_unload(&c->api);
  free(c);
}

static int hip_init(const mc_host_api *host, const mc_init_args *args, void **out) {
  if (!MC_HOST_HAS(host, config_get_int) || !MC_HOST_HAS(host, config_get_bool)) {
    host->log(host->host, MC_LOG_ERROR, "host ABI %u.%u lacks the typed config getters of ABI "
              "1.1: this plugin needs a libmooncake as new as itself", host->abi_major,
              host->abi_minor);
    return MC_EABI;
  }
  hip_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  const char *lib = NULL;
  int64_t streams = 4, inflight = 1024;
  int rc = host->config_get(host->host, "library", &lib);
  if (rc == MC_ENOENT)
    lib = NULL, rc = 0;
  if (!rc)
    rc = host->config_get_int(host->host, "streams", &streams);
  if (!rc)
    rc = host->config_get_int(host->host, "max_inflight", &inflight);
  if (!rc)
    rc = host->config_get_bool(host->host, "pin_host", &c->pin_host);
  if (!rc)
    rc = host->config_get_int(host->host, "poll_us", &c->poll_us);
  if (rc) {
    HIP_LOG(c, MC_LOG_ERROR, "cannot read the hip transport's keys: %s", mc_strerror(rc));
    free(c);
    return rc;
  }
  /* The core checked the ranges; a host that did not is not trusted. */
  if (streams < 1 || streams > HIP_MAX_STREAMS || inflight < 1 || inflight > 65536 ||
      c->poll_us < 0 || c->poll_us > 10000) {
    HIP_LOG(c, MC_LOG_ERROR, "hip transport: a key is out of its range");
    free(c);
    return MC_EINVAL;
  }
  c->nstreams = (int)streams;
  c->max_inflight = (uint32_t)inflight;
  self_host_id(args, c->self.host_id);
  c->self.pid = (uint32_t)getpid();
  if ((rc = open_runtime(c, lib)) || (rc = hip_xfer_start(c))) {
    ctx_free(c);
    return rc;
  }
  HIP_LOG(c, MC_LOG_INFO, "hip ready: %d devices, %d streams each", c->ndev, c->nstreams);
  *out = c;
  return 0;
}

static void release_open(hip_ctx *c, hip_open *o) {
  if (--o->refs > 0)
    return;
  for (hip_open **pp = &c->opens; *pp; pp = &(*pp)->next)
    if (*pp == o) {
      *pp = o->next;
      break;
    }
  c->api.SetDevice(o->device);
  c->api.IpcCloseMemHandle(o->ptr);
  free(o);
}

static int hip_release_mem(void *ctx, void *rmv) {
  hip_ctx *c = ctx;
  hip_rmem *rm = rmv;
  if (!rm)
    return MC_EINVAL;
  for (hip_rmem **pp = &rm->ep->rmems; *pp; pp = &(*pp)->next)
    if (*pp == rm) {
      *pp = rm->next;
      break;
    }
  release_open(c, rm->open);
  free(rm);
  return 0;
}

static void ep_free(hip_ctx *c, hip_ep *ep) {
  hip_xfer_drain_ep(c, ep);
  while (ep->rmems)
    hip_release_mem(c, ep->rmems);
  free(ep);
}

static void lmem_free(hip_ctx *c, hip_lmem *m) {
  if (m->pinned)
    c->api.HostUnregister((void *)(uintptr_t)m->addr);
  free(m);
}

static int hip_fini(void *ctx) {
  hip_ctx *c = ctx;
  hip_xfer_stop(c); /* every queued slice completed first */
  while (c->eps) {
    hip_ep *ep = c->eps;
    c->eps = ep->next;
    ep_free(c, ep);
  }
  while (c->lmems) {
    hip_lmem *m = c->lmems;
    c->lmems = m->next;
    lmem_free(c, m);
  }
  hip_xfer_free(c);
  ctx_free(c);
  return 0;
}

static int hip_query_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  hip_ctx *c = ctx;
  uint32_t cap = *n;
  *n = (uint32_t)c->ndev;
  if (cap < (uint32_t)c->ndev)
    return MC_ENOSPC;
  for (int d = 0; d < c->ndev; d++) {
    memset(&out[d], 0, sizeof out[d]);
    snprintf(out[d].name, sizeof out[d].name, "hip%d", d);
    out[d].numa_node = -1;
    unsigned dom = 0, bus = 0, dev = 0, fn = 0;
    if (sscanf(c->devs[d].bus, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4)
      out[d].pci_bus_id = (dom & 0xffff) << 16 | (bus & 0xff) << 8 | (dev & 0x1f) << 3 | (fn & 7);
  }
  return 0;
}

static int hip_local_desc(void *ctx, void *buf, size_t *len) {
  hip_ctx *c = ctx;
  uint8_t tmp[HIP_DESC_MAX];
  size_t n = hip_desc_encode(&c->self, tmp, sizeof tmp);
  if (*len < n) {
    *len = n;
    return MC_ENOSPC;
  }
  memcpy(buf, tmp, n);
  *len = n;
  return 0;
}

/* The allocation holding device pointer p: its device, start and size. */
static int dev_range(hip_ctx *c, uint64_t p, int *device, uint64_t *base, uint64_t *size) {
  hipPointerAttribute_t a;
  memset(&a, 0, sizeof a);
  void *ptr = (void *)(uintptr_t)p;
  if (c->api.PointerGetAttributes(&a, ptr) != hipSuccess || a.memoryType != hipMemoryTypeDevice) {
    c->api.GetLastError(); /* host memory answers with an error: clear it */
    return MC_ENOENT;
  }
  hipDeviceptr_t b = NULL;
  size_t sz = 0;
  if (c->api.MemGetAddressRange(&b, &sz, ptr) != hipSuccess) {
    c->api.GetLastError();
    return MC_ENOENT;
  }
  *device = a.device;
  *base = (uint64_t)(uintptr_t)b;
  *size = sz;
  return 0;
}

static int hip_query_mem(void *ctx, uint64_t addr, uint64_t len, uint32_t *kind, int32_t *device) {
  hip_ctx *c = ctx;
  int d;
  uint64_t base, size;
  int rc = dev_range(c, addr, &d, &base, &size);
  if (rc)
    return rc;
  if (len > size || addr - base > size - len)
    return MC_EINVAL; /* only the start is in this allocation */
  *kind = MC_MEM_HIP;
  *device = d;
  return 0;
}

static int hip_register_mem(void *ctx, const mc_mem_desc *desc, void **mem, void *rkey,
                            size_t *rkey_len) {
  hip_ctx *c = ctx;
  if (desc->kind != MC_MEM_HIP && desc->kind != MC_MEM_CPU)
    return MC_ENOTSUP;
  if (*rkey_len < HIP_KEY_SIZE) {
    *rkey_len = HIP_KEY_SIZE;
    return MC_ENOSPC;
  }
  hip_key k;
  memset(&k, 0, sizeof k);
  k.base = desc->addr;
  k.len = desc->len;
  hip_lmem *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  m->addr = desc->addr;
  m->len = desc->len;
  m->device = -1;
  char b[32];
  if (desc->kind == MC_MEM_HIP) {
    int d;
    uint64_t base, size;
    if (dev_range(c, desc->addr, &d, &base, &size) || desc->len > size ||
        desc->addr - base > size - desc->len) {
      HIP_LOG(c, MC_LOG_ERROR, "register 0x%llx+%llu: not inside one HIP device allocation",
              (unsigned long long)desc->addr, (unsigned long long)desc->len);
      free(m);
      return MC_EINVAL;
    }
    hipIpcMemHandle_t h;
    hipError_t e = c->api.IpcGetMemHandle(&h, (void *)(uintptr_t)base);
    if (e != hipSuccess) {
      c->api.GetLastError();
      HIP_LOG(c, MC_LOG_ERROR, "register 0x%llx: hipIpcGetMemHandle: %s",
              (unsigned long long)desc->addr, ename(c, e, b, sizeof b));
      free(m);
      return MC_EIO;
    }
    _Static_assert(sizeof h == HIP_HANDLE_SIZE, "hipIpcMemHandle_t is 64 bytes");
    memcpy(k.handle, &h, HIP_HANDLE_SIZE);
    k.kind = HIP_KEY_DEVICE;
    k.device = d;
    k.alloc_off = desc->addr - base;
    m->device = d;
  } else {
    /* Host memory is only ever the local side (remote_mem_kinds has no
     * CPU); pinning it lets hipMemcpyAsync run without staging. */
    k.kind = HIP_KEY_HOST;
    if (c->pin_host) {
      hipError_t e = c->api.HostRegister((void *)(uintptr_t)desc->addr, desc->len,
                                         hipHostRegisterDefault);
      if (e == hipSuccess)
        m->pinned = 1;
      else {
        c->api.GetLastError(); /* already pinned by its owner, or not pinnable: copies still work */
        HIP_LOG(c, MC_LOG_DEBUG, "register 0x%llx: hipHostRegister: %s (copies are synchronous)",
                (unsigned long long)desc->addr, ename(c, e, b, sizeof b));
      }
    }
  }
  *rkey_len = hip_key_encode(&k, rkey, *rkey_len);
  m->next = c->lmems;
  c->lmems = m;
  *mem = m;
  return 0;
}

static int hip_deregister_mem(void *ctx, void *mv) {
  hip_ctx *c = ctx;
  for (hip_lmem **pp = &c->lmems; *pp; pp = &(*pp)->next)
    if (*pp == mv) {
      *pp = ((hip_lmem *)mv)->next;
      lmem_free(c, mv);
      return 0;
    }
  return MC_EINVAL;
}

static int hip_connect(void *ctx, const char *peer, const void *desc, size_t len, void **out) {
  hip_ctx *c = ctx;
  hip_desc d;
  const char *why = NULL;
  if (hip_desc_decode(desc, len, &d, &why)) {
    HIP_LOG(c, MC_LOG_WARN, "connect %s: %s", peer ? peer : "?", why);
    return MC_EPROTO;
  }
  /* IPC handles only open on the host that exported them. */
  if (!c->self.host_id[0] || strcmp(d.host_id, c->self.host_id)) {
    HIP_LOG(c, MC_LOG_DEBUG, "connect %s: on another host (hip IPC is same-host only)",
            peer ? peer : "?");
    return MC_EPEER;
  }
  hip_ep *ep = calloc(1, sizeof *ep);
  if (!ep)
    return MC_ENOMEM;
  ep->peer = d;
  snprintf(ep->name, sizeof ep->name, "%s", peer ? peer : "");
  ep->next = c->eps;
  c->eps = ep;
  *out = ep;
  return 0;
}

static int hip_disconnect(void *ctx, void *epv) {
  hip_ctx *c = ctx;
  for (hip_ep **pp = &c->eps; *pp; pp = &(*pp)->next)
    if (*pp == epv) {
      *pp = ((hip_ep *)epv)->next;
      ep_free(c, epv);
      return 0;
    }
  return MC_EINVAL;
}

static int hip_import_mem(void *ctx, void *epv, uint64_t base, uint64_t len, const void *rkey,
                          size_t rkey_len, void **out) {
  hip_ctx *c = ctx;
  hip_ep *ep = epv;
  hip_key k;
  const char *why = NULL;
  if (!ep)
    return MC_EINVAL;
  if (hip_key_decode(rkey, rkey_len, &k, &why)) {
    HIP_LOG(c, MC_LOG_WARN, "import from %s: %s", ep->name, why);
    return MC_EPROTO;
  }
  if (k.kind != HIP_KEY_DEVICE)
    return MC_ENOTSUP; /* host memory of a peer: not reachable over HIP IPC */
  if (len == 0 || base < k.base || len > k.len || base - k.base > k.len - len)
    return MC_ERANGE;
  /* A process cannot open its own IPC handle, and a peer claiming our pid
   * must not make us copy from addresses of its choosing. */
  if (ep->peer.pid == c->self.pid) {
    HIP_LOG(c, MC_LOG_DEBUG, "import from %s: same process, not served by hip IPC", ep->name);
    return MC_ENOTSUP;
  }
  hip_open *o = c->opens;
  while (o && (o->pid != ep->peer.pid || memcmp(o->handle, k.handle, HIP_HANDLE_SIZE)))
    o = o->next;
  hip_rmem *rm = calloc(1, sizeof *rm);
  if (!rm)
    return MC_ENOMEM;
  if (!o) {
    o = calloc(1, sizeof *o);
    if (!o) {
      free(rm);
      return MC_ENOMEM;
    }
    o->pid = ep->peer.pid;
    memcpy(o->handle, k.handle, HIP_HANDLE_SIZE);
    /* The peer's ordinal is in its own numbering; open on the same
     * ordinal when this process sees it, else on device 0 (peer access). */
    o->device = k.device < c->ndev ? k.device : 0;
    hipIpcMemHandle_t h;
    memcpy(&h, k.handle, HIP_HANDLE_SIZE);
    void *p = NULL;
    hipError_t e = c->api.SetDevice(o->device);
    if (e == hipSuccess)
      e = c->api.IpcOpenMemHandle(&p, h, hipIpcMemLazyEnablePeerAccess);
    if (e != hipSuccess || !p) {
      char b[32];
      c->api.GetLastError();
      HIP_LOG(c, MC_LOG_WARN, "import from %s: hipIpcOpenMemHandle: %s", ep->name,
              ename(c, e, b, sizeof b));
      free(o);
      free(rm);
      return e == hipErrorInvalidValue || e == hipErrorInvalidDevicePointer ? MC_EPROTO : MC_EIO;
    }
    o->ptr = p;
    /* The mapping's size, as this process's runtime sees it: the key's
     * offset and length come from the peer and must stay inside it, or
     * a forged key would aim our copies at other memory of ours. */
    hipDeviceptr_t mb = NULL;
    size_t msz = 0;
    if (c->api.MemGetAddressRange(&mb, &msz, p) != hipSuccess || mb != p) {
      c->api.GetLastError();
      msz = 0;
    }
    o->size = msz;
    o->next = c->opens;
    c->opens = o;
  }
  if (k.alloc_off > o->size || k.len > o->size - k.alloc_off) {
    HIP_LOG(c, MC_LOG_WARN, "import from %s: the key's range (+%llu, %llu bytes) is outside "
            "its allocation (%llu bytes)", ep->name, (unsigned long long)k.alloc_off,
            (unsigned long long)k.len, (unsigned long long)o->size);
    if (o->refs == 0) { /* opened for this import only: close it again */
      o->refs = 1;
      release_open(c, o);
    }
    free(rm);
    return MC_EPROTO;
  }
  o->refs++;
  rm->ep = ep;
  rm->open = o;
  rm->base = base;
  rm->len = len;
  rm->device = o->device;
  rm->ptr = o->ptr + k.alloc_off + (base - k.base);
  rm->next = ep->rmems;
  ep->rmems = rm;
  *out = rm;
  return 0;
}

static const char *hip_vendor_strerror(void *ctx, int32_t err) {
  hip_ctx *c = ctx;
  const char *n = c && c->api.GetErrorName ? c->api.GetErrorName((hipError_t)err) : NULL;
  return n ? n : "HIP runtime error";
}

static const mc_transport_ops hip_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "hip",
    .version = "1.0",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE | MC_CAP_MT_SUBMIT |
            MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_HIP | MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_HIP,
    .params = hip_params,
    .init = hip_init,
    .fini = hip_fini,
    .query_rails = hip_query_rails,
    .local_desc = hip_local_desc,
    .register_mem = hip_register_mem,
    .deregister_mem = hip_deregister_mem,
    .connect = hip_connect,
    .disconnect = hip_disconnect,
    .import_mem = hip_import_mem,
    .release_mem = hip_release_mem,
    .submit = hip_submit,
    .progress = NULL,
    .vendor_strerror = hip_vendor_strerror,
    .slice_size = 4u << 20,
    .param_info_size = sizeof(mc_param_info),
    .query_mem = hip_query_mem,
};

const mc_transport_ops *mc_transport_plugin_v1(void) { return &hip_ops; }
