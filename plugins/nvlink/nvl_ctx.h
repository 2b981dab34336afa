/* nvlink transport: context, endpoints, memory handles (see README.md). */
#ifndef MC_NVL_CTX_H
#define MC_NVL_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mooncake/transport.h"
#include "nvl_cuda.h"
#include "nvl_wire.h"

/* Slices one completion event covers at most. */
#define NVL_GROUP_MAX 64

/* Copies submitted together on one stream, completed by one event. */
typedef struct nvl_group {
  struct nvl_group *next;
  CUevent ev;
  CUstream stream;
  struct nvl_ep *ep;
  int dev;
  uint32_t n;
  uint64_t token[NVL_GROUP_MAX];
  uint64_t bytes[NVL_GROUP_MAX];
} nvl_group;

typedef struct nvl_dev {
  CUdevice dev;
  CUcontext ctx; /* primary context, retained */
  CUstream *streams;
  uint32_t next_stream;
  int fabric; /* fabric handles supported (MNNVL) */
  uint32_t pci;
  nvl_group *free_groups; /* with their events, created in ctx */
  nvl_group *open;        /* submit's group being filled (submit only) */
} nvl_dev;

/* A local registration (mc_slice.local_mem). */
typedef struct nvl_lmem {
  struct nvl_lmem *next;
  uint64_t addr, len;
  int dev;
} nvl_lmem;

/* A peer allocation opened here, shared by the imports of its ranges:
 * cuIpcOpenMemHandle maps an allocation once per context. */
typedef struct nvl_map {
  struct nvl_map *next;
  uint64_t alloc_base, alloc_size; /* the owner's addresses */
  uint8_t handle[NVL_HANDLE_SIZE];
  CUdeviceptr ptr; /* our address of alloc_base */
  int dev;         /* context it was opened in */
  int opened;      /* 1: cuIpcOpenMemHandle (0: our own process) */
  int refs;
} nvl_map;

/* An imported remote range (mc_slice.remote_mem). */
typedef struct nvl_rmem {
  struct nvl_rmem *next;
  struct nvl_ep *ep;
  uint64_t base, len; /* the peer's addresses */
  uint64_t delta;     /* our address = peer address + delta (mod 2^64) */
  nvl_map *map;
} nvl_rmem;

typedef struct nvl_ep {
  struct nvl_ep *next;
  char peer_name[MC_NAME_MAX];
  nvl_desc peer;
  int self;  /* the peer is this process: no IPC, addresses as they are */
  int pidfd; /* to notice the peer's death; -1 if none */
  atomic_int dead;
  _Atomic int64_t next_check; /* CLOCK_MONOTONIC_COARSE ns of the next pidfd poll */
  nvl_map *maps;
  nvl_rmem *rmems;
  uint32_t inflight; /* slices in pending groups (ctx lock) */
} nvl_ep;

typedef struct nvl_ctx {
  const mc_host_api *host;
  nvl_cuda cu;
  nvl_dev *devs;
  int ndev;
  uint32_t nstreams;
  uint32_t max_inflight;
  nvl_desc self;
  nvl_lmem *lmems;
  nvl_ep *eps;

  /* Pending groups in submission order; the poller and submit complete
   * them.  Under lock. */
  pthread_mutex_t lock;
  pthread_cond_t wake; /* poller: work arrived or stop */
  pthread_cond_t idle; /* disconnect: a group completed */
  nvl_group *pend_head, *pend_tail;
  uint32_t inflight;
  int stop;
  int poller_on;
  pthread_t poller;
} nvl_ctx;

#define NVL_LOG(c, lvl, ...) (c)->host->log((c)->host->host, (lvl), __VA_ARGS__)

/* nvl_io.c */
int nvl_submit(void *ctx, void *ep, const mc_slice *s, uint32_t n,
               uint32_t *accepted);
int nvl_poller_start(nvl_ctx *c);
/* Stops the poller; every pending group is waited for on the device (its
 * copies may still touch memory) and its slices fail MC_ECANCELED. */
void nvl_poller_stop(nvl_ctx *c);
/* Waits until no slice of ep is pending. */
void nvl_ep_drain(nvl_ctx *c, nvl_ep *ep);
void nvl_groups_free(nvl_ctx *c, nvl_dev *d);

#endif
