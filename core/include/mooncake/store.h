/* mooncake/store.h - the Mooncake Store client API (libmooncake-store).
 *
 * Mooncake Store pools the spare DRAM of a cluster into one distributed
 * key/value cache.  A master (mooncake-master) keeps object metadata only;
 * every client may contribute a "global segment" of its own memory to the
 * pool, and bytes move client to client through the Transfer Engine
 * (mooncake/engine.h).  A handle made by mc_store_create
 *   - creates its own engine (transport "tcp" by default, plus "shm" for
 *     peers on the same host when that plugin is present),
 *   - allocates global_segment_size bytes, registers them with the engine
 *     and mounts them with the master (MountSegment); from then on other
 *     clients read and write objects placed there, served by the engine's
 *     transport threads, for as long as the handle lives,
 *   - allocates and registers a local staging buffer of local_buffer_size
 *     bytes, through which the copying calls (put, get) move data,
 *   - pings the master every second; when a restarted master answers
 *     NEED_REMOUNT the handle mounts its segment again by itself.
 *
 * Objects: a key (1..MC_STORE_KEY_MAX bytes, no NUL) maps to an immutable
 * value of 1..2^40 bytes stored as one or more replicas, each one
 * contiguous buffer in one segment, replicas of one object on distinct
 * segments.  A put is PutStart (the master reserves space) + transfers +
 * PutEnd; a reader never sees a value before its PutEnd.  A get asks the
 * master for the replicas (GetReplicaList, which grants a read lease of
 * --default_kv_lease_ttl), reads a local replica first (same segment:
 * memcpy; same host: the shm transport when loaded), else any replica over
 * the network, and fails with MC_STORE_LEASE_EXPIRED (delivering no data)
 * when the lease ran out before the read finished, since the space may
 * then already hold another object.
 *
 * Errors: every call returns 0 (or a count/size, where documented) or one
 * of the negative MC_STORE_* codes below, whose values are upstream
 * Mooncake's ErrorCode values so that logs and tools read the same.
 * mc_store_errname / mc_store_strerror give each its name and text, and
 * mc_store_last_error() the calling thread's one-line reason for the last
 * failure (e.g. "put 'k': master 127.0.0.1:50051: UNAVAILABLE: ...").
 *
 * Threads: every call may be made from any thread, concurrently, on one
 * handle, except mc_store_destroy.
 *
 * Environment: MC_STORE_TRANSPORTS overrides the engine's transport list
 * ("tcp,shm" by default for protocol tcp, falling back to "tcp" when the
 * shm plugin is missing); MC_STORE_SHARED_SEGMENT=1 allocates the global
 * segment from the shm transport's pool (mc_alloc_shared: same-host peers
 * then copy with memcpy, but each maps and prefaults the whole pool) instead
 * of plain memory, which is prefaulted at setup so that puts into it take
 * no page faults; MC_STORE_TOKEN_FILE as mc_store_config.token_file; the
 * engine's own MC_* variables (mooncake/engine.h) apply as well.
 */
#ifndef MOONCAKE_STORE_H
#define MOONCAKE_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions libmooncake-store exports (version node
 * MOONCAKE_STORE_0, store/client/libmooncake-store.map).  A macro of its
 * own, not MC_API: libmooncake must not export these. */
#ifndef MC_STORE_API
#if defined(__GNUC__)
#define MC_STORE_API __attribute__((visibility("default")))
#else
#define MC_STORE_API
#endif
#endif

/* Longest key, in bytes. */
#define MC_STORE_KEY_MAX 4095
/* Most preferred segments one replicate config may name. */
#define MC_STORE_MAX_PREFERRED 16
/* Longest segment name, with its NUL. */
#define MC_STORE_NAME_MAX 256
/* Most replicas of one object. */
#define MC_STORE_MAX_REPLICAS 8

/* X(name, value, text).  Values are upstream's ErrorCode values; append
 * only. */
