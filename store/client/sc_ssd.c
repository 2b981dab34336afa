/* The client's SSD tier: one sparse file under ssd_offload_dir, registered
 * with the engine (a file range, or a shared mapping where no transport
 * serves files) and mounted as a disk segment; a worker thread that asks
 * the master for offload tasks (OffloadSync), copies each object from its
 * memory replica into the file and releases the file space of freed
 * ranges (trims), in the order the master handed them out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sc.h"

#define SC_SSD_DEFAULT (1ull << 30)
#define SC_SSD_BATCH 32u
#define SC_SSD_POLL_MS 100
#define SC_SSD_PREFIX "mc-ssd-"
#define SC_SSD_SUFFIX ".tier"

/* Deletes tier files left by handles that died without cleaning up: a
 * live handle holds an exclusive lock on its file for its whole life. */
static void sweep_stale(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  size_t pl = strlen(SC_SSD_PREFIX), sl = strlen(SC_SSD_SUFFIX);
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n <= pl + sl || strncmp(e->d_name, SC_SSD_PREFIX, pl) ||
        strcmp(e->d_name + n - sl, SC_SSD_SUFFIX))
      continue;
    int fd = openat(dirfd(d), e->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
      unlinkat(dirfd(d), e->d_name, 0);
    close(fd);
  }
  closedir(d);
}

static int use_mmap(mc_store *s) {
  void *p = mmap(NULL, s->ssd_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->ssd_fd, 0);
  if (p == MAP_FAILED)
    return sc_fail(MC_STORE_INTERNAL_ERROR, "create: SSD tier %s: mmap: %s", s->ssd_path,
                   strerror(errno));
  int rc = mc_register(s->engine, p, s->ssd_size, NULL);
  if (rc) {
    munmap(p, s->ssd_size);
    return sc_fail(sc_from_mc(rc, 1), "create: SSD tier %s: register the mapping: %s",
                   s->ssd_path, mc_errname(rc));
  }
  s->ssd_base = p;
  s->ssd_mode = SC_SSD_MMAP;
  return 0;
}

