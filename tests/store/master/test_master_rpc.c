/* Every call of mooncake-master over RPC with a raw client (no client
 * library): segments, placement on distinct segments and hosts, locality,
 * the put/upsert life cycle, leases, pre-emption, batch forms, regex and
 * bulk removal, pins, unmount, and bad input.  argv[1]: the master. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master_fixture.h"
#include "rpc/rpc.h"

#define E(x) MCSTORE__ERROR_CODE__##x
#define MiB (1024u * 1024u)

static uint8_t sid[8][MCS_CLIENT_ID_LEN];
static const char *names[] = {"", "segA", "segB", "segC", "segD"};

static int seg_index(const ProtobufCBinaryData *id) {
  for (int i = 1; i <= 4; i++)
    if (id->len == MCS_CLIENT_ID_LEN && !memcmp(id->data, sid[i], MCS_CLIENT_ID_LEN))
      return i;
  return -1;
}

static uint64_t used_of(mf_client *c) {
  Mcstore__GetStatsResponse *s = mf_stats(c);
  uint64_t u = s->used;
  MF_FREE(s);
  return u;
}

static void check_replica_in_segment(const Mcstore__ReplicaDesc *r) {
  int i = seg_index(&r->segment_id);
  CHECK(i > 0);
  CHECK_STR(r->segment_name, names[i]);
  uint64_t base = (uint64_t)i << 32;
  CHECK(r->address >= base && r->address + r->size <= base + MiB);
}

static void test_segments(mf_client *c) {
  for (int i = 1; i <= 4; i++)
    mf_sid(sid[i], i);
  const char *hosts[] = {"", "h1", "h1", "h2", "h3"};
  for (int i = 1; i <= 4; i++)
    CHECK_EQ_INT(mf_mount(c, sid[i], names[i], hosts[i], (uint64_t)i << 32, MiB), 0);
  /* The same mount again is a no-op; a clashing one is refused. */
  CHECK_EQ_INT(mf_mount(c, sid[1], "segA", "h1", 1ull << 32, MiB), 0);
  CHECK_EQ_INT(mf_mount(c, sid[1], "segA", "h1", 1ull << 32, 2 * MiB), E(SEGMENT_ALREADY_EXISTS));
  uint8_t bad[MCS_CLIENT_ID_LEN];
  mf_sid(bad, 99);
  CHECK_EQ_INT(mf_mount(c, bad, "segX", "h9", 0, 0), E(INVALID_PARAMS));
  CHECK_EQ_INT(mf_mount(c, bad, "", "h9", 0, MiB), E(INVALID_PARAMS));
  CHECK_EQ_INT(mf_mount(c, bad, "segX", "h9", 0, (1ull << 50) + 1), E(INVALID_PARAMS));
  CHECK_EQ_INT(mf_mount(c, bad, "segX", "h9", UINT64_MAX - 100, MiB), E(INVALID_PARAMS));
  Mcstore__GetStatsResponse *s = mf_stats(c);
  CHECK_EQ_U64(s->capacity, 4 * MiB);
  CHECK_EQ_U64(s->segments, 4);
  CHECK_EQ_U64(s->used, 0);
  MF_FREE(s);
}

static void test_placement(mf_client *c) {
  /* Three replicas land on three hosts (segA and segB share h1). */
  for (int k = 0; k < 20; k++) {
    char key[32];
    snprintf(key, sizeof key, "three-%d", k);
    Mcstore__PutStartResponse *p;
    CHECK_EQ_INT(mf_put_start(c, key, 1000, 3, NULL, 0, 0, &p), 0);
    CHECK_EQ_U64(p->n_replicas, 3);
    const char *h[3];
    for (size_t i = 0; i < p->n_replicas; i++) {
      check_replica_in_segment(p->replicas[i]);
      CHECK_EQ_INT(p->replicas[i]->status, MCSTORE__REPLICA_STATUS__REPLICA_PROCESSING);
      CHECK_EQ_U64(p->replicas[i]->size, 1000);
      h[i] = p->replicas[i]->host;
    }
    CHECK(strcmp(h[0], h[1]) && strcmp(h[0], h[2]) && strcmp(h[1], h[2]));
    MF_FREE(p);
    CHECK_EQ_INT(mf_key_call(c, "PutEnd", key, 0), 0);
  }
  /* Four replicas: four distinct segments (hosts cannot all differ). */
  Mcstore__PutStartResponse *p;
  CHECK_EQ_INT(mf_put_start(c, "four", 5000, 4, NULL, 0, 0, &p), 0);
  CHECK_EQ_U64(p->n_replicas, 4);
  int seen[5] = {0};
  for (size_t i = 0; i < 4; i++)
    seen[seg_index(&p->replicas[i]->segment_id)]++;
  CHECK(seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[4] == 1);
  MF_FREE(p);
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "four", 0), 0);
  /* Eight asked, four segments: best effort gives four. */
  CHECK_EQ_INT(mf_put_start(c, "eight", 100, 8, NULL, 0, 0, &p), 0);
  CHECK_EQ_U64(p->n_replicas, 4);
  MF_FREE(p);
  CHECK_EQ_INT(mf_key_call(c, "PutRevoke", "eight", 0), 0);
}

