/* Internal: the engine's data structures, shared by engine.c (life cycle),
 * hostapi.c (the table handed to plugins), registry.c (local buffers),
 * segment.c (remote segments), batch.c (requests and slices), worker.c
 * (retries, back-pressure, notifications, progress), rails.c (transport and
 * rail choice) and notify.c (received notifications). */
#ifndef MC_ENGINE_INTERNAL_H
#define MC_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "descriptor.h"
#include "loader.h"
#include "log.h"
#include "metadata.h"
#include "token.h"
#include "mooncake/engine.h"
#include "mooncake/transport.h"

#define MC_MAX_TRANSPORTS MC_DESC_MAX_TRANSPORTS
#define MC_RAIL_BACKOFF_MS 1000 /* a failed rail sits out this long */
#define MC_RAIL_SPILL 32        /* slices in flight on a rail before spilling */

struct mc_topology;

typedef struct mc_engine mc_engine;
typedef struct mc_req mc_req;
typedef struct mc_slice_rec mc_slice_rec;

/* One loaded and initialized transport. */
typedef struct mc_transport {
  mc_engine *engine;
  mc_plugin *plugin;
  const mc_transport_ops *ops; /* == &plugin->ops */
  void *ctx;
  int index; /* in engine->transports */
  int rank;  /* preference: lower is tried first */
  uint64_t slice_size; /* effective: config if set, else the plugin's hint */
  mc_host_api host;
  const mc_config_transport *cfg;
  mc_rail_info *rails;
  uint32_t nrails;
  _Atomic uint64_t *rail_down_until; /* per rail, mc_now_ms() deadline */
  _Atomic uint32_t *rail_inflight;   /* per rail, slices inside the plugin */
  _Atomic uint32_t rr;               /* round-robin cursor */
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
  int stopped;                 /* fini already called */
  pthread_mutex_t ctl_lock;    /* serializes control calls */
  pthread_mutex_t submit_lock; /* serializes submit without MT_SUBMIT */
  /* Slices the plugin did not accept yet (back-pressure), FIFO. */
  pthread_mutex_t backlog_lock;
  mc_slice_rec *backlog_head, *backlog_tail;
  _Atomic uint32_t backlog_len;
} mc_transport;

/* A registered local buffer. */
typedef struct mc_local_buf {
  uint64_t addr, len;
  uint32_t kind;
  int32_t device;
  char location[32];
  int shared_by; /* transport index that allocated it (mc_alloc_shared), -1 */
  void *mem[MC_MAX_TRANSPORTS];
  uint32_t rkey_len[MC_MAX_TRANSPORTS];
  uint8_t *rkey[MC_MAX_TRANSPORTS];
  _Atomic int64_t inflight; /* requests using it */
  /* 0 while the range is reserved and the transports register it (no
   * lock held): lookups, publication and unregistration skip it. */
  int ready;
  /* Rails of each transport ranked for this buffer's location (topology):
   * preferred first, then fallback, as rail indices. */
  uint32_t *rails[MC_MAX_TRANSPORTS];
  uint32_t npref[MC_MAX_TRANSPORTS], nrails[MC_MAX_TRANSPORTS];
} mc_local_buf;

/* An endpoint to one peer through one transport, shared by views whose
 * descriptor carries the same blob. */
typedef struct mc_ep {
  mc_transport *t;
  void *ep;
  _Atomic int refs;
  uint32_t blob_len;
  uint8_t blob[MC_DESC_MAX];
} mc_ep;

/* An immutable snapshot of a remote segment: its descriptor, the endpoint
 * per local transport, and lazily imported remote buffers.  Slices hold a
 * reference, so a refresh never pulls a view from under a transfer. */
typedef struct mc_seg_view {
  mc_seg_desc *desc;
  _Atomic int refs;
  int same_host;
  int desc_tidx[MC_MAX_TRANSPORTS]; /* local transport -> desc transport index, -1 */
  mc_ep *eps[MC_MAX_TRANSPORTS];    /* local transport index -> endpoint */
  pthread_mutex_t lock;             /* guards connect/import creation */
  _Atomic(void *) *rmem;            /* [buffer * MC_MAX_TRANSPORTS + t] */
  struct mc_segment *seg;
} mc_seg_view;

