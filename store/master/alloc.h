/* Space allocator of one mounted segment (the master's view of it: offsets
 * only, the bytes live in the client).
 *
 * A two-level segregated-fit allocator (TLSF-style): free blocks sit in
 * size classes, 32 linear sub-classes per power of two, found through two
 * bitmaps, so allocation and free are O(1); a free block merges with its
 * free neighbours at once, so free space stays in as few pieces as the
 * live blocks allow.  Allocation takes the first block of the smallest
 * class whose every block fits (no search); only when no such class has a
 * block does it look for a fitting block in the request's own class
 * (bounded scan), so a nearly full segment still fills up.  Sizes are
 * rounded to MCS_ALLOC_ALIGN.
 *
 * Not thread-safe: the segment's mutex guards it. */
#ifndef MCS_ALLOC_H
#define MCS_ALLOC_H

#include <stdint.h>

#define MCS_ALLOC_ALIGN 64u

typedef struct mcs_alloc mcs_alloc;
typedef struct mcs_block mcs_block; /* an allocated range; opaque handle */

/* An allocator for [0, size).  0 or MC_EINVAL (size < MCS_ALLOC_ALIGN) /
 * MC_ENOMEM. */
int mcs_alloc_create(uint64_t size, mcs_alloc **out);
/* Frees the allocator and every block handle still out.  NULL is a no-op. */
void mcs_alloc_destroy(mcs_alloc *a);

/* Reserves size (> 0) bytes; the range's offset goes to *offset.  NULL
 * when no free range is large enough (or out of memory for the handle). */
mcs_block *mcs_alloc_get(mcs_alloc *a, uint64_t size, uint64_t *offset);
/* Returns a block of this allocator. */
void mcs_alloc_put(mcs_alloc *a, mcs_block *b);

/* The (rounded) size of an allocated block: stable until it is put back. */
uint64_t mcs_alloc_block_size(const mcs_block *b);

/* Bytes reserved (rounded sizes), capacity, largest free range. */
uint64_t mcs_alloc_used(const mcs_alloc *a);
uint64_t mcs_alloc_capacity(const mcs_alloc *a);
uint64_t mcs_alloc_largest_free(const mcs_alloc *a);
/* Number of free ranges (fragmentation indicator). */
uint64_t mcs_alloc_free_ranges(const mcs_alloc *a);

/* Consistency check for tests: 0, or MC_EPROTO with the first broken
 * invariant written to why. */
int mcs_alloc_check(const mcs_alloc *a, char *why, int whylen);

#endif
