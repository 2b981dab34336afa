/* A metadata module built against ABI 1.0, under the name "etcd" (the
 * engine's configuration knows the etcd and http schemes only) as
 * tests/kv/mc-metadata-etcd.so, found first through MC_METADATA_MODULE_PATH
 * by test_kv_v10.c: its table
 * ends at watch_close (struct_size of 1.0, abi_minor 0), so the core sees
 * no get_rev, list or put_if.  An in-memory store of this process, enough
 * for an engine and for mooncake/kv.h's basic calls (test_kv_v10.c). */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mooncake/errors.h"

typedef struct item {
  struct item *next;
  char *key;
  void *val;
  size_t len;
} item;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static item *items;

static item **find(const char *key) {
  item **pp = &items;
  while (*pp && strcmp((*pp)->key, key) != 0)
    pp = &(*pp)->next;
  return pp;
}

static int v_open(const mc_md_host *host, const mc_md_open_args *args, void **ctx,
                  mc_md_conf *conf, char *err, size_t errlen) {
  strcpy(conf->prefix, "v10/");
  *ctx = &items;
  return 0;
}
static void v_close(void *ctx) {}
static int v_put(void *ctx, const char *key, const void *val, size_t len, int64_t lease,
                 int ttl_s, int timeout_ms, char *err, size_t errlen) {
  void *copy = malloc(len + 1);
  if (!copy)
    return MC_ENOMEM;
  memcpy(copy, val, len);
  pthread_mutex_lock(&mu);
  item **pp = find(key), *it = *pp;
  if (!it) {
    it = calloc(1, sizeof *it);
    it->key = strdup(key);
    *pp = it;
  }
  free(it->val);
  it->val = copy;
  it->len = len;
  pthread_mutex_unlock(&mu);
  return 0;
}
static int v_get(void *ctx, const char *key, void **val, size_t *len, int timeout_ms,
                 char *err, size_t errlen) {
  pthread_mutex_lock(&mu);
  item *it = *find(key);
  int rc = MC_ENOENT;
  if (it && (*val = malloc(it->len + 1))) {
    memcpy(*val, it->val, it->len);
    *len = it->len;
    rc = 0;
  }
  pthread_mutex_unlock(&mu);
  return rc;
}
static int v_del(void *ctx, const char *key, int timeout_ms, char *err, size_t errlen) {
  pthread_mutex_lock(&mu);
  item **pp = find(key), *it = *pp;
  if (it) {
    *pp = it->next;
    free(it->key);
    free(it->val);
    free(it);
  }
  pthread_mutex_unlock(&mu);
  return it ? 0 : MC_ENOENT;
}

static const char *const schemes[] = {"etcd", NULL};

static const mc_md_backend table = {
    .abi_major = 1,
    .abi_minor = 0,
    .struct_size = offsetof(mc_md_backend, watch_close) + sizeof(void *),
    .name = "etcd",
    .schemes = schemes,
    .description = "an ABI 1.0 module, in memory (test)",
    .open = v_open,
    .close = v_close,
    .put = v_put,
    .get = v_get,
    .del = v_del,
};

__attribute__((visibility("default"))) const mc_md_backend *mc_metadata_backend_v1(void);
const mc_md_backend *mc_metadata_backend_v1(void) { return &table; }