#define MC_STORE_ERROR_TABLE(X)                                                \
  X(MC_STORE_OK, 0, "success")                                                 \
  X(MC_STORE_INTERNAL_ERROR, -1, "internal error")                             \
  X(MC_STORE_BUFFER_OVERFLOW, -10, "buffer too small for the value")           \
  X(MC_STORE_SEGMENT_NOT_FOUND, -101, "segment not found")                     \
  X(MC_STORE_SEGMENT_ALREADY_EXISTS, -102, "segment already mounted")          \
  X(MC_STORE_CLIENT_NOT_FOUND, -103, "client not known to the master")         \
  X(MC_STORE_NO_AVAILABLE_HANDLE, -200, "no space left in the pool")           \
  X(MC_STORE_INVALID_VERSION, -300, "invalid version")                         \
  X(MC_STORE_INVALID_KEY, -400, "invalid key")                                 \
  X(MC_STORE_WRITE_FAIL, -500, "write failed")                                 \
  X(MC_STORE_INVALID_PARAMS, -600, "invalid parameters")                       \
  X(MC_STORE_ILLEGAL_CLIENT, -601, "illegal client")                           \
  X(MC_STORE_INVALID_WRITE, -700, "invalid write")                             \
  X(MC_STORE_INVALID_READ, -701, "invalid read")                               \
  X(MC_STORE_INVALID_REPLICA, -702, "invalid replica")                         \
  X(MC_STORE_REPLICA_IS_NOT_READY, -703, "replica not ready")                  \
  X(MC_STORE_OBJECT_NOT_FOUND, -704, "object not found")                       \
  X(MC_STORE_OBJECT_ALREADY_EXISTS, -705, "object already exists")             \
  X(MC_STORE_OBJECT_HAS_LEASE, -706, "object has a read lease")                \
  X(MC_STORE_LEASE_EXPIRED, -707, "read lease expired before the read ended")  \
  X(MC_STORE_TRANSFER_FAIL, -800, "transfer failed")                           \
  X(MC_STORE_CHECKSUM_MISMATCH, -801, "checksum mismatch")                     \
  X(MC_STORE_RPC_FAIL, -900, "RPC to the master failed")                       \
  X(MC_STORE_RPC_TIMEOUT, -901, "RPC to the master timed out")                 \
  X(MC_STORE_UNAVAILABLE_IN_CURRENT_STATUS, -1010, "unavailable now")          \
  X(MC_STORE_NOT_SUPPORTED, -1012, "not supported")

#define MC_STORE_ERROR_ENUM_(name, value, text) name = value,
enum mc_store_error { MC_STORE_ERROR_TABLE(MC_STORE_ERROR_ENUM_) };
#undef MC_STORE_ERROR_ENUM_

/* The code's name without the prefix ("OBJECT_NOT_FOUND"), "UNKNOWN" for
 * other values.  Never NULL. */
MC_STORE_API const char *mc_store_errname(int err);

/* The code's static text ("object not found"), "unknown error" for other
 * values.  Never NULL. */
MC_STORE_API const char *mc_store_strerror(int err);

/* The one-line reason of the last call that failed on this thread
 * (naming the call, the key and what went wrong); "" before any failure.
 * Valid until the next failing call on this thread. */
MC_STORE_API const char *mc_store_last_error(void);

typedef struct mc_store mc_store;

/* Settings of mc_store_create.  Zero/NULL members take the default shown.
 * Set struct_size = sizeof(mc_store_config) (0: this version's size). */
typedef struct mc_store_config {
  uint32_t struct_size;
  /* This host's address as peers reach it ("127.0.0.1", "10.0.0.2", or
   * "host:port" to fix the engine's listener port).  Default
   * "127.0.0.1". */
  const char *local_hostname;
  /* Transfer Engine metadata: "p2p" (default, also "P2PHANDSHAKE"),
   * "etcd://h:p", "http://h:p/path". */
  const char *metadata;
  /* The master's "host:port".  Default "127.0.0.1:50051". */
  const char *master;
  /* Bytes this client contributes to the pool (0: none, a pure client).
   * Rounded up to 4 KiB. */
  uint64_t global_segment_size;
  /* Bytes of the registered staging buffer the copying calls use (0:
   * 16 MiB; values larger than the staging buffer move in pieces). */
  uint64_t local_buffer_size;
  /* Transport: "tcp" (default).  "rdma" and others name the plugin. */
  const char *protocol;
  /* Device names for the transport (RDMA NICs), or NULL. */
  const char *device;
  /* Milliseconds each master RPC may take (0: 5000). */
  int rpc_timeout_ms;
  /* File holding the shared secret of a master started with
   * --auth_token_file, or NULL (also $MC_STORE_TOKEN_FILE). */
  const char *token_file;
  /* SSD tier (see "SSD tier" below): a directory on local storage where
   * this client keeps objects the master evicts from memory, or NULL for
   * none.  It must exist and be writable, else mc_store_create fails with
   * MC_STORE_INVALID_PARAMS naming the directory and the reason. */
  const char *ssd_offload_dir;
  /* Bytes of the tier file (0: 1 GiB; rounded up to 4 KiB).  The file is
   * sparse: disk space is taken as objects land and given back when they
   * go. */
  uint64_t ssd_offload_size;
  /* Non-zero: a get served from a disk replica (no memory replica left)
   * puts the object back into memory (best effort; the get succeeds even
   * when the promotion does not). */
  int promotion_on_hit;
} mc_store_config;

