/* Backend-independent checks of the public key/value API (mooncake/kv.h),
 * run by test_kv_etcd.c and test_kv_http.c against a real store. */
#ifndef MC_TEST_KV_COMMON_H
#define MC_TEST_KV_COMMON_H

#include "mooncake/engine.h"

/* An engine on url (tcp transport, loopback) named name. */
mc_engine *kv_engine(const char *url, const char *name);
/* Every check; has_watch: the backend delivers watch events (etcd). */
void kv_check_all(const char *url, int has_watch);

#endif
