/* bench_mem.c - the bench's data buffers (see bench_mem.h). */
#include "bench_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_2M ((uint64_t)2 << 20)

static const char *const kind_names[] = {"pool", "malloc", "huge"};

static uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) & ~(to - 1); }

int bench_mem_kind_parse(const char *name) {
  for (int k = 0; k < 3; k++)
    if (!strcmp(name, kind_names[k]))
      return k;
  return -1;
}

const char *bench_mem_kind_name(int kind) {
  return kind >= 0 && kind < 3 ? kind_names[kind] : "?";
}

uint8_t *bench_mem_alloc(uint64_t len, int kind, char *err, size_t errlen) {
  if (kind == BENCH_MEM_MALLOC) {
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
  if (kind == BENCH_MEM_HUGE && madvise(p, size, MADV_HUGEPAGE) != 0) {
    snprintf(err, errlen, "--buffers huge: madvise(MADV_HUGEPAGE) of %" PRIu64
             " bytes: %s (kernel without transparent huge pages?)", size,
             strerror(errno));
    munmap(p, size);
    return NULL;
  }
  return p;
}

void bench_mem_free(uint8_t *p, uint64_t len, int kind) {
  if (!p)
    return;
  if (kind == BENCH_MEM_MALLOC)
    free(p);
  else
    munmap(p, round_up(len, HUGE_2M));
}

void bench_mem_describe(int kind, char *buf, size_t len) {
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
  static const char *const what[] = {
      "2 MiB-aligned mmap", "posix_memalign(4096)",
      "2 MiB-aligned mmap, MADV_HUGEPAGE before first touch"};
  snprintf(buf, len, "%s: %s (THP enabled: %s)", bench_mem_kind_name(kind),
           what[kind >= 0 && kind < 3 ? kind : 0], mode);
}
