/* Small helpers private to libmooncake-conductor. */
#ifndef MC_COND_UTIL_H
#define MC_COND_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define MC_COND_FMT(a, b) __attribute__((format(printf, a, b)))

/* snprintf into ERR (ERRLEN bytes) when ERR is not NULL. */
void mc_cond_seterr(char *err, size_t errlen, const char *fmt, ...) MC_COND_FMT(3, 4);

/* The whole file, NUL-terminated (*LEN without it); NULL with errno set. */
char *mc_cond_read_file(const char *path, size_t *len);

/* splitmix64: the index's hash mix and the random policy's generator. */
static inline uint64_t mc_cond_mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

#endif
