/* mc-transport-oot: a complete, minimal transport plugin built out of tree.
 *
 * It moves bytes with memcpy between engines that live in the same process,
 * which makes it useless in production and ideal as a template: every member
 * of the ABI a real transport needs is here, with the checks a real one must
 * make, and nothing else.  Build it against an installed mooncake with
 *
 *   cc $(pkg-config --cflags mooncake-transport) -std=c11 -shared -fPIC \
 *      -fvisibility=hidden -Wl,--no-undefined -Wl,--version-script=oot.map \
 *      -o mc-transport-oot.so oot_transport.c
 *
 * (see the Makefile beside this file).  The plugin includes only
 * <mooncake/transport.h> and links nothing from mooncake.
 *
 * Trust model.  Descriptors and remote keys travel through the metadata
 * service, so they are parsed as untrusted input: exact sizes, magic,
 * version, NUL-terminated strings, overflow-safe bounds.  An endpoint is only
 * made to a peer that says it lives in this very process (same host id and
 * pid); a remote key is only imported through the endpoint of the context
 * that issued it (same context id and random secret), and only for a range
 * inside the buffer it describes.  Because the peer shares our address space
 * the plugin cannot revoke a key after deregistration; it relies on the core
 * not to submit to buffers the peer has withdrawn.  Real transports enforce
 * that in the NIC (rkeys) or the kernel (process_vm_*, memfd seals).
 *
 * Threads.  Every slice is completed inside submit(), so the plugin has no
 * threads and no progress() (MC_CAP_OWN_THREADS), and submit() only reads
 * handles, so concurrent submits are fine (MC_CAP_MT_SUBMIT).  Control calls
 * are serialized per context by the core, so the handle list needs no lock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getpid, getrandom */
#endif

#include <mooncake/transport.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define OOT_VERSION "1.0.0"
#define OOT_DESC_MAGIC 0x4f4f5444u /* "OOTD" */
#define OOT_RKEY_MAGIC 0x4f4f544bu /* "OOTK" */
#define OOT_BLOB_VERSION 1u
#define OOT_HOST_ID_MAX 64

/* Endpoint descriptor (local_desc -> connect).  Fixed layout, no padding;
 * native byte order is fine because only this process can use it. */
typedef struct oot_desc {
  uint32_t magic, version;
  uint64_t pid;
  uint64_t ctx_id, secret;
  char host_id[OOT_HOST_ID_MAX]; /* NUL-terminated */
} oot_desc;

/* Remote key (register_mem -> import_mem): who issued it, and the buffer. */
typedef struct oot_rkey {
  uint32_t magic, version;
  uint64_t ctx_id, secret;
  uint64_t addr, len;
} oot_rkey;

/* Every handle given to the core is an oot_obj, linked into its context so
 * fini() can free what the core did not release. */
enum oot_kind { OOT_MEM = 1, OOT_EP, OOT_RMEM };

typedef struct oot_obj {
  struct oot_obj *prev, *next;
  int kind;
  uint64_t addr, len;             /* MEM: registered range; RMEM: imported */
  uint64_t peer_id, peer_secret;  /* EP: the context it reaches */
} oot_obj;

typedef struct oot_ctx {
  const mc_host_api *host;
  uint64_t id, secret;
  char host_id[OOT_HOST_ID_MAX];
  char rail[MC_RAIL_NAME_MAX];
  oot_obj objs; /* list head */
} oot_ctx;

#define LOG(c, lvl, ...) (c)->host->log((c)->host->host, (lvl), __VA_ARGS__)

static const mc_param_info oot_params[] = {
    {MC_PARAM_STRING, "rail_name", "memcpy0", "name of the single rail"},
    {MC_PARAM_END, NULL, NULL, NULL},
};

/* ---- handle bookkeeping ---- */

static oot_obj *obj_new(oot_ctx *c, int kind) {
  oot_obj *o = calloc(1, sizeof *o);
  if (!o)
    return NULL;
  o->kind = kind;
  o->next = c->objs.next;
  o->prev = &c->objs;
  c->objs.next->prev = o;
  c->objs.next = o;
  return o;
}

/* Unlinks and frees a handle the core passes back, if it has that kind. */
static int obj_free(void *handle, int kind) {
  oot_obj *o = handle;
  if (!o || o->kind != kind)
    return MC_EINVAL;
  o->prev->next = o->next;
  o->next->prev = o->prev;
  o->kind = 0;
  free(o);
  return 0;
}

