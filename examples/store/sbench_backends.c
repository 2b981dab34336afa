/* mc-store-bench back ends: Mooncake Store (mooncake/store.h) and Redis
 * (hiredis SET/GET on one connection per client). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/store.h"
#include "sbench.h"

/* ---- store ---- */
typedef struct sb_store {
  mc_store *st;
  int zero_copy;
} sb_store;

static void *store_open(const sb_opts *o, const char *addr, uint64_t value_size) {
  sb_store *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  mc_store_config cfg = {.struct_size = sizeof cfg, .master = addr,
                         .global_segment_size = o->segment,
                         /* room for one value per staging slot, 4 slots */
                         .local_buffer_size = value_size < (4u << 20) ? 16u << 20 : 4 * value_size};
  int rc = mc_store_create(&cfg, &c->st);
  if (rc) {
    fprintf(stderr, "mc-store-bench: store client: %s: %s\n", mc_store_errname(rc),
            mc_store_last_error());
    free(c);
    return NULL;
  }
  c->zero_copy = o->zero_copy;
  return c;
}

static int store_put(void *ctx, const char *key, const void *v, size_t n) {
  sb_store *c = ctx;
  return c->zero_copy ? mc_store_put_from(c->st, key, v, n, NULL)
                      : mc_store_put(c->st, key, v, n, NULL);
}

static int64_t store_get(void *ctx, const char *key, void *buf, size_t n) {
  sb_store *c = ctx;
  return c->zero_copy ? mc_store_get_into(c->st, key, buf, n) : mc_store_get(c->st, key, buf, n);
}

static void *store_buffer(void *ctx, size_t n) {
  sb_store *c = ctx;
  void *p = NULL;
  if (posix_memalign(&p, 4096, n))
    return NULL;
  memset(p, 0, n);
  if (c->zero_copy && mc_store_register_buffer(c->st, p, n)) {
    free(p);
    return NULL;
  }
  return p;
}

static void store_close(void *ctx) {
  sb_store *c = ctx;
  mc_store_destroy(c->st); /* also unregisters the engine's buffers */
  free(c);
}

const sb_backend sb_store_backend = {"store", store_open, store_put, store_get, store_buffer,
                                     store_close, mc_store_last_error, NULL};

/* ---- redis ---- */
static void *redis_open(const sb_opts *o, const char *addr, uint64_t value_size) {
  (void)o;
  (void)value_size;
  char host[64];
  int port;
  if (sscanf(addr, "%63[^:]:%d", host, &port) != 2)
    return NULL;
  redisContext *r = redisConnect(host, port);
  if (!r || r->err) {
    fprintf(stderr, "mc-store-bench: redis %s: %s\n", addr, r ? r->errstr : "no memory");
    if (r)
      redisFree(r);
    return NULL;
  }
  return r;
}

static int redis_put(void *ctx, const char *key, const void *v, size_t n) {
  redisReply *rep = redisCommand(ctx, "SET %s %b", key, v, n);
  int ok = rep && rep->type == REDIS_REPLY_STATUS;
  if (rep)
    freeReplyObject(rep);
  return ok ? 0 : -1;
}

static int64_t redis_get(void *ctx, const char *key, void *buf, size_t n) {
  redisReply *rep = redisCommand(ctx, "GET %s", key);
  int64_t got = -1;
  if (rep && rep->type == REDIS_REPLY_STRING && rep->len <= n) {
    memcpy(buf, rep->str, rep->len);
    got = (int64_t)rep->len;
  }
  if (rep)
    freeReplyObject(rep);
  return got;
}

static void *redis_buffer(void *ctx, size_t n) {
  (void)ctx;
  void *p = NULL;
  if (posix_memalign(&p, 4096, n))
    return NULL;
  memset(p, 0, n);
  return p;
}

static void redis_close(void *ctx) { redisFree(ctx); }

static void redis_flush(void *ctx) {
  redisReply *rep = redisCommand(ctx, "FLUSHALL");
  if (rep)
    freeReplyObject(rep);
}

const sb_backend sb_redis_backend = {"redis", redis_open, redis_put, redis_get, redis_buffer,
                                     redis_close, NULL, redis_flush};