struct mc_segment {
  mc_engine *engine;
  char name[MC_NAME_MAX];
  int refs;           /* under engine->seg_lock */
  _Atomic int stale;  /* metadata said it changed */
  pthread_mutex_t lock; /* guards view swap and refresh */
  mc_seg_view *view;
  struct mc_segment *next;
};

/* Internal record of one slice. token == (uintptr_t)rec. */
struct mc_slice_rec {
  mc_req *req;
  uint64_t offset; /* within the request */
  uint64_t len;
  int transport;   /* index of the transport used last */
  uint32_t rail;
  uint32_t attempts;
  uint64_t queued_ms; /* when it entered the backlog */
  mc_slice_rec *next; /* backlog / retry list link */
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
  long rbuf; /* index in view->desc->buffers */
  int tcand[MC_MAX_TRANSPORTS]; /* candidate transports, best first */
  int ncand;
  _Atomic uint32_t remaining;
  _Atomic uint64_t bytes;
  _Atomic int32_t error;
  _Atomic int32_t vendor;
  _Atomic uint32_t state;
  _Atomic int transport_used;
  uint32_t nslices;
  mc_slice_rec *slices;
  mc_notify_group *group;
};

struct mc_batch {
  mc_engine *engine;
  uint32_t capacity;
  _Atomic uint32_t count;
  _Atomic uint32_t pending;
  _Atomic int canceled;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mc_req *reqs;
};

/* Work item for the engine worker. */
typedef struct mc_job {
  int kind; /* MC_JOB_* */
  mc_slice_rec *slice;
  mc_notify_group *group;
  struct mc_seg_view *view;
  uint64_t not_before_ms;
  struct mc_job *next;
} mc_job;

enum { MC_JOB_RETRY = 1, MC_JOB_NOTIFY = 2, MC_JOB_VIEW = 3 };

typedef struct mc_notify_queue {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mc_notification *items; /* ring */
  uint32_t cap, head, count;
  uint64_t dropped;
} mc_notify_queue;

struct mc_engine {
  mc_logger log;
  mc_config *cfg;
  char name[MC_NAME_MAX];
  char host_id[128];
  char listen_host[256];
  mc_loader *loader;
  mc_metadata *md;
  char cluster_token[MC_TOKEN_MAX + 1]; /* "" = none (token.h) */

  mc_transport *transports[MC_MAX_TRANSPORTS];
  int ntransports;
  struct mc_topology *topo;

  /* local buffers, sorted by addr */
  pthread_rwlock_t reg_lock;
  mc_local_buf **bufs;
  size_t nbufs, capbufs;
  pthread_mutex_t publish_lock;
  uint64_t version;

  pthread_mutex_t seg_lock;
  struct mc_segment *segments;

  /* worker */
  pthread_t worker;
  int worker_started;
  pthread_mutex_t job_lock;
  pthread_cond_t job_cond;
  mc_job *jobs;
  int stop;
  _Atomic int backlog_waiting; /* some transport has a backlog */
  _Atomic int progress_needed; /* some transport needs progress() */
  _Atomic int64_t inflight;    /* slices inside plugins */
  /* Set when the engine is destroyed with slices still in flight: the
   * transports were stopped first (fini releases their endpoints, imports
   * and registrations), so views and buffers are freed without calls into
   * the plugins. */
  _Atomic int closing;

  mc_notify_queue notes;
};

/* Counts a slice entering (+1) or leaving (-1) a plugin: the engine's
 * in-flight total (drives progress) and its rail's load (drives spill). */
static inline void mc_slice_account(mc_engine *e, const mc_slice_rec *s, int d) {
  mc_transport *t = e->transports[s->transport];
  atomic_fetch_add(&e->inflight, d);
  atomic_fetch_add(&t->rail_inflight[s->rail], (uint32_t)d);
}

