/* mooncake-master test fixture (master_fixture.h). */
#include "master_fixture.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int mf_start(mf_master *m, const char *bin, int port, const char *const *extra) {
  memset(m, 0, sizeof(*m));
  int p[2];
  if (pipe(p) != 0)
    return MC_EIO;
  char portarg[32];
  snprintf(portarg, sizeof portarg, "--rpc_port=%d", port);
  const char *argv[64];
  int n = 0;
  argv[n++] = bin;
  argv[n++] = "--rpc_address=127.0.0.1";
  argv[n++] = portarg;
  argv[n++] = "--rpc_thread_num=2";
  for (int i = 0; extra && extra[i] && n < 62; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0)
    return MC_EIO;
  if (pid == 0) {
    /* A test that stops on a failed check must not leave its master
     * running (it would also hold the test's stderr open). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  m->pid = pid;
  char line[512];
  size_t len = 0;
  time_t until = time(NULL) + 10;
  while (time(NULL) < until && len < sizeof line - 1) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    if (poll(&pf, 1, 200) <= 0)
      continue;
    ssize_t r = read(p[0], line + len, 1);
    if (r <= 0)
      break;
    if (line[len] == '\n')
      break;
    len++;
  }
  line[len] = 0;
  close(p[0]); /* the master writes nothing more on stdout */
  unsigned long long view = 0;
  char *at = strstr(line, "listening on 127.0.0.1:");
  if (!at || sscanf(at, "listening on 127.0.0.1:%d view %llu", &m->port, &view) != 2) {
    fprintf(stderr, "master did not start: '%s'\n", line);
    mf_stop(m, SIGKILL);
    return MC_EIO;
  }
  m->view = view;
  snprintf(m->target, sizeof m->target, "127.0.0.1:%d", m->port);
  return 0;
}

int mf_stop(mf_master *m, int sig) {
  if (m->pid <= 0)
    return -1;
  kill(m->pid, sig);
  int st = -1;
  /* Bounded: a master that does not stop on SIGTERM in 10 s is a bug; kill it. */
  for (int i = 0; i < 1000; i++) {
    pid_t r = waitpid(m->pid, &st, WNOHANG);
    if (r == m->pid)
      break;
    if (i == 999) {
      fprintf(stderr, "master %d ignored signal %d; killing\n", (int)m->pid, sig);
      kill(m->pid, SIGKILL);
      waitpid(m->pid, &st, 0);
      st = -1;
    }
    usleep(10000);
  }
  m->pid = 0;
  return st;
}

void mf_client_open(mf_client *c, const char *target) {
  memset(c, 0, sizeof(*c));
  CHECK_OK(mcs_random_id(c->id));
  CHECK_OK(mc_rpc_channel_create(target, &c->ch));
  int st;
  /* The master may take a moment to accept; Ping until it answers. */
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; i++) {
    rc = mf_ping(c, &st);
    if (rc)
      usleep(100000);
  }
  CHECK_EQ_INT(rc, 0);
}

void mf_client_close(mf_client *c) {
  mc_rpc_channel_destroy(c->ch);
  c->ch = NULL;
}

void *mf_call(mf_client *c, const char *call, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *resp = NULL;
  mc_rpc_status st = {0};
  int rc = mcs_call(c->ch, call, req, desc, &resp, 5000, &st);
  CHECK_MSG(rc == 0, "%s: %s (%s)", call, mcs_errname(rc), st.message);
  return resp;
}

#define HDR(c, r) mcs_header_set(&hdr, (c)->id, NULL, 0), (r).header = &hdr

int mf_ping(mf_client *c, int *status) {
  Mcstore__RequestHeader hdr;
  Mcstore__PingRequest r = MCSTORE__PING_REQUEST__INIT;
  HDR(c, r);
  r.view_version = c->view;
  ProtobufCMessage *resp = NULL;
  int rc = mcs_call(c->ch, "Ping", &r.base, &mcstore__ping_response__descriptor, &resp, 3000,
                    NULL);
  if (rc)
    return rc;
  Mcstore__PingResponse *p = (Mcstore__PingResponse *)resp;
  c->view = p->view_version;
  *status = p->client_status;
  rc = p->code;
  MF_FREE(p);
  return rc;
}

int mf_mount(mf_client *c, const uint8_t *sid, const char *name, const char *host,
             uint64_t base, uint64_t size) {
  Mcstore__RequestHeader hdr;
  Mcstore__MountSegmentRequest r = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
  Mcstore__SegmentDesc s = MCSTORE__SEGMENT_DESC__INIT;
  HDR(c, r);
  s.id.data = (uint8_t *)sid;
  s.id.len = MCS_CLIENT_ID_LEN;
  s.name = (char *)name;
  s.host = (char *)host;
  s.protocol = "tcp";
  s.base_address = base;
  s.size = size;
  r.segment = &s;
  Mcstore__MountSegmentResponse *p =
      mf_call(c, "MountSegment", &r.base, &mcstore__mount_segment_response__descriptor);
  int rc = p->code;
  MF_FREE(p);
  return rc;
}

