/* Backend-independent checks of a metadata backend through metadata.h,
 * shared by the etcd and HTTP suites. */
#ifndef MC_TEST_MD_COMMON_H
#define MC_TEST_MD_COMMON_H

#include <stdatomic.h>

#include "metadata.h"

typedef struct md_watcher {
  atomic_int calls;
  char last[256];
} md_watcher;

/* Opens url with the given per-op timeout; w (may be NULL) gets on_change. */
mc_metadata *md_open(const char *url, uint32_t timeout_ms, md_watcher *w);
/* Publishes a valid descriptor of name at version. */
int md_publish(mc_metadata *md, const char *name, uint64_t version);
/* Fetches name and returns its descriptor version, or the MC_E* error. */
long long md_fetch_version(mc_metadata *md, const char *name);
/* Polls until md_fetch_version(name) == want (a version or an MC_E*
 * code) or timeout_ms passes; returns the milliseconds it took or -1. */
long md_wait_version(mc_metadata *md, const char *name, long long want,
                     unsigned timeout_ms);
/* Publish/fetch/replace/unpublish/kv between two instances; watch
 * notifications when has_watch. */
void md_check_basic(const char *url, int has_watch);



/* Two engines (tcp transport) using metadata url find each other by
 * segment name and move data both ways; an unknown segment is MC_ENOENT. */
void md_check_engines(const char *url);
#endif
