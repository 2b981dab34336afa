/* mc-transport-shm: intra-host transport over shared pools (memfd, file or
 * CXL/DAX device) and process_vm_readv/writev.  See README.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm_ctx.h"
#include "shm_ident.h"
#include "shm_workers.h"

#define SHM_MAX_COPY_THREADS 64

/* The core checks every configured value against these types and ranges
 * before init (and reports a bad one with file:line or the variable), so
 * init reads them with the typed getters and never parses text itself.
 * What a range cannot say (copy_chunk a power of two, pool_offset
 * aligned, pool_path absolute) init still checks. */
static const mc_param_info shm_params[] = {
    {MC_PARAM_STRING, "pool_path", "\"\"",
     "backing of mc_alloc_shared: empty = memfd, else a file or /dev/daxX.Y",
     0, 0},
    {MC_PARAM_SIZE, "pool_size", "1G",
     "bytes of pool_path this engine maps and allocates from", 4096,
     1ll << 44},
    {MC_PARAM_SIZE, "pool_offset", "0",
     "start of this engine's window in pool_path (page/2M aligned)", 0,
     1ll << 44},
    {MC_PARAM_BOOL, "populate", "true",
     "prefault pools and imports so copies take no page faults", 0, 0},
    {MC_PARAM_BOOL, "allow_vm", "true",
     "serve plain registered memory with process_vm_readv/writev", 0, 0},
    {MC_PARAM_BOOL, "huge_pages", "true",
     "back plain registered memory with transparent huge pages (advise and "
     "collapse its 2 MiB-aligned interior) so process_vm pins 2 MiB at a time",
     0, 0},
    {MC_PARAM_BOOL, "ptracer_any", "false",
     "let any same-uid process process_vm into this one (Yama scope 1)", 0, 0},
    {MC_PARAM_INT, "copy_threads", "-1",
     "process_vm copy workers: -1 = min(4, online CPUs), 0 = copy inside "
     "submit, else 1..64",
     -1, SHM_MAX_COPY_THREADS},
    {MC_PARAM_SIZE, "copy_chunk", "2M",
     "process_vm slices are split at peer addresses aligned to this power "
     "of two",
     64 << 10, 1 << 30},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

/* Reads one key with the typed getters; MC_EINVAL (logged with the key)
 * when the host cannot, which the core's checks make a host defect. */
static int opt(shm_ctx *c, const char *key, int kind, void *out) {
  const mc_host_api *h = c->host;
  const char *v = NULL;
  int rc;
  switch (kind) {
  case MC_PARAM_BOOL:
    rc = h->config_get_bool(h->host, key, out);
    break;
  case MC_PARAM_SIZE:
    rc = h->config_get_size(h->host, key, out);
    break;
  case MC_PARAM_INT:
    rc = h->config_get_int(h->host, key, out);
    break;
  default: /* a string: the path, empty = memfd */
    rc = h->config_get(h->host, key, &v);
    if (rc == MC_ENOENT)
      return 0; /* unset: keep the default */
    if (rc == 0 && (strlen(v) > SHM_PATH_MAX || (v[0] && v[0] != '/'))) {
      SHM_LOG(c, MC_LOG_ERROR, "transports.shm.%s: bad value \"%s\" "
              "(absolute path of at most %d bytes)", key, v, SHM_PATH_MAX);
      return MC_EINVAL;
    }
    if (rc == 0)
      strcpy(out, v);
    break;
  }
  if (rc)
    SHM_LOG(c, MC_LOG_ERROR, "transports.shm.%s: cannot read: %s", key,
            mc_strerror(rc));
  return rc;
}

static int shm_init(const mc_host_api *host, const mc_init_args *args,
                    void **out) {
  /* The typed getters (ABI 1.1) replace a parser of our own; this plugin
   * ships with its core, so an older host is a mismatched install. */
  if (!MC_HOST_HAS(host, config_get_size) || !MC_HOST_HAS(host, config_get_int) ||
      !MC_HOST_HAS(host, config_get_bool)) {
    host->log(host->host, MC_LOG_ERROR,
              "host ABI %u.%u lacks the typed config getters of ABI 1.1: "
              "this plugin needs a libmooncake as new as itself",
              host->abi_major, host->abi_minor);
    return MC_EABI;
  }
  shm_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = host;
  c->allow_vm = 1;
  c->huge_pages = 1;
  c->populate = 1;
  c->pools.window_size = 1ull << 30;
  c->copy_chunk = 2u << 20;
  int ptracer_any = 0, rc;
  int64_t copy_threads = -1;
  if ((rc = opt(c, "pool_path", MC_PARAM_STRING, c->pools.path)) ||
      (rc = opt(c, "pool_size", MC_PARAM_SIZE, &c->pools.window_size)) ||
      (rc = opt(c, "pool_offset", MC_PARAM_SIZE, &c->pools.window_off)) ||
      (rc = opt(c, "populate", MC_PARAM_BOOL, &c->populate)) ||
      (rc = opt(c, "allow_vm", MC_PARAM_BOOL, &c->allow_vm)) ||
      (rc = opt(c, "huge_pages", MC_PARAM_BOOL, &c->huge_pages)) ||
      (rc = opt(c, "ptracer_any", MC_PARAM_BOOL, &ptracer_any)) ||
      (rc = opt(c, "copy_threads", MC_PARAM_INT, &copy_threads)) ||
      (rc = opt(c, "copy_chunk", MC_PARAM_SIZE, &c->copy_chunk))) {
    free(c);
    return rc;
  }
  if (copy_threads < -1 || copy_threads > SHM_MAX_COPY_THREADS) {
    SHM_LOG(c, MC_LOG_ERROR, "transports.shm.copy_threads: %lld is not -1 "
            "(auto), 0 (inline) or 1..%d", (long long)copy_threads,
            SHM_MAX_COPY_THREADS);
    free(c);
    return MC_EINVAL;
  }
  if (c->copy_chunk < (64u << 10) || c->copy_chunk > (1ull << 30) ||
      (c->copy_chunk & (c->copy_chunk - 1))) {
    SHM_LOG(c, MC_LOG_ERROR, "transports.shm.copy_chunk: %llu is not a "
            "power of two in 64K..1G", (unsigned long long)c->copy_chunk);
    free(c);
    return MC_EINVAL;
  }
  if (copy_threads < 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    copy_threads = cpus < 1 ? 1 : cpus > 4 ? 4 : cpus;
  }
  if (c->pools.path[0] && c->pools.window_size == 0) {
    SHM_LOG(c, MC_LOG_ERROR, "transports.shm.pool_size: must be > 0");
    free(c);
    return MC_EINVAL;
  }
  c->pools.populate = c->populate;
  const char *host_id = NULL;
  if (args && args->struct_size >= offsetof(mc_init_args, host_id) +
                                       sizeof(args->host_id))
    host_id = args->host_id;
  const char *why = NULL;
  if (shm_ident_self(&c->self, host_id, &why)) {
    SHM_LOG(c, MC_LOG_ERROR, "cannot read %s: same-host checks impossible, "
            "shm disabled", why);
    free(c);
    return MC_ENOTSUP;
  }
  if (getrandom(c->self.nonce, sizeof c->self.nonce, 0) !=
          (ssize_t)sizeof c->self.nonce ||
      getrandom(&c->pools.secret_seed, 8, 0) != 8) {
    SHM_LOG(c, MC_LOG_ERROR, "getrandom failed: %s", strerror(errno));
    free(c);
    return MC_EIO;
  }
  if (shm_reg_create(&c->reg, c->self.nonce, c->self.pid,
                     c->pools.secret_seed ^ 0x5bd1e995u)) {
    SHM_LOG(c, MC_LOG_ERROR, "memfd_create of the registration table failed: "
            "%s; shm disabled", strerror(errno));
    free(c);
    return MC_ENOTSUP;
  }
  c->self.ident_fd = c->reg.fd;
  if (ptracer_any && prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0))
    SHM_LOG(c, MC_LOG_WARN, "ptracer_any: prctl(PR_SET_PTRACER): %s",
            strerror(errno));
  if (c->allow_vm && copy_threads > 0 &&
      (rc = shm_workers_start(c, (uint32_t)copy_threads, &c->workers))) {
    SHM_LOG(c, MC_LOG_ERROR, "cannot start %lld copy threads",
            (long long)copy_threads);
    shm_reg_destroy(&c->reg);
    free(c);
    return rc;
  }
  SHM_LOG(c, MC_LOG_INFO, "shm ready: pid %u, pools %s%s, process_vm %s "
          "(%lld copy threads, %llu-byte chunks)",
          c->self.pid, c->pools.path[0] ? "in " : "in memfd",
          c->pools.path, c->allow_vm ? "on" : "off",
          c->workers ? (long long)copy_threads : 0LL,
          (unsigned long long)c->copy_chunk);
  *out = c;
  return 0;
}

