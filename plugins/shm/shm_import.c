/* shm transport: importing a peer's buffer (import_mem/release_mem).
 *
 * A pool key is mapped once per (endpoint, pool) and shared by every import
 * of that pool; a plain (vm) key only records the range.  Every check a
 * remote access needs happens here or in shm_copy.c: the key's range must
 * cover the import, the key must name the endpoint's own process, and the
 * file we map must be the one the owner described (device, inode, memfd
 * name with its secret, size). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm_ctx.h"

static int open_checked(shm_ctx *c, shm_ep *ep, const shm_rkey *k, int *fdp,
                        struct stat *st, char *err, size_t errlen) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/%u/fd/%d", k->pid, k->fd);
  int fd = -1;
  if (k->kind == SHM_RKEY_FILE) {
    /* By path first: works without ptrace rights (containers sharing a
     * DAX device); the inode check makes sure it is the owner's file. */
    fd = open(k->path, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && (fstat(fd, st) || st->st_dev != k->dev ||
                    st->st_ino != k->ino)) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    if (!ep->proven) {
      snprintf(err, errlen, "%s: peer not proven local, /proc access refused",
               proc);
      return MC_EACCES;
    }
    if (k->kind == SHM_RKEY_MEMFD) {
      char link[128], want[128];
      shm_pool_memfd_name(k->pool_id, k->secret, want, sizeof want);
      ssize_t n = readlink(proc, link, sizeof link - 1);
      if (n < 0) {
        int e = errno;
        snprintf(err, errlen, "readlink %s: %s", proc, strerror(e));
        return e == EACCES || e == EPERM ? MC_EACCES : MC_EPEER;
      }
      link[n] = 0;
      /* "/memfd:<name> (deleted)" */
      if (strncmp(link, "/memfd:", 7) || strncmp(link + 7, want, strlen(want)) ||
          (link[7 + strlen(want)] != 0 && link[7 + strlen(want)] != ' ')) {
        snprintf(err, errlen, "%s is %s, not pool %" PRIu64, proc, link,
                 k->pool_id);
        return MC_EACCES;
      }
    }
    fd = open(proc, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      snprintf(err, errlen, "open %s: %s", proc, strerror(e));
      return e == EACCES || e == EPERM ? MC_EACCES : MC_EPEER;
    }
    if (fstat(fd, st) || st->st_dev != k->dev || st->st_ino != k->ino) {
      snprintf(err, errlen, "%s is not the pool the key names (inode differs)",
               proc);
      close(fd);
      return MC_EACCES;
    }
  }
  /* A mapping beyond the end of a regular file would SIGBUS. */
  if (S_ISREG(st->st_mode) &&
      (uint64_t)st->st_size < k->file_off + k->pool_size) {
    snprintf(err, errlen, "pool %" PRIu64 " is %lld bytes, key says %" PRIu64,
             k->pool_id, (long long)st->st_size, k->file_off + k->pool_size);
    close(fd);
    return MC_ERANGE;
  }
  (void)c;
  *fdp = fd;
  return 0;
}

static int map_pool(shm_ctx *c, shm_ep *ep, const shm_rkey *k, shm_map **out,
                    char *err, size_t errlen) {
  for (shm_map *m = ep->maps; m; m = m->next) {
    if (m->kind == k->kind && m->pool_id == k->pool_id) {
      if (m->size != k->pool_size) {
        snprintf(err, errlen, "pool %" PRIu64 " size changed", k->pool_id);
        return MC_EPROTO;
      }
      m->refs++;
      *out = m;
      return 0;
    }
  }
  long pg = sysconf(_SC_PAGESIZE);
  if (pg <= 0 || k->file_off % (uint64_t)pg) {
    snprintf(err, errlen, "pool offset %" PRIu64 " not page aligned",
             k->file_off);
    return MC_EPROTO;
  }
  int fd;
  struct stat st;
  int rc = open_checked(c, ep, k, &fd, &st, err, errlen);
  if (rc)
    return rc;
  void *b = mmap(NULL, k->pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 (off_t)k->file_off);
  int e = errno;
  close(fd); /* the mapping keeps the pages, even after the owner dies */
  if (b == MAP_FAILED) {
    snprintf(err, errlen, "mmap of pool %" PRIu64 " (%" PRIu64 " bytes): %s",
             k->pool_id, k->pool_size, strerror(e));
    return MC_ENOMEM;
  }
  shm_map *m = calloc(1, sizeof *m);
  if (!m) {
    munmap(b, k->pool_size);
    return MC_ENOMEM;
  }
  *m = (shm_map){ep->maps, k->kind, k->pool_id, b, k->pool_size, 1};
  ep->maps = m;
  *out = m;
  return 0;
}

