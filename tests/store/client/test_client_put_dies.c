/* A writer that dies between PutStart and PutEnd: a child process
 * registers with the master (ReMountSegment, no segments), reserves an
 * object with PutStart on the raw RPC, and is killed with SIGKILL before
 * PutEnd.  The half-written object is never readable; a new put of the
 * key is refused while the dead put is young, then (client expired, put
 * revoked) succeeds; the reserved space comes back. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc_fixture.h"
#include "store_proto.h"

enum { VSZ = 4 << 20 };

/* The dying writer: PutStart, report, wait to be killed. */
static void writer(const char *addr, int report) {
  uint8_t id[16];
  CHECK(mcs_random_id(id) == 0);
  CHECK(mc_rpc_global_init() == 0);
  mc_rpc_channel *ch;
  CHECK(mc_rpc_channel_create(addr, &ch) == 0);
  Mcstore__RequestHeader h;
  mcs_header_set(&h, id, NULL, 0);
  Mcstore__ReMountSegmentRequest rm = MCSTORE__RE_MOUNT_SEGMENT_REQUEST__INIT;
  rm.header = &h;
  Mcstore__ReMountSegmentResponse *rmr = NULL;
  CHECK(mcs_call(ch, "ReMountSegment", &rm.base, &mcstore__re_mount_segment_response__descriptor,
                 (ProtobufCMessage **)&rmr, 5000, NULL) == 0);
  CHECK_EQ_INT(rmr->code, 0);
  protobuf_c_message_free_unpacked(&rmr->base, NULL);
  Mcstore__PutStartRequest ps = MCSTORE__PUT_START_REQUEST__INIT;
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  ps.header = &h;
  ps.key = "zombie";
  ps.value_length = VSZ;
  ps.config = &cfg;
  Mcstore__PutStartResponse *psr = NULL;
  CHECK(mcs_call(ch, "PutStart", &ps.base, &mcstore__put_start_response__descriptor,
                 (ProtobufCMessage **)&psr, 5000, NULL) == 0);
  CHECK_EQ_INT(psr->code, 0);
  CHECK(psr->n_replicas == 1);
  char ok = 1;
  CHECK(write(report, &ok, 1) == 1);
  pause(); /* killed here, between PutStart and PutEnd */
  _exit(0);
}

int main(void) {
  fx_master m;
  fx_master_start(&m, "--client_ttl=2", "--put_start_discard_timeout_sec=2",
                  "--put_start_release_timeout_sec=3", NULL);
  int p[2];
  CHECK(pipe(p) == 0);
  /* Fork before this process starts gRPC. */
  pid_t w = fork();
  CHECK(w >= 0);
  if (w == 0) {
    close(p[0]);
    /* Give the parent time to mount, so the replica lands in its
     * segment. */
    usleep(1500000);
    writer(m.addr, p[1]);
  }
  close(p[1]);
  mc_store *s = fx_client(&m, 16u << 20);
  mc_store_stats st0;
  CHECK_EQ_INT(mc_store_stats_get(s, &st0), 0);
  char ok = 0;
  CHECK(read(p[0], &ok, 1) == 1 && ok == 1);
  kill(w, SIGKILL);
  waitpid(w, NULL, 0);

  char *v = malloc(VSZ), *g = malloc(VSZ);
  CHECK(v && g);
  fx_fill(v, VSZ, 9);
  mc_store_stats st;
  CHECK_EQ_INT(mc_store_stats_get(s, &st), 0);
  CHECK_EQ_U64(st.pending_puts, 1);
  CHECK(st.used >= st0.used + VSZ);
  /* Never readable, and a new put is refused while the dead one is young. */
  CHECK_EQ_INT(mc_store_exist(s, "zombie"), 0);
  int64_t r = mc_store_get(s, "zombie", g, VSZ);
  CHECK_MSG(r == MC_STORE_OBJECT_NOT_FOUND || r == MC_STORE_REPLICA_IS_NOT_READY,
            "get of an unfinished put: %s", mc_store_errname((int)r));
  int rc = mc_store_put(s, "zombie", v, VSZ, NULL);
  CHECK_MSG(rc == MC_STORE_OBJECT_ALREADY_EXISTS || rc == 0, "early put: %s",
            mc_store_errname(rc));
  int refused = rc != 0;
  /* Later the put is pre-empted / revoked and the key can be written. */
  uint64_t deadline = fx_ms() + 20000;
  while (rc && fx_ms() < deadline) {
    usleep(200000);
    CHECK_EQ_INT(mc_store_exist(s, "zombie"), 0);
    rc = mc_store_put(s, "zombie", v, VSZ, NULL);
  }
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(mc_store_get(s, "zombie", g, VSZ), VSZ);
  CHECK(memcmp(g, v, VSZ) == 0);
  /* The dead put's space comes back (after the release timeout). */
  deadline = fx_ms() + 20000;
  do {
    usleep(200000);
    CHECK_EQ_INT(mc_store_stats_get(s, &st), 0);
  } while (fx_ms() < deadline && (st.pending_puts || st.used > st0.used + VSZ));
  CHECK_EQ_U64(st.pending_puts, 0);
  CHECK_EQ_U64(st.used, st0.used + VSZ);
  printf("dead writer's put: unreadable, %s, then replaced; space back (used %llu)\n",
         refused ? "refused while young" : "pre-empted at once", (unsigned long long)st.used);
  mc_store_destroy(s);
  fx_master_stop(&m, SIGTERM);
  free(v);
  free(g);
  return 0;
}