static void ep_free(shm_ctx *c, shm_ep *ep) {
  while (ep->rmems)
    shm_release(c, ep->rmems);
  if (ep->pidfd >= 0)
    close(ep->pidfd);
  shm_reg_unmap_peer(ep->table);
  free(ep);
}

static int shm_fini(void *vctx) {
  shm_ctx *c = vctx;
  if (!c)
    return 0;
  /* Queued slices fail first (MC_ECANCELED), before what they use goes. */
  shm_workers_stop(c->workers);
  c->workers = NULL;
  while (c->eps) {
    shm_ep *ep = c->eps;
    c->eps = ep->next;
    ep_free(c, ep);
  }
  while (c->lmems) {
    shm_lmem *m = c->lmems;
    c->lmems = m->next;
    free(m);
  }
  shm_reg_close(&c->reg); /* peers stop at once, even with pools mapped */
  shm_pools_fini(&c->pools);
  shm_reg_destroy(&c->reg);
  free(c);
  return 0;
}

static int shm_query_rails(void *vctx, mc_rail_info *out, uint32_t *n) {
  (void)vctx;
  if (!out || *n < 1) { /* NULL: a count query, whatever *n says */
    *n = 1;
    return MC_ENOSPC;
  }
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "shm0");
  out->numa_node = -1;
  *n = 1;
  return 0;
}

