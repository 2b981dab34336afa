/* Shared helpers of the two-process engine tests: data patterns, hashes,
 * and a spawned target process driven over pipes. */
#ifndef ENGINE_TEST_UTIL_H
#define ENGINE_TEST_UTIL_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Checks come from tests/common/check.h: the tests call
 * mc_check_keep_going(1) so one run lists every failure, and return
 * mc_check_exit_status(). */
#include "check.h"

static inline uint8_t pattern_byte(uint64_t i, uint64_t seed) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xBF58476D1CE4E5B9ull);
  return (uint8_t)(x >> 29);
}

static inline void fill_pattern(uint8_t *p, uint64_t n, uint64_t seed) {
  for (uint64_t i = 0; i < n; i++)
    p[i] = pattern_byte(i, seed);
}

static inline uint64_t fnv64(const uint8_t *p, uint64_t n) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

typedef struct peer {
  pid_t pid;
  FILE *in, *out;
  char segment[256];
  uint64_t addr, len;
} peer;

/* Spawns `exe len transports` and reads its READY line.  0 on success. */
static inline int peer_start(peer *p, const char *exe, uint64_t len, const char *transports) {
  /* A runner may start us with stdin/stdout closed: fill 0-2 first so the
   * pipes below never take those numbers. */
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
      return -1;
  int to[2], from[2];
  if (pipe(to) || pipe(from))
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(to[0], 0);
    dup2(from[1], 1);
    close(to[0]);
    close(to[1]);
    close(from[0]);
    close(from[1]);
    char lenbuf[32];
    snprintf(lenbuf, sizeof lenbuf, "%llu", (unsigned long long)len);
    execl(exe, exe, lenbuf, transports, (char *)NULL);
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  p->pid = pid;
  p->in = fdopen(to[1], "w");
  p->out = fdopen(from[0], "r");
  char line[512];
  if (!fgets(line, sizeof line, p->out))
    return -1;
  unsigned long long a, l;
  if (sscanf(line, "READY %255s %llx %llu", p->segment, &a, &l) != 3)
    return -1;
  p->addr = a;
  p->len = l;
  return 0;
}

/* Sends a command and reads one reply line into reply. */
static inline int peer_cmd(peer *p, char *reply, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int peer_cmd(peer *p, char *reply, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(p->in, fmt, ap);
  va_end(ap);
  fflush(p->in);
  if (!fgets(reply, (int)n, p->out))
    return -1;
  reply[strcspn(reply, "\n")] = '\0';
  return 0;
}

static inline void peer_stop(peer *p) {
  if (p->pid <= 0)
    return;
  if (p->in) {
    fputs("QUIT\n", p->in);
    fclose(p->in);
  }
  if (p->out)
    fclose(p->out);
  int st;
  for (int i = 0; i < 100; i++) {
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
      p->pid = 0;
      return;
    }
    usleep(50000);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &st, 0);
  p->pid = 0;
}

#endif
