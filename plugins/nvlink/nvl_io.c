/* Data path of the nvlink transport: slices become cuMemcpyAsync calls on a
 * pool of streams per device; each run of up to NVL_GROUP_MAX slices on one
 * stream is closed by one event, and the group completes when its event
 * does.  Groups are completed inside submit when the device already
 * finished them (small copies, or a driver that copies synchronously), and
 * otherwise by the plugin's poller thread (MC_CAP_OWN_THREADS). */
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvl_ctx.h"

static void complete_group(nvl_ctx *c, nvl_group *g, int st, int32_t verr) {
  for (uint32_t i = 0; i < g->n; i++)
    c->host->complete(c->host->host, g->token[i], st, st ? 0 : g->bytes[i],
                      verr);
  c->inflight -= g->n;
  if (g->ep)
    g->ep->inflight -= g->n;
  g->n = 0;
  g->ep = NULL;
  nvl_dev *d = &c->devs[g->dev];
  g->next = d->free_groups;
  d->free_groups = g;
}

/* One pass over the pending list: completes every group whose event is done
 * (or failed).  Returns how many groups it completed.  Under c->lock. */
static int poll_pass(nvl_ctx *c) {
  int done = 0, cur = -1;
  nvl_group **pp = &c->pend_head, *prev = NULL;
  while (*pp) {
    nvl_group *g = *pp;
    if (g->dev != cur) {
      c->cu.CtxSetCurrent(c->devs[g->dev].ctx);
      cur = g->dev;
    }
    CUresult r = c->cu.EventQuery(g->ev);
    if (r == CUDA_ERROR_NOT_READY) {
      prev = g;
      pp = &g->next;
      continue;
    }
    *pp = g->next;
    if (c->pend_tail == g)
      c->pend_tail = prev;
    if (r != CUDA_SUCCESS)
      NVL_LOG(c, MC_LOG_ERROR, "copy on cuda:%d failed: %s (%d)", g->dev,
              nvl_cuda_err(&c->cu, r), r);
    complete_group(c, g, r == CUDA_SUCCESS ? 0 : MC_EIO, r);
    done++;
  }
  if (done)
    pthread_cond_broadcast(&c->idle);
  return done;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *poller(void *arg) {
  nvl_ctx *c = arg;
  /* Sleeps below are 10 us; the default 50 us timer slack would stretch
   * each one, and every wake-up late is latency added to a request. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  int64_t last = 0; /* when the last group completed (or work arrived) */
  pthread_mutex_lock(&c->lock);
  while (!c->stop) {
    if (!c->pend_head) {
      pthread_cond_wait(&c->wake, &c->lock);
      last = mono_ns();
      continue;
    }
    if (poll_pass(c)) {
      last = mono_ns();
      continue;
    }
    /* Nothing finished: yield for up to 200 us (copies of a few MiB end
     * within that), then sleep in 10 us steps so a long copy costs little
     * CPU and adds at most ~10 us to its completion. */
    pthread_mutex_unlock(&c->lock);
    if (mono_ns() - last < 200000) {
      sched_yield();
    } else {
      struct timespec ts = {0, 10000};
      nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

int nvl_poller_start(nvl_ctx *c) {
  if (pthread_create(&c->poller, NULL, poller, c))
    return MC_ENOMEM;
  c->poller_on = 1;
  return 0;
}

void nvl_poller_stop(nvl_ctx *c) {
  pthread_mutex_lock(&c->lock);
  c->stop = 1;
  pthread_cond_broadcast(&c->wake);
  pthread_mutex_unlock(&c->lock);
  if (c->poller_on)
    pthread_join(c->poller, NULL);
  c->poller_on = 0;
  pthread_mutex_lock(&c->lock);
  while (c->pend_head) {
    nvl_group *g = c->pend_head;
    c->pend_head = g->next;
    c->cu.CtxSetCurrent(c->devs[g->dev].ctx);
    c->cu.EventSynchronize(g->ev); /* its copies may still touch memory */
    complete_group(c, g, MC_ECANCELED, 0);
  }
  c->pend_tail = NULL;
  pthread_mutex_unlock(&c->lock);
}

void nvl_ep_drain(nvl_ctx *c, nvl_ep *ep) {
  pthread_mutex_lock(&c->lock);
  while (ep->inflight) {
    if (!poll_pass(c)) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 200000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&c->idle, &c->lock, &ts);
    }
  }
  pthread_mutex_unlock(&c->lock);
}

void nvl_groups_free(nvl_ctx *c, nvl_dev *d) {
  while (d->free_groups) {
    nvl_group *g = d->free_groups;
    d->free_groups = g->next;
    c->cu.EventDestroy(g->ev);
    free(g);
  }
}

/* A group (with its event) for device di, from its free list or new.
 * NULL when the event cannot be created.  Under c->lock. */
static nvl_group *group_get(nvl_ctx *c, int di) {
  nvl_dev *d = &c->devs[di];
  nvl_group *g = d->free_groups;
  if (g) {
    d->free_groups = g->next;
  } else {
    g = calloc(1, sizeof *g);
    if (!g)
      return NULL;
    CUresult r = c->cu.EventCreate(&g->ev, CU_EVENT_DISABLE_TIMING);
    if (r != CUDA_SUCCESS) {
      NVL_LOG(c, MC_LOG_ERROR, "cuEventCreate on cuda:%d: %s", di,
              nvl_cuda_err(&c->cu, r));
      free(g);
      return NULL;
    }
  }
  g->dev = di;
  g->n = 0;
  g->next = NULL;
  g->stream = d->streams[d->next_stream++ % c->nstreams];
  return g;
}

/* Closes d's open group: records its event and queues it.  A failed
 * record waits for the stream instead (the copies were queued). */
static void group_close(nvl_ctx *c, nvl_dev *d) {
  nvl_group *g = d->open;
  d->open = NULL;
  if (!g)
    return;
  CUresult r = c->cu.EventRecord(g->ev, g->stream);
  if (r != CUDA_SUCCESS) {
    NVL_LOG(c, MC_LOG_ERROR, "cuEventRecord on cuda:%d: %s", g->dev,
            nvl_cuda_err(&c->cu, r));
    complete_group(c, g, MC_EIO, r);
    return;
  }
  if (c->pend_tail)
    c->pend_tail->next = g;
  else
    c->pend_head = g;
  c->pend_tail = g;
}

/* The peer's pidfd is polled at most once per coarse clock tick (a few
 * ms): a poll() per submit would cost more than the copies of small
 * slices, and a death is still noticed within milliseconds. */
static int ep_alive(nvl_ep *ep) {
  if (atomic_load(&ep->dead))
    return 0;
  if (ep->pidfd < 0)
    return 1;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  if (now < atomic_load(&ep->next_check))
    return 1;
  atomic_store(&ep->next_check, now + 1000000);
  struct pollfd p = {ep->pidfd, POLLIN, 0};
  if (poll(&p, 1, 0) > 0) { /* a pidfd polls readable once the process exited */
    atomic_store(&ep->dead, 1);
    return 0;
  }
  return 1;
}

/* 0 when the slice lies inside its registration and its import (of this
 * endpoint), else MC_ERANGE / MC_EINVAL. */
static int check_slice(const nvl_ep *ep, const mc_slice *s) {
  const nvl_lmem *m = s->local_mem;
  const nvl_rmem *r = s->remote_mem;
  if (!m || !r || r->ep != ep || s->len == 0 ||
      (s->op != MC_OP_READ && s->op != MC_OP_WRITE))
    return MC_EINVAL;
  if (s->local_addr < m->addr || s->local_addr + s->len < s->local_addr ||
      s->local_addr + s->len > m->addr + m->len)
    return MC_ERANGE;
  if (s->remote_addr < r->base || s->remote_addr + s->len < s->remote_addr ||
      s->remote_addr + s->len > r->base + r->len)
    return MC_ERANGE;
  return 0;
}

int nvl_submit(void *vctx, void *vep, const mc_slice *s, uint32_t n,
               uint32_t *accepted) {
  nvl_ctx *c = vctx;
  nvl_ep *ep = vep;
  *accepted = 0;
  if (!ep)
    return MC_EINVAL;
  int alive = ep_alive(ep);
  pthread_mutex_lock(&c->lock);
  uint32_t room = c->max_inflight > c->inflight ? c->max_inflight - c->inflight : 0;
  uint32_t take = n < room ? n : room;
  int cur = -1;
  for (uint32_t i = 0; i < take; i++) {
    int st = alive ? check_slice(ep, &s[i]) : MC_EPEER;
    if (st) {
      c->host->complete(c->host->host, s[i].token, st, 0, 0);
      continue;
    }
    const nvl_lmem *m = s[i].local_mem;
    const nvl_rmem *r = s[i].remote_mem;
    nvl_dev *d = &c->devs[m->dev];
    if (m->dev != cur) {
      c->cu.CtxSetCurrent(d->ctx);
      cur = m->dev;
    }
    if (!d->open && !(d->open = group_get(c, m->dev))) {
      c->host->complete(c->host->host, s[i].token, MC_ENOMEM, 0, 0);
      continue;
    }
    CUdeviceptr local = (CUdeviceptr)s[i].local_addr;
    CUdeviceptr remote = (CUdeviceptr)(s[i].remote_addr + r->delta);
    CUresult cr = s[i].op == MC_OP_READ
                      ? c->cu.MemcpyAsync(local, remote, s[i].len, d->open->stream)
                      : c->cu.MemcpyAsync(remote, local, s[i].len, d->open->stream);
    if (cr != CUDA_SUCCESS) {
      NVL_LOG(c, MC_LOG_ERROR, "cuMemcpyAsync of %llu bytes on cuda:%d: %s",
              (unsigned long long)s[i].len, m->dev, nvl_cuda_err(&c->cu, cr));
      c->host->complete(c->host->host, s[i].token, MC_EIO, 0, cr);
      continue;
    }
    nvl_group *g = d->open;
    g->ep = ep;
    g->token[g->n] = s[i].token;
    g->bytes[g->n] = s[i].len;
    g->n++;
    c->inflight++;
    ep->inflight++;
    if (g->n == NVL_GROUP_MAX)
      group_close(c, d); /* the next slices go to the next stream */
  }
  for (int di = 0; di < c->ndev; di++) {
    nvl_dev *d = &c->devs[di];
    if (d->open && d->open->n == 0) { /* every slice of it failed */
      d->open->next = d->free_groups;
      d->free_groups = d->open;
      d->open = NULL;
    }
    if (d->open) {
      c->cu.CtxSetCurrent(d->ctx);
      group_close(c, d);
    }
  }
  /* Copies the device already finished complete here, sparing the poller
   * a wake-up; the rest are the poller's. */
  if (c->pend_head)
    poll_pass(c);
  if (c->pend_head)
    pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->lock);
  *accepted = take;
  return take == 0 && n ? MC_EAGAIN : 0;
}
