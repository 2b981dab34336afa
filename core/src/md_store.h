/* Internal: metadata over a key/value store module (md_store.c): the
 * publish, lease/TTL refresh and watch logic shared by every store backend
 * (etcd, HTTP).  The functions mirror mc_metadata_ops (metadata.h). */
#ifndef MC_MD_STORE_H
#define MC_MD_STORE_H

#include <stddef.h>

#include "backend.h"
#include "metadata.h"

typedef struct mc_md_store mc_md_store;

/* Opens the module's client for args->url.  be must outlive the store. */
int mc_md_store_open(const mc_md_backend *be, const mc_metadata_args *args,
                     mc_md_store **out, char *err, size_t errlen);
/* Stops the background thread (retries, watches): no on_change call runs
 * once it returns, and none starts later.  mc_md_store_close still
 * releases the rest. */
void mc_md_store_quiesce(mc_md_store *m);
void mc_md_store_close(mc_md_store *m);
int mc_md_store_publish(mc_md_store *m, const char *segment, const char *json,
                        size_t len);
int mc_md_store_unpublish(mc_md_store *m, const char *segment);
int mc_md_store_fetch(mc_md_store *m, const char *segment, char **json,
                      size_t *len);
/* MC_ENOTSUP when the module has no watch. */
int mc_md_store_watch(mc_md_store *m, const char *segment);
int mc_md_store_kv_put(mc_md_store *m, const char *key, const void *val,
                       size_t len);
int mc_md_store_kv_get(mc_md_store *m, const char *key, void **val,
                       size_t *len);
int mc_md_store_kv_delete(mc_md_store *m, const char *key);
/* The module behind the store, for the public key/value API (kv.c): its
 * table and client, the "<prefix>kv/" key namespace and the per-operation
 * deadline.  Valid until the store is closed. */
void mc_md_store_kv_backend(mc_md_store *m, const mc_md_backend **be, void **ctx,
                            const char **kv_prefix, int *timeout_ms,
                            const mc_logger **log);

#endif
