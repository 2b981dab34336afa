/* hip_xfer.c - the data path: hipMemcpyAsync on a pool of streams per
 * device, an event recorded after each copy, and one poller thread that
 * completes slices as their events finish. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hip_ctx.h"

static void done(hip_ctx *c, uint64_t token, int st, uint64_t bytes, int32_t verr) {
  c->host->complete(c->host->host, token, st, bytes, verr);
}

/* Completes and recycles a finished op (called without the lock). */
static void finish(hip_ctx *c, hip_op *op, int st, int32_t verr) {
  hip_ep *ep = op->ep;
  done(c, op->token, st, st ? 0 : op->len, verr);
  pthread_mutex_lock(&c->lock);
  op->next = c->free_ops;
  c->free_ops = op;
  if (--ep->inflight == 0)
    pthread_cond_broadcast(&c->idle);
  pthread_mutex_unlock(&c->lock);
}

/* Why a polled event is finished: 0 done, 1 not yet, else the HIP error. */
static int poll_op(hip_ctx *c, hip_op *op, hipError_t *err) {
  hipError_t e = c->api.EventQuery(op->ev);
  if (e == hipSuccess)
    return 0;
  if (e == hipErrorNotReady)
    return 1;
  *err = e;
  return -1;
}

static void *poller(void *arg) {
  hip_ctx *c = arg;
  /* The pause after a round where nothing finished: poll_us, doubled
   * per idle round up to 16 x poll_us, back to poll_us on progress, so
   * long copies do not keep the poller spinning. */
  int64_t pause_us = c->poll_us;
  pthread_mutex_lock(&c->lock);
  while (!c->stop) {
    if (!c->pend) {
      pthread_cond_wait(&c->wake, &c->lock);
      continue;
    }
    /* Take the queue, poll it unlocked (submit keeps appending to a fresh
     * one), then put what is still running back in front. */
    hip_op *list = c->pend;
    c->pend = NULL;
    c->pend_tail = &c->pend;
    pthread_mutex_unlock(&c->lock);
    hip_op *keep = NULL, **ktail = &keep;
    int progressed = 0;
    for (hip_op *op = list, *nx; op; op = nx) {
      nx = op->next;
      hipError_t e = hipSuccess;
      int r = poll_op(c, op, &e);
      if (r == 1) {
        op->next = NULL;
        *ktail = op;
        ktail = &op->next;
        continue;
      }
      progressed = 1;
      finish(c, op, r ? MC_EIO : 0, r ? (int32_t)e : 0);
    }
    pthread_mutex_lock(&c->lock);
    if (keep) {
      *ktail = c->pend;
      if (!c->pend)
        c->pend_tail = ktail;
      c->pend = keep;
    }
    if (progressed || !c->pend) {
      pause_us = c->poll_us;
    } else if (!c->stop && pause_us > 0) {
      pthread_mutex_unlock(&c->lock);
      struct timespec ts = {(time_t)(pause_us / 1000000), (long)(pause_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&c->lock);
      if (pause_us < 16 * c->poll_us)
        pause_us *= 2;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

int hip_xfer_start(hip_ctx *c) {
  c->ops = calloc(c->max_inflight, sizeof *c->ops);
  if (!c->ops)
    return MC_ENOMEM;
  for (uint32_t i = 0; i < c->max_inflight; i++) {
    c->ops[i].ev_device = -1;
    c->ops[i].next = i + 1 < c->max_inflight ? &c->ops[i + 1] : NULL;
  }
  c->free_ops = c->ops;
  c->pend = NULL;
  c->pend_tail = &c->pend;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->wake, NULL);
  pthread_cond_init(&c->idle, NULL);
  if (pthread_create(&c->poller, NULL, poller, c)) {
    free(c->ops);
    c->ops = NULL;
    return MC_ENOMEM;
  }
  c->poller_on = 1;
  return 0;
}

void hip_xfer_stop(hip_ctx *c) {
  if (!c->ops)
    return;
  pthread_mutex_lock(&c->lock);
  c->stop = 1;
  pthread_cond_broadcast(&c->wake);
  pthread_mutex_unlock(&c->lock);
  if (c->poller_on)
    pthread_join(c->poller, NULL);
  c->poller_on = 0;
  /* Copies cannot be recalled from a stream: let them finish, so no slice
   * is completed while the device still writes its buffer. */
  for (int d = 0; d < c->ndev; d++) {
    c->api.SetDevice(c->devs[d].ordinal);
    for (int s = 0; s < c->nstreams; s++)
      if (c->devs[d].streams[s])
        c->api.StreamSynchronize(c->devs[d].streams[s]);
  }
  hip_op *list = c->pend;
  c->pend = NULL;
  c->pend_tail = &c->pend;
  for (hip_op *op = list, *nx; op; op = nx) {
    nx = op->next;
    hipError_t e = hipSuccess;
    int r = poll_op(c, op, &e);
    finish(c, op, r == 0 ? 0 : r == 1 ? MC_ECANCELED : MC_EIO, r < 0 ? (int32_t)e : 0);
  }
}

void hip_xfer_free(hip_ctx *c) {
  if (!c->ops)
    return;
  for (uint32_t i = 0; i < c->max_inflight; i++)
    if (c->ops[i].ev_device >= 0)
      c->api.EventDestroy(c->ops[i].ev);
  free(c->ops);
  c->ops = NULL;
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->idle);
  pthread_mutex_destroy(&c->lock);
}

void hip_xfer_drain_ep(hip_ctx *c, hip_ep *ep) {
  pthread_mutex_lock(&c->lock);
  while (ep->inflight)
    pthread_cond_wait(&c->idle, &c->lock);
  pthread_mutex_unlock(&c->lock);
}

/* [a, +n) inside [base, +len), without overflow. */
static int inside(uint64_t a, uint64_t n, uint64_t base, uint64_t len) {
  return a >= base && n <= len && a - base <= len - n;
}

/* Queues one slice; 0 queued, 1 no op free (back-pressure), else it was
 * completed here with that status. */
static int one(hip_ctx *c, hip_ep *ep, const mc_slice *s) {
  const hip_lmem *lm = s->local_mem;
  const hip_rmem *rm = s->remote_mem;
  if (!lm || !rm || rm->ep != ep || (s->op != MC_OP_READ && s->op != MC_OP_WRITE))
    return MC_EINVAL;
  if (!inside(s->local_addr, s->len, lm->addr, lm->len) ||
      !inside(s->remote_addr, s->len, rm->base, rm->len))
    return MC_ERANGE;
  pthread_mutex_lock(&c->lock);
  hip_op *op = c->free_ops;
  if (!op) {
    pthread_mutex_unlock(&c->lock);
    return 1;
  }
  c->free_ops = op->next;
  hip_dev *dev = &c->devs[rm->device];
  hipStream_t st = dev->streams[dev->next++ % (unsigned)c->nstreams];
  ep->inflight++;
  pthread_mutex_unlock(&c->lock);

  /* The current device is per thread: set it for the copy and the event. */
  hipError_t e = c->api.SetDevice(dev->ordinal);
  if (e == hipSuccess && op->ev_device != dev->ordinal) {
    if (op->ev_device >= 0)
      c->api.EventDestroy(op->ev);
    op->ev_device = -1;
    e = c->api.EventCreateWithFlags(&op->ev, hipEventDisableTiming);
    if (e == hipSuccess)
      op->ev_device = dev->ordinal;
  }
  void *remote = rm->ptr + (s->remote_addr - rm->base);
  void *local = (void *)(uintptr_t)s->local_addr;
  if (e == hipSuccess)
    e = c->api.MemcpyAsync(s->op == MC_OP_READ ? local : remote,
                           s->op == MC_OP_READ ? remote : local, s->len,
                           hipMemcpyDefault, st);
  if (e == hipSuccess && (e = c->api.EventRecord(op->ev, st)) != hipSuccess)
    c->api.StreamSynchronize(st); /* the copy may be queued: let it end */
  op->token = s->token;
  op->len = s->len;
  op->ep = ep;
  if (e != hipSuccess) {
    if (c->host->log_enabled(c->host->host, MC_LOG_DEBUG)) {
      char b[32];
      HIP_LOG(c, MC_LOG_DEBUG, "copy of %llu bytes on device %d failed: %s",
              (unsigned long long)s->len, dev->ordinal, hip_api_errname(&c->api, e, b, sizeof b));
    }
    c->api.GetLastError(); /* clear the thread's sticky error */
    finish(c, op, MC_EIO, (int32_t)e);
    return 0;
  }
  pthread_mutex_lock(&c->lock);
  op->next = NULL;
  *c->pend_tail = op;
  c->pend_tail = &op->next;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->lock);
  return 0;
}

int hip_submit(void *ctx, void *epv, const mc_slice *s, uint32_t n, uint32_t *accepted) {
  hip_ctx *c = ctx;
  hip_ep *ep = epv;
  uint32_t i = 0;
  for (; i < n; i++) {
    int r = one(c, ep, &s[i]);
    if (r == 1)
      break;
    if (r < 0)
      done(c, s[i].token, r, 0, 0);
  }
  *accepted = i;
  return i == 0 && n ? MC_EAGAIN : 0;
}
