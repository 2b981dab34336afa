/* Client side of the RPC layer: channels, unary calls, streams.
 *
 * Every call gets its own pluck-type completion queue, so a thread waiting
 * on one call never consumes another call's events and a stream's sender
 * and receiver can wait concurrently on distinct tags. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "mooncake/errors.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

struct mc_rpc_channel {
  pthread_mutex_t mu; /* guards ch against mc_rpc_channel_reset */
  grpc_channel *ch;
  char target[256];
};

static grpc_channel *make_channel(const char *target);

int mc_rpc_channel_create(const char *target, mc_rpc_channel **out) {
  if (!target || !*target || strlen(target) >= 256)
    return MC_EINVAL;
  mc_rpc_channel *c = calloc(1, sizeof(*c));
  if (!c)
    return MC_ENOMEM;
  mc_rpc_global_init();
  strcpy(c->target, target);
  pthread_mutex_init(&c->mu, NULL);
  c->ch = make_channel(target);
  if (!c->ch) {
    pthread_mutex_destroy(&c->mu);
    free(c);
    mc_rpc_global_fini();
    return MC_EIO;
  }
  *out = c;
  return 0;
}

static grpc_channel *make_channel(const char *target) {  /* Short reconnect backoff: a restarted etcd must be found again within
   * a metadata deadline, not gRPC's default of up to two minutes.  gRPC
   * also uses the "min reconnect backoff" as the connect timeout (TCP +
   * HTTP/2 handshake), so it stays at a generous 5 s. */
  grpc_arg a[] = {
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 100},
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 5000},
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 1000},
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = (int)MC_RPC_MAX_MESSAGE},
      /* Detect a silently dead server on long-lived streams. */
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 10000},
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 5000},
      /* Each channel owns its connection; two engines in one process do not
       * share (and do not tear down) each other's subchannels. */
      {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
  };
  grpc_channel_args args = {.num_args = sizeof(a) / sizeof(a[0]), .args = a};
  grpc_channel_credentials *cr = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, cr, &args);
  grpc_channel_credentials_release(cr);
  return ch;
}

int mc_rpc_channel_reset(mc_rpc_channel *c) {
  grpc_channel *nc = make_channel(c->target);
  if (!nc)
    return MC_EIO;
  pthread_mutex_lock(&c->mu);
  grpc_channel *old = c->ch;
  c->ch = nc;
  pthread_mutex_unlock(&c->mu);
  /* Calls in flight hold their own reference and finish normally. */
  grpc_channel_destroy(old);
  return 0;
}

void mc_rpc_channel_destroy(mc_rpc_channel *c) {
  if (!c)
    return;
  grpc_channel_destroy(c->ch);
  pthread_mutex_destroy(&c->mu);
  free(c);
  mc_rpc_global_fini();
}

const char *mc_rpc_channel_target(const mc_rpc_channel *c) { return c->target; }

static grpc_call *new_call(mc_rpc_channel *c, grpc_completion_queue *cq,
                           const char *method, int timeout_ms) {
  grpc_slice m = grpc_slice_from_copied_string(method);
  pthread_mutex_lock(&c->mu);
  grpc_call *call = grpc_channel_create_call(
      c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
      mc_rpc_deadline(timeout_ms > 0 ? timeout_ms : -1), NULL);
  pthread_mutex_unlock(&c->mu);
  grpc_slice_unref(m);
  return call;
}

/* Waits for tag; polls the cancel flag every 20 ms.  Returns the event's
 * success bit, or -1 if `deadline` passed first. */
static int wait_tag(grpc_completion_queue *cq, void *tag, grpc_call *call,
                    gpr_timespec deadline, const atomic_int *cancel) {
  int cancelled = 0;
  for (;;) {
    gpr_timespec until = deadline;
    if (cancel && !cancelled) {
      gpr_timespec step = mc_rpc_deadline(20);
      if (gpr_time_cmp(step, until) < 0)
        until = step;
    }
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, until, NULL);
    if (ev.type == GRPC_OP_COMPLETE)
      return ev.success;
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      return 0;
    if (cancel && !cancelled && atomic_load(cancel)) {
      grpc_call_cancel(call, NULL);
      cancelled = 1;
    }
    if (gpr_time_cmp(mc_rpc_deadline(0), deadline) >= 0)
      return -1;
  }
}

static void destroy_cq(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  /* Every tag was consumed; this returns GRPC_QUEUE_SHUTDOWN at once. */
  (void)grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                    NULL);
  grpc_completion_queue_destroy(cq);
}

