/* The store client's calls to the master (store/proto/master.proto), one
 * function per call, translating between the protobuf-c messages and the
 * client's sc_obj.  Codes in answers are upstream's, as are MC_STORE_*. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc.h"
#include "store_proto.h"

struct sc_master {
  mc_rpc_channel *ch;
  char target[MC_NAME_MAX];
  _Atomic uint64_t view_version; /* pinged from the ping thread and health_check */
};

#define SC_CALL(s, name, req, rdesc, resp)                                     \
  mcs_call((s)->master->ch, #name, &(req).base, &(rdesc), (ProtobufCMessage **)(resp), \
           (s)->rpc_timeout_ms, &st)

static void hdr(mc_store *s, Mcstore__RequestHeader *h) {
  mcs_header_set(h, s->client_id, s->token_len ? s->token : NULL, s->token_len);
}

static void take_replicas(sc_obj *o, Mcstore__ReplicaDesc **r, size_t n, uint64_t size);
static void fill_cfg(Mcstore__ReplicateConfig *c, const mc_store_replicate_config *cfg);

static int rpc_err(mc_store *s, const char *call, int rc, const mc_rpc_status *st) {
  return sc_fail(rc, "%s: master %s: %s", call, s->master->target,
                 st->message[0] ? st->message : mcs_strerror(rc));
}

int scm_open(mc_store *s, const char *target) {
  s->master = calloc(1, sizeof *s->master);
  if (!s->master)
    return sc_fail(MC_STORE_INTERNAL_ERROR, "connect: out of memory");
  snprintf(s->master->target, sizeof s->master->target, "%s", target);
  if (mc_rpc_global_init()) {
    free(s->master);
    s->master = NULL;
    return sc_fail(MC_STORE_RPC_FAIL, "connect: gRPC did not start");
  }
  int rc = mc_rpc_channel_create(target, &s->master->ch);
  if (rc) {
    mc_rpc_global_fini();
    free(s->master);
    s->master = NULL;
    return sc_fail(MC_STORE_INVALID_PARAMS, "connect: bad master address '%s'", target);
  }
  return 0;
}

void scm_close(mc_store *s) {
  if (!s->master)
    return;
  mc_rpc_channel_destroy(s->master->ch);
  mc_rpc_global_fini();
  free(s->master);
  s->master = NULL;
}

static void seg_desc(mc_store *s, Mcstore__SegmentDesc *d) {
  mcstore__segment_desc__init(d);
  d->id.data = s->segment_id;
  d->id.len = sizeof s->segment_id;
  d->name = s->seg_name;
  d->base_address = (uint64_t)(uintptr_t)s->seg_base;
  d->size = s->seg_size;
  d->protocol = s->protocol;
  d->host = s->hostname;
}

static void disk_desc(mc_store *s, Mcstore__SegmentDesc *d) {
  mcstore__segment_desc__init(d);
  d->id.data = s->ssd_segment_id;
  d->id.len = sizeof s->ssd_segment_id;
  d->name = s->seg_name;
  d->base_address = (uint64_t)(uintptr_t)s->ssd_base;
  d->size = s->ssd_size;
  d->protocol = s->protocol;
  d->host = s->hostname;
  d->disk = 1;
}

