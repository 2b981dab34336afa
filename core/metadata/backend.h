/* The metadata backend module interface (internal but stable).
 *
 * The etcd and HTTP metadata backends are loadable modules
 * (mc-metadata-<name>.so, installed in $libdir/mooncake/metadata/), so
 * libmooncake itself links neither gRPC/protobuf-c nor libcurl.  The core's
 * metadata front end (core/src/metadata.c, md_store.c) picks a module by the
 * URL scheme, loads it the way transports are loaded (core/src/md_module.c)
 * and drives it through the primitive operations below; everything above
 * them -- the segment key layout, descriptor validation, the set of
 * published descriptors, lease grant/keep-alive or per-key TTL refresh,
 * republishing after an outage, watch dispatch -- is written once in the
 * core (md_store.c).  p2p is not a module: it is built in
 * (core/metadata/p2p/).
 *
 * Rules, as for transport plugins (transport.h):
 *  - Entry point: a module exports only
 *        const mc_md_backend *mc_metadata_backend_v1(void);
 *    returning its own `static const` table.  The call is cheap and has no
 *    side effects (no thread, no connection, no vendor initialization), so
 *    mc-info can list modules on any host.  A breaking change adds
 *    mc_metadata_backend_v2; the core tries the newest major it knows.
 *  - Versions: both tables begin with abi_major, abi_minor, struct_size.
 *    Minor versions only append members; the core copies
 *    min(struct_size, sizeof) into a zeroed table, so a missing tail reads
 *    as NULL.  The loader refuses (MC_EABI, with the reason kept for
 *    mc-info) a wrong major, a struct_size below the 1.0 size, a `name`
 *    that differs from the file's mc-metadata-<name>.so, no scheme, or a
 *    NULL mandatory member (open, close, put, get, del).
 *  - A module never calls libmooncake (which exports only its public API):
 *    what it needs from the core comes through mc_md_host (logging, the
 *    mc_last_error() text); small helpers (core/src/net.c) are compiled into
 *    it from a static archive.  Modules link with -Wl,--no-undefined and a
 *    version script exporting only mc_metadata_backend_v*.
 *  - Errors: 0 or a negative MC_E* (mooncake/errors.h); the failing
 *    operation also writes a one-line explanation into err.  MC_ENOENT
 *    means "no such key" (get, del, touch) or "no such lease" (put with a
 *    lease, lease_keepalive); MC_EPEER / MC_ETIMEDOUT mean the server could
 *    not be reached in time.
 *  - Threads: every operation may be called from any thread, concurrently,
 *    except that a watch handle is used by one thread at a time.
 *
 * ABI 1.1 (this header) appends get_rev, list and put_if for the public
 * key/value API (mooncake/kv.h, core/src/kv.c).  A 1.0 module still loads:
 * its table reads as NULL there, and kv.h answers MC_ENOTSUP for them. */
#ifndef MC_METADATA_BACKEND_H
#define MC_METADATA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define MC_MD_ABI_MAJOR 1u
#define MC_MD_ABI_MINOR 1u

/* What the core hands a module at open. */
typedef struct mc_md_host {
  uint32_t abi_major, abi_minor, struct_size;
  /* One log line "mooncake <LEVEL> <component>: <msg>" through the engine's
   * logger `lg` (the opaque pointer from mc_md_open_args.log).  level is an
   * enum mc_log_level (mooncake/transport.h). */
  void (*log)(const void *lg, int level, const char *component,
              const char *msg);
  /* Non-zero when `level` would be printed by lg. */
  int (*log_enabled)(const void *lg, int level);
  /* Sets the calling thread's mc_last_error() text (engine.h). */
  void (*set_last_error)(const char *msg);
} mc_md_host;

typedef struct mc_md_open_args {
  const char *url;     /* the full metadata URL, e.g. "etcd://h:p?ttl=5" */
  uint32_t timeout_ms; /* per-operation deadline the engine asked for */
  const char *token;   /* cluster token to present, or NULL; copy it */
  const void *log;     /* logger for host->log */
} mc_md_open_args;

/* What open tells the core about the store behind the URL. */
typedef struct mc_md_conf {
  /* Key prefix, ending in '/': segment descriptors live under
   * <prefix>segments/<name>, generic keys under <prefix>kv/<key>
   * (etcd: "/mooncake/" or ?prefix=; HTTP: "mooncake/"). */
  char prefix[256];
  /* Lifetime in seconds of published descriptors, kept alive by the core
   * every ttl_s/3 (lease keep-alive when lease_grant is offered, else
   * touch); 0 = they never expire.  The core sets 10 before open; a module
   * may change it (a ?ttl= parameter). */
  int ttl_s;
  /* Default per-operation deadline (ms) when the engine gave none. */
  uint32_t timeout_ms;
} mc_md_conf;

