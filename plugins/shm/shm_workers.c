/* shm transport: the copy workers of any-memory mode (see shm_workers.h).
 *
 * Chunks are the copy_chunk-aligned windows of the peer's address range,
 * not pieces of the slice: the kernel pins the peer's pages under the lock
 * of their page-table page (one per 2 MiB), so two workers copying in the
 * same 2 MiB window serialize on that lock and gain nothing.  With windows
 * of 2 MiB or more, concurrent chunks never share one.
 *
 * One mutex guards the queue, the job slots and every job's counters.  A
 * worker claims under it either one chunk of the job at the head, or a run
 * of consecutive single-chunk jobs of one endpoint and direction in one
 * window (one process_vm call for all of them), copies without the lock,
 * then takes it again to account.  host->complete is called without the lock; the
 * endpoint's job count drops only after that call, so disconnect returns
 * after the last completion of its slices. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm_workers.h"

typedef struct shm_job {
  struct shm_job *next; /* queue or free list */
  shm_ep *ep;
  uint64_t token, laddr, raddr, len;
  uint64_t reg_secret;
  uint32_t slot, op;
  uint64_t nchunks, claimed, left; /* chunks: total, handed out, not done */
  int status;                      /* first error of any chunk */
  int32_t verr;
} shm_job;

struct shm_workers {
  shm_ctx *c;
  pthread_mutex_t lock;
  pthread_cond_t work; /* queue not empty, or stop */
  pthread_cond_t idle; /* some endpoint's job count reached 0 */
  shm_job *head, *tail; /* jobs with chunks not yet handed out */
  atomic_int queued;    /* head != NULL, readable without the lock */
  shm_job *free;
  shm_job *slots;
  int stop;
  uint32_t nthreads;
  pthread_t *threads;
};

/* What one worker copies between two trips to the lock. */
typedef struct shm_item {
  uint32_t n;
  shm_job *job[SHM_IOV_MAX];
  shm_seg seg[SHM_IOV_MAX];
  int skip[SHM_IOV_MAX]; /* the job already failed: account, do not copy */
} shm_item;

/* A completion to deliver once the lock is dropped. */
typedef struct shm_done {
  shm_ep *ep;
  uint64_t token, bytes;
  int status;
  int32_t verr;
} shm_done;

static void item_add(shm_item *it, shm_job *j, uint64_t off, uint64_t len) {
  it->job[it->n] = j;
  it->seg[it->n] = (shm_seg){j->laddr + off, j->raddr + off, len};
  it->skip[it->n] = j->status != 0;
  it->n++;
}

