/* Remote segments: descriptor cache, endpoints and imported buffers
 * (segment.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"

#define COMP "segment"

struct mc_segments {
  mc_logger *log;
  char host_id[128];
  mc_tset *set;
  mc_jobq *jobs;
  mc_metadata *md;
  const char *metadata_url;
  pthread_mutex_t lock;
  struct mc_segment *list;
};

/* An endpoint to one peer through one transport, shared by views whose
 * descriptor carries the same blob. */
typedef struct mc_ep {
  mc_transport *t;
  void *ep;
  _Atomic int refs;
  uint32_t blob_len;
  uint8_t blob[MC_DESC_MAX];
} mc_ep;

struct mc_seg_view {
  mc_seg_desc *desc;
  _Atomic int refs;
  int same_host;
  int desc_tidx[MC_MAX_TRANSPORTS]; /* local transport -> desc transport index, -1 */
  mc_ep *eps[MC_MAX_TRANSPORTS];    /* local transport index -> endpoint */
  pthread_mutex_t lock;             /* guards connect/import creation */
  _Atomic(void *) *rmem;            /* [buffer * MC_MAX_TRANSPORTS + t] */
  /* Same index: the transport's import_mem said MC_ENODEV (this host
   * cannot reach that buffer through it), so it is not asked again. */
  atomic_uchar *noreach;
  struct mc_segment *seg;
};

struct mc_segment {
  mc_segments *set;
  char name[MC_NAME_MAX];
  int refs;           /* under set->lock */
  _Atomic int stale;  /* metadata said it changed */
  pthread_mutex_t lock; /* guards view swap and refresh */
  mc_seg_view *view;
  struct mc_segment *next;
};

int mc_segments_create(mc_logger *log, const char *host_id, mc_segments **out) {
  mc_segments *ss = calloc(1, sizeof *ss);
  if (!ss)
    return MC_ENOMEM;
  ss->log = log;
  snprintf(ss->host_id, sizeof ss->host_id, "%s", host_id);
  pthread_mutex_init(&ss->lock, NULL);
  *out = ss;
  return 0;
}

void mc_segments_attach(mc_segments *ss, mc_tset *set, mc_jobq *jobs,
                        mc_metadata *md, const char *metadata_url) {
  ss->set = set;
  ss->jobs = jobs;
  ss->md = md;
  ss->metadata_url = metadata_url;
}

const char *mc_segment_name(const mc_segment *s) { return s->name; }
const mc_seg_desc *mc_view_desc(const mc_seg_view *v) { return v->desc; }
int mc_view_desc_tidx(const mc_seg_view *v, int t) { return v->desc_tidx[t]; }
int mc_view_same_host(const mc_seg_view *v) { return v->same_host; }
void mc_view_mark_stale(mc_seg_view *v) { atomic_store(&v->seg->stale, 1); }

static void view_free(mc_seg_view *v);

static void view_free_job(void *arg, int why) {
  (void)why; /* freed whether the queue runs or drops it */
  view_free(arg);
}

static void ep_put(mc_ep *ep) {
  if (!ep || atomic_fetch_sub(&ep->refs, 1) != 1)
    return;
  mc_transport *t = ep->t;
  if (ep->ep && !atomic_load(&t->set->closing)) {
    pthread_mutex_lock(&t->ctl_lock);
    t->ops->disconnect(t->ctx, ep->ep);
    pthread_mutex_unlock(&t->ctl_lock);
  }
  free(ep);
}

void mc_view_put_async(mc_seg_view *v) {
  if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
    return;
  /* Freeing disconnects endpoints, which a completion callback must not
   * do (it may run on the plugin's own thread): the worker does it.  While
   * closing, freeing makes no plugin call and the worker is gone. */
  mc_segments *ss = v->seg->set;
  if (atomic_load(&ss->set->closing) || mc_jobq_push(ss->jobs, view_free_job, v, 0))
    view_free(v);
}

void mc_view_put(mc_seg_view *v) {
  if (v && atomic_fetch_sub(&v->refs, 1) == 1)
    view_free(v);
}

