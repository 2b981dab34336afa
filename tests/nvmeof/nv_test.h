/* nv_test.h - helpers the nvmeof engine tests share (nv_test.c). */
#ifndef MC_NV_TEST_H
#define MC_NV_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "mooncake/engine.h"
#include "testutil.h"

/* The byte a file at offset o holds under pattern `seed`. */
static inline uint8_t nt_pat(uint32_t seed, uint64_t o) {
  return (uint8_t)(seed * 131u ^ (o * 2654435761u >> 13) ^ o);
}
void nt_fill(uint8_t *p, size_t n, uint32_t seed, uint64_t o);
/* 1 when p[0..n) is pattern seed from file offset o. */
int nt_check(const uint8_t *p, size_t n, uint32_t seed, uint64_t o);

/* An engine with these transports; yaml (may be NULL) is extra config text
 * (written to a file in dir), plugin_path extra plugins (may be NULL). */
mc_engine *nt_engine(const char *transports, const char *dir, const char *yaml,
                     const char *plugin_path);
/* One request; 0 when it completed, else its error (MC_E*).  *st (may be
 * NULL) gets its status. */
int nt_xfer(mc_engine *e, uint32_t op, void *local, mc_segment *s, uint64_t remote,
            uint64_t len, mc_transfer_status *st);
/* Creates path with n bytes of pattern seed (from offset 0). */
void nt_make_file(const char *path, uint64_t n, uint32_t seed);
/* pread/pwrite all of it, aborting on error. */
void nt_pread(const char *path, void *buf, size_t n, uint64_t off);
void nt_pwrite(const char *path, const void *buf, size_t n, uint64_t off);

#endif
