/* mc-transport-ascend: host/NPU and NPU-to-NPU copies between processes
 * of one host over the CANN runtime (ACL): aclrtIpcMemGetExportKey in the
 * remote key, aclrtIpcMemImportByKey on the peer (whitelisted through the
 * control channel), aclrtMemcpyAsync on streams, events polled by the
 * plugin's thread.  The runtime is reached with dlopen (acl_api.c).  See
 * README.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ascend_ctx.h"

#define ASC_MAX_STREAMS 64
#define ACL_ERROR_REPEAT_INITIALIZE 100002

static const mc_param_info asc_params[] = {
    {MC_PARAM_STRING, "library", "\"\"", "CANN runtime to dlopen: empty = libascendcl.so", 0, 0},
    {MC_PARAM_INT, "streams", "4", "copy streams per NPU", 1, ASC_MAX_STREAMS},
    {MC_PARAM_INT, "max_inflight", "1024",
     "slices queued on the streams at once (more is back-pressure)", 1, 65536},
    {MC_PARAM_INT, "poll_us", "20",
     "the completion poller's first pause when no event finished, doubled per idle "
     "round up to 16x (0 = spin)", 0, 10000},
    {MC_PARAM_BOOL, "pid_check", "true",
     "export NPU memory with the runtime's pid whitelist; importers ask to be added over "
     "the control channel", 0, 0},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

/* aclInit is per process, contexts are per engine, and the application
 * (torch_npu, ...) may hold ACL itself.  Each context calls aclInit and,
 * at fini, aclFinalizeReference (reference counted, so the application's
 * own initialization survives).  A runtime without aclFinalizeReference
 * only has aclFinalize, which drops every reference: it is called by the
 * plugin's last context, and only when the plugin's aclInit was the one
 * that initialized ACL (not ACL_ERROR_REPEAT_INITIALIZE). */
static pthread_mutex_t acl_users_lock = PTHREAD_MUTEX_INITIALIZER;
static int acl_users, acl_owned;
/* Counts the times the plugin's contexts went from none to one: thread
 * bindings of an earlier initialization are stale (ascend_xfer.c). */
static unsigned acl_gen;

static void self_host_id(const mc_init_args *args, char *out) {
  out[0] = 0;
  if (args && args->struct_size >= offsetof(mc_init_args, host_id) + sizeof(args->host_id) &&
      args->host_id && args->host_id[0]) {
    snprintf(out, ASC_HOST_ID_MAX + 1, "%s", args->host_id);
  } else {
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
      if (!fgets(out, ASC_HOST_ID_MAX + 1, f))
        out[0] = 0;
      fclose(f);
    }
  }
  out[strcspn(out, " \t\r\n")] = 0;
}

static const char *recent(asc_ctx *c) {
  const char *m = c->api.GetRecentErrMsg ? c->api.GetRecentErrMsg() : NULL;
  return m ? m : "";
}

static void ctx_free(asc_ctx *c) {
  for (int d = 0; d < c->ndev && c->devs; d++) {
    if (!c->devs[d].streams)
      continue;
    asc_use_dev(c, d);
    for (int s = 0; s < c->nstreams; s++)
      if (c->devs[d].streams[s])
        c->api.DestroyStream(c->devs[d].streams[s]);
    free(c->devs[d].streams);
  }
  free(c->devs);
  if (c->acl_inited) {
    pthread_mutex_lock(&acl_users_lock);
    if (c->api.FinalizeReference)
      c->api.FinalizeReference(NULL);
    else if (acl_users == 1 && acl_owned)
      c->api.Finalize();
    if (--acl_users == 0)
      acl_owned = 0;
    pthread_mutex_unlock(&acl_users_lock);
  }
  acl_api_unload(&c->api);
  pthread_mutex_destroy(&c->reg_lock);
  free(c);
}

