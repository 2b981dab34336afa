/* libmooncake-rpc (core/rpc/, its own static library, not part of
 * libmooncake): a small RPC layer on gRPC's C core (libgrpc).
 *
 * Client side: unary calls and bidirectional streams (the etcd metadata
 * module).  Server side: unary methods served by a few worker threads, for
 * services built on this library.  Messages are opaque bytes here; mc_rpc_unary_pb() adds
 * protobuf-c packing for the common case.
 *
 * Lifetime: mc_rpc_global_init() / mc_rpc_global_fini() wrap grpc_init /
 * grpc_shutdown, which gRPC reference-counts; every object that owns
 * channels or servers takes one pair, so several engines in a process are
 * fine.  A channel is thread-safe and may be shared by any number of
 * concurrent calls; a stream is used by at most one sender and one
 * receiver thread at a time (mc_rpc_stream_cancel from any thread).
 *
 * Errors: every call returns 0 or MC_E* (mc_rpc_code_to_mc maps gRPC status
 * codes), and fills an mc_rpc_status with the gRPC code and message, so the
 * caller can log e.g. "UNAVAILABLE: failed to connect to all addresses". */
#ifndef MC_RPC_H
#define MC_RPC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Largest message accepted in either direction. */
#define MC_RPC_MAX_MESSAGE (64u << 20)

typedef struct mc_rpc_status {
  int code;          /* grpc_status_code; 0 = OK */
  char message[256]; /* "<CODE NAME>: <detail>", NUL-terminated */
} mc_rpc_status;

int mc_rpc_global_init(void);
void mc_rpc_global_fini(void);

/* MC_E* for a gRPC status code: OK 0, DEADLINE_EXCEEDED ETIMEDOUT,
 * UNAVAILABLE EPEER, NOT_FOUND ENOENT, CANCELLED ECANCELED, INVALID_ARGUMENT
 * and FAILED_PRECONDITION EINVAL, ALREADY_EXISTS EEXIST, UNIMPLEMENTED
 * ENOTSUP, PERMISSION_DENIED/UNAUTHENTICATED EACCES, RESOURCE_EXHAUSTED
 * EAGAIN, anything else EIO. */
int mc_rpc_code_to_mc(int code);
const char *mc_rpc_code_name(int code);

/* ---- client ---- */

typedef struct mc_rpc_channel mc_rpc_channel;

/* Insecure (plain HTTP/2) channel to target "host:port".  Connection is
 * lazy; reconnect backoff is capped at 1 s so a restarted server is found
 * again quickly.  Never fails on an unreachable target (calls do). */
int mc_rpc_channel_create(const char *target, mc_rpc_channel **out);
void mc_rpc_channel_destroy(mc_rpc_channel *ch);

/* Replaces the channel's connection machinery with a fresh one (calls in
 * flight finish on the old one).  For callers that see a target fail for
 * long: gRPC 1.51 can keep a subchannel whose first connection was
 * accepted before the server was serving from ever becoming ready. */
int mc_rpc_channel_reset(mc_rpc_channel *ch);
const char *mc_rpc_channel_target(const mc_rpc_channel *ch);

typedef struct mc_rpc_call_opts {
  int timeout_ms;             /* deadline from now; <= 0: no deadline */
  const atomic_int *cancel;   /* optional: polled every 20 ms, non-zero cancels */
  int wait_for_ready;         /* 1: wait for a connection instead of failing fast */
} mc_rpc_call_opts;

/* One request, one response.  method is the full path
 * ("/etcdserverpb.KV/Range").  *resp is malloc'd (free it), *resp_len its
 * size.  st may be NULL. */
int mc_rpc_unary(mc_rpc_channel *ch, const char *method, const void *req,
                 size_t req_len, void **resp, size_t *resp_len,
                 const mc_rpc_call_opts *opts, mc_rpc_status *st);

/* As mc_rpc_unary with protobuf-c messages: packs req, unpacks the answer
 * with resp_desc into *resp (free with protobuf_c_message_free_unpacked).
 * An answer that does not parse is MC_EPROTO. */
int mc_rpc_unary_pb(mc_rpc_channel *ch, const char *method,
                    const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc,
                    ProtobufCMessage **resp, const mc_rpc_call_opts *opts,
                    mc_rpc_status *st);

typedef struct mc_rpc_stream mc_rpc_stream;

/* Starts a streaming call (client, server or bidirectional streaming are
 * all this).  opts->timeout_ms bounds the whole stream (<= 0: none). */
int mc_rpc_stream_open(mc_rpc_channel *ch, const char *method,
                       const mc_rpc_call_opts *opts, mc_rpc_stream **out,
                       mc_rpc_status *st);

/* Sends one message, waiting up to timeout_ms (< 0: forever) for gRPC to
 * accept it.  A send that times out cancels the stream (MC_ETIMEDOUT). */
int mc_rpc_stream_send(mc_rpc_stream *s, const void *msg, size_t len,
                       int timeout_ms, mc_rpc_status *st);
int mc_rpc_stream_send_pb(mc_rpc_stream *s, const ProtobufCMessage *msg,
                          int timeout_ms, mc_rpc_status *st);

/* Half-closes the sending side. */
int mc_rpc_stream_close_send(mc_rpc_stream *s, int timeout_ms,
                             mc_rpc_status *st);

/* Receives the next message into *msg (malloc'd) within timeout_ms (< 0:
 * forever).  MC_EAGAIN when nothing arrived in time: the receive stays
 * armed and the next call picks it up, so short timeouts can be used to
 * poll a stop flag.  When the stream ends, returns the mapped final status
 * (MC_EPEER with an OK status: "stream closed by server") and st says why;
 * every later call returns the same. */
int mc_rpc_stream_recv(mc_rpc_stream *s, void **msg, size_t *len,
                       int timeout_ms, mc_rpc_status *st);

/* Cancels the stream; pending and later operations fail with
 * MC_ECANCELED.  Thread-safe, idempotent. */
void mc_rpc_stream_cancel(mc_rpc_stream *s);

/* Cancels if still open, waits for gRPC to release the call, frees.  No
 * other thread may be inside send/recv on s. NULL is a no-op. */
void mc_rpc_stream_destroy(mc_rpc_stream *s);

/* ---- server ---- */

typedef struct mc_rpc_server mc_rpc_server;

/* Handles one unary request on a server thread.  Fill *resp (malloc'd,
 * the server frees it) and return 0, or return a non-OK gRPC status code
 * with an optional message in msg (msglen bytes). */
typedef int (*mc_rpc_unary_handler)(void *arg, const void *req, size_t len,
                                    void **resp, size_t *resp_len, char *msg,
                                    size_t msglen);

/* Creates a server listening on addr ("127.0.0.1:0", "[::]:5000"); the
 * bound port is known after start. */
int mc_rpc_server_create(const char *addr, mc_rpc_server **out);

/* Registers a unary method (full path) before mc_rpc_server_start. */
int mc_rpc_server_add_unary(mc_rpc_server *srv, const char *method,
                            mc_rpc_unary_handler fn, void *arg);

/* Binds and starts nthreads (>= 1) worker threads that run handlers.
 * MC_EIO if the address cannot be bound.  *port gets the bound port. */
int mc_rpc_server_start(mc_rpc_server *srv, int nthreads, int *port);

/* Stops accepting, cancels calls in flight, joins the workers, frees.
 * NULL is a no-op. */
void mc_rpc_server_destroy(mc_rpc_server *srv);

#endif
