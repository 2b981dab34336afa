/* bench_child.h - the target process of --mode loopback.
 *
 * The bench re-executes itself as "--mode target" with a pipe on stdin and
 * one on stdout: it reads the target's SEGMENT/CONTROL/READY lines, and
 * closing the stdin pipe asks the target to stop.  The child gets SIGKILL if
 * this process dies (PR_SET_PDEATHSIG), so nothing outlives a crash. */
#ifndef MC_BENCH_CHILD_H
#define MC_BENCH_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "bench_opts.h"
#include "mooncake/transport.h"

typedef struct bench_child {
  pid_t pid;
  int in_fd;  /* write end of the child's stdin */
  int out_fd; /* read end of the child's stdout */
  char segment[MC_NAME_MAX];
  char control[128];
} bench_child;

/* Starts the target with a total-byte buffer and waits (bounded) for READY.
 * On error the child is killed and reaped. */
int bench_child_start(const bench_opts *o, uint64_t total, bench_child *c,
                      char *err, size_t errlen);

/* Asks the child to stop and reaps it (SIGKILL after a grace period).
 * Returns 0 if it exited with status 0, else -1 with err. */
int bench_child_stop(bench_child *c, char *err, size_t errlen);

#endif