static void test_locality(mf_client *c) {
  const char *pc[] = {"segC"};
  for (int k = 0; k < 20; k++) {
    char key[32];
    snprintf(key, sizeof key, "local-%d", k);
    Mcstore__PutStartResponse *p;
    CHECK_EQ_INT(mf_put_start(c, key, 4096, 1, pc, 1, 0, &p), 0);
    CHECK_EQ_U64(p->n_replicas, 1);
    CHECK_STR(p->replicas[0]->segment_name, "segC");
    MF_FREE(p);
    CHECK_EQ_INT(mf_key_call(c, "PutEnd", key, 0), 0);
  }
  const char *pd[] = {"segD", "segA"};
  Mcstore__PutStartResponse *p;
  CHECK_EQ_INT(mf_put_start(c, "local-two", 4096, 2, pd, 2, 0, &p), 0);
  CHECK_EQ_U64(p->n_replicas, 2);
  CHECK_STR(p->replicas[0]->segment_name, "segD");
  CHECK_STR(p->replicas[1]->segment_name, "segA");
  MF_FREE(p);
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "local-two", 0), 0);
  /* An unknown preferred name falls back to any segment. */
  const char *px[] = {"nowhere"};
  CHECK_EQ_INT(mf_put_start(c, "local-none", 10, 1, px, 1, 0, &p), 0);
  CHECK_EQ_U64(p->n_replicas, 1);
  MF_FREE(p);
  CHECK_EQ_INT(mf_key_call(c, "PutRevoke", "local-none", 0), 0);
}

static void test_lifecycle(mf_client *c, mf_client *other) {
  uint64_t u0 = used_of(c);
  Mcstore__PutStartResponse *p;
  CHECK_EQ_INT(mf_put_start(c, "life", 3000, 2, NULL, 0, 0, &p), 0);
  CHECK_EQ_U64(p->n_replicas, 2);
  /* Space is reserved (rounded to the allocator's 64 B). */
  CHECK_EQ_U64(used_of(c), u0 + 2 * 3008);
  MF_FREE(p);
  /* Unfinished: invisible to readers, and owned by its writer. */
  int ex = 1;
  CHECK_EQ_INT(mf_get(c, "life", NULL), E(REPLICA_IS_NOT_READY));
  CHECK_EQ_INT(mf_exist(c, "life", &ex), 0);
  CHECK_EQ_INT(ex, 0);
  CHECK_EQ_INT(mf_key_call(other, "PutEnd", "life", 0), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(mf_key_call(other, "PutRevoke", "life", 0), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(mf_put_start(other, "life", 3000, 1, NULL, 0, 0, NULL), E(OBJECT_ALREADY_EXISTS));
  CHECK_EQ_INT(mf_key_call(c, "Remove", "life", 0), E(REPLICA_IS_NOT_READY));
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "life", 0), 0);
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "life", 0), E(INVALID_WRITE));
  Mcstore__GetReplicaListResponse *g;
  CHECK_EQ_INT(mf_get(c, "life", &g), 0);
  CHECK_EQ_U64(g->n_replicas, 2);
  CHECK_EQ_U64(g->lease_ttl_ms, 1000);
  for (size_t i = 0; i < g->n_replicas; i++) {
    CHECK_EQ_INT(g->replicas[i]->status, MCSTORE__REPLICA_STATUS__REPLICA_COMPLETE);
    CHECK_EQ_U64(g->replicas[i]->size, 3000);
    CHECK_STR(g->replicas[i]->protocol, "tcp");
  }
  MF_FREE(g);
  CHECK_EQ_INT(mf_put_start(c, "life", 3000, 1, NULL, 0, 0, NULL), E(OBJECT_ALREADY_EXISTS));
  /* The lease just granted blocks Remove... */
  CHECK_EQ_INT(mf_key_call(c, "Remove", "life", 0), E(OBJECT_HAS_LEASE));
  usleep(1100 * 1000);
  /* ...until it ends. */
  CHECK_EQ_INT(mf_key_call(c, "Remove", "life", 0), 0);
  CHECK_EQ_INT(mf_get(c, "life", NULL), E(OBJECT_NOT_FOUND));
  CHECK_EQ_INT(mf_key_call(c, "Remove", "life", 0), E(OBJECT_NOT_FOUND));
  CHECK_EQ_U64(used_of(c), u0);
  /* ExistKey grants a lease too; force removes anyway. */
  CHECK_EQ_INT(mf_put(c, "life2", 100, 1), 0);
  CHECK_EQ_INT(mf_exist(c, "life2", &ex), 0);
  CHECK_EQ_INT(ex, 1);
  CHECK_EQ_INT(mf_key_call(c, "Remove", "life2", 0), E(OBJECT_HAS_LEASE));
  CHECK_EQ_INT(mf_key_call(c, "Remove", "life2", 1), 0);
  CHECK_EQ_INT(mf_exist(c, "life2", &ex), 0);
  CHECK_EQ_INT(ex, 0);
  /* A revoked put frees its space at once and leaves no key. */
  CHECK_EQ_INT(mf_put_start(c, "revoked", 7000, 2, NULL, 0, 0, NULL), 0);
  CHECK_EQ_INT(mf_key_call(c, "PutRevoke", "revoked", 0), 0);
  CHECK_EQ_INT(mf_get(c, "revoked", NULL), E(OBJECT_NOT_FOUND));
  /* the force-removed life2 is freed when its lease ends */
  usleep(1100 * 1000);
  CHECK_EQ_INT(mf_key_call(c, "Remove", "nothing", 0), E(OBJECT_NOT_FOUND));
  uint64_t u1 = 0;
  for (int i = 0; i < 20 && (u1 = used_of(c)) != u0; i++)
    usleep(100 * 1000);
  CHECK_EQ_U64(u1, u0);
}

