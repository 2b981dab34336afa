/* Small helpers shared by the loader tests: checks that name file:line,
 * temporary directories, file copies and stderr capture. */
#ifndef MC_TEST_LOADER_UTIL_H
#define MC_TEST_LOADER_UTIL_H

#include <stddef.h>

extern int tu_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      tu_fail(__FILE__, __LINE__, #cond, NULL);                                \
    }                                                                          \
  } while (0)
#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != (want))                                                         \
      tu_fail_rc(__FILE__, __LINE__, #expr, rc_, (want));                      \
  } while (0)
/* haystack contains needle */
#define CHECK_HAS(hay, needle)                                                 \
  do {                                                                         \
    const char *h_ = (hay), *n_ = (needle);                                    \
    if (!h_ || !strstr(h_, n_))                                                \
      tu_fail(__FILE__, __LINE__, "contains", h_ ? h_ : "(null)");             \
    if (!h_ || !strstr(h_, n_))                                                \
      tu_note("  expected substring: %s", n_);                                 \
  } while (0)

void tu_fail(const char *file, int line, const char *what, const char *detail);
void tu_fail_rc(const char *file, int line, const char *what, int got,
                int want);
void tu_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Creates a fresh directory under $TMPDIR (or /tmp); path into buf. */
int tu_mkdtemp(char *buf, size_t len, const char *tag);
/* Recursively removes dir (best effort). */
void tu_rmtree(const char *dir);
/* Copies file src to dst (mode 0755). 0 on success. */
int tu_copy(const char *src, const char *dst);
/* Joins a/b into buf (static-size helper, aborts on overflow). */
const char *tu_join(char *buf, size_t len, const char *a, const char *b);

/* Redirects stderr into a temporary file until tu_capture_end, which
 * returns what was written (malloc'd, NUL-terminated). */
int tu_capture_begin(void);
char *tu_capture_end(void);
/* Occurrences of needle in hay. */
int tu_count(const char *hay, const char *needle);

/* A host table for calling a plugin's init() directly: it records the last
 * log line, config_get answers from `config` ("key=value" pairs), and
 * completions are counted with the last one kept. */
#include <stdint.h>

#include "mooncake/transport.h"

typedef struct tu_host {
  char log[1024];
  int nlogs;
  const char *const *config; /* NULL-terminated "key", "value" pairs */
  int completions;
  int last_status;
  uint64_t last_bytes, last_token;
} tu_host;

mc_host_api tu_host_api(tu_host *h);

#endif
