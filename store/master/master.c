/* The master's lifetime and background work: eviction every 10 ms (and on
 * demand), liveness and delayed releases every 100 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "master.h"
#include "mooncake/errors.h"

uint64_t mcs_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int load_token(mcs_master *m) {
  if (!*m->cfg.auth_token_file)
    return 0;
  FILE *f = fopen(m->cfg.auth_token_file, "r");
  if (!f)
    return MC_EIO;
  size_t n = fread(m->token, 1, sizeof m->token, f);
  int big = fgetc(f) != EOF;
  fclose(f);
  while (n && (m->token[n - 1] == '\n' || m->token[n - 1] == '\r' || m->token[n - 1] == ' '))
    n--;
  if (big || n == 0)
    return MC_EINVAL;
  m->token_len = n;
  return 0;
}

int mcs_master_create(const mcs_master_config *cfg, mcs_master **out) {
  mcs_master *m = aligned_alloc(64, (sizeof(*m) + 63) / 64 * 64);
  if (!m)
    return MC_ENOMEM;
  memset(m, 0, sizeof(*m));
  m->cfg = *cfg;
  int rc = load_token(m);
  if (rc) {
    free(m);
    return rc;
  }
  /* A new view per start: a client that saw another one must remount.
   * Wall-clock based and never 0 (0 means "no view seen yet"). */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint8_t rnd[MCS_CLIENT_ID_LEN] = {0};
  (void)mcs_random_id(rnd);
  uint64_t r;
  memcpy(&r, rnd, sizeof r);
  m->view_version = (((uint64_t)ts.tv_sec << 20) ^ (r & 0xfffff)) | 1;
  for (int i = 0; i < MCS_SHARDS; i++)
    pthread_mutex_init(&m->shards[i].mu, NULL);
  for (int i = 0; i < MCS_CLIENT_SHARDS; i++)
    pthread_mutex_init(&m->clients[i].mu, NULL);
  /* Placement holds the registry for reading on every put: a mount or an
   * expiry must not wait behind an endless stream of readers. */
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init(&ra);
  pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&m->seg_lock, &ra);
  pthread_rwlockattr_destroy(&ra);
  pthread_mutex_init(&m->evict_mu, NULL);
  pthread_mutex_init(&m->off_mu, NULL);
  pthread_mutex_init(&m->wake_mu, NULL);
  pthread_cond_init(&m->wake, NULL);
  *out = m;
  return 0;
}

/* Sleeps ms unless the master is stopping; returns 0 when it is. */
static int nap(mcs_master *m, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += (long)ms * 1000000L;
  ts.tv_sec += ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  pthread_mutex_lock(&m->wake_mu);
  if (!atomic_load(&m->stop))
    pthread_cond_timedwait(&m->wake, &m->wake_mu, &ts);
  pthread_mutex_unlock(&m->wake_mu);
  return !atomic_load(&m->stop);
}

static void *evict_main(void *arg) {
  mcs_master *m = arg;
  int wait = 10;
  while (nap(m, wait)) {
    double cap = (double)atomic_load(&m->capacity), used = (double)mcs_used_net(m);
    int over = cap > 0 && used > m->cfg.eviction_high_watermark_ratio * cap;
    uint64_t freed = over ? mcs_evict(m, 0) : 0;
    /* Over the watermark with nothing evictable (all leased or pinned):
     * look again later instead of scanning every shard 100 times a second. */
    wait = over && !freed ? 500 : 10;
  }
  return NULL;
}

static void *monitor_main(void *arg) {
  mcs_master *m = arg;
  uint64_t last_log = mcs_now_ns();
  while (nap(m, 100)) {
    mcs_expire_clients(m);
    mcs_reclaim(m);
    mcs_offload_expire(m);
    uint64_t now = mcs_now_ns();
    if (m->cfg.enable_metric_reporting && m->cfg.log_stats_interval_s > 0 &&
        now - last_log >= (uint64_t)m->cfg.log_stats_interval_s * 1000000000ull) {
      last_log = now;
      pthread_rwlock_rdlock(&m->seg_lock);
      unsigned nsegs = m->nsegs;
      pthread_rwlock_unlock(&m->seg_lock);
      uint64_t nobj, npend;
      mcs_counts(m, &nobj, &npend);
      fprintf(stderr,
              "mooncake-master[%s]: capacity %llu used %llu objects %llu pending %llu "
              "segments %u clients %llu evicted %llu expired clients %llu\n",
              m->cfg.cluster_id, (unsigned long long)atomic_load(&m->capacity),
              (unsigned long long)mcs_used(m), (unsigned long long)nobj,
              (unsigned long long)npend, nsegs,
              (unsigned long long)atomic_load(&m->nclients),
              (unsigned long long)atomic_load(&m->evicted),
              (unsigned long long)atomic_load(&m->expired_clients));
    }
  }
  return NULL;
}

int mcs_master_start(mcs_master *m) {
  if (pthread_create(&m->evict_thr, NULL, evict_main, m) != 0)
    return MC_ENOMEM;
  if (pthread_create(&m->monitor_thr, NULL, monitor_main, m) != 0) {
    atomic_store(&m->stop, 1);
    pthread_cond_broadcast(&m->wake);
    pthread_join(m->evict_thr, NULL);
    return MC_ENOMEM;
  }
  m->threads_started = 1;
  return 0;
}

void mcs_master_destroy(mcs_master *m) {
  if (!m)
    return;
  if (m->threads_started) {
    pthread_mutex_lock(&m->wake_mu);
    atomic_store(&m->stop, 1);
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->wake_mu);
    pthread_join(m->evict_thr, NULL);
    pthread_join(m->monitor_thr, NULL);
  }
  /* Tasks and trims, objects (they hold segment references), then
   * segments. */
  mcs_offload_fini(m);
  for (int i = 0; i < MCS_SHARDS; i++) {
    mcs_shard *sh = &m->shards[i];
    for (mcs_deferred *d = sh->deferred, *nx; d; d = nx) {
      nx = d->next;
      for (int r = 0; r < d->nrep; r++)
        mcs_seg_unref(d->rep[r].seg);
      free(d);
    }
    for (uint32_t b = 0; sh->tab && b <= sh->mask; b++)
      for (mcs_obj *o = sh->tab[b], *nx; o; o = nx) {
        nx = o->hnext;
        for (int r = 0; r < o->nrep; r++)
          mcs_seg_unref(o->rep[r].seg);
        if (o->has_disk)
          mcs_seg_unref(o->disk.seg);
        if (o->off_id)
          mcs_seg_unref(o->off_rep.seg);
        if (o->pend) {
          for (int r = 0; r < o->pend->nrep; r++)
            mcs_seg_unref(o->pend->rep[r].seg);
          free(o->pend);
        }
        free(o->rep);
        free(o);
      }
    free(sh->tab);
    pthread_mutex_destroy(&sh->mu);
  }
  for (uint32_t i = 0; i < m->nsegs; i++)
    mcs_seg_unref(m->segs[i]);
  free(m->segs);
  for (int i = 0; i < MCS_CLIENT_SHARDS; i++) {
    for (mcs_client *c = m->clients[i].head, *nx; c; c = nx) {
      nx = c->next;
      free(c);
    }
    pthread_mutex_destroy(&m->clients[i].mu);
  }
  pthread_rwlock_destroy(&m->seg_lock);
  pthread_mutex_destroy(&m->evict_mu);
  pthread_mutex_destroy(&m->off_mu);
  pthread_mutex_destroy(&m->wake_mu);
  pthread_cond_destroy(&m->wake);
  free(m);
}
