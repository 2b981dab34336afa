/* Private to the request pipeline (batch.c, slices.c): its records. */
#ifndef MC_PIPELINE_P_H
#define MC_PIPELINE_P_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pipeline.h"

typedef struct mc_req mc_req;
typedef struct mc_slice_rec mc_slice_rec;

/* Internal record of one slice. token == (uintptr_t)rec. */
struct mc_slice_rec {
  mc_req *req;
  uint64_t offset; /* within the request */
  uint64_t len;
  int transport;   /* index of the transport used last */
  uint32_t rail;
  uint32_t attempts;
  uint64_t queued_ms; /* when it entered the backlog */
  mc_slice_rec *next; /* backlog link */
};

/* A group of requests that sends one notification when all complete. */
typedef struct mc_notify_group {
  _Atomic uint32_t remaining;
  uint32_t nreqs;
  mc_req **reqs;
  size_t len;
  uint8_t msg[];
} mc_notify_group;

struct mc_req {
  mc_batch *batch;
  uint32_t index;
  mc_request r;
  mc_local_buf *lbuf;
  mc_seg_view *view;
  long rbuf; /* index in the view's descriptor buffers */
  int tcand[MC_MAX_TRANSPORTS]; /* candidate transports, best first */
  int ncand;
  _Atomic uint32_t remaining;
  _Atomic uint64_t bytes;
  _Atomic int32_t error;
  _Atomic int32_t vendor;
  _Atomic uint32_t state;
  _Atomic int transport_used;
  uint32_t nslices;
  mc_slice_rec *slices; /* &one when the request is one slice */
  mc_slice_rec one;     /* no allocation per small request */
  mc_notify_group *group;
};

struct mc_batch {
  mc_pipeline *pipe;
  uint32_t capacity;
  _Atomic uint32_t count;
  _Atomic uint32_t pending;
  _Atomic int canceled;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mc_req *reqs;
};

/* Slices a transport did not accept yet (back-pressure), FIFO. */
typedef struct mc_backlog {
  pthread_mutex_t lock;
  mc_slice_rec *head, *tail;
  _Atomic uint32_t len;
} mc_backlog;

struct mc_pipeline {
  mc_tset *set;
  mc_registry *reg;
  mc_jobq *jobs;
  const mc_config *cfg;
  mc_logger *log;
  mc_backlog backlog[MC_MAX_TRANSPORTS];
  _Atomic int backlog_waiting; /* some transport has a backlog */
  int progress_needed;         /* some transport needs progress() */
  _Atomic int64_t inflight;    /* slices inside plugins */
};

/* Counts a slice entering (+1) or leaving (-1) a plugin: the pipeline's
 * in-flight total (drives progress) and its rail's load (drives spill). */
static inline void mc_slice_account(mc_pipeline *p, const mc_slice_rec *s, int d) {
  mc_transport *t = p->set->t[s->transport];
  atomic_fetch_add(&p->inflight, d);
  atomic_fetch_add(&t->rail_inflight[s->rail], (uint32_t)d);
}

/* batch.c */
void mc_req_finish(mc_req *req);
void mc_req_set_error(mc_req *r, int err, int32_t vendor);
/* A slice of r finished (either way): finishes r after its last one,
 * queueing its group's notification when it is the group's last. */
void mc_req_slice_finished(mc_req *r);

/* slices.c */
/* Submits n prepared slices on transport t, of requests that share one
 * view and remote buffer (routed by recs[0]'s request, which must not have
 * finished); what the plugin does not take goes to its backlog.  Returns 0
 * or the routing error. */
int mc_slices_send(mc_pipeline *p, mc_transport *t, mc_slice_rec **recs,
                   uint32_t n);
/* A slice completed (the host API's complete, or a failure found here). */
void mc_slice_done(mc_slice_rec *s, int status, uint64_t bytes, int32_t vendor);
/* Fails a slice that could not be sent or retried. */
void mc_slice_fail(mc_slice_rec *s, int err, int32_t vendor);
/* Queues the notification of a group whose requests all finished. */
void mc_notify_group_queue(mc_pipeline *p, mc_notify_group *g);

#endif
