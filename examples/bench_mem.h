/* bench_mem.h - the bench's data buffers: page-aligned by default, or
 * 2 MiB-aligned and marked MADV_HUGEPAGE before first touch (--hugepages),
 * so transparent huge pages can back them where the kernel allows it. */
#ifndef MC_BENCH_MEM_H
#define MC_BENCH_MEM_H

#include <stddef.h>
#include <stdint.h>

/* len bytes, untouched; NULL with the reason in err. */
uint8_t *bench_mem_alloc(uint64_t len, int hugepages, char *err, size_t errlen);
/* Frees what bench_mem_alloc returned with the same len and hugepages. */
void bench_mem_free(uint8_t *p, uint64_t len, int hugepages);

/* "2 MiB-aligned, MADV_HUGEPAGE (THP enabled: madvise)" or "4 KiB-aligned"
 * for the output header; reads the THP mode, changes nothing. */
void bench_mem_describe(int hugepages, char *buf, size_t len);

#endif
