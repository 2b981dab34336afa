/* mc-transport-oot: a complete, minimal transport plugin built out of tree.
 *
 * It moves bytes with memcpy between engines that live in the same process,
 * which makes it useless in production and ideal as a template: every member
 * of the ABI a real transport needs is here, with the checks a real one must
 * make, and nothing else.  Build it against an installed mooncake with the
 * Makefile beside this file, or by hand:
 *
 *   cc $(pkg-config --cflags mooncake-transport) -std=c11 -shared -fPIC \
 *      -fvisibility=hidden -Wl,--no-undefined -Wl,--version-script=oot.map \
 *      -o mc-transport-oot.so oot_transport.c -lpthread
 *
 * The plugin includes only <mooncake/transport.h> and links nothing from
 * mooncake.  docs/plugin-guide.md (installed as
 * share/doc/mooncake/plugin-guide.md) explains the duties it illustrates.
 *
 * Trust model.  Descriptors and remote keys travel through the metadata
 * service, and the initiator is another engine: both are untrusted.  So
 *   - blobs are parsed defensively: exact sizes, magic, version,
 *     NUL-terminated strings, overflow-safe bounds;
 *   - the TARGET checks every access against its own live registrations:
 *     the registration named by the key must exist now, its random secret
 *     must match, and the whole [addr, +len) must lie inside it.  Whatever
 *     the initiator's import_mem and submit believed (the key's address and
 *     length, the imported range) is only an early, friendly error -- a
 *     hostile initiator skips it;
 *   - deregister_mem removes the registration under the lock the target's
 *     accesses hold, so when it returns no access can start on the range
 *     and none is still running: revocation is immediate, and a key is
 *     never valid again, even for a later registration of the same range.
 * Here "the target side" is a function the initiator calls on the target's
 * context (target_access); in a real transport it is the target's NIC
 * checking the rkey, or the target process's server thread checking the
 * request, as plugins/tcp does.
 *
 * The fabric.  Contexts reach each other through a process-wide list of
 * live contexts (the only global state: it stands in for the network), so
 * an access to a context that was torn down finds nothing (MC_EPEER)
 * instead of freed memory.
 *
 * Threads.  Every slice is completed inside submit(), so the plugin has no
 * threads and no progress() (MC_CAP_OWN_THREADS); submit() only reads
 * handles and takes the target's lock shared, so concurrent submits are fine
 * (MC_CAP_MT_SUBMIT).  Control calls are serialized per context by the core.
 *
 * Test builds (tests/oot/meson.build) compile this file with -D flags that
 * a vendor never sets: OOT_NO_TARGET_CHECK removes the target-side checks
 * (the conformance tool's hostile-initiator checks must then fail), and
 * OOT_INIT_ENODEV makes init fail as on a host without the hardware (the
 * tool must exit 77).  OOT_NAME renames the transport for those builds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getpid, getrandom */
#endif

#include <mooncake/transport.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#ifndef OOT_NAME
#define OOT_NAME "oot" /* must match the file name mc-transport-oot.so */
#endif
#define OOT_VERSION "1.0.0"
#define OOT_DESC_MAGIC 0x4f4f5444u /* "OOTD" */
#define OOT_RKEY_MAGIC 0x4f4f544bu /* "OOTK" */
#define OOT_BLOB_VERSION 2u
#define OOT_HOST_ID_MAX 64
#define OOT_MAX_RAILS 16

/* Endpoint descriptor (local_desc -> connect).  Fixed layout, no padding;
 * native byte order is fine because only this process can use it. */
typedef struct oot_desc {
  uint32_t magic, version;
  uint64_t pid;
  uint64_t ctx_id, secret;
  char host_id[OOT_HOST_ID_MAX]; /* NUL-terminated */
} oot_desc;

/* Remote key (register_mem -> import_mem).  ctx_id/secret say which
 * context issued it; reg_id/reg_secret name the registration the target
 * will look up on every access; addr/len are the registered range as the
 * target announced it (the initiator uses them for early errors only). */
typedef struct oot_rkey {
  uint32_t magic, version;
  uint64_t ctx_id, secret;
  uint64_t addr, len;
  uint64_t reg_id, reg_secret;
} oot_rkey;

/* Every handle given to the core is an oot_obj, linked into its context so
 * fini() can free what the core did not release. */
enum oot_kind { OOT_MEM = 1, OOT_EP, OOT_RMEM };

typedef struct oot_obj {
  struct oot_obj *prev, *next;
  int kind;
  uint64_t addr, len;            /* MEM: registered; RMEM: imported */
  uint64_t reg_id, reg_secret;   /* MEM: its identity; RMEM: the key's */
  uint64_t peer_id, peer_secret; /* EP, RMEM: the context it reaches */
} oot_obj;

