/* mc-transport-conformance: this program's own malloc and mmap, counting
 * what is allocated and mapped, and the usage snapshots the leak checks
 * compare (conformance.h). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- allocation accounting --------------------------------------------
 *
 * The plugin is a dlopen'd object in this process, so this program defines
 * malloc and friends (and mmap/munmap/mremap) itself: by ELF interposition
 * every call the plugin (and libc on its behalf) makes goes through these
 * counters, which the leak checks read around init..fini cycles.  The heap
 * functions forward to glibc's __libc_* entry points; the mapping functions
 * go straight to the system calls, so only the mappings a caller asked for
 * are counted (not glibc's own thread stacks or heap arenas).
 *
 * Sanitizer runtimes interpose these functions themselves, and other C
 * libraries lack the __libc_* entry points: there the byte and mapping
 * accounting is off and the leak checks count fds and threads only. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                 \
    __has_feature(memory_sanitizer)
#define CONF_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CONF_SANITIZER 1
#endif

#if defined(__GLIBC__) && defined(__LP64__) && defined(SYS_mmap) && !defined(CONF_SANITIZER)
#define CONF_ACCOUNTING 1
#include <malloc.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_llong acct_bytes, acct_blocks, acct_mapped;

static void acct_add(void *p) {
  if (p) {
    atomic_fetch_add_explicit(&acct_bytes, (long long)malloc_usable_size(p), memory_order_relaxed);
    atomic_fetch_add_explicit(&acct_blocks, 1, memory_order_relaxed);
  }
}
static void acct_sub(void *p) {
  if (p) {
    atomic_fetch_sub_explicit(&acct_bytes, (long long)malloc_usable_size(p), memory_order_relaxed);
    atomic_fetch_sub_explicit(&acct_blocks, 1, memory_order_relaxed);
  }
}

void *malloc(size_t n) {
  void *p = __libc_malloc(n);
  acct_add(p);
  return p;
}
void *calloc(size_t a, size_t b) {
  void *p = __libc_calloc(a, b);
  acct_add(p);
  return p;
}
void *realloc(void *old, size_t n) {
  size_t was = old ? malloc_usable_size(old) : 0;
  void *p = __libc_realloc(old, n);
  if (!old) {
    acct_add(p);
  } else if (p) { /* moved or resized: one block either way */
    atomic_fetch_add_explicit(&acct_bytes, (long long)malloc_usable_size(p) - (long long)was,
                              memory_order_relaxed);
  } else if (n == 0) { /* realloc(p, 0) freed p */
    atomic_fetch_sub_explicit(&acct_bytes, (long long)was, memory_order_relaxed);
    atomic_fetch_sub_explicit(&acct_blocks, 1, memory_order_relaxed);
  }
  return p;
}
void *reallocarray(void *old, size_t a, size_t b) {
  size_t n;
  if (__builtin_mul_overflow(a, b, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(old, n);
}
void free(void *p) {
  acct_sub(p);
  __libc_free(p);
}
void *memalign(size_t align, size_t n) {
  void *p = __libc_memalign(align, n);
  acct_add(p);
  return p;
}
void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1)))
    return EINVAL;
  void *p = memalign(align, n);
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}
void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }
void *pvalloc(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return memalign(pg, (n + pg - 1) & ~(pg - 1));
}

static long long page_round(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return (long long)((n + pg - 1) & ~(pg - 1));
}
/* Defined under their exact symbol names: with _FILE_OFFSET_BITS=64 the
 * headers redirect mmap to mmap64, and both names must be caught. */
void *conf_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) __asm__("mmap");
void *conf_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __asm__("mmap64");
void *conf_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  if (r == -1)
    return MAP_FAILED;
  atomic_fetch_add_explicit(&acct_mapped, page_round(len), memory_order_relaxed);
  return (void *)r;
}
void *conf_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return conf_mmap(addr, len, prot, flags, fd, off);
}
int munmap(void *addr, size_t len) {
  long r = syscall(SYS_munmap, addr, len);
  if (r == 0)
    atomic_fetch_sub_explicit(&acct_mapped, page_round(len), memory_order_relaxed);
  return (int)r;
}
void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *want = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    want = va_arg(ap, void *);
    va_end(ap);
  }
  long r = syscall(SYS_mremap, old, old_len, new_len, flags, want);
  if (r == -1)
    return MAP_FAILED;
  atomic_fetch_add_explicit(&acct_mapped, page_round(new_len) - page_round(old_len),
                            memory_order_relaxed);
  return (void *)r;
}
#endif



void usage_now(usage *u) {
#ifdef CONF_ACCOUNTING
  u->bytes = atomic_load(&acct_bytes);
  u->blocks = atomic_load(&acct_blocks);
  u->mapped = atomic_load(&acct_mapped);
#else
  u->bytes = u->blocks = u->mapped = 0;
#endif
  u->fds = count_dir("/proc/self/fd");
  u->threads = count_dir("/proc/self/task");
}

/* A joined thread can linger in /proc/self/task for a moment. */
void threads_settle(int want) {
  for (int i = 0; i < 200 && count_dir("/proc/self/task") > want; i++)
    sleep_ms(10);
}

