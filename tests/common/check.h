/* tests/common/check.h - the assertions every C test uses.
 *
 * A failed check prints "file:line: check failed: <expression>" and, for
 * the comparing forms, both values; then the test stops (abort, after
 * flushing stdio).  A test that would rather report every failure calls
 * mc_check_keep_going(1) first and returns mc_check_exit_status() from
 * main.  SKIP prints the reason and exits 77, meson's "skipped".
 *
 * Link test_common_dep (tests/common/meson.build). */
#ifndef MC_TESTS_COMMON_CHECK_H
#define MC_TESTS_COMMON_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"

#if defined(__GNUC__)
#define MC_CHECK_FMT_(a, b) __attribute__((format(printf, a, b)))
#else
#define MC_CHECK_FMT_(a, b)
#endif

/* Reports one failed check: expr is the source text, fmt (may be NULL) the
 * values.  Stops the test unless keep-going is on.  Thread-safe. */
void mc_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
    MC_CHECK_FMT_(4, 5);
/* Keep going after a failed check (count it) instead of stopping. */
void mc_check_keep_going(int on);
/* Failed checks so far. */
int mc_check_failures(void);
/* 0 when no check failed, else 1 after printing how many did. */
int mc_check_exit_status(void);
/* Prints the skip reason and exits 77. */
void mc_check_skip(const char *file, int line, const char *fmt, ...) MC_CHECK_FMT_(3, 4)
    __attribute__((noreturn));

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      mc_check_failed(__FILE__, __LINE__, #cond, NULL);                        \
  } while (0)

/* CHECK with a printf-style explanation. */
#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond))                                                               \
      mc_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                 \
  } while (0)

/* got == want as signed integers; prints both. */
#define CHECK_EQ_INT(got, want)                                                \
  do {                                                                         \
    long long g_ = (long long)(got), w_ = (long long)(want);                   \
    if (g_ != w_)                                                              \
      mc_check_failed(__FILE__, __LINE__, #got " == " #want, "got %lld, want %lld", g_, w_); \
  } while (0)

/* got == want as uint64_t; prints both in decimal and hex. */
#define CHECK_EQ_U64(got, want)                                                \
  do {                                                                         \
    uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);                      \
    if (g_ != w_)                                                              \
      mc_check_failed(__FILE__, __LINE__, #got " == " #want,                   \
                      "got %" PRIu64 " (0x%" PRIx64 "), want %" PRIu64 " (0x%" PRIx64 ")", \
                      g_, g_, w_, w_);                                         \
  } while (0)

/* Equal strings (NULL equals only NULL); prints both. */
#define CHECK_STR(got, want)                                                   \
  do {                                                                         \
    const char *g_ = (got), *w_ = (want);                                      \
    if ((g_ == NULL) != (w_ == NULL) || (g_ && strcmp(g_, w_) != 0))           \
      mc_check_failed(__FILE__, __LINE__, #got " == " #want,                   \
                      "got %s%s%s, want %s%s%s", g_ ? "\"" : "",               \
                      g_ ? g_ : "NULL", g_ ? "\"" : "", w_ ? "\"" : "",         \
                      w_ ? w_ : "NULL", w_ ? "\"" : "");                       \
  } while (0)

/* Text hay contains needle; prints both. */
#define CHECK_HAS(hay, needle)                                                 \
  do {                                                                         \
    const char *h_ = (hay), *n_ = (needle);                                    \
    if (!h_ || !strstr(h_, n_))                                                \
      mc_check_failed(__FILE__, __LINE__, #hay " contains " #needle,           \
                      "\"%s\" not in:\n%s", n_, h_ ? h_ : "(null)");           \
  } while (0)

/* An MC_E* result equal to want; prints both with their names. */
#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int g_ = (expr), w_ = (want);                                              \
    if (g_ != w_)                                                              \
      mc_check_failed(__FILE__, __LINE__, #expr,                               \
                      "returned %d (%s: %s), want %d (%s)", g_, mc_errname(g_), \
                      mc_strerror(g_), w_, mc_errname(w_));                    \
  } while (0)

/* CHECK_RC(expr, MC_OK). */
#define CHECK_OK(expr) CHECK_RC(expr, MC_OK)

/* Skips the test (exit 77) saying why. */
#define SKIP(...) mc_check_skip(__FILE__, __LINE__, __VA_ARGS__)

#endif
