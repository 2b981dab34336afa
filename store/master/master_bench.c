/* mc-master-bench: metadata throughput of mooncake-master alone (no data
 * moves), upstream master_bench's workload: client processes calling
 * PutStart+PutEnd (4 KiB values, fresh keys) and GetReplicaList over the
 * keys they put, batched (--batch, default 128) and one key per call,
 * against 128 mounted segments.  Beside them, in the same run, the
 * baseline: Ping round trips (the RPC floor: same processes, same
 * channel, no metadata work).  Prints per phase: item-ops/s, per-call
 * latency p50/p99, CPU of the master and of the clients; --json prints
 * one object per phase.
 *
 *   mc-master-bench [--master HOST:PORT | --master-bin PATH] [--clients 2]
 *                   [--threads 2] [--batch 128] [--duration 3] [--json]
 *
 * Without --master it starts mooncake-master (next to this program, or
 * --master-bin) on a free loopback port.  Client processes are this
 * program re-executed (--worker), so no gRPC state crosses a fork. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store_proto.h"

#define NSEG 128
#define VALUE 4096
#define MAX_SAMPLES (1 << 20)

/* Upstream's figures quoted by issue 14 (same machine kind, 2 client
 * processes, batches of 128): not measured here, shown for reference. */
#define UPSTREAM_PUT_BATCHED 230000.0
#define UPSTREAM_GET_BATCHED 122000.0

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static double cpu_of(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- worker ---- */

typedef struct wthread {
  mc_rpc_channel *ch;
  const uint8_t *cid;
  const char *phase;
  int wid, tid, batch;
  uint64_t nkeys; /* get: keys this thread put */
  double until;
  uint64_t items, calls, errors;
  uint32_t *lat_us;
  size_t nlat, cap;
} wthread;

static void sample(wthread *t, double t0) {
  if (t->nlat < t->cap)
    t->lat_us[t->nlat++] = (uint32_t)((now_s() - t0) * 1e6);
  t->calls++;
}

static void *wmain(void *arg) {
  wthread *t = arg;
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, t->cid, NULL, 0);
  int b = t->batch;
  char **keys = calloc((size_t)b, sizeof(*keys));
  uint64_t *lens = calloc((size_t)b, sizeof(*lens));
  for (int i = 0; i < b; i++) {
    keys[i] = malloc(48);
    lens[i] = VALUE;
  }
  uint64_t seq = 0, rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t->wid << 20 | (uint64_t)t->tid);
  Mcstore__ReplicateConfig cfg = MCSTORE__REPLICATE_CONFIG__INIT;
  cfg.replica_num = 1;
  while (now_s() < t->until) {
    for (int i = 0; i < b; i++) {
      uint64_t k;
      if (!strcmp(t->phase, "get")) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        k = t->nkeys ? rng % t->nkeys : 0;
      } else {
        k = seq++;
      }
      /* gets read the batched put's keys (prefix b1); unbatched puts
       * write their own (b0) */
      snprintf(keys[i], 48, "b%d/%d/%d/%" PRIu64,
               strcmp(t->phase, "get") ? b > 1 : 1, t->wid, t->tid, k);
    }
    ProtobufCMessage *resp = NULL;
    double t0 = now_s();
    int rc;
    if (!strcmp(t->phase, "ping")) {
      Mcstore__PingRequest r = MCSTORE__PING_REQUEST__INIT;
      r.header = &hdr;
      rc = mcs_call(t->ch, "Ping", &r.base, &mcstore__ping_response__descriptor, &resp, 10000, NULL);
      sample(t, t0);
      t->items += 1;
    } else if (!strcmp(t->phase, "put") && b > 1) {
      Mcstore__BatchPutStartRequest r = MCSTORE__BATCH_PUT_START_REQUEST__INIT;
      r.header = &hdr;
      r.keys = keys;
      r.n_keys = r.n_value_lengths = (size_t)b;
      r.value_lengths = lens;
      r.config = &cfg;
      rc = mcs_call(t->ch, "BatchPutStart", &r.base, &mcstore__batch_put_start_response__descriptor,
                    &resp, 10000, NULL);
      sample(t, t0);
      if (!rc) {
        Mcstore__BatchPutStartResponse *p = (Mcstore__BatchPutStartResponse *)resp;
        for (size_t i = 0; i < p->n_results; i++)
          if (p->results[i]->code != 0 && t->errors++ == 0)
            fprintf(stderr, "mc-master-bench: PutStart %s: %s\n", keys[i],
                    mcs_errname(p->results[i]->code));
        protobuf_c_message_free_unpacked(resp, NULL);
        Mcstore__BatchKeyRequest e = MCSTORE__BATCH_KEY_REQUEST__INIT;
        e.header = &hdr;
        e.keys = keys;
        e.n_keys = (size_t)b;
        t0 = now_s();
        rc = mcs_call(t->ch, "BatchPutEnd", &e.base, &mcstore__batch_code_response__descriptor,
                      &resp, 10000, NULL);
        sample(t, t0);
        if (!rc) {
          Mcstore__BatchCodeResponse *c = (Mcstore__BatchCodeResponse *)resp;
          for (size_t i = 0; i < c->n_codes; i++)
            if (c->codes[i] != 0 && t->errors++ == 0)
              fprintf(stderr, "mc-master-bench: PutEnd %s: %s\n", keys[i],
                      mcs_errname(c->codes[i]));
        }
      }
      t->items += (uint64_t)b;
    } else if (!strcmp(t->phase, "put")) {
      Mcstore__PutStartRequest r = MCSTORE__PUT_START_REQUEST__INIT;
      r.header = &hdr;
      r.key = keys[0];
      r.value_length = VALUE;
      r.config = &cfg;
      rc = mcs_call(t->ch, "PutStart", &r.base, &mcstore__put_start_response__descriptor, &resp,
                    10000, NULL);
      sample(t, t0);
      if (!rc) {
        t->errors += ((Mcstore__PutStartResponse *)resp)->code != 0;
        protobuf_c_message_free_unpacked(resp, NULL);
        Mcstore__KeyRequest e = MCSTORE__KEY_REQUEST__INIT;
        e.header = &hdr;
        e.key = keys[0];
        t0 = now_s();
        rc = mcs_call(t->ch, "PutEnd", &e.base, &mcstore__code_response__descriptor, &resp,
                      10000, NULL);
        sample(t, t0);
        if (!rc)
          t->errors += ((Mcstore__CodeResponse *)resp)->code != 0;
      }
      t->items += 1;
    } else if (b > 1) {
      Mcstore__BatchKeyRequest r = MCSTORE__BATCH_KEY_REQUEST__INIT;
      r.header = &hdr;
      r.keys = keys;
      r.n_keys = (size_t)b;
      rc = mcs_call(t->ch, "BatchGetReplicaList", &r.base,
                    &mcstore__batch_get_replica_list_response__descriptor, &resp, 10000, NULL);
      sample(t, t0);
      if (!rc) {
        Mcstore__BatchGetReplicaListResponse *p = (Mcstore__BatchGetReplicaListResponse *)resp;
        for (size_t i = 0; i < p->n_results; i++)
          if (p->results[i]->code != 0 && t->errors++ == 0)
            fprintf(stderr, "mc-master-bench: GetReplicaList %s: %s\n", keys[i],
                    mcs_errname(p->results[i]->code));
      }
      t->items += (uint64_t)b;
    } else {
      Mcstore__GetReplicaListRequest r = MCSTORE__GET_REPLICA_LIST_REQUEST__INIT;
      r.header = &hdr;
      r.key = keys[0];
      rc = mcs_call(t->ch, "GetReplicaList", &r.base,
                    &mcstore__get_replica_list_response__descriptor, &resp, 10000, NULL);
      sample(t, t0);
      if (!rc && ((Mcstore__GetReplicaListResponse *)resp)->code != 0 && t->errors++ == 0)
        fprintf(stderr, "mc-master-bench: GetReplicaList %s: %s\n", keys[0],
                mcs_errname(((Mcstore__GetReplicaListResponse *)resp)->code));
      t->items += 1;
    }
    if (resp)
      protobuf_c_message_free_unpacked(resp, NULL);
    if (rc) {
      fprintf(stderr, "mc-master-bench: %s call failed: %s\n", t->phase, mcs_errname(rc));
      t->errors += (uint64_t)b;
      break;
    }
  }
  t->nkeys = seq;
  for (int i = 0; i < b; i++)
    free(keys[i]);
  free(keys);
  free(lens);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* --worker TARGET PHASE WID THREADS BATCH DURATION KEYS0,KEYS1,...
 * prints: items calls errors cpu_s p50_us p99_us keys0,keys1,... */
