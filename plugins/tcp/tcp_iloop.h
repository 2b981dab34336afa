/* tcp_iloop.h - the initiator side's io threads: a fixed set (io_threads)
 * per context, each with an epoll set, shared by the connections of every
 * endpoint, so the thread count does not grow with peers.
 *
 * A connection (tcp_conn.c) belongs to one worker.  Other threads reach it
 * only through its link: kick (work was queued: the worker calls
 * tcp_conn_kicked) and detach (the endpoint goes: the worker calls
 * tcp_conn_detached, forgets the connection, and detach returns).  Kicks
 * coalesce: one eventfd write wakes the worker for any number of them.
 * The worker also calls tcp_conn_io for socket events and tcp_conn_tick
 * every TCP_ILOOP_TICK_MS (deadlines, dial retries, idle close). */
#ifndef MC_TCP_ILOOP_H
#define MC_TCP_ILOOP_H

#include <stdint.h>

#include "tcp_ctx.h"

#define TCP_ILOOP_TICK_MS 20

struct tcp_conn;
struct tcp_iworker;

typedef struct tcp_ilink {
  struct tcp_conn *conn;
  struct tcp_iworker *w;
  struct tcp_ilink *prev, *next; /* the worker's list (worker only) */
  struct tcp_ilink *knext;       /* kick list (worker lock) */
  struct tcp_ilink *rnext;       /* again list (worker only) */
  int kicked, detach, gone;      /* worker lock */
  int attached, again;           /* worker only */
} tcp_ilink;

typedef struct tcp_iloop tcp_iloop;

/* Starts n workers.  0 or MC_ENOMEM. */
int tcp_iloop_start(tcp_ctx *ctx, uint32_t n, tcp_iloop **out);
/* Joins the workers; every connection has been detached. */
void tcp_iloop_stop(tcp_iloop *l);
/* Binds link (of conn) to a worker, round robin. */
void tcp_iloop_bind(tcp_iloop *l, tcp_ilink *link, struct tcp_conn *conn);
/* The worker's epoll fd, for the connection's socket (data.ptr = link). */
int tcp_ilink_epoll(const tcp_ilink *link);
/* Asks the worker to call tcp_conn_kicked soon.  Any thread. */
void tcp_ilink_kick(tcp_ilink *link);
/* Worker only: call tcp_conn_io(conn, 0) again after the other ready
 * connections (its turn ended with input left). */
void tcp_ilink_again(tcp_ilink *link);
/* Has the worker call tcp_conn_detached and waits until it did.  Any
 * thread but the worker's. */
void tcp_ilink_detach(tcp_ilink *link);

/* Implemented by tcp_conn.c, called on the connection's worker. */
void tcp_conn_kicked(struct tcp_conn *c);
void tcp_conn_io(struct tcp_conn *c, uint32_t events);
void tcp_conn_tick(struct tcp_conn *c, int64_t now);
void tcp_conn_detached(struct tcp_conn *c);

#endif
