/* A generic job and timer queue with one worker thread: it runs jobs when
 * they are due, and between jobs calls a poll hook its owner supplies (the
 * request pipeline drains back-pressure backlogs and drives progress()
 * there).  It knows nothing of batches, slices or transports: a job is a
 * function and its argument.
 *
 * Jobs run on the worker, oldest due first, outside any lock of the queue,
 * so they may push more jobs.  Once mc_jobq_stop has begun, due and delayed
 * jobs run at once with MC_JOB_STOPPING, and a job pushed after the worker
 * is gone runs inline in the pusher with MC_JOB_DROPPED. */
#ifndef MC_JOBS_H
#define MC_JOBS_H

#include <stdint.h>

typedef struct mc_jobq mc_jobq;

/* Why a job runs: its time came, the queue is stopping (run it now, or
 * cancel it), or the queue is stopped (it was never queued). */
enum { MC_JOB_RUN = 0, MC_JOB_STOPPING = 1, MC_JOB_DROPPED = 2 };
typedef void (*mc_job_fn)(void *arg, int why);

/* What a poll hook reports, as bits. */
enum {
  MC_JOBQ_MORE = 1,       /* work remains (e.g. a backlog): keep polling */
  MC_JOBQ_PUSHBACK = 2,   /* a consumer is full: wait up to 1 ms for a kick */
  MC_JOBQ_PROGRESSED = 4, /* the poll made progress */
  MC_JOBQ_SPIN = 8,       /* poll again without sleeping (busy polling) */
};
typedef struct mc_jobq_hooks {
  /* Whether the worker should poll now, though no job is due. */
  int (*busy)(void *arg);
  /* One round of the owner's work; stopping: the queue is stopping. */
  int (*poll)(void *arg, int stopping);
  void *arg;
} mc_jobq_hooks;

int mc_jobq_create(mc_jobq **out);
/* Starts the worker; hooks may be NULL (jobs only). */
int mc_jobq_start(mc_jobq *q, const mc_jobq_hooks *hooks);
/* Runs what is queued (MC_JOB_STOPPING), polls until the hook reports no
 * MC_JOBQ_MORE, and joins the worker.  Idempotent. */
void mc_jobq_stop(mc_jobq *q);
/* Stops it if needed and frees it; NULL is a no-op. */
void mc_jobq_destroy(mc_jobq *q);
/* Queues fn(arg) to run in delay_ms (0: as soon as possible).  MC_ENOMEM
 * if the job cannot be allocated (nothing ran); 0 otherwise, including
 * when the queue is stopped and fn ran inline with MC_JOB_DROPPED. */
int mc_jobq_push(mc_jobq *q, mc_job_fn fn, void *arg, uint64_t delay_ms);
/* Wakes the worker (new work for the poll hook). */
void mc_jobq_kick(mc_jobq *q);

#endif