int mf_unmount(mf_client *c, const uint8_t *sid) {
  Mcstore__RequestHeader hdr;
  Mcstore__UnmountSegmentRequest r = MCSTORE__UNMOUNT_SEGMENT_REQUEST__INIT;
  HDR(c, r);
  r.segment_id.data = (uint8_t *)sid;
  r.segment_id.len = MCS_CLIENT_ID_LEN;
  Mcstore__UnmountSegmentResponse *p =
      mf_call(c, "UnmountSegment", &r.base, &mcstore__unmount_segment_response__descriptor);
  int rc = p->code;
  MF_FREE(p);
  return rc;
}

int mf_put_start_cfg(mf_client *c, const char *key, uint64_t size,
                     const Mcstore__ReplicateConfig *cfg, int upsert,
                     Mcstore__PutStartResponse **resp) {
  Mcstore__RequestHeader hdr;
  Mcstore__PutStartRequest r = MCSTORE__PUT_START_REQUEST__INIT;
  HDR(c, r);
  r.key = (char *)key;
  r.value_length = size;
  r.config = (Mcstore__ReplicateConfig *)cfg;
  Mcstore__PutStartResponse *p = mf_call(c, upsert ? "UpsertStart" : "PutStart", &r.base,
                                         &mcstore__put_start_response__descriptor);
  int rc = p->code;
  if (resp)
    *resp = p;
  else
    MF_FREE(p);
  return rc;
}

int mf_put_start(mf_client *c, const char *key, uint64_t size, uint32_t replicas,
                 const char *const *preferred, int npref, int upsert,
                 Mcstore__PutStartResponse **resp) {
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  cfg.replica_num = replicas;
  cfg.preferred_segments = (char **)preferred;
  cfg.n_preferred_segments = (size_t)npref;
  return mf_put_start_cfg(c, key, size, &cfg, upsert, resp);
}

int mf_key_call(mf_client *c, const char *call, const char *key, int force) {
  Mcstore__RequestHeader hdr;
  Mcstore__KeyRequest r = MCSTORE__KEY_REQUEST__INIT;
  HDR(c, r);
  r.key = (char *)key;
  r.force = force;
  Mcstore__CodeResponse *p = mf_call(c, call, &r.base, &mcstore__code_response__descriptor);
  int rc = p->code;
  MF_FREE(p);
  return rc;
}

int mf_put(mf_client *c, const char *key, uint64_t size, uint32_t replicas) {
  int rc = mf_put_start(c, key, size, replicas, NULL, 0, 0, NULL);
  return rc ? rc : mf_key_call(c, "PutEnd", key, 0);
}

int mf_get(mf_client *c, const char *key, Mcstore__GetReplicaListResponse **resp) {
  Mcstore__RequestHeader hdr;
  Mcstore__GetReplicaListRequest r = MCSTORE__GET_REPLICA_LIST_REQUEST__INIT;
  HDR(c, r);
  r.key = (char *)key;
  Mcstore__GetReplicaListResponse *p =
      mf_call(c, "GetReplicaList", &r.base, &mcstore__get_replica_list_response__descriptor);
  int rc = p->code;
  if (resp)
    *resp = p;
  else
    MF_FREE(p);
  return rc;
}

int mf_exist(mf_client *c, const char *key, int *exists) {
  Mcstore__RequestHeader hdr;
  Mcstore__GetReplicaListRequest r = MCSTORE__GET_REPLICA_LIST_REQUEST__INIT;
  HDR(c, r);
  r.key = (char *)key;
  Mcstore__ExistKeyResponse *p =
      mf_call(c, "ExistKey", &r.base, &mcstore__exist_key_response__descriptor);
  int rc = p->code;
  *exists = p->exists;
  MF_FREE(p);
  return rc;
}

Mcstore__GetStatsResponse *mf_stats(mf_client *c) {
  Mcstore__RequestHeader hdr;
  Mcstore__GetStatsRequest r = MCSTORE__GET_STATS_REQUEST__INIT;
  HDR(c, r);
  Mcstore__GetStatsResponse *p =
      mf_call(c, "GetStats", &r.base, &mcstore__get_stats_response__descriptor);
  CHECK_EQ_INT(p->code, 0);
  return p;
}

void mf_sid(uint8_t *sid, int n) {
  memset(sid, 0, MCS_CLIENT_ID_LEN);
  sid[0] = 0x5e;
  sid[15] = (uint8_t)n;
  sid[14] = (uint8_t)(n >> 8);
}
