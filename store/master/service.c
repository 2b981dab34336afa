/* RPC handlers of the master (service.h). */
#include "service.h"

#include <grpc/status.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"

#define E(name) MCSTORE__ERROR_CODE__##name

/* Constant-time comparison: the token check must not leak a prefix. */
static int token_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  if (alen != blen)
    return 0;
  uint8_t d = 0;
  for (size_t i = 0; i < alen; i++)
    d |= a[i] ^ b[i];
  return d == 0;
}

static int check_hdr(mcs_master *m, const Mcstore__RequestHeader *h) {
  if (!h || h->client_id.len != MCS_CLIENT_ID_LEN)
    return E(ILLEGAL_CLIENT);
  if (m->token_len && !token_eq(h->token.data, h->token.len, m->token, m->token_len))
    return E(ILLEGAL_CLIENT);
  return 0;
}

static int pack(const ProtobufCMessage *msg, void **resp, size_t *len, char *err,
                size_t errlen) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = malloc(n ? n : 1);
  if (!p) {
    snprintf(err, errlen, "out of memory");
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  protobuf_c_message_pack(msg, p);
  *resp = p;
  *len = n;
  return GRPC_STATUS_OK;
}

static int malformed(char *err, size_t errlen, const char *what) {
  snprintf(err, errlen, "malformed %s", what);
  return GRPC_STATUS_INVALID_ARGUMENT;
}

/* Requests are unpacked into a per-call arena: protobuf-c allocates every
 * string and array of a message separately (129 mallocs and frees for a
 * batch of 128 keys); here they come from a stack buffer, overflowing into
 * heap chunks, all dropped when the call ends. */
typedef struct arena_chunk {
  struct arena_chunk *next;
  size_t cap, used;
  max_align_t data[];
} arena_chunk;

typedef struct arena {
  unsigned char *buf;
  size_t cap, used;
  arena_chunk *heap;
} arena;

static void *arena_alloc(void *ad, size_t n) {
  arena *a = ad;
  n = (n + 15) & ~(size_t)15;
  if (a->cap - a->used >= n) {
    void *p = a->buf + a->used;
    a->used += n;
    return p;
  }
  arena_chunk *c = a->heap;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    if (!(c = malloc(sizeof(*c) + cap)))
      return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = a->heap;
    a->heap = c;
  }
  void *p = (unsigned char *)c->data + c->used;
  c->used += n;
  return p;
}

static void arena_free(void *ad, void *p) { (void)ad, (void)p; }

static void arena_fini(arena *a) {
  while (a->heap) {
    arena_chunk *c = a->heap;
    a->heap = c->next;
    free(c);
  }
}

/* Declares a handler: unpacks `req` of type T (or answers
 * INVALID_ARGUMENT) and runs the body, which must set `code` and fill and
 * pack `out`. */
#define HANDLER(fn, T, lower)                                                  \
  static int fn##_body(mcs_master *m, T *req, void **resp, size_t *rlen,       \
                       char *err, size_t errlen);                              \
  static int fn(void *arg, const void *in, size_t len, void **resp,            \
                size_t *rlen, char *err, size_t errlen) {                      \
    _Alignas(16) unsigned char buf[16384];                                     \
    arena a = {.buf = buf, .cap = sizeof buf};                                 \
    ProtobufCAllocator al = {.alloc = arena_alloc, .free = arena_free,         \
                             .allocator_data = &a};                            \
    T *req = lower##__unpack(&al, len, in);                                    \
    int rc = req ? fn##_body(arg, req, resp, rlen, err, errlen)                \
                 : malformed(err, errlen, #T);                                 \
    arena_fini(&a);                                                            \
    return rc;                                                                 \
  }                                                                            \
  static int fn##_body(mcs_master *m, T *req, void **resp, size_t *rlen,       \
                       char *err, size_t errlen)

/* ---- replica descriptors ---- */

typedef struct desc_buf {
  Mcstore__ReplicaDesc *descs;
  Mcstore__ReplicaDesc **ptrs;
  mcs_rep_out *reps;
  size_t n, cap;
} desc_buf;