/* [addr, addr+len) inside o's range, without overflow. */
static int in_range(const oot_obj *o, uint64_t addr, uint64_t len) {
  return addr >= o->addr && len <= o->len && addr - o->addr <= o->len - len;
}

/* ---- lifecycle ---- */

static int oot_init(const mc_host_api *host, const mc_init_args *args,
                    void **out) {
  oot_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  c->objs.next = c->objs.prev = &c->objs;
  if (getrandom(&c->secret, sizeof c->secret, 0) != sizeof c->secret) {
    LOG(c, MC_LOG_ERROR, "getrandom failed; no secret for remote keys");
    free(c);
    return MC_EIO;
  }
  /* The context's address is unique among live contexts of this process. */
  c->id = (uint64_t)(uintptr_t)c;
  const char *hid = args && args->host_id ? args->host_id : "";
  strncpy(c->host_id, hid, sizeof c->host_id - 1);
  const char *rail = "memcpy0";
  if (host->config_get)
    (void)host->config_get(host->host, "rail_name", &rail);
  strncpy(c->rail, rail, sizeof c->rail - 1);
  *out = c;
  return 0;
}

static int oot_fini(void *ctx) {
  oot_ctx *c = ctx;
  /* Nothing is ever pending (submit completes synchronously), so fini only
   * frees the handles the core did not release. */
  while (c->objs.next != &c->objs)
    obj_free(c->objs.next, c->objs.next->kind);
  free(c);
  return 0;
}

static int oot_query_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  oot_ctx *c = ctx;
  if (*n < 1) {
    *n = 1;
    return MC_ENOSPC;
  }
  memset(&out[0], 0, sizeof out[0]);
  memcpy(out[0].name, c->rail, sizeof out[0].name);
  out[0].numa_node = -1;
  *n = 1;
  return 0;
}

static int oot_local_desc(void *ctx, void *buf, size_t *len) {
  oot_ctx *c = ctx;
  if (*len < sizeof(oot_desc)) {
    *len = sizeof(oot_desc);
    return MC_ENOSPC;
  }
  oot_desc d;
  memset(&d, 0, sizeof d);
  d.magic = OOT_DESC_MAGIC;
  d.version = OOT_BLOB_VERSION;
  d.pid = (uint64_t)getpid();
  d.ctx_id = c->id;
  d.secret = c->secret;
  memcpy(d.host_id, c->host_id, sizeof d.host_id);
  memcpy(buf, &d, sizeof d);
  *len = sizeof d;
  return 0;
}

/* ---- memory ---- */

static int oot_register_mem(void *ctx, const mc_mem_desc *desc, void **mem,
                            void *rkey, size_t *rkey_len) {
  oot_ctx *c = ctx;
  if (desc->kind != MC_MEM_CPU)
    return MC_ENOTSUP;
  if (*rkey_len < sizeof(oot_rkey)) {
    *rkey_len = sizeof(oot_rkey);
    return MC_ENOSPC;
  }
  oot_obj *o = obj_new(c, OOT_MEM);
  if (!o)
    return MC_ENOMEM;
  o->addr = desc->addr;
  o->len = desc->len;
  oot_rkey k = {OOT_RKEY_MAGIC, OOT_BLOB_VERSION, c->id, c->secret,
                desc->addr, desc->len};
  memcpy(rkey, &k, sizeof k);
  *rkey_len = sizeof k;
  *mem = o;
  return 0;
}

static int oot_deregister_mem(void *ctx, void *mem) {
  return obj_free(mem, OOT_MEM);
}

static int oot_connect(void *ctx, const char *peer, const void *desc,
                       size_t len, void **ep) {
  oot_ctx *c = ctx;
  oot_desc d;
  if (len != sizeof d) {
    LOG(c, MC_LOG_WARN, "descriptor of %s has %zu bytes, expected %zu",
        peer, len, sizeof d);
    return MC_EPROTO;
  }
  memcpy(&d, desc, sizeof d);
  if (d.magic != OOT_DESC_MAGIC || d.version != OOT_BLOB_VERSION ||
      memchr(d.host_id, '\0', sizeof d.host_id) == NULL) {
    LOG(c, MC_LOG_WARN, "malformed descriptor from %s", peer);
    return MC_EPROTO;
  }
  if (d.pid != (uint64_t)getpid() || strcmp(d.host_id, c->host_id) != 0) {
    LOG(c, MC_LOG_WARN,
        "%s is process %llu on host '%s'; this transport only reaches "
        "engines of process %llu on host '%s'",
        peer, (unsigned long long)d.pid, d.host_id,
        (unsigned long long)getpid(), c->host_id);
    return MC_EPEER;
  }
  oot_obj *o = obj_new(c, OOT_EP);
  if (!o)
    return MC_ENOMEM;
  o->peer_id = d.ctx_id;
  o->peer_secret = d.secret;
  *ep = o;
  return 0;
}

