/* nvme_plugin.c - entry point and ops table of the nvmeof transport.
 *
 * Moves data between host memory and file or block-device ranges that
 * engines registered with mc_register_file (MC_MEM_FILE): on the same
 * host by path, on other hosts through the NVMe-oF namespace they
 * connected (nvme connect) to the same subsystem.  Data path: io_uring
 * (nvme_ring.c).  Registrations and imports: nvme_file.c.  Blobs:
 * nvme_key.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvme.h"

#define NV_VERSION "1.0.0"

static const mc_param_info nv_params[] = {
    {MC_PARAM_INT, "queue_depth", "64", "slices in flight per rail (io_uring entries)", 1,
     4096},
    {MC_PARAM_BOOL, "direct", "true",
     "open files with O_DIRECT where the file system takes it (else buffered)", 0, 0},
    {MC_PARAM_SIZE, "direct_align", "0",
     "O_DIRECT alignment in bytes, 0 = ask the file system (statx), else a power of two",
     0, 1 << 20},
    {MC_PARAM_BOOL, "fixed_buffers", "true",
     "register local host memory with io_uring (pinned; falls back when refused)", 0, 0},
    {MC_PARAM_INT, "fixed_files", "256", "registered-file slots per rail, 0 = none", 0,
     65536},
    {MC_PARAM_BOOL, "local_paths", "true",
     "open a same-host peer's files by path (false: only through NVMe-oF namespaces)", 0,
     0},
    {MC_PARAM_STRING, "sysfs_root", "/sys",
     "where sysfs is mounted (block devices, NVMe subsystems)", 0, 0},
    {MC_PARAM_STRING, "dev_root", "/dev", "where the nvmeXnY device nodes are", 0, 0},
    {MC_PARAM_STRING, "cufile_library", "libcufile.so",
     "cuFile (GPUDirect Storage) library for GPU memory; absent: GPU memory MC_ENOTSUP", 0,
     0},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

static void get_str(const mc_host_api *h, const char *key, const char *def, char *out,
                    size_t n) {
  const char *v = NULL;
  if (h->config_get(h->host, key, &v) || !v)
    v = def;
  /* YAML text: a quoted empty string reads as the default. */
  if (!*v || !strcmp(v, "\"\""))
    v = def;
  snprintf(out, n, "%s", v);
}

static int nv_fini(void *ctx);
struct nv_ep;
static void ep_unlink(nv_ctx *c, struct nv_ep *e);

static int nv_init(const mc_host_api *host, const mc_init_args *args, void **out) {
  if (!host || !args || !out)
    return MC_EINVAL;
  nv_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  pthread_mutex_init(&c->lock, NULL);
  snprintf(c->host_id, sizeof c->host_id, "%s", args->host_id ? args->host_id : "");
  c->host_hash = nv_fnv64(c->host_id, strlen(c->host_id));
  c->depth = 64;
  c->nfiles = 256;
  c->direct = c->fixed_bufs = c->local_paths = 1;
  if (MC_HOST_HAS(host, config_get_int)) {
    host->config_get_int(host->host, "queue_depth", &c->depth);
    host->config_get_int(host->host, "fixed_files", &c->nfiles);
    host->config_get_bool(host->host, "direct", &c->direct);
    host->config_get_bool(host->host, "fixed_buffers", &c->fixed_bufs);
    host->config_get_bool(host->host, "local_paths", &c->local_paths);
    host->config_get_size(host->host, "direct_align", &c->align_override);
  }
  if (c->depth < 1 || c->depth > 4096)
    c->depth = 64;
  if (c->nfiles < 0 || c->nfiles > 65536)
    c->nfiles = 256;
  if (c->align_override & (c->align_override - 1)) {
    host->log(host->host, MC_LOG_ERROR, "direct_align %" PRIu64 " is not a power of two",
              c->align_override);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return MC_EINVAL;
  }
  get_str(host, "sysfs_root", "/sys", c->sysroot, sizeof c->sysroot);
  get_str(host, "dev_root", "/dev", c->devroot, sizeof c->devroot);
  char cufile[256];
  get_str(host, "cufile_library", "libcufile.so", cufile, sizeof cufile);
  int rc = nv_rails_start(c);
  if (rc) {
    nv_fini(c);
    return rc;
  }
  /* GPU memory goes through cuFile when it loads; else MC_ENOTSUP. */
  nv_gds_start(c, cufile);
  NV_LOG(c, MC_LOG_DEBUG, "%d rail(s), queue depth %" PRId64 ", %s; %s %s", c->nrails,
         c->depth, c->fixed_bufs ? "registered buffers" : "plain buffers", cufile,
         c->gds ? "loaded (GPU memory through GDS)" : "absent (GPU memory MC_ENOTSUP)");
  *out = c;
  return 0;
}