/* engine.c */
int mc_engine_publish(mc_engine *e);
const char *mc_engine_transport_param(const mc_transport *t, const char *key);

/* hostapi.c */
void mc_hostapi_fill(mc_transport *t);

/* registry.c */
mc_local_buf *mc_registry_acquire(mc_engine *e, uint64_t addr, uint64_t len);
void mc_registry_release(mc_local_buf *b);
int mc_registry_fill_desc(mc_engine *e, mc_seg_desc *d);
void mc_registry_clear(mc_engine *e);

/* segment.c */
/* Current view with a reference; refreshes first if stale. */
mc_seg_view *mc_segment_view(mc_segment *s);
/* View that contains [addr, len) (refetching once if not); NULL + *err. */
mc_seg_view *mc_segment_view_for(mc_segment *s, uint64_t addr, uint64_t len,
                                 long *rbuf, int *err);
void mc_view_put(mc_seg_view *v);
/* As mc_view_put, for completion context: a last reference is freed by the
 * worker, since freeing calls into plugins. */
void mc_view_put_async(mc_seg_view *v);
void mc_view_free(mc_seg_view *v);
/* Endpoint and import for transport t in view v; creates them lazily. */
int mc_view_route(mc_seg_view *v, mc_transport *t, long rbuf, void **ep,
                  void **rmem);
void mc_segments_on_change(void *arg, const char *name);
void mc_segments_destroy_all(mc_engine *e);

/* rails.c */
/* Fills req->tcand with the usable transports for the request, best first. */
int mc_rails_candidates(mc_engine *e, mc_req *req);
/* Picks a rail of t for a slice, preferring rails not marked down and
 * different from `avoid` (pass UINT32_MAX for none). */
int mc_rails_pick(mc_transport *t, const mc_local_buf *lb, uint32_t avoid);
void mc_rails_mark_down(mc_transport *t, uint32_t rail);
/* Builds the engine's topology (config over discovery). */
int mc_rails_topology_init(mc_engine *e, char *err, size_t errlen);
/* Ranks every transport's rails for buffer b's location. */
int mc_rails_rank_buffer(mc_engine *e, mc_local_buf *b);

/* batch.c */
void mc_batch_slice_done(mc_slice_rec *s, int status, uint64_t bytes,
                         int32_t vendor);
/* Sends one slice on its current transport/rail; on back-pressure it is
 * queued on the transport's backlog.  Returns 0 if accepted or queued. */
int mc_slice_send(mc_engine *e, mc_slice_rec *s);
/* Builds the ABI slice for s on its current transport and rail. */
void mc_slice_fill(const mc_slice_rec *s, void *rmem, mc_slice *out);
/* Calls t's submit, serialized unless the plugin has MC_CAP_MT_SUBMIT;
 * *accepted is clamped to n. */
int mc_transport_submit(mc_transport *t, void *ep, const mc_slice *sl,
                        uint32_t n, uint32_t *accepted);
/* Fails a slice that could not be sent or retried. */
void mc_slice_fail(mc_slice_rec *s, int err, int32_t vendor);
/* Retries a failed slice on another rail/transport, or fails the request. */
void mc_slice_retry(mc_engine *e, mc_slice_rec *s);
void mc_req_finish(mc_req *req);

/* worker.c */
int mc_worker_start(mc_engine *e);
void mc_worker_stop(mc_engine *e);
void mc_worker_push(mc_engine *e, mc_job *job);
void mc_worker_kick(mc_engine *e);
/* Queues slices [first..last] (linked) the plugin did not accept. */
void mc_backlog_push(mc_transport *t, mc_slice_rec *first);

/* notify.c */
int mc_notify_queue_init(mc_notify_queue *q, uint32_t cap);
void mc_notify_queue_fini(mc_notify_queue *q);
void mc_notify_queue_push(mc_notify_queue *q, const char *peer,
                          const void *msg, size_t len);
int mc_notify_queue_pop(mc_notify_queue *q, mc_notification *out, uint32_t max,
                        int timeout_ms);

#endif
