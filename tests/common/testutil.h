/* tests/common/testutil.h - helpers the C tests share: temporary
 * directories, file copies and stderr capture. */
#ifndef MC_TESTS_COMMON_TESTUTIL_H
#define MC_TESTS_COMMON_TESTUTIL_H

#include <stddef.h>

#include "check.h"

/* Prints one note line to stderr (a failed check's context). */
void tu_note(const char *fmt, ...) MC_CHECK_FMT_(1, 2);

/* Creates a fresh directory under $TMPDIR (or /tmp); path into buf. */
int tu_mkdtemp(char *buf, size_t len, const char *tag);
/* Recursively removes dir (best effort). */
void tu_rmtree(const char *dir);
/* Copies file src to dst (mode 0755). 0 on success. */
int tu_copy(const char *src, const char *dst);
/* Joins a/b into buf (aborts on overflow). */
const char *tu_join(char *buf, size_t len, const char *a, const char *b);

/* Redirects stderr into a temporary file until tu_capture_end, which
 * returns what was written (malloc'd, NUL-terminated) and echoes it. */
int tu_capture_begin(void);
char *tu_capture_end(void);
/* Occurrences of needle in hay. */
int tu_count(const char *hay, const char *needle);

#endif