static int worker(char **argv) {
  const char *target = argv[0], *phase = argv[1];
  int wid = atoi(argv[2]), nt = atoi(argv[3]), batch = atoi(argv[4]);
  double dur = atof(argv[5]);
  uint8_t cid[MCS_CLIENT_ID_LEN];
  if (mcs_random_id(cid))
    return 1;
  mc_rpc_channel *ch;
  if (mc_rpc_channel_create(target, &ch))
    return 1;
  /* Register (PutStart needs a known client). */
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, cid, NULL, 0);
  Mcstore__PingRequest pr = MCSTORE__PING_REQUEST__INIT;
  pr.header = &hdr;
  ProtobufCMessage *resp;
  if (mcs_call(ch, "Ping", &pr.base, &mcstore__ping_response__descriptor, &resp, 10000, NULL))
    return 1;
  protobuf_c_message_free_unpacked(resp, NULL);
  wthread *t = calloc((size_t)nt, sizeof(*t));
  char *keys = strdup(argv[6]), *save = NULL, *tok = strtok_r(keys, ",", &save);
  double c0 = cpu_self_s(), until = now_s() + dur;
  pthread_t th[16];
  for (int i = 0; i < nt; i++) {
    t[i] = (wthread){.ch = ch, .cid = cid, .phase = phase, .wid = wid, .tid = i,
                     .batch = batch, .until = until, .cap = MAX_SAMPLES / (size_t)nt};
    t[i].nkeys = tok ? strtoull(tok, NULL, 10) : 0;
    tok = tok ? strtok_r(NULL, ",", &save) : NULL;
    t[i].lat_us = malloc(t[i].cap * sizeof(uint32_t));
    pthread_create(&th[i], NULL, wmain, &t[i]);
  }
  uint64_t items = 0, calls = 0, errors = 0;
  size_t nlat = 0;
  uint32_t *all = malloc(MAX_SAMPLES * sizeof(uint32_t));
  for (int i = 0; i < nt; i++) {
    pthread_join(th[i], NULL);
    items += t[i].items;
    calls += t[i].calls;
    errors += t[i].errors;
    memcpy(all + nlat, t[i].lat_us, t[i].nlat * sizeof(uint32_t));
    nlat += t[i].nlat;
  }
  qsort(all, nlat, sizeof(uint32_t), cmp_u32);
  printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %.3f %u %u ", items, calls, errors,
         cpu_self_s() - c0, nlat ? all[nlat / 2] : 0, nlat ? all[nlat * 99 / 100] : 0);
  for (int i = 0; i < nt; i++)
    printf("%s%" PRIu64, i ? "," : "", t[i].nkeys);
  printf("\n");
  fflush(stdout);
  for (int i = 0; i < nt; i++)
    free(t[i].lat_us);
  free(t);
  free(all);
  free(keys);
  mc_rpc_channel_destroy(ch);
  return errors ? 3 : 0;
}

