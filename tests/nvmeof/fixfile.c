/* mc-transport-fixfile: a test fixture standing in for the transport that
 * serves MC_MEM_FILE buffers to hosts that cannot reach the file (the tcp
 * plugin, served by the target).  It carries requests for file buffers
 * with plain pread/pwrite on the path in its key, inside submit(), so a
 * test can see the core hand a request over to it when nvmeof's import_mem
 * refuses (MC_ENODEV).  Ranked below nvmeof (an out-of-tree name). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mooncake/transport.h"

typedef struct fx_ctx {
  const mc_host_api *host;
} fx_ctx;

typedef struct fx_key {
  uint64_t addr, len, file_offset;
  char path[MC_RKEY_MAX - 24];
} fx_key;

typedef struct fx_imp {
  int fd;
  uint64_t base, len, file_offset;
} fx_imp;

static int fx_init(const mc_host_api *host, const mc_init_args *args, void **ctx) {
  (void)args;
  fx_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  *ctx = c;
  return 0;
}

static int fx_fini(void *ctx) {
  free(ctx);
  return 0;
}

static int fx_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  (void)ctx;
  if (*n < 1 || !out) {
    *n = 1;
    return MC_ENOSPC;
  }
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "fix0");
  out->numa_node = -1;
  *n = 1;
  return 0;
}

static int fx_desc(void *ctx, void *buf, size_t *len) {
  (void)ctx;
  if (*len < 4 || !buf) {
    *len = 4;
    return MC_ENOSPC;
  }
  memcpy(buf, "FIX1", 4);
  *len = 4;
  return 0;
}

static int fx_register(void *ctx, const mc_mem_desc *d, void **mem, void *rkey,
                       size_t *rkey_len) {
  (void)ctx;
  fx_key k;
  memset(&k, 0, sizeof k);
  if (d->kind == MC_MEM_FILE) {
    if (strlen(d->path) >= sizeof k.path)
      return MC_EINVAL;
    snprintf(k.path, sizeof k.path, "%s", d->path);
    k.file_offset = d->file_offset;
  }
  k.addr = d->addr;
  k.len = d->len;
  if (*rkey_len < sizeof k || !rkey) {
    *rkey_len = sizeof k;
    return MC_ENOSPC;
  }
  memcpy(rkey, &k, sizeof k);
  *rkey_len = sizeof k;
  *mem = malloc(1);
  return *mem ? 0 : MC_ENOMEM;
}

static int fx_deregister(void *ctx, void *mem) {
  (void)ctx;
  free(mem);
  return 0;
}

static int fx_connect(void *ctx, const char *peer, const void *desc, size_t len, void **ep) {
  (void)ctx;
  (void)peer;
  if (len != 4 || memcmp(desc, "FIX1", 4))
    return MC_EPROTO;
  *ep = malloc(1);
  return *ep ? 0 : MC_ENOMEM;
}

static int fx_disconnect(void *ctx, void *ep) {
  (void)ctx;
  free(ep);
  return 0;
}

static int fx_import(void *ctx, void *ep, uint64_t base, uint64_t len, const void *rkey,
                     size_t rkey_len, void **rmem) {
  (void)ctx;
  (void)ep;
  fx_key k;
  if (rkey_len != sizeof k)
    return MC_EPROTO;
  memcpy(&k, rkey, sizeof k);
  k.path[sizeof k.path - 1] = '\0';
  if (!k.path[0])
    return MC_ENOTSUP;
  if (base < k.addr || base - k.addr + len > k.len)
    return MC_ERANGE;
  fx_imp *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  m->fd = open(k.path, O_RDWR | O_CLOEXEC);
  if (m->fd < 0)
    m->fd = open(k.path, O_RDONLY | O_CLOEXEC);
  if (m->fd < 0) {
    free(m);
    return MC_ENOENT;
  }
  m->base = base;
  m->len = len;
  m->file_offset = k.file_offset + (base - k.addr);
  *rmem = m;
  return 0;
}

static int fx_release(void *ctx, void *rmem) {
  (void)ctx;
  fx_imp *m = rmem;
  close(m->fd);
  free(m);
  return 0;
}

static int fx_submit(void *ctx, void *ep, const mc_slice *s, uint32_t n, uint32_t *accepted) {
  fx_ctx *c = ctx;
  (void)ep;
  for (uint32_t i = 0; i < n; i++) {
    fx_imp *m = s[i].remote_mem;
    uint64_t off = m->file_offset + (s[i].remote_addr - m->base);
    void *p = (void *)(uintptr_t)s[i].local_addr;
    ssize_t r = s[i].op == MC_OP_READ ? pread(m->fd, p, s[i].len, (off_t)off)
                                      : pwrite(m->fd, p, s[i].len, (off_t)off);
    int st = r == (ssize_t)s[i].len ? 0 : r < 0 && errno == EBADF ? MC_EACCES : MC_EIO;
    c->host->complete(c->host->host, s[i].token, st, st ? 0 : s[i].len, 0);
  }
  *accepted = n;
  return 0;
}

static const char *fx_strerror(void *ctx, int32_t e) {
  (void)ctx;
  (void)e;
  return "none";
}

static const mc_transport_ops fx_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "fixfile",
    .version = "0.0.1",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE | MC_CAP_INTER_NODE |
            MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_FILE,
    .param_info_size = sizeof(mc_param_info),
    .init = fx_init,
    .fini = fx_fini,
    .query_rails = fx_rails,
    .local_desc = fx_desc,
    .register_mem = fx_register,
    .deregister_mem = fx_deregister,
    .connect = fx_connect,
    .disconnect = fx_disconnect,
    .import_mem = fx_import,
    .release_mem = fx_release,
    .submit = fx_submit,
    .vendor_strerror = fx_strerror,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) { return &fx_ops; }
