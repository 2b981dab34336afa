/* Server side of the RPC layer: unary methods served by a few worker
 * threads sharing one completion queue.
 *
 * Each registered method keeps one outstanding "request call"; when a call
 * arrives its state object runs the handler on the worker that got it,
 * sends the answer, re-arms a new request for the method, and is freed
 * when gRPC reports the call closed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "mooncake/errors.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

#define MAX_METHODS 64
#define MAX_THREADS 16

typedef struct srv_method {
  char *path;
  mc_rpc_unary_handler fn;
  void *arg;
  void *handle; /* from grpc_server_register_method */
} srv_method;

struct mc_rpc_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  char *addr;
  srv_method methods[MAX_METHODS];
  int nmethods;
  pthread_t threads[MAX_THREADS];
  int nthreads;
  int started;
  atomic_int stopping;
  atomic_int active;        /* srv_call objects alive */
  atomic_int shutdown_seen; /* gRPC reported the server shut down */
  atomic_int cq_closed;
  char shutdown_tag;
};

typedef struct srv_call {
  mc_rpc_server *srv;
  srv_method *m; /* NULL: catch-all for unregistered methods */
  grpc_call *call;
  grpc_call_details details_in;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_byte_buffer *resp;
  grpc_slice details;
  int answering; /* 0: waiting for a call, 1: answer in flight */
  int cancelled;
} srv_call;

/* Shuts the queue down once gRPC has shut the server down and no call is
 * left that could still start a batch on it (a slow handler may answer
 * after shutdown began). */
static void maybe_close_cq(mc_rpc_server *srv) {
  if (atomic_load(&srv->shutdown_seen) && atomic_load(&srv->active) == 0 &&
      atomic_exchange(&srv->cq_closed, 1) == 0)
    grpc_completion_queue_shutdown(srv->cq);
}

static void free_call(srv_call *c) {
  mc_rpc_server *srv = c->srv;
  if (c->payload)
    grpc_byte_buffer_destroy(c->payload);
  if (c->resp)
    grpc_byte_buffer_destroy(c->resp);
  grpc_slice_unref(c->details);
  grpc_metadata_array_destroy(&c->md);
  if (!c->m)
    grpc_call_details_destroy(&c->details_in);
  if (c->call)
    grpc_call_unref(c->call);
  free(c);
  atomic_fetch_sub(&srv->active, 1);
  maybe_close_cq(srv);
}

static int arm(mc_rpc_server *srv, srv_method *m) {
  srv_call *c = calloc(1, sizeof(*c));
  if (!c)
    return MC_ENOMEM;
  atomic_fetch_add(&srv->active, 1);
  c->srv = srv;
  c->m = m;
  c->details = grpc_empty_slice();
  grpc_metadata_array_init(&c->md);
  grpc_call_error e;
  if (m) {
    e = grpc_server_request_registered_call(srv->server, m->handle, &c->call,
                                            &c->deadline, &c->md, &c->payload,
                                            srv->cq, srv->cq, c);
  } else {
    grpc_call_details_init(&c->details_in);
    e = grpc_server_request_call(srv->server, &c->call, &c->details_in, &c->md,
                                 srv->cq, srv->cq, c);
  }
  if (e != GRPC_CALL_OK) {
    free_call(c);
    return MC_EIO;
  }
  return 0;
}

static void answer(srv_call *c) {
  void *out = NULL;
  size_t outlen = 0;
  char msg[256] = "";
  int code = GRPC_STATUS_INVALID_ARGUMENT;
  void *in = NULL;
  size_t inlen = 0;
  if (!c->m) {
    /* Unregistered method: answer at once instead of letting the client
     * wait for its deadline. */
    code = GRPC_STATUS_UNIMPLEMENTED;
    snprintf(msg, sizeof(msg), "method %.*s not implemented",
             (int)GRPC_SLICE_LENGTH(c->details_in.method) > 200
                 ? 200 : (int)GRPC_SLICE_LENGTH(c->details_in.method),
             (const char *)GRPC_SLICE_START_PTR(c->details_in.method));
  } else if (!c->payload) {
    strcpy(msg, "request without a message");
  } else if (mc_rpc_bb_to(c->payload, &in, &inlen) != 0) {
    code = GRPC_STATUS_INTERNAL;
    strcpy(msg, "cannot read request");
  } else {
    code = c->m->fn(c->m->arg, in, inlen, &out, &outlen, msg, sizeof(msg));
    msg[sizeof(msg) - 1] = 0;
  }
  free(in);
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (code == GRPC_STATUS_OK) {
    c->resp = mc_rpc_bb_from(out ? out : "", out ? outlen : 0);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->resp;
  }
  free(out);
  c->details = grpc_slice_from_copied_string(msg);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)code;
  ops[n++].data.send_status_from_server.status_details = &c->details;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->answering = 1;
  if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK)
    free_call(c);
}

