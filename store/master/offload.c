/* The SSD tier's queues: offload tasks waiting for (or handed to) the
 * owner of their target disk segment, and freed disk ranges waiting for
 * their owner to release the file space (trims).  Both lists sit under
 * m->off_mu, taken after a shard lock (eviction queues with its shard
 * locked) and never held while a shard lock is taken. */
#include <stdlib.h>
#include <string.h>

#include "master.h"

#define MS 1000000ull
#define MAX_PER_SYNC 256

void mcs_offload_queue(mcs_master *m, uint64_t id, uint64_t hash, const char *key,
                       size_t klen, const uint8_t *owner) {
  mcs_task *t = malloc(sizeof(*t) + klen + 1);
  if (!t)
    return; /* the object keeps off_id; the timeout gives its range back */
  t->id = id;
  t->hash = hash;
  t->queued_ns = mcs_now_ns();
  t->handed_ns = 0;
  memcpy(t->owner, owner, MCS_CLIENT_ID_LEN);
  t->klen = (uint32_t)klen;
  memcpy(t->key, key, klen);
  t->key[klen] = 0;
  pthread_mutex_lock(&m->off_mu);
  /* Appended: handed out in eviction order (the least recently used
   * first). */
  mcs_task **pp = &m->tasks;
  while (*pp)
    pp = &(*pp)->next;
  t->next = NULL;
  *pp = t;
  pthread_mutex_unlock(&m->off_mu);
}

/* Takes task id of owner cid out of the list (NULL when not there). */
static mcs_task *take_task(mcs_master *m, const uint8_t *cid, uint64_t id) {
  for (mcs_task **pp = &m->tasks; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id && !memcmp((*pp)->owner, cid, MCS_CLIENT_ID_LEN)) {
      mcs_task *t = *pp;
      *pp = t->next;
      return t;
    }
  return NULL;
}

static void finish_ids(mcs_master *m, const uint8_t *cid, const uint64_t *ids, size_t n,
                       int ok) {
  for (size_t i = 0; i < n; i++) {
    pthread_mutex_lock(&m->off_mu);
    mcs_task *t = take_task(m, cid, ids[i]);
    pthread_mutex_unlock(&m->off_mu);
    if (t) {
      mcs_offload_finish(m, t->id, t->hash, t->key, t->klen, ok);
      free(t);
    }
  }
}

int mcs_offload_sync(mcs_master *m, const uint8_t *cid, const uint64_t *done, size_t ndone,
                     const uint64_t *failed, size_t nfailed, const uint64_t *trimmed,
                     size_t ntrimmed, uint32_t max, mcs_task_out *tasks, int *ntasks,
                     mcs_trim_out *trims, int *ntrims) {
  *ntasks = *ntrims = 0;
  if (max == 0)
    max = 16;
  if (max > MAX_PER_SYNC)
    max = MAX_PER_SYNC;
  finish_ids(m, cid, done, ndone, 1);
  finish_ids(m, cid, failed, nfailed, 0);
  /* Acknowledged trims: the ranges are reusable now. */
  for (size_t i = 0; i < ntrimmed; i++) {
    mcs_trim *got = NULL;
    pthread_mutex_lock(&m->off_mu);
    for (mcs_trim **pp = &m->trims; *pp; pp = &(*pp)->next)
      if ((*pp)->id == trimmed[i] && (*pp)->handed_ns &&
          !memcmp((*pp)->rep.seg->cid, cid, MCS_CLIENT_ID_LEN)) {
        got = *pp;
        *pp = got->next;
        break;
      }
    pthread_mutex_unlock(&m->off_mu);
    if (got) {
      mcs_rep_free_now(m, &got->rep);
      free(got);
    }
  }
  /* New work: tasks first, then trims, so a range freed while its task
   * was out is punched only after that task's write (the client does
   * them in this order). */
  uint64_t now = mcs_now_ns(), rehand = m->cfg.offload_task_timeout_ms * MS;
  struct pick {
    uint64_t id, hash;
    char *key;
    uint32_t klen;
  } *picks = malloc(max * sizeof(*picks));
  if (!picks)
    return MCSTORE__ERROR_CODE__INTERNAL_ERROR;
  uint32_t np = 0;
  pthread_mutex_lock(&m->off_mu);
  for (mcs_task *t = m->tasks; t && np < max; t = t->next)
    if (!t->handed_ns && !memcmp(t->owner, cid, MCS_CLIENT_ID_LEN)) {
      if (!(picks[np].key = malloc(t->klen + 1)))
        break;
      memcpy(picks[np].key, t->key, t->klen + 1);
      picks[np].klen = t->klen;
      picks[np].id = t->id;
      picks[np++].hash = t->hash;
      t->handed_ns = now;
    }
  for (mcs_trim *t = m->trims; t && (uint32_t)*ntrims < max; t = t->next)
    if ((!t->handed_ns || mcs_older(t->handed_ns, now, rehand)) &&
        !memcmp(t->rep.seg->cid, cid, MCS_CLIENT_ID_LEN)) {
      t->handed_ns = now;
      atomic_fetch_add(&t->rep.seg->refs, 1);
      /* The block stays allocated while listed: its size is stable. */
      trims[(*ntrims)++] = (mcs_trim_out){t->id, t->rep.seg, t->rep.seg->base + t->rep.off,
                                          mcs_alloc_block_size(t->rep.blk)};
    }
  pthread_mutex_unlock(&m->off_mu);
  for (uint32_t i = 0; i < np; i++) {
    mcs_task_out *o = &tasks[*ntasks];
    if (mcs_offload_describe(m, picks[i].id, picks[i].hash, picks[i].key, picks[i].klen,
                             &o->src, &o->dst) == 0) {
      o->id = picks[i].id;
      o->key = picks[i].key;
      (*ntasks)++;
    } else {
      /* Stale (removed, replaced or its target gone): drop it. */
      pthread_mutex_lock(&m->off_mu);
      mcs_task *t = take_task(m, cid, picks[i].id);
      pthread_mutex_unlock(&m->off_mu);
      free(t);
      free(picks[i].key);
    }
  }
  free(picks);
  return 0;
}