static int nv_fini(void *ctx) {
  nv_ctx *c = ctx;
  if (!c)
    return MC_EINVAL;
  atomic_store(&c->stopping, 1);
  nv_gds_stop(c);
  nv_rails_stop(c);
  while (c->imps)
    nv_release(c, c->imps);
  while (c->lmems)
    nv_deregister(c, c->lmems);
  while (c->eps) {
    struct nv_ep *e = c->eps;
    ep_unlink(c, e);
    free(e);
  }
  pthread_mutex_destroy(&c->lock);
  free(c);
  return 0;
}

static int nv_query_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  nv_ctx *c = ctx;
  if (!n)
    return MC_EINVAL;
  if (*n < (uint32_t)c->nrails || !out) {
    *n = (uint32_t)c->nrails;
    return MC_ENOSPC;
  }
  for (int i = 0; i < c->nrails; i++) {
    memset(&out[i], 0, sizeof out[i]);
    snprintf(out[i].name, sizeof out[i].name, "%s", c->rails[i].name);
    out[i].numa_node = -1;
  }
  *n = (uint32_t)c->nrails;
  return 0;
}

static int nv_local_desc(void *ctx, void *buf, size_t *len) {
  nv_ctx *c = ctx;
  if (!len)
    return MC_EINVAL;
  if (*len < NV_DESC_LEN || !buf) {
    *len = NV_DESC_LEN;
    return MC_ENOSPC;
  }
  nv_desc_encode(c->host_hash, buf);
  *len = NV_DESC_LEN;
  return 0;
}

/* An endpoint only records the peer's host: files are reached per import. */
typedef struct nv_ep {
  struct nv_ep *next, *prev;
  uint64_t host_hash;
} nv_ep;

static void ep_unlink(nv_ctx *c, nv_ep *e) {
  pthread_mutex_lock(&c->lock);
  if (e->prev)
    e->prev->next = e->next;
  else
    c->eps = e->next;
  if (e->next)
    e->next->prev = e->prev;
  pthread_mutex_unlock(&c->lock);
}

static int nv_connect(void *ctx, const char *peer, const void *desc, size_t len, void **ep) {
  (void)peer;
  uint64_t h;
  if (!ep || nv_desc_decode(desc, len, &h))
    return MC_EPROTO;
  nv_ctx *c = ctx;
  nv_ep *e = calloc(1, sizeof *e);
  if (!e)
    return MC_ENOMEM;
  e->host_hash = h;
  pthread_mutex_lock(&c->lock);
  e->next = c->eps;
  if (c->eps)
    c->eps->prev = e;
  c->eps = e;
  pthread_mutex_unlock(&c->lock);
  *ep = e;
  return 0;
}

static int nv_disconnect(void *ctx, void *ep) {
  if (!ep)
    return MC_EINVAL;
  ep_unlink(ctx, ep);
  free(ep);
  return 0;
}

static int nv_register_mem(void *ctx, const mc_mem_desc *d, void **mem, void *rkey,
                           size_t *rkey_len) {
  return nv_register(ctx, d, mem, rkey, rkey_len);
}

static int nv_deregister_mem(void *ctx, void *mem) { return nv_deregister(ctx, mem); }

static int nv_import_mem(void *ctx, void *ep, uint64_t base, uint64_t len, const void *rkey,
                         size_t rkey_len, void **rmem) {
  if (!ep || !rmem)
    return MC_EINVAL;
  return nv_import(ctx, base, len, rkey, rkey_len, rmem);
}

static int nv_release_mem(void *ctx, void *rmem) { return nv_release(ctx, rmem); }

static int nv_submit_ops(void *ctx, void *ep, const mc_slice *s, uint32_t n,
                         uint32_t *accepted) {
  if (!ep || !accepted || (n && !s))
    return MC_EINVAL;
  return nv_submit(ctx, s, n, accepted);
}

static const char *nv_vendor_strerror(void *ctx, int32_t e) {
  (void)ctx;
  (void)e;
  return "no vendor codes";
}

static const mc_transport_ops nv_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "nvmeof",
    .version = NV_VERSION,
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE | MC_CAP_INTER_NODE |
            MC_CAP_MT_SUBMIT | MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU | MC_MEM_CUDA, /* CUDA: with cuFile only */
    .remote_mem_kinds = MC_MEM_FILE,
    .params = nv_params,
    .param_info_size = sizeof(mc_param_info),
    .init = nv_init,
    .fini = nv_fini,
    .query_rails = nv_query_rails,
    .local_desc = nv_local_desc,
    .register_mem = nv_register_mem,
    .deregister_mem = nv_deregister_mem,
    .connect = nv_connect,
    .disconnect = nv_disconnect,
    .import_mem = nv_import_mem,
    .release_mem = nv_release_mem,
    .submit = nv_submit_ops,
    .progress = NULL,
    .vendor_strerror = nv_vendor_strerror,
    /* fio-like 1 MiB requests: one SQE each, queue_depth of them in flight */
    .slice_size = 1u << 20,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) { return &nv_ops; }
