/* etcd v3 client: KV, Txn, Lease and Watch over the RPC layer, with
 * endpoint failover.  See etcd_client.h. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd/etcd.pb-c.h"
#include "etcd/etcd_client.h"
#include "mooncake/errors.h"
#include "log.h"
#include "net.h"
#include "rpc/rpc.h"

#define M_RANGE "/etcdserverpb.KV/Range"
#define M_PUT "/etcdserverpb.KV/Put"
#define M_DELETE "/etcdserverpb.KV/DeleteRange"
#define M_TXN "/etcdserverpb.KV/Txn"
#define M_GRANT "/etcdserverpb.Lease/LeaseGrant"
#define M_REVOKE "/etcdserverpb.Lease/LeaseRevoke"
#define M_KEEPALIVE "/etcdserverpb.Lease/LeaseKeepAlive"
#define M_WATCH "/etcdserverpb.Watch/Watch"

/* Smallest share of the deadline one endpoint gets before we move on. */
#define MIN_ATTEMPT_MS 250

/* An endpoint failing this long gets a fresh channel (see
 * mc_rpc_channel_reset), at most once per period. */
#define RESET_AFTER_MS 2500

struct mc_etcd {
  const mc_logger *log;
  int n;
  mc_rpc_channel *ch[MC_ETCD_MAX_ENDPOINTS];
  atomic_int cur; /* endpoint that answered last */
  /* Per endpoint: when it started failing (0: healthy), last reset. */
  _Atomic uint64_t fail_since[MC_ETCD_MAX_ENDPOINTS];
  _Atomic uint64_t last_reset[MC_ETCD_MAX_ENDPOINTS];
  atomic_int down_warned;  /* "retrying" said once until one answers again */
  char endpoints[1024];    /* "h:p, h:p" for messages */
};

static void note_ok(mc_etcd *e, int idx) { atomic_store(&e->fail_since[idx], 0); }

static void note_fail(mc_etcd *e, int idx) {
  uint64_t now = mc_now_ms(), zero = 0;
  if (atomic_compare_exchange_strong(&e->fail_since[idx], &zero, now))
    return;
  uint64_t since = atomic_load(&e->fail_since[idx]);
  uint64_t last = atomic_load(&e->last_reset[idx]);
  if (now - since >= RESET_AFTER_MS && now - last >= RESET_AFTER_MS &&
      atomic_compare_exchange_strong(&e->last_reset[idx], &last, now)) {
    MC_DEBUG(e->log, "etcd", "endpoint %s failing for %llu ms: new channel",
             mc_rpc_channel_target(e->ch[idx]), (unsigned long long)(now - since));
    mc_rpc_channel_reset(e->ch[idx]);
  }
}

struct mc_etcd_watch {
  mc_etcd *e;
  mc_rpc_stream *s;
  int ep;
  int64_t rev;
};

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}


int mc_etcd_create(const char *endpoints, const mc_logger *log, mc_etcd **out,
                   char *err, size_t errlen) {
  if (!endpoints || !*endpoints) {
    mc_seterr(err, errlen, "etcd: no endpoints given");
    return MC_EINVAL;
  }
  mc_etcd *e = calloc(1, sizeof(*e));
  char *list = strdup(endpoints);
  if (!e || !list) {
    free(e);
    free(list);
    return MC_ENOMEM;
  }
  e->log = log;
  int rc = 0;
  char *save = NULL;
  for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char host[256];
    uint16_t port;
    if (mc_net_split_hostport(tok, host, sizeof(host), &port) != 0 || port == 0) {
      mc_seterr(err, errlen, "etcd: bad endpoint '%s' in '%s' (want host:port)", tok, endpoints);
      rc = MC_EINVAL;
      break;
    }
    if (e->n == MC_ETCD_MAX_ENDPOINTS) {
      mc_seterr(err, errlen, "etcd: more than %d endpoints in '%s'", MC_ETCD_MAX_ENDPOINTS, endpoints);
      rc = MC_EINVAL;
      break;
    }
    if ((rc = mc_rpc_channel_create(tok, &e->ch[e->n])) != 0) {
      mc_seterr(err, errlen, "etcd: cannot create channel to '%s'", tok);
      break;
    }
    size_t el = strlen(e->endpoints);
    snprintf(e->endpoints + el, sizeof(e->endpoints) - el, "%s%s", el ? ", " : "", tok);
    e->n++;
  }
  free(list);
  if (rc == 0 && e->n == 0) {
    mc_seterr(err, errlen, "etcd: no endpoints in '%s'", endpoints);
    rc = MC_EINVAL;
  }
  if (rc) {
    mc_etcd_destroy(e);
    return rc;
  }
  *out = e;
  return 0;
}

