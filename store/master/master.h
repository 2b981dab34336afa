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
  int disk; /* an SSD tier: only offloaded objects go there */
  pthread_mutex_t mu; /* guards alloc, dying */
  mcs_alloc *alloc;
  int dying;
  atomic_uint refs;
  /* the allocator's usage, stored under mu, read without it (summed by
   * mcs_used: no counter shared by all puts) */
  atomic_uint_fast64_t used;
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
  uint8_t promote; /* PromoteStart: the replicas join the disk one */
  mcs_rep rep[MCS_MAX_REPLICAS];
} mcs_pending;

typedef struct mcs_obj {
  struct mcs_obj *hnext;
  struct mcs_obj *lru_prev, *lru_next;   /* linked while complete (nrep > 0) */
  struct mcs_obj *pend_prev, *pend_next; /* linked while pend != NULL */
  uint64_t hash, size;
  uint64_t last_access_ns, lease_until_ns, soft_pin_until_ns;
  mcs_rep *rep;       /* memory replicas */
  mcs_pending *pend;
  uint64_t version;   /* from m->version_seq at each new value */
  mcs_rep disk;       /* the disk replica, when has_disk */
  mcs_rep off_rep;    /* the disk range being written, when off_id != 0 */
  uint64_t off_id;    /* the offload task under way (0: none) */
  uint8_t nrep, hard_pin, has_disk;
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

/* An offload task queued for (or handed to) a disk segment's owner. */
typedef struct mcs_task {
  struct mcs_task *next;
  uint64_t id, hash, queued_ns, handed_ns; /* handed_ns 0: not handed out */
  uint8_t owner[MCS_CLIENT_ID_LEN];
  uint32_t klen;
  char key[];
} mcs_task;

/* A freed disk range waiting for its owner to release the file space. */
typedef struct mcs_trim {
  struct mcs_trim *next;
  uint64_t id, handed_ns;
  mcs_rep rep;
} mcs_trim;

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

  atomic_uint_fast64_t capacity, nclients;
  /* SSD tier (offload.c) */
  atomic_uint_fast64_t disk_capacity, offloaded, pending_offloads, version_seq;
  atomic_uint_fast64_t pending_offload_bytes; /* memory an offload under way will free */
  atomic_uint ndisk; /* disk segments mounted */
  pthread_mutex_t off_mu; /* guards the lists below; taken after a shard lock */
  mcs_task *tasks;
  mcs_trim *trims;
  uint64_t next_id;
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
  int disk;   /* on a disk segment */
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
/* As mcs_mount; disk != 0 mounts an SSD tier segment (NOT_SUPPORTED when
 * the master runs with --enable_offload=false). */
int mcs_mount_ex(mcs_master *m, const uint8_t *cid, const uint8_t *sid, const char *name,
                 const char *host, const char *protocol, uint64_t base, uint64_t size,
                 int disk);
int mcs_unmount(mcs_master *m, const uint8_t *cid, const uint8_t *sid);
void mcs_seg_unref(mcs_segment *s);
void mcs_reps_release(mcs_rep_out *r, int n);
/* Chooses and reserves up to want replicas of size bytes (memory
 * segments); returns how many. */
int mcs_place(mcs_master *m, const mcs_put_cfg *cfg, uint64_t size, mcs_rep *out);
/* Reserves size bytes in a disk segment; 0 or -1 when none has room. */
int mcs_place_disk(mcs_master *m, uint64_t size, mcs_rep *out);
/* Frees a replica's space.  A disk range is not reusable at once: it goes
 * to the trim list until its owner released the file space. */
void mcs_rep_free(mcs_master *m, mcs_rep *r);
/* Returns the range to its allocator now (a trim acknowledged). */
void mcs_rep_free_now(mcs_master *m, mcs_rep *r);
/* Bytes reserved in the mounted memory segments (disk ones: disk != 0). */
uint64_t mcs_used(mcs_master *m);
uint64_t mcs_disk_used(mcs_master *m);
/* mcs_used less what the offloads under way will free: eviction aims at
 * this, so it does not queue more while copies are in flight. */
uint64_t mcs_used_net(mcs_master *m);
/* Objects and pending puts (each shard locked in turn). */
void mcs_counts(mcs_master *m, uint64_t *objects, uint64_t *pending);
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
/* As mcs_get_replicas, also giving the value's version.  Memory replicas
 * come first, the disk replica (if any) last. */
int mcs_get_replicas_v(mcs_master *m, const char *key, size_t klen, mcs_rep_out *out,
                       int *nout, uint64_t *version);
/* PromoteStart: memory replicas for an object only on disk, as a pending
 * put of cid finished by mcs_put_end/mcs_put_revoke. */
int mcs_promote_start(mcs_master *m, const uint8_t *cid, const char *key, size_t klen,
                      uint64_t version, const mcs_put_cfg *cfg, mcs_rep_out *out, int *nout);
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

/* ---- SSD tier (offload.c; the object side in objects.c) ---- */
/* Queues task id for key (called with its shard locked). */
void mcs_offload_queue(mcs_master *m, uint64_t id, uint64_t hash, const char *key,
                       size_t klen, const uint8_t *owner);
/* The object side of a task: describes its source and target (0), or says
 * it is stale (-1). */
int mcs_offload_describe(mcs_master *m, uint64_t id, uint64_t hash, const char *key,
                         size_t klen, mcs_rep_out *src, mcs_rep_out *dst);
/* Ends task id: ok records the disk replica and frees the memory ones;
 * else the disk range is given back. */
void mcs_offload_finish(mcs_master *m, uint64_t id, uint64_t hash, const char *key,
                        size_t klen, int ok);
/* A task handed to a client. */
typedef struct mcs_task_out {
  uint64_t id;
  char *key; /* malloc'd */
  mcs_rep_out src, dst;
} mcs_task_out;
/* A trim handed to a client (holds a segment reference). */
typedef struct mcs_trim_out {
  uint64_t id;
  mcs_segment *seg;
  uint64_t addr, size;
} mcs_trim_out;
/* One OffloadSync of client cid: applies done/failed/trimmed, then hands
 * out up to max tasks and max trims of cid's disk segments. */
int mcs_offload_sync(mcs_master *m, const uint8_t *cid, const uint64_t *done, size_t ndone,
                     const uint64_t *failed, size_t nfailed, const uint64_t *trimmed,
                     size_t ntrimmed, uint32_t max, mcs_task_out *tasks, int *ntasks,
                     mcs_trim_out *trims, int *ntrims);
void mcs_task_out_release(mcs_task_out *t, int n);
void mcs_trim_out_release(mcs_trim_out *t, int n);
/* Fails tasks older than the offload timeout, drops trims of gone
 * segments (monitor). */
void mcs_offload_expire(mcs_master *m);
/* Frees the lists (destroy). */
void mcs_offload_fini(mcs_master *m);

#endif
