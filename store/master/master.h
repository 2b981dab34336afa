/* The master's state and operations, independent of the RPC layer
 * (service.c turns requests into these calls).
 *
 * Concurrency (no global lock on the hot path):
 *  - objects live in MCS_SHARDS shards, each a hash table + LRU list +
 *    pending-put list under its own mutex; a key's operations lock only
 *    its shard;
 *  - segments sit in a registry under a read-write lock, taken for
 *    reading by placement and for writing only by mount/unmount; each
 *    segment's allocator has its own mutex;
 *  - clients (liveness) sit in MCS_CLIENT_SHARDS shards;
 *  - usage counters are atomics.
 * Lock order: object shard -> segment registry (read) -> segment mutex.
 * Nothing takes a shard lock while holding the registry or a segment.
 *
 * Lifetime of a segment: the registry holds one reference, every replica
 * (complete, pending or awaiting release) one more, and a reader packing
 * replica descriptors one while it packs; unmount removes it from the
 * registry, marks it dying (its allocator is dropped: frees become no-ops),
 * sweeps every replica off it, and the last reference frees it. */
#ifndef MCS_MASTER_H
#define MCS_MASTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alloc.h"
#include "master_config.h"
#include "store_proto.h"

#define MCS_SHARDS 1024
#define MCS_CLIENT_SHARDS 64
#define MCS_NAME_BUCKETS 4096

typedef struct mcs_segment {
  uint8_t id[MCS_CLIENT_ID_LEN];
  uint8_t cid[MCS_CLIENT_ID_LEN]; /* owner */
  char name[MCS_MAX_NAME_LEN + 1];
  char host[MCS_MAX_NAME_LEN + 1];
  char protocol[MCS_MAX_NAME_LEN + 1];
  uint64_t base, size;
  pthread_mutex_t mu; /* guards alloc, dying */
  mcs_alloc *alloc;
  int dying;
  atomic_uint refs;
  struct mcs_segment *name_next; /* registry's by-name chain */
} mcs_segment;

typedef struct mcs_rep {
  mcs_segment *seg;
  mcs_block *blk;
  uint64_t off;
} mcs_rep;

typedef struct mcs_pending {
  uint8_t cid[MCS_CLIENT_ID_LEN];
  uint64_t start_ns, size, soft_pin_ms;
  uint8_t nrep, upsert, hard_pin, soft_pin;
  mcs_rep rep[MCS_MAX_REPLICAS];
} mcs_pending;

typedef struct mcs_obj {
  struct mcs_obj *hnext;
  struct mcs_obj *lru_prev, *lru_next;   /* linked while complete (nrep > 0) */
  struct mcs_obj *pend_prev, *pend_next; /* linked while pend != NULL */
  uint64_t hash, size;
  uint64_t last_access_ns, lease_until_ns, soft_pin_until_ns;
  mcs_rep *rep;
  mcs_pending *pend;
  uint8_t nrep, hard_pin;
  uint32_t klen;
  char key[];
} mcs_obj;

/* Replicas whose space is freed later: the old value of an upsert (until
 * its readers' lease ends), a pre-empted or abandoned put (until its
 * writer can no longer be writing). */
typedef struct mcs_deferred {
  struct mcs_deferred *next;
  uint64_t at_ns;
  uint8_t nrep;
  mcs_rep rep[MCS_MAX_REPLICAS];
} mcs_deferred;

typedef struct mcs_shard {
  pthread_mutex_t mu;
  mcs_obj **tab;
  uint32_t mask, count;
  mcs_obj *lru_head, *lru_tail; /* head: least recently used */
  mcs_obj *pend_head;
  mcs_deferred *deferred;
  uint32_t npend;
} __attribute__((aligned(64))) mcs_shard;

typedef struct mcs_client {
  struct mcs_client *next;
  uint8_t id[MCS_CLIENT_ID_LEN];
  uint64_t last_seen_ns;
  int need_remount; /* told NEED_REMOUNT, no ReMountSegment since */
} mcs_client;

typedef struct mcs_client_shard {
  pthread_mutex_t mu;
  mcs_client *head;
} __attribute__((aligned(64))) mcs_client_shard;

typedef struct mcs_master {
  mcs_master_config cfg;
  uint64_t view_version;
  uint8_t token[MCS_MAX_TOKEN_LEN];
  size_t token_len; /* 0: no token required */

  mcs_shard shards[MCS_SHARDS];
  mcs_client_shard clients[MCS_CLIENT_SHARDS];

  pthread_rwlock_t seg_lock;
  mcs_segment **segs;
  uint32_t nsegs, segcap;
  mcs_segment *by_name[MCS_NAME_BUCKETS];

  atomic_uint_fast64_t capacity, used, nobjects, npending, nclients;
  atomic_uint_fast64_t evicted, expired_clients;

  /* background: eviction (10 ms), liveness + releases (100 ms) */
  pthread_t evict_thr, monitor_thr;
  int threads_started;
  atomic_int stop;
  pthread_mutex_t evict_mu; /* one eviction round at a time */
  pthread_mutex_t wake_mu;
  pthread_cond_t wake;
} mcs_master;

