/* Test helper: a flood of idle or slow TCP connections against a loopback
 * listener, from chosen source addresses (127.0.0.x: every address of
 * 127/8 is local on Linux, so one process can look like many clients), run
 * by a thread of its own.  Used by the abuse tests of the handshake
 * listener (tests/ctrl) and of mooncake-metadata-server (tests/http). */
#ifndef MC_TEST_FLOOD_H
#define MC_TEST_FLOOD_H

#include <stdint.h>

typedef struct tu_flood tu_flood;

typedef struct tu_flood_args {
  uint16_t port;    /* target on 127.0.0.1 */
  int n;            /* connections to hold */
  int first_src;    /* sources 127.0.0.<first_src> .. +nsrc-1, round robin */
  int nsrc;
  /* Slow clients: every slow_ms each connection sends the next byte of
   * slow (cycling over its tail past slow_loop); NULL: idle clients that
   * send nothing. */
  const char *slow;
  int slow_len, slow_loop, slow_ms;
  int reconnect; /* reopen a connection the server closed, at once */
} tu_flood_args;

typedef struct tu_flood_stats {
  int open_now;        /* connections established and not closed */
  long connects;       /* connections established so far */
  long closed;         /* closed or reset by the server */
  long refused;        /* connects that failed */
} tu_flood_stats;

/* Starts the flood (returns once every first connect was attempted). */
tu_flood *tu_flood_start(const tu_flood_args *a);
void tu_flood_get(tu_flood *f, tu_flood_stats *s);
/* Stops the thread and closes every connection. */
void tu_flood_stop(tu_flood *f);

/* Raises the soft open-file limit towards want; returns the new limit. */
long tu_raise_nofile(long want);

#endif
