/* mooncake/kv.h - key/value API over the engine's metadata store.
 *
 * The layers above the transfer engine (the store's master election and its
 * P2P store index, the conductor) keep their own keys in the same store the
 * engine publishes its segment descriptors in, chosen by the engine's
 * `metadata` URL:
 *   etcd://host:port[,...]   everything below
 *   http://host:port/path    mooncake-metadata-server: everything but watch
 *                            (MC_ENOTSUP); leases are emulated by this
 *                            handle with per-key TTLs (see Leases)
 *   p2p (the default)        no shared store: mc_kv_open (and
 *                            mc_kv_open_url) fail with
 *                            MC_ENOTSUP ("kv needs a shared metadata store:
 *                            etcd:// or http://")
 *
 * Keys are namespaced: key K is stored as <prefix>kv/K (etcd:
 * "/mooncake/kv/K", HTTP: "mooncake/kv/K"), so they never collide with
 * segment descriptors (<prefix>segments/...), and listings and watches see
 * kv keys only.  Callers always use K, never the namespace.
 *
 * Keys: C strings of 1..MC_KV_KEY_MAX bytes with no control characters
 * (bytes 0x01-0x1f, 0x7f); they should be UTF-8 (the HTTP server refuses
 * other bytes with MC_EINVAL).  Values: any bytes, 0..MC_KV_VALUE_MAX.
 *
 * Revisions: every write is given a revision, a positive number that grows
 * with every write to the store (etcd: the key's mod_revision; HTTP: the
 * server's write counter).  mc_kv_get and mc_kv_list report a key's
 * revision; mc_kv_cas writes only if the key is still at the revision the
 * caller read (0: only if absent).  Revisions of etcd and of the HTTP server
 * are unrelated, and the HTTP server's start again from 1 when it
 * restarts (it keeps keys in memory).
 *
 * Errors: 0 or a negative MC_E* (mooncake/errors.h).  Every failing call
 * also sets the calling thread's mc_last_error() text (engine.h) naming
 * the operation, the key and the reason.  Common codes: MC_EINVAL (bad
 * argument: NULL, empty, too long or control characters), MC_ENOENT (no
 * such key, or the lease is gone), MC_EAGAIN (mc_kv_cas: the key is not at
 * the expected revision), MC_EPEER / MC_ETIMEDOUT (the store did not answer
 * within the engine's metadata timeout), MC_EACCES (the HTTP server wants
 * the cluster token), MC_ENOTSUP (the backend lacks the operation).
 *
 * Threads: every call may be made from any thread, concurrently, on one
 * handle, except mc_kv_close (no call may be in flight or follow).  Calls
 * block for one round trip to the store (at most the engine's metadata
 * timeout).  Watch callbacks run on a thread of the watch (see mc_kv_watch).
 */
#ifndef MOONCAKE_KV_H
#define MOONCAKE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MC_KV_KEY_MAX 512             /* bytes, without the namespace */
#define MC_KV_VALUE_MAX (1u << 20)    /* bytes */

typedef struct mc_kv mc_kv;
typedef struct mc_kv_watcher mc_kv_watcher;

/* Opens a key/value handle on engine's metadata store.  The handle uses the
 * engine's store client and timeout; close it before mc_engine_destroy.
 * Several handles per engine are fine (leases emulated for HTTP belong to
 * the handle that granted them).  MC_EINVAL for NULL arguments; MC_ENOTSUP
 * when the engine's metadata is p2p (no shared store). */
MC_API int mc_kv_open(mc_engine *engine, mc_kv **out);

/* Opens a key/value handle on the store at url ("etcd://host:port[,...]"
 * or "http://host:port/path", with their parameters) without an engine,
 * for processes that move no data (a store master, the conductor).  The
 * handle has its own connection, closed by mc_kv_close; the deadline of
 * each call is the backend's default (5 s).  token_file: the cluster token
 * file to present to the HTTP server (as an engine's cluster_token_file),
 * or NULL.  MC_EINVAL for a NULL or malformed url (bad scheme, bad
 * parameter) or an unusable token file; MC_ENOTSUP for p2p, or when the
 * backend's module is not installed (mc_last_error() says where it was
 * looked for). */
MC_API int mc_kv_open_url(const char *url, const char *token_file,
                          mc_kv **out);

/* Stops the handle's remaining watches (as mc_kv_unwatch) and frees it.
 * Leases are not revoked (they expire after their TTL); keys stay.  NULL is
 * a no-op. */
MC_API void mc_kv_close(mc_kv *kv);

/* Creates or replaces key with len bytes at val (val may be NULL when len
 * is 0).  lease: an id from mc_kv_lease_grant (the key is deleted when the
 * lease expires or is revoked), or 0 for none; MC_ENOENT when the lease is
 * gone.  *rev (may be NULL) gets the key's new revision (0 from a module
 * built before ABI 1.1). */
MC_API int mc_kv_put(mc_kv *kv, const char *key, const void *val, size_t len,
                     int64_t lease, int64_t *rev);

