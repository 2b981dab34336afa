/* tests/common/check.c - see check.h. */
#include "check.h"

#include <stdarg.h>
#include <stdatomic.h>

static atomic_int failures;
static atomic_int keep_going;

void mc_check_keep_going(int on) { atomic_store(&keep_going, on != 0); }

int mc_check_failures(void) { return atomic_load(&failures); }

void mc_check_failed(const char *file, int line, const char *expr, const char *fmt, ...) {
  char detail[2048] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
  }
  /* One write per failure, so lines from threads do not interleave. */
  fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, expr, fmt ? ": " : "",
          detail);
  atomic_fetch_add(&failures, 1);
  if (!atomic_load(&keep_going)) {
    fflush(NULL);
    abort();
  }
}

int mc_check_exit_status(void) {
  int n = atomic_load(&failures);
  if (n)
    fprintf(stderr, "%d check(s) failed\n", n);
  return n ? 1 : 0;
}

void mc_check_skip(const char *file, int line, const char *fmt, ...) {
  char why[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  fflush(NULL);
  printf("SKIP: %s (%s:%d)\n", why, file, line);
  fflush(stdout);
  exit(77);
}
