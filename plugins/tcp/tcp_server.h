/* tcp_server.h - target side: the listener, one thread holding the bounded
 * pool of connections that have not completed HELLO, and the io workers
 * (tcp_serve.h) serving READ/WRITE/NOTIFY frames of authenticated ones
 * against the registry without the application's help. */
#ifndef MC_TCP_SERVER_H
#define MC_TCP_SERVER_H

#include "tcp_ctx.h"

typedef struct tcp_server tcp_server;

/* Binds host:cfg.port, sets ctx->port, starts the accept thread. */
int tcp_server_start(tcp_ctx *ctx, const char *host, tcp_server **out);
/* Closes the listener and every served connection, joins all threads. */
void tcp_server_stop(tcp_server *s);

#endif
