/* shm transport: the copy workers of any-memory (process_vm) mode.
 *
 * process_vm_readv/writev pin the peer's pages one by one inside the
 * kernel, so one thread moves plain memory at a fraction of memcpy speed.
 * The workers split each large slice at peer addresses aligned to
 * copy_chunk and copy those chunks in parallel, and batch consecutive small
 * slices of one window into one process_vm call.  A slice is completed (from a worker thread) once its
 * last chunk is done, with the first error any chunk met.  The queue is
 * bounded: when it is full, submit accepts a prefix (back-pressure). */
#ifndef MC_SHM_WORKERS_H
#define MC_SHM_WORKERS_H

#include <stdint.h>

#include "shm_ctx.h"

/* Slices queued or being copied, per engine, at most. */
#define SHM_WORKER_SLOTS 512u
/* How long an idle worker polls for more work before it sleeps. */
#ifndef SHM_WORKER_SPIN_NS
#define SHM_WORKER_SPIN_NS 50000u
#endif

/* Starts nthreads workers for c (c->copy_chunk set).  0 or MC_E*. */
int shm_workers_start(shm_ctx *c, uint32_t nthreads, struct shm_workers **out);

/* Queues a checked vm slice.  0; MC_EAGAIN when the queue is full;
 * MC_ECANCELED once stopping. */
int shm_workers_push(struct shm_workers *w, shm_ep *ep, const mc_slice *s);

/* Cancels ep's chunks not yet started (MC_ECANCELED) and returns once
 * every slice of ep has been completed (disconnect). */
void shm_workers_drain_ep(struct shm_workers *w, shm_ep *ep);

/* Cancels everything queued (each slice completed once, MC_ECANCELED
 * unless it already failed), lets chunks being copied finish, joins the
 * threads and frees w (fini).  NULL is a no-op. */
void shm_workers_stop(struct shm_workers *w);

#endif
