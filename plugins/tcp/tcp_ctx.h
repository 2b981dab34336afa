/* tcp_ctx.h - the TCP transport's per-engine context, shared by its modules. */
#ifndef MC_TCP_CTX_H
#define MC_TCP_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mooncake/transport.h"
#include "tcp_mem.h"
#include "tcp_ratelim.h"

/* Connections per peer at most (the `connections` key's range; a 64-bit
 * mask of the connections one submit touched covers them). */
#define TCP_CONN_MAX 64u

typedef struct tcp_cfg {
  uint32_t connections;      /* rails = connections per peer */
  uint16_t port;             /* listener port, 0 = ephemeral */
  int timeout_ms;            /* per-slice deadline, and target stall limit */
  int connect_timeout_ms;    /* connect + handshake */
  int hello_timeout_ms;      /* target: HELLO must arrive within this */
  uint32_t hello_pool;       /* target: connections awaiting HELLO, at most */
  uint32_t hello_per_source; /* ... of them from one source address */
  int idle_timeout_ms;       /* target closes authenticated idle ones; 0 never */
  uint32_t max_connections;  /* target: authenticated connections served */
  uint32_t io_threads;       /* target: threads serving them */
  uint32_t max_inflight;     /* queued + in flight per connection */
  uint64_t socket_buffer;    /* SO_SNDBUF/SO_RCVBUF, 0 = kernel autotuning */
  uint64_t inline_write_max; /* WRITE bytes per connection a submit sends itself */
  char advertise_host[256];  /* host put in the descriptor, "" = derive */
} tcp_cfg;

struct tcp_server;
struct tcp_iloop;
struct tcp_ep;
struct tcp_rmem;

typedef struct tcp_ctx {
  const mc_host_api *host;
  tcp_cfg cfg;
  char segment[MC_NAME_MAX];   /* our segment name, sent in HELLO */
  char adv_host[256];          /* host published in local_desc */
  uint16_t port;               /* bound listener port */
  uint8_t ep_secret[16];       /* published in local_desc; HELLO must carry it */
  tcp_registry reg;            /* local registrations, served to peers */
  struct tcp_server *srv;
  struct tcp_iloop *iloop;     /* initiator io threads, started by the first connect */
  pthread_mutex_t lock;        /* eps and rmems lists */
  struct tcp_ep *eps;
  struct tcp_rmem *rmems;
  tcp_ratelim warn;            /* refused accesses, failed dials */
  tcp_ratelim conn_warn;       /* refused or failed incoming connections */
} tcp_ctx;

/* An imported remote buffer (import_mem). */
typedef struct tcp_rmem {
  uint64_t buf_id, base, len;
  uint8_t secret[16];
  struct tcp_rmem *next;
} tcp_rmem;

#define TCP_LOG(ctx, lvl, ...)                                                 \
  do {                                                                         \
    const mc_host_api *h_ = (ctx)->host;                                       \
    if (h_->log_enabled(h_->host, (lvl)))                                      \
      h_->log(h_->host, (lvl), __VA_ARGS__);                                   \
  } while (0)

/* 1 when a rate-limited warning of ctx->warn may be written now (at most
 * one a second); *suppressed gets how many were dropped since the last. */
static inline int tcp_warn_allowed(tcp_ctx *ctx, unsigned long *suppressed) {
  return tcp_ratelim_allow(&ctx->warn, suppressed);
}

#endif
