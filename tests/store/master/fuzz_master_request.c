/* Fuzzing the master's request handlers in-process (no server): the
 * first byte of an input picks the call, the rest is its request bytes.
 * A master with two mounted segments and some objects answers; any crash,
 * sanitizer report, leak or hang fails.
 *
 * Built as a libFuzzer target with -Dfuzz=true; otherwise main() below
 * runs it as a bounded test: valid requests of every call (the seeds,
 * made here) and argv[1] (default 20000) deterministic mutations of them
 * (bit flips, truncations, insertions, splices). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "master.h"
#include "service.h"

static mcs_master *m;
static uint8_t cid[MCS_CLIENT_ID_LEN] = {0xc1, 0x1e, 0x47};

static void setup(void) {
  if (m)
    return;
  mcs_master_config cfg;
  mcs_config_defaults(&cfg);
  cfg.client_ttl_ms = 3600000;
  cfg.default_kv_lease_ttl_ms = 1;
  if (mcs_master_create(&cfg, &m))
    abort();
  int st;
  mcs_ping(m, cid, 0, &st);
  uint8_t s1[MCS_CLIENT_ID_LEN] = {1}, s2[MCS_CLIENT_ID_LEN] = {2};
  mcs_mount(m, cid, s1, "seg1", "h1", "tcp", 1 << 20, 4 << 20);
  mcs_mount(m, cid, s2, "seg2", "h2", "tcp", 16 << 20, 4 << 20);
  /* An SSD tier: evictions under mutated puts become offload tasks that
   * OffloadSync hands out (and mutated reports finish). */
  uint8_t s3[MCS_CLIENT_ID_LEN] = {3};
  mcs_mount_ex(m, cid, s3, "seg1", "h1", "tcp", 1ull << 40, 64 << 20, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size < 1)
    return 0;
  size_t ncalls = 0;
  while (mcs_service_call_name(ncalls))
    ncalls++;
  void *resp = NULL;
  size_t rlen = 0;
  char err[256];
  int code = mcs_service_call(m, data[0] % ncalls, data + 1, size - 1, &resp, &rlen, err,
                              sizeof err);
  if (code == 0 && !resp && rlen)
    abort();
  free(resp);
  return 0;
}

#ifndef MC_LIBFUZZER
typedef struct seed {
  uint8_t *d;
  size_t n;
} seed;

static seed seeds[64];
static size_t nseeds;

static void add_seed(size_t call, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  seed *s = &seeds[nseeds++];
  s->d = malloc(n + 1);
  s->d[0] = (uint8_t)call;
  protobuf_c_message_pack(msg, s->d + 1);
  s->n = n + 1;
}

static size_t call_index(const char *name) {
  for (size_t i = 0; mcs_service_call_name(i); i++)
    if (!strcmp(mcs_service_call_name(i), name))
      return i;
  abort();
}