static void pop_head(struct shm_workers *w) {
  w->head = w->head->next;
  if (!w->head) {
    w->tail = NULL;
    atomic_store_explicit(&w->queued, 0, memory_order_relaxed);
  }
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Locked on entry and return.  Before sleeping, a worker that just copied
 * polls the queue for a while, yielding the CPU: the next batch usually
 * follows within microseconds, and waking a sleeping thread (an idle vCPU
 * in a VM above all) costs tens of them on each hand-off. */
static void spin_a_while(struct shm_workers *w) {
  uint64_t until = now_ns() + SHM_WORKER_SPIN_NS;
  pthread_mutex_unlock(&w->lock);
  while (!atomic_load_explicit(&w->queued, memory_order_relaxed) &&
         now_ns() < until)
    sched_yield();
  pthread_mutex_lock(&w->lock);
}

/* Locked.  Takes the next chunk of the head job, or the run of queued
 * single-chunk jobs of one endpoint and direction whose peer ranges lie in
 * the same chunk window as the first one. */
static void claim(struct shm_workers *w, shm_item *it) {
  uint64_t mask = ~(w->c->copy_chunk - 1);
  shm_job *j = w->head;
  it->n = 0;
  if (j->nchunks > 1) {
    /* Chunk k covers window k of the peer range, clipped to the slice. */
    uint64_t win = (j->raddr & mask) + j->claimed * w->c->copy_chunk;
    uint64_t lo = win > j->raddr ? win : j->raddr;
    uint64_t hi = win + w->c->copy_chunk;
    if (hi > j->raddr + j->len)
      hi = j->raddr + j->len;
    item_add(it, j, lo - j->raddr, hi - lo);
    if (++j->claimed == j->nchunks)
      pop_head(w);
    return;
  }
  while ((j = w->head) && j->nchunks == 1 && it->n < SHM_IOV_MAX &&
         (it->n == 0 || (j->ep == it->job[0]->ep && j->op == it->job[0]->op &&
                         (j->raddr & mask) == (it->job[0]->raddr & mask)))) {
    pop_head(w);
    j->claimed = 1;
    item_add(it, j, 0, j->len);
  }
}

/* Unlocked.  Copies the item; st[k] = 0 or MC_E* for each entry. */
static void run(struct shm_workers *w, const shm_item *it, int *st,
                int32_t *verr) {
  shm_ep *ep = it->job[0]->ep;
  /* The pidfd check guards against a recycled pid between chunks too. */
  int alive = shm_ep_alive(ep);
  for (uint32_t k = 0; k < it->n; k++) {
    verr[k] = 0;
    st[k] = it->skip[k] ? 0
            : !alive    ? MC_EPEER
                        : shm_check_live(ep, it->job[k]->slot,
                                         it->job[k]->reg_secret);
  }
  uint32_t i = 0;
  while (i < it->n) {
    if (it->skip[i] || st[i]) {
      i++;
      continue;
    }
    uint32_t e = i + 1;
    while (e < it->n && !it->skip[e] && !st[e])
      e++;
    uint32_t failed = 0;
    int32_t ve = 0;
    int rc = shm_vm_copy(w->c, ep, it->job[i]->op, &it->seg[i], e - i, &failed,
                         &ve);
    if (!rc) {
      i = e;
      continue;
    }
    st[i + failed] = rc;
    verr[i + failed] = ve;
    if (rc == MC_EPEER) /* the peer is gone: nothing after it can work */
      for (uint32_t k = i + failed + 1; k < it->n; k++)
        if (!it->skip[k] && !st[k])
          st[k] = MC_EPEER;
    i += failed + 1;
  }
}

/* Locked.  Frees a finished job's slot; its completion goes to *d. */
static void retire(struct shm_workers *w, shm_job *j, shm_done *d) {
  *d = (shm_done){j->ep, j->token, j->status ? 0 : j->len, j->status, j->verr};
  j->next = w->free;
  w->free = j;
}

static void deliver(struct shm_workers *w, const shm_done *d, uint32_t n) {
  const mc_host_api *h = w->c->host;
  for (uint32_t k = 0; k < n; k++)
    h->complete(h->host, d[k].token, d[k].status, d[k].bytes, d[k].verr);
}

/* Locked.  Drops the endpoint counts of delivered completions. */
static void release_eps(struct shm_workers *w, const shm_done *d, uint32_t n) {
  int wake = 0;
  for (uint32_t k = 0; k < n; k++)
    if (--d[k].ep->jobs == 0)
      wake = 1;
  if (wake)
    pthread_cond_broadcast(&w->idle);
}

static void *worker_main(void *arg) {
  struct shm_workers *w = arg;
  shm_item it;
  shm_done done[SHM_IOV_MAX];
  uint32_t ndone = 0;
  int st[SHM_IOV_MAX];
  int32_t verr[SHM_IOV_MAX];
  int busy = 0; /* copied something since the last sleep */
  pthread_mutex_lock(&w->lock);
  for (;;) {
    release_eps(w, done, ndone);
    ndone = 0;
    if (!w->head && !w->stop && busy)
      spin_a_while(w);
    busy = 0;
    while (!w->head && !w->stop)
      pthread_cond_wait(&w->work, &w->lock);
    if (!w->head)
      break; /* stopping, and stop() already canceled what was queued */
    claim(w, &it);
    busy = 1;
    pthread_mutex_unlock(&w->lock);
    run(w, &it, st, verr);
    pthread_mutex_lock(&w->lock);
    for (uint32_t k = 0; k < it.n; k++) {
      shm_job *j = it.job[k];
      if (st[k] && !j->status) {
        j->status = st[k];
        j->verr = verr[k];
      }
      if (--j->left == 0)
        retire(w, j, &done[ndone++]);
    }
    if (ndone) {
      pthread_mutex_unlock(&w->lock);
      deliver(w, done, ndone);
      pthread_mutex_lock(&w->lock);
    }
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int shm_workers_push(struct shm_workers *w, shm_ep *ep, const mc_slice *s) {
  const shm_rmem *rm = s->remote_mem;
  uint64_t mask = ~(w->c->copy_chunk - 1);
  pthread_mutex_lock(&w->lock);
  shm_job *j = w->free;
  if (w->stop || !j) {
    pthread_mutex_unlock(&w->lock);
    return w->stop ? MC_ECANCELED : MC_EAGAIN;
  }
  w->free = j->next;
  *j = (shm_job){.ep = ep, .token = s->token, .laddr = s->local_addr,
                 .raddr = s->remote_addr, .len = s->len,
                 .reg_secret = rm->reg_secret, .slot = rm->slot, .op = s->op};
  /* Chunks follow aligned windows of the peer's addresses. */
  j->nchunks = j->left = (((j->raddr + j->len - 1) & mask) - (j->raddr & mask)) /
                             w->c->copy_chunk + 1;
  if (w->tail)
    w->tail->next = j;
  else
    w->head = j;
  w->tail = j;
  atomic_store_explicit(&w->queued, 1, memory_order_relaxed);
  ep->jobs++;
  if (j->nchunks > 1)
    pthread_cond_broadcast(&w->work);
  else
    pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
  return 0;
}

/* Locked.  Takes the unstarted chunks of queued jobs (all, or ep's) out of
 * the queue; jobs with nothing left in flight go to done[] (size
 * SHM_WORKER_SLOTS).  Returns how many. */
static uint32_t cancel_queued(struct shm_workers *w, const shm_ep *ep,
                              shm_done *done) {
  uint32_t n = 0;
  shm_job **pp = &w->head;
  w->tail = NULL;
  while (*pp) {
    shm_job *j = *pp;
    if (ep && j->ep != ep) {
      w->tail = j;
      pp = &j->next;
      continue;
    }
    *pp = j->next;
    j->left -= j->nchunks - j->claimed;
    j->claimed = j->nchunks;
    if (!j->status)
      j->status = MC_ECANCELED;
    if (j->left == 0)
      retire(w, j, &done[n++]);
  }
  atomic_store_explicit(&w->queued, w->head != NULL, memory_order_relaxed);
  return n;
}

void shm_workers_drain_ep(struct shm_workers *w, shm_ep *ep) {
  if (!w)
    return;
  shm_done *done = malloc(SHM_WORKER_SLOTS * sizeof *done);
  pthread_mutex_lock(&w->lock);
  if (done) {
    uint32_t n = cancel_queued(w, ep, done);
    pthread_mutex_unlock(&w->lock);
    deliver(w, done, n);
    pthread_mutex_lock(&w->lock);
    release_eps(w, done, n);
    free(done);
  } /* else: no memory to cancel with; the workers finish ep's jobs */
  while (ep->jobs)
    pthread_cond_wait(&w->idle, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

void shm_workers_stop(struct shm_workers *w) {
  if (!w)
    return;
  shm_done *done = malloc(SHM_WORKER_SLOTS * sizeof *done);
  pthread_mutex_lock(&w->lock);
  w->stop = 1;
  uint32_t n = done ? cancel_queued(w, NULL, done) : 0;
  pthread_cond_broadcast(&w->work);
  pthread_mutex_unlock(&w->lock);
  deliver(w, done, n);
  /* Without memory to cancel with, workers drain the queue before they
   * see it empty and exit: every slice still completes once. */
  for (uint32_t i = 0; i < w->nthreads; i++)
    pthread_join(w->threads[i], NULL);
  free(done);
  pthread_cond_destroy(&w->idle);
  pthread_cond_destroy(&w->work);
  pthread_mutex_destroy(&w->lock);
  free(w->threads);
  free(w->slots);
  free(w);
}

int shm_workers_start(shm_ctx *c, uint32_t nthreads, struct shm_workers **out) {
  struct shm_workers *w = calloc(1, sizeof *w);
  if (!w)
    return MC_ENOMEM;
  w->c = c;
  w->slots = calloc(SHM_WORKER_SLOTS, sizeof *w->slots);
  w->threads = calloc(nthreads, sizeof *w->threads);
  if (!w->slots || !w->threads) {
    free(w->slots);
    free(w->threads);
    free(w);
    return MC_ENOMEM;
  }
  for (uint32_t i = SHM_WORKER_SLOTS; i-- > 0;) {
    w->slots[i].next = w->free;
    w->free = &w->slots[i];
  }
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->work, NULL);
  pthread_cond_init(&w->idle, NULL);
  /* Workers take no signals: the application's threads handle them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = 0;
  for (; w->nthreads < nthreads; w->nthreads++) {
    if (pthread_create(&w->threads[w->nthreads], NULL, worker_main, w)) {
      rc = MC_ENOMEM;
      break;
    }
    pthread_setname_np(w->threads[w->nthreads], "mc-shm-copy");
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) {
    shm_workers_stop(w);
    return rc;
  }
  *out = w;
  return 0;
}
