/* bench_mem.c - the bench's data buffers (see bench_mem.h). */
#include "bench_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_2M ((uint64_t)2 << 20)

static uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) & ~(to - 1); }

uint8_t *bench_mem_alloc(uint64_t len, int hugepages, char *err, size_t errlen) {
  if (!hugepages) {
    /* Page-aligned, so transports that pin or map memory get whole pages. */
    void *p = NULL;
    if (posix_memalign(&p, 4096, round_up(len, 4096)) != 0) {
      snprintf(err, errlen, "cannot allocate %" PRIu64 " bytes", len);
      return NULL;
    }
    return p;
  }
  /* Over-map by 2 MiB and trim, so the buffer starts on a huge page. */
  uint64_t size = round_up(len, HUGE_2M);
  uint8_t *raw = mmap(NULL, size + HUGE_2M, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    snprintf(err, errlen, "mmap of %" PRIu64 " bytes: %s", size + HUGE_2M,
             strerror(errno));
    return NULL;
  }
  uint8_t *p = (uint8_t *)(uintptr_t)round_up((uintptr_t)raw, HUGE_2M);
  if (p > raw)
    munmap(raw, (size_t)(p - raw));
  if (raw + HUGE_2M > p)
    munmap(p + size, (size_t)(raw + HUGE_2M - p));
  /* Before the first touch: the faults then take huge pages. */
  if (madvise(p, size, MADV_HUGEPAGE) != 0) {
    snprintf(err, errlen, "--hugepages: madvise(MADV_HUGEPAGE) of %" PRIu64
             " bytes: %s (kernel without transparent huge pages?)", size,
             strerror(errno));
    munmap(p, size);
    return NULL;
  }
  return p;
}

void bench_mem_free(uint8_t *p, uint64_t len, int hugepages) {
  if (!p)
    return;
  if (hugepages)
    munmap(p, round_up(len, HUGE_2M));
  else
    free(p);
}

void bench_mem_describe(int hugepages, char *buf, size_t len) {
  if (!hugepages) {
    snprintf(buf, len, "4 KiB-aligned");
    return;
  }
  /* The mode in brackets, e.g. "always [madvise] never" -> "madvise". */
  char mode[128] = "unknown";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f) {
    char line[128];
    if (fgets(line, sizeof line, f)) {
      char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
      if (a && b)
        snprintf(mode, sizeof mode, "%.*s", (int)(b - a - 1), a + 1);
    }
    fclose(f);
  }
  snprintf(buf, len, "2 MiB-aligned, MADV_HUGEPAGE (THP enabled: %s)", mode);
}
