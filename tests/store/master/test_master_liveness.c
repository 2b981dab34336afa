/* Client liveness in mooncake-master (--client_ttl=1):
 *  - a client process holding replicas, with a put between PutStart and
 *    PutEnd, is killed with kill -9: once expired, its segment is
 *    unmounted, objects with another complete replica stay readable (from
 *    it), objects without one disappear, its put is revoked (the key is
 *    free again, never readable half-written);
 *  - the killed client, had it survived, would be told NEED_REMOUNT;
 *  - the master killed and restarted on its port answers NEED_REMOUNT to
 *    a client that knew the old one, and the client's remount works.
 * The client process is this program re-executed (--child), so that no
 * gRPC state crosses a fork.  argv[1]: the master. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "master_fixture.h"

#define E(x) MCSTORE__ERROR_CODE__##x
#define MiB (1024u * 1024u)

static int child(const char *target) {
  mf_client c;
  mf_client_open(&c, target);
  uint8_t sid[MCS_CLIENT_ID_LEN];
  mf_sid(sid, 9);
  CHECK_EQ_INT(mf_mount(&c, sid, "segK", "hostK", 9ull << 32, MiB), 0);
  const char *pk[] = {"segK"};
  const char *pka[] = {"segK", "segA"};
  CHECK_EQ_INT(mf_put_start(&c, "k-only", 1000, 1, pk, 1, 0, NULL), 0);
  CHECK_EQ_INT(mf_key_call(&c, "PutEnd", "k-only", 0), 0);
  CHECK_EQ_INT(mf_put_start(&c, "k-and-a", 1000, 2, pka, 2, 0, NULL), 0);
  CHECK_EQ_INT(mf_key_call(&c, "PutEnd", "k-and-a", 0), 0);
  /* Dies between PutStart and PutEnd; the replica is on the parent's segA. */
  const char *pa[] = {"segA"};
  CHECK_EQ_INT(mf_put_start(&c, "k-pending", 5000, 1, pa, 1, 0, NULL), 0);
  printf("ready\n");
  fflush(stdout);
  for (int i = 0; i < 1200; i++) { /* a live client pings until it is killed */
    int st;
    (void)mf_ping(&c, &st);
    usleep(100 * 1000);
  }
  return 0;
}

typedef struct pinger {
  mf_client c;
  atomic_int stop;
} pinger;

static void *ping_loop(void *arg) {
  pinger *p = arg;
  while (!atomic_load(&p->stop)) {
    int st;
    (void)mf_ping(&p->c, &st);
    usleep(100 * 1000);
  }
  return NULL;
}

static Mcstore__GetStatsResponse *wait_expired(mf_client *c, uint64_t want) {
  for (int i = 0; i < 200; i++) {
    Mcstore__GetStatsResponse *s = mf_stats(c);
    if (s->expired_clients >= want)
      return s;
    MF_FREE(s);
    usleep(50 * 1000);
  }
  CHECK_MSG(0, "no client expired within 10 s");
  return NULL;
}