/* Finds the runtime and an NPU; MC_ENODEV after one line saying why. */
static int open_runtime(asc_ctx *c, const char *lib) {
  char why[512];
  if (acl_api_load(&c->api, lib, why, sizeof why)) {
    ASC_LOG(c, MC_LOG_WARN, "%s", why);
    return MC_ENODEV;
  }
  pthread_mutex_lock(&acl_users_lock);
  aclError e = c->api.Init(NULL);
  if (e == ACL_SUCCESS || e == ACL_ERROR_REPEAT_INITIALIZE) {
    if (acl_users++ == 0) {
      acl_owned = e == ACL_SUCCESS;
      acl_gen++;
    }
    c->acl_gen = acl_gen;
    c->acl_inited = 1;
  }
  pthread_mutex_unlock(&acl_users_lock);
  if (!c->acl_inited) {
    ASC_LOG(c, MC_LOG_WARN, "aclInit: aclError %d %s", e, recent(c));
    return MC_ENODEV;
  }
  uint32_t n = 0;
  e = c->api.GetDeviceCount(&n);
  if (e != ACL_SUCCESS || n == 0) {
    ASC_LOG(c, MC_LOG_WARN, "no NPU on this host: aclrtGetDeviceCount: "
            "aclError %d, %u devices %s", e, n, recent(c));
    return MC_ENODEV;
  }
  if (n > 1024)
    n = 1024;
  c->devs = calloc(n, sizeof *c->devs);
  if (!c->devs)
    return MC_ENOMEM;
  c->ndev = (int)n;
  for (int d = 0; d < c->ndev; d++) {
    asc_dev *dv = &c->devs[d];
    dv->ordinal = d;
    dv->streams = calloc((size_t)c->nstreams, sizeof *dv->streams);
    if (!dv->streams)
      return MC_ENOMEM;
    if ((e = asc_use_dev(c, d)) != ACL_SUCCESS) {
      ASC_LOG(c, MC_LOG_WARN, "aclrtSetDevice(%d): aclError %d %s", d, e,
              recent(c));
      return MC_ENODEV;
    }
    for (int s = 0; s < c->nstreams; s++)
      if ((e = c->api.CreateStream(&dv->streams[s])) != ACL_SUCCESS) {
        dv->streams[s] = NULL;
        ASC_LOG(c, MC_LOG_WARN, "aclrtCreateStream on NPU %d: aclError %d "
                "%s", d, e, recent(c));
        return MC_ENODEV;
      }
  }
  c->self.tgid = -1;
  if (acl_api_has_ipc(&c->api) && c->api.DeviceGetBareTgid(&c->self.tgid) != ACL_SUCCESS)
    c->self.tgid = -1;
  if (!acl_api_has_ipc(&c->api))
    ASC_LOG(c, MC_LOG_WARN, "the runtime has no aclrtIpcMem* calls: NPU memory of other "
            "processes is not reachable (MC_ENOTSUP)");
  return 0;
}

static int asc_init(const mc_host_api *host, const mc_init_args *args, void **out) {
  if (!MC_HOST_HAS(host, config_get_int) || !MC_HOST_HAS(host, config_get_bool)) {
    host->log(host->host, MC_LOG_ERROR, "host ABI %u.%u lacks the typed config getters of ABI "
              "1.1: this plugin needs a libmooncake as new as itself", host->abi_major,
              host->abi_minor);
    return MC_EABI;
  }
  asc_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  pthread_mutex_init(&c->reg_lock, NULL);
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
    rc = host->config_get_int(host->host, "poll_us", &c->poll_us);
  if (!rc)
    rc = host->config_get_bool(host->host, "pid_check", &c->pid_check);
  if (!rc && (streams < 1 || streams > ASC_MAX_STREAMS || inflight < 1 || inflight > 65536 ||
              c->poll_us < 0 || c->poll_us > 10000))
    rc = MC_EINVAL;
  if (rc) {
    ASC_LOG(c, MC_LOG_ERROR, "cannot read the ascend transport's keys: %s", mc_strerror(rc));
    ctx_free(c);
    return rc;
  }
  c->nstreams = (int)streams;
  c->max_inflight = (uint32_t)inflight;
  self_host_id(args, c->self.host_id);
  c->self.pid = (uint32_t)getpid();
  if ((rc = open_runtime(c, lib)) || (rc = asc_xfer_start(c))) {
    ctx_free(c);
    return rc;
  }
  ASC_LOG(c, MC_LOG_INFO, "ascend ready: %d NPUs, %d streams each, IPC %s", c->ndev, c->nstreams,
          acl_api_has_ipc(&c->api) ? "on" : "off");
  *out = c;
  return 0;
}

static void release_open(asc_ctx *c, asc_open *o) {
  if (--o->refs > 0)
    return;
  for (asc_open **pp = &c->opens; *pp; pp = &(*pp)->next)
    if (*pp == o) {
      *pp = o->next;
      break;
    }
  asc_use_dev(c, o->device);
  c->api.IpcMemClose(o->ipc_key);
  free(o);
}

static int asc_release_mem(void *ctx, void *rmv) {
  asc_ctx *c = ctx;
  asc_rmem *rm = rmv;
  if (!rm)
    return MC_EINVAL;
  for (asc_rmem **pp = &rm->ep->rmems; *pp; pp = &(*pp)->next)
    if (*pp == rm) {
      *pp = rm->next;
      break;
    }
  release_open(c, rm->open);
  free(rm);
  return 0;
}