int scm_mount(mc_store *s, int remount) {
  mc_rpc_status st;
  Mcstore__SegmentDesc d, dd;
  Mcstore__SegmentDesc *dp[2];
  size_t nd = 0;
  seg_desc(s, &d);
  disk_desc(s, &dd);
  if (s->seg_base)
    dp[nd++] = &d;
  if (s->ssd_mode)
    dp[nd++] = &dd; /* a restarted master gets the SSD tier back (empty) */
  Mcstore__RequestHeader h;
  hdr(s, &h);
  int rc, code;
  if (remount) {
    Mcstore__ReMountSegmentRequest req = MCSTORE__RE_MOUNT_SEGMENT_REQUEST__INIT;
    req.header = &h;
    req.n_segments = nd;
    req.segments = dp;
    Mcstore__ReMountSegmentResponse *resp = NULL;
    rc = SC_CALL(s, ReMountSegment, req, mcstore__re_mount_segment_response__descriptor, &resp);
    if (rc)
      return rpc_err(s, "remount", rc, &st);
    code = resp->code;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  } else {
    Mcstore__MountSegmentRequest req = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
    req.header = &h;
    req.segment = &d;
    Mcstore__MountSegmentResponse *resp = NULL;
    rc = SC_CALL(s, MountSegment, req, mcstore__mount_segment_response__descriptor, &resp);
    if (rc)
      return rpc_err(s, "mount", rc, &st);
    code = resp->code;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  if (code)
    return sc_fail(code, "%s segment %s (%llu bytes): the master refused: %s",
                   remount ? "remount" : "mount", s->seg_name,
                   (unsigned long long)s->seg_size, mcs_strerror(code));
  return 0;
}

int scm_mount_disk(mc_store *s) {
  mc_rpc_status st;
  Mcstore__SegmentDesc d;
  disk_desc(s, &d);
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__MountSegmentRequest req = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
  req.header = &h;
  req.segment = &d;
  Mcstore__MountSegmentResponse *resp = NULL;
  int rc = SC_CALL(s, MountSegment, req, mcstore__mount_segment_response__descriptor, &resp);
  if (rc)
    return rpc_err(s, "mount SSD tier", rc, &st);
  int code = resp->code;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  if (code == MC_STORE_NOT_SUPPORTED)
    return sc_fail(code, "mount SSD tier %s: the master refuses SSD tiers "
                   "(it runs with --enable_offload=false)", s->ssd_path);
  if (code)
    return sc_fail(code, "mount SSD tier %s (%llu bytes): the master refused: %s", s->ssd_path,
                   (unsigned long long)s->ssd_size, mcs_strerror(code));
  return 0;
}

static int unmount_id(mc_store *s, const uint8_t *id) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__UnmountSegmentRequest req = MCSTORE__UNMOUNT_SEGMENT_REQUEST__INIT;
  req.header = &h;
  req.segment_id.data = (uint8_t *)(uintptr_t)id;
  req.segment_id.len = 16;
  Mcstore__UnmountSegmentResponse *resp = NULL;
  int rc = SC_CALL(s, UnmountSegment, req, mcstore__unmount_segment_response__descriptor, &resp);
  if (rc)
    return rpc_err(s, "unmount", rc, &st);
  int code = resp->code;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code ? sc_fail(code, "unmount %s: %s", s->seg_name, mcs_strerror(code)) : 0;
}

int scm_unmount(mc_store *s) { return unmount_id(s, s->segment_id); }
int scm_unmount_disk(mc_store *s) { return unmount_id(s, s->ssd_segment_id); }

/* A replica descriptor from the master into r; 0 or -1 when malformed. */
static int take_one(const Mcstore__ReplicaDesc *d, sc_replica *r) {
  if (!d || !d->segment_name || !*d->segment_name || strlen(d->segment_name) >= MC_NAME_MAX)
    return -1;
  snprintf(r->segment, sizeof r->segment, "%s", d->segment_name);
  r->addr = d->address;
  r->size = d->size;
  r->disk = d->disk;
  return 0;
}

