/* ascend_ctx.h - the ascend plugin's context, endpoints and memory
 * handles, shared by ascend_plugin.c (control calls) and ascend_xfer.c
 * (the data path). */
#ifndef MC_ASCEND_CTX_H
#define MC_ASCEND_CTX_H

#include <pthread.h>
#include <stdint.h>

#include "acl_api.h"
#include "ascend_blob.h"
#include "mooncake/transport.h"

/* A local registration (mc_slice.local_mem). */
typedef struct asc_lmem {
  struct asc_lmem *next;
  uint64_t addr, len;
  int device;                    /* NPU ordinal, -1 for host memory */
  char ipc_key[ASC_IPC_KEY_LEN]; /* exported key; "" when none */
} asc_lmem;

/* One aclrtIpcMemImportByKey, shared by every import of that key. */
typedef struct asc_open {
  struct asc_open *next;
  uint32_t pid;
  char ipc_key[ASC_IPC_KEY_LEN];
  int device;
  uint8_t *ptr; /* our address of the exported base */
  int refs;
} asc_open;

struct asc_ep;

typedef struct asc_rmem {
  struct asc_rmem *next;
  struct asc_ep *ep;
  uint64_t base, len;
  uint8_t *ptr; /* our address of base */
  int device;
  asc_open *open;
} asc_rmem;

typedef struct asc_ep {
  struct asc_ep *next;
  asc_desc peer;
  char name[MC_NAME_MAX];
  asc_rmem *rmems;
  uint32_t inflight;
} asc_ep;

typedef struct asc_op {
  struct asc_op *next;
  uint64_t token, len;
  aclrtEvent ev;
  int ev_device; /* -1: no event yet */
  asc_ep *ep;
} asc_op;

typedef struct asc_dev {
  int ordinal;
  aclrtStream *streams;
  unsigned next;
} asc_dev;

typedef struct asc_ctx {
  const mc_host_api *host;
  acl_api api;
  int acl_inited;   /* aclInit succeeded: its reference released at fini */
  unsigned acl_gen; /* which initialization of ACL in this process (>= 1) */
  asc_desc self;
  int ndev;
  asc_dev *devs;
  int nstreams;
  uint32_t max_inflight;
  int64_t poll_us;
  int pid_check; /* export with the runtime's pid whitelist */

  pthread_mutex_t reg_lock; /* lmems: ctrl_handle reads them unserialized */
  asc_lmem *lmems;
  asc_ep *eps;
  asc_open *opens;

  pthread_mutex_t lock;
  pthread_cond_t wake, idle;
  asc_op *ops, *free_ops, *pend, **pend_tail;
  pthread_t poller;
  int poller_on, stop;
} asc_ctx;

#define ASC_LOG(c, lvl, ...) (c)->host->log((c)->host->host, (lvl), __VA_ARGS__)

/* ascend_xfer.c */
/* Selects NPU d for the calling thread (only when it changes). */
aclError asc_use_dev(asc_ctx *c, int d);
int asc_xfer_start(asc_ctx *c);
void asc_xfer_stop(asc_ctx *c);
/* Frees what asc_xfer_start made (after the endpoints are gone). */
void asc_xfer_free(asc_ctx *c);
void asc_xfer_drain_ep(asc_ctx *c, asc_ep *ep);
int asc_submit(void *ctx, void *ep, const mc_slice *s, uint32_t n, uint32_t *accepted);

#endif