void mc_etcd_destroy(mc_etcd *e) {
  if (!e)
    return;
  for (int i = 0; i < e->n; i++)
    mc_rpc_channel_destroy(e->ch[i]);
  free(e);
}

const char *mc_etcd_current_endpoint(mc_etcd *e) {
  return mc_rpc_channel_target(e->ch[atomic_load(&e->cur)]);
}

static int retryable(int code) {
  return code == 14 /* UNAVAILABLE */ || code == 4 /* DEADLINE_EXCEEDED */;
}

/* Per-attempt budget: the remaining time shared among the endpoints not
 * yet tried in this round, so one dead member cannot eat the deadline. */
static int attempt_budget(uint64_t deadline, int left_in_round) {
  uint64_t now = mc_now_ms();
  if (now >= deadline)
    return 0;
  uint64_t rem = deadline - now, b = rem / (uint64_t)left_in_round;
  if (b < MIN_ATTEMPT_MS)
    b = rem < MIN_ATTEMPT_MS ? rem : MIN_ATTEMPT_MS;
  return (int)b;
}

/* One try of an operation against endpoint idx within budget ms. */
typedef int (*attempt_fn)(mc_etcd *e, int idx, int budget, mc_rpc_status *st,
                          void *arg);

/* Tries fn on the endpoints in turn, starting at the one that answered
 * last, until it succeeds, fails for a reason another endpoint cannot fix,
 * or the deadline passes.  Besides UNAVAILABLE and DEADLINE_EXCEEDED, the
 * MC_E* codes in also_retry (0-terminated, may be NULL) move on to the next
 * endpoint.  *used gets the endpoint tried last. */
static int failover(mc_etcd *e, const char *what, int timeout_ms, attempt_fn fn,
                    void *arg, const int *also_retry, int *used, char *err,
                    size_t errlen) {
  uint64_t deadline = mc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 5000);
  int start = atomic_load(&e->cur), rc = MC_ETIMEDOUT, idx = start;
  mc_rpc_status st = {.code = 4, .message = "DEADLINE_EXCEEDED: no attempt made"};
  int exhausted = 0; /* the deadline, not an answer, ended the loop */
  int tried = idx;   /* the endpoint st came from */
  for (int attempt = 0;; attempt++) {
    idx = (start + attempt) % e->n;
    int budget = attempt_budget(deadline, e->n - attempt % e->n);
    if (budget <= 0)
      break;
    rc = fn(e, idx, budget, &st, arg);
    tried = idx;
    int retry = rc != 0 && retryable(st.code);
    for (const int *c = also_retry; rc && c && *c; c++)
      retry |= rc == *c;
    if (retry)
      note_fail(e, idx);
    else
      note_ok(e, idx); /* it answered, even if with an error */
    if (rc == 0) {
      if (atomic_exchange(&e->down_warned, 0))
        MC_INFO(e->log, "etcd", "etcd answers again via %s", mc_rpc_channel_target(e->ch[idx]));
      if (idx != start) {
        MC_INFO(e->log, "etcd", "now using endpoint %s", mc_rpc_channel_target(e->ch[idx]));
        atomic_store(&e->cur, idx);
      }
      *used = idx;
      return 0;
    }
    exhausted = retry;
    if (!retry)
      break;
    MC_DEBUG(e->log, "etcd", "%s via %s: %s; trying next endpoint", what,
             mc_rpc_channel_target(e->ch[idx]), st.message);
    if (attempt % e->n == e->n - 1) { /* a full round failed: brief pause */
      uint64_t now = mc_now_ms();
      /* Say once, while etcd stays down, what is retried and for how long,
       * so a wrong address does not look like a hang. */
      if (now + MIN_ATTEMPT_MS < deadline && !atomic_exchange(&e->down_warned, 1))
        MC_WARN(e->log, "etcd",
                "no etcd endpoint answers (%s: %s); retrying %s on %s for up to "
                "%.1f s",
                mc_rpc_channel_target(e->ch[idx]), st.message, what, e->endpoints,
                (double)(deadline - now) / 1000.0);
      sleep_ms(50);
    }
  }
  *used = tried;
  if (exhausted)
    mc_seterr(err, errlen,
              "etcd %s: no endpoint answered within %d ms (endpoints: %s); last error "
              "from %s: %s",
              what, timeout_ms > 0 ? timeout_ms : 5000, e->endpoints,
              mc_rpc_channel_target(e->ch[tried]), st.message);
  else
    mc_seterr(err, errlen, "etcd %s via %s: %s", what, mc_rpc_channel_target(e->ch[tried]),
              st.message);
  return rc;
}