/* Placement and pinning of one put.  NULL (or all zero) means: one
 * replica, no pin, no preference. */
typedef struct mc_store_replicate_config {
  uint32_t replica_num;   /* 0 means 1; at most MC_STORE_MAX_REPLICAS */
  int with_soft_pin;      /* evicted last (master's soft pin TTL) */
  int with_hard_pin;      /* never evicted; only a forced remove deletes it */
  /* Segment names to place replicas on first (mc_store_segment_name() of
   * the client whose memory is wanted, e.g. this client's own for
   * locality), or NULL. */
  const char *const *preferred_segments;
  uint32_t preferred_count; /* at most MC_STORE_MAX_PREFERRED */
} mc_store_replicate_config;

/* Connects to the master and creates a handle (see the top of this file).
 * Errors: MC_STORE_INVALID_PARAMS for a bad setting (mc_store_last_error
 * names it), MC_STORE_RPC_FAIL when the master cannot be reached (within
 * rpc_timeout_ms), MC_STORE_TRANSFER_FAIL when the engine cannot start
 * (its own reason is in the last error text), MC_STORE_INTERNAL_ERROR when
 * memory cannot be allocated.  *out is untouched on error. */
MC_STORE_API int mc_store_create(const mc_store_config *cfg, mc_store **out);

/* Stops pinging, unmounts the segment (the master drops the replicas it
 * held, objects with another replica stay readable; this waits at most
 * rpc_timeout_ms when the master does not answer), stops the engine and
 * frees everything.  Buffers registered with mc_store_register_buffer are
 * unregistered, not freed.  NULL is a no-op. */
MC_STORE_API void mc_store_destroy(mc_store *store);

/* This client's segment name (its engine's "host:port"), which is what
 * preferred_segments lists.  Valid until destroy. */
MC_STORE_API const char *mc_store_segment_name(const mc_store *store);

/* Pings the master now: 0 when it answers, MC_STORE_RPC_FAIL or
 * MC_STORE_RPC_TIMEOUT otherwise. */
MC_STORE_API int mc_store_health_check(mc_store *store);

/* ---- copying calls (any memory) ---- */

/* Stores size bytes at value under key.  MC_STORE_OBJECT_ALREADY_EXISTS if
 * the key holds a value (or a put of it is in progress);
 * MC_STORE_NO_AVAILABLE_HANDLE if the pool has no room for even one
 * replica; MC_STORE_INVALID_KEY for an empty key or one longer than
 * MC_STORE_KEY_MAX; MC_STORE_INVALID_PARAMS for size 0 or a NULL value;
 * MC_STORE_TRANSFER_FAIL when a replica could not be written (the put is
 * then revoked: nothing is stored).  Fewer replicas than asked is not an
 * error (best effort, at least one). */
MC_STORE_API int mc_store_put(mc_store *store, const char *key, const void *value,
                              size_t size, const mc_store_replicate_config *cfg);

/* As mc_store_put, but replaces the value of an existing key: readers of
 * the old value finish unharmed, later gets see the new one. */
MC_STORE_API int mc_store_upsert(mc_store *store, const char *key, const void *value,
                                 size_t size, const mc_store_replicate_config *cfg);

/* Reads key's value into buf (size bytes available).  Returns the value's
 * length (>= 1), or MC_STORE_OBJECT_NOT_FOUND, MC_STORE_BUFFER_OVERFLOW
 * (buf too small; nothing read; mc_store_get_size says how much is
 * needed), MC_STORE_LEASE_EXPIRED (the contents of buf are then
 * undefined), MC_STORE_TRANSFER_FAIL (no replica could be read). */
MC_STORE_API int64_t mc_store_get(mc_store *store, const char *key, void *buf,
                                  size_t size);

/* Reads key's value into a buffer malloc'd by the library (free it with
 * mc_store_free).  Returns 0 with *value and *size set, or the errors of
 * mc_store_get. */
MC_STORE_API int mc_store_get_alloc(mc_store *store, const char *key, void **value,
                                    size_t *size);

/* Frees a value from mc_store_get_alloc.  NULL is a no-op. */
MC_STORE_API void mc_store_free(void *value);

/* ---- zero-copy calls (memory registered with mc_store_register_buffer) ---- */

/* Registers [ptr, ptr+size) with the handle's engine, so put_from and
 * get_into move bytes straight from and to it.  MC_STORE_INVALID_PARAMS if
 * it overlaps a registered buffer. */
