#include "log.h"

#include "mooncake/engine.h" /* mc_last_error */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

int mc_log_parse_level(const char *text) {
  if (!text)
    return -1;
  for (int i = 0; i < 5; i++)
    if (strcasecmp(text, level_names[i]) == 0)
      return i;
  if (strcasecmp(text, "warning") == 0)
    return MC_LOG_WARN;
  if (text[0] >= '0' && text[0] <= '4' && text[1] == '\0')
    return text[0] - '0';
  return -1;
}

int mc_log_env_level(void) {
  int lvl = mc_log_parse_level(getenv("MC_LOG_LEVEL"));
  return lvl < 0 ? MC_LOG_WARN : lvl;
}

int mc_log_enabled(const mc_logger *lg, int level) {
  int cur = lg ? lg->level : mc_log_env_level();
  return level <= cur;
}

void mc_vlog(const mc_logger *lg, int level, const char *component,
             const char *fmt, va_list ap) {
  if (!mc_log_enabled(lg, level))
    return;
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  if (level < 0 || level > 4)
    level = MC_LOG_ERROR;
  /* One fprintf per line so concurrent lines do not interleave. */
  fprintf(stderr, "%02d:%02d:%02d.%03ld mooncake %-5s %s: %s\n", tm.tm_hour,
          tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level],
          component ? component : "core", msg);
}

/* The one piece of process state outside an engine: like errno, it is per
 * thread, so concurrent callers never see each other's reasons, and it
 * must outlive the engine whose creation failed (there is none to hold
 * it).  Static storage, so recording a reason never allocates and works
 * when memory is short. */
static _Thread_local char last_error[MC_ERR_MAX];

void mc_last_error_set(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}

const char *mc_last_error(void) { return last_error; }