/* Placement and retention of one put (from ReplicateConfig). */
typedef struct mcs_put_cfg {
  uint32_t replica_num;
  int soft_pin, hard_pin;
  uint64_t soft_pin_ttl_ms;
  const char *const *preferred;
  size_t npreferred;
} mcs_put_cfg;

/* A replica handed to a caller: holds a reference on seg until
 * mcs_reps_release. */
typedef struct mcs_rep_out {
  mcs_segment *seg;
  uint64_t addr, size;
  int status; /* MCSTORE__REPLICA_STATUS__* */
} mcs_rep_out;

uint64_t mcs_now_ns(void);

/* Whether at least age ns passed from t to now.  Another thread may have
 * stamped t after this one read now: such a t is not old (an unsigned
 * now - t would wrap to "very old"). */
static inline int mcs_older(uint64_t t, uint64_t now, uint64_t age) {
  return now >= t && now - t >= age;
}

int mcs_master_create(const mcs_master_config *cfg, mcs_master **out);
/* Starts the eviction and monitor threads. */
int mcs_master_start(mcs_master *m);
void mcs_master_destroy(mcs_master *m);

/* ---- clients and segments (segments.c) ---- */
int mcs_client_known(mcs_master *m, const uint8_t *cid);
/* Registers or refreshes a client; *status gets NEED_REMOUNT when the
 * client is new to this master but has seen a view before (restart or
 * expiry: its segments are gone), and keeps getting it until the client
 * calls ReMountSegment; CLIENT_OK otherwise. */
void mcs_ping(mcs_master *m, const uint8_t *cid, uint64_t seen_view, int *status);
/* Registers or refreshes a client; remounted: it just sent ReMountSegment. */
void mcs_client_touch(mcs_master *m, const uint8_t *cid, int remounted);
int mcs_mount(mcs_master *m, const uint8_t *cid, const uint8_t *sid, const char *name,
              const char *host, const char *protocol, uint64_t base, uint64_t size);
int mcs_unmount(mcs_master *m, const uint8_t *cid, const uint8_t *sid);
void mcs_seg_unref(mcs_segment *s);
void mcs_reps_release(mcs_rep_out *r, int n);
/* Chooses and reserves up to want replicas of size bytes; returns how many. */
int mcs_place(mcs_master *m, const mcs_put_cfg *cfg, uint64_t size, mcs_rep *out);
void mcs_rep_free(mcs_master *m, mcs_rep *r);
/* Size of the largest mounted segment (0 when none). */
uint64_t mcs_largest_segment(mcs_master *m);
/* Expires clients silent past client_ttl (monitor). */
void mcs_expire_clients(mcs_master *m);

/* ---- objects (objects.c) ---- */
int mcs_put_start(mcs_master *m, const uint8_t *cid, const char *key, size_t klen,
                  uint64_t size, const mcs_put_cfg *cfg, int upsert, mcs_rep_out *out,
                  int *nout);
int mcs_put_end(mcs_master *m, const uint8_t *cid, const char *key, size_t klen);
int mcs_put_revoke(mcs_master *m, const uint8_t *cid, const char *key, size_t klen);
int mcs_get_replicas(mcs_master *m, const char *key, size_t klen, mcs_rep_out *out,
                     int *nout);
int mcs_exist(mcs_master *m, const char *key, size_t klen, int *exists);
int mcs_remove(mcs_master *m, const char *key, size_t klen, int force);
/* Removes matching (regex) or all (regex NULL) removable objects. */
int mcs_remove_many(mcs_master *m, const char *regex, int force, uint64_t *removed);
/* Keys (and sizes) matching regex ("" all), at most limit. */
typedef int (*mcs_key_fn)(void *arg, const char *key, size_t klen, uint64_t size);
int mcs_list(mcs_master *m, const char *regex, mcs_key_fn fn, void *arg);
/* Drops every replica on the given segments (already out of the registry)
 * and revokes the pending puts of the given clients. */
void mcs_sweep(mcs_master *m, mcs_segment *const *segs, int nsegs,
               const uint8_t (*cids)[MCS_CLIENT_ID_LEN], int ncids);
/* Frees due deferred replicas, reclaims puts older than the release
 * timeout (monitor). */
void mcs_reclaim(mcs_master *m);
/* One eviction round if usage passes the watermark, or need bytes (>0)
 * must be made free; returns bytes freed. */
uint64_t mcs_evict(mcs_master *m, uint64_t need);

#endif