static void ep_free(asc_ctx *c, asc_ep *ep) {
  asc_xfer_drain_ep(c, ep);
  while (ep->rmems)
    asc_release_mem(c, ep->rmems);
  free(ep);
}

static void lmem_free(asc_ctx *c, asc_lmem *m) {
  if (m->ipc_key[0]) {
    asc_use_dev(c, m->device);
    c->api.IpcMemClose(m->ipc_key);
  }
  free(m);
}

static int asc_fini(void *ctx) {
  asc_ctx *c = ctx;
  asc_xfer_stop(c);
  while (c->eps) {
    asc_ep *ep = c->eps;
    c->eps = ep->next;
    ep_free(c, ep);
  }
  while (c->lmems) {
    asc_lmem *m = c->lmems;
    c->lmems = m->next;
    lmem_free(c, m);
  }
  asc_xfer_free(c);
  ctx_free(c);
  return 0;
}

static int asc_query_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  asc_ctx *c = ctx;
  uint32_t cap = *n;
  *n = (uint32_t)c->ndev;
  if (cap < (uint32_t)c->ndev)
    return MC_ENOSPC;
  for (int d = 0; d < c->ndev; d++) {
    memset(&out[d], 0, sizeof out[d]);
    snprintf(out[d].name, sizeof out[d].name, "npu%d", d);
    out[d].numa_node = -1;
  }
  return 0;
}

static int asc_local_desc(void *ctx, void *buf, size_t *len) {
  asc_ctx *c = ctx;
  uint8_t tmp[ASC_DESC_MAX];
  size_t n = asc_desc_encode(&c->self, tmp, sizeof tmp);
  if (*len < n) {
    *len = n;
    return MC_ENOSPC;
  }
  memcpy(buf, tmp, n);
  *len = n;
  return 0;
}

/* aclrtPointerGetAttributes says where a pointer lives, not how large its
 * allocation is: the range cannot be checked here (README, "Limits"). */
static int asc_query_mem(void *ctx, uint64_t addr, uint64_t len, uint32_t *kind, int32_t *device) {
  asc_ctx *c = ctx;
  (void)len;
  if (!c->api.PointerGetAttributes)
    return MC_ENOENT;
  acl_ptr_attrs a;
  memset(&a, 0, sizeof a);
  if (c->api.PointerGetAttributes((const void *)(uintptr_t)addr, &a) != ACL_SUCCESS ||
      a.type != ACL_MEM_LOCATION_TYPE_DEVICE || a.id > INT32_MAX)
    return MC_ENOENT;
  *kind = MC_MEM_NPU;
  *device = (int32_t)a.id;
  return 0;
}

static int asc_register_mem(void *ctx, const mc_mem_desc *desc, void **mem, void *rkey,
                            size_t *rkey_len) {
  asc_ctx *c = ctx;
  if (desc->kind != MC_MEM_NPU && desc->kind != MC_MEM_CPU)
    return MC_ENOTSUP;
  if (*rkey_len < ASC_KEY_SIZE) {
    *rkey_len = ASC_KEY_SIZE;
    return MC_ENOSPC;
  }
  if (desc->kind == MC_MEM_NPU && (desc->device < 0 || desc->device >= c->ndev)) {
    ASC_LOG(c, MC_LOG_ERROR, "register 0x%llx: NPU %d is not one of this host's %d",
            (unsigned long long)desc->addr, desc->device, c->ndev);
    return MC_EINVAL;
  }
  asc_key k;
  memset(&k, 0, sizeof k);
  k.base = desc->addr;
  k.len = desc->len;
  asc_lmem *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  m->addr = desc->addr;
  m->len = desc->len;
  m->device = -1;
  if (desc->kind == MC_MEM_CPU) {
    k.kind = ASC_KEY_HOST; /* local side only: remote_mem_kinds has no CPU */
  } else if (!acl_api_has_ipc(&c->api)) {
    k.kind = ASC_KEY_NOIPC;
    k.device = desc->device;
    m->device = desc->device;
  } else {
    m->device = k.device = desc->device;
    aclError e = asc_use_dev(c, desc->device);
    if (e == ACL_SUCCESS)
      e = c->api.IpcMemGetExportKey((void *)(uintptr_t)desc->addr, desc->len, m->ipc_key,
                                    ASC_IPC_KEY_LEN,
                                    c->pid_check ? ACL_RT_IPC_MEM_EXPORT_FLAG_DEFAULT
                                                 : ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION);
    m->ipc_key[ASC_IPC_KEY_LEN - 1] = 0;
    if (e != ACL_SUCCESS || !m->ipc_key[0]) {
      ASC_LOG(c, MC_LOG_ERROR, "register 0x%llx+%llu: aclrtIpcMemGetExportKey: aclError %d %s",
              (unsigned long long)desc->addr, (unsigned long long)desc->len, e, recent(c));
      free(m);
      return MC_EIO;
    }
    k.kind = ASC_KEY_IPC;
    k.flags = c->pid_check ? ASC_KEY_F_PID : 0;
    memcpy(k.ipc_key, m->ipc_key, ASC_IPC_KEY_LEN);
  }
  *rkey_len = asc_key_encode(&k, rkey, *rkey_len);
  pthread_mutex_lock(&c->reg_lock);
  m->next = c->lmems;
  c->lmems = m;
  pthread_mutex_unlock(&c->reg_lock);
  *mem = m;
  return 0;
}