int scm_offload_sync(mc_store *s, const uint64_t *done, size_t ndone, const uint64_t *failed,
                     size_t nfailed, const uint64_t *trimmed, size_t ntrimmed, uint32_t max,
                     sc_task *tasks, uint32_t *ntasks, sc_trim *trims, uint32_t *ntrims) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__OffloadSyncRequest req = MCSTORE__OFFLOAD_SYNC_REQUEST__INIT;
  req.header = &h;
  req.n_done = ndone;
  req.done = (uint64_t *)(uintptr_t)done;
  req.n_failed = nfailed;
  req.failed = (uint64_t *)(uintptr_t)failed;
  req.n_trimmed = ntrimmed;
  req.trimmed = (uint64_t *)(uintptr_t)trimmed;
  req.max_tasks = max;
  Mcstore__OffloadSyncResponse *resp = NULL;
  *ntasks = *ntrims = 0;
  int rc = SC_CALL(s, OffloadSync, req, mcstore__offload_sync_response__descriptor, &resp);
  if (rc)
    return rpc_err(s, "OffloadSync", rc, &st);
  int code = resp->code;
  for (size_t i = 0; !code && i < resp->n_tasks && *ntasks < max; i++) {
    Mcstore__OffloadTask *t = resp->tasks[i];
    sc_task *o = &tasks[*ntasks];
    o->id = t->task_id;
    if (take_one(t->source, &o->src) == 0 && take_one(t->target, &o->dst) == 0)
      (*ntasks)++;
  }
  for (size_t i = 0; !code && i < resp->n_trims && *ntrims < max; i++) {
    Mcstore__DiskExtent *e = resp->trims[i];
    trims[(*ntrims)++] = (sc_trim){e->id, e->address, e->size};
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code ? sc_fail(code, "OffloadSync: %s", mcs_strerror(code)) : 0;
}

int scm_promote_start(mc_store *s, const char *key, uint64_t version, sc_obj *out) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__ReplicateConfig c;
  fill_cfg(&c, NULL);
  Mcstore__PromoteStartRequest req = MCSTORE__PROMOTE_START_REQUEST__INIT;
  req.header = &h;
  req.key = (char *)(uintptr_t)key;
  req.version = version;
  req.config = &c;
  Mcstore__PutStartResponse *resp = NULL;
  int rc = SC_CALL(s, PromoteStart, req, mcstore__put_start_response__descriptor, &resp);
  if (rc)
    return rpc_err(s, "PromoteStart", rc, &st);
  out->err = resp->code;
  take_replicas(out, resp->replicas, resp->n_replicas, 0);
  if (!out->err && !out->n)
    out->err = MC_STORE_NO_AVAILABLE_HANDLE;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return out->err;
}

int scm_tier_stats(mc_store *s, mc_store_tier_stats *out) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__GetStatsRequest req = MCSTORE__GET_STATS_REQUEST__INIT;
  req.header = &h;
  Mcstore__GetStatsResponse *resp = NULL;
  int rc = SC_CALL(s, GetStats, req, mcstore__get_stats_response__descriptor, &resp);
  if (rc)
    return rpc_err(s, "GetStats", rc, &st);
  int code = resp->code;
  if (!code) {
    out->disk_capacity = resp->disk_capacity;
    out->disk_used = resp->disk_used;
    out->offloaded_objects = resp->offloaded_objects;
    out->pending_offloads = resp->pending_offloads;
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code ? sc_fail(code, "tier stats: %s", mcs_strerror(code)) : 0;
}

int scm_ping(mc_store *s, int *need_remount) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__PingRequest req = MCSTORE__PING_REQUEST__INIT;
  req.header = &h;
  req.view_version = atomic_load(&s->master->view_version);
  Mcstore__PingResponse *resp = NULL;
  int rc = SC_CALL(s, Ping, req, mcstore__ping_response__descriptor, &resp);
  if (rc)
    return rpc_err(s, "ping", rc, &st);
  int code = resp->code;
  *need_remount = resp->client_status == MCSTORE__CLIENT_STATUS__NEED_REMOUNT;
  atomic_store(&s->master->view_version, resp->view_version);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code ? sc_fail(code, "ping: %s", mcs_strerror(code)) : 0;
}

uint64_t scm_view(mc_store *s) { return atomic_load(&s->master->view_version); }