static void *worker(void *arg) {
  mc_rpc_server *srv = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        srv->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    if (ev.tag == &srv->shutdown_tag) {
      atomic_store(&srv->shutdown_seen, 1);
      maybe_close_cq(srv);
      continue;
    }
    srv_call *c = ev.tag;
    if (c->answering || !ev.success) {
      free_call(c); /* answered, or the server is shutting down */
      continue;
    }
    if (!atomic_load(&srv->stopping))
      (void)arm(srv, c->m); /* keep one request outstanding per method */
    answer(c);
  }
  return NULL;
}

int mc_rpc_server_create(const char *addr, mc_rpc_server **out) {
  if (!addr || !*addr)
    return MC_EINVAL;
  mc_rpc_server *srv = calloc(1, sizeof(*srv));
  if (!srv || !(srv->addr = strdup(addr))) {
    free(srv);
    return MC_ENOMEM;
  }
  mc_rpc_global_init();
  grpc_arg a[] = {
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       .value.integer = (int)MC_RPC_MAX_MESSAGE},
  };
  grpc_channel_args args = {.num_args = 1, .args = a};
  srv->server = grpc_server_create(&args, NULL);
  srv->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
  *out = srv;
  return 0;
}

int mc_rpc_server_add_unary(mc_rpc_server *srv, const char *method,
                            mc_rpc_unary_handler fn, void *arg) {
  if (srv->started || !method || !fn)
    return MC_EINVAL;
  if (srv->nmethods == MAX_METHODS)
    return MC_ENOSPC;
  srv_method *m = &srv->methods[srv->nmethods];
  if (!(m->path = strdup(method)))
    return MC_ENOMEM;
  m->handle = grpc_server_register_method(srv->server, m->path, NULL,
                                          GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  if (!m->handle) {
    free(m->path);
    m->path = NULL;
    return MC_EEXIST;
  }
  m->fn = fn;
  m->arg = arg;
  srv->nmethods++;
  return 0;
}

int mc_rpc_server_start(mc_rpc_server *srv, int nthreads, int *port) {
  if (srv->started || nthreads < 1)
    return MC_EINVAL;
  if (nthreads > MAX_THREADS)
    nthreads = MAX_THREADS;
  grpc_server_credentials *cr = grpc_insecure_server_credentials_create();
  int p = grpc_server_add_http2_port(srv->server, srv->addr, cr);
  grpc_server_credentials_release(cr);
  if (p <= 0)
    return MC_EIO;
  grpc_server_start(srv->server);
  srv->started = 1;
  for (int i = 0; i < srv->nmethods; i++)
    if (arm(srv, &srv->methods[i]) != 0)
      return MC_EIO; /* destroy cleans up */
  if (arm(srv, NULL) != 0)
    return MC_EIO;
  for (int i = 0; i < nthreads; i++) {
    if (pthread_create(&srv->threads[i], NULL, worker, srv) != 0)
      return MC_ENOMEM;
    srv->nthreads++;
  }
  if (port)
    *port = p;
  return 0;
}

void mc_rpc_server_destroy(mc_rpc_server *srv) {
  if (!srv)
    return;
  atomic_store(&srv->stopping, 1);
  grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
  grpc_server_cancel_all_calls(srv->server);
  if (srv->nthreads) {
    for (int i = 0; i < srv->nthreads; i++)
      pthread_join(srv->threads[i], NULL);
  } else {
    /* Never started workers: drain here. */
    worker(srv);
  }
  grpc_server_destroy(srv->server);
  grpc_completion_queue_destroy(srv->cq);
  for (int i = 0; i < srv->nmethods; i++)
    free(srv->methods[i].path);
  free(srv->addr);
  free(srv);
  mc_rpc_global_fini();
}
