/* tcp_iloop.c - the initiator's io threads (tcp_iloop.h). */
#include "tcp_iloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tcp_io.h"

#define IW_WAKE UINT64_MAX

typedef struct tcp_iworker {
  tcp_iloop *l;
  pthread_t th;
  int started, ep, evfd;
  pthread_mutex_t lock;
  pthread_cond_t gone; /* a detach finished */
  tcp_ilink *kicks;    /* lock */
  tcp_ilink *conns;    /* worker only */
  tcp_ilink *again;    /* worker only */
} tcp_iworker;

struct tcp_iloop {
  tcp_ctx *ctx;
  atomic_int stop;
  atomic_uint rr;
  uint32_t n;
  tcp_iworker *w;
};

static void wake(tcp_iworker *w) {
  uint64_t one = 1;
  if (write(w->evfd, &one, sizeof one) < 0) {
    /* an eventfd counter cannot overflow at one write per kick batch */
  }
}

void tcp_ilink_kick(tcp_ilink *link) {
  tcp_iworker *w = link->w;
  pthread_mutex_lock(&w->lock);
  int signal = 0;
  if (!link->kicked) {
    link->kicked = 1;
    /* The worker swaps the list out after reading the eventfd: a
     * non-empty list means a wake-up is already on its way. */
    signal = w->kicks == NULL;
    link->knext = w->kicks;
    w->kicks = link;
  }
  pthread_mutex_unlock(&w->lock);
  if (signal)
    wake(w);
}

void tcp_ilink_again(tcp_ilink *link) {
  if (link->again)
    return;
  link->again = 1;
  link->rnext = link->w->again;
  link->w->again = link;
}

void tcp_ilink_detach(tcp_ilink *link) {
  tcp_iworker *w = link->w;
  pthread_mutex_lock(&w->lock);
  link->detach = 1;
  if (!link->kicked) {
    link->kicked = 1;
    link->knext = w->kicks;
    w->kicks = link;
  }
  pthread_mutex_unlock(&w->lock);
  wake(w);
  pthread_mutex_lock(&w->lock);
  while (!link->gone)
    pthread_cond_wait(&w->gone, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

int tcp_ilink_epoll(const tcp_ilink *link) { return link->w->ep; }

static void attach(tcp_iworker *w, tcp_ilink *k) {
  if (k->attached)
    return;
  k->attached = 1;
  k->prev = NULL;
  k->next = w->conns;
  if (w->conns)
    w->conns->prev = k;
  w->conns = k;
}

static void unlink_conn(tcp_iworker *w, tcp_ilink *k) {
  if (k->attached) {
    if (k->prev)
      k->prev->next = k->next;
    else
      w->conns = k->next;
    if (k->next)
      k->next->prev = k->prev;
  }
  /* Drop it from the again list too. */
  for (tcp_ilink **p = &w->again; *p; p = &(*p)->rnext)
    if (*p == k) {
      *p = k->rnext;
      break;
    }
}

static void run_kicks(tcp_iworker *w) {
  uint64_t v;
  while (read(w->evfd, &v, sizeof v) > 0) {
  }
  pthread_mutex_lock(&w->lock);
  tcp_ilink *list = w->kicks;
  w->kicks = NULL;
  pthread_mutex_unlock(&w->lock);
  while (list) {
    tcp_ilink *k = list;
    pthread_mutex_lock(&w->lock);
    list = k->knext;
    k->kicked = 0;
    int detach = k->detach;
    pthread_mutex_unlock(&w->lock);
    if (detach) {
      tcp_conn_detached(k->conn);
      unlink_conn(w, k);
      pthread_mutex_lock(&w->lock);
      k->gone = 1;
      pthread_cond_broadcast(&w->gone);
      pthread_mutex_unlock(&w->lock);
      continue;
    }
    attach(w, k);
    tcp_conn_kicked(k->conn);
  }
}

static void *worker_main(void *arg) {
  tcp_iworker *w = arg;
  struct epoll_event ev[64];
  int64_t next_tick = tcp_now_ms() + TCP_ILOOP_TICK_MS;
  while (!atomic_load(&w->l->stop)) {
    int64_t now = tcp_now_ms();
    /* No connection: nothing to time, sleep until kicked. */
    int tmo = w->again ? 0 : !w->conns ? -1 : next_tick > now ? (int)(next_tick - now) : 0;
    int n = epoll_wait(w->ep, ev, 64, tmo);
    int kicked = 0;
    for (int i = 0; i < n; i++) {
      if (ev[i].data.u64 == IW_WAKE) {
        kicked = 1;
        continue;
      }
      tcp_ilink *k = ev[i].data.ptr;
      tcp_conn_io(k->conn, ev[i].events);
    }
    /* Detaches run only here, after the batch: no event above can refer to
     * a connection that is gone. */
    if (kicked)
      run_kicks(w);
    tcp_ilink *a = w->again;
    w->again = NULL;
    while (a) {
      tcp_ilink *k = a;
      a = a->rnext;
      k->again = 0;
      tcp_conn_io(k->conn, 0);
    }
    now = tcp_now_ms();
    if (now >= next_tick) {
      for (tcp_ilink *k = w->conns; k;) {
        tcp_ilink *next = k->next;
        tcp_conn_tick(k->conn, now);
        k = next;
      }
      next_tick = now + TCP_ILOOP_TICK_MS;
    }
  }
  return NULL;
}

void tcp_iloop_bind(tcp_iloop *l, tcp_ilink *link, struct tcp_conn *conn) {
  link->conn = conn;
  link->w = &l->w[atomic_fetch_add(&l->rr, 1) % l->n];
}

void tcp_iloop_stop(tcp_iloop *l) {
  if (!l)
    return;
  atomic_store(&l->stop, 1);
  for (uint32_t i = 0; i < l->n; i++)
    if (l->w[i].started)
      wake(&l->w[i]);
  for (uint32_t i = 0; i < l->n; i++) {
    tcp_iworker *w = &l->w[i];
    if (w->started)
      pthread_join(w->th, NULL);
    if (w->ep >= 0)
      close(w->ep);
    if (w->evfd >= 0)
      close(w->evfd);
    pthread_cond_destroy(&w->gone);
    pthread_mutex_destroy(&w->lock);
  }
  free(l->w);
  free(l);
}

int tcp_iloop_start(tcp_ctx *ctx, uint32_t n, tcp_iloop **out) {
  tcp_iloop *l = calloc(1, sizeof *l);
  if (!l)
    return MC_ENOMEM;
  l->ctx = ctx;
  l->n = n ? n : 1;
  l->w = calloc(l->n, sizeof *l->w);
  if (!l->w) {
    free(l);
    return MC_ENOMEM;
  }
  int rc = 0;
  for (uint32_t i = 0; i < l->n; i++) {
    tcp_iworker *w = &l->w[i];
    w->l = l;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->gone, NULL);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = IW_WAKE};
    if (!rc && (w->ep < 0 || w->evfd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) ||
                pthread_create(&w->th, NULL, worker_main, w)))
      rc = MC_ENOMEM;
    else if (!rc)
      w->started = 1;
  }
  if (rc) {
    TCP_LOG(ctx, MC_LOG_ERROR, "cannot start %u initiator io threads", l->n);
    tcp_iloop_stop(l);
    return rc;
  }
  *out = l;
  return 0;
}
