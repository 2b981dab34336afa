/* tcp_server.h - target side: the listener and one thread per accepted
 * connection, serving READ/WRITE/NOTIFY frames against the registry
 * without the application's help. */
#ifndef MC_TCP_SERVER_H
#define MC_TCP_SERVER_H

#include "tcp_ctx.h"

typedef struct tcp_server tcp_server;

/* Binds host:cfg.port, sets ctx->port, starts the accept thread. */
int tcp_server_start(tcp_ctx *ctx, const char *host, tcp_server **out);
/* Closes the listener and every served connection, joins all threads. */
void tcp_server_stop(tcp_server *s);

#endif