MC_STORE_API int mc_store_register_buffer(mc_store *store, void *ptr, size_t size);

/* Unregisters the buffer starting at ptr.  MC_STORE_INVALID_PARAMS if it
 * is not registered. */
MC_STORE_API int mc_store_unregister_buffer(mc_store *store, void *ptr);

/* As mc_store_put from registered memory, without the staging copy.
 * [ptr, ptr+size) must lie inside one registered buffer, else
 * MC_STORE_INVALID_PARAMS. */
MC_STORE_API int mc_store_put_from(mc_store *store, const char *key, const void *ptr,
                                   size_t size, const mc_store_replicate_config *cfg);

/* As mc_store_upsert from registered memory. */
MC_STORE_API int mc_store_upsert_from(mc_store *store, const char *key,
                                      const void *ptr, size_t size,
                                      const mc_store_replicate_config *cfg);

/* As mc_store_get into registered memory, without the staging copy.
 * Returns the bytes read or a negative code. */
MC_STORE_API int64_t mc_store_get_into(mc_store *store, const char *key, void *ptr,
                                       size_t size);

/* One piece of an object for mc_store_get_into_ranges. */
typedef struct mc_store_range {
  uint64_t offset; /* in the object */
  uint64_t len;    /* bytes */
  void *dst;       /* registered memory receiving them */
} mc_store_range;

/* Reads n ranges of key's value (one lease, one replica) into registered
 * memory.  Returns the total bytes read, MC_STORE_INVALID_PARAMS when a
 * range lies outside the value or its dst outside registered memory, or
 * the errors of mc_store_get. */
MC_STORE_API int64_t mc_store_get_into_ranges(mc_store *store, const char *key,
                                              const mc_store_range *ranges,
                                              uint32_t n);

/* ---- batch forms: one master round trip for all n keys ---- */

/* Puts n values (copying).  results[i] gets 0 or the key's error code.
 * Returns 0 when every key succeeded, else the first error. */
MC_STORE_API int mc_store_batch_put(mc_store *store, const char *const *keys,
                                    const void *const *values, const size_t *sizes,
                                    uint32_t n, const mc_store_replicate_config *cfg,
                                    int *results);

/* Puts n values from registered memory; results as mc_store_batch_put. */
MC_STORE_API int mc_store_batch_put_from(mc_store *store, const char *const *keys,
                                         const void *const *ptrs,
                                         const size_t *sizes, uint32_t n,
                                         const mc_store_replicate_config *cfg,
                                         int *results);

/* Gets n values (copying) into bufs[i] of sizes[i] bytes; results[i] gets
 * what mc_store_get would return for key i.  Returns 0 when every key was
 * read, else the first error. */
MC_STORE_API int mc_store_batch_get(mc_store *store, const char *const *keys,
                                    void *const *bufs, const size_t *sizes,
                                    uint32_t n, int64_t *results);

/* As mc_store_batch_get into registered memory. */
MC_STORE_API int mc_store_batch_get_into(mc_store *store, const char *const *keys,
                                         void *const *ptrs, const size_t *sizes,
                                         uint32_t n, int64_t *results);

/* ---- queries and removal ---- */

/* 1 if key holds a complete value, 0 if not, or a negative code. */
MC_STORE_API int mc_store_exist(mc_store *store, const char *key);

/* results[i] as mc_store_exist for keys[i].  Returns 0, or the error that
 * stopped the whole batch (an RPC failure). */
MC_STORE_API int mc_store_batch_exist(mc_store *store, const char *const *keys,
                                      uint32_t n, int *results);

/* The length of key's value, or a negative code. */
MC_STORE_API int64_t mc_store_get_size(mc_store *store, const char *key);

/* The segments holding key's complete replicas (names as
 * mc_store_segment_name gives them): up to max names into names[].
 * Returns the replica count (which may exceed max) or a negative code.
 * Grants a read lease, as a get does. */
MC_STORE_API int mc_store_replica_segments(mc_store *store, const char *key,
                                           char (*names)[MC_STORE_NAME_MAX], uint32_t max);

/* Removes key.  MC_STORE_OBJECT_HAS_LEASE while a reader holds a lease
 * (unless force), MC_STORE_OBJECT_NOT_FOUND if absent. */
MC_STORE_API int mc_store_remove(mc_store *store, const char *key, int force);

/* Removes every key matching the POSIX extended regular expression.
 * Returns how many were removed, or a negative code
 * (MC_STORE_INVALID_PARAMS for a bad expression). */
MC_STORE_API int64_t mc_store_remove_by_regex(mc_store *store, const char *regex,
                                              int force);