int mc_rpc_unary(mc_rpc_channel *c, const char *method, const void *req,
                 size_t req_len, void **resp, size_t *resp_len,
                 const mc_rpc_call_opts *opts, mc_rpc_status *st) {
  mc_rpc_call_opts dflt = {0};
  if (!opts)
    opts = &dflt;
  *resp = NULL;
  *resp_len = 0;
  if (req_len > MC_RPC_MAX_MESSAGE) {
    mc_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "request too large", 17);
    return MC_EINVAL;
  }
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_call *call = new_call(c, cq, method, opts->timeout_ms);
  if (!call) {
    destroy_cq(cq);
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "cannot create call", 18);
    return MC_EIO;
  }
  grpc_byte_buffer *sbuf = mc_rpc_bb_from(req, req_len), *rbuf = NULL;
  grpc_metadata_array imd, tmd;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = opts->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = sbuf;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &rbuf;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  int rc;
  int tag;
  if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "start_batch refused", 19);
    rc = MC_EIO;
  } else {
    /* The call's own deadline completes the batch; no wait bound needed. */
    (void)wait_tag(cq, &tag, call, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                   opts->cancel);
    mc_rpc_status_set(st, code, (const char *)GRPC_SLICE_START_PTR(details),
                      GRPC_SLICE_LENGTH(details));
    rc = mc_rpc_code_to_mc(code);
    if (rc == 0) {
      if (!rbuf) {
        mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "OK status without a response message", 36);
        rc = MC_EPROTO;
      } else {
        rc = mc_rpc_bb_to(rbuf, resp, resp_len);
      }
    }
  }
  if (rbuf)
    grpc_byte_buffer_destroy(rbuf);
  grpc_byte_buffer_destroy(sbuf);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_call_unref(call);
  destroy_cq(cq);
  return rc;
}

int mc_rpc_unary_pb(mc_rpc_channel *c, const char *method,
                    const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc,
                    ProtobufCMessage **resp, const mc_rpc_call_opts *opts,
                    mc_rpc_status *st) {
  void *in = NULL, *out = NULL;
  size_t inlen = 0, outlen = 0;
  *resp = NULL;
  int rc = mc_rpc_pack(req, &in, &inlen);
  if (rc)
    return rc;
  rc = mc_rpc_unary(c, method, in, inlen, &out, &outlen, opts, st);
  free(in);
  if (rc)
    return rc;
  *resp = protobuf_c_message_unpack(resp_desc, NULL, outlen, out);
  free(out);
  if (!*resp) {
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "response does not parse", 23);
    return MC_EPROTO;
  }
  return 0;
}

/* ---- streams ---- */

struct mc_rpc_stream {
  grpc_call *call;
  grpc_completion_queue *cq;
  grpc_metadata_array imd, tmd;
  grpc_status_code code;
  grpc_slice details;
  grpc_byte_buffer *rbuf;
  int got_imd;
  int recv_armed;   /* a RECV_MESSAGE batch is outstanding */
  int status_done;  /* the RECV_STATUS batch completed */
  int ended;
  int final_rc;
  mc_rpc_status final_st;
  char tag_send, tag_recv, tag_status;
};

static int stream_finish(mc_rpc_stream *s, mc_rpc_status *st) {
  if (!s->ended) {
    if (!s->status_done) {
      /* The call is over (recv saw the end); the status follows promptly,
       * but bound the wait and cancel if the server dawdles. */
      if (wait_tag(s->cq, &s->tag_status, s->call, mc_rpc_deadline(5000), NULL) < 0) {
        grpc_call_cancel(s->call, NULL);
        (void)wait_tag(s->cq, &s->tag_status, s->call,
                       gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
      }
      s->status_done = 1;
    }
    s->ended = 1;
    if (s->code == GRPC_STATUS_OK) {
      mc_rpc_status_set(&s->final_st, GRPC_STATUS_OK, "stream closed by server", 23);
      s->final_rc = MC_EPEER;
    } else {
      mc_rpc_status_set(&s->final_st, s->code,
                        (const char *)GRPC_SLICE_START_PTR(s->details),
                        GRPC_SLICE_LENGTH(s->details));
      s->final_rc = mc_rpc_code_to_mc(s->code);
    }
  }
  if (st)
    *st = s->final_st;
  return s->final_rc;
}

int mc_rpc_stream_open(mc_rpc_channel *c, const char *method,
                       const mc_rpc_call_opts *opts, mc_rpc_stream **out,
                       mc_rpc_status *st) {
  mc_rpc_call_opts dflt = {0};
  if (!opts)
    opts = &dflt;
  mc_rpc_stream *s = calloc(1, sizeof(*s));
  if (!s)
    return MC_ENOMEM;
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  s->call = new_call(c, s->cq, method, opts->timeout_ms);
  if (!s->call) {
    destroy_cq(s->cq);
    free(s);
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "cannot create call", 18);
    return MC_EIO;
  }
  grpc_metadata_array_init(&s->imd);
  grpc_metadata_array_init(&s->tmd);
  s->details = grpc_empty_slice();
  s->code = GRPC_STATUS_UNKNOWN;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &s->tmd;
  op.data.recv_status_on_client.status = &s->code;
  op.data.recv_status_on_client.status_details = &s->details;
  if (grpc_call_start_batch(s->call, &op, 1, &s->tag_status, NULL) != GRPC_CALL_OK) {
    s->status_done = 1;
    mc_rpc_stream_destroy(s);
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "start_batch refused", 19);
    return MC_EIO;
  }
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  op.flags = opts->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
  int ok = grpc_call_start_batch(s->call, &op, 1, &s->tag_send, NULL) == GRPC_CALL_OK &&
           wait_tag(s->cq, &s->tag_send, s->call, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                    opts->cancel) > 0;
  if (!ok) {
    int rc = stream_finish(s, st);
    mc_rpc_stream_destroy(s);
    return rc ? rc : MC_EPEER;
  }
  *out = s;
  return 0;
}