static void test_preempt(mf_client *a, mf_client *b) {
  uint64_t u0 = used_of(a);
  CHECK_EQ_INT(mf_put_start(a, "zombie", 64 * 1024, 1, NULL, 0, 0, NULL), 0);
  CHECK_EQ_INT(mf_put_start(b, "zombie", 64 * 1024, 1, NULL, 0, 0, NULL), E(OBJECT_ALREADY_EXISTS));
  usleep(2100 * 1000); /* past --put_start_discard_timeout_sec=2 */
  CHECK_EQ_INT(mf_put_start(b, "zombie", 64 * 1024, 1, NULL, 0, 0, NULL), 0);
  /* The pre-empted writer can no longer finish or revoke. */
  CHECK_EQ_INT(mf_key_call(a, "PutEnd", "zombie", 0), E(ILLEGAL_CLIENT));
  /* Its space stays reserved until the release timeout (5 s from its start). */
  CHECK_EQ_U64(used_of(a), u0 + 2 * 64 * 1024);
  usleep(3100 * 1000);
  uint64_t u = 0;
  for (int i = 0; i < 20 && (u = used_of(a)) != u0 + 64 * 1024; i++)
    usleep(100 * 1000);
  CHECK_EQ_U64(u, u0 + 64 * 1024);
  CHECK_EQ_INT(mf_key_call(b, "PutEnd", "zombie", 0), 0);
  CHECK_EQ_INT(mf_get(b, "zombie", NULL), 0);
  /* An abandoned put nobody pre-empts is reclaimed after the release timeout. */
  CHECK_EQ_INT(mf_put_start(a, "abandoned", 32 * 1024, 1, NULL, 0, 0, NULL), 0);
  u = used_of(a);
  usleep(5200 * 1000);
  CHECK_EQ_INT(mf_get(a, "abandoned", NULL), E(OBJECT_NOT_FOUND));
  CHECK_EQ_U64(used_of(a), u - 32 * 1024);
  CHECK_EQ_INT(mf_key_call(a, "PutEnd", "abandoned", 0), E(OBJECT_NOT_FOUND));
}

