/* Received notifications: a bounded ring per engine.  When the application
 * does not poll, the oldest are dropped (and counted) rather than letting a
 * peer grow our memory without bound. */
#ifndef MC_NOTIFY_H
#define MC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/engine.h"

typedef struct mc_notify_queue mc_notify_queue;

int mc_notify_queue_create(uint32_t cap, mc_notify_queue **out);
void mc_notify_queue_destroy(mc_notify_queue *q); /* NULL is a no-op */
void mc_notify_queue_push(mc_notify_queue *q, const char *peer,
                          const void *msg, size_t len);
/* Up to max notifications, waiting up to timeout_ms for the first. */
int mc_notify_queue_pop(mc_notify_queue *q, mc_notification *out, uint32_t max,
                        int timeout_ms);

#endif
