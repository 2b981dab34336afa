/* Shared helpers of the etcd and HTTP metadata tests: assertions, a valid
 * descriptor, free loopback ports, timing. */
#ifndef MC_TEST_MDUTIL_H
#define MC_TEST_MDUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != (want)) {                                                       \
      fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n", __FILE__,  \
              __LINE__, #expr, rc_, mc_strerror(rc_), (int)(want),            \
              mc_strerror(want));                                              \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* A free TCP port on 127.0.0.1 (bound then released). */
int tu_free_port(void);
/* A valid descriptor JSON for segment name (malloc'd). */
char *tu_make_desc(const char *name, uint64_t version, size_t *len);
void tu_sleep_ms(unsigned ms);
/* Makes a fresh temp dir (mkdtemp under $TMPDIR or /tmp) into buf. */
void tu_tempdir(char *buf, size_t len, const char *tag);
/* rm -rf path. */
void tu_rmtree(const char *path);

#endif