static void test_upsert(mf_client *c) {
  CHECK_EQ_INT(mf_put(c, "up", 1000, 1), 0);
  Mcstore__GetReplicaListResponse *g;
  CHECK_EQ_INT(mf_get(c, "up", &g), 0); /* a reader of the old value, leased */
  uint64_t old_addr = g->replicas[0]->address;
  MF_FREE(g);
  uint64_t u0 = used_of(c);
  Mcstore__PutStartResponse *p;
  CHECK_EQ_INT(mf_put_start(c, "up", 2000, 1, NULL, 0, 1, &p), 0);
  uint64_t new_addr = p->replicas[0]->address;
  CHECK(new_addr != old_addr);
  MF_FREE(p);
  /* While the upsert runs, readers get the old value. */
  CHECK_EQ_INT(mf_get(c, "up", &g), 0);
  CHECK_EQ_U64(g->replicas[0]->address, old_addr);
  CHECK_EQ_U64(g->replicas[0]->size, 1000);
  MF_FREE(g);
  CHECK_EQ_INT(mf_key_call(c, "UpsertEnd", "up", 0), 0);
  CHECK_EQ_INT(mf_get(c, "up", &g), 0);
  CHECK_EQ_U64(g->replicas[0]->address, new_addr);
  CHECK_EQ_U64(g->replicas[0]->size, 2000);
  MF_FREE(g);
  /* The old value's space stays reserved while its readers' lease runs. */
  CHECK_EQ_U64(used_of(c), u0 + 2048);
  usleep(1100 * 1000);
  uint64_t u = 0;
  for (int i = 0; i < 20 && (u = used_of(c)) != u0 + 2048 - 1024; i++)
    usleep(100 * 1000);
  CHECK_EQ_U64(u, u0 + 2048 - 1024);
  /* UpsertRevoke keeps the current value; Upsert of a new key is a put. */
  CHECK_EQ_INT(mf_put_start(c, "up", 3000, 1, NULL, 0, 1, NULL), 0);
  CHECK_EQ_INT(mf_key_call(c, "UpsertRevoke", "up", 0), 0);
  CHECK_EQ_INT(mf_get(c, "up", &g), 0);
  CHECK_EQ_U64(g->replicas[0]->size, 2000);
  MF_FREE(g);
  CHECK_EQ_INT(mf_put_start(c, "up-new", 10, 1, NULL, 0, 1, NULL), 0);
  CHECK_EQ_INT(mf_key_call(c, "UpsertEnd", "up-new", 0), 0);
  CHECK_EQ_INT(mf_get(c, "up-new", NULL), 0);
}

static void test_pins(mf_client *c) {
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  cfg.replica_num = 1;
  cfg.with_hard_pin = 1;
  CHECK_EQ_INT(mf_put_start_cfg(c, "hard", 100, &cfg, 0, NULL), 0);
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "hard", 0), 0);
  CHECK_EQ_INT(mf_key_call(c, "Remove", "hard", 0), E(UNAVAILABLE_IN_CURRENT_STATUS));
  CHECK_EQ_INT(mf_put_start(c, "hard", 100, 1, NULL, 0, 1, NULL), E(INVALID_WRITE));
  CHECK_EQ_INT(mf_key_call(c, "Remove", "hard", 1), 0);
}

static Mcstore__BatchKeyRequest batch_req(Mcstore__RequestHeader *hdr, mf_client *c,
                                          char **keys, size_t n) {
  Mcstore__BatchKeyRequest r = MCSTORE__BATCH_KEY_REQUEST__INIT;
  mcs_header_set(hdr, c->id, NULL, 0);
  r.header = hdr;
  r.keys = keys;
  r.n_keys = n;
  return r;
}