/* ---- coordinator ---- */

typedef struct result {
  double items_s, calls_s, p50, p99, master_cpu, client_cpu, errors;
} result;

static pid_t start_master(const char *bin, char *target, size_t tlen) {
  int p[2];
  if (pipe(p))
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execl(bin, bin, "--rpc_address=127.0.0.1", "--rpc_port=0", "--enable_metric_reporting=false",
          (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char line[256] = "";
  FILE *f = fdopen(p[0], "r");
  int port = 0;
  if (!f || !fgets(line, sizeof line, f) ||
      sscanf(strstr(line, "127.0.0.1:") ? strstr(line, "127.0.0.1:") : "", "127.0.0.1:%d", &port) != 1) {
    fprintf(stderr, "mc-master-bench: %s did not start\n", bin);
    if (pid > 0)
      kill(pid, SIGKILL);
    return -1;
  }
  fclose(f);
  snprintf(target, tlen, "127.0.0.1:%d", port);
  return pid;
}

/* Keeps the segments' owner alive while workers run. */
static void ping(mc_rpc_channel *ch, const uint8_t *cid) {
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, cid, NULL, 0);
  Mcstore__PingRequest r = MCSTORE__PING_REQUEST__INIT;
  r.header = &hdr;
  ProtobufCMessage *resp;
  if (!mcs_call(ch, "Ping", &r.base, &mcstore__ping_response__descriptor, &resp, 5000, NULL))
    protobuf_c_message_free_unpacked(resp, NULL);
}

static int run_phase(const char *self, const char *target, pid_t master, mc_rpc_channel *ch,
                     const uint8_t *cid, const char *phase, int nclients, int nthreads,
                     int batch, double dur, char keys[][256], result *res) {
  pid_t pids[64];
  FILE *outs[64];
  double m0 = master > 0 ? cpu_of(master) : -1, t0 = now_s();
  for (int w = 0; w < nclients; w++) {
    int p[2];
    if (pipe(p))
      return -1;
    char a[5][32];
    snprintf(a[0], 32, "%d", w);
    snprintf(a[1], 32, "%d", nthreads);
    snprintf(a[2], 32, "%d", batch);
    snprintf(a[3], 32, "%.3f", dur);
    pids[w] = fork();
    if (pids[w] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(p[1], 1);
      close(p[0]);
      close(p[1]);
      execl(self, self, "--worker", target, phase, a[0], a[1], a[2], a[3],
            keys[w][0] ? keys[w] : "0", (char *)NULL);
      _exit(127);
    }
    close(p[1]);
    outs[w] = fdopen(p[0], "r");
  }
  /* Wait, pinging once a second for the segments' owner. */
  int left = nclients, st, failed = 0;
  while (left > 0) {
    for (int w = 0; w < nclients; w++)
      if (pids[w] > 0 && waitpid(pids[w], &st, WNOHANG) == pids[w]) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
          fprintf(stderr, "mc-master-bench: worker %d of phase %s exited with status %d\n", w,
                  phase, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
          failed++;
        }
        pids[w] = -pids[w];
        left--;
      }
    ping(ch, cid);
    if (left > 0)
      usleep(200 * 1000);
  }
  double wall = now_s() - t0;
  memset(res, 0, sizeof(*res));
  uint64_t items = 0, calls = 0, errors = (uint64_t)failed;
  for (int w = 0; w < nclients; w++) {
    char line[1024] = "";
    unsigned long long it = 0, ca = 0, er = 0;
    double cpu = 0;
    unsigned p50 = 0, p99 = 0;
    char k[256] = "";
    if (!outs[w] || !fgets(line, sizeof line, outs[w]) ||
        sscanf(line, "%llu %llu %llu %lf %u %u %255s", &it, &ca, &er, &cpu, &p50, &p99, k) != 7) {
      fprintf(stderr, "mc-master-bench: worker %d of phase %s failed\n", w, phase);
      errors++;
    }
    if (outs[w])
      fclose(outs[w]);
    items += it;
    calls += ca;
    errors += er;
    res->client_cpu += cpu;
    /* worst worker's percentiles */
    if (p50 > res->p50)
      res->p50 = p50;
    if (p99 > res->p99)
      res->p99 = p99;
    if (!strcmp(phase, "put") && batch > 1)
      snprintf(keys[w], 256, "%s", k);
  }
  res->items_s = (double)items / dur;
  res->calls_s = (double)calls / dur;
  res->errors = (double)errors;
  res->master_cpu = master > 0 ? (cpu_of(master) - m0) / wall : -1;
  res->client_cpu /= wall;
  return errors ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc >= 9 && !strcmp(argv[1], "--worker"))
    return worker(argv + 2);
  const char *target_arg = NULL;
  char bin[PATH_MAX] = "";
  int nclients = 2, nthreads = 2, batch = 128, json = 0;
  double dur = 3;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--master") && v)
      target_arg = argv[++i];
    else if (!strcmp(a, "--master-bin") && v)
      snprintf(bin, sizeof bin, "%s", argv[++i]);
    else if (!strcmp(a, "--clients") && v)
      nclients = atoi(argv[++i]);
    else if (!strcmp(a, "--threads") && v)
      nthreads = atoi(argv[++i]);
    else if (!strcmp(a, "--batch") && v)
      batch = atoi(argv[++i]);
    else if (!strcmp(a, "--duration") && v)
      dur = atof(argv[++i]);
    else if (!strcmp(a, "--json"))
      json = 1;
    else {
      fprintf(stderr,
              "usage: %s [--master HOST:PORT | --master-bin PATH] [--clients N (2)] "
              "[--threads N (2)] [--batch N (128)] [--duration SECONDS (3)] [--json]\n",
              argv[0]);
      return strcmp(a, "--help") ? 2 : 0;
    }
  }
  if (nclients < 1 || nclients > 64 || nthreads < 1 || nthreads > 16 || batch < 2 ||
      batch > (int)MCS_MAX_BATCH || !(dur > 0)) {
    fprintf(stderr, "mc-master-bench: --clients 1..64, --threads 1..16, --batch 2..%u, "
                    "--duration > 0\n", MCS_MAX_BATCH);
    return 2;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return 1;
  self[n] = 0;
  if (!*bin) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self);
    snprintf(bin, sizeof bin, "%s/mooncake-master", dirname(dir));
  }
  char target[128];
  pid_t master = -1;
  if (target_arg) {
    snprintf(target, sizeof target, "%s", target_arg);
  } else if ((master = start_master(bin, target, sizeof target)) < 0) {
    return 1;
  }
  mc_rpc_channel *ch;
  uint8_t cid[MCS_CLIENT_ID_LEN];
  if (mc_rpc_channel_create(target, &ch) || mcs_random_id(cid))
    return 1;
  /* 128 segments of 1 GiB (metadata only: nothing is allocated here). */
  int rc = 0;
  for (int s = 0; s < NSEG && !rc; s++) {
    Mcstore__RequestHeader hdr;
    mcs_header_set(&hdr, cid, NULL, 0);
    Mcstore__MountSegmentRequest r = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
    Mcstore__SegmentDesc d = MCSTORE__SEGMENT_DESC__INIT;
    uint8_t sid[MCS_CLIENT_ID_LEN];
    mcs_random_id(sid);
    char name[32], host[32];
    snprintf(name, sizeof name, "bench-seg-%d", s);
    snprintf(host, sizeof host, "bench-host-%d", s % 8);
    d.id.data = sid;
    d.id.len = sizeof sid;
    d.name = name;
    d.host = host;
    d.protocol = "tcp";
    d.base_address = (uint64_t)(s + 1) << 40;
    d.size = 1ull << 30;
    r.header = &hdr;
    r.segment = &d;
    ProtobufCMessage *resp;
    rc = mcs_call(ch, "MountSegment", &r.base, &mcstore__mount_segment_response__descriptor,
                  &resp, 10000, NULL);
    if (!rc) {
      rc = ((Mcstore__MountSegmentResponse *)resp)->code;
      protobuf_c_message_free_unpacked(resp, NULL);
    }
  }
  if (rc) {
    fprintf(stderr, "mc-master-bench: mounting segments on %s failed: %s\n", target,
            mcs_errname(rc));
    if (master > 0)
      kill(master, SIGKILL);
    return 1;
  }
  static char keys[64][256], none[64][256];
  struct {
    const char *phase;
    int batch;
    double upstream;
  } phases[] = {
      {"ping", 2, 0},
      {"put", batch, batch == 128 ? UPSTREAM_PUT_BATCHED : 0},
      {"get", batch, batch == 128 ? UPSTREAM_GET_BATCHED : 0},
      {"put", 1, 0},
      {"get", 1, 0},
  };
  result base = {0};
  if (!json)
    printf("mc-master-bench: %s, %d client processes x %d threads, %d segments, %d B values, "
           "%.1f s per phase\n",
           target, nclients, nthreads, NSEG, VALUE, dur);
  for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++) {
    result r;
    /* Gets (batched or not) read the keys of the batched put. */
    char (*k)[256] = !strcmp(phases[p].phase, "get") ? keys : none;
    int prc = run_phase(self, target, master, ch, cid, phases[p].phase, nclients, nthreads,
                        phases[p].batch == 2 && !strcmp(phases[p].phase, "ping") ? 1
                                                                                  : phases[p].batch,
                        dur, k, &r);
    if (p == 0)
      base = r;
    const char *op = phases[p].phase;
    int b = !strcmp(op, "ping") ? 1 : phases[p].batch;
    if (json) {
      printf("{\"op\":\"%s\",\"batch\":%d,\"clients\":%d,\"threads\":%d,\"item_ops_per_s\":%.0f,"
             "\"calls_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"master_cpu_cores\":%.2f,"
             "\"client_cpu_cores\":%.2f,\"errors\":%.0f,\"baseline\":\"ping\","
             "\"baseline_calls_per_s\":%.0f,\"ratio\":%.3f",
             !strcmp(op, "ping") ? "ping" : !strcmp(op, "put") ? "put_start_end" : "get_replica_list",
             b, nclients, nthreads, r.items_s, r.calls_s, r.p50, r.p99, r.master_cpu,
             r.client_cpu, r.errors, base.calls_s, base.calls_s > 0 ? r.items_s / base.calls_s : 0);
      if (phases[p].upstream > 0)
        printf(",\"upstream_reference_item_ops_per_s\":%.0f,\"ratio_to_upstream_reference\":%.3f",
               phases[p].upstream, r.items_s / phases[p].upstream);
      printf("}\n");
    } else {
      printf("%-17s batch %4d: %10.0f item-ops/s %9.0f calls/s  call p50 %6.0f us p99 %6.0f us  "
             "CPU master %.2f clients %.2f cores  x%.2f of ping%s",
             !strcmp(op, "ping") ? "Ping (baseline)" : !strcmp(op, "put") ? "PutStart+PutEnd"
                                                                          : "GetReplicaList",
             b, r.items_s, r.calls_s, r.p50, r.p99, r.master_cpu, r.client_cpu,
             base.calls_s > 0 ? r.items_s / base.calls_s : 0, r.errors ? "  ERRORS" : "");
      if (phases[p].upstream > 0)
        printf("  (x%.2f of upstream's %.0f quoted by the issue, not measured here)",
               r.items_s / phases[p].upstream, phases[p].upstream);
      printf("\n");
    }
    fflush(stdout);
    if (prc)
      rc = 1;
  }
  mc_rpc_channel_destroy(ch);
  if (master > 0) {
    int mst = 0;
    kill(master, SIGTERM);
    waitpid(master, &mst, 0);
    if (!WIFEXITED(mst) || WEXITSTATUS(mst) != 0) {
      fprintf(stderr, "mc-master-bench: the master exited with status %d\n",
              WIFEXITED(mst) ? WEXITSTATUS(mst) : -1);
      rc = 1;
    }
  }
  return rc;
}