typedef struct oot_ctx {
  const mc_host_api *host;
  uint64_t id, secret;
  uint64_t next_reg_id;
  uint32_t nrails;
  char host_id[OOT_HOST_ID_MAX];
  char rail[MC_RAIL_NAME_MAX];
  /* Guards objs.  Control calls take it exclusive to change the list;
   * accesses from initiators take it shared while they look up and copy. */
  pthread_rwlock_t lock;
  oot_obj objs;            /* list head */
  struct oot_ctx *fabric_next;
} oot_ctx;

#define LOG(c, lvl, ...) (c)->host->log((c)->host->host, (lvl), __VA_ARGS__)

static const mc_param_info oot_params[] = {
    {MC_PARAM_STRING, "rail_name", "memcpy0", "name of the first rail", 0, 0},
    {MC_PARAM_INT, "rails", "1", "number of rails reported (all copy alike)", 1,
     OOT_MAX_RAILS},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

/* ---- the fabric: live contexts of this process ---- */

static pthread_mutex_t fabric_lock = PTHREAD_MUTEX_INITIALIZER;
static oot_ctx *fabric;

static void fabric_add(oot_ctx *c) {
  pthread_mutex_lock(&fabric_lock);
  c->fabric_next = fabric;
  fabric = c;
  pthread_mutex_unlock(&fabric_lock);
}

static void fabric_remove(oot_ctx *c) {
  pthread_mutex_lock(&fabric_lock);
  for (oot_ctx **p = &fabric; *p; p = &(*p)->fabric_next)
    if (*p == c) {
      *p = c->fabric_next;
      break;
    }
  pthread_mutex_unlock(&fabric_lock);
}

/* Constant time: how long it takes does not depend on where they differ. */
static int secret_equal(uint64_t a, uint64_t b) {
  volatile uint64_t d = a ^ b;
  return d == 0;
}

/* The live context (id, secret) with its lock held shared, or NULL. */
static oot_ctx *fabric_find(uint64_t id, uint64_t secret) {
  oot_ctx *t;
  pthread_mutex_lock(&fabric_lock);
  for (t = fabric; t; t = t->fabric_next)
    if (t->id == id && secret_equal(t->secret, secret)) {
      pthread_rwlock_rdlock(&t->lock);
      break;
    }
  pthread_mutex_unlock(&fabric_lock);
  return t;
}

/* ---- handle bookkeeping ---- */

/* Links a filled-in handle into c: from now on fini frees it, and target
 * accesses (which only read the list under the lock) can see it. */
static void obj_link(oot_ctx *c, oot_obj *o) {
  pthread_rwlock_wrlock(&c->lock);
  o->next = c->objs.next;
  o->prev = &c->objs;
  c->objs.next->prev = o;
  c->objs.next = o;
  pthread_rwlock_unlock(&c->lock);
}

/* Unlinks and frees a handle the core passes back, if it has that kind.
 * Taking the lock exclusive waits for accesses still copying. */
static int obj_free(oot_ctx *c, void *handle, int kind) {
  oot_obj *o = handle;
  if (!o || o->kind != kind)
    return MC_EINVAL;
  pthread_rwlock_wrlock(&c->lock);
  o->prev->next = o->next;
  o->next->prev = o->prev;
  o->kind = 0;
  pthread_rwlock_unlock(&c->lock);
  free(o);
  return 0;
}

/* [addr, addr+len) inside [base, base+blen), without overflow. */
static int in_range(uint64_t base, uint64_t blen, uint64_t addr, uint64_t len) {
  return addr >= base && len <= blen && addr - base <= blen - len;
}

/* ---- the target side ---- */

/* One access arriving at target context (ctx_id, ctx_secret) for the
 * registration (reg_id, reg_secret): checked against the target's live
 * registrations, never against what the initiator says it imported. */
static int target_access(uint64_t ctx_id, uint64_t ctx_secret, uint64_t reg_id,
                         uint64_t reg_secret, uint32_t op, uint64_t raddr,
                         void *local, uint64_t len) {
  oot_ctx *t = fabric_find(ctx_id, ctx_secret);
  if (!t)
    return MC_EPEER; /* torn down (fini): nothing to reach */
  int st = MC_EACCES;
#ifndef OOT_NO_TARGET_CHECK
  for (const oot_obj *o = t->objs.next; o != &t->objs; o = o->next) {
    if (o->kind != OOT_MEM || o->reg_id != reg_id)
      continue;
    if (!secret_equal(o->reg_secret, reg_secret))
      st = MC_EACCES; /* forged key */
    else if (!in_range(o->addr, o->len, raddr, len))
      st = MC_ERANGE; /* beyond what is registered */
    else
      st = 0;
    break;
  }
  /* No such registration (never was, or deregistered): MC_EACCES. */
#else
  /* TEST BUILD ONLY: trusts the initiator's bounds.  Never do this. */
  (void)reg_id;
  (void)reg_secret;
  st = 0;
#endif
  if (st == 0) {
    if (op == MC_OP_WRITE)
      memmove((void *)(uintptr_t)raddr, local, len);
    else
      memmove(local, (const void *)(uintptr_t)raddr, len);
  }
  pthread_rwlock_unlock(&t->lock); /* deregister_mem waits for this */
  if (st && t->host->log_enabled(t->host->host, MC_LOG_DEBUG))
    LOG(t, MC_LOG_DEBUG, "refused %s of [0x%llx, +%llu): %s",
        op == MC_OP_WRITE ? "write" : "read", (unsigned long long)raddr,
        (unsigned long long)len, mc_strerror(st));
  return st;
}

/* ---- configuration ---- */

/* An INT key through the 1.1 typed getter when the host has it (the core
 * already checked type and range, and applies the default); through the
 * 1.0 text getter otherwise, checking the range here. */
static int get_int(oot_ctx *c, const char *key, int64_t dflt, int64_t min,
                   int64_t max, int64_t *out) {
  const mc_host_api *h = c->host;
  if (MC_HOST_HAS(h, config_get_int))
    return h->config_get_int(h->host, key, out);
  const char *v = NULL;
  *out = dflt;
  if (!h->config_get || h->config_get(h->host, key, &v) != 0)
    return 0;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 0);
  if (errno || end == v || *end || x < min || x > max) {
    LOG(c, MC_LOG_ERROR, "transports.%s.%s: expected an integer in [%lld, %lld], "
        "got '%s'", OOT_NAME, key, (long long)min, (long long)max, v);
    return MC_EINVAL;
  }
  *out = x;
  return 0;
}