void mcs_task_out_release(mcs_task_out *t, int n) {
  for (int i = 0; i < n; i++) {
    free(t[i].key);
    mcs_reps_release(&t[i].src, 1);
    mcs_reps_release(&t[i].dst, 1);
  }
}

void mcs_trim_out_release(mcs_trim_out *t, int n) {
  for (int i = 0; i < n; i++)
    mcs_seg_unref(t[i].seg);
}

static int seg_dying(mcs_segment *s) {
  pthread_mutex_lock(&s->mu);
  int d = s->dying;
  pthread_mutex_unlock(&s->mu);
  return d;
}

void mcs_offload_expire(mcs_master *m) {
  uint64_t now = mcs_now_ns(), to = m->cfg.offload_task_timeout_ms * MS;
  mcs_task *late = NULL;
  mcs_trim *gone = NULL;
  pthread_mutex_lock(&m->off_mu);
  for (mcs_task **pp = &m->tasks; *pp;) {
    mcs_task *t = *pp;
    if (mcs_older(t->queued_ns, now, to)) {
      *pp = t->next;
      t->next = late;
      late = t;
    } else {
      pp = &t->next;
    }
  }
  for (mcs_trim **pp = &m->trims; *pp;) {
    mcs_trim *t = *pp;
    if (seg_dying(t->rep.seg)) {
      *pp = t->next;
      t->next = gone;
      gone = t;
    } else {
      pp = &t->next;
    }
  }
  pthread_mutex_unlock(&m->off_mu);
  for (mcs_task *t = late, *nx; t; t = nx) {
    nx = t->next;
    /* Not reported in time (owner gone or stuck): the object stays in
     * memory and its range goes back through a trim. */
    mcs_offload_finish(m, t->id, t->hash, t->key, t->klen, 0);
    free(t);
  }
  for (mcs_trim *t = gone, *nx; t; t = nx) {
    nx = t->next;
    mcs_rep_free_now(m, &t->rep); /* dying: only the reference goes */
    free(t);
  }
}

void mcs_offload_fini(mcs_master *m) {
  for (mcs_task *t = m->tasks, *nx; t; t = nx) {
    nx = t->next;
    free(t);
  }
  for (mcs_trim *t = m->trims, *nx; t; t = nx) {
    nx = t->next;
    mcs_seg_unref(t->rep.seg);
    free(t);
  }
  m->tasks = NULL;
  m->trims = NULL;
}
