/* Internal: the metadata interface; the engine only talks to this.  The
 * built-in p2p backend implements mc_metadata_ops; the key/value backends
 * (etcd, HTTP) are loadable modules with primitive operations (backend.h)
 * under one publish/lease/refresh layer (md_store.c).
 *
 * Segment descriptors are stored as JSON text (descriptor.h) under the
 * segment's name.  The generic key/value calls are for layers above the
 * engine; backends that cannot hold arbitrary keys (p2p) return
 * MC_ENOTSUP. */
#ifndef MC_METADATA_H
#define MC_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef struct mc_metadata mc_metadata;
struct mc_listener;

typedef struct mc_metadata_args {
  const char *url;    /* "p2p", "etcd://...", "http://..." */
  const char *listen; /* "host:port" for the p2p listener when no
                         listener is given */
  /* The engine's handshake listener (listener.h); p2p serves descriptors
   * on it.  NULL: p2p opens its own on `listen` (tools, tests). */
  struct mc_listener *listener;
  uint32_t timeout_ms; /* per-operation deadline */
  /* Cluster token (token.h) to present and, for listeners, to demand;
   * NULL: none.  Backends copy it. */
  const char *token;
  const mc_logger *log;
  /* Called (from a backend thread) when a watched segment's descriptor
   * changed or vanished; may be NULL. */
  void (*on_change)(void *arg, const char *segment);
  void *on_change_arg;
} mc_metadata_args;

typedef struct mc_metadata_ops {
  const char *scheme; /* "p2p", "etcd", "http" */
  int (*open)(const mc_metadata_args *args, void **ctx);
  void (*close)(void *ctx);
  /* Name this backend gives the local segment when none is configured
   * (p2p: the bound "host:port"); MC_ENOTSUP if it has no opinion. */
  int (*local_name)(void *ctx, char *buf, size_t len);
  /* Publishes (creates or replaces) the local segment's descriptor. */
  int (*publish)(void *ctx, const char *segment, const char *json, size_t len);
  int (*unpublish)(void *ctx, const char *segment);
  /* Fetches a segment's descriptor; *json malloc'd, caller frees.
   * MC_ENOENT if unknown, MC_EPEER/MC_ETIMEDOUT if unreachable. */
  int (*fetch)(void *ctx, const char *segment, char **json, size_t *len);
  /* Asks for on_change calls for segment (optional, NULL if unsupported). */
  int (*watch)(void *ctx, const char *segment);
  /* Generic keys (optional). */
  int (*kv_put)(void *ctx, const char *key, const void *val, size_t len);
  int (*kv_get)(void *ctx, const char *key, void **val, size_t *len);
  int (*kv_delete)(void *ctx, const char *key);
} mc_metadata_ops;

/* Opens the backend chosen by args->url's scheme: "p2p" (or no URL) is
 * built in; "X://..." loads the module mc-metadata-X.so (md_module.c).
 * MC_EINVAL (with err naming it) for an unknown scheme (no such module and
 * not etcd/http); MC_ENOTSUP when the etcd or http module is not found (err:
 * "metadata 'etcd://...' ... needs the etcd backend module
 * (mc-metadata-etcd.so), not found in <search path>; ..."); MC_EABI or
 * MC_ENOTSUP when the module found is refused (err: path and reason). */
int mc_metadata_open(const mc_metadata_args *args, mc_metadata **out, char *err,
                     size_t errlen);
/* Stops the backend's background work that calls on_change (store
 * backends' watch thread), so on_change's argument may be freed; the
 * engine calls it before destroying its segments.  No-op otherwise. */
void mc_metadata_quiesce(mc_metadata *md);
void mc_metadata_close(mc_metadata *md);

int mc_metadata_local_name(mc_metadata *md, char *buf, size_t len);
int mc_metadata_publish(mc_metadata *md, const char *segment, const char *json,
                        size_t len);
int mc_metadata_unpublish(mc_metadata *md, const char *segment);
int mc_metadata_fetch(mc_metadata *md, const char *segment, char **json,
                      size_t *len);
int mc_metadata_watch(mc_metadata *md, const char *segment);
int mc_metadata_kv_put(mc_metadata *md, const char *key, const void *val,
                       size_t len);
int mc_metadata_kv_get(mc_metadata *md, const char *key, void **val,
                       size_t *len);
int mc_metadata_kv_delete(mc_metadata *md, const char *key);

/* The key/value store module behind md (md_store.h,
 * mc_md_store_kv_backend) for the public key/value API (kv.c); MC_ENOTSUP
 * for the built-in p2p backend, which has no shared store. */
struct mc_md_backend;
int mc_metadata_kv_backend(mc_metadata *md, const struct mc_md_backend **be,
                           void **ctx, const char **kv_prefix, int *timeout_ms,
                           const mc_logger **log);

/* The built-in backend (core/metadata/p2p/). */
extern const mc_metadata_ops mc_metadata_p2p_ops;

#endif