/* Copies a replica list into o (complete ones for reads). */
static void take_replicas(sc_obj *o, Mcstore__ReplicaDesc **r, size_t n, uint64_t size) {
  o->n = 0;
  o->size = size;
  for (size_t i = 0; i < n && o->n < MC_STORE_MAX_REPLICAS; i++) {
    if (!r[i]->segment_name || !*r[i]->segment_name)
      continue;
    sc_replica *d = &o->r[o->n++];
    snprintf(d->segment, sizeof d->segment, "%s", r[i]->segment_name);
    d->addr = r[i]->address;
    d->size = r[i]->size;
    d->disk = r[i]->disk;
    if (!o->size)
      o->size = d->size;
  }
}

static void fill_cfg(Mcstore__ReplicateConfig *c, const mc_store_replicate_config *cfg) {
  mcstore__replicate_config__init(c);
  if (!cfg)
    return;
  c->replica_num = cfg->replica_num;
  c->with_soft_pin = cfg->with_soft_pin != 0;
  c->with_hard_pin = cfg->with_hard_pin != 0;
  c->n_preferred_segments = cfg->preferred_count;
  c->preferred_segments = (char **)(uintptr_t)cfg->preferred_segments;
}

int scm_put_start(mc_store *s, int upsert, const char *const *keys,
                  const uint64_t *sizes, uint32_t n,
                  const mc_store_replicate_config *cfg, sc_obj *out) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__ReplicateConfig c;
  fill_cfg(&c, cfg);
  const char *call = upsert ? "UpsertStart" : "PutStart";
  if (n == 1) {
    Mcstore__PutStartRequest req = MCSTORE__PUT_START_REQUEST__INIT;
    req.header = &h;
    req.key = (char *)(uintptr_t)keys[0];
    req.value_length = sizes[0];
    req.config = &c;
    Mcstore__PutStartResponse *resp = NULL;
    int rc = mcs_call(s->master->ch, call, &req.base, &mcstore__put_start_response__descriptor,
                      (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
    if (rc)
      return rpc_err(s, call, rc, &st);
    out[0].err = resp->code;
    take_replicas(&out[0], resp->replicas, resp->n_replicas, sizes[0]);
    if (!out[0].err && !out[0].n)
      out[0].err = MC_STORE_NO_AVAILABLE_HANDLE;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
  }
  Mcstore__BatchPutStartRequest req = MCSTORE__BATCH_PUT_START_REQUEST__INIT;
  req.header = &h;
  req.n_keys = n;
  req.keys = (char **)(uintptr_t)keys;
  req.n_value_lengths = n;
  req.value_lengths = (uint64_t *)(uintptr_t)sizes;
  req.config = &c;
  Mcstore__BatchPutStartResponse *resp = NULL;
  const char *bcall = upsert ? "BatchUpsertStart" : "BatchPutStart";
  int rc = mcs_call(s->master->ch, bcall, &req.base, &mcstore__batch_put_start_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, bcall, rc, &st);
  for (uint32_t i = 0; i < n; i++) {
    if (i >= resp->n_results) {
      out[i].err = MC_STORE_RPC_FAIL;
      out[i].n = 0;
      continue;
    }
    out[i].err = resp->results[i]->code;
    take_replicas(&out[i], resp->results[i]->replicas, resp->results[i]->n_replicas, sizes[i]);
    if (!out[i].err && !out[i].n)
      out[i].err = MC_STORE_NO_AVAILABLE_HANDLE;
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return 0;
}

/* One KeyRequest call (PutEnd, Remove, ...): the answer's code. */
static int key_call(mc_store *s, const char *call, const char *key, int force) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__KeyRequest req = MCSTORE__KEY_REQUEST__INIT;
  req.header = &h;
  req.key = (char *)(uintptr_t)key;
  req.force = force != 0;
  Mcstore__CodeResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, call, &req.base, &mcstore__code_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, call, rc, &st);
  int code = resp->code;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code;
}