static int shm_local_desc(void *vctx, void *buf, size_t *len) {
  shm_ctx *c = vctx;
  return shm_desc_encode(&c->self, buf, len);
}

/* Peers copy plain memory with process_vm_*, which pins the target's pages
 * one page-table entry at a time: with 4 KiB pages that, not the copy,
 * bounds the bandwidth (about 15 GB/s a thread here, against 55-60 GB/s
 * for memcpy).  Huge pages are pinned 2 MiB at a time.  So the 2 MiB-aligned
 * interior of the registration is advised for THP and collapsed now (its
 * contents stay as they are).  Best effort: without THP, or when the kernel
 * cannot collapse (pinned pages, no free huge pages), nothing changes. */
static void shm_thp_advise(shm_ctx *c, uint64_t addr, uint64_t len) {
  const uint64_t huge = 2u << 20;
  uint64_t lo = (addr + huge - 1) & ~(huge - 1);
  uint64_t hi = (addr + len) & ~(huge - 1);
  if (hi <= lo)
    return;
  /* The partial windows at the ends cannot be huge pages: say so once per
   * registration big enough for it to matter. */
  if (len >= 2 * huge && (lo != addr || hi != addr + len))
    SHM_LOG(c, MC_LOG_INFO,
            "register_mem: 0x%llx+%llu is not 2 MiB-aligned; peers copy its "
            "first %llu KiB and last %llu KiB with 4 KiB pages, at a fraction "
            "of the speed (allocate 2 MiB-aligned buffers)",
            (unsigned long long)addr, (unsigned long long)len,
            (unsigned long long)((lo - addr) >> 10),
            (unsigned long long)((addr + len - hi) >> 10));
  void *p = (void *)(uintptr_t)lo;
  if (madvise(p, hi - lo, MADV_HUGEPAGE) != 0) {
    SHM_LOG(c, MC_LOG_DEBUG, "register_mem: MADV_HUGEPAGE on 0x%llx+%llu: %s",
            (unsigned long long)lo, (unsigned long long)(hi - lo), strerror(errno));
    return;
  }
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif
  if (madvise(p, hi - lo, MADV_COLLAPSE) != 0)
    SHM_LOG(c, MC_LOG_DEBUG, "register_mem: MADV_COLLAPSE on 0x%llx+%llu: %s "
            "(pages stay as they are)",
            (unsigned long long)lo, (unsigned long long)(hi - lo), strerror(errno));
}

