/* Shared helpers of the etcd and HTTP metadata tests: assertions, a valid
 * descriptor, free loopback ports, timing. */
#ifndef MC_TEST_MD_UTIL_H
#define MC_TEST_MD_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"    /* tests/common: CHECK, CHECK_RC, CHECK_HAS */
#include "testutil.h" /* tests/common: tu_mkdtemp, tu_rmtree, tu_capture_* */
#include "mooncake/errors.h"

/* A free TCP port on 127.0.0.1 (bound then released). */
int tu_free_port(void);
/* A valid descriptor JSON for segment name (malloc'd). */
char *tu_make_desc(const char *name, uint64_t version, size_t *len);
void tu_sleep_ms(unsigned ms);

#endif