static void test_batches(mf_client *c) {
  enum { N = 100 };
  char *keys[N + 1];
  uint64_t lens[N + 1];
  for (int i = 0; i < N; i++) {
    keys[i] = malloc(32);
    snprintf(keys[i], 32, "batch-%03d", i);
    lens[i] = 100 + (uint64_t)i;
  }
  keys[N] = ""; /* a bad item among good ones */
  lens[N] = 5;
  Mcstore__RequestHeader hdr;
  Mcstore__BatchPutStartRequest ps = MCSTORE__BATCH_PUT_START_REQUEST__INIT;
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  cfg.replica_num = 2;
  mcs_header_set(&hdr, c->id, NULL, 0);
  ps.header = &hdr;
  ps.keys = keys;
  ps.n_keys = N + 1;
  ps.value_lengths = lens;
  ps.n_value_lengths = N + 1;
  ps.config = &cfg;
  Mcstore__BatchPutStartResponse *pr =
      mf_call(c, "BatchPutStart", &ps.base, &mcstore__batch_put_start_response__descriptor);
  CHECK_EQ_U64(pr->n_results, N + 1);
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(pr->results[i]->code, 0);
    CHECK_EQ_U64(pr->results[i]->n_replicas, 2);
    CHECK(memcmp(pr->results[i]->replicas[0]->segment_id.data,
                 pr->results[i]->replicas[1]->segment_id.data, MCS_CLIENT_ID_LEN) != 0);
  }
  CHECK_EQ_INT(pr->results[N]->code, E(INVALID_KEY));
  MF_FREE(pr);
  /* Mismatched lengths: every item refused. */
  ps.n_value_lengths = N;
  pr = mf_call(c, "BatchPutStart", &ps.base, &mcstore__batch_put_start_response__descriptor);
  CHECK_EQ_INT(pr->results[0]->code, E(INVALID_PARAMS));
  MF_FREE(pr);

  Mcstore__BatchKeyRequest br = batch_req(&hdr, c, keys, N + 1);
  /* End the first 90, revoke the last 10. */
  br.n_keys = 90;
  Mcstore__BatchCodeResponse *cr =
      mf_call(c, "BatchPutEnd", &br.base, &mcstore__batch_code_response__descriptor);
  CHECK_EQ_U64(cr->n_codes, 90);
  for (size_t i = 0; i < cr->n_codes; i++)
    CHECK_EQ_INT(cr->codes[i], 0);
  MF_FREE(cr);
  br.keys = keys + 90;
  br.n_keys = 10;
  cr = mf_call(c, "BatchPutRevoke", &br.base, &mcstore__batch_code_response__descriptor);
  for (size_t i = 0; i < cr->n_codes; i++)
    CHECK_EQ_INT(cr->codes[i], 0);
  MF_FREE(cr);

  br.keys = keys;
  br.n_keys = N + 1;
  Mcstore__BatchGetReplicaListResponse *gr =
      mf_call(c, "BatchGetReplicaList", &br.base,
              &mcstore__batch_get_replica_list_response__descriptor);
  CHECK_EQ_U64(gr->n_results, N + 1);
  for (int i = 0; i < N; i++) {
    if (i < 90) {
      CHECK_EQ_INT(gr->results[i]->code, 0);
      CHECK_EQ_U64(gr->results[i]->n_replicas, 2);
      CHECK_EQ_U64(gr->results[i]->replicas[0]->size, lens[i]);
    } else {
      CHECK_EQ_INT(gr->results[i]->code, E(OBJECT_NOT_FOUND));
    }
  }
  CHECK_EQ_INT(gr->results[N]->code, E(INVALID_KEY));
  MF_FREE(gr);
  Mcstore__BatchExistKeyResponse *er =
      mf_call(c, "BatchExistKey", &br.base, &mcstore__batch_exist_key_response__descriptor);
  for (int i = 0; i < N; i++)
    CHECK_EQ_INT(er->results[i]->exists, i < 90);
  CHECK_EQ_INT(er->results[N]->code, E(INVALID_KEY));
  MF_FREE(er);
  /* Leased now: a plain batch remove is refused, a forced one is not. */
  br.n_keys = 10;
  cr = mf_call(c, "BatchRemove", &br.base, &mcstore__batch_code_response__descriptor);
  for (size_t i = 0; i < cr->n_codes; i++)
    CHECK_EQ_INT(cr->codes[i], E(OBJECT_HAS_LEASE));
  MF_FREE(cr);
  br.force = 1;
  cr = mf_call(c, "BatchRemove", &br.base, &mcstore__batch_code_response__descriptor);
  for (size_t i = 0; i < cr->n_codes; i++)
    CHECK_EQ_INT(cr->codes[i], 0);
  MF_FREE(cr);
  br.force = 0;

  /* Upsert batch over existing keys 10..19. */
  ps.keys = keys + 10;
  ps.n_keys = ps.n_value_lengths = 10;
  ps.value_lengths = lens;
  pr = mf_call(c, "BatchUpsertStart", &ps.base, &mcstore__batch_put_start_response__descriptor);
  for (size_t i = 0; i < pr->n_results; i++)
    CHECK_EQ_INT(pr->results[i]->code, 0);
  MF_FREE(pr);
  br.keys = keys + 10;
  br.n_keys = 5;
  cr = mf_call(c, "BatchUpsertEnd", &br.base, &mcstore__batch_code_response__descriptor);
  for (size_t i = 0; i < cr->n_codes; i++)
    CHECK_EQ_INT(cr->codes[i], 0);
  MF_FREE(cr);
  br.keys = keys + 15;
  cr = mf_call(c, "BatchUpsertRevoke", &br.base, &mcstore__batch_code_response__descriptor);
  for (size_t i = 0; i < cr->n_codes; i++)
    CHECK_EQ_INT(cr->codes[i], 0);
  MF_FREE(cr);
  Mcstore__GetReplicaListResponse *g;
  CHECK_EQ_INT(mf_get(c, keys[10], &g), 0);
  CHECK_EQ_U64(g->replicas[0]->size, lens[0]); /* upserted: the new length */
  MF_FREE(g);
  CHECK_EQ_INT(mf_get(c, keys[15], &g), 0);
  CHECK_EQ_U64(g->replicas[0]->size, lens[15]); /* revoked: the old one */
  MF_FREE(g);

  /* More than MCS_MAX_BATCH items: refused as a whole. */
  size_t big = MCS_MAX_BATCH + 1;
  char **many = malloc(big * sizeof(*many));
  for (size_t i = 0; i < big; i++)
    many[i] = "x";
  br.keys = many;
  br.n_keys = big;
  gr = mf_call(c, "BatchGetReplicaList", &br.base,
               &mcstore__batch_get_replica_list_response__descriptor);
  CHECK_EQ_U64(gr->n_results, big);
  CHECK_EQ_INT(gr->results[0]->code, E(INVALID_PARAMS));
  MF_FREE(gr);
  free(many);
  for (int i = 0; i < N; i++)
    free(keys[i]);
}