static int desc_reserve(desc_buf *d, size_t items) {
  size_t cap = items * MCS_MAX_REPLICAS;
  d->descs = malloc(cap * sizeof(*d->descs) + 1);
  d->ptrs = malloc(cap * sizeof(*d->ptrs) + 1);
  d->reps = malloc(cap * sizeof(*d->reps) + 1);
  d->n = 0;
  d->cap = cap;
  return d->descs && d->ptrs && d->reps ? 0 : -1;
}

static void desc_free(desc_buf *d) {
  mcs_reps_release(d->reps, (int)d->n);
  free(d->descs);
  free(d->ptrs);
  free(d->reps);
}

/* Turns reps[n..n+k) (already in d->reps) into descriptors; returns the
 * pointer array for a response's replicas field. */
static Mcstore__ReplicaDesc **desc_fill(desc_buf *d, int k) {
  Mcstore__ReplicaDesc **first = &d->ptrs[d->n];
  for (int i = 0; i < k; i++, d->n++) {
    mcs_rep_out *r = &d->reps[d->n];
    Mcstore__ReplicaDesc *x = &d->descs[d->n];
    mcstore__replica_desc__init(x);
    x->segment_id.data = r->seg->id;
    x->segment_id.len = MCS_CLIENT_ID_LEN;
    x->segment_name = r->seg->name;
    x->host = r->seg->host;
    x->protocol = r->seg->protocol;
    x->address = r->addr;
    x->size = r->size;
    x->status = (Mcstore__ReplicaStatus)r->status;
    x->disk = r->disk != 0;
    d->ptrs[d->n] = x;
  }
  return first;
}

static void put_cfg(const Mcstore__ReplicateConfig *c, mcs_put_cfg *out) {
  memset(out, 0, sizeof(*out));
  out->replica_num = 1;
  if (!c)
    return;
  out->replica_num = c->replica_num ? c->replica_num : 1;
  out->soft_pin = c->with_soft_pin;
  out->hard_pin = c->with_hard_pin;
  out->soft_pin_ttl_ms = c->soft_pin_ttl_ms;
  out->preferred = (const char *const *)c->preferred_segments;
  out->npreferred = c->n_preferred_segments;
}

static int cfg_valid(const mcs_put_cfg *c) {
  if (c->replica_num > MCS_MAX_REPLICAS || c->npreferred > 64)
    return 0;
  for (size_t i = 0; i < c->npreferred; i++)
    if (strlen(c->preferred[i]) > MCS_MAX_NAME_LEN)
      return 0;
  return 1;
}

/* ---- segments and liveness ---- */

static int seg_args(const Mcstore__SegmentDesc *s) {
  return s && s->id.len == MCS_CLIENT_ID_LEN && s->name && *s->name &&
         strlen(s->name) <= MCS_MAX_NAME_LEN && strlen(s->host) <= MCS_MAX_NAME_LEN &&
         strlen(s->protocol) <= MCS_MAX_NAME_LEN && s->size > 0;
}

HANDLER(h_mount, Mcstore__MountSegmentRequest, mcstore__mount_segment_request) {
  Mcstore__MountSegmentResponse out = MCSTORE__MOUNT_SEGMENT_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  if (!code && !seg_args(req->segment))
    code = E(INVALID_PARAMS);
  if (!code) {
    const Mcstore__SegmentDesc *s = req->segment;
    code = mcs_mount_ex(m, req->header->client_id.data, s->id.data, s->name, s->host,
                     s->protocol, s->base_address, s->size,
                     s->disk);
  }
  out.code = code;
  return pack(&out.base, resp, rlen, err, errlen);
}

HANDLER(h_remount, Mcstore__ReMountSegmentRequest, mcstore__re_mount_segment_request) {
  Mcstore__ReMountSegmentResponse out = MCSTORE__RE_MOUNT_SEGMENT_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  for (size_t i = 0; !code && i < req->n_segments; i++)
    if (!seg_args(req->segments[i]))
      code = E(INVALID_PARAMS);
  if (!code) {
    mcs_client_touch(m, req->header->client_id.data, 1);
    for (size_t i = 0; i < req->n_segments; i++) {
      const Mcstore__SegmentDesc *s = req->segments[i];
      int rc = mcs_mount_ex(m, req->header->client_id.data, s->id.data, s->name, s->host,
                         s->protocol, s->base_address, s->size,
                     s->disk);
      if (rc && !code)
        code = rc; /* report the first failure, mount the others */
    }
  }
  out.code = code;
  return pack(&out.base, resp, rlen, err, errlen);
}