static int shm_register(void *vctx, const mc_mem_desc *d, void **mem,
                        void *rkey, size_t *rkey_len) {
  shm_ctx *c = vctx;
  if (!d || d->len == 0 || d->addr + d->len < d->addr)
    return MC_EINVAL;
  if (d->kind != MC_MEM_CPU)
    return MC_ENOTSUP;
  shm_rkey k = {0};
  k.pid = c->self.pid;
  k.base = d->addr;
  k.len = d->len;
  k.fd = -1;
  const shm_pool *p = shm_pools_find(&c->pools, d->addr, d->len);
  if (p) {
    k.kind = p->kind;
    k.secret = p->secret;
    k.pool_id = p->id;
    k.pool_size = p->size;
    k.file_off = p->file_off;
    k.reg_off = d->addr - (uint64_t)(uintptr_t)p->base;
    k.fd = p->fd;
    k.dev = p->dev;
    k.ino = p->ino;
    if (p->kind == SHM_RKEY_FILE)
      snprintf(k.path, sizeof k.path, "%s", c->pools.path);
  } else if (c->allow_vm) {
    k.kind = SHM_RKEY_VM;
    if (c->huge_pages)
      shm_thp_advise(c, d->addr, d->len);
  } else {
    return MC_ENOTSUP; /* only pool memory without process_vm */
  }
  size_t need = 0;
  if (shm_rkey_encode(&k, NULL, &need) == MC_ENOSPC && need > *rkey_len) {
    *rkey_len = need;
    return MC_ENOSPC;
  }
  shm_lmem *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  if (shm_reg_add(&c->reg, d->addr, d->len, &k.slot, &k.reg_secret)) {
    SHM_LOG(c, MC_LOG_ERROR, "register_mem: all %u registration slots in use",
            SHM_REG_SLOTS);
    free(m);
    return MC_ENOMEM;
  }
  int rc = shm_rkey_encode(&k, rkey, rkey_len);
  if (rc) {
    shm_reg_remove(&c->reg, k.slot);
    free(m);
    return rc;
  }
  m->addr = d->addr;
  m->len = d->len;
  m->slot = k.slot;
  m->next = c->lmems;
  c->lmems = m;
  *mem = m;
  return 0;
}