int sc_ssd_open(mc_store *s, const char *dir, uint64_t size) {
  s->ssd_fd = -1;
  struct stat st;
  if (stat(dir, &st) != 0)
    return sc_fail(MC_STORE_INVALID_PARAMS, "create: ssd_offload_dir '%s': %s", dir,
                   strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return sc_fail(MC_STORE_INVALID_PARAMS, "create: ssd_offload_dir '%s': not a directory",
                   dir);
  sweep_stale(dir);
  uint8_t r[8];
  if (getrandom(r, sizeof r, 0) != sizeof r ||
      getrandom(s->ssd_segment_id, sizeof s->ssd_segment_id, 0) != sizeof s->ssd_segment_id)
    return sc_fail(MC_STORE_INTERNAL_ERROR, "create: getrandom: %s", strerror(errno));
  int n = snprintf(s->ssd_path, sizeof s->ssd_path,
                   "%s/" SC_SSD_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x" SC_SSD_SUFFIX, dir,
                   r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
  if (n < 0 || (size_t)n >= sizeof s->ssd_path)
    return sc_fail(MC_STORE_INVALID_PARAMS, "create: ssd_offload_dir '%s': path too long", dir);
  s->ssd_fd = open(s->ssd_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (s->ssd_fd < 0) {
    s->ssd_path[0] = 0;
    return sc_fail(MC_STORE_INVALID_PARAMS,
                   "create: ssd_offload_dir '%s': cannot create the tier file: %s%s", dir,
                   strerror(errno), errno == EACCES || errno == EROFS ? " (not writable)" : "");
  }
  s->ssd_size = ((size ? size : SC_SSD_DEFAULT) + 4095) & ~(uint64_t)4095;
  if (flock(s->ssd_fd, LOCK_EX | LOCK_NB) != 0 || ftruncate(s->ssd_fd, (off_t)s->ssd_size) != 0)
    return sc_fail(MC_STORE_INVALID_PARAMS, "create: SSD tier %s: cannot lock or size it "
                   "(%llu bytes): %s", s->ssd_path, (unsigned long long)s->ssd_size,
                   strerror(errno));
  const char *mode = getenv("MC_STORE_SSD_MODE");
  if (mode && *mode && strcmp(mode, "file") && strcmp(mode, "mmap") && strcmp(mode, "auto"))
    return sc_fail(MC_STORE_INVALID_PARAMS, "create: MC_STORE_SSD_MODE='%s': not file, mmap "
                   "or auto", mode);
  if (mode && !strcmp(mode, "mmap"))
    return use_mmap(s);
  void *addr = NULL;
  int rc = mc_register_file(s->engine, s->ssd_path, 0, s->ssd_size, 0, &addr);
  if (!rc) {
    s->ssd_base = addr;
    s->ssd_mode = SC_SSD_FILE;
    return 0;
  }
  if (rc == MC_ENOTSUP && !(mode && !strcmp(mode, "file")))
    return use_mmap(s); /* no transport serves files (the nvmeof plugin is not loaded) */
  return sc_fail(rc == MC_ENOTSUP ? MC_STORE_NOT_SUPPORTED : sc_from_mc(rc, 1),
                 "create: SSD tier %s: %s", s->ssd_path, mc_last_error());
}

void sc_ssd_close(mc_store *s) {
  if (s->ssd_base) {
    mc_unregister(s->engine, s->ssd_base);
    if (s->ssd_mode == SC_SSD_MMAP)
      munmap(s->ssd_base, s->ssd_size);
    s->ssd_base = NULL;
  }
  if (s->ssd_fd >= 0) {
    /* Its objects left the pool with the unmount: nothing to keep. */
    if (s->ssd_path[0])
      unlink(s->ssd_path);
    close(s->ssd_fd);
    s->ssd_fd = -1;
  }
  s->ssd_mode = 0;
}

/* Whether [addr, addr+len) lies in this handle's tier. */
static int in_tier(const mc_store *s, uint64_t addr, uint64_t len) {
  uint64_t b = (uint64_t)(uintptr_t)s->ssd_base;
  return addr >= b && len <= s->ssd_size && addr - b <= s->ssd_size - len;
}

/* pwrite of len bytes at off of the tier file. */
static int pwrite_all(mc_store *s, const char *p, uint64_t len, uint64_t off) {
  while (len) {
    ssize_t n = pwrite(s->ssd_fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return sc_fail(MC_STORE_WRITE_FAIL, "SSD tier %s: write %llu bytes at %llu: %s",
                     s->ssd_path, (unsigned long long)len, (unsigned long long)off,
                     n < 0 ? strerror(errno) : "no progress");
    p += n;
    len -= (uint64_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

/* The mapped tier is written with pwrite, not through the mapping: a
 * write fault may take a folio larger than the object (the file system's
 * large folios), whose zeros then take disk blocks next to the object
 * that no trim ever releases.  Peers only read the mapping. */
static int copy_pwrite(mc_store *s, const sc_task *t) {
  uint64_t base = t->dst.addr - (uint64_t)(uintptr_t)s->ssd_base;
  if (sc_is_local(s, &t->src))
    return pwrite_all(s, (const char *)(uintptr_t)t->src.addr, t->src.size, base);
  char *slot = sc_slot_get(s);
  int rc = 0;
  for (uint64_t off = 0; off < t->src.size && !rc; off += s->slot_size) {
    uint64_t l = t->src.size - off < s->slot_size ? t->src.size - off : s->slot_size;
    rc = sc_read(s, &t->src, off, slot, l);
    if (!rc)
      rc = pwrite_all(s, slot, l, base + off);
  }
  sc_slot_put(s, slot);
  return rc;
}

/* Copies one object from its memory replica into the tier: with pwrite
 * into the mapped file, or through staging slots and the engine into the
 * file-registered one. */
static int copy_task(mc_store *s, const sc_task *t) {
  if (!t->dst.disk || strcmp(t->dst.segment, s->seg_name) || t->src.disk ||
      t->src.size != t->dst.size || !t->dst.size || !in_tier(s, t->dst.addr, t->dst.size))
    return sc_fail(MC_STORE_INVALID_REPLICA, "offload task %llu: target %s+%llu is not in "
                   "this tier", (unsigned long long)t->id, t->dst.segment,
                   (unsigned long long)t->dst.addr);
  if (s->ssd_mode == SC_SSD_MMAP)
    return copy_pwrite(s, t);
  sc_obj o = {.n = 1, .size = t->dst.size};
  o.r[0] = t->dst;
  if (sc_is_local(s, &t->src)) /* registered memory: one write */
    return sc_write(s, &o, 0, (const void *)(uintptr_t)t->src.addr, t->src.size);
  char *slot = sc_slot_get(s);
  int rc = 0;
  for (uint64_t off = 0; off < t->src.size && !rc; off += s->slot_size) {
    uint64_t l = t->src.size - off < s->slot_size ? t->src.size - off : s->slot_size;
    rc = sc_read(s, &t->src, off, slot, l);
    if (!rc)
      rc = sc_write(s, &o, off, slot, l);
  }
  sc_slot_put(s, slot);
  return rc;
}

/* Releases the file space of a freed range (the range is reusable once
 * this is acknowledged). */
static void trim(mc_store *s, const sc_trim *t) {
  if (!t->size || !in_tier(s, t->addr, t->size))
    return;
  off_t off = (off_t)(t->addr - (uint64_t)(uintptr_t)s->ssd_base);
  /* A filesystem without hole punching keeps the blocks: still correct. */
  (void)fallocate(s->ssd_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)t->size);
}

static int wait_ms(mc_store *s, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += (long)ms * 1000000L;
  ts.tv_sec += ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  pthread_mutex_lock(&s->ping_mu);
  if (!s->stop)
    pthread_cond_timedwait(&s->ping_cv, &s->ping_mu, &ts);
  int stop = s->stop;
  pthread_mutex_unlock(&s->ping_mu);
  return !stop;
}

static void *worker(void *arg) {
  mc_store *s = arg;
  uint64_t done[SC_SSD_BATCH], failed[SC_SSD_BATCH], trimmed[SC_SSD_BATCH];
  size_t nd = 0, nf = 0, nt = 0;
  sc_task *tasks = calloc(SC_SSD_BATCH, sizeof *tasks);
  sc_trim *trims = calloc(SC_SSD_BATCH, sizeof *trims);
  int busy = 0;
  while (tasks && trims && wait_ms(s, busy ? 0 : SC_SSD_POLL_MS)) {
    uint32_t ntask = 0, ntrim = 0;
    busy = 0;
    pthread_mutex_lock(&s->ssd_mu);
    if (s->ssd_forget) {
      nd = nf = nt = 0;
      s->ssd_forget = 0;
    }
    /* Reports not delivered (master down) are sent again next time. */
    if (scm_offload_sync(s, done, nd, failed, nf, trimmed, nt, SC_SSD_BATCH, tasks, &ntask,
                         trims, &ntrim) != 0) {
      pthread_mutex_unlock(&s->ssd_mu);
      continue;
    }
    nd = nf = nt = 0;
    /* Tasks before trims: a range freed while its task was out is
     * punched after that task's write, never before. */
    for (uint32_t i = 0; i < ntask; i++) {
      if (copy_task(s, &tasks[i]) == 0) {
        done[nd++] = tasks[i].id;
        atomic_fetch_add(&s->n_offloaded, 1);
      } else {
        failed[nf++] = tasks[i].id;
        atomic_fetch_add(&s->n_offload_failed, 1);
      }
    }
    for (uint32_t i = 0; i < ntrim; i++) {
      trim(s, &trims[i]);
      trimmed[nt++] = trims[i].id;
      atomic_fetch_add(&s->n_trimmed, 1);
    }
    pthread_mutex_unlock(&s->ssd_mu);
    busy = ntask || ntrim;
  }
  free(tasks);
  free(trims);
  return NULL;
}

int sc_ssd_remount(mc_store *s) {
  pthread_mutex_lock(&s->ssd_mu);
  uint64_t view = scm_view(s);
  if (view != s->ssd_view) {
    /* A new master kept none of this tier's ranges: their bytes are
     * garbage and it hands the ranges out again. */
    (void)fallocate(s->ssd_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                    (off_t)s->ssd_size);
    s->ssd_forget = 1;
    s->ssd_view = view;
  }
  int rc = scm_mount(s, 1);
  pthread_mutex_unlock(&s->ssd_mu);
  return rc;
}

int sc_ssd_start(mc_store *s) {
  s->ssd_view = scm_view(s); /* mounted in this view */
  if (pthread_create(&s->ssd_thr, NULL, worker, s))
    return sc_fail(MC_STORE_INTERNAL_ERROR, "create: cannot start the SSD tier thread");
  s->ssd_thr_started = 1;
  return 0;
}

void sc_ssd_stop(mc_store *s) {
  if (!s->ssd_thr_started)
    return;
  pthread_mutex_lock(&s->ping_mu);
  s->stop = 1;
  pthread_cond_broadcast(&s->ping_cv);
  pthread_mutex_unlock(&s->ping_mu);
  pthread_join(s->ssd_thr, NULL);
  s->ssd_thr_started = 0;
}
