/* Minimal assertions for the metadata tests: print where and abort. */
#ifndef MC_TEST_CHECK_H
#define MC_TEST_CHECK_H

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

#endif