static int asc_deregister_mem(void *ctx, void *mv) {
  asc_ctx *c = ctx;
  pthread_mutex_lock(&c->reg_lock);
  for (asc_lmem **pp = &c->lmems; *pp; pp = &(*pp)->next)
    if (*pp == mv) {
      *pp = ((asc_lmem *)mv)->next;
      pthread_mutex_unlock(&c->reg_lock);
      lmem_free(c, mv);
      return 0;
    }
  pthread_mutex_unlock(&c->reg_lock);
  return MC_EINVAL;
}

static int asc_connect(void *ctx, const char *peer, const void *desc, size_t len, void **out) {
  asc_ctx *c = ctx;
  asc_desc d;
  const char *why = NULL;
  if (asc_desc_decode(desc, len, &d, &why)) {
    ASC_LOG(c, MC_LOG_WARN, "connect %s: %s", peer ? peer : "?", why);
    return MC_EPROTO;
  }
  if (!c->self.host_id[0] || strcmp(d.host_id, c->self.host_id)) {
    ASC_LOG(c, MC_LOG_DEBUG, "connect %s: on another host (ACL IPC is same-host only)",
            peer ? peer : "?");
    return MC_EPEER;
  }
  asc_ep *ep = calloc(1, sizeof *ep);
  if (!ep)
    return MC_ENOMEM;
  ep->peer = d;
  snprintf(ep->name, sizeof ep->name, "%s", peer ? peer : "");
  ep->next = c->eps;
  c->eps = ep;
  *out = ep;
  return 0;
}

static int asc_disconnect(void *ctx, void *epv) {
  asc_ctx *c = ctx;
  for (asc_ep **pp = &c->eps; *pp; pp = &(*pp)->next)
    if (*pp == epv) {
      *pp = ((asc_ep *)epv)->next;
      ep_free(c, epv);
      return 0;
    }
  return MC_EINVAL;
}

/* Asks the exporter to whitelist this process for key (pid_check). */
static int ask_allow(asc_ctx *c, asc_ep *ep, const char *key) {
  if (!MC_HOST_HAS(c->host, ctrl_call) || c->self.tgid <= 0) {
    ASC_LOG(c, MC_LOG_WARN, "import from %s: its memory is pid-checked and %s", ep->name,
            c->self.tgid <= 0 ? "aclrtDeviceGetBareTgid gave no id" : "the core has no ctrl_call");
    return MC_ENOTSUP;
  }
  asc_allow a;
  memset(&a, 0, sizeof a);
  a.tgid = c->self.tgid;
  snprintf(a.ipc_key, sizeof a.ipc_key, "%s", key);
  uint8_t req[ASC_ALLOW_SIZE], resp[16];
  size_t rl = sizeof resp;
  asc_allow_encode(&a, req, sizeof req);
  int rc = c->host->ctrl_call(c->host->host, ep->name, req, sizeof req, resp, &rl, 0);
  if (rc)
    ASC_LOG(c, MC_LOG_WARN, "import from %s: the exporter refused to whitelist us: %s", ep->name,
            mc_strerror(rc));
  return rc;
}

