/* Minimal assertions for the metadata tests: print where and abort. */
#ifndef MC_TEST_CHECK_H
#define MC_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Captures what the code under test writes to stderr (its log lines)
 * between capture_start() and capture_end(), which returns it (malloc'd,
 * NUL-terminated) and echoes it to the real stderr for the test log. */
static inline int capture_start(void) {
  fflush(stderr);
  int saved = dup(2);
  FILE *f = tmpfile();
  CHECK(saved >= 0 && f);
  CHECK(dup2(fileno(f), 2) == 2);
  fclose(f); /* fd 2 keeps the file open */
  return saved;
}

static inline char *capture_end(int saved) {
  fflush(stderr);
  off_t n = lseek(2, 0, SEEK_END);
  CHECK(n >= 0);
  char *buf = malloc((size_t)n + 1);
  CHECK(buf);
  CHECK(pread(2, buf, (size_t)n, 0) == (ssize_t)n);
  buf[n] = '\0';
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  fputs(buf, stderr);
  return buf;
}

/* Aborts unless text contains want. */
#define CHECK_HAS(text, want)                                                  \
  do {                                                                         \
    if (!strstr((text), (want))) {                                             \
      fprintf(stderr, "%s:%d: output lacks '%s':\n%s\n", __FILE__, __LINE__,  \
              (want), (text));                                                 \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif
