/* bench_pattern.h - deterministic data for --verify.
 * The byte at buffer offset o is a function of (o, seed), so either side can
 * fill or check any range without sharing state. */
#ifndef MC_BENCH_PATTERN_H
#define MC_BENCH_PATTERN_H

#include <stdint.h>

#define BENCH_SEED_TARGET 0x7a3c5e1f00000000ull /* target buffer contents */
#define BENCH_SEED_WRITE 0x1b2d4f6e00000000ull  /* initiator write data, + point */

/* Fills p[0, len) with the pattern of offsets [off, off+len). */
void bench_fill(uint8_t *p, uint64_t off, uint64_t len, uint64_t seed);

/* Checks p against that pattern; returns the index of the first wrong byte
 * or len when all match. */
uint64_t bench_check(const uint8_t *p, uint64_t off, uint64_t len, uint64_t seed);

#endif