typedef struct unary_call {
  const char *method;
  const ProtobufCMessage *req;
  const ProtobufCMessageDescriptor *rd;
  ProtobufCMessage **resp;
} unary_call;

static int unary_attempt(mc_etcd *e, int idx, int budget, mc_rpc_status *st,
                         void *arg) {
  unary_call *u = arg;
  mc_rpc_call_opts o = {.timeout_ms = budget};
  return mc_rpc_unary_pb(e->ch[idx], u->method, u->req, u->rd, u->resp, &o, st);
}

static int call(mc_etcd *e, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp,
                int timeout_ms, char *err, size_t errlen) {
  unary_call u = {method, req, rd, resp};
  int used;
  return failover(e, method, timeout_ms, unary_attempt, &u, NULL, &used, err, errlen);
}

static ProtobufCBinaryData bin(const void *p, size_t len) {
  ProtobufCBinaryData b = {len, (uint8_t *)p};
  return b;
}

/* range_end for "every key starting with prefix": prefix with its last
 * non-0xff byte incremented; "\0" (all keys) if there is none. */
static size_t prefix_end(const char *prefix, char *out, size_t outlen) {
  size_t n = strlen(prefix);
  if (n > outlen)
    n = outlen;
  memcpy(out, prefix, n);
  while (n > 0) {
    if ((unsigned char)out[n - 1] < 0xff) {
      out[n - 1]++;
      return n;
    }
    n--;
  }
  out[0] = 0;
  return 1;
}

int mc_etcd_put(mc_etcd *e, const char *key, const void *val, size_t len,
                int64_t lease, int timeout_ms, char *err, size_t errlen) {
  Etcdserverpb__PutRequest rq = ETCDSERVERPB__PUT_REQUEST__INIT;
  rq.key = bin(key, strlen(key));
  rq.value = bin(val, len);
  rq.lease = lease;
  ProtobufCMessage *r = NULL;
  int rc = call(e, M_PUT, &rq.base, &etcdserverpb__put_response__descriptor, &r,
                timeout_ms, err, errlen);
  if (r)
    protobuf_c_message_free_unpacked(r, NULL);
  return rc;
}

