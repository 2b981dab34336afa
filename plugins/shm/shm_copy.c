/* shm transport: the data path.  Pool imports are plain memcpy (no syscall,
 * no help from the target); plain memory goes through process_vm_readv/
 * writev.  Every slice is checked against the local registration and the
 * import before a byte is touched. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/uio.h>

#include "shm_ctx.h"
#include "shm_ident.h"

#ifndef SHM_MEMCPY_PIECE
#define SHM_MEMCPY_PIECE (64u << 10)
#endif

int shm_ep_alive(shm_ep *ep) {
  if (atomic_load_explicit(&ep->dead, memory_order_relaxed))
    return 0;
  if (ep->pidfd < 0)
    return 1;
  /* A pidfd turns readable when the process exits. */
  struct pollfd p = {ep->pidfd, POLLIN, 0};
  if (poll(&p, 1, 0) > 0) {
    atomic_store(&ep->dead, 1);
    return 0;
  }
  return 1;
}

static int vm_error(shm_ctx *c, shm_ep *ep, uint32_t op, int e) {
  if (e == ESRCH) {
    atomic_store(&ep->dead, 1);
    return MC_EPEER;
  }
  if (e == EFAULT)
    return MC_ERANGE; /* the peer unmapped memory it still had registered */
  if (e == ENOMEM)
    return MC_ENOMEM;
  if (e == EPERM || e == EACCES) {
    if (!atomic_exchange(&ep->warned, 1)) {
      char scope[64];
      shm_ident_ptrace_scope(scope, sizeof scope);
      SHM_LOG(c, MC_LOG_ERROR,
              "process_vm_%s to pid %u of %s refused (%s): "
              "/proc/sys/kernel/yama/ptrace_scope is %s; needs the same uid "
              "and ptrace_scope 0, CAP_SYS_PTRACE, or the target's "
              "ptracer_any option",
              op == MC_OP_READ ? "readv" : "writev", ep->peer.pid,
              ep->peer_name, strerror(e), scope);
    }
    return MC_EACCES;
  }
  return MC_EIO;
}

int shm_vm_copy(shm_ctx *c, shm_ep *ep, uint32_t op, const shm_seg *seg,
                uint32_t n, uint32_t *failed, int32_t *verr) {
  uint32_t i = 0; /* first segment not finished */
  uint64_t off = 0; /* bytes of seg[i] already moved */
  while (i < n) {
    struct iovec l[SHM_IOV_MAX], r[SHM_IOV_MAX];
    int k = 0;
    for (uint32_t j = i; j < n && k < SHM_IOV_MAX; j++, k++) {
      uint64_t skip = j == i ? off : 0;
      l[k].iov_base = (void *)(uintptr_t)(seg[j].laddr + skip);
      r[k].iov_base = (void *)(uintptr_t)(seg[j].raddr + skip);
      l[k].iov_len = r[k].iov_len = seg[j].len - skip;
    }
    ssize_t got = op == MC_OP_READ
                      ? process_vm_readv((pid_t)ep->peer.pid, l, (unsigned long)k,
                                         r, (unsigned long)k, 0)
                      : process_vm_writev((pid_t)ep->peer.pid, l, (unsigned long)k,
                                          r, (unsigned long)k, 0);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      /* No progress at all: seg[i] is the one that fails. */
      int e = got < 0 ? errno : EFAULT;
      *failed = i;
      *verr = e;
      return vm_error(c, ep, op, e);
    }
    /* A short count stops inside some segment; resume exactly there. */
    uint64_t g = (uint64_t)got;
    while (g && i < n) {
      uint64_t rest = seg[i].len - off;
      if (g < rest) {
        off += g;
        g = 0;
      } else {
        g -= rest;
        i++;
        off = 0;
      }
    }
  }
  return 0;
}

int shm_check_slice(const shm_ep *ep, const mc_slice *s) {
  const shm_lmem *lm = s->local_mem;
  const shm_rmem *rm = s->remote_mem;
  if (!lm || !rm || rm->ep != ep || s->len == 0 ||
      (s->op != MC_OP_READ && s->op != MC_OP_WRITE))
    return MC_EINVAL;
  if (s->local_addr < lm->addr || s->local_addr - lm->addr > lm->len ||
      s->len > lm->len - (s->local_addr - lm->addr))
    return MC_ERANGE;
  if (s->remote_addr < rm->base || s->remote_addr - rm->base > rm->len ||
      s->len > rm->len - (s->remote_addr - rm->base))
    return MC_ERANGE;
  return shm_check_live(ep, rm->slot, rm->reg_secret);
}

int shm_check_live(const shm_ep *ep, uint32_t slot, uint64_t secret) {
  if (ep->table && !shm_reg_live(ep->table, slot, secret))
    return shm_reg_closed(ep->table) ? MC_EPEER   /* owner shut down */
                                     : MC_EACCES; /* deregistered */
  return 0;
}

void shm_pool_copy(const mc_slice *s) {
  const shm_rmem *rm = s->remote_mem;
  uint8_t *remote = rm->ptr + (s->remote_addr - rm->base);
  void *local = (void *)(uintptr_t)s->local_addr;
  uint8_t *dst = s->op == MC_OP_READ ? local : remote;
  const uint8_t *src = s->op == MC_OP_READ ? remote : (const uint8_t *)local;
  for (uint64_t off = 0; off < s->len; off += SHM_MEMCPY_PIECE) {
    uint64_t n = s->len - off < SHM_MEMCPY_PIECE ? s->len - off : SHM_MEMCPY_PIECE;
    memcpy(dst + off, src + off, n);
  }
}