static void test_bulk(mf_client *c) {
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, c->id, NULL, 0);
  for (int i = 0; i < 10; i++) {
    char key[32];
    snprintf(key, sizeof key, "rx/%s/%d", i % 2 ? "odd" : "even", i);
    CHECK_EQ_INT(mf_put(c, key, 64, 1), 0);
  }
  Mcstore__ListKeysRequest lr = MCSTORE__LIST_KEYS_REQUEST__INIT;
  lr.header = &hdr;
  lr.regex = "^rx/odd/";
  Mcstore__ListKeysResponse *l =
      mf_call(c, "ListKeys", &lr.base, &mcstore__list_keys_response__descriptor);
  CHECK_EQ_U64(l->n_keys, 5);
  CHECK_EQ_U64(l->sizes[0], 64);
  CHECK(!l->truncated);
  MF_FREE(l);
  lr.limit = 2;
  l = mf_call(c, "ListKeys", &lr.base, &mcstore__list_keys_response__descriptor);
  CHECK_EQ_U64(l->n_keys, 2);
  CHECK(l->truncated);
  MF_FREE(l);
  Mcstore__RemoveByRegexRequest rr = MCSTORE__REMOVE_BY_REGEX_REQUEST__INIT;
  rr.header = &hdr;
  rr.regex = "^rx/odd/";
  Mcstore__CountResponse *cnt =
      mf_call(c, "RemoveByRegex", &rr.base, &mcstore__count_response__descriptor);
  CHECK_EQ_INT(cnt->code, 0);
  CHECK_EQ_U64(cnt->removed, 5);
  MF_FREE(cnt);
  rr.regex = "([bad";
  cnt = mf_call(c, "RemoveByRegex", &rr.base, &mcstore__count_response__descriptor);
  CHECK_EQ_INT(cnt->code, E(INVALID_PARAMS));
  MF_FREE(cnt);
  rr.regex = "^(rx)/(even)/\\2"; /* back-references: refused (exponential matching) */
  cnt = mf_call(c, "RemoveByRegex", &rr.base, &mcstore__count_response__descriptor);
  CHECK_EQ_INT(cnt->code, E(INVALID_PARAMS));
  MF_FREE(cnt);
  /* A leased object survives a plain RemoveAll. */
  CHECK_EQ_INT(mf_get(c, "rx/even/0", NULL), 0);
  Mcstore__RemoveAllRequest ra = MCSTORE__REMOVE_ALL_REQUEST__INIT;
  ra.header = &hdr;
  cnt = mf_call(c, "RemoveAll", &ra.base, &mcstore__count_response__descriptor);
  CHECK_EQ_INT(cnt->code, 0);
  CHECK(cnt->removed > 0);
  MF_FREE(cnt);
  CHECK_EQ_INT(mf_get(c, "rx/even/0", NULL), 0);
  CHECK_EQ_INT(mf_get(c, "rx/even/2", NULL), E(OBJECT_NOT_FOUND));
  ra.force = 1;
  cnt = mf_call(c, "RemoveAll", &ra.base, &mcstore__count_response__descriptor);
  CHECK(cnt->removed >= 1);
  MF_FREE(cnt);
  Mcstore__GetStatsResponse *s = mf_stats(c);
  CHECK_EQ_U64(s->objects, 0);
  MF_FREE(s);
}

