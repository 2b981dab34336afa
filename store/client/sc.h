/* Internals of libmooncake-store (store/client): the handle, the master
 * calls (sc_master.c), the data movement (sc_xfer.c) and errors (sc_err.c).
 * Uses only public headers (mooncake/engine.h, store.h) and the RPC
 * library. */
#ifndef MC_STORE_CLIENT_SC_H
#define MC_STORE_CLIENT_SC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mooncake/engine.h"
#include "mooncake/store.h"

#if defined(__GNUC__)
#define SC_FMT_(a, b) __attribute__((format(printf, a, b)))
#else
#define SC_FMT_(a, b)
#endif

/* One replica: a buffer of `size` bytes at `addr` in segment `segment`. */
typedef struct sc_replica {
  char segment[MC_NAME_MAX];
  uint64_t addr, size;
  int disk; /* on an SSD tier */
} sc_replica;

/* One object's answer from PutStart or GetReplicaList. */
typedef struct sc_obj {
  int err;          /* MC_STORE_* for this key */
  uint64_t size;    /* value length */
  uint64_t lease_ttl_ms;
  uint64_t version; /* GetReplicaList's */
  uint32_t n;       /* replicas */
  sc_replica r[MC_STORE_MAX_REPLICAS];
} sc_obj;

/* One registered user buffer (mc_store_register_buffer). */
typedef struct sc_buf {
  uintptr_t base;
  size_t len;
} sc_buf;

/* An opened peer segment, kept for the handle's life. */
typedef struct sc_seg {
  char name[MC_NAME_MAX];
  mc_segment *seg;
} sc_seg;

typedef struct sc_master sc_master;

struct mc_store {
  mc_engine *engine;
  char seg_name[MC_NAME_MAX];
  char hostname[MC_NAME_MAX];
  char protocol[32];
  int rpc_timeout_ms;
  int xfer_timeout_ms;
  /* The global segment contributed to the pool (NULL when size 0). */
  void *seg_base;
  uint64_t seg_size;
  int seg_shared; /* allocated with mc_alloc_shared */
  uint8_t client_id[16], segment_id[16];
  char token[257]; /* shared secret for the master, or "" */
  size_t token_len;
  /* Staging buffer, cut into nslots slots of slot_size bytes. */
  void *stage;
  uint64_t stage_size, slot_size;
  uint32_t nslots;
  uint64_t slot_free; /* bitmask of free slots */
  pthread_mutex_t slot_mu;
  pthread_cond_t slot_cv;
  /* Registered user buffers and opened segments. */
  pthread_mutex_t mu;
  sc_buf *bufs;
  uint32_t nbufs, capbufs;
  sc_seg *segs;
  uint32_t nsegs, capsegs;
  /* Master connection and the ping thread. */
  sc_master *master;
  pthread_t pinger;
  int pinger_started;
  pthread_mutex_t ping_mu;
  pthread_cond_t ping_cv;
  int stop;
  atomic_uint remounts; /* remounts done (tests read it through logs) */
  /* SSD tier (sc_ssd.c); ssd_mode 0: none. */
  int ssd_mode;            /* SC_SSD_FILE or SC_SSD_MMAP */
  int ssd_fd;
  char ssd_path[4096];
  void *ssd_base;          /* the registered address (file range or mapping) */
  uint64_t ssd_size;
  uint8_t ssd_segment_id[16];
  int promote_on_hit;
  pthread_t ssd_thr;
  int ssd_thr_started;
  /* Held by the worker for each round (sync, copies, trims) and by the
   * ping thread while it empties the tier and remounts it, so no round
   * mixes ranges of the old and the new master. */
  pthread_mutex_t ssd_mu;
  int ssd_forget; /* under ssd_mu: drop reports meant for the old master */
  uint64_t ssd_view; /* under ssd_mu: the master view the tier's ranges belong to */
  atomic_uint_fast64_t n_read_mem, n_read_disk, n_promoted, n_offloaded, n_offload_failed,
      n_trimmed;
};

#define SC_SSD_FILE 1
#define SC_SSD_MMAP 2

/* ---- errors (sc_err.c) ---- */
/* Sets this thread's last-error line (fmt, then " (NAME)"); returns code. */
int sc_fail(int code, const char *fmt, ...) SC_FMT_(2, 3);
/* MC_STORE_* for an engine MC_E* code; transfer != 0 for data movement
 * (else the master RPC). */
int sc_from_mc(int mc_err, int transfer);

/* ---- SSD tier (sc_ssd.c) ---- */
/* Checks the directory, creates the tier file and registers it (no
 * master call yet).  0 or MC_STORE_INVALID_PARAMS/NOT_SUPPORTED/... */
int sc_ssd_open(mc_store *s, const char *dir, uint64_t size);
/* Remounts (scm_mount) after NEED_REMOUNT or CLIENT_NOT_FOUND.  When the
 * master's view changed since the tier was mounted (a restarted master
 * kept none of its ranges) the whole file's space is released first; the
 * ping thread and a put may both remount for one restart: only the first
 * empties the tier. */