static void view_free(mc_seg_view *v) {
  mc_tset *e = v->seg->set->set;
  int release = !atomic_load(&e->closing); /* else fini released them */
  for (uint32_t b = 0; release && v->rmem && b < v->desc->nbuffers; b++)
    for (int t = 0; t < e->n; t++) {
      void *rm = atomic_load(&v->rmem[(size_t)b * MC_MAX_TRANSPORTS + t]);
      if (!rm)
        continue;
      mc_transport *tr = e->t[t];
      pthread_mutex_lock(&tr->ctl_lock);
      tr->ops->release_mem(tr->ctx, rm);
      pthread_mutex_unlock(&tr->ctl_lock);
    }
  for (int t = 0; t < MC_MAX_TRANSPORTS; t++)
    ep_put(v->eps[t]);
  free((void *)v->rmem);
  free((void *)v->noreach);
  pthread_mutex_destroy(&v->lock);
  mc_desc_free(v->desc);
  free(v);
}

/* Fetches the descriptor and builds a view, reusing endpoints of `prev`
 * whose transport blob did not change. */
static int view_build(mc_segment *s, mc_seg_view *prev, mc_seg_view **out) {
  mc_segments *e = s->set;
  char *json = NULL;
  size_t len = 0;
  int rc = mc_metadata_fetch(e->md, s->name, &json, &len);
  if (rc) {
    MC_WARN(e->log, COMP, "fetching segment %s via %s failed: %s", s->name,
            e->metadata_url, mc_strerror(rc));
    return rc;
  }
  mc_seg_desc *d = NULL;
  char err[256] = "";
  rc = mc_desc_decode(json, len, &d, err, sizeof err);
  free(json);
  if (rc) {
    MC_ERROR(e->log, COMP, "segment %s: malformed descriptor: %s", s->name, err);
    return rc;
  }
  mc_seg_view *v = calloc(1, sizeof *v);
  if (!v) {
    mc_desc_free(d);
    return MC_ENOMEM;
  }
  v->desc = d;
  v->seg = s;
  atomic_init(&v->refs, 1);
  pthread_mutex_init(&v->lock, NULL);
  v->same_host = strcmp(d->host_id, e->host_id) == 0;
  v->rmem = d->nbuffers
                ? calloc((size_t)d->nbuffers * MC_MAX_TRANSPORTS, sizeof *v->rmem)
                : NULL;
  v->noreach = d->nbuffers
                   ? calloc((size_t)d->nbuffers * MC_MAX_TRANSPORTS, sizeof *v->noreach)
                   : NULL;
  if (d->nbuffers && (!v->rmem || !v->noreach)) {
    mc_view_put(v);
    return MC_ENOMEM;
  }
  for (int t = 0; t < MC_MAX_TRANSPORTS; t++)
    v->desc_tidx[t] = -1;
  if (prev) /* its endpoints may be created concurrently by mc_view_route */
    pthread_mutex_lock(&prev->lock);
  for (int t = 0; t < e->set->n; t++) {
    v->desc_tidx[t] = mc_desc_find_transport(d, e->set->t[t]->plugin->name);
    if (prev && v->desc_tidx[t] >= 0 && prev->eps[t]) {
      const mc_desc_transport *dt = &d->transports[v->desc_tidx[t]];
      mc_ep *old = prev->eps[t];
      if (old->blob_len == dt->len && memcmp(old->blob, dt->blob, dt->len) == 0) {
        atomic_fetch_add(&old->refs, 1);
        v->eps[t] = old;
      }
    }
  }
  if (prev)
    pthread_mutex_unlock(&prev->lock);
  *out = v;
  return 0;
}

/* Segment structs live until the engine is destroyed, so a view (held by
 * requests still in flight) can always reach its segment; closing the last
 * reference drops the view (and with it, once idle, the connections). */
static mc_segment *segment_get(mc_segments *e, const char *name) {
  pthread_mutex_lock(&e->lock);
  mc_segment *s = e->list;
  while (s && strcmp(s->name, name) != 0)
    s = s->next;
  if (!s && (s = calloc(1, sizeof *s))) {
    s->set = e;
    snprintf(s->name, sizeof s->name, "%s", name);
    pthread_mutex_init(&s->lock, NULL);
    s->next = e->list;
    e->list = s;
  }
  if (s)
    s->refs++;
  pthread_mutex_unlock(&e->lock);
  return s;
}

