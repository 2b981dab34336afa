/* shm transport: memfd and file/DAX pools owned by this process. */
#include "shm_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mooncake/errors.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define SHM_MPOL_PREFERRED 1
#define SHM_DAX_ALIGN (2u << 20)

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (uint64_t)p : 4096;
}

static uint64_t round_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

void shm_populate(void *addr, uint64_t len) {
  /* Faulting pages in now keeps page faults out of the copy loop. */
  (void)madvise(addr, len, MADV_POPULATE_WRITE);
}

void shm_pool_memfd_name(uint64_t id, uint64_t secret, char *buf, size_t len) {
  snprintf(buf, len, "mc-shm-%" PRIx64 "-%016" PRIx64, id, secret);
}

/* "cpu:N" -> N; -1 for "cpu"/NULL; -2 for a kind pools cannot serve. */
static int location_node(const char *location) {
  if (!location || !strcmp(location, "cpu"))
    return -1;
  if (strncmp(location, "cpu:", 4))
    return -2;
  char *end;
  long n = strtol(location + 4, &end, 10);
  if (end == location + 4 || *end || n < 0 || n >= 1024)
    return -2;
  return (int)n;
}

static void bind_node(void *addr, uint64_t len, int node) {
  if (node < 0)
    return;
  unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
  mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
  /* Preferred, not bind: a missing node degrades placement, never fails. */
  (void)syscall(SYS_mbind, addr, len, SHM_MPOL_PREFERRED, mask, 1024ul, 0u);
}

static int alloc_memfd(shm_pools *ps, uint64_t len, int node, void **addr,
                       char *err, size_t errlen) {
  shm_pool *p = calloc(1, sizeof *p);
  if (!p)
    return MC_ENOMEM;
  p->id = ++ps->next_id;
  p->kind = SHM_RKEY_MEMFD;
  p->secret = mix64(ps->secret_seed ^ p->id);
  p->size = round_up(len, page_size());
  char name[64];
  shm_pool_memfd_name(p->id, p->secret, name, sizeof name);
  p->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  struct stat st;
  if (p->fd < 0 || ftruncate(p->fd, (off_t)p->size) ||
      fcntl(p->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) ||
      fstat(p->fd, &st)) {
    int e = errno;
    snprintf(err, errlen, "memfd pool of %" PRIu64 " bytes: %s", p->size,
             strerror(e));
    if (p->fd >= 0)
      close(p->fd);
    free(p);
    return e == ENOMEM || e == ENOSPC || e == EMFILE ? MC_ENOMEM : MC_EIO;
  }
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  void *m = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
  if (m == MAP_FAILED) {
    snprintf(err, errlen, "mmap of memfd pool (%" PRIu64 " bytes): %s",
             p->size, strerror(errno));
    close(p->fd);
    free(p);
    return MC_ENOMEM;
  }
  p->base = m;
  bind_node(m, p->size, node);
  if (ps->populate)
    shm_populate(m, p->size);
  p->next = ps->head;
  ps->head = p;
  *addr = m;
  return 0;
}

/* Opens and maps the configured file window once. */
static int open_file_pool(shm_pools *ps, char *err, size_t errlen) {
  uint64_t pg = page_size();
  if (ps->window_off % pg) {
    snprintf(err, errlen, "pool_offset %" PRIu64 " is not page aligned",
             ps->window_off);
    return MC_EINVAL;
  }
  int fd = open(ps->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    snprintf(err, errlen, "pool_path %s: %s", ps->path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return errno == EACCES || errno == EPERM ? MC_EACCES : MC_EIO;
  }
  uint64_t need = ps->window_off + ps->window_size;
  if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < need &&
      ftruncate(fd, (off_t)need)) {
    /* Grow only: shrinking would SIGBUS peers mapping the file. */
    snprintf(err, errlen, "pool_path %s: cannot grow to %" PRIu64 ": %s",
             ps->path, need, strerror(errno));
    close(fd);
    return MC_EIO;
  }
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    snprintf(err, errlen, "pool_path %s is neither a file nor a DAX device",
             ps->path);
    close(fd);
    return MC_EINVAL;
  }
  void *m = mmap(NULL, ps->window_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 (off_t)ps->window_off);
  if (m == MAP_FAILED) {
    snprintf(err, errlen, "mmap of %s [%" PRIu64 ", +%" PRIu64 "): %s",
             ps->path, ps->window_off, ps->window_size, strerror(errno));
    close(fd);
    return MC_EIO;
  }
  shm_pool *p = calloc(1, sizeof *p);
  if (!p) {
    munmap(m, ps->window_size);
    close(fd);
    return MC_ENOMEM;
  }
  p->id = ++ps->next_id;
  p->kind = SHM_RKEY_FILE;
  p->fd = fd;
  p->base = m;
  p->size = ps->window_size;
  p->file_off = ps->window_off;
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  p->secret = mix64(ps->secret_seed ^ p->id);
  /* Device DAX maps in 2 MiB units; files in pages. */
  p->align = S_ISCHR(st.st_mode) ? SHM_DAX_ALIGN : pg;
  p->next = ps->head;
  ps->head = p;
  ps->file = p;
  return 0;
}

