/* nvme_file.c - registrations and imports of the nvmeof plugin (nvme.h).
 *
 * Target side: register_mem of an MC_MEM_FILE range opens the path as the
 * engine asked (read-only for MC_MEM_F_READ_ONLY; O_DIRECT unless the file
 * system refuses it with EINVAL, then buffered) and publishes a key saying
 * how to reach the file: this host and its absolute path, plus the NVMe-oF
 * subsystem NQN and namespace id when the path is a namespace block
 * device.  Host memory is registered for local use (a fixed buffer of the
 * rings).  Initiator side: import_mem opens the same file -- through the
 * registration itself in this process, by path on the same host, or as the
 * /dev/nvmeXnY this host got from `nvme connect` to that subsystem -- and
 * fails MC_ENODEV when the file is out of reach, so the core hands such
 * requests to the next transport (tcp, served by the target). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "nvme.h"

/* Every live file registration of this process, for imports made here. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static nv_freg *g_fregs;

static void freg_put(nv_freg *f) {
  if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
    if (f->fd >= 0)
      close(f->fd);
    free(f);
  }
}

/* The live registration a key names, with a reference; NULL when revoked. */
static nv_freg *freg_find(const nv_key *k) {
  pthread_mutex_lock(&g_lock);
  nv_freg *f = g_fregs;
  while (f && f->key.reg_id != k->reg_id)
    f = f->next;
  if (f && (f->key.addr != k->addr || f->key.len != k->len ||
            f->key.file_offset != k->file_offset || strcmp(f->key.path, k->path) != 0))
    f = NULL;
  if (f)
    atomic_fetch_add(&f->refs, 1);
  pthread_mutex_unlock(&g_lock);
  return f;
}

static int errno_rc(int e) {
  switch (e) {
  case ENOENT:
  case ENOTDIR:
    return MC_ENOENT;
  case EACCES:
  case EPERM:
  case EROFS:
    return MC_EACCES;
  case ENOMEM:
    return MC_ENOMEM;
  default:
    return MC_EINVAL;
  }
}

/* Opens path read-only or read-write, O_DIRECT when wanted and taken;
 * *direct says which.  -1 with errno. */
static int open_file(const char *path, int ro, int want_direct, int *direct) {
  int fl = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  *direct = 0;
  if (want_direct) {
    int fd = open(path, fl | O_DIRECT);
    if (fd >= 0) {
      *direct = 1;
      return fd;
    }
    if (errno != EINVAL) /* EINVAL: this file system refuses O_DIRECT */
      return -1;
  }
  return open(path, fl);
}

/* Disk name of the device holding fd's file ("" when sysfs has none). */
static void disk_of(nv_ctx *c, const struct stat *st, char *disk) {
  dev_t d = S_ISBLK(st->st_mode) ? st->st_rdev : st->st_dev;
  if (nv_sysfs_disk_of(c->sysroot, major(d), minor(d), disk, NV_DISK_NAME))
    disk[0] = '\0';
}

static uint64_t random64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
    v = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&v;
  return v;
}