static void unref_map(shm_ep *ep, shm_map *m) {
  if (--m->refs > 0)
    return;
  for (shm_map **pp = &ep->maps; *pp; pp = &(*pp)->next) {
    if (*pp == m) {
      *pp = m->next;
      break;
    }
  }
  munmap(m->base, m->size);
  free(m);
}

int shm_import(shm_ctx *c, shm_ep *ep, uint64_t base, uint64_t len,
               const void *rkey, size_t rkey_len, shm_rmem **out) {
  shm_rkey k;
  const char *why = NULL;
  if (!ep || len == 0 || base + len < base)
    return MC_EINVAL;
  if (shm_rkey_decode(rkey, rkey_len, &k, &why)) {
    SHM_LOG(c, MC_LOG_WARN, "import from %s: malformed key (%s)",
            ep->peer_name, why);
    return MC_EPROTO;
  }
  if (base < k.base || base - k.base > k.len || len > k.len - (base - k.base)) {
    SHM_LOG(c, MC_LOG_WARN,
            "import from %s: [0x%" PRIx64 ", +%" PRIu64
            ") outside the key's [0x%" PRIx64 ", +%" PRIu64 ")",
            ep->peer_name, base, len, k.base, k.len);
    return MC_ERANGE;
  }
  /* The owner's table says whether the key is live and what it covers. */
  if (ep->table && (!shm_reg_live(ep->table, k.slot, k.reg_secret) ||
                    ep->table[k.slot].base != k.base ||
                    ep->table[k.slot].len != k.len)) {
    SHM_LOG(c, MC_LOG_WARN, "import from %s: key for [0x%" PRIx64 ", +%" PRIu64
            ") is not a live registration", ep->peer_name, k.base, k.len);
    return MC_EACCES;
  }
  if (k.pid != ep->peer.pid) {
    SHM_LOG(c, MC_LOG_WARN, "import from %s: key names pid %u, peer is pid %u",
            ep->peer_name, k.pid, ep->peer.pid);
    return MC_EACCES;
  }
  shm_rmem *rm = calloc(1, sizeof *rm);
  if (!rm)
    return MC_ENOMEM;
  rm->ep = ep;
  rm->base = base;
  rm->len = len;
  rm->slot = k.slot;
  rm->reg_secret = k.reg_secret;
  if (k.kind != SHM_RKEY_VM) {
    char err[256];
    int rc = map_pool(c, ep, &k, &rm->map, err, sizeof err);
    if (rc == 0) {
      rm->ptr = rm->map->base + k.reg_off + (base - k.base);
      if (c->populate)
        shm_populate(rm->ptr, len);
    } else if (c->allow_vm && ep->proven && rc != MC_EPROTO) {
      SHM_LOG(c, MC_LOG_INFO, "import from %s: pool not mappable (%s); "
              "using process_vm copies", ep->peer_name, err);
    } else {
      SHM_LOG(c, MC_LOG_WARN, "import from %s: %s", ep->peer_name, err);
      free(rm);
      return rc;
    }
  } else if (!c->allow_vm || !ep->proven) {
    SHM_LOG(c, MC_LOG_WARN, "import from %s: plain memory needs process_vm "
            "access (%s)", ep->peer_name,
            c->allow_vm ? "peer not proven in our pid namespace"
                        : "allow_vm is false");
    free(rm);
    return c->allow_vm ? MC_EACCES : MC_ENOTSUP;
  }
  rm->next = ep->rmems;
  ep->rmems = rm;
  *out = rm;
  return 0;
}

void shm_release(shm_ctx *c, shm_rmem *rm) {
  (void)c;
  shm_ep *ep = rm->ep;
  for (shm_rmem **pp = &ep->rmems; *pp; pp = &(*pp)->next) {
    if (*pp == rm) {
      *pp = rm->next;
      break;
    }
  }
  if (rm->map)
    unref_map(ep, rm->map);
  free(rm);
}
