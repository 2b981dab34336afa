/* Internal: an etcd v3 client over the RPC layer (rpc/rpc.h).
 *
 * One mc_etcd talks to a cluster given as "h1:2379,h2:2379": it keeps one
 * gRPC channel per endpoint and sends each call to the current endpoint;
 * on UNAVAILABLE or a per-attempt timeout it moves to the next endpoint
 * and retries, until the call's own deadline (timeout_ms) passes.  etcd
 * operations are idempotent or guarded (Txn), so a retry is safe.
 *
 * All functions are thread-safe.  They return 0 or MC_E* and write a
 * one-line reason to err (which endpoint, gRPC code and message). */
#ifndef MC_ETCD_CLIENT_H
#define MC_ETCD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define MC_ETCD_MAX_ENDPOINTS 16

typedef struct mc_etcd mc_etcd;

/* endpoints: comma-separated "host:port" list (no scheme).  Connects
 * lazily: an unreachable cluster is reported by the first call. */
int mc_etcd_create(const char *endpoints, const mc_logger *log, mc_etcd **out,
                   char *err, size_t errlen);
void mc_etcd_destroy(mc_etcd *e);

/* Put key=value, attached to lease (0: none). */
int mc_etcd_put(mc_etcd *e, const char *key, const void *val, size_t len,
                int64_t lease, int timeout_ms, char *err, size_t errlen);

/* Value of key (malloc'd, NUL-terminated beyond *len); MC_ENOENT if none.
 * mod_rev may be NULL. */
int mc_etcd_get(mc_etcd *e, const char *key, void **val, size_t *len,
                int64_t *mod_rev, int timeout_ms, char *err, size_t errlen);

/* Calls fn for every key starting with prefix (in key order), stopping
 * early if fn returns non-zero. *rev (may be NULL) gets the store
 * revision the listing was taken at. */
typedef int (*mc_etcd_kv_fn)(void *arg, const char *key, size_t klen,
                             const void *val, size_t vlen);
int mc_etcd_list(mc_etcd *e, const char *prefix, mc_etcd_kv_fn fn, void *arg,
                 int64_t *rev, int timeout_ms, char *err, size_t errlen);

/* Like mc_etcd_list, also giving each key's mod revision. */
typedef int (*mc_etcd_kvrev_fn)(void *arg, const char *key, size_t klen,
                                const void *val, size_t vlen, int64_t mod_rev);
int mc_etcd_list_rev(mc_etcd *e, const char *prefix, mc_etcd_kvrev_fn fn,
                     void *arg, int timeout_ms, char *err, size_t errlen);

/* Deletes key (or every key under it when prefix != 0); *deleted (may be
 * NULL) gets the count. */
int mc_etcd_delete(mc_etcd *e, const char *key, int prefix, int64_t *deleted,
                   int timeout_ms, char *err, size_t errlen);

/* Compare-and-swap with a Txn: writes key=val (with lease) only if the
 * key's mod revision equals expect_rev (0: only if the key does not exist).
 * *swapped gets 1 if written, 0 if the comparison failed. */
int mc_etcd_cas(mc_etcd *e, const char *key, int64_t expect_rev,
                const void *val, size_t len, int64_t lease, int *swapped,
                int timeout_ms, char *err, size_t errlen);

/* Put through a Txn: unconditional when expect_rev < 0, else only if the
 * key's mod revision equals expect_rev (0: only if absent); MC_EAGAIN (err
 * says so) when the comparison failed.  *new_rev (may be NULL) gets the
 * key's new mod revision. */
int mc_etcd_put_if(mc_etcd *e, const char *key, int64_t expect_rev,
                   const void *val, size_t len, int64_t lease, int64_t *new_rev,
                   int timeout_ms, char *err, size_t errlen);

/* Leases.  keepalive sends one LeaseKeepAlive round on a short stream;
 * *ttl gets the renewed TTL, and MC_ENOENT means the lease has expired. */
int mc_etcd_lease_grant(mc_etcd *e, int64_t ttl_s, int64_t *id, int timeout_ms,
                        char *err, size_t errlen);
int mc_etcd_lease_keepalive(mc_etcd *e, int64_t id, int64_t *ttl,
                            int timeout_ms, char *err, size_t errlen);
int mc_etcd_lease_revoke(mc_etcd *e, int64_t id, int timeout_ms, char *err,
                         size_t errlen);

/* Watch every key under prefix from start_rev (0: now). */
typedef struct mc_etcd_watch mc_etcd_watch;

enum mc_etcd_event { MC_ETCD_PUT = 0, MC_ETCD_DELETE = 1 };

typedef void (*mc_etcd_event_fn)(void *arg, int type, const char *key,
                                 size_t klen, const void *val, size_t vlen,
                                 int64_t mod_rev);

int mc_etcd_watch_open(mc_etcd *e, const char *prefix, int64_t start_rev,
                       mc_etcd_watch **out, int timeout_ms, char *err,
                       size_t errlen);

/* Waits up to timeout_ms for the next batch of events and calls fn for
 * each.  Returns the number of events (0 when none arrived in time) or
 * MC_E* when the watch broke (stream lost, compacted, canceled: reopen
 * it).  *rev (may be NULL) gets the last revision the watch has seen. */
int mc_etcd_watch_next(mc_etcd_watch *w, mc_etcd_event_fn fn, void *arg,
                       int64_t *rev, int timeout_ms, char *err, size_t errlen);
void mc_etcd_watch_close(mc_etcd_watch *w);

/* Decodes one WatchResponse frame as mc_etcd_watch_next does (exposed for
 * the fuzzer).  Returns events delivered or MC_EPROTO/MC_EPEER. */
int mc_etcd_decode_watch(const void *frame, size_t len, mc_etcd_event_fn fn,
                         void *arg, int64_t *rev, char *err, size_t errlen);

/* Decodes one RangeResponse frame, calling fn per key (for the fuzzer). */
int mc_etcd_decode_range(const void *frame, size_t len, mc_etcd_kv_fn fn,
                         void *arg, char *err, size_t errlen);

/* Endpoint currently in use ("host:port"). */
const char *mc_etcd_current_endpoint(mc_etcd *e);

#endif