static int reg_file(nv_ctx *c, const mc_mem_desc *d, nv_lmem *m, nv_key *k) {
  int ro = (d->flags & MC_MEM_F_READ_ONLY) != 0;
  nv_freg *f = calloc(1, sizeof *f);
  if (!f)
    return MC_ENOMEM;
  f->fd = open_file(d->path, ro, c->direct, &f->direct);
  if (f->fd < 0) {
    int e = errno;
    NV_LOG(c, MC_LOG_ERROR, "cannot open '%s' %s: %s", d->path, ro ? "read-only" : "read-write",
           strerror(e));
    free(f);
    return errno_rc(e);
  }
  struct stat st;
  if (fstat(f->fd, &st) || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
    NV_LOG(c, MC_LOG_ERROR, "'%s' is not a regular file or block device", d->path);
    close(f->fd);
    free(f);
    return MC_EINVAL;
  }
  atomic_init(&f->refs, 1);
  atomic_init(&f->live, 1);
  f->align = f->direct ? (c->align_override ? (uint32_t)c->align_override : nv_dio_align(f->fd))
                       : 1;
  disk_of(c, &st, f->disk);
  k->kind = NV_KIND_FILE;
  k->flags = ro ? NV_KEY_RO : 0;
  k->reg_id = random64();
  k->file_offset = d->file_offset;
  k->dev = S_ISBLK(st.st_mode) ? (uint64_t)st.st_rdev : (uint64_t)st.st_dev;
  k->ino = S_ISBLK(st.st_mode) ? 0 : (uint64_t)st.st_ino;
  /* A namespace block device is reachable from every host that connected
   * its subsystem; a file inside a file system only by its path here. */
  if (S_ISBLK(st.st_mode) &&
      nv_sysfs_ns_ident(c->sysroot, f->disk, k->nqn, sizeof k->nqn, &k->nsid))
    k->nqn[0] = '\0';
  char abs[PATH_MAX];
  if (!realpath(d->path, abs) || strlen(abs) >= sizeof k->path)
    snprintf(abs, sizeof abs, "%s", d->path);
  snprintf(k->path, sizeof k->path, "%s", abs);
  f->key = *k;
  m->freg = f;
  NV_LOG(c, MC_LOG_DEBUG, "registered '%s' +%" PRIu64 " len %" PRIu64 " (%s, %s, disk %s%s%s)",
         abs, d->file_offset, d->len, ro ? "read-only" : "read-write",
         f->direct ? "O_DIRECT" : "buffered", f->disk[0] ? f->disk : "?",
         k->nqn[0] ? ", nqn " : "", k->nqn);
  return 0;
}

int nv_register(nv_ctx *c, const mc_mem_desc *d, void **mem, void *rkey, size_t *rkey_len) {
  if (!d || !mem || !rkey_len || d->len == 0)
    return MC_EINVAL;
  int file = d->kind == MC_MEM_FILE;
  if (file && (c->host->abi_minor < 3 || !d->path || !*d->path))
    return MC_EINVAL;
  int gpu = d->kind == MC_MEM_CUDA;
  if (!file && d->kind != MC_MEM_CPU && !(gpu && c->gds)) {
    NV_LOG(c, MC_LOG_INFO, "memory kind 0x%x at 0x%" PRIx64 ": %s", d->kind, d->addr,
           gpu ? "GPU memory needs cuFile (GDS), which is not loaded (cufile_library); "
                 "another transport must carry it"
               : "not served by nvmeof");
    return MC_ENOTSUP;
  }
  nv_lmem *m = calloc(1, sizeof *m);
  nv_key *k = calloc(1, sizeof *k);
  if (!m || !k) {
    free(m);
    free(k);
    return MC_ENOMEM;
  }
  m->addr = d->addr;
  m->len = d->len;
  m->slot = -1;
  k->host_hash = c->host_hash;
  k->pid = (uint32_t)getpid();
  k->addr = d->addr;
  k->len = d->len;
  int rc = 0;
  if (file) {
    m->kind = NV_KIND_FILE;
    rc = reg_file(c, d, m, k);
  } else {
    m->kind = gpu ? NV_KIND_GPU : NV_KIND_CPU;
    k->kind = (uint8_t)m->kind;
  }
  if (rc) {
    free(m);
    free(k);
    return rc;
  }
  size_t need = nv_key_encode(k, rkey, *rkey_len);
  free(k);
  if (need > *rkey_len || need > MC_RKEY_MAX) {
    if (m->freg && need > MC_RKEY_MAX)
      NV_LOG(c, MC_LOG_ERROR, "'%s': path and NQN too long for a remote key (%zu > %d bytes)",
             m->freg->key.path, need, MC_RKEY_MAX);
    *rkey_len = need;
    freg_put(m->freg);
    free(m);
    return need > MC_RKEY_MAX ? MC_EINVAL : MC_ENOSPC;
  }
  *rkey_len = need;
  if (m->kind == NV_KIND_CPU && c->fixed_bufs)
    m->slot = nv_bufs_add(c, (void *)(uintptr_t)d->addr, d->len);
  /* GDS also works on unregistered GPU memory (through its own bounce
   * buffers), so a refused registration only costs speed. */
  if (m->kind == NV_KIND_GPU) {
    int e = c->gds->buf_register((void *)(uintptr_t)d->addr, d->len);
    m->gpu_reg = e == 0;
    if (e)
      NV_LOG(c, MC_LOG_INFO, "cuFileBufRegister(0x%" PRIx64 ", %" PRIu64 ") failed (%d)",
             d->addr, d->len, e);
  }
  if (m->freg) {
    pthread_mutex_lock(&g_lock);
    m->freg->next = g_fregs;
    g_fregs = m->freg;
    pthread_mutex_unlock(&g_lock);
  }
  pthread_mutex_lock(&c->lock);
  m->next = c->lmems;
  if (c->lmems)
    c->lmems->prev = m;
  c->lmems = m;
  pthread_mutex_unlock(&c->lock);
  *mem = m;
  return 0;
}