enum { MC_MD_EVENT_PUT = 0, MC_MD_EVENT_DELETE = 1 };

/* A watch event: key (not NUL-terminated) changed at revision rev. */
typedef void (*mc_md_event_fn)(void *arg, int type, const char *key,
                               size_t klen, int64_t rev);

/* A listed key (not NUL-terminated), its value and modification
 * revision; return non-zero to stop the listing. */
typedef int (*mc_md_kv_fn)(void *arg, const char *key, size_t klen,
                           const void *val, size_t vlen, int64_t rev);

typedef struct mc_md_backend {
  uint32_t abi_major, abi_minor, struct_size;
  const char *name;           /* "etcd": the file is mc-metadata-etcd.so */
  const char *const *schemes; /* NULL-terminated; "etcd" serves etcd://... */
  const char *description;    /* one line for mc-info */

  /* Parses the URL and creates a client (connections may be lazy).
   * *conf comes pre-filled with the core's defaults.  host outlives ctx. */
  int (*open)(const mc_md_host *host, const mc_md_open_args *args,
              void **ctx, mc_md_conf *conf, char *err, size_t errlen);
  void (*close)(void *ctx);

  /* Creates or replaces key.  lease: an id from lease_grant, or 0.  ttl_s:
   * for modules without leases, the key's lifetime (0: none).  MC_ENOENT
   * when the lease is gone. */
  int (*put)(void *ctx, const char *key, const void *val, size_t len,
             int64_t lease, int ttl_s, int timeout_ms, char *err,
             size_t errlen);
  /* *val malloc'd (the caller frees), MC_ENOENT when absent. */
  int (*get)(void *ctx, const char *key, void **val, size_t *len,
             int timeout_ms, char *err, size_t errlen);
  /* MC_ENOENT when there was no such key. */
  int (*del)(void *ctx, const char *key, int timeout_ms, char *err,
             size_t errlen);

  /* Optional: leases (NULL when the store has per-key TTLs instead). */
  int (*lease_grant)(void *ctx, int ttl_s, int64_t *lease, int timeout_ms,
                     char *err, size_t errlen);
  /* MC_ENOENT when the lease has expired. */
  int (*lease_keepalive)(void *ctx, int64_t lease, int timeout_ms, char *err,
                         size_t errlen);
  int (*lease_revoke)(void *ctx, int64_t lease, int timeout_ms, char *err,
                      size_t errlen);

  /* Optional: restarts key's TTL without resending the value; MC_ENOENT
   * when the store no longer has it (the core puts it again). */
  int (*touch)(void *ctx, const char *key, int ttl_s, int timeout_ms,
               char *err, size_t errlen);

  /* Optional: watch every key under prefix from revision start_rev (0:
   * from now).  watch_next waits up to wait_ms for events, calls fn for
   * each, stores the last revision seen in *rev; returns >= 0, or < 0 when
   * the watch is broken (the core closes and reopens it). */
  int (*watch_open)(void *ctx, const char *prefix, int64_t start_rev,
                    void **w, int timeout_ms, char *err, size_t errlen);
  int (*watch_next)(void *w, mc_md_event_fn fn, void *arg, int64_t *rev,
                    int wait_ms, char *err, size_t errlen);
  void (*watch_close)(void *w);

  /* ---- ABI 1.1 (optional; NULL in 1.0 modules) ---- */

  /* get, also giving the key's modification revision (> 0; it grows with
   * every write to the store). */
  int (*get_rev)(void *ctx, const char *key, void **val, size_t *len,
                 int64_t *rev, int timeout_ms, char *err, size_t errlen);
  /* Calls fn for every live key starting with prefix, in key order, until
   * fn returns non-zero.  Not necessarily one snapshot (HTTP lists the keys,
   * then reads each: a key deleted in between is skipped). */
  int (*list)(void *ctx, const char *prefix, mc_md_kv_fn fn, void *arg,
              int timeout_ms, char *err, size_t errlen);
  /* Writes key like put, but when expect_rev >= 0 only if the key's
   * modification revision is expect_rev (0: only if the key is absent):
   * MC_EAGAIN (with err) when it is not, and nothing is written.
   * expect_rev < 0: unconditional.  *new_rev (may be NULL) gets the key's
   * new revision. */
  int (*put_if)(void *ctx, const char *key, int64_t expect_rev,
                const void *val, size_t len, int64_t lease, int ttl_s,
                int64_t *new_rev, int timeout_ms, char *err, size_t errlen);
} mc_md_backend;

typedef const mc_md_backend *(*mc_md_entry_v1_fn)(void);
#define MC_MD_ENTRY_V1 "mc_metadata_backend_v1"

/* Module side (core/metadata/module_host.c, compiled into each module):
 * records the host table so the module's logging (log.h) reaches it. */
void mc_md_module_set_host(const mc_md_host *host);

#endif