/* Removes every key (leased ones only with force).  Returns the count. */
MC_STORE_API int64_t mc_store_remove_all(mc_store *store, int force);

/* Listing callback: a key and its value's length.  Return non-zero to
 * stop. */
typedef int (*mc_store_list_fn)(void *arg, const char *key, uint64_t size);

/* Calls fn, on the calling thread, for at most limit (0: 1000) complete
 * keys matching the POSIX extended regular expression (NULL or "": all).
 * Returns the number of keys reported or a negative code.  Grants no
 * lease. */
MC_STORE_API int64_t mc_store_list(mc_store *store, const char *regex, uint32_t limit,
                                   mc_store_list_fn fn, void *arg);

/* Pool-wide figures from the master (mc-store ls, tests, benches). */
typedef struct mc_store_stats {
  uint64_t capacity;        /* bytes of all mounted segments */
  uint64_t used;            /* bytes reserved */
  uint64_t objects, segments, clients;
  uint64_t evicted_objects; /* since the master started */
  uint64_t expired_clients; /* since the master started */
  uint64_t pending_puts;
} mc_store_stats;

/* Fills *st from the master.  0 or MC_STORE_RPC_FAIL/RPC_TIMEOUT. */
MC_STORE_API int mc_store_stats_get(mc_store *store, mc_store_stats *st);

/* How many times this handle has remounted its segment after the master
 * answered NEED_REMOUNT (a restarted master). */
MC_STORE_API uint64_t mc_store_remount_count(const mc_store *store);

/* ---- SSD tier ----
 *
 * A handle created with ssd_offload_dir creates a sparse file
 * DIR/mc-ssd-<id>.tier of ssd_offload_size bytes (deleting the files of
 * handles that died without cleaning up: those nobody holds a lock on),
 * registers it with its engine as a file range (mc_register_file; a
 * transport serving MC_MEM_FILE, the nvmeof plugin, must be loaded) or,
 * where no loaded transport serves files, maps it (MAP_SHARED) and
 * registers the mapping as memory, and mounts it with the master as a disk
 * segment.  $MC_STORE_SSD_MODE=file|mmap forces one of the two (file fails
 * with MC_STORE_NOT_SUPPORTED when no transport serves files).
 *
 * When the master evicts an object it first asks such a client (in the
 * answer to the OffloadSync call the handle makes every 100 ms) to copy
 * the object to its file; once the copy is reported the object's memory is
 * freed and a disk replica recorded.  Gets read memory replicas first and
 * the disk replica when none is left (any client, through its engine);
 * with promotion_on_hit such a get writes the object back into memory.
 * Removing the object frees its range, and the owner punches a hole into
 * the file for it.  mc_store_destroy unmounts the tier: objects held only
 * there are gone (the file is deleted). */

/* Figures of the SSD tier: the pool's from the master, this handle's own
 * counters.  Set struct_size = sizeof(mc_store_tier_stats). */
typedef struct mc_store_tier_stats {
  uint32_t struct_size;
  /* pool (master) */
  uint64_t disk_capacity;     /* bytes of all mounted tiers */
  uint64_t disk_used;         /* bytes of them reserved */
  uint64_t offloaded_objects; /* memory evicted after a tier copy, since the master started */
  uint64_t pending_offloads;  /* objects being copied now */
  /* this handle */
  uint64_t reads_memory;      /* objects read from a memory replica */
  uint64_t reads_disk;        /* objects read from a disk replica */
  uint64_t promotions;        /* objects put back into memory after a disk read */
  uint64_t offloads_written;  /* objects this handle copied into its tier */
  uint64_t offloads_failed;   /* copies that failed (the object stayed in memory) */
  uint64_t trims;             /* freed ranges whose file space this handle released */
  int ssd_mode;               /* this handle's tier: 0 none, 1 file (mc_register_file), 2 mmap */
} mc_store_tier_stats;

/* Fills *st (members up to st->struct_size; 0 means the whole struct).
 * 0, MC_STORE_INVALID_PARAMS for NULL, or MC_STORE_RPC_FAIL/RPC_TIMEOUT. */
MC_STORE_API int mc_store_tier_stats_get(mc_store *store, mc_store_tier_stats *st);

/* Where key's complete replicas are: *memory and *disk receive the counts
 * (either may be NULL).  Grants a read lease, as a get does.  0 or a
 * negative code (MC_STORE_OBJECT_NOT_FOUND ...). */
MC_STORE_API int mc_store_replica_tiers(mc_store *store, const char *key, uint32_t *memory,
                                        uint32_t *disk);

#ifdef __cplusplus
}
#endif
#endif
