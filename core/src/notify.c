/* Received notifications (notify.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mooncake/errors.h"
#include "net.h"
#include "notify.h"

struct mc_notify_queue {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mc_notification *items; /* ring */
  uint32_t cap, head, count;
  uint64_t dropped;
};

int mc_notify_queue_create(uint32_t cap, mc_notify_queue **out) {
  mc_notify_queue *q = calloc(1, sizeof *q);
  if (!q)
    return MC_ENOMEM;
  q->items = calloc(cap, sizeof *q->items);
  if (!q->items) {
    free(q);
    return MC_ENOMEM;
  }
  q->cap = cap;
  pthread_mutex_init(&q->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cond, &ca);
  pthread_condattr_destroy(&ca);
  *out = q;
  return 0;
}

void mc_notify_queue_destroy(mc_notify_queue *q) {
  if (!q)
    return;
  free(q->items);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->cond);
  free(q);
}

void mc_notify_queue_push(mc_notify_queue *q, const char *peer, const void *msg,
                          size_t len) {
  pthread_mutex_lock(&q->lock);
  if (q->count == q->cap) {
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->dropped++;
  }
  mc_notification *n = &q->items[(q->head + q->count) % q->cap];
  memset(n->peer, 0, sizeof n->peer);
  strncpy(n->peer, peer, sizeof n->peer - 1);
  n->len = (uint32_t)len;
  memcpy(n->msg, msg, len);
  q->count++;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
}

int mc_notify_queue_pop(mc_notify_queue *q, mc_notification *out, uint32_t max,
                        int timeout_ms) {
  pthread_mutex_lock(&q->lock);
  if (q->count == 0 && timeout_ms > 0 && max > 0) {
    struct timespec ts;
    mc_deadline_ts(&ts, (uint64_t)timeout_ms);
    while (q->count == 0)
      if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) == ETIMEDOUT)
        break;
  }
  uint32_t n = 0;
  while (n < max && q->count) {
    out[n++] = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
  }
  pthread_mutex_unlock(&q->lock);
  return (int)n;
}