/* ---- lifecycle ---- */

static int oot_init(const mc_host_api *host, const mc_init_args *args,
                    void **out) {
#ifdef OOT_INIT_ENODEV
  /* TEST BUILD: what a plugin does on a host without its hardware: one log
   * line saying why, then MC_ENODEV (MC_ENOTSUP for a missing library). */
  host->log(host->host, MC_LOG_WARN,
            "no oot device on this host (test build with OOT_INIT_ENODEV)");
  return MC_ENODEV;
#endif
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
  /* The context's address is unique among live contexts; the secret tells
   * a later context at the same address apart. */
  c->id = (uint64_t)(uintptr_t)c;
  c->next_reg_id = 1;
  /* mc_init_args may grow: read a member only when struct_size covers it
   * (all of today's members are 1.0 ones). */
  const char *hid = args && args->struct_size >= offsetof(mc_init_args, host_id) +
                                                     sizeof args->host_id &&
                            args->host_id
                        ? args->host_id
                        : "";
  snprintf(c->host_id, sizeof c->host_id, "%s", hid);
  const char *rail = "memcpy0";
  if (host->config_get)
    (void)host->config_get(host->host, "rail_name", &rail);
  snprintf(c->rail, sizeof c->rail, "%s", rail);
  int64_t nr = 1;
  int rc = get_int(c, "rails", 1, 1, OOT_MAX_RAILS, &nr);
  if (rc) {
    free(c);
    return rc;
  }
  c->nrails = (uint32_t)nr;
  if (pthread_rwlock_init(&c->lock, NULL)) {
    free(c);
    return MC_ENOMEM;
  }
  fabric_add(c);
  *out = c;
  return 0;
}

static int oot_fini(void *ctx) {
  oot_ctx *c = ctx;
  /* Off the fabric first: no new access can find us; then wait for the
   * accesses still copying (they hold the lock shared). */
  fabric_remove(c);
  pthread_rwlock_wrlock(&c->lock);
  pthread_rwlock_unlock(&c->lock);
  /* Nothing is ever pending (submit completes synchronously), so fini only
   * frees the handles the core did not release. */
  while (c->objs.next != &c->objs)
    obj_free(c, c->objs.next, c->objs.next->kind);
  pthread_rwlock_destroy(&c->lock);
  free(c);
  return 0;
}