/* One BatchKeyRequest call answered by codes: res[i]. */
static int batch_key_call(mc_store *s, const char *call, const char *const *keys,
                          uint32_t n, int force, int *res) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__BatchKeyRequest req = MCSTORE__BATCH_KEY_REQUEST__INIT;
  req.header = &h;
  req.n_keys = n;
  req.keys = (char **)(uintptr_t)keys;
  req.force = force != 0;
  Mcstore__BatchCodeResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, call, &req.base, &mcstore__batch_code_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, call, rc, &st);
  for (uint32_t i = 0; i < n && res; i++)
    res[i] = i < resp->n_codes ? resp->codes[i] : MC_STORE_RPC_FAIL;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return 0;
}

int scm_put_finish(mc_store *s, int upsert, int ok, const char *const *keys,
                   uint32_t n, int *res) {
  static const char *const names[2][2][2] = {
      {{"PutRevoke", "PutEnd"}, {"UpsertRevoke", "UpsertEnd"}},
      {{"BatchPutRevoke", "BatchPutEnd"}, {"BatchUpsertRevoke", "BatchUpsertEnd"}}};
  if (n == 1) {
    int code = key_call(s, names[0][upsert != 0][ok != 0], keys[0], 0);
    if (res)
      res[0] = code;
    return code < 0 && code <= MC_STORE_RPC_FAIL && code >= MC_STORE_RPC_TIMEOUT ? code : 0;
  }
  return batch_key_call(s, names[1][upsert != 0][ok != 0], keys, n, 0, res);
}

int scm_get_replicas(mc_store *s, const char *const *keys, uint32_t n, sc_obj *out) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  if (n == 1) {
    Mcstore__GetReplicaListRequest req = MCSTORE__GET_REPLICA_LIST_REQUEST__INIT;
    req.header = &h;
    req.key = (char *)(uintptr_t)keys[0];
    Mcstore__GetReplicaListResponse *resp = NULL;
    int rc = mcs_call(s->master->ch, "GetReplicaList", &req.base,
                      &mcstore__get_replica_list_response__descriptor,
                      (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
    if (rc)
      return rpc_err(s, "GetReplicaList", rc, &st);
    out[0].err = resp->code;
    out[0].lease_ttl_ms = resp->lease_ttl_ms;
    out[0].version = resp->version;
    take_replicas(&out[0], resp->replicas, resp->n_replicas, 0);
    if (!out[0].err && !out[0].n)
      out[0].err = MC_STORE_OBJECT_NOT_FOUND;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
  }
  Mcstore__BatchKeyRequest req = MCSTORE__BATCH_KEY_REQUEST__INIT;
  req.header = &h;
  req.n_keys = n;
  req.keys = (char **)(uintptr_t)keys;
  Mcstore__BatchGetReplicaListResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, "BatchGetReplicaList", &req.base,
                    &mcstore__batch_get_replica_list_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, "BatchGetReplicaList", rc, &st);
  for (uint32_t i = 0; i < n; i++) {
    if (i >= resp->n_results) {
      out[i].err = MC_STORE_RPC_FAIL;
      out[i].n = 0;
      continue;
    }
    Mcstore__GetReplicaListResponse *r = resp->results[i];
    out[i].err = r->code;
    out[i].lease_ttl_ms = r->lease_ttl_ms;
    out[i].version = r->version;
    take_replicas(&out[i], r->replicas, r->n_replicas, 0);
    if (!out[i].err && !out[i].n)
      out[i].err = MC_STORE_OBJECT_NOT_FOUND;
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return 0;
}

int scm_exist(mc_store *s, const char *const *keys, uint32_t n, int *res) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  if (n == 1) {
    Mcstore__GetReplicaListRequest req = MCSTORE__GET_REPLICA_LIST_REQUEST__INIT;
    req.header = &h;
    req.key = (char *)(uintptr_t)keys[0];
    Mcstore__ExistKeyResponse *resp = NULL;
    int rc = mcs_call(s->master->ch, "ExistKey", &req.base, &mcstore__exist_key_response__descriptor,
                      (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
    if (rc)
      return rpc_err(s, "ExistKey", rc, &st);
    res[0] = resp->code ? resp->code : resp->exists ? 1 : 0;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
  }
  Mcstore__BatchKeyRequest req = MCSTORE__BATCH_KEY_REQUEST__INIT;
  req.header = &h;
  req.n_keys = n;
  req.keys = (char **)(uintptr_t)keys;
  Mcstore__BatchExistKeyResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, "BatchExistKey", &req.base,
                    &mcstore__batch_exist_key_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, "BatchExistKey", rc, &st);
  for (uint32_t i = 0; i < n; i++) {
    if (i >= resp->n_results) {
      res[i] = MC_STORE_RPC_FAIL;
      continue;
    }
    res[i] = resp->results[i]->code ? resp->results[i]->code : resp->results[i]->exists ? 1 : 0;
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return 0;
}

int scm_remove(mc_store *s, const char *key, int force) {
  return key_call(s, "Remove", key, force);
}

static int64_t count_answer(mc_store *s, const char *call, int rc, Mcstore__CountResponse *resp,
                            const mc_rpc_status *st) {
  if (rc)
    return rpc_err(s, call, rc, st);
  int64_t v = resp->code ? (int64_t)resp->code : (int64_t)resp->removed;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return v;
}

int64_t scm_remove_regex(mc_store *s, const char *regex, int force) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__RemoveByRegexRequest req = MCSTORE__REMOVE_BY_REGEX_REQUEST__INIT;
  req.header = &h;
  req.regex = (char *)(uintptr_t)regex;
  req.force = force != 0;
  Mcstore__CountResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, "RemoveByRegex", &req.base, &mcstore__count_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  return count_answer(s, "RemoveByRegex", rc, resp, &st);
}

int64_t scm_remove_all(mc_store *s, int force) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__RemoveAllRequest req = MCSTORE__REMOVE_ALL_REQUEST__INIT;
  req.header = &h;
  req.force = force != 0;
  Mcstore__CountResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, "RemoveAll", &req.base, &mcstore__count_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  return count_answer(s, "RemoveAll", rc, resp, &st);
}

