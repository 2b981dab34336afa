/* The few fake-driver calls the nvlink tests make themselves (allocating
 * and reading "device" memory), reached by dlopen like the plugin does, so
 * both see the same allocations. */
#ifndef MC_TEST_CUDA_FAKE_H
#define MC_TEST_CUDA_FAKE_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct test_cuda {
  int (*Init)(unsigned);
  int (*MemAlloc)(unsigned long long *, size_t);
  int (*MemFree)(unsigned long long);
} test_cuda;

static inline void test_cuda_open(test_cuda *c, const char *path) {
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
    exit(1);
  }
  *(void **)&c->Init = dlsym(dl, "cuInit");
  *(void **)&c->MemAlloc = dlsym(dl, "cuMemAlloc_v2");
  *(void **)&c->MemFree = dlsym(dl, "cuMemFree_v2");
  if (!c->Init || !c->MemAlloc || !c->MemFree || c->Init(0)) {
    fprintf(stderr, "%s: not the fake driver\n", path);
    exit(1);
  }
}

static inline uint8_t *test_cuda_alloc(test_cuda *c, size_t len) {
  unsigned long long p = 0;
  if (c->MemAlloc(&p, len)) {
    fprintf(stderr, "cuMemAlloc(%zu) failed\n", len);
    exit(1);
  }
  return (uint8_t *)(uintptr_t)p;
}

#endif
