/* bench_pattern.c - deterministic data for --verify. */
#include "bench_pattern.h"

static uint64_t mix(uint64_t x) { /* splitmix64 finalizer */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void bench_fill(uint8_t *p, uint64_t off, uint64_t len, uint64_t seed) {
  uint64_t o = off, end = off + len;
  while (o < end) {
    uint64_t w = mix((o >> 3) ^ seed);
    for (unsigned k = (unsigned)(o & 7); k < 8 && o < end; k++, o++)
      p[o - off] = (uint8_t)(w >> (8 * k));
  }
}

uint64_t bench_check(const uint8_t *p, uint64_t off, uint64_t len, uint64_t seed) {
  uint64_t o = off, end = off + len;
  while (o < end) {
    uint64_t w = mix((o >> 3) ^ seed);
    for (unsigned k = (unsigned)(o & 7); k < 8 && o < end; k++, o++)
      if (p[o - off] != (uint8_t)(w >> (8 * k)))
        return o - off;
  }
  return len;
}