static int oot_query_rails(void *ctx, mc_rail_info *out, uint32_t *n) {
  oot_ctx *c = ctx;
  if (*n < c->nrails) {
    *n = c->nrails;
    return MC_ENOSPC;
  }
  for (uint32_t i = 0; i < c->nrails; i++) {
    memset(&out[i], 0, sizeof out[i]);
    if (i == 0)
      memcpy(out[i].name, c->rail, sizeof out[i].name);
    else { /* "<rail_name>.<i>" (i in hex), the prefix cut to fit */
      size_t l = strnlen(c->rail, sizeof out[i].name - 3);
      memcpy(out[i].name, c->rail, l);
      out[i].name[l] = '.';
      out[i].name[l + 1] = "0123456789abcdef"[i % 16];
    }
    out[i].numa_node = -1;
  }
  *n = c->nrails;
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
  uint64_t secret = 0;
  while (secret == 0) /* a fresh random secret per registration */
    if (getrandom(&secret, sizeof secret, 0) != sizeof secret)
      return MC_EIO;
  oot_obj *o = calloc(1, sizeof *o);
  if (!o)
    return MC_ENOMEM;
  *o = (oot_obj){.kind = OOT_MEM, .addr = desc->addr, .len = desc->len,
                 .reg_id = c->next_reg_id++, .reg_secret = secret};
  obj_link(c, o); /* reachable by peers from here on */
  oot_rkey k = {OOT_RKEY_MAGIC, OOT_BLOB_VERSION, c->id,      c->secret,
                desc->addr,     desc->len,        o->reg_id, o->reg_secret};
  memcpy(rkey, &k, sizeof k);
  *rkey_len = sizeof k;
  *mem = o;
  return 0;
}

/* Revocation: once this returns, no access can reach the range (target
 * accesses look the registration up under the lock taken here) and none is
 * still copying.  The id is never reused, so old keys stay dead. */
static int oot_deregister_mem(void *ctx, void *mem) {
  return obj_free(ctx, mem, OOT_MEM);
}

static int oot_connect(void *ctx, const char *peer, const void *desc,
                       size_t len, void **ep) {
  oot_ctx *c = ctx;
  oot_desc d;
  if (!desc || len != sizeof d) {
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
  oot_obj *o = calloc(1, sizeof *o);
  if (!o)
    return MC_ENOMEM;
  *o = (oot_obj){.kind = OOT_EP, .peer_id = d.ctx_id, .peer_secret = d.secret};
  obj_link(c, o);
  *ep = o;
  return 0;
}

/* Imports made on ep keep their own copy of the peer's identity, so they
 * stay valid handles after disconnect; the core releases them first. */
static int oot_disconnect(void *ctx, void *ep) {
  return obj_free(ctx, ep, OOT_EP);
}

static int oot_import_mem(void *ctx, void *ep, uint64_t base, uint64_t len,
                          const void *rkey, size_t rkey_len, void **rmem) {
  oot_ctx *c = ctx;
  const oot_obj *e = ep;
  oot_rkey k;
  if (!e || e->kind != OOT_EP)
    return MC_EINVAL;
  if (!rkey || rkey_len != sizeof k)
    return MC_EPROTO;
  memcpy(&k, rkey, sizeof k);
  if (k.magic != OOT_RKEY_MAGIC || k.version != OOT_BLOB_VERSION)
    return MC_EPROTO;
  if (k.ctx_id != e->peer_id || !secret_equal(k.secret, e->peer_secret)) {
    LOG(c, MC_LOG_WARN, "remote key for [0x%llx, +%llu) was not issued "
        "by the endpoint's peer", (unsigned long long)base,
        (unsigned long long)len);
    return MC_EACCES;
  }
  /* An early error for an honest mistake.  Not a security check: the key's
   * addr and len are whatever the initiator says; the target checks. */
  if (!in_range(k.addr, k.len, base, len))
    return MC_ERANGE;
  oot_obj *o = calloc(1, sizeof *o);
  if (!o)
    return MC_ENOMEM;
  *o = (oot_obj){.kind = OOT_RMEM, .addr = base, .len = len,
                 .reg_id = k.reg_id, .reg_secret = k.reg_secret,
                 .peer_id = e->peer_id, .peer_secret = e->peer_secret};
  obj_link(c, o);
  *rmem = o;
  return 0;
}

static int oot_release_mem(void *ctx, void *rmem) {
  return obj_free(ctx, rmem, OOT_RMEM);
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
    int st;
    /* One bad slice fails alone (completed with its error); the rest of the
     * batch goes on. */
    if (!lm || lm->kind != OOT_MEM || !rm || rm->kind != OOT_RMEM ||
        (s->op != MC_OP_READ && s->op != MC_OP_WRITE))
      st = MC_EINVAL;
    else if (!in_range(lm->addr, lm->len, s->local_addr, s->len) ||
             !in_range(rm->addr, rm->len, s->remote_addr, s->len))
      st = MC_ERANGE; /* initiator side: early error only */
    else
      st = target_access(rm->peer_id, rm->peer_secret, rm->reg_id,
                         rm->reg_secret, s->op, s->remote_addr,
                         (void *)(uintptr_t)s->local_addr, s->len);
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
    .name = OOT_NAME, /* must match the file name mc-transport-<name>.so */
    .version = OOT_VERSION,
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE |
            MC_CAP_MT_SUBMIT | MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_CPU,
    .params = oot_params,
    .param_info_size = sizeof(mc_param_info), /* 1.1: the params stride */
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
const mc_transport_ops *mc_transport_plugin_v1(void) { return &oot_ops; }