static int remount(mf_client *c, const uint8_t *sid) {
  Mcstore__RequestHeader hdr;
  Mcstore__ReMountSegmentRequest r = MCSTORE__RE_MOUNT_SEGMENT_REQUEST__INIT;
  Mcstore__SegmentDesc s = MCSTORE__SEGMENT_DESC__INIT, *sp = &s;
  mcs_header_set(&hdr, c->id, NULL, 0);
  r.header = &hdr;
  s.id.data = (uint8_t *)sid;
  s.id.len = MCS_CLIENT_ID_LEN;
  s.name = "segA";
  s.host = "hostA";
  s.protocol = "tcp";
  s.base_address = 1ull << 32;
  s.size = MiB;
  r.segments = &sp;
  r.n_segments = sid ? 1 : 0;
  Mcstore__ReMountSegmentResponse *p =
      mf_call(c, "ReMountSegment", &r.base, &mcstore__re_mount_segment_response__descriptor);
  int rc = p->code;
  MF_FREE(p);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--child"))
    return child(argv[2]);
  if (argc < 2)
    SKIP("usage: test_master_liveness MASTER");
  const char *extra[] = {"--client_ttl=2", "--default_kv_lease_ttl=200ms", NULL};
  mf_master m;
  CHECK_OK(mf_start(&m, argv[1], 0, extra));
  pinger pg = {0};
  mf_client_open(&pg.c, m.target);
  mf_client *a = &pg.c;
  uint8_t sid[MCS_CLIENT_ID_LEN];
  mf_sid(sid, 1);
  CHECK_EQ_INT(mf_mount(a, sid, "segA", "hostA", 1ull << 32, MiB), 0);
  pthread_t thr;
  mf_client ac = *a; /* the test's own calls; the thread keeps a alive */
  CHECK_EQ_INT(pthread_create(&thr, NULL, ping_loop, &pg), 0);

  /* The client process. */
  int out[2];
  CHECK_EQ_INT(pipe(out), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl("/proc/self/exe", argv[0], "--child", m.target, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  char line[16] = "";
  CHECK(read(out[0], line, 6) == 6 && !strncmp(line, "ready\n", 6));
  close(out[0]);
  CHECK_EQ_INT(mf_get(&ac, "k-only", NULL), 0);
  Mcstore__GetReplicaListResponse *g;
  CHECK_EQ_INT(mf_get(&ac, "k-and-a", &g), 0);
  CHECK_EQ_U64(g->n_replicas, 2);
  MF_FREE(g);
  CHECK_EQ_INT(mf_get(&ac, "k-pending", NULL), E(REPLICA_IS_NOT_READY));
  Mcstore__GetStatsResponse *s = mf_stats(&ac);
  CHECK_EQ_U64(s->segments, 2);
  CHECK_EQ_U64(s->clients, 2);
  MF_FREE(s);

  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  s = wait_expired(&ac, 1);
  CHECK_EQ_U64(s->segments, 1);
  CHECK_EQ_U64(s->clients, 1); /* the pinging one stays */
  CHECK_EQ_U64(s->capacity, MiB);
  CHECK_EQ_U64(s->pending_puts, 0);
  MF_FREE(s);
  CHECK_EQ_INT(mf_get(&ac, "k-only", NULL), E(OBJECT_NOT_FOUND));
  CHECK_EQ_INT(mf_get(&ac, "k-and-a", &g), 0);
  CHECK_EQ_U64(g->n_replicas, 1);
  CHECK_STR(g->replicas[0]->segment_name, "segA");
  MF_FREE(g);
  /* The dead writer's put is revoked: nothing readable, the key is free. */
  CHECK_EQ_INT(mf_get(&ac, "k-pending", NULL), E(OBJECT_NOT_FOUND));
  CHECK_EQ_INT(mf_put_start(&ac, "k-pending", 5000, 1, NULL, 0, 0, NULL), 0);
  CHECK_EQ_INT(mf_key_call(&ac, "PutEnd", "k-pending", 0), 0);

  /* An expired client that comes back is told to remount. */
  mf_client ghost;
  mf_client_open(&ghost, m.target);
  int cst = -1;
  atomic_store(&pg.stop, 1);
  pthread_join(thr, NULL);
  /* Neither ghost nor a pings now: both expire; ghost then pings again
   * with the view it knew. */
  s = wait_expired(&ac, 3);
  MF_FREE(s);
  CHECK_EQ_INT(mf_ping(&ghost, &cst), 0);
  CHECK_EQ_INT(cst, MCSTORE__CLIENT_STATUS__NEED_REMOUNT);
  /* ...and keeps being told until it remounts (here: nothing to mount). */
  CHECK_EQ_INT(mf_ping(&ghost, &cst), 0);
  CHECK_EQ_INT(cst, MCSTORE__CLIENT_STATUS__NEED_REMOUNT);
  CHECK_EQ_INT(remount(&ghost, NULL), 0);
  CHECK_EQ_INT(mf_ping(&ghost, &cst), 0);
  CHECK_EQ_INT(cst, MCSTORE__CLIENT_STATUS__CLIENT_OK);
  mf_client_close(&ghost);

  /* Master killed and restarted on the same port. */
  uint64_t old_view = a->view;
  int port = m.port;
  CHECK_EQ_INT(mf_ping(a, &cst), 0); /* a was expired too while not pinging */
  CHECK_EQ_INT(remount(a, sid), 0);
  mf_stop(&m, SIGKILL);
  CHECK_OK(mf_start(&m, argv[1], port, extra));
  CHECK(m.view != old_view);
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; i++) { /* the channel reconnects */
    rc = mf_ping(a, &cst);
    if (rc)
      usleep(100 * 1000);
  }
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(cst, MCSTORE__CLIENT_STATUS__NEED_REMOUNT);
  CHECK_EQ_U64(a->view, m.view);
  s = mf_stats(a);
  CHECK_EQ_U64(s->segments, 0);
  CHECK_EQ_U64(s->objects, 0); /* metadata is not persistent (as upstream without HA) */
  MF_FREE(s);
  CHECK_EQ_INT(remount(a, sid), 0);
  CHECK_EQ_INT(mf_ping(a, &cst), 0);
  CHECK_EQ_INT(cst, MCSTORE__CLIENT_STATUS__CLIENT_OK);
  s = mf_stats(a);
  CHECK_EQ_U64(s->segments, 1);
  CHECK_EQ_U64(s->capacity, MiB);
  MF_FREE(s);
  CHECK_EQ_INT(mf_put(a, "after-restart", 100, 1), 0);
  CHECK_EQ_INT(mf_get(a, "after-restart", NULL), 0);
  mf_client_close(a);
  CHECK_EQ_INT(mf_stop(&m, SIGTERM), 0);
  printf("liveness: all checks passed\n");
  return 0;
}