int nv_deregister(nv_ctx *c, void *mem) {
  nv_lmem *m = mem;
  if (!m)
    return MC_EINVAL;
  pthread_mutex_lock(&c->lock);
  if (m->prev)
    m->prev->next = m->next;
  else
    c->lmems = m->next;
  if (m->next)
    m->next->prev = m->prev;
  pthread_mutex_unlock(&c->lock);
  if (m->freg) {
    pthread_mutex_lock(&g_lock);
    nv_freg **pp = &g_fregs;
    while (*pp && *pp != m->freg)
      pp = &(*pp)->next;
    if (*pp)
      *pp = m->freg->next;
    atomic_store(&m->freg->live, 0);
    pthread_mutex_unlock(&g_lock);
    freg_put(m->freg);
  }
  if (m->slot >= 0)
    nv_bufs_del(c, m->slot);
  if (m->gpu_reg && c->gds)
    c->gds->buf_deregister((void *)(uintptr_t)m->addr);
  free(m);
  return 0;
}

int nv_rail_for(nv_ctx *c, const char *disk) {
  for (int i = 0; disk[0] && i < c->nrails - 1; i++)
    if (strcmp(c->rails[i].name, disk) == 0)
      return i;
  return c->nrails - 1; /* the "files" rail */
}

/* Opens the file of key k from this host: *owner set when it is a
 * registration of this process.  fd, or a negative MC_E* (logged). */
static int reach(nv_ctx *c, const nv_key *k, int *direct, uint32_t *align, nv_freg **owner,
                 char **opened) {
  int ro = (k->flags & NV_KEY_RO) != 0;
  *owner = NULL;
  if (k->host_hash == c->host_hash && k->pid == (uint32_t)getpid() && c->local_paths) {
    nv_freg *f = freg_find(k);
    if (!f) {
      NV_LOG(c, MC_LOG_WARN, "import of '%s': the registration was revoked", k->path);
      return MC_EACCES;
    }
    int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      freg_put(f);
      return MC_ENOMEM;
    }
    *direct = f->direct;
    *align = f->align;
    *owner = f;
    *opened = strdup(k->path);
    return fd;
  }
  char why[160] = "";
  if (k->host_hash == c->host_hash && c->local_paths) {
    int fd = open_file(k->path, ro, c->direct, direct);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 &&
        (S_ISBLK(st.st_mode) ? (uint64_t)st.st_rdev == k->dev
                             : (uint64_t)st.st_dev == k->dev && (uint64_t)st.st_ino == k->ino)) {
      *align = *direct ? (c->align_override ? (uint32_t)c->align_override : nv_dio_align(fd)) : 1;
      *opened = strdup(k->path);
      return fd;
    }
    snprintf(why, sizeof why, "%s", fd < 0 ? strerror(errno) : "another file has that path here");
    if (fd >= 0)
      close(fd);
  } else if (k->host_hash == c->host_hash) {
    snprintf(why, sizeof why, "local_paths is off");
  } else {
    snprintf(why, sizeof why, "it is on another host");
  }
  if (k->nqn[0]) {
    char disk[NV_DISK_NAME], dev[600];
    if (nv_sysfs_find_ns(c->sysroot, k->nqn, k->nsid, disk, sizeof disk) == 0) {
      snprintf(dev, sizeof dev, "%s/%s", c->devroot, disk);
      int fd = open_file(dev, ro, c->direct, direct);
      if (fd >= 0) {
        *align = *direct ? (c->align_override ? (uint32_t)c->align_override : nv_dio_align(fd)) : 1;
        *opened = strdup(dev);
        NV_LOG(c, MC_LOG_DEBUG, "'%s' of the peer is %s here (nqn %s, nsid %u)", k->path, dev,
               k->nqn, k->nsid);
        return fd;
      }
      NV_LOG(c, MC_LOG_WARN, "cannot open %s (nqn %s nsid %u): %s", dev, k->nqn, k->nsid,
             strerror(errno));
      return errno_rc(errno) == MC_EACCES ? MC_EACCES : MC_ENODEV;
    }
    NV_LOG(c, MC_LOG_WARN,
           "cannot reach '%s' of the peer (%s) and NVMe-oF subsystem %s namespace %u is not "
           "connected here (nvme connect); the next transport (tcp) must carry it",
           k->path, why, k->nqn, k->nsid);
    return MC_ENODEV;
  }
  NV_LOG(c, MC_LOG_WARN,
         "cannot reach '%s' of the peer from this host (%s) and it is no NVMe-oF namespace; "
         "the next transport (tcp) must carry it",
         k->path, why);
  return MC_ENODEV;
}

