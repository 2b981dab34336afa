/* ascend_xfer.c - the data path: aclrtMemcpyAsync on a pool of streams
 * per NPU, an event recorded after each copy, and one poller thread that
 * completes slices as their events finish. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ascend_ctx.h"

/* The NPU this thread last selected, and for which initialization of ACL
 * (asc_ctx.acl_gen): aclrtSetDevice binds a context to the calling thread,
 * so it is only called when the device changes -- or when ACL was
 * finalized and initialized again since, which drops those bindings. */
static _Thread_local int cur_dev = -1;
static _Thread_local unsigned cur_gen;

aclError asc_use_dev(asc_ctx *c, int d) {
  if (cur_dev == d && cur_gen == c->acl_gen)
    return ACL_SUCCESS;
  aclError e = c->api.SetDevice(d);
  if (e == ACL_SUCCESS) {
    cur_dev = d;
    cur_gen = c->acl_gen;
  }
  return e;
}

static void done(asc_ctx *c, uint64_t token, int st, uint64_t bytes, int32_t verr) {
  c->host->complete(c->host->host, token, st, bytes, verr);
}

/* Completes and recycles a finished op (called without the lock). */
static void finish(asc_ctx *c, asc_op *op, int st, int32_t verr) {
  asc_ep *ep = op->ep;
  done(c, op->token, st, st ? 0 : op->len, verr);
  pthread_mutex_lock(&c->lock);
  op->next = c->free_ops;
  c->free_ops = op;
  if (--ep->inflight == 0)
    pthread_cond_broadcast(&c->idle);
  pthread_mutex_unlock(&c->lock);
}

/* Why a polled event is finished: 0 done, 1 not yet, else the HIP error. */
static int poll_op(asc_ctx *c, asc_op *op, aclError *err) {
  int st = ACL_EVENT_RECORDED_STATUS_NOT_READY;
  aclError e = asc_use_dev(c, op->ev_device);
  if (e == ACL_SUCCESS)
    e = c->api.QueryEventStatus(op->ev, &st);
  if (e != ACL_SUCCESS) {
    *err = e;
    return -1;
  }
  return st == ACL_EVENT_RECORDED_STATUS_COMPLETE ? 0 : 1;
}

static void *poller(void *arg) {
  asc_ctx *c = arg;
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
    asc_op *list = c->pend;
    c->pend = NULL;
    c->pend_tail = &c->pend;
    pthread_mutex_unlock(&c->lock);
    asc_op *keep = NULL, **ktail = &keep;
    int progressed = 0;
    for (asc_op *op = list, *nx; op; op = nx) {
      nx = op->next;
      aclError e = ACL_SUCCESS;
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

int asc_xfer_start(asc_ctx *c) {
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

void asc_xfer_stop(asc_ctx *c) {
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
    asc_use_dev(c, c->devs[d].ordinal);
    for (int s = 0; s < c->nstreams; s++)
      if (c->devs[d].streams[s])
        c->api.SynchronizeStream(c->devs[d].streams[s]);
  }
  asc_op *list = c->pend;
  c->pend = NULL;
  c->pend_tail = &c->pend;
  for (asc_op *op = list, *nx; op; op = nx) {
    nx = op->next;
    aclError e = ACL_SUCCESS;
    int r = poll_op(c, op, &e);
    finish(c, op, r == 0 ? 0 : r == 1 ? MC_ECANCELED : MC_EIO, r < 0 ? (int32_t)e : 0);
  }
}

void asc_xfer_free(asc_ctx *c) {
  if (!c->ops)
    return;
  for (uint32_t i = 0; i < c->max_inflight; i++)
    if (c->ops[i].ev_device >= 0 && asc_use_dev(c, c->ops[i].ev_device) == ACL_SUCCESS)
      c->api.DestroyEvent(c->ops[i].ev);
  free(c->ops);
  c->ops = NULL;
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->idle);
  pthread_mutex_destroy(&c->lock);
}

void asc_xfer_drain_ep(asc_ctx *c, asc_ep *ep) {
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
static int one(asc_ctx *c, asc_ep *ep, const mc_slice *s) {
  const asc_lmem *lm = s->local_mem;
  const asc_rmem *rm = s->remote_mem;
  if (!lm || !rm || rm->ep != ep || (s->op != MC_OP_READ && s->op != MC_OP_WRITE))
    return MC_EINVAL;
  if (!inside(s->local_addr, s->len, lm->addr, lm->len) ||
      !inside(s->remote_addr, s->len, rm->base, rm->len))
    return MC_ERANGE;
  pthread_mutex_lock(&c->lock);
  asc_op *op = c->free_ops;
  if (!op) {
    pthread_mutex_unlock(&c->lock);
    return 1;
  }
  c->free_ops = op->next;
  asc_dev *dev = &c->devs[rm->device];
  aclrtStream st = dev->streams[dev->next++ % (unsigned)c->nstreams];
  ep->inflight++;
  pthread_mutex_unlock(&c->lock);

  aclError e = asc_use_dev(c, dev->ordinal);
  if (e == ACL_SUCCESS && op->ev_device != dev->ordinal) {
    if (op->ev_device >= 0)
      c->api.DestroyEvent(op->ev);
    op->ev_device = -1;
    e = c->api.CreateEvent(&op->ev);
    if (e == ACL_SUCCESS)
      op->ev_device = dev->ordinal;
  }
  void *remote = rm->ptr + (s->remote_addr - rm->base);
  void *local = (void *)(uintptr_t)s->local_addr;
  /* ACL wants the direction spelled out; the remote side is always NPU
   * memory (remote_mem_kinds). */
  int host = lm->device < 0;
  int kind = s->op == MC_OP_READ ? (host ? ACL_MEMCPY_DEVICE_TO_HOST : ACL_MEMCPY_DEVICE_TO_DEVICE)
                                 : (host ? ACL_MEMCPY_HOST_TO_DEVICE : ACL_MEMCPY_DEVICE_TO_DEVICE);
  if (e == ACL_SUCCESS) {
    void *dst = s->op == MC_OP_READ ? local : remote;
    const void *src = s->op == MC_OP_READ ? remote : local;
    e = c->api.MemcpyAsync(dst, s->len, src, s->len, kind, st);
  }
  if (e == ACL_SUCCESS && (e = c->api.RecordEvent(op->ev, st)) != ACL_SUCCESS)
    c->api.SynchronizeStream(st); /* the copy may be queued: let it end */
  op->token = s->token;
  op->len = s->len;
  op->ep = ep;
  if (e != ACL_SUCCESS) {
    if (c->host->log_enabled(c->host->host, MC_LOG_DEBUG)) {
      const char *m = c->api.GetRecentErrMsg ? c->api.GetRecentErrMsg() : NULL;
      ASC_LOG(c, MC_LOG_DEBUG, "copy of %llu bytes on NPU %d failed: aclError %d%s%s",
              (unsigned long long)s->len, dev->ordinal, e, m ? ": " : "", m ? m : "");
    }
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

int asc_submit(void *ctx, void *epv, const mc_slice *s, uint32_t n, uint32_t *accepted) {
  asc_ctx *c = ctx;
  asc_ep *ep = epv;
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