/* First fit in the sorted extent list. */
static int file_alloc(shm_pool *p, uint64_t len, uint64_t *off) {
  len = round_up(len, p->align);
  uint64_t at = 0;
  size_t i = 0;
  for (; i <= p->n_ext; i++) {
    uint64_t end = i < p->n_ext ? p->ext[i].off : p->size;
    if (end >= at && end - at >= len)
      break;
    if (i < p->n_ext)
      at = round_up(p->ext[i].off + p->ext[i].len, p->align);
  }
  if (i > p->n_ext)
    return MC_ENOMEM;
  if (p->n_ext == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    shm_extent *e = realloc(p->ext, cap * sizeof *e);
    if (!e)
      return MC_ENOMEM;
    p->ext = e;
    p->cap = cap;
  }
  memmove(p->ext + i + 1, p->ext + i, (p->n_ext - i) * sizeof *p->ext);
  p->ext[i] = (shm_extent){at, len};
  p->n_ext++;
  *off = at;
  return 0;
}

int shm_pools_alloc(shm_pools *ps, uint64_t len, const char *location,
                    void **addr, char *err, size_t errlen) {
  int node = location_node(location);
  if (node == -2) {
    snprintf(err, errlen, "location %s: shm pools hold host memory only",
             location);
    return MC_ENOTSUP;
  }
  if (len == 0) {
    snprintf(err, errlen, "zero-length allocation");
    return MC_EINVAL;
  }
  if (!ps->path[0])
    return alloc_memfd(ps, len, node, addr, err, errlen);
  if (!ps->file) {
    int rc = open_file_pool(ps, err, errlen);
    if (rc)
      return rc;
  }
  uint64_t off;
  if (file_alloc(ps->file, len, &off)) {
    snprintf(err, errlen, "pool %s full: no %" PRIu64 " free bytes in its %" PRIu64
             "-byte window", ps->path, len, ps->file->size);
    return MC_ENOMEM;
  }
  *addr = ps->file->base + off;
  if (ps->populate)
    shm_populate(*addr, len);
  return 0;
}

int shm_pools_free(shm_pools *ps, void *addr, uint64_t len) {
  (void)len;
  uint8_t *a = addr;
  shm_pool **pp = &ps->head;
  for (shm_pool *p = *pp; p; pp = &p->next, p = *pp) {
    if (a < p->base || a >= p->base + p->size)
      continue;
    if (p->kind == SHM_RKEY_FILE) {
      uint64_t off = (uint64_t)(a - p->base);
      for (size_t i = 0; i < p->n_ext; i++) {
        if (p->ext[i].off == off) {
          memmove(p->ext + i, p->ext + i + 1, (p->n_ext - i - 1) * sizeof *p->ext);
          p->n_ext--;
          return 0;
        }
      }
      return MC_ENOENT;
    }
    if (a != p->base)
      return MC_ENOENT;
    *pp = p->next;
    munmap(p->base, p->size);
    close(p->fd);
    free(p);
    return 0;
  }
  return MC_ENOENT;
}

const shm_pool *shm_pools_find(const shm_pools *ps, uint64_t addr,
                               uint64_t len) {
  for (const shm_pool *p = ps->head; p; p = p->next) {
    uint64_t b = (uint64_t)(uintptr_t)p->base;
    if (addr >= b && addr - b <= p->size && len <= p->size - (addr - b))
      return p;
  }
  return NULL;
}

void shm_pools_fini(shm_pools *ps) {
  shm_pool *p = ps->head;
  while (p) {
    shm_pool *n = p->next;
    munmap(p->base, p->size);
    close(p->fd);
    free(p->ext);
    free(p);
    p = n;
  }
  ps->head = ps->file = NULL;
}