/* Reads key: *val gets a copy of the value, malloc'd by the library and
 * NUL-terminated after *len bytes (for text values); free it with
 * mc_kv_free.  *rev (may be NULL) gets the key's revision (0 from a
 * module built before ABI 1.1).  MC_ENOENT when
 * the key does not exist (or its lease expired). */
MC_API int mc_kv_get(mc_kv *kv, const char *key, void **val, size_t *len,
                     int64_t *rev);

/* Frees a value from mc_kv_get.  NULL is a no-op. */
MC_API void mc_kv_free(void *val);

/* Deletes key.  MC_ENOENT when there was no such key. */
MC_API int mc_kv_delete(mc_kv *kv, const char *key);

/* Listing callback: key (NUL-terminated, without the namespace), its value
 * (valid during the call only) and revision.  Return 0 to go on, non-zero
 * to stop the listing (mc_kv_list then returns 0). */
typedef int (*mc_kv_list_fn)(void *arg, const char *key, const void *val,
                             size_t len, int64_t rev);

/* Calls fn, on the calling thread, for every key starting with prefix (""
 * lists every kv key) in byte order of the keys.  etcd lists one snapshot;
 * HTTP lists the keys, then reads each (a key deleted in between is
 * skipped).  Segment descriptors are never listed.  fn may call any mc_kv
 * function but mc_kv_close; writes made from fn may or may not be seen by
 * the same listing. */
MC_API int mc_kv_list(mc_kv *kv, const char *prefix, mc_kv_list_fn fn,
                      void *arg);

/* Compare-and-swap: writes key (as mc_kv_put, with lease) only if its
 * revision is expected_rev, the revision mc_kv_get or mc_kv_list reported;
 * expected_rev 0 means "only if the key does not exist" (create).  Atomic
 * in the store: of several clients racing with the same expected_rev
 * exactly one wins.  MC_EAGAIN when the key is not at expected_rev (someone
 * else wrote, created or deleted it: read again and decide); nothing is
 * written then.  *new_rev (may be NULL) gets the new revision.  MC_EINVAL
 * for expected_rev < 0. */
MC_API int mc_kv_cas(mc_kv *kv, const char *key, int64_t expected_rev,
                     const void *val, size_t len, int64_t lease,
                     int64_t *new_rev);

/* ---- Leases ----
 * A lease is a lifetime of ttl_s seconds that keys can be attached to
 * (mc_kv_put/mc_kv_cas with lease): when it is not kept alive, or is
 * revoked, the store deletes its keys.  The caller keeps it alive with
 * mc_kv_lease_keepalive, e.g. every ttl_s/3 seconds; there is no automatic
 * keep-alive.
 *   etcd: real etcd leases; any client of the cluster may use the id.
 *   HTTP: emulated by this handle: a key put with the lease is given the
 *         lease's TTL on the server; keep-alive refreshes those keys;
 *         revoke deletes them.  The id means nothing to other handles.
 *         A key later written without the lease (or deleted) leaves it. */

/* Grants a lease of ttl_s seconds (1..3600) into *lease (non-zero). */
MC_API int mc_kv_lease_grant(mc_kv *kv, int ttl_s, int64_t *lease);

/* Restarts the lease's TTL.  MC_ENOENT when it has already expired (its
 * keys are gone: grant a new one and write them again). */
MC_API int mc_kv_lease_keepalive(mc_kv *kv, int64_t lease);

/* Ends the lease now, deleting its keys.  MC_ENOENT when it does not exist
 * (any more). */
MC_API int mc_kv_lease_revoke(mc_kv *kv, int64_t lease);

/* ---- Watch ---- */
enum mc_kv_event { MC_KV_EVENT_PUT = 0, MC_KV_EVENT_DELETE = 1 };

/* A change of key (NUL-terminated, without the namespace; valid during the
 * call only) at revision rev: MC_KV_EVENT_PUT (created or replaced: read
 * it with mc_kv_get) or MC_KV_EVENT_DELETE (deleted, or its lease
 * expired). */
typedef void (*mc_kv_watch_fn)(void *arg, int type, const char *key,
                               int64_t rev);

/* Watches every key starting with prefix ("" for all kv keys): every change
 * made after mc_kv_watch returns is delivered to fn, one call at a time and
 * in revision order, from a thread this watch starts (not the caller's, and
 * not the engine's transfer threads).  fn may call any mc_kv function but
 * mc_kv_unwatch of its own watch and mc_kv_close.  When the connection to
 * the store breaks the watch reconnects and resumes after the last
 * revision delivered (events are not lost unless etcd compacted them).
 * etcd only: MC_ENOTSUP on HTTP (the server has no push). */
MC_API int mc_kv_watch(mc_kv *kv, const char *prefix, mc_kv_watch_fn fn,
                       void *arg, mc_kv_watcher **out);

/* Stops the watch: when it returns fn is not running and is never called
 * again.  NULL is a no-op. */
MC_API void mc_kv_unwatch(mc_kv_watcher *w);

#ifdef __cplusplus
}
#endif

#endif