int sc_ssd_remount(mc_store *s);
/* Starts the offload worker (after the mount). */
int sc_ssd_start(mc_store *s);
/* Stops the worker (before the unmount). */
void sc_ssd_stop(mc_store *s);
/* Unregisters, closes and deletes the file. */
void sc_ssd_close(mc_store *s);
/* promotion_on_hit: writes value (size bytes at src; registered when
 * zero_copy) of key, read from its disk replica at version, back into
 * memory.  Best effort: 0 or an error, no last-error change wanted by the
 * caller's get. */
int sc_ssd_promote(mc_store *s, const char *key, uint64_t version, const void *src,
                   uint64_t size, int zero_copy);

/* ---- master (sc_master.c) ---- */
int scm_open(mc_store *s, const char *target);
void scm_close(mc_store *s);
/* Rebuilds the channel to the master (after pings failing in a row). */
void scm_reset(mc_store *s);
/* MountSegment (remount: ReMountSegment). */
int scm_mount(mc_store *s, int remount);
int scm_unmount(mc_store *s);
/* Ping: *need_remount is set when the master asks for a remount. */
int scm_ping(mc_store *s, int *need_remount);
/* The master's view from the last Ping answer. */
uint64_t scm_view(mc_store *s);
/* PutStart/UpsertStart for n keys: out[i] gets the replicas to write or
 * the key's error.  Returns 0 or the error of the whole call. */
int scm_put_start(mc_store *s, int upsert, const char *const *keys,
                  const uint64_t *sizes, uint32_t n,
                  const mc_store_replicate_config *cfg, sc_obj *out);
/* PutEnd/UpsertEnd (ok != 0) or PutRevoke/UpsertRevoke for n keys; res[i]
 * gets each key's result (may be NULL). */
int scm_put_finish(mc_store *s, int upsert, int ok, const char *const *keys,
                   uint32_t n, int *res);
/* GetReplicaList for n keys. */
int scm_get_replicas(mc_store *s, const char *const *keys, uint32_t n, sc_obj *out);
/* ExistKey for n keys: res[i] 1, 0 or an error. */
int scm_exist(mc_store *s, const char *const *keys, uint32_t n, int *res);
int scm_remove(mc_store *s, const char *key, int force);
int64_t scm_remove_regex(mc_store *s, const char *regex, int force);
int64_t scm_remove_all(mc_store *s, int force);
int64_t scm_list(mc_store *s, const char *regex, uint32_t limit, mc_store_list_fn fn,
                 void *arg);
int scm_stats(mc_store *s, mc_store_stats *st);
/* GetStats' SSD tier figures. */
int scm_tier_stats(mc_store *s, mc_store_tier_stats *st);
/* Mounts the SSD tier (disk segment). */
int scm_mount_disk(mc_store *s);
int scm_unmount_disk(mc_store *s);
/* One task of an OffloadSync answer. */
typedef struct sc_task {
  uint64_t id;
  sc_replica src, dst;
} sc_task;
typedef struct sc_trim {
  uint64_t id, addr, size;
} sc_trim;
/* OffloadSync: reports done/failed/trimmed ids, receives up to max tasks
 * and trims (*ntasks, *ntrims). */
int scm_offload_sync(mc_store *s, const uint64_t *done, size_t ndone, const uint64_t *failed,
                     size_t nfailed, const uint64_t *trimmed, size_t ntrimmed, uint32_t max,
                     sc_task *tasks, uint32_t *ntasks, sc_trim *trims, uint32_t *ntrims);
/* PromoteStart: the memory replicas to write (as PutStart). */
int scm_promote_start(mc_store *s, const char *key, uint64_t version, sc_obj *out);

/* ---- data movement (sc_xfer.c) ---- */
/* A staging slot (blocks until one is free) and its release. */
void *sc_slot_get(mc_store *s);
void sc_slot_put(mc_store *s, void *slot);
/* Non-zero if [p, p+len) lies in a buffer registered with the engine
 * (staging, segment or a user buffer). */
int sc_registered(mc_store *s, const void *p, size_t len);
/* Writes len bytes at src (registered unless every replica is local) to
 * the replicas of o at offset off.  Returns 0 or MC_STORE_TRANSFER_FAIL. */
int sc_write(mc_store *s, const sc_obj *o, uint64_t off, const void *src,
             uint64_t len);
/* Reads len bytes at offset off of replica r into dst (registered unless
 * the replica is local). */
int sc_read(mc_store *s, const sc_replica *r, uint64_t off, void *dst, uint64_t len);
/* The index of the replica to read: local segment first, then same host
 * (name shares the host part), then the first. */
uint32_t sc_pick(mc_store *s, const sc_obj *o);
/* Non-zero if replica r lies in this client's own segment. */
int sc_is_local(mc_store *s, const sc_replica *r);
void sc_segs_close(mc_store *s);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t sc_now_ms(void);
/* Checks a key: 0 or MC_STORE_INVALID_KEY (with the last error set). */
int sc_check_key(const char *op, const char *key);

#endif