int mc_segments_open(mc_segments *e, const char *name, mc_segment **out) {
  if (!e || !name || !out || !*name || strlen(name) >= MC_NAME_MAX)
    return MC_EINVAL;
  mc_segment *s = segment_get(e, name);
  if (!s)
    return MC_ENOMEM;
  pthread_mutex_lock(&s->lock);
  int have = s->view != NULL;
  pthread_mutex_unlock(&s->lock);
  if (!have) {
    mc_seg_view *v = NULL;
    int rc = view_build(s, NULL, &v);
    if (rc) {
      mc_segment_close(s);
      return rc;
    }
    pthread_mutex_lock(&s->lock);
    if (!s->view) {
      s->view = v;
      v = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    mc_view_put(v); /* another opener was faster */
    mc_metadata_watch(e->md, name); /* best effort: p2p refetches on miss */
    MC_DEBUG(e->log, COMP, "opened segment %s", name);
  }
  *out = s;
  return 0;
}

static void segment_free(mc_segment *s) {
  mc_view_put(s->view);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void mc_segment_close(mc_segment *s) {
  if (!s)
    return;
  mc_segments *e = s->set;
  mc_seg_view *v = NULL;
  pthread_mutex_lock(&e->lock);
  if (s->refs > 0 && --s->refs == 0) {
    pthread_mutex_lock(&s->lock);
    v = s->view;
    s->view = NULL;
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_unlock(&e->lock);
  mc_view_put(v);
}

int mc_segment_refresh(mc_segment *s) {
  if (!s)
    return MC_EINVAL;
  /* Fetch without the lock, so submitters keep using the current view
   * while the network round trip runs; then swap. */
  atomic_store(&s->stale, 0);
  pthread_mutex_lock(&s->lock);
  mc_seg_view *prev = s->view;
  if (prev)
    atomic_fetch_add(&prev->refs, 1);
  pthread_mutex_unlock(&s->lock);
  if (!prev)
    return MC_EINVAL; /* closed */
  mc_seg_view *nv = NULL;
  int rc = view_build(s, prev, &nv);
  mc_view_put(prev);
  if (rc)
    return rc; /* keep the old view; a miss or the next change retries */
  pthread_mutex_lock(&s->lock);
  mc_seg_view *old = s->view;
  if (old)
    s->view = nv;
  else
    old = nv; /* closed meanwhile */
  pthread_mutex_unlock(&s->lock);
  mc_view_put(old);
  return 0;
}

int mc_segment_buffers(mc_segment *s, mc_segment_buffer *out, uint32_t *n) {
  if (!s || !n || (*n && !out))
    return MC_EINVAL;
  mc_seg_view *v = mc_segment_view(s);
  if (!v)
    return MC_EINVAL; /* used after mc_segment_close */
  const mc_seg_desc *d = v->desc;
  uint32_t k = d->nbuffers < *n ? d->nbuffers : *n;
  for (uint32_t i = 0; i < k; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].addr = d->buffers[i].addr;
    out[i].len = d->buffers[i].len;
    snprintf(out[i].location, sizeof out[i].location, "%s", d->buffers[i].location);
  }
  int rc = d->nbuffers > *n ? MC_ENOSPC : 0;
  *n = d->nbuffers;
  mc_view_put(v);
  return rc;
}

mc_seg_view *mc_segment_view(mc_segment *s) {
  if (atomic_load(&s->stale))
    mc_segment_refresh(s);
  pthread_mutex_lock(&s->lock);
  mc_seg_view *v = s->view;
  if (v)
    atomic_fetch_add(&v->refs, 1);
  pthread_mutex_unlock(&s->lock);
  return v;
}

mc_seg_view *mc_segment_view_for(mc_segment *s, uint64_t addr, uint64_t len,
                                 long *rbuf, int *err) {
  mc_seg_view *v = mc_segment_view(s);
  if (!v) {
    *err = MC_EINVAL; /* used after mc_segment_close */
    return NULL;
  }
  long b = mc_desc_find_buffer(v->desc, addr, len);
  if (b < 0) {
    /* The peer may have registered it after we fetched: refetch once. */
    uint64_t seen = v->desc->version;
    mc_view_put(v);
    pthread_mutex_lock(&s->lock);
    int again = s->view && s->view->desc->version == seen;
    pthread_mutex_unlock(&s->lock);
    int rc = again ? mc_segment_refresh(s) : 0;
    if (rc) {
      *err = rc;
      return NULL;
    }
    v = mc_segment_view(s);
    if (!v) {
      *err = MC_EINVAL;
      return NULL;
    }
    b = mc_desc_find_buffer(v->desc, addr, len);
    if (b < 0) {
      mc_view_put(v);
      *err = MC_ERANGE;
      return NULL;
    }
  }
  *rbuf = b;
  return v;
}

int mc_view_route(mc_seg_view *v, mc_transport *t, long rbuf, void **ep,
                  void **rmem) {
  int ti = t->index;
  int dti = v->desc_tidx[ti];
  if (dti < 0)
    return MC_ENOTSUP;
  _Atomic(void *) *slot = &v->rmem[(size_t)rbuf * MC_MAX_TRANSPORTS + ti];
  /* An import is stored after its endpoint, so a non-NULL slot also means
   * eps[ti] is set and visible. */
  void *rm = atomic_load(slot);
  if (rm) {
    *ep = v->eps[ti]->ep;
    *rmem = rm;
    return 0;
  }
  if (atomic_load(&v->noreach[(size_t)rbuf * MC_MAX_TRANSPORTS + ti]))
    return MC_ENODEV;
  mc_segments *e = v->seg->set;
  pthread_mutex_lock(&v->lock);
  int rc = 0;
  if (!v->eps[ti]) {
    const mc_desc_transport *dt = &v->desc->transports[dti];
    mc_ep *nep = calloc(1, sizeof *nep);
    if (!nep) {
      rc = MC_ENOMEM;
      goto out;
    }
    nep->t = t;
    atomic_init(&nep->refs, 1);
    nep->blob_len = dt->len;
    memcpy(nep->blob, dt->blob, dt->len);
    pthread_mutex_lock(&t->ctl_lock);
    rc = t->ops->connect(t->ctx, v->desc->name, dt->blob, dt->len, &nep->ep);
    pthread_mutex_unlock(&t->ctl_lock);
    if (rc) {
      MC_WARN(e->log, COMP, "%s: connect to %s failed: %s", t->plugin->name,
              v->desc->name, mc_strerror(rc));
      free(nep);
      goto out;
    }
    v->eps[ti] = nep;
  }
  rm = atomic_load(slot);
  if (!rm) {
    const mc_desc_buffer *db = &v->desc->buffers[rbuf];
    const mc_desc_key *key = NULL;
    for (uint32_t k = 0; k < db->nkeys; k++)
      if ((int)db->keys[k].transport == dti)
        key = &db->keys[k];
    if (!key) {
      rc = MC_ENOTSUP;
      goto out;
    }
    pthread_mutex_lock(&t->ctl_lock);
    rc = t->ops->import_mem(t->ctx, v->eps[ti]->ep, db->addr, db->len, key->bytes,
                            key->len, &rm);
    pthread_mutex_unlock(&t->ctl_lock);
    if (rc) {
      MC_WARN(e->log, COMP, "%s: import of %s buffer 0x%llx failed: %s",
              t->plugin->name, v->desc->name, (unsigned long long)db->addr,
              mc_strerror(rc));
      if (rc == MC_ENODEV)
        atomic_store(&v->noreach[(size_t)rbuf * MC_MAX_TRANSPORTS + ti], 1);
      goto out;
    }
    atomic_store(slot, rm);
  }
  *ep = v->eps[ti]->ep;
  *rmem = rm;
out:
  pthread_mutex_unlock(&v->lock);
  return rc;
}

void mc_segments_on_change(void *arg, const char *name) {
  mc_segments *e = arg;
  pthread_mutex_lock(&e->lock);
  for (mc_segment *s = e->list; s; s = s->next)
    if (strcmp(s->name, name) == 0)
      atomic_store(&s->stale, 1);
  pthread_mutex_unlock(&e->lock);
}

void mc_segments_destroy(mc_segments *e) {
  if (!e)
    return;
  pthread_mutex_lock(&e->lock);
  mc_segment *s = e->list;
  e->list = NULL;
  pthread_mutex_unlock(&e->lock);
  while (s) {
    mc_segment *next = s->next;
    if (s->refs > 0)
      MC_WARN(e->log, COMP, "segment %s still open at engine destroy; closing it",
              s->name);
    segment_free(s);
    s = next;
  }
  pthread_mutex_destroy(&e->lock);
  free(e);
}