static int shm_deregister(void *vctx, void *mem) {
  shm_ctx *c = vctx;
  for (shm_lmem **pp = &c->lmems; *pp; pp = &(*pp)->next) {
    if (*pp == mem) {
      *pp = ((shm_lmem *)mem)->next;
      shm_reg_remove(&c->reg, ((shm_lmem *)mem)->slot);
      free(mem);
      return 0;
    }
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

static int shm_connect(void *vctx, const char *peer, const void *desc,
                       size_t len, void **out) {
  shm_ctx *c = vctx;
  const char *name = peer ? peer : "?";
  shm_desc d;
  const char *why = NULL;
  if (shm_desc_decode(desc, len, &d, &why)) {
    SHM_LOG(c, MC_LOG_WARN, "peer %s: malformed shm descriptor (%s)", name, why);
    return MC_EPROTO;
  }
  const char *diff = shm_ident_mismatch(&c->self, &d);
  if (diff) {
    SHM_LOG(c, MC_LOG_INFO, "peer %s is not on this host for shm: %s", name,
            diff);
    return MC_EPEER;
  }
  char err[256];
  int fd = -1;
  int rc = shm_ident_prove(&d, &fd, err, sizeof err);
  if (rc && rc != MC_EACCES) {
    SHM_LOG(c, MC_LOG_WARN, "peer %s refused: %s", name, err);
    return MC_EPEER;
  }
  if (rc)
    SHM_LOG(c, MC_LOG_INFO, "peer %s: identity not provable (%s); only pools "
            "reachable by path will be used", name, err);
  shm_ep *ep = calloc(1, sizeof *ep);
  if (!ep)
    return MC_ENOMEM;
  snprintf(ep->peer_name, sizeof ep->peer_name, "%s", name);
  ep->peer = d;
  ep->proven = rc == 0;
  if (fd >= 0) {
    ep->table = shm_reg_map_peer(fd);
    close(fd);
    if (!ep->table) {
      SHM_LOG(c, MC_LOG_WARN, "peer %s refused: its registration table "
              "cannot be mapped safely", name);
      free(ep);
      return MC_EPEER;
    }
  }
  ep->pidfd = d.pid == c->self.pid ? -1 : open_pidfd(d.pid);
  ep->next = c->eps;
  c->eps = ep;
  *out = ep;
  return 0;
}

static int shm_disconnect(void *vctx, void *vep) {
  shm_ctx *c = vctx;
  for (shm_ep **pp = &c->eps; *pp; pp = &(*pp)->next) {
    if (*pp == vep) {
      *pp = ((shm_ep *)vep)->next;
      shm_workers_drain_ep(c->workers, vep);
      ep_free(c, vep);
      return 0;
    }
  }
  return MC_ENOENT;
}

static int shm_import_mem(void *vctx, void *ep, uint64_t base, uint64_t len,
                          const void *rkey, size_t rkey_len, void **rmem) {
  return shm_import(vctx, ep, base, len, rkey, rkey_len, (shm_rmem **)rmem);
}

static int shm_release_mem(void *vctx, void *rmem) {
  if (!rmem)
    return MC_EINVAL;
  shm_release(vctx, rmem);
  return 0;
}

static void done(shm_ctx *c, const mc_slice *s, int st, int32_t verr) {
  c->host->complete(c->host->host, s->token, st, st ? 0 : s->len, verr);
}

/* copy_threads 0: copies the checked vm slices s[0..n) (one direction)
 * here, as few process_vm calls as the iovec cap allows, and completes
 * them. */
static void vm_inline(shm_ctx *c, shm_ep *ep, const mc_slice *s, uint32_t n) {
  shm_seg seg[SHM_IOV_MAX];
  for (uint32_t i = 0; i < n; i++)
    seg[i] = (shm_seg){s[i].local_addr, s[i].remote_addr, s[i].len};
  uint32_t i = 0;
  while (i < n) {
    uint32_t failed = 0;
    int32_t verr = 0;
    int rc = shm_vm_copy(c, ep, s[i].op, &seg[i], n - i, &failed, &verr);
    uint32_t ok = rc ? failed : n - i;
    for (uint32_t k = 0; k < ok; k++)
      done(c, &s[i + k], 0, 0);
    i += ok;
    if (rc) {
      done(c, &s[i++], rc, verr);
      if (rc == MC_EPEER) /* the peer is gone: the rest cannot work */
        for (; i < n; i++)
          done(c, &s[i], MC_EPEER, 0);
    }
  }
}

/* Pool slices are copied and completed here (memcpy).  Plain-memory
 * slices that span several copy windows go to the copy workers; the others
 * (and all of them with copy_threads 0) are copied here, consecutive ones
 * of one direction batched.  A full worker queue
 * accepts a prefix (back-pressure). */
static int shm_submit(void *vctx, void *vep, const mc_slice *s, uint32_t n,
                      uint32_t *accepted) {
  shm_ctx *c = vctx;
  shm_ep *ep = vep;
  *accepted = 0;
  if (!ep)
    return MC_EINVAL;
  int checked = 0, alive = 1;
  uint32_t run = 0; /* inline mode: vm slices s[i - run .. i) not yet copied */
  uint32_t i = 0;
  int rc = 0;
  for (; i < n; i++) {
    const shm_rmem *rm = s[i].remote_mem;
    int vm = rm && !rm->ptr;
    if (vm && !checked) {
      alive = shm_ep_alive(ep);
      checked = 1;
    }
    int st = vm && !alive ? MC_EPEER : shm_check_slice(ep, &s[i]);
    /* Only a slice spanning several copy windows gains from the workers;
     * a hand-off costs more than copying one window here. */
    int spans = c->workers && s[i].len &&
                s[i].remote_addr / c->copy_chunk !=
                    (s[i].remote_addr + s[i].len - 1) / c->copy_chunk;
    int joins = vm && !st && !spans;
    if (run && (!joins || run == SHM_IOV_MAX || s[i].op != s[i - 1].op)) {
      vm_inline(c, ep, &s[i - run], run);
      run = 0;
    }
    if (st) {
      done(c, &s[i], st, 0);
    } else if (!vm) {
      shm_pool_copy(&s[i]);
      done(c, &s[i], 0, 0);
    } else if (joins) {
      run++;
    } else if ((rc = shm_workers_push(c->workers, ep, &s[i]))) {
      break; /* queue full: back-pressure from here */
    }
  }
  if (run)
    vm_inline(c, ep, &s[i - run], run);
  *accepted = i;
  return i == 0 ? rc : 0;
}

static const char *shm_vendor_strerror(void *vctx, int32_t err) {
  (void)vctx;
  const char *t = strerrordesc_np(err);
  return t ? t : "unknown errno";
}

static int shm_alloc_mem(void *vctx, uint64_t len, const char *location,
                         void **addr) {
  shm_ctx *c = vctx;
  char err[256];
  int rc = shm_pools_alloc(&c->pools, len, location, addr, err, sizeof err);
  if (rc)
    SHM_LOG(c, rc == MC_ENOTSUP ? MC_LOG_DEBUG : MC_LOG_ERROR, "alloc_mem: %s",
            err);
  return rc;
}

static int shm_free_mem(void *vctx, void *addr, uint64_t len) {
  shm_ctx *c = vctx;
  return shm_pools_free(&c->pools, addr, len);
}

static const mc_transport_ops shm_ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = "shm",
    .version = "0.1.0",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE |
            MC_CAP_MT_SUBMIT | MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_CPU,
    .params = shm_params,
    .param_info_size = sizeof(mc_param_info),
    .init = shm_init,
    .fini = shm_fini,
    .query_rails = shm_query_rails,
    .local_desc = shm_local_desc,
    .register_mem = shm_register,
    .deregister_mem = shm_deregister,
    .connect = shm_connect,
    .disconnect = shm_disconnect,
    .import_mem = shm_import_mem,
    .release_mem = shm_release_mem,
    .submit = shm_submit,
    .progress = NULL,
    .cancel = NULL,
    .send_notify = NULL,
    .vendor_strerror = shm_vendor_strerror,
    .alloc_mem = shm_alloc_mem,
    .free_mem = shm_free_mem,
    /* Large slices: the copy workers split them into copy_chunk pieces
     * themselves, and pool memcpy gains nothing from smaller ones. */
    .slice_size = 4u << 20,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void);
MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) {
  return &shm_ops;
}