int mc_etcd_get(mc_etcd *e, const char *key, void **val, size_t *len,
                int64_t *mod_rev, int timeout_ms, char *err, size_t errlen) {
  Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
  rq.key = bin(key, strlen(key));
  ProtobufCMessage *m = NULL;
  int rc = call(e, M_RANGE, &rq.base, &etcdserverpb__range_response__descriptor,
                &m, timeout_ms, err, errlen);
  if (rc)
    return rc;
  Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)m;
  if (r->n_kvs == 0 || !r->kvs[0]) {
    mc_seterr(err, errlen, "etcd: no key '%s'", key);
    rc = MC_ENOENT;
  } else {
    Etcdserverpb__KeyValue *kv = r->kvs[0];
    char *p = malloc(kv->value.len + 1);
    if (!p) {
      rc = MC_ENOMEM;
    } else {
      if (kv->value.len)
        memcpy(p, kv->value.data, kv->value.len);
      p[kv->value.len] = 0;
      *val = p;
      *len = kv->value.len;
      if (mod_rev)
        *mod_rev = kv->mod_revision;
    }
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

static int deliver_range(Etcdserverpb__RangeResponse *r, mc_etcd_kv_fn fn,
                         mc_etcd_kvrev_fn fn_rev, void *arg, char *err,
                         size_t errlen) {
  for (size_t i = 0; i < r->n_kvs; i++) {
    Etcdserverpb__KeyValue *kv = r->kvs[i];
    if (!kv) {
      mc_seterr(err, errlen, "etcd: range response entry %zu is empty", i);
      return MC_EPROTO;
    }
    if (fn && fn(arg, (const char *)kv->key.data, kv->key.len, kv->value.data,
                 kv->value.len))
      break;
    if (fn_rev && fn_rev(arg, (const char *)kv->key.data, kv->key.len,
                         kv->value.data, kv->value.len, kv->mod_revision))
      break;
  }
  return 0;
}

static int list_range(mc_etcd *e, const char *prefix, mc_etcd_kv_fn fn,
                      mc_etcd_kvrev_fn fn_rev, void *arg, int64_t *rev,
                      int timeout_ms, char *err, size_t errlen) {
  char end[512];
  if (strlen(prefix) >= sizeof(end)) {
    mc_seterr(err, errlen, "etcd: prefix too long");
    return MC_EINVAL;
  }
  Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
  rq.key = bin(prefix, strlen(prefix));
  rq.range_end = bin(end, prefix_end(prefix, end, sizeof(end)));
  ProtobufCMessage *m = NULL;
  int rc = call(e, M_RANGE, &rq.base, &etcdserverpb__range_response__descriptor,
                &m, timeout_ms, err, errlen);
  if (rc)
    return rc;
  Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)m;
  if (rev)
    *rev = r->header ? r->header->revision : 0;
  rc = deliver_range(r, fn, fn_rev, arg, err, errlen);
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

int mc_etcd_list(mc_etcd *e, const char *prefix, mc_etcd_kv_fn fn, void *arg,
                 int64_t *rev, int timeout_ms, char *err, size_t errlen) {
  return list_range(e, prefix, fn, NULL, arg, rev, timeout_ms, err, errlen);
}

int mc_etcd_list_rev(mc_etcd *e, const char *prefix, mc_etcd_kvrev_fn fn,
                     void *arg, int timeout_ms, char *err, size_t errlen) {
  return list_range(e, prefix, NULL, fn, arg, NULL, timeout_ms, err, errlen);
}

int mc_etcd_decode_range(const void *frame, size_t len, mc_etcd_kv_fn fn,
                         void *arg, char *err, size_t errlen) {
  Etcdserverpb__RangeResponse *r =
      etcdserverpb__range_response__unpack(NULL, len, frame);
  if (!r) {
    mc_seterr(err, errlen, "etcd: RangeResponse does not parse (%zu bytes)", len);
    return MC_EPROTO;
  }
  int rc = deliver_range(r, fn, NULL, arg, err, errlen);
  etcdserverpb__range_response__free_unpacked(r, NULL);
  return rc;
}

int mc_etcd_delete(mc_etcd *e, const char *key, int prefix, int64_t *deleted,
                   int timeout_ms, char *err, size_t errlen) {
  char end[512];
  Etcdserverpb__DeleteRangeRequest rq = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  rq.key = bin(key, strlen(key));
  if (prefix) {
    if (strlen(key) >= sizeof(end)) {
      mc_seterr(err, errlen, "etcd: prefix too long");
      return MC_EINVAL;
    }
    rq.range_end = bin(end, prefix_end(key, end, sizeof(end)));
  }
  ProtobufCMessage *m = NULL;
  int rc = call(e, M_DELETE, &rq.base,
                &etcdserverpb__delete_range_response__descriptor, &m, timeout_ms,
                err, errlen);
  if (rc)
    return rc;
  if (deleted)
    *deleted = ((Etcdserverpb__DeleteRangeResponse *)m)->deleted;
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}

int mc_etcd_put_if(mc_etcd *e, const char *key, int64_t expect_rev,
                   const void *val, size_t len, int64_t lease, int64_t *new_rev,
                   int timeout_ms, char *err, size_t errlen) {
  Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
  cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
  cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
  cmp.key = bin(key, strlen(key));
  cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
  cmp.mod_revision = expect_rev; /* an absent key has mod_revision 0 */
  Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
  put.key = cmp.key;
  put.value = bin(val, len);
  put.lease = lease;
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  op.request_put = &put;
  Etcdserverpb__Compare *cmps[1] = {&cmp};
  Etcdserverpb__RequestOp *ops[1] = {&op};
  Etcdserverpb__TxnRequest rq = ETCDSERVERPB__TXN_REQUEST__INIT;
  rq.n_compare = expect_rev < 0 ? 0 : 1;
  rq.compare = cmps;
  rq.n_success = 1;
  rq.success = ops;
  ProtobufCMessage *m = NULL;
  int rc = call(e, M_TXN, &rq.base, &etcdserverpb__txn_response__descriptor, &m,
                timeout_ms, err, errlen);
  if (rc)
    return rc;
  Etcdserverpb__TxnResponse *r = (Etcdserverpb__TxnResponse *)m;
  if (!r->succeeded) {
    mc_seterr(err, errlen, "etcd: '%s' is not at revision %lld", key,
              (long long)expect_rev);
    rc = MC_EAGAIN;
  } else if (new_rev) {
    *new_rev = r->header ? r->header->revision : 0;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

int mc_etcd_cas(mc_etcd *e, const char *key, int64_t expect_rev,
                const void *val, size_t len, int64_t lease, int *swapped,
                int timeout_ms, char *err, size_t errlen) {
  /* put_if with the outcome as a flag: a key not at expect_rev is an
   * answer here, not an error. */
  if (expect_rev < 0) { /* no key is at a negative revision */
    *swapped = 0;
    return 0;
  }
  int rc = mc_etcd_put_if(e, key, expect_rev, val, len, lease, NULL,
                          timeout_ms, err, errlen);
  *swapped = rc == 0;
  return rc == MC_EAGAIN ? 0 : rc;
}

int mc_etcd_lease_grant(mc_etcd *e, int64_t ttl_s, int64_t *id, int timeout_ms,
                        char *err, size_t errlen) {
  Etcdserverpb__LeaseGrantRequest rq = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  rq.ttl = ttl_s;
  ProtobufCMessage *m = NULL;
  int rc = call(e, M_GRANT, &rq.base,
                &etcdserverpb__lease_grant_response__descriptor, &m, timeout_ms,
                err, errlen);
  if (rc)
    return rc;
  Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)m;
  if (r->error && *r->error) {
    mc_seterr(err, errlen, "etcd: lease grant refused: %s", r->error);
    rc = MC_EIO;
  } else if (r->id == 0) {
    mc_seterr(err, errlen, "etcd: lease grant returned no ID");
    rc = MC_EPROTO;
  } else {
    *id = r->id;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

int mc_etcd_lease_revoke(mc_etcd *e, int64_t id, int timeout_ms, char *err,
                         size_t errlen) {
  Etcdserverpb__LeaseRevokeRequest rq = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
  rq.id = id;
  ProtobufCMessage *m = NULL;
  int rc = call(e, M_REVOKE, &rq.base,
                &etcdserverpb__lease_revoke_response__descriptor, &m, timeout_ms,
                err, errlen);
  if (m)
    protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

/* One keepalive round on one endpoint. */
static int keepalive_once(mc_rpc_channel *ch, int64_t id, int64_t *ttl,
                          int timeout_ms, mc_rpc_status *st) {
  mc_rpc_call_opts o = {.timeout_ms = timeout_ms};
  mc_rpc_stream *s;
  int rc = mc_rpc_stream_open(ch, M_KEEPALIVE, &o, &s, st);
  if (rc)
    return rc;
  Etcdserverpb__LeaseKeepAliveRequest rq = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
  rq.id = id;
  void *buf = NULL;
  size_t len = 0;
  rc = mc_rpc_stream_send_pb(s, &rq.base, timeout_ms, st);
  if (rc == 0) {
    /* The stream's own deadline bounds this wait. */
    do
      rc = mc_rpc_stream_recv(s, &buf, &len, timeout_ms, st);
    while (rc == MC_EAGAIN);
  }
  if (rc == 0) {
    Etcdserverpb__LeaseKeepAliveResponse *r =
        etcdserverpb__lease_keep_alive_response__unpack(NULL, len, buf);
    if (!r) {
      snprintf(st->message, sizeof(st->message), "LeaseKeepAliveResponse does not parse");
      st->code = 13;
      rc = MC_EPROTO;
    } else {
      *ttl = r->ttl;
      etcdserverpb__lease_keep_alive_response__free_unpacked(r, NULL);
    }
  }
  free(buf);
  mc_rpc_stream_destroy(s);
  return rc;
}

typedef struct keepalive_call {
  int64_t id;
  int64_t *ttl;
} keepalive_call;

static int keepalive_attempt(mc_etcd *e, int idx, int budget, mc_rpc_status *st,
                             void *arg) {
  keepalive_call *k = arg;
  return keepalive_once(e->ch[idx], k->id, k->ttl, budget, st);
}

int mc_etcd_lease_keepalive(mc_etcd *e, int64_t id, int64_t *ttl,
                            int timeout_ms, char *err, size_t errlen) {
  static const int also_retry[] = {MC_EPEER, 0};
  keepalive_call k = {id, ttl};
  int used;
  int rc = failover(e, "LeaseKeepAlive", timeout_ms, keepalive_attempt, &k,
                    also_retry, &used, err, errlen);
  if (rc == 0 && *ttl <= 0) {
    mc_seterr(err, errlen, "etcd: lease %lld has expired", (long long)id);
    return MC_ENOENT;
  }
  return rc;
}

/* ---- watch ---- */

int mc_etcd_decode_watch(const void *frame, size_t len, mc_etcd_event_fn fn,
                         void *arg, int64_t *rev, char *err, size_t errlen) {
  Etcdserverpb__WatchResponse *r =
      etcdserverpb__watch_response__unpack(NULL, len, frame);
  if (!r) {
    mc_seterr(err, errlen, "etcd: WatchResponse does not parse (%zu bytes)", len);
    return MC_EPROTO;
  }
  int rc = 0;
  if (r->canceled) {
    mc_seterr(err, errlen, "etcd: watch canceled by server: %s%s",
           r->cancel_reason && *r->cancel_reason ? r->cancel_reason : "no reason",
           r->compact_revision ? " (revision compacted)" : "");
    rc = MC_EPEER;
  } else {
    for (size_t i = 0; i < r->n_events; i++) {
      Etcdserverpb__Event *ev = r->events[i];
      if (!ev || !ev->kv || (ev->type != ETCDSERVERPB__EVENT__EVENT_TYPE__PUT &&
                             ev->type != ETCDSERVERPB__EVENT__EVENT_TYPE__DELETE)) {
        mc_seterr(err, errlen, "etcd: watch event %zu malformed", i);
        rc = MC_EPROTO;
        break;
      }
      if (rev && ev->kv->mod_revision > *rev)
        *rev = ev->kv->mod_revision;
      if (fn)
        fn(arg, ev->type == ETCDSERVERPB__EVENT__EVENT_TYPE__PUT ? MC_ETCD_PUT
                                                                  : MC_ETCD_DELETE,
           (const char *)ev->kv->key.data, ev->kv->key.len, ev->kv->value.data,
           ev->kv->value.len, ev->kv->mod_revision);
      rc++;
    }
  }
  etcdserverpb__watch_response__free_unpacked(r, NULL);
  return rc;
}

static int watch_open_on(mc_etcd *e, int idx, const char *prefix,
                         int64_t start_rev, int timeout_ms, mc_rpc_stream **out,
                         int64_t *rev, mc_rpc_status *st) {
  char end[512];
  mc_rpc_stream *s;
  int rc = mc_rpc_stream_open(e->ch[idx], M_WATCH, NULL, &s, st);
  if (rc)
    return rc;
  Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
  cr.key = bin(prefix, strlen(prefix));
  cr.range_end = bin(end, prefix_end(prefix, end, sizeof(end)));
  cr.start_revision = start_rev;
  Etcdserverpb__WatchRequest rq = ETCDSERVERPB__WATCH_REQUEST__INIT;
  rq.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
  rq.create_request = &cr;
  rc = mc_rpc_stream_send_pb(s, &rq.base, timeout_ms, st);
  void *buf = NULL;
  size_t len = 0;
  if (rc == 0)
    rc = mc_rpc_stream_recv(s, &buf, &len, timeout_ms, st);
  if (rc == 0) {
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, buf);
    if (!r || !r->created || r->canceled) {
      snprintf(st->message, sizeof(st->message), "watch not created%s%s",
               r && r->cancel_reason && *r->cancel_reason ? ": " : "",
               r && r->cancel_reason ? r->cancel_reason : "");
      st->code = 9;
      rc = MC_EPROTO;
    } else if (rev) {
      *rev = r->header ? r->header->revision : 0;
    }
    if (r)
      etcdserverpb__watch_response__free_unpacked(r, NULL);
  } else if (rc == MC_EAGAIN) {
    rc = MC_ETIMEDOUT;
    st->code = 4;
  }
  free(buf);
  if (rc) {
    mc_rpc_stream_destroy(s);
    return rc;
  }
  *out = s;
  return 0;
}

typedef struct watch_call {
  const char *prefix;
  int64_t start_rev;
  mc_rpc_stream **stream;
  int64_t rev;
} watch_call;

static int watch_attempt(mc_etcd *e, int idx, int budget, mc_rpc_status *st,
                         void *arg) {
  watch_call *w = arg;
  return watch_open_on(e, idx, w->prefix, w->start_rev, budget, w->stream, &w->rev, st);
}

int mc_etcd_watch_open(mc_etcd *e, const char *prefix, int64_t start_rev,
                       mc_etcd_watch **out, int timeout_ms, char *err,
                       size_t errlen) {
  if (strlen(prefix) >= 512) {
    mc_seterr(err, errlen, "etcd: prefix too long");
    return MC_EINVAL;
  }
  mc_etcd_watch *w = calloc(1, sizeof(*w));
  if (!w)
    return MC_ENOMEM;
  static const int also_retry[] = {MC_EPEER, MC_ETIMEDOUT, 0};
  watch_call wc = {prefix, start_rev, &w->s, 0};
  int used;
  int rc = failover(e, "Watch", timeout_ms, watch_attempt, &wc, also_retry, &used,
                    err, errlen);
  if (rc) {
    free(w);
    return rc;
  }
  w->e = e;
  w->ep = used;
  w->rev = start_rev > 0 ? start_rev - 1 : wc.rev;
  *out = w;
  return 0;
}

int mc_etcd_watch_next(mc_etcd_watch *w, mc_etcd_event_fn fn, void *arg,
                       int64_t *rev, int timeout_ms, char *err, size_t errlen) {
  void *buf = NULL;
  size_t len = 0;
  mc_rpc_status st;
  int rc = mc_rpc_stream_recv(w->s, &buf, &len, timeout_ms, &st);
  if (rc == MC_EAGAIN) {
    if (rev)
      *rev = w->rev;
    return 0;
  }
  if (rc) {
    mc_seterr(err, errlen, "etcd Watch stream via %s ended: %s",
           mc_rpc_channel_target(w->e->ch[w->ep]), st.message);
    return rc;
  }
  rc = mc_etcd_decode_watch(buf, len, fn, arg, &w->rev, err, errlen);
  free(buf);
  if (rev)
    *rev = w->rev;
  return rc;
}

void mc_etcd_watch_close(mc_etcd_watch *w) {
  if (!w)
    return;
  mc_rpc_stream_destroy(w->s);
  free(w);
}