HANDLER(h_unmount, Mcstore__UnmountSegmentRequest, mcstore__unmount_segment_request) {
  Mcstore__UnmountSegmentResponse out = MCSTORE__UNMOUNT_SEGMENT_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  if (!code && req->segment_id.len != MCS_CLIENT_ID_LEN)
    code = E(INVALID_PARAMS);
  if (!code)
    code = mcs_unmount(m, req->header->client_id.data, req->segment_id.data);
  out.code = code;
  return pack(&out.base, resp, rlen, err, errlen);
}

HANDLER(h_ping, Mcstore__PingRequest, mcstore__ping_request) {
  Mcstore__PingResponse out = MCSTORE__PING_RESPONSE__INIT;
  int code = check_hdr(m, req->header), st = 0;
  if (!code)
    mcs_ping(m, req->header->client_id.data, req->view_version, &st);
  out.code = code;
  out.view_version = m->view_version;
  out.client_status = (Mcstore__ClientStatus)st;
  return pack(&out.base, resp, rlen, err, errlen);
}

/* ---- puts ---- */

static int put_start_one(mcs_master *m, const uint8_t *cid, const char *key, uint64_t size,
                         const mcs_put_cfg *cfg, int upsert, desc_buf *d,
                         Mcstore__PutStartResponse *out) {
  mcstore__put_start_response__init(out);
  int n = 0;
  int code = mcs_put_start(m, cid, key, strlen(key), size, cfg, upsert, &d->reps[d->n], &n);
  out->code = code;
  out->n_replicas = (size_t)n;
  out->replicas = desc_fill(d, n);
  return code;
}

static int put_start(mcs_master *m, Mcstore__PutStartRequest *req, int upsert, void **resp,
                     size_t *rlen, char *err, size_t errlen) {
  Mcstore__PutStartResponse out;
  mcstore__put_start_response__init(&out);
  mcs_put_cfg cfg;
  put_cfg(req->config, &cfg);
  int code = check_hdr(m, req->header);
  if (!code && !cfg_valid(&cfg))
    code = E(INVALID_PARAMS);
  if (!code && !mcs_client_known(m, req->header->client_id.data))
    code = E(CLIENT_NOT_FOUND); /* Ping (or mount) first: work is attributed */
  if (code) {
    out.code = code;
    return pack(&out.base, resp, rlen, err, errlen);
  }
  desc_buf d;
  int rc;
  if (desc_reserve(&d, 1) != 0) {
    out.code = E(INTERNAL_ERROR);
    rc = pack(&out.base, resp, rlen, err, errlen);
  } else {
    put_start_one(m, req->header->client_id.data, req->key, req->value_length, &cfg, upsert,
                  &d, &out);
    rc = pack(&out.base, resp, rlen, err, errlen);
  }
  desc_free(&d);
  return rc;
}

HANDLER(h_put_start, Mcstore__PutStartRequest, mcstore__put_start_request) {
  return put_start(m, req, 0, resp, rlen, err, errlen);
}
HANDLER(h_upsert_start, Mcstore__PutStartRequest, mcstore__put_start_request) {
  return put_start(m, req, 1, resp, rlen, err, errlen);
}

