/* Shared helpers of the etcd and HTTP metadata tests: assertions, a valid
 * descriptor, free loopback ports, timing. */
#ifndef MC_TEST_MDUTIL_H
#define MC_TEST_MDUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../metadata/check.h" /* CHECK, CHECK_RC */
#include "mooncake/errors.h"

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
