/* The request pipeline: batches of requests, each cut into slices that go
 * to a transport's rails; completions (any thread), retries on another rail
 * or transport, back-pressure backlogs, notifications sent after their
 * writes landed.  It uses the registry (local buffers), the segments (remote
 * views and routes), the rails and the job queue, whose worker runs its
 * retries and notifications and calls its poll hook (mc_pipeline_hooks). */
#ifndef MC_PIPELINE_H
#define MC_PIPELINE_H

#include <stdint.h>

#include "config.h"
#include "jobs.h"
#include "registry.h"
#include "segment.h"
#include "transports.h"
#include "mooncake/engine.h"

typedef struct mc_pipeline mc_pipeline;

/* set, reg, jobs and cfg outlive the pipeline. */
int mc_pipeline_create(mc_tset *set, mc_registry *reg, mc_jobq *jobs,
                       const mc_config *cfg, mc_pipeline **out);
void mc_pipeline_destroy(mc_pipeline *p); /* NULL is a no-op */
/* The job queue hooks: drain backlogs, drive progress(). */
mc_jobq_hooks mc_pipeline_hooks(mc_pipeline *p);
/* Slices inside the plugins now. */
int64_t mc_pipeline_inflight(const mc_pipeline *p);
/* mc_batch_create, on this pipeline. */
int mc_pipeline_batch_create(mc_pipeline *p, uint32_t capacity, mc_batch **out);
/* The completion entry (the host API's complete): the slice of `token`
 * finished with status (0 or MC_E*) after moving bytes. */
void mc_pipeline_complete(uint64_t token, int status, uint64_t bytes,
                          int32_t vendor);

#endif