static void test_bad_input(mf_client *c, const char *target) {
  CHECK_EQ_INT(mf_put_start(c, "", 10, 1, NULL, 0, 0, NULL), E(INVALID_KEY));
  char *k = malloc(5000);
  memset(k, 'k', 4999);
  k[4999] = 0;
  CHECK_EQ_INT(mf_put_start(c, k, 10, 1, NULL, 0, 0, NULL), E(INVALID_KEY));
  k[4096] = 0;
  CHECK_EQ_INT(mf_put_start(c, k, 10, 1, NULL, 0, 0, NULL), E(INVALID_KEY));
  CHECK_EQ_INT(mf_get(c, k, NULL), E(INVALID_KEY));
  CHECK_EQ_INT(mf_key_call(c, "Remove", k, 0), E(INVALID_KEY));
  k[4095] = 0; /* the longest valid key */
  CHECK_EQ_INT(mf_put(c, k, 10, 1), 0);
  CHECK_EQ_INT(mf_get(c, k, NULL), 0);
  CHECK_EQ_INT(mf_key_call(c, "Remove", k, 1), 0);
  free(k);
  CHECK_EQ_INT(mf_get(c, "", NULL), E(INVALID_KEY));
  CHECK_EQ_INT(mf_put_start(c, "zero", 0, 1, NULL, 0, 0, NULL), E(INVALID_PARAMS));
  CHECK_EQ_INT(mf_put_start(c, "nine", 10, 9, NULL, 0, 0, NULL), E(INVALID_PARAMS));
  /* Larger than the whole pool, and larger than any segment: refused
   * without evicting anything (no eviction could make room). */
  CHECK_EQ_INT(mf_put(c, "bystander", 100, 1), 0);
  Mcstore__GetStatsResponse *s0 = mf_stats(c);
  CHECK_EQ_INT(mf_put_start(c, "huge", 64ull * MiB, 1, NULL, 0, 0, NULL), E(NO_AVAILABLE_HANDLE));
  CHECK_EQ_INT(mf_put_start(c, "big", MiB + 64, 1, NULL, 0, 0, NULL), E(NO_AVAILABLE_HANDLE));
  CHECK_EQ_INT(mf_get(c, "huge", NULL), E(OBJECT_NOT_FOUND));
  CHECK_EQ_INT(mf_get(c, "big", NULL), E(OBJECT_NOT_FOUND));
  Mcstore__GetStatsResponse *s1 = mf_stats(c);
  CHECK_EQ_U64(s1->evicted_objects, s0->evicted_objects);
  CHECK_EQ_U64(s1->objects, s0->objects);
  MF_FREE(s0);
  MF_FREE(s1);
  CHECK_EQ_INT(mf_get(c, "bystander", NULL), 0);

  /* A client id that is not 16 bytes, or missing, is refused. */
  Mcstore__RequestHeader hdr = MCSTORE__REQUEST_HEADER__INIT;
  hdr.client_id.data = c->id;
  hdr.client_id.len = 3;
  Mcstore__PutStartRequest r = MCSTORE__PUT_START_REQUEST__INIT;
  r.header = &hdr;
  r.key = "shortid";
  r.value_length = 10;
  Mcstore__PutStartResponse *p = mf_call(c, "PutStart", &r.base, &mcstore__put_start_response__descriptor);
  CHECK_EQ_INT(p->code, E(ILLEGAL_CLIENT));
  MF_FREE(p);
  r.header = NULL;
  p = mf_call(c, "PutStart", &r.base, &mcstore__put_start_response__descriptor);
  CHECK_EQ_INT(p->code, E(ILLEGAL_CLIENT));
  MF_FREE(p);
  /* A well-formed id the master never saw (no Ping, no mount). */
  mf_client stranger = *c;
  CHECK_OK(mcs_random_id(stranger.id));
  CHECK_EQ_INT(mf_put_start(&stranger, "stranger", 10, 1, NULL, 0, 0, NULL), E(CLIENT_NOT_FOUND));
  CHECK_EQ_INT(mf_unmount(&stranger, sid[1]), E(ILLEGAL_CLIENT));
  uint8_t nosuch[MCS_CLIENT_ID_LEN];
  mf_sid(nosuch, 77);
  CHECK_EQ_INT(mf_unmount(c, nosuch), E(SEGMENT_NOT_FOUND));

  /* Bytes that are not a message of the call: INVALID_ARGUMENT. */
  mc_rpc_status st;
  void *resp = NULL;
  size_t rl = 0;
  mc_rpc_call_opts o = {.timeout_ms = 3000};
  static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
  CHECK_RC(mc_rpc_unary(c->ch, MCS_METHOD(PutStart), junk, sizeof junk, &resp, &rl, &o, &st),
           MC_EINVAL);
  CHECK_HAS(st.message, "malformed");
  static const uint8_t trunc[] = {0x12, 0x40, 'a'}; /* key says 64 bytes, has 1 */
  CHECK_RC(mc_rpc_unary(c->ch, MCS_METHOD(BatchGetReplicaList), trunc, sizeof trunc, &resp,
                        &rl, &o, &st),
           MC_EINVAL);
  CHECK_RC(mc_rpc_unary(c->ch, MCS_SERVICE "NoSuchCall", junk, sizeof junk, &resp, &rl, &o, &st),
           MC_ENOTSUP);
  /* An empty message is a valid (all-default) request: no header. */
  CHECK_RC(mc_rpc_unary(c->ch, MCS_METHOD(Ping), "", 0, &resp, &rl, &o, &st), 0);
  Mcstore__PingResponse *pg = mcstore__ping_response__unpack(NULL, rl, resp);
  CHECK(pg != NULL);
  CHECK_EQ_INT(pg->code, E(ILLEGAL_CLIENT));
  MF_FREE(pg);
  free(resp);
  (void)target;
}

