/* Remote segments and their views.  An engine's mc_segments holds the
 * segments it opened (by name, until the engine is destroyed); a segment
 * holds its current view, an immutable snapshot of the peer's descriptor
 * with lazily created endpoints (shared across views while the peer's blob
 * is unchanged) and imported buffers.  Views are reference counted, so a
 * refresh (the peer registered more memory, metadata said it changed) never
 * disturbs slices in flight; the last reference from a completion callback
 * is dropped on the job queue, since freeing calls into plugins. */
#ifndef MC_SEGMENT_H
#define MC_SEGMENT_H

#include <stdint.h>

#include "descriptor.h"
#include "jobs.h"
#include "log.h"
#include "metadata.h"
#include "transports.h"
#include "mooncake/engine.h"

typedef struct mc_segments mc_segments;
typedef struct mc_seg_view mc_seg_view;

/* Created before the metadata backend (whose change callback is
 * mc_segments_on_change), attached to the rest before the first open. */
int mc_segments_create(mc_logger *log, const char *host_id, mc_segments **out);
void mc_segments_attach(mc_segments *ss, mc_tset *set, mc_jobq *jobs,
                        mc_metadata *md, const char *metadata_url);
/* Metadata's change callback (arg: the mc_segments): marks it stale. */
void mc_segments_on_change(void *arg, const char *name);
/* Frees every segment (warning about ones still open) and ss. */
void mc_segments_destroy(mc_segments *ss);
/* mc_segment_open, on this set. */
int mc_segments_open(mc_segments *ss, const char *name, mc_segment **out);

const char *mc_segment_name(const mc_segment *s);
/* Current view with a reference; refreshes first if stale. */
mc_seg_view *mc_segment_view(mc_segment *s);
/* View that contains [addr, len) (refetching once if not); NULL + *err. */
mc_seg_view *mc_segment_view_for(mc_segment *s, uint64_t addr, uint64_t len,
                                 long *rbuf, int *err);

const mc_seg_desc *mc_view_desc(const mc_seg_view *v);
/* The peer descriptor's index of local transport t, or -1. */
int mc_view_desc_tidx(const mc_seg_view *v, int t);
int mc_view_same_host(const mc_seg_view *v);
/* The peer's buffers changed: the next request refetches its descriptor. */
void mc_view_mark_stale(mc_seg_view *v);
void mc_view_put(mc_seg_view *v);
/* As mc_view_put, for completion context: a last reference is freed on the
 * job queue. */
void mc_view_put_async(mc_seg_view *v);
/* Endpoint and import for transport t in view v; creates them lazily.
 * MC_ENODEV when t's import_mem said this host cannot reach the buffer
 * through t (remembered for the view: asked once). */
int mc_view_route(mc_seg_view *v, mc_transport *t, long rbuf, void **ep,
                  void **rmem);

#endif
