/* Test fixture: a real mooncake-metadata-server on a free loopback port.
 * It dies with the test process (PR_SET_PDEATHSIG). */
#ifndef MC_MDS_FIXTURE_H
#define MC_MDS_FIXTURE_H

#include <sys/types.h>

typedef struct mds {
  const char *bin;
  pid_t pid;
  int port;
  char url[128]; /* http://127.0.0.1:PORT/metadata */
} mds;

/* Starts bin (extra args may be NULL) on a free port, or the same port
 * again when s->port is set; waits for its "listening" line (<= 10 s). */
void mds_start(mds *s, const char *bin, const char *extra1, const char *extra2);
/* mds_start with a NULL-terminated list of extra arguments (at most 8). */
void mds_startv(mds *s, const char *bin, const char *const *extra);
/* Sends sig and reaps; returns the exit status (or 128+signal). */
int mds_stop(mds *s, int sig);

#endif