static uint64_t rs = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 20000;
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, cid, NULL, 0);
  char *keys[] = {"alpha", "beta", "gamma"};
  uint64_t lens[] = {100, 5000, 70000};
  char *pref[] = {"seg2"};
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  cfg.replica_num = 2;
  cfg.preferred_segments = pref;
  cfg.n_preferred_segments = 1;
  cfg.with_soft_pin = 1;
  Mcstore__SegmentDesc sd = MCSTORE__SEGMENT_DESC__INIT, *sdp = &sd;
  uint8_t sid[MCS_CLIENT_ID_LEN] = {9};
  sd.id.data = sid;
  sd.id.len = sizeof sid;
  sd.name = "seg9";
  sd.host = "h9";
  sd.protocol = "tcp";
  sd.base_address = 64 << 20;
  sd.size = 1 << 20;

  Mcstore__MountSegmentRequest mount = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
  mount.header = &hdr;
  mount.segment = &sd;
  add_seed(call_index("MountSegment"), &mount.base);
  Mcstore__ReMountSegmentRequest remount = MCSTORE__RE_MOUNT_SEGMENT_REQUEST__INIT;
  remount.header = &hdr;
  remount.segments = &sdp;
  remount.n_segments = 1;
  add_seed(call_index("ReMountSegment"), &remount.base);
  Mcstore__UnmountSegmentRequest unmount = MCSTORE__UNMOUNT_SEGMENT_REQUEST__INIT;
  unmount.header = &hdr;
  unmount.segment_id = sd.id;
  add_seed(call_index("UnmountSegment"), &unmount.base);
  Mcstore__PingRequest ping = MCSTORE__PING_REQUEST__INIT;
  ping.header = &hdr;
  ping.view_version = 7;
  add_seed(call_index("Ping"), &ping.base);
  Mcstore__PutStartRequest ps = MCSTORE__PUT_START_REQUEST__INIT;
  ps.header = &hdr;
  ps.key = "alpha";
  ps.value_length = 4096;
  ps.config = &cfg;
  add_seed(call_index("PutStart"), &ps.base);
  add_seed(call_index("UpsertStart"), &ps.base);
  Mcstore__KeyRequest kr = MCSTORE__KEY_REQUEST__INIT;
  kr.header = &hdr;
  kr.key = "alpha";
  kr.force = 1;
  const char *key_calls[] = {"PutEnd", "PutRevoke", "UpsertEnd", "UpsertRevoke", "Remove"};
  for (size_t i = 0; i < 5; i++)
    add_seed(call_index(key_calls[i]), &kr.base);
  Mcstore__BatchPutStartRequest bps = MCSTORE__BATCH_PUT_START_REQUEST__INIT;
  bps.header = &hdr;
  bps.keys = keys;
  bps.n_keys = 3;
  bps.value_lengths = lens;
  bps.n_value_lengths = 3;
  bps.config = &cfg;
  add_seed(call_index("BatchPutStart"), &bps.base);
  add_seed(call_index("BatchUpsertStart"), &bps.base);
  Mcstore__BatchKeyRequest bk = MCSTORE__BATCH_KEY_REQUEST__INIT;
  bk.header = &hdr;
  bk.keys = keys;
  bk.n_keys = 3;
  const char *batch_calls[] = {"BatchPutEnd", "BatchPutRevoke", "BatchUpsertEnd",
                               "BatchUpsertRevoke", "BatchGetReplicaList", "BatchExistKey",
                               "BatchRemove"};
  for (size_t i = 0; i < 7; i++)
    add_seed(call_index(batch_calls[i]), &bk.base);
  Mcstore__GetReplicaListRequest g = MCSTORE__GET_REPLICA_LIST_REQUEST__INIT;
  g.header = &hdr;
  g.key = "beta";
  add_seed(call_index("GetReplicaList"), &g.base);
  add_seed(call_index("ExistKey"), &g.base);
  Mcstore__RemoveByRegexRequest rr = MCSTORE__REMOVE_BY_REGEX_REQUEST__INIT;
  rr.header = &hdr;
  rr.regex = "^(al|be)[a-z]+$";
  add_seed(call_index("RemoveByRegex"), &rr.base);
  Mcstore__RemoveAllRequest ra = MCSTORE__REMOVE_ALL_REQUEST__INIT;
  ra.header = &hdr;
  add_seed(call_index("RemoveAll"), &ra.base);
  Mcstore__GetStatsRequest gs = MCSTORE__GET_STATS_REQUEST__INIT;
  gs.header = &hdr;
  add_seed(call_index("GetStats"), &gs.base);
  Mcstore__ListKeysRequest lk = MCSTORE__LIST_KEYS_REQUEST__INIT;
  lk.header = &hdr;
  lk.regex = "a";
  lk.limit = 10;
  add_seed(call_index("ListKeys"), &lk.base);
  uint64_t ids[] = {1, 2, 3};
  Mcstore__OffloadSyncRequest os = MCSTORE__OFFLOAD_SYNC_REQUEST__INIT;
  os.header = &hdr;
  os.done = ids;
  os.n_done = 1;
  os.failed = ids + 1;
  os.n_failed = 1;
  os.trimmed = ids + 2;
  os.n_trimmed = 1;
  os.max_tasks = 4;
  add_seed(call_index("OffloadSync"), &os.base);
  Mcstore__PromoteStartRequest pr = MCSTORE__PROMOTE_START_REQUEST__INIT;
  pr.header = &hdr;
  pr.key = "gamma";
  pr.version = 2;
  pr.config = &cfg;
  add_seed(call_index("PromoteStart"), &pr.base);
  Mcstore__SegmentDesc dd = sd;
  uint8_t did[MCS_CLIENT_ID_LEN] = {10};
  dd.id.data = did;
  dd.disk = 1;
  Mcstore__MountSegmentRequest dmount = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
  dmount.header = &hdr;
  dmount.segment = &dd;
  add_seed(call_index("MountSegment"), &dmount.base);

  /* Every seed as is (valid calls work), then mutations. */
  for (size_t i = 0; i < nseeds; i++)
    LLVMFuzzerTestOneInput(seeds[i].d, seeds[i].n);
  uint8_t buf[8192];
  for (long it = 0; it < iters; it++) {
    seed *s = &seeds[rnd() % nseeds];
    size_t n = s->n < sizeof buf ? s->n : sizeof buf;
    memcpy(buf, s->d, n);
    int muts = 1 + (int)(rnd() % 4);
    for (int k = 0; k < muts; k++) {
      switch (rnd() % 5) {
      case 0: /* bit flip */
        if (n > 1)
          buf[1 + rnd() % (n - 1)] ^= (uint8_t)(1u << (rnd() % 8));
        break;
      case 1: /* truncate */
        if (n > 1)
          n = 1 + rnd() % (n - 1);
        break;
      case 2: /* insert a byte */
        if (n < sizeof buf && n > 1) {
          size_t at = 1 + rnd() % (n - 1);
          memmove(buf + at + 1, buf + at, n - at);
          buf[at] = (uint8_t)rnd();
          n++;
        }
        break;
      case 3: { /* splice another seed's tail */
        seed *o = &seeds[rnd() % nseeds];
        size_t at = 1 + rnd() % (n > 1 ? n - 1 : 1), from = 1 + rnd() % (o->n - 1);
        size_t take = o->n - from;
        if (at + take > sizeof buf)
          take = sizeof buf - at;
        memcpy(buf + at, o->d + from, take);
        n = at + take;
        break;
      }
      default: /* another call with these bytes */
        buf[0] = (uint8_t)rnd();
        break;
      }
    }
    LLVMFuzzerTestOneInput(buf, n);
  }
  /* The master is still consistent: a put and a get work. */
  int nout = 0;
  mcs_rep_out out[MCS_MAX_REPLICAS];
  mcs_put_cfg pc = {.replica_num = 1};
  (void)mcs_remove(m, "final", 5, 1);
  CHECK_EQ_INT(mcs_put_start(m, cid, "final", 5, 10, &pc, 0, out, &nout), 0);
  mcs_reps_release(out, nout);
  CHECK_EQ_INT(mcs_put_end(m, cid, "final", 5), 0);
  CHECK_EQ_INT(mcs_get_replicas(m, "final", 5, out, &nout), 0);
  mcs_reps_release(out, nout);
  for (size_t i = 0; i < nseeds; i++)
    free(seeds[i].d);
  mcs_master_destroy(m);
  printf("master request fuzz: %zu seeds, %ld mutations, no crash\n", nseeds, iters);
  return 0;
}
#endif
