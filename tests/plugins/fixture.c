/* Test plugins for the loader, each broken in exactly one way (selected by
 * one FIX_* macro), plus `failinit`, whose table is valid but whose init()
 * refuses the host the way a plugin without its device must: one log line
 * through the host, then MC_ENODEV.  Members other than init are never
 * called by the tests; they return MC_ENOTSUP so that the table is
 * otherwise complete and only the intended defect trips the loader. */
#include "mooncake/transport.h"

#ifndef FIX_NAME
#error "FIX_NAME must name the plugin file (mc-transport-<FIX_NAME>.so)"
#endif

static int fx_init(const mc_host_api *host, const mc_init_args *args,
                   void **ctx) {
#ifdef FIX_FAILINIT
  host->log(host->host, MC_LOG_WARN,
            "no test device on this host (by design)");
  return MC_ENODEV;
#else
  return MC_ENOTSUP;
#endif
}

static int fx_fini(void *ctx) { return 0; }
static int fx_query_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  return MC_ENOTSUP;
}
static int fx_local_desc(void *ctx, void *buf, size_t *len) {
  return MC_ENOTSUP;
}
static int fx_register_mem(void *ctx, const mc_mem_desc *d, void **mem,
                           void *rkey, size_t *len) {
  return MC_ENOTSUP;
}
static int fx_release(void *ctx, void *handle) { return MC_ENOTSUP; }
static int fx_connect(void *ctx, const char *peer, const void *desc,
                      size_t len, void **ep) {
  return MC_ENOTSUP;
}
static int fx_import_mem(void *ctx, void *ep, uint64_t base, uint64_t len,
                         const void *rkey, size_t rkey_len, void **rmem) {
  return MC_ENOTSUP;
}
#if !defined(FIX_NOSUBMIT)
static int fx_submit(void *ctx, void *ep, const mc_slice *s, uint32_t n,
                     uint32_t *accepted) {
  *accepted = 0;
  return MC_ENOTSUP;
}
#endif
static int fx_progress(void *ctx, uint32_t budget) { return 0; }

#if defined(FIX_BADABI)
#define FIX_MAJOR 99u
#else
#define FIX_MAJOR MC_TRANSPORT_ABI_MAJOR
#endif
#if defined(FIX_SMALL)
#define FIX_SIZE 40u /* a table cut after its first members */
#else
#define FIX_SIZE ((uint32_t)sizeof(mc_transport_ops))
#endif
#if defined(FIX_MISNAME)
#define FIX_TABLE_NAME "other"
#else
#define FIX_TABLE_NAME FIX_NAME
#endif

static const mc_transport_ops fx_ops = {
    .abi_major = FIX_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = FIX_SIZE,
    .name = FIX_TABLE_NAME,
    .version = "0.0.1-test",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_CPU,
    .init = fx_init,
    .fini = fx_fini,
    .query_rails = fx_query_rails,
    .local_desc = fx_local_desc,
    .register_mem = fx_register_mem,
    .deregister_mem = fx_release,
    .connect = fx_connect,
    .disconnect = fx_release,
    .import_mem = fx_import_mem,
    .release_mem = fx_release,
#if !defined(FIX_NOSUBMIT)
    .submit = fx_submit,
#endif
    .progress = fx_progress,
};

#if defined(FIX_NOSYM)
/* A plausible mistake: an entry point under a name no core looks up. */
MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v0(void);
const mc_transport_ops *mc_transport_plugin_v0(void) { return &fx_ops; }
#else
MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void);
const mc_transport_ops *mc_transport_plugin_v1(void) { return &fx_ops; }
#endif