static void test_unmount(mf_client *c) {
  /* A 2-replica object on segC+other survives segC's unmount with one
   * replica; a 1-replica object only on segC disappears. */
  const char *pc[] = {"segC"};
  const char *pca[] = {"segC", "segA"};
  Mcstore__PutStartResponse *p;
  CHECK_EQ_INT(mf_put_start(c, "only-c", 100, 1, pc, 1, 0, &p), 0);
  MF_FREE(p);
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "only-c", 0), 0);
  CHECK_EQ_INT(mf_put_start(c, "c-and-a", 100, 2, pca, 2, 0, &p), 0);
  MF_FREE(p);
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "c-and-a", 0), 0);
  CHECK_EQ_INT(mf_put_start(c, "pending-c", 100, 1, pc, 1, 0, NULL), 0);
  CHECK_EQ_INT(mf_unmount(c, sid[3]), 0);
  CHECK_EQ_INT(mf_get(c, "only-c", NULL), E(OBJECT_NOT_FOUND));
  CHECK_EQ_INT(mf_key_call(c, "PutEnd", "pending-c", 0), E(OBJECT_NOT_FOUND));
  Mcstore__GetReplicaListResponse *g;
  CHECK_EQ_INT(mf_get(c, "c-and-a", &g), 0);
  CHECK_EQ_U64(g->n_replicas, 1);
  CHECK_STR(g->replicas[0]->segment_name, "segA");
  MF_FREE(g);
  Mcstore__GetStatsResponse *s = mf_stats(c);
  CHECK_EQ_U64(s->capacity, 3 * MiB);
  CHECK_EQ_U64(s->segments, 3);
  MF_FREE(s);
  CHECK_EQ_INT(mf_unmount(c, sid[3]), E(SEGMENT_NOT_FOUND));
  /* Placement no longer uses it. */
  for (int i = 0; i < 10; i++) {
    char key[32];
    snprintf(key, sizeof key, "after-%d", i);
    CHECK_EQ_INT(mf_put_start(c, key, 100, 3, NULL, 0, 0, &p), 0);
    CHECK_EQ_U64(p->n_replicas, 3);
    for (size_t r = 0; r < 3; r++)
      CHECK(strcmp(p->replicas[r]->segment_name, "segC") != 0);
    MF_FREE(p);
  }
}

int main(int argc, char **argv) {
  if (argc < 2)
    SKIP("usage: test_master_rpc MASTER");
  const char *extra[] = {"--default_kv_lease_ttl=1s", "--put_start_discard_timeout_sec=2",
                         "--put_start_release_timeout_sec=5",
                         "--eviction_high_watermark_ratio=1.0", "--client_ttl=60", NULL};
  mf_master m;
  CHECK_OK(mf_start(&m, argv[1], 0, extra));
  mf_client c, other;
  mf_client_open(&c, m.target);
  mf_client_open(&other, m.target);
  test_segments(&c);
  test_placement(&c);
  test_locality(&c);
  test_lifecycle(&c, &other);
  test_preempt(&c, &other);
  test_upsert(&c);
  test_pins(&c);
  test_batches(&c);
  usleep(1100 * 1000); /* leases of the batch test end */
  test_bulk(&c);
  test_bad_input(&c, m.target);
  test_unmount(&c);
  mf_client_close(&c);
  mf_client_close(&other);
  CHECK_EQ_INT(mf_stop(&m, SIGTERM), 0);
  printf("master rpc: all checks passed\n");
  return 0;
}