static int oot_disconnect(void *ctx, void *ep) {
  return obj_free(ep, OOT_EP);
}

static int oot_import_mem(void *ctx, void *ep, uint64_t base, uint64_t len,
                          const void *rkey, size_t rkey_len, void **rmem) {
  oot_ctx *c = ctx;
  const oot_obj *e = ep;
  oot_rkey k;
  if (!e || e->kind != OOT_EP)
    return MC_EINVAL;
  if (rkey_len != sizeof k)
    return MC_EPROTO;
  memcpy(&k, rkey, sizeof k);
  if (k.magic != OOT_RKEY_MAGIC || k.version != OOT_BLOB_VERSION)
    return MC_EPROTO;
  if (k.ctx_id != e->peer_id || k.secret != e->peer_secret) {
    LOG(c, MC_LOG_WARN, "remote key for [0x%llx, +%llu) was not issued "
        "by the endpoint's peer", (unsigned long long)base,
        (unsigned long long)len);
    return MC_EACCES;
  }
  oot_obj want = {.addr = k.addr, .len = k.len};
  if (!in_range(&want, base, len))
    return MC_ERANGE;
  oot_obj *o = obj_new(c, OOT_RMEM);
  if (!o)
    return MC_ENOMEM;
  o->addr = base;
  o->len = len;
  *rmem = o;
  return 0;
}

static int oot_release_mem(void *ctx, void *rmem) {
  return obj_free(rmem, OOT_RMEM);
}

/* ---- data path ---- */

static int oot_submit(void *ctx, void *ep, const mc_slice *slices, uint32_t n,
                      uint32_t *accepted) {
  oot_ctx *c = ctx;
  const oot_obj *e = ep;
  *accepted = 0;
  if (!e || e->kind != OOT_EP)
    return MC_EINVAL;
  for (uint32_t i = 0; i < n; i++) {
    const mc_slice *s = &slices[i];
    const oot_obj *lm = s->local_mem, *rm = s->remote_mem;
    int st = 0;
    if (!lm || lm->kind != OOT_MEM || !rm || rm->kind != OOT_RMEM)
      st = MC_EINVAL;
    else if (!in_range(lm, s->local_addr, s->len) ||
             !in_range(rm, s->remote_addr, s->len))
      st = MC_ERANGE;
    else if (s->op == MC_OP_WRITE)
      memmove((void *)(uintptr_t)s->remote_addr,
              (const void *)(uintptr_t)s->local_addr, s->len);
    else if (s->op == MC_OP_READ)
      memmove((void *)(uintptr_t)s->local_addr,
              (const void *)(uintptr_t)s->remote_addr, s->len);
    else
      st = MC_EINVAL;
    /* Accepted slices are completed exactly once, failures included. */
    c->host->complete(c->host->host, s->token, st, st ? 0 : s->len, 0);
  }
  *accepted = n;
  return 0;
}

static const mc_transport_ops oot_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "oot", /* must match the file name mc-transport-oot.so */
    .version = OOT_VERSION,
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE |
            MC_CAP_MT_SUBMIT | MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_CPU,
    .params = oot_params,
    .init = oot_init,
    .fini = oot_fini,
    .query_rails = oot_query_rails,
    .local_desc = oot_local_desc,
    .register_mem = oot_register_mem,
    .deregister_mem = oot_deregister_mem,
    .connect = oot_connect,
    .disconnect = oot_disconnect,
    .import_mem = oot_import_mem,
    .release_mem = oot_release_mem,
    .submit = oot_submit,
    /* progress NULL: MC_CAP_OWN_THREADS.  cancel NULL: nothing stays in
     * flight.  send_notify NULL: no MC_CAP_NOTIFY. */
};

/* The only exported symbol; cheap and side-effect free, as the ABI asks. */
MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void);
const mc_transport_ops *mc_transport_plugin_v1(void) { return &oot_ops; }