static int asc_import_mem(void *ctx, void *epv, uint64_t base, uint64_t len, const void *rkey,
                          size_t rkey_len, void **out) {
  asc_ctx *c = ctx;
  asc_ep *ep = epv;
  asc_key k;
  const char *why = NULL;
  if (!ep)
    return MC_EINVAL;
  if (asc_key_decode(rkey, rkey_len, &k, &why)) {
    ASC_LOG(c, MC_LOG_WARN, "import from %s: %s", ep->name, why);
    return MC_EPROTO;
  }
  if (k.kind != ASC_KEY_IPC || !acl_api_has_ipc(&c->api))
    return MC_ENOTSUP; /* host memory, or a runtime without IPC on either side */
  if (len == 0 || base < k.base || len > k.len || base - k.base > k.len - len)
    return MC_ERANGE;
  if (ep->peer.pid == c->self.pid)
    return MC_ENOTSUP; /* our own export: not served over IPC */
  asc_open *o = c->opens;
  while (o && (o->pid != ep->peer.pid || strcmp(o->ipc_key, k.ipc_key)))
    o = o->next;
  asc_rmem *rm = calloc(1, sizeof *rm);
  if (!rm)
    return MC_ENOMEM;
  if (!o) {
    int rc = 0;
    if ((k.flags & ASC_KEY_F_PID) && (rc = ask_allow(c, ep, k.ipc_key))) {
      free(rm);
      return rc;
    }
    o = calloc(1, sizeof *o);
    if (!o) {
      free(rm);
      return MC_ENOMEM;
    }
    o->pid = ep->peer.pid;
    memcpy(o->ipc_key, k.ipc_key, ASC_IPC_KEY_LEN);
    o->device = k.device < c->ndev ? k.device : 0;
    void *p = NULL;
    aclError e = asc_use_dev(c, o->device);
    if (e == ACL_SUCCESS)
      e = c->api.IpcMemImportByKey(&p, o->ipc_key, ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS);
    if (e != ACL_SUCCESS || !p) {
      ASC_LOG(c, MC_LOG_WARN, "import from %s: aclrtIpcMemImportByKey: aclError %d %s", ep->name,
              e, recent(c));
      free(o);
      free(rm);
      return MC_EIO;
    }
    o->ptr = p;
    o->next = c->opens;
    c->opens = o;
  }
  o->refs++;
  rm->ep = ep;
  rm->open = o;
  rm->base = base;
  rm->len = len;
  rm->device = o->device;
  rm->ptr = o->ptr + (base - k.base);
  rm->next = ep->rmems;
  ep->rmems = rm;
  *out = rm;
  return 0;
}

/* Exporter side of ask_allow: whitelists the asking process for one of
 * our live exports, never for anything else. */
static int asc_ctrl_handle(void *ctx, const char *peer, const void *req, size_t req_len,
                           void *resp, size_t *resp_len) {
  asc_ctx *c = ctx;
  asc_allow a;
  const char *why = NULL;
  (void)resp;
  *resp_len = 0;
  if (asc_allow_decode(req, req_len, &a, &why)) {
    ASC_LOG(c, MC_LOG_WARN, "control request from %s: %s", peer ? peer : "?", why);
    return MC_EPROTO;
  }
  int rc = MC_ENOENT;
  pthread_mutex_lock(&c->reg_lock);
  for (asc_lmem *m = c->lmems; m; m = m->next) {
    if (!m->ipc_key[0] || strcmp(m->ipc_key, a.ipc_key))
      continue;
    aclError e = asc_use_dev(c, m->device);
    if (e == ACL_SUCCESS)
      e = c->api.IpcMemSetImportPid(m->ipc_key, &a.tgid, 1);
    rc = e == ACL_SUCCESS ? 0 : MC_EIO;
    if (rc)
      ASC_LOG(c, MC_LOG_WARN, "aclrtIpcMemSetImportPid for %s: aclError %d %s", peer ? peer : "?",
              e, recent(c));
    break;
  }
  pthread_mutex_unlock(&c->reg_lock);
  return rc;
}

static const char *asc_vendor_strerror(void *ctx, int32_t err) {
  (void)ctx;
  (void)err;
  return "ACL runtime error (aclError code)";
}

static const mc_transport_ops asc_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "ascend",
    .version = "1.0",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE | MC_CAP_MT_SUBMIT |
            MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_NPU | MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_NPU,
    .params = asc_params,
    .init = asc_init,
    .fini = asc_fini,
    .query_rails = asc_query_rails,
    .local_desc = asc_local_desc,
    .register_mem = asc_register_mem,
    .deregister_mem = asc_deregister_mem,
    .connect = asc_connect,
    .disconnect = asc_disconnect,
    .import_mem = asc_import_mem,
    .release_mem = asc_release_mem,
    .submit = asc_submit,
    .progress = NULL,
    .vendor_strerror = asc_vendor_strerror,
    .slice_size = 4u << 20,
    .param_info_size = sizeof(mc_param_info),
    .ctrl_handle = asc_ctrl_handle,
    .query_mem = asc_query_mem,
};

const mc_transport_ops *mc_transport_plugin_v1(void) { return &asc_ops; }