int64_t scm_list(mc_store *s, const char *regex, uint32_t limit, mc_store_list_fn fn,
                 void *arg) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__ListKeysRequest req = MCSTORE__LIST_KEYS_REQUEST__INIT;
  req.header = &h;
  req.regex = (char *)(uintptr_t)(regex ? regex : "");
  req.limit = limit;
  Mcstore__ListKeysResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, "ListKeys", &req.base, &mcstore__list_keys_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, "ListKeys", rc, &st);
  int64_t n = 0;
  if (resp->code) {
    n = sc_fail(resp->code, "list '%s': %s", req.regex, mcs_strerror(resp->code));
  } else {
    for (size_t i = 0; i < resp->n_keys; i++) {
      n++;
      if (fn && fn(arg, resp->keys[i], i < resp->n_sizes ? resp->sizes[i] : 0))
        break;
    }
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return n;
}

int scm_stats(mc_store *s, mc_store_stats *out) {
  mc_rpc_status st;
  Mcstore__RequestHeader h;
  hdr(s, &h);
  Mcstore__GetStatsRequest req = MCSTORE__GET_STATS_REQUEST__INIT;
  req.header = &h;
  Mcstore__GetStatsResponse *resp = NULL;
  int rc = mcs_call(s->master->ch, "GetStats", &req.base, &mcstore__get_stats_response__descriptor,
                    (ProtobufCMessage **)&resp, s->rpc_timeout_ms, &st);
  if (rc)
    return rpc_err(s, "GetStats", rc, &st);
  int code = resp->code;
  if (!code)
    *out = (mc_store_stats){resp->capacity, resp->used, resp->objects, resp->segments,
                            resp->clients, resp->evicted_objects, resp->expired_clients,
                            resp->pending_puts};
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code ? sc_fail(code, "stats: %s", mcs_strerror(code)) : 0;
}

void scm_reset(mc_store *s) { mc_rpc_channel_reset(s->master->ch); }
