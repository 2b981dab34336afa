/* hip_ctx.h - the hip plugin's context, endpoints and memory handles,
 * shared by hip_plugin.c (control calls) and hip_xfer.c (the data path). */
#ifndef MC_HIP_CTX_H
#define MC_HIP_CTX_H

#include <pthread.h>
#include <stdint.h>

#include "hip_api.h"
#include "hip_blob.h"
#include "mooncake/transport.h"

/* A local registration (mc_slice.local_mem). */
typedef struct hip_lmem {
  struct hip_lmem *next;
  uint64_t addr, len;
  int device; /* ordinal for device memory, -1 for host memory */
  int pinned; /* host memory we hipHostRegister'ed (unregistered on release) */
} hip_lmem;

/* One hipIpcOpenMemHandle of a peer's allocation, shared by every import
 * of that allocation (the runtime maps a handle once per process). */
typedef struct hip_open {
  struct hip_open *next;
  uint32_t pid; /* exporting process */
  uint8_t handle[HIP_HANDLE_SIZE];
  int device; /* where we opened it */
  uint8_t *ptr; /* our address of the allocation's start */
  uint64_t size; /* the mapping's size (hipMemGetAddressRange); 0 unknown */
  int refs;
} hip_open;

struct hip_ep;

/* An imported remote buffer (mc_slice.remote_mem). */
typedef struct hip_rmem {
  struct hip_rmem *next;
  struct hip_ep *ep;
  uint64_t base, len; /* the peer's addresses */
  uint8_t *ptr;       /* our address of base */
  int device;
  hip_open *open;
} hip_rmem;

typedef struct hip_ep {
  struct hip_ep *next;
  hip_desc peer;
  char name[MC_NAME_MAX];
  hip_rmem *rmems;
  uint32_t inflight; /* slices queued on streams (ctx lock) */
} hip_ep;

/* One queued copy: the event recorded after it on its stream. */
typedef struct hip_op {
  struct hip_op *next;
  uint64_t token, len;
  hipEvent_t ev;
  int ev_device; /* device ev was created on; -1 none yet */
  hip_ep *ep;
} hip_op;

typedef struct hip_dev {
  int ordinal;
  char bus[32];
  hipStream_t *streams;
  unsigned next; /* round robin (ctx lock) */
} hip_dev;

typedef struct hip_ctx {
  const mc_host_api *host;
  hip_api api;
  hip_desc self;
  int ndev;
  hip_dev *devs;
  int nstreams;
  int pin_host;
  uint32_t max_inflight;
  int64_t poll_us;

  hip_lmem *lmems;
  hip_ep *eps;
  hip_open *opens;

  pthread_mutex_t lock;
  pthread_cond_t wake; /* the poller: work queued or stop */
  pthread_cond_t idle; /* disconnect: an endpoint's slices drained */
  hip_op *ops;         /* max_inflight entries */
  hip_op *free_ops;
  hip_op *pend; /* queued copies, oldest first */
  hip_op **pend_tail;
  pthread_t poller;
  int poller_on, stop;
} hip_ctx;

#define HIP_LOG(c, lvl, ...) (c)->host->log((c)->host->host, (lvl), __VA_ARGS__)

/* hip_xfer.c */
int hip_xfer_start(hip_ctx *c);
/* Stops the poller, waits for the streams and completes every queued slice
 * (its real status, or MC_ECANCELED when its event never finished). */
void hip_xfer_stop(hip_ctx *c);
/* Frees what hip_xfer_start made (after the endpoints are gone). */
void hip_xfer_free(hip_ctx *c);
/* Waits until no slice of ep is queued. */
void hip_xfer_drain_ep(hip_ctx *c, hip_ep *ep);
int hip_submit(void *ctx, void *ep, const mc_slice *s, uint32_t n, uint32_t *accepted);

#endif
