/* bench_ctl.h - the bench control channel between initiator and target.
 *
 * The engine API does not say where a peer's buffers are, and the bench
 * needs that (and the target's CPU time, and a socket baseline between the
 * same two processes), so a target also listens on a small TCP "control"
 * port, separate from the engine.  One text line per request:
 *   "INFO"  -> "INFO <buffer addr> <buffer len> <target cpu ns>"
 *   "STREAM <r|w> <block> <batch> <offset>" -> "OK" (or "ERR <why>"), then
 *           the connection carries the socket baseline: per round trip the
 *           initiator sends (w) or receives (r) batch blocks of `block` bytes
 *           at buffer+offset and the other side answers with one byte (w) or
 *           is asked with one byte (r).  The range is checked against the
 *           buffer first.
 */
#ifndef MC_BENCH_CTL_H
#define MC_BENCH_CTL_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_ctl bench_ctl;

/* Starts serving buf[0, len) on hostport ("host:0" = any port). */
int bench_ctl_start(const char *hostport, uint8_t *buf, uint64_t len,
                    bench_ctl **out, char *err, size_t errlen);
/* The bound "host:port" (the target prints it as its CONTROL line). */
const char *bench_ctl_addr(const bench_ctl *ctl);
/* Closes the listener and every connection, joins the threads, frees. */
void bench_ctl_stop(bench_ctl *ctl);

typedef struct bench_target_info {
  uint64_t addr, len; /* the target's registered buffer */
  uint64_t cpu_ns;    /* target process user+system time so far */
} bench_target_info;

int bench_ctl_info(const char *ctl_addr, bench_target_info *info, char *err,
                   size_t errlen);

/* Opens a baseline stream (see above); returns the fd or -1 with err. */
int bench_ctl_stream(const char *ctl_addr, uint32_t op, uint64_t block,
                     uint32_t batch, uint64_t offset, char *err, size_t errlen);

#endif