static int batch_put_start(mcs_master *m, Mcstore__BatchPutStartRequest *req, int upsert,
                           void **resp, size_t *rlen, char *err, size_t errlen) {
  Mcstore__BatchPutStartResponse out = MCSTORE__BATCH_PUT_START_RESPONSE__INIT;
  size_t n = req->n_keys;
  mcs_put_cfg cfg;
  put_cfg(req->config, &cfg);
  int code = check_hdr(m, req->header);
  if (!code && (n > MCS_MAX_BATCH || req->n_value_lengths != n || !cfg_valid(&cfg)))
    code = E(INVALID_PARAMS);
  if (!code && !mcs_client_known(m, req->header->client_id.data))
    code = E(CLIENT_NOT_FOUND);
  Mcstore__PutStartResponse *items = malloc((n ? n : 1) * sizeof(*items));
  Mcstore__PutStartResponse **ptrs = malloc((n ? n : 1) * sizeof(*ptrs));
  desc_buf d;
  int rc;
  if (desc_reserve(&d, code ? 0 : n) != 0 || !items || !ptrs) {
    desc_free(&d);
    free(items);
    free(ptrs);
    snprintf(err, errlen, "out of memory");
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  for (size_t i = 0; i < n; i++) {
    ptrs[i] = &items[i];
    if (code) {
      mcstore__put_start_response__init(&items[i]);
      items[i].code = code;
    } else {
      put_start_one(m, req->header->client_id.data, req->keys[i], req->value_lengths[i], &cfg,
                    upsert, &d, &items[i]);
    }
  }
  out.n_results = n;
  out.results = ptrs;
  rc = pack(&out.base, resp, rlen, err, errlen);
  desc_free(&d);
  free(items);
  free(ptrs);
  return rc;
}

HANDLER(h_batch_put_start, Mcstore__BatchPutStartRequest, mcstore__batch_put_start_request) {
  return batch_put_start(m, req, 0, resp, rlen, err, errlen);
}
HANDLER(h_batch_upsert_start, Mcstore__BatchPutStartRequest, mcstore__batch_put_start_request) {
  return batch_put_start(m, req, 1, resp, rlen, err, errlen);
}

typedef int (*key_op)(mcs_master *m, const uint8_t *cid, const char *key, size_t klen,
                      int force);

static int op_end(mcs_master *m, const uint8_t *cid, const char *k, size_t n, int f) {
  return mcs_put_end(m, cid, k, n);
}
static int op_revoke(mcs_master *m, const uint8_t *cid, const char *k, size_t n, int f) {
  return mcs_put_revoke(m, cid, k, n);
}
static int op_remove(mcs_master *m, const uint8_t *cid, const char *k, size_t n, int f) {
  return mcs_remove(m, k, n, f);
}

static int key_call(mcs_master *m, Mcstore__KeyRequest *req, key_op op, void **resp,
                    size_t *rlen, char *err, size_t errlen) {
  Mcstore__CodeResponse out = MCSTORE__CODE_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  if (!code)
    code = op(m, req->header->client_id.data, req->key, strlen(req->key), req->force);
  out.code = code;
  return pack(&out.base, resp, rlen, err, errlen);
}

static int batch_key_call(mcs_master *m, Mcstore__BatchKeyRequest *req, key_op op,
                          void **resp, size_t *rlen, char *err, size_t errlen) {
  Mcstore__BatchCodeResponse out = MCSTORE__BATCH_CODE_RESPONSE__INIT;
  size_t n = req->n_keys;
  int code = check_hdr(m, req->header);
  if (!code && n > MCS_MAX_BATCH)
    code = E(INVALID_PARAMS);
  Mcstore__ErrorCode *codes = malloc((n ? n : 1) * sizeof(*codes));
  if (!codes) {
    snprintf(err, errlen, "out of memory");
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  for (size_t i = 0; i < n; i++)
    codes[i] = code ? code
                    : op(m, req->header->client_id.data, req->keys[i], strlen(req->keys[i]),
                         req->force);
  out.n_codes = n;
  out.codes = codes;
  int rc = pack(&out.base, resp, rlen, err, errlen);
  free(codes);
  return rc;
}

HANDLER(h_put_end, Mcstore__KeyRequest, mcstore__key_request) {
  return key_call(m, req, op_end, resp, rlen, err, errlen);
}
HANDLER(h_put_revoke, Mcstore__KeyRequest, mcstore__key_request) {
  return key_call(m, req, op_revoke, resp, rlen, err, errlen);
}
HANDLER(h_remove, Mcstore__KeyRequest, mcstore__key_request) {
  return key_call(m, req, op_remove, resp, rlen, err, errlen);
}
HANDLER(h_batch_put_end, Mcstore__BatchKeyRequest, mcstore__batch_key_request) {
  return batch_key_call(m, req, op_end, resp, rlen, err, errlen);
}
HANDLER(h_batch_put_revoke, Mcstore__BatchKeyRequest, mcstore__batch_key_request) {
  return batch_key_call(m, req, op_revoke, resp, rlen, err, errlen);
}
HANDLER(h_batch_remove, Mcstore__BatchKeyRequest, mcstore__batch_key_request) {
  return batch_key_call(m, req, op_remove, resp, rlen, err, errlen);
}

/* ---- reads ---- */

static void get_one(mcs_master *m, const char *key, desc_buf *d,
                    Mcstore__GetReplicaListResponse *out) {
  mcstore__get_replica_list_response__init(out);
  int n = 0;
  out->code = mcs_get_replicas_v(m, key, strlen(key), &d->reps[d->n], &n, &out->version);
  out->n_replicas = (size_t)n;
  out->replicas = desc_fill(d, n);
  out->lease_ttl_ms = n ? m->cfg.default_kv_lease_ttl_ms : 0;
}

HANDLER(h_get, Mcstore__GetReplicaListRequest, mcstore__get_replica_list_request) {
  Mcstore__GetReplicaListResponse out = MCSTORE__GET_REPLICA_LIST_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  desc_buf d;
  int rc;
  if (desc_reserve(&d, 1) != 0)
    code = E(INTERNAL_ERROR);
  if (code)
    out.code = code;
  else
    get_one(m, req->key, &d, &out);
  rc = pack(&out.base, resp, rlen, err, errlen);
  desc_free(&d);
  return rc;
}

HANDLER(h_batch_get, Mcstore__BatchKeyRequest, mcstore__batch_key_request) {
  Mcstore__BatchGetReplicaListResponse out = MCSTORE__BATCH_GET_REPLICA_LIST_RESPONSE__INIT;
  size_t n = req->n_keys;
  int code = check_hdr(m, req->header);
  if (!code && n > MCS_MAX_BATCH)
    code = E(INVALID_PARAMS);
  Mcstore__GetReplicaListResponse *items = malloc((n ? n : 1) * sizeof(*items));
  Mcstore__GetReplicaListResponse **ptrs = malloc((n ? n : 1) * sizeof(*ptrs));
  desc_buf d;
  if (desc_reserve(&d, code ? 0 : n) != 0 || !items || !ptrs) {
    desc_free(&d);
    free(items);
    free(ptrs);
    snprintf(err, errlen, "out of memory");
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  for (size_t i = 0; i < n; i++) {
    ptrs[i] = &items[i];
    if (code) {
      mcstore__get_replica_list_response__init(&items[i]);
      items[i].code = code;
    } else {
      get_one(m, req->keys[i], &d, &items[i]);
    }
  }
  out.n_results = n;
  out.results = ptrs;
  int rc = pack(&out.base, resp, rlen, err, errlen);
  desc_free(&d);
  free(items);
  free(ptrs);
  return rc;
}

HANDLER(h_exist, Mcstore__GetReplicaListRequest, mcstore__get_replica_list_request) {
  Mcstore__ExistKeyResponse out = MCSTORE__EXIST_KEY_RESPONSE__INIT;
  int code = check_hdr(m, req->header), ex = 0;
  if (!code)
    code = mcs_exist(m, req->key, strlen(req->key), &ex);
  out.code = code;
  out.exists = ex;
  return pack(&out.base, resp, rlen, err, errlen);
}

HANDLER(h_batch_exist, Mcstore__BatchKeyRequest, mcstore__batch_key_request) {
  Mcstore__BatchExistKeyResponse out = MCSTORE__BATCH_EXIST_KEY_RESPONSE__INIT;
  size_t n = req->n_keys;
  int code = check_hdr(m, req->header);
  if (!code && n > MCS_MAX_BATCH)
    code = E(INVALID_PARAMS);
  Mcstore__ExistKeyResponse *items = malloc((n ? n : 1) * sizeof(*items));
  Mcstore__ExistKeyResponse **ptrs = malloc((n ? n : 1) * sizeof(*ptrs));
  if (!items || !ptrs) {
    free(items);
    free(ptrs);
    snprintf(err, errlen, "out of memory");
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  for (size_t i = 0; i < n; i++) {
    mcstore__exist_key_response__init(&items[i]);
    ptrs[i] = &items[i];
    int ex = 0;
    items[i].code = code ? code : mcs_exist(m, req->keys[i], strlen(req->keys[i]), &ex);
    items[i].exists = ex;
  }
  out.n_results = n;
  out.results = ptrs;
  int rc = pack(&out.base, resp, rlen, err, errlen);
  free(items);
  free(ptrs);
  return rc;
}

/* ---- bulk removal, introspection ---- */

HANDLER(h_remove_regex, Mcstore__RemoveByRegexRequest, mcstore__remove_by_regex_request) {
  Mcstore__CountResponse out = MCSTORE__COUNT_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  uint64_t n = 0;
  /* Bounded: the regex engine's work grows with the pattern. */
  if (!code && (!*req->regex || strlen(req->regex) > 1024))
    code = E(INVALID_PARAMS);
  if (!code)
    code = mcs_remove_many(m, req->regex, req->force, &n);
  out.code = code;
  out.removed = n;
  return pack(&out.base, resp, rlen, err, errlen);
}

HANDLER(h_remove_all, Mcstore__RemoveAllRequest, mcstore__remove_all_request) {
  Mcstore__CountResponse out = MCSTORE__COUNT_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  uint64_t n = 0;
  if (!code)
    code = mcs_remove_many(m, NULL, req->force, &n);
  out.code = code;
  out.removed = n;
  return pack(&out.base, resp, rlen, err, errlen);
}

HANDLER(h_stats, Mcstore__GetStatsRequest, mcstore__get_stats_request) {
  Mcstore__GetStatsResponse out = MCSTORE__GET_STATS_RESPONSE__INIT;
  out.code = check_hdr(m, req->header);
  if (!out.code) {
    out.capacity = atomic_load(&m->capacity);
    out.used = mcs_used(m);
    mcs_counts(m, &out.objects, &out.pending_puts);
    pthread_rwlock_rdlock(&m->seg_lock);
    out.segments = m->nsegs;
    pthread_rwlock_unlock(&m->seg_lock);
    out.clients = atomic_load(&m->nclients);
    out.evicted_objects = atomic_load(&m->evicted);
    out.view_version = m->view_version;
    out.expired_clients = atomic_load(&m->expired_clients);
    out.disk_capacity = atomic_load(&m->disk_capacity);
    out.disk_used = mcs_disk_used(m);
    out.offloaded_objects = atomic_load(&m->offloaded);
    out.pending_offloads = atomic_load(&m->pending_offloads);
  }
  return pack(&out.base, resp, rlen, err, errlen);
}

/* Keys of one ListKeys answer stay well under the 64 MiB message limit. */
#define LIST_MAX_BYTES (32u << 20)

typedef struct list_acc {
  char **keys;
  uint64_t *sizes;
  size_t n, limit, bytes;
  int oom, truncated;
} list_acc;

static int list_one(void *arg, const char *key, size_t klen, uint64_t size) {
  list_acc *a = arg;
  if (a->n == a->limit || a->bytes + klen > LIST_MAX_BYTES) {
    a->truncated = 1;
    return 1;
  }
  a->bytes += klen + 8;
  if (!(a->keys[a->n] = strndup(key, klen))) {
    a->oom = 1;
    return 1;
  }
  a->sizes[a->n++] = size;
  return 0;
}

HANDLER(h_list, Mcstore__ListKeysRequest, mcstore__list_keys_request) {
  Mcstore__ListKeysResponse out = MCSTORE__LIST_KEYS_RESPONSE__INIT;
  list_acc a = {0};
  a.limit = req->limit ? req->limit : 1000;
  if (a.limit > 100000)
    a.limit = 100000;
  int code = check_hdr(m, req->header);
  if (!code && strlen(req->regex) > 1024)
    code = E(INVALID_PARAMS);
  if (!code) {
    a.keys = malloc(a.limit * sizeof(*a.keys));
    a.sizes = malloc(a.limit * sizeof(*a.sizes));
    if (!a.keys || !a.sizes)
      code = E(INTERNAL_ERROR);
    else
      code = mcs_list(m, req->regex, list_one, &a);
    if (!code && a.oom)
      code = E(INTERNAL_ERROR);
  }
  out.code = code;
  out.truncated = a.truncated;
  out.n_keys = out.n_sizes = a.n;
  out.keys = a.keys;
  out.sizes = a.sizes;
  int rc = pack(&out.base, resp, rlen, err, errlen);
  for (size_t i = 0; i < a.n; i++)
    free(a.keys[i]);
  free(a.keys);
  free(a.sizes);
  return rc;
}

/* ---- SSD tier ---- */

static void rep_desc(const mcs_rep_out *r, Mcstore__ReplicaDesc *x) {
  mcstore__replica_desc__init(x);
  x->segment_id.data = r->seg->id;
  x->segment_id.len = MCS_CLIENT_ID_LEN;
  x->segment_name = r->seg->name;
  x->host = r->seg->host;
  x->protocol = r->seg->protocol;
  x->address = r->addr;
  x->size = r->size;
  x->status = (Mcstore__ReplicaStatus)r->status;
  x->disk = r->disk != 0;
}

HANDLER(h_offload_sync, Mcstore__OffloadSyncRequest, mcstore__offload_sync_request) {
  Mcstore__OffloadSyncResponse out = MCSTORE__OFFLOAD_SYNC_RESPONSE__INIT;
  int code = check_hdr(m, req->header);
  /* Bounded work per call: reports beyond what one answer hands out are
   * a client out of step. */
  if (!code && (req->n_done > 4096 || req->n_failed > 4096 || req->n_trimmed > 4096))
    code = E(INVALID_PARAMS);
  if (!code && !mcs_client_known(m, req->header->client_id.data))
    code = E(CLIENT_NOT_FOUND);
  uint32_t max = req->max_tasks == 0 ? 16 : req->max_tasks > 256 ? 256 : req->max_tasks;
  mcs_task_out *tasks = NULL;
  mcs_trim_out *trims = NULL;
  Mcstore__OffloadTask *tv = NULL, **tp = NULL;
  Mcstore__ReplicaDesc *rd = NULL;
  Mcstore__DiskExtent *ev = NULL, **ep = NULL;
  int nt = 0, ntr = 0;
  if (!code) {
    tasks = calloc(max, sizeof(*tasks));
    trims = calloc(max, sizeof(*trims));
    tv = calloc(max, sizeof(*tv));
    tp = calloc(max, sizeof(*tp));
    rd = calloc(2 * (size_t)max, sizeof(*rd));
    ev = calloc(max, sizeof(*ev));
    ep = calloc(max, sizeof(*ep));
    if (!tasks || !trims || !tv || !tp || !rd || !ev || !ep)
      code = E(INTERNAL_ERROR);
  }
  if (!code) {
    mcs_client_touch(m, req->header->client_id.data, 0);
    code = mcs_offload_sync(m, req->header->client_id.data, req->done, req->n_done,
                            req->failed, req->n_failed, req->trimmed, req->n_trimmed, max,
                            tasks, &nt, trims, &ntr);
  }
  for (int i = 0; i < nt; i++) {
    mcstore__offload_task__init(&tv[i]);
    tv[i].task_id = tasks[i].id;
    tv[i].key = tasks[i].key;
    rep_desc(&tasks[i].src, &rd[2 * i]);
    rep_desc(&tasks[i].dst, &rd[2 * i + 1]);
    tv[i].source = &rd[2 * i];
    tv[i].target = &rd[2 * i + 1];
    tp[i] = &tv[i];
  }
  for (int i = 0; i < ntr; i++) {
    mcstore__disk_extent__init(&ev[i]);
    ev[i].id = trims[i].id;
    ev[i].segment_id.data = trims[i].seg->id;
    ev[i].segment_id.len = MCS_CLIENT_ID_LEN;
    ev[i].address = trims[i].addr;
    ev[i].size = trims[i].size;
    ep[i] = &ev[i];
  }
  out.code = code;
  out.n_tasks = (size_t)nt;
  out.tasks = tp;
  out.n_trims = (size_t)ntr;
  out.trims = ep;
  int rc = pack(&out.base, resp, rlen, err, errlen);
  mcs_task_out_release(tasks, nt);
  mcs_trim_out_release(trims, ntr);
  free(tasks);
  free(trims);
  free(tv);
  free(tp);
  free(rd);
  free(ev);
  free(ep);
  return rc;
}

HANDLER(h_promote_start, Mcstore__PromoteStartRequest, mcstore__promote_start_request) {
  Mcstore__PutStartResponse out;
  mcstore__put_start_response__init(&out);
  mcs_put_cfg cfg;
  put_cfg(req->config, &cfg);
  int code = check_hdr(m, req->header);
  if (!code && !cfg_valid(&cfg))
    code = E(INVALID_PARAMS);
  if (!code && !mcs_client_known(m, req->header->client_id.data))
    code = E(CLIENT_NOT_FOUND);
  desc_buf d;
  if (desc_reserve(&d, 1) != 0 && !code)
    code = E(INTERNAL_ERROR);
  if (!code) {
    int n = 0;
    code = mcs_promote_start(m, req->header->client_id.data, req->key, strlen(req->key),
                             req->version, &cfg, &d.reps[d.n], &n);
    out.n_replicas = (size_t)n;
    out.replicas = desc_fill(&d, n);
  }
  out.code = code;
  int rc = pack(&out.base, resp, rlen, err, errlen);
  desc_free(&d);
  return rc;
}

static const struct {
  const char *call;
  mc_rpc_unary_handler fn;
} calls[] = {
    {"MountSegment", h_mount},         {"ReMountSegment", h_remount},
    {"UnmountSegment", h_unmount},     {"Ping", h_ping},
    {"PutStart", h_put_start},         {"PutEnd", h_put_end},
    {"PutRevoke", h_put_revoke},       {"BatchPutStart", h_batch_put_start},
    {"BatchPutEnd", h_batch_put_end},  {"BatchPutRevoke", h_batch_put_revoke},
    {"UpsertStart", h_upsert_start},   {"UpsertEnd", h_put_end},
    {"UpsertRevoke", h_put_revoke},    {"BatchUpsertStart", h_batch_upsert_start},
    {"BatchUpsertEnd", h_batch_put_end}, {"BatchUpsertRevoke", h_batch_put_revoke},
    {"GetReplicaList", h_get},         {"BatchGetReplicaList", h_batch_get},
    {"ExistKey", h_exist},             {"BatchExistKey", h_batch_exist},
    {"Remove", h_remove},              {"BatchRemove", h_batch_remove},
    {"RemoveByRegex", h_remove_regex}, {"RemoveAll", h_remove_all},
    {"GetStats", h_stats},             {"ListKeys", h_list},
    {"OffloadSync", h_offload_sync},   {"PromoteStart", h_promote_start},
};
#define NCALLS (sizeof(calls) / sizeof(calls[0]))

int mcs_service_register(mc_rpc_server *srv, mcs_master *m) {
  for (size_t i = 0; i < NCALLS; i++) {
    char path[96];
    snprintf(path, sizeof path, MCS_SERVICE "%s", calls[i].call);
    int rc = mc_rpc_server_add_unary(srv, path, calls[i].fn, m);
    if (rc)
      return rc;
  }
  return 0;
}

const char *mcs_service_call_name(size_t i) { return i < NCALLS ? calls[i].call : NULL; }

int mcs_service_call(mcs_master *m, size_t i, const void *req, size_t len, void **resp,
                     size_t *rlen, char *err, size_t errlen) {
  if (i >= NCALLS)
    return GRPC_STATUS_UNIMPLEMENTED;
  *resp = NULL;
  *rlen = 0;
  return calls[i].fn(m, req, len, resp, rlen, err, errlen);
}
