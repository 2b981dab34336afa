/* In-memory key/value store of mooncake-metadata-server: a chained hash
 * map with optional per-key expiry.  Thread-safe (one mutex). */
#ifndef MDS_STORE_H
#define MDS_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mds_store mds_store;

mds_store *mds_store_create(void);
void mds_store_destroy(mds_store *s);

/* Bounds the bytes held (each key's length plus its value's; 0: no bound,
 * the default).  A put that would go past it answers MC_ENOSPC, after
 * dropping the expired keys; replacing a key counts only the change in
 * size, so a replacement no larger than the old value always fits. */
void mds_store_set_max_bytes(mds_store *s, size_t max_bytes);
/* The bytes held now (keys and values). */
size_t mds_store_bytes(mds_store *s);

/* ttl_s > 0: the key expires ttl_s seconds from now (renewed by each put
 * or touch); 0: never.  Returns 0, MC_ENOMEM or MC_ENOSPC (over the
 * byte bound). */
int mds_store_put(mds_store *s, const char *key, const void *val, size_t len,
                  int ttl_s);
/* put, but when expect_rev >= 0 only if the key's revision is expect_rev
 * (0: only if absent): MC_EAGAIN otherwise.  Every write (put, delete)
 * bumps the store's revision; a key's revision is the store revision of
 * its last put.  *new_rev (may be NULL) gets it. */
int mds_store_put_if(mds_store *s, const char *key, int64_t expect_rev,
                     const void *val, size_t len, int ttl_s, int64_t *new_rev);
/* Renews an existing key's expiry; MC_ENOENT if absent or expired. */
int mds_store_touch(mds_store *s, const char *key, int ttl_s);
/* Copy of the value (malloc'd); MC_ENOENT if absent or expired. */
int mds_store_get(mds_store *s, const char *key, void **val, size_t *len);
/* get, with the key's revision (rev may be NULL). */
int mds_store_get_rev(mds_store *s, const char *key, void **val, size_t *len,
                      int64_t *rev);
int mds_store_delete(mds_store *s, const char *key);
/* {"keys":[...],"revs":[...]} of the live keys starting with prefix,
 * sorted, with their revisions in a parallel array (malloc'd). */
int mds_store_list_json(mds_store *s, const char *prefix, char **json,
                        size_t *len);
size_t mds_store_count(mds_store *s);

#endif