int nv_import(nv_ctx *c, uint64_t base, uint64_t len, const void *rkey, size_t rkey_len,
              void **rmem) {
  nv_key *k = malloc(sizeof *k);
  if (!k)
    return MC_ENOMEM;
  int rc = nv_key_decode(rkey, rkey_len, k);
  if (rc == 0 && k->kind != NV_KIND_FILE)
    rc = MC_ENOTSUP; /* host memory: nvmeof reaches files only */
  else if (rc == 0 && (len == 0 || base < k->addr || base - k->addr > k->len ||
                       len > k->len - (base - k->addr)))
    rc = MC_ERANGE;
  int direct = 0;
  uint32_t align = 1;
  nv_freg *owner = NULL;
  char *opened = NULL;
  int fd = rc ? rc : reach(c, k, &direct, &align, &owner, &opened);
  if (fd < 0) {
    free(k);
    return fd;
  }
  nv_imp *m = calloc(1, sizeof *m);
  if (!m || !opened) {
    free(m);
    free(opened);
    close(fd);
    freg_put(owner);
    free(k);
    return MC_ENOMEM;
  }
  m->base = base;
  m->len = len;
  m->file_off = k->file_offset + (base - k->addr);
  m->fd = fd;
  m->fd_direct = direct;
  atomic_init(&m->direct, direct);
  m->fd_buf = -1;
  pthread_mutex_init(&m->lock, NULL);
  m->ro = (k->flags & NV_KEY_RO) != 0;
  m->align = align ? align : 1;
  m->owner = owner;
  m->path = opened;
  struct stat st;
  char disk[NV_DISK_NAME] = "";
  if (fstat(fd, &st) == 0)
    disk_of(c, &st, disk);
  m->rail = nv_rail_for(c, disk);
  m->fslot = nv_files_add(c, m->rail, fd);
  free(k);
  pthread_mutex_lock(&c->lock);
  m->next = c->imps;
  if (c->imps)
    c->imps->prev = m;
  c->imps = m;
  pthread_mutex_unlock(&c->lock);
  *rmem = m;
  return 0;
}

int nv_imp_fd_buf(nv_ctx *c, nv_imp *m) {
  pthread_mutex_lock(&m->lock);
  if (m->fd_buf < 0) {
    /* /proc/self/fd reopens the very file the import holds, without O_DIRECT
     * (the path may name another file by now). */
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", m->fd);
    m->fd_buf = open(p, (m->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (m->fd_buf < 0)
      NV_LOG(c, MC_LOG_ERROR, "'%s': cannot open it for buffered I/O: %s", m->path,
             strerror(errno));
  }
  int fd = m->fd_buf;
  pthread_mutex_unlock(&m->lock);
  return fd;
}

int nv_release(nv_ctx *c, void *rmem) {
  nv_imp *m = rmem;
  if (!m)
    return MC_EINVAL;
  pthread_mutex_lock(&c->lock);
  if (m->prev)
    m->prev->next = m->next;
  else
    c->imps = m->next;
  if (m->next)
    m->next->prev = m->prev;
  pthread_mutex_unlock(&c->lock);
  if (m->fslot >= 0)
    nv_files_del(c, m->rail, m->fslot);
  nv_gds_release(c, m);
  close(m->fd);
  if (m->fd_buf >= 0)
    close(m->fd_buf);
  freg_put(m->owner);
  pthread_mutex_destroy(&m->lock);
  free(m->path);
  free(m);
  return 0;
}
