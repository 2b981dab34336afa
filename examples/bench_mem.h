/* bench_mem.h - the bench's data buffers.  Three kinds:
 *  pool   (default) an mmap of its own, 2 MiB-aligned and untouched, as a
 *         KV-cache pool allocator (or numa_alloc_onnode) hands out;
 *  malloc posix_memalign(4096): an arbitrary heap block, whose first bytes
 *         usually share a 2 MiB window with other memory;
 *  huge   like pool, and marked MADV_HUGEPAGE before first touch, so
 *         transparent huge pages back it wherever the kernel allows. */
#ifndef MC_BENCH_MEM_H
#define MC_BENCH_MEM_H

#include <stddef.h>
#include <stdint.h>

enum bench_mem_kind { BENCH_MEM_POOL, BENCH_MEM_MALLOC, BENCH_MEM_HUGE };

/* "pool", "malloc", "huge" -> kind; -1 for anything else. */
int bench_mem_kind_parse(const char *name);
const char *bench_mem_kind_name(int kind);

/* len bytes, untouched; NULL with the reason in err. */
uint8_t *bench_mem_alloc(uint64_t len, int kind, char *err, size_t errlen);
/* Frees what bench_mem_alloc returned with the same len and kind. */
void bench_mem_free(uint8_t *p, uint64_t len, int kind);

/* e.g. "huge: 2 MiB-aligned mmap, MADV_HUGEPAGE (THP enabled: madvise)",
 * for the output header; reads the THP mode, changes nothing. */
void bench_mem_describe(int kind, char *buf, size_t len);

#endif