int mc_rpc_stream_send(mc_rpc_stream *s, const void *msg, size_t len,
                       int timeout_ms, mc_rpc_status *st) {
  if (s->ended)
    return stream_finish(s, st);
  grpc_byte_buffer *bb = mc_rpc_bb_from(msg, len);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  int rc = 0;
  if (grpc_call_start_batch(s->call, &op, 1, &s->tag_send, NULL) != GRPC_CALL_OK) {
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "send refused (stream closed?)", 29);
    rc = MC_EIO;
  } else {
    int r = wait_tag(s->cq, &s->tag_send, s->call, mc_rpc_deadline(timeout_ms), NULL);
    if (r < 0) {
      grpc_call_cancel(s->call, NULL);
      (void)wait_tag(s->cq, &s->tag_send, s->call, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
      mc_rpc_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED, "send timed out; stream canceled", 31);
      rc = MC_ETIMEDOUT;
    } else if (r == 0) {
      mc_rpc_status_set(st, GRPC_STATUS_UNAVAILABLE, "send failed: stream broken", 26);
      rc = MC_EPEER;
    }
  }
  grpc_byte_buffer_destroy(bb);
  return rc;
}

int mc_rpc_stream_send_pb(mc_rpc_stream *s, const ProtobufCMessage *msg,
                          int timeout_ms, mc_rpc_status *st) {
  void *buf;
  size_t len;
  int rc = mc_rpc_pack(msg, &buf, &len);
  if (rc)
    return rc;
  rc = mc_rpc_stream_send(s, buf, len, timeout_ms, st);
  free(buf);
  return rc;
}

int mc_rpc_stream_close_send(mc_rpc_stream *s, int timeout_ms, mc_rpc_status *st) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  if (grpc_call_start_batch(s->call, &op, 1, &s->tag_send, NULL) != GRPC_CALL_OK) {
    mc_rpc_status_set(st, GRPC_STATUS_INTERNAL, "close refused", 13);
    return MC_EIO;
  }
  int r = wait_tag(s->cq, &s->tag_send, s->call, mc_rpc_deadline(timeout_ms), NULL);
  if (r < 0) {
    grpc_call_cancel(s->call, NULL);
    (void)wait_tag(s->cq, &s->tag_send, s->call, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    mc_rpc_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED, "close timed out", 15);
    return MC_ETIMEDOUT;
  }
  return 0;
}

int mc_rpc_stream_recv(mc_rpc_stream *s, void **msg, size_t *len, int timeout_ms,
                       mc_rpc_status *st) {
  *msg = NULL;
  *len = 0;
  if (s->ended)
    return stream_finish(s, st);
  if (!s->recv_armed) {
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!s->got_imd) {
      ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
      ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->imd;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &s->rbuf;
    if (grpc_call_start_batch(s->call, ops, n, &s->tag_recv, NULL) != GRPC_CALL_OK)
      return stream_finish(s, st);
    s->got_imd = 1;
    s->recv_armed = 1;
  }
  int r = wait_tag(s->cq, &s->tag_recv, s->call, mc_rpc_deadline(timeout_ms), NULL);
  if (r < 0) {
    mc_rpc_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED, "no message yet", 14);
    return MC_EAGAIN;
  }
  s->recv_armed = 0;
  if (r > 0 && s->rbuf) {
    int rc = mc_rpc_bb_to(s->rbuf, msg, len);
    grpc_byte_buffer_destroy(s->rbuf);
    s->rbuf = NULL;
    if (rc == 0)
      mc_rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    return rc;
  }
  return stream_finish(s, st);
}

void mc_rpc_stream_cancel(mc_rpc_stream *s) {
  if (s)
    grpc_call_cancel(s->call, NULL);
}

void mc_rpc_stream_destroy(mc_rpc_stream *s) {
  if (!s)
    return;
  grpc_call_cancel(s->call, NULL);
  gpr_timespec inf = gpr_inf_future(GPR_CLOCK_MONOTONIC);
  if (s->recv_armed)
    (void)wait_tag(s->cq, &s->tag_recv, s->call, inf, NULL);
  if (!s->status_done)
    (void)wait_tag(s->cq, &s->tag_status, s->call, inf, NULL);
  if (s->rbuf)
    grpc_byte_buffer_destroy(s->rbuf);
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->imd);
  grpc_metadata_array_destroy(&s->tmd);
  grpc_call_unref(s->call);
  destroy_cq(s->cq);
  free(s);
}
