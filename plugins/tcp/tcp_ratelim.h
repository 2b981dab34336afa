/* tcp_ratelim.h - rate limiter for warnings a peer can provoke at will
 * (refused connections, bad handshakes, wrong keys): at most one line a
 * second per limiter, and that line says how many were suppressed, so a
 * flood costs the log one line a second and loses no count. */
#ifndef MC_TCP_RATELIM_H
#define MC_TCP_RATELIM_H

#include <stdatomic.h>

typedef struct tcp_ratelim {
  atomic_llong last_ms;       /* when the last line was allowed */
  atomic_ulong suppressed;    /* dropped since then */
} tcp_ratelim;

/* 1 when a line may be written now; *suppressed then gets how many were
 * dropped since the last one.  0 (and the drop counted) otherwise.
 * Thread-safe, lock-free. */
int tcp_ratelim_allow(tcp_ratelim *rl, unsigned long *suppressed);

#endif
