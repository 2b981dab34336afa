/* Internal logging.  A logger carries its level; each engine owns one, so two
 * engines in a process can log at different levels.  A NULL logger means
 * "level from $MC_LOG_LEVEL" (used before an engine exists). */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "mooncake/transport.h" /* enum mc_log_level */

typedef struct mc_logger {
  int level; /* enum mc_log_level; messages above it are dropped */
} mc_logger;

/* Parses "error|warn|info|debug|trace" (or 0-4); -1 if invalid. */
int mc_log_parse_level(const char *text);

/* Level from $MC_LOG_LEVEL, MC_LOG_WARN when unset or invalid. */
int mc_log_env_level(void);

int mc_log_enabled(const mc_logger *lg, int level);

/* One line to stderr: "mooncake <LEVEL> <component>: <message>". */
void mc_log(const mc_logger *lg, int level, const char *component,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void mc_vlog(const mc_logger *lg, int level, const char *component,
             const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

#define MC_ERROR(lg, comp, ...) mc_log((lg), MC_LOG_ERROR, (comp), __VA_ARGS__)
#define MC_WARN(lg, comp, ...) mc_log((lg), MC_LOG_WARN, (comp), __VA_ARGS__)
#define MC_INFO(lg, comp, ...) mc_log((lg), MC_LOG_INFO, (comp), __VA_ARGS__)
#define MC_DEBUG(lg, comp, ...)                                                \
  do {                                                                         \
    if (mc_log_enabled((lg), MC_LOG_DEBUG))                                    \
      mc_log((lg), MC_LOG_DEBUG, (comp), __VA_ARGS__);                         \
  } while (0)

/* Formats a one-line error explanation into err (no-op when err is NULL
 * or errlen 0): the "errbuf" convention of the public API. */
void mc_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Size of a one-line error explanation, and of this thread's
 * mc_last_error() text (longer lines are cut). */
#define MC_ERR_MAX 1024

/* Records the reason of a failing public call as this thread's
 * mc_last_error() (engine.h), the way errno records a failing system
 * call.  Public functions call it on failure only. */
void mc_last_error_set(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
