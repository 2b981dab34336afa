/* shm transport: the data path.  Pool imports are plain memcpy (no syscall,
 * no help from the target); plain memory goes through process_vm_readv/
 * writev.  Both check the slice against the local registration and the
 * import before touching a byte. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/uio.h>

#include "shm_ctx.h"
#include "shm_ident.h"

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

static int vm_error(shm_ctx *c, shm_ep *ep, const mc_slice *s, int e) {
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
              s->op == MC_OP_READ ? "readv" : "writev", ep->peer.pid,
              ep->peer_name, strerror(e), scope);
    }
    return MC_EACCES;
  }
  return MC_EIO;
}

static int vm_copy(shm_ctx *c, shm_ep *ep, const mc_slice *s, int32_t *verr) {
  uint64_t done = 0;
  while (done < s->len) {
    struct iovec l = {(void *)(uintptr_t)(s->local_addr + done), s->len - done};
    struct iovec r = {(void *)(uintptr_t)(s->remote_addr + done), s->len - done};
    ssize_t n = s->op == MC_OP_READ
                    ? process_vm_readv((pid_t)ep->peer.pid, &l, 1, &r, 1, 0)
                    : process_vm_writev((pid_t)ep->peer.pid, &l, 1, &r, 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EFAULT;
      *verr = e;
      return vm_error(c, ep, s, e);
    }
    done += (uint64_t)n;
  }
  return 0;
}

int shm_copy_slice(shm_ctx *c, shm_ep *ep, const mc_slice *s, int32_t *verr) {
  const shm_lmem *lm = s->local_mem;
  const shm_rmem *rm = s->remote_mem;
  *verr = 0;
  if (!lm || !rm || rm->ep != ep || s->len == 0 ||
      (s->op != MC_OP_READ && s->op != MC_OP_WRITE))
    return MC_EINVAL;
  if (s->local_addr < lm->addr || s->local_addr - lm->addr > lm->len ||
      s->len > lm->len - (s->local_addr - lm->addr))
    return MC_ERANGE;
  if (s->remote_addr < rm->base || s->remote_addr - rm->base > rm->len ||
      s->len > rm->len - (s->remote_addr - rm->base))
    return MC_ERANGE;
  if (ep->table && !shm_reg_live(ep->table, rm->slot, rm->reg_secret))
    return shm_reg_closed(ep->table) ? MC_EPEER   /* owner shut down */
                                     : MC_EACCES; /* deregistered */
  if (!rm->ptr)
    return vm_copy(c, ep, s, verr);
  uint8_t *remote = rm->ptr + (s->remote_addr - rm->base);
  void *local = (void *)(uintptr_t)s->local_addr;
  if (s->op == MC_OP_READ)
    memcpy(local, remote, s->len);
  else
    memcpy(remote, local, s->len);
  return 0;
}
