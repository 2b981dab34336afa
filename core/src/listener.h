/* Internal: the engine's handshake listener.
 *
 * Every engine runs one, whatever its metadata backend, on the configured
 * `listen` address.  It speaks the p2p handshake framing (p2p_wire.h): it
 * serves the engine's segment descriptor to GET requests (the p2p metadata
 * backend publishes it here; with etcd or HTTP metadata nothing is
 * published and GET answers NOT_FOUND) and carries the transports' control
 * channel (CTRL requests, mc_host_api.ctrl_call, ABI 1.2) to a handler the
 * engine installs.  Its address is advertised in the segment descriptor
 * ("listen"), so a peer finds it through any metadata backend.
 *
 * Abuse resistance (issue 12): one epoll thread does all network I/O.  A
 * connection that has not yet delivered a whole, authenticated request
 * lives in the "pending" pool: small (pending_max), with a short deadline
 * (pending_ms) and at most pending_per_source connections per source
 * address.  A new connection from a source at its limit evicts that
 * source's oldest pending connection; one arriving with the pool full
 * evicts the oldest pending connection overall; evicted clients get a BUSY
 * answer when the socket takes it (the engine's clients retry BUSY with
 * back-off).  So unauthenticated clients only ever compete with each other:
 * an authenticated request moves its connection to the "served" pool
 * (served_max, separate slots), where it has an idle limit (timeout_ms) to
 * take its reply, and CTRL requests run on a few worker threads, never on
 * the I/O thread.  Warnings about dropped connections are rate-limited and
 * carry a count. */
#ifndef MC_LISTENER_H
#define MC_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef struct mc_listener mc_listener;

/* The engine's control channel handler: answers a CTRL request for
 * `transport` from segment `peer` (vouched for by the cluster token).
 * resp holds MC_CTRL_MAX bytes; *resp_len is set to the reply's length.
 * Returns 0 or a negative MC_E* sent back to the caller. */
typedef int (*mc_listener_ctrl_fn)(void *arg, const char *transport,
                                   const char *peer, const void *req,
                                   size_t req_len, void *resp,
                                   size_t *resp_len);

typedef struct mc_listener_args {
  const char *listen; /* "host:port" to bind; port 0 = any */
  const char *token;  /* cluster token to demand; NULL or "" = none */
  uint32_t timeout_ms; /* idle limit of authenticated connections */
  const mc_logger *log;
  /* Limits; 0 = the default in brackets. */
  uint32_t pending_max;        /* unauthenticated pool [32] */
  uint32_t pending_per_source; /* per source address [8] */
  uint32_t pending_ms;         /* deadline for a whole request [1000] */
  uint32_t served_max;         /* authenticated pool [256] */
  uint32_t workers;            /* threads running ctrl handlers [2],
                                  started with the first CTRL request */
} mc_listener_args;

/* Counters since open (for tests and logs). */
typedef struct mc_listener_stats {
  uint64_t accepted;      /* connections accepted */
  uint64_t evicted;       /* pending connections dropped for a newer one */
  uint64_t expired;       /* connections closed at their deadline */
  uint64_t unauthorized;  /* requests refused for their token */
  uint64_t busy;          /* authenticated requests answered BUSY */
  uint64_t served;        /* requests answered (any status) */
  uint32_t pending_now, served_now;
} mc_listener_stats;

/* Binds and starts the listener.  MC_E* with err set ("cannot listen on
 * ...") on failure. */
int mc_listener_open(const mc_listener_args *a, mc_listener **out, char *err,
                     size_t errlen);
/* Stops the threads (running handlers finish first), closes every
 * connection and frees l.  NULL is fine. */
void mc_listener_close(mc_listener *l);

/* "host:port" peers reach this listener at (a wildcard bind is replaced by
 * this host's primary address). */
const char *mc_listener_address(const mc_listener *l);
uint16_t mc_listener_port(const mc_listener *l);

/* The descriptor served to GET requests for `segment` (or for this
 * listener's address); replaces the previous one.  MC_EINVAL for a bad name
 * or size. */
int mc_listener_publish(mc_listener *l, const char *segment, const char *json,
                        size_t len);
/* MC_ENOENT when segment is not the one published. */
int mc_listener_unpublish(mc_listener *l, const char *segment);
/* A copy (*json malloc'd, NUL-terminated) of the published descriptor when
 * `segment` names it or this listener's address; MC_ENOENT otherwise. */
int mc_listener_own(mc_listener *l, const char *segment, char **json,
                    size_t *len);

/* Installs (fn != NULL) or removes the CTRL handler; `segment` is this
 * engine's segment name (CTRL requests naming another target are answered
 * NOT_FOUND).  Removing waits until no handler call is running, so the
 * engine may stop its transports right after.  Without a handler CTRL
 * requests are answered MC_ENOTSUP. */
void mc_listener_set_ctrl(mc_listener *l, mc_listener_ctrl_fn fn, void *arg,
                          const char *segment);

void mc_listener_get_stats(mc_listener *l, mc_listener_stats *s);

/* Back-off for clients retrying a BUSY listener: the wait before attempt
 * `attempt` (1, 2, ...) in ms, doubling from 5 ms to 200 ms with jitter. */
uint32_t mc_listener_backoff_ms(unsigned attempt);

#endif
