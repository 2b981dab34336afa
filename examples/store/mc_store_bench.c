/* mc-store-bench: put and get throughput (ops/s, GB/s), latency p50/p99
 * and client CPU of Mooncake Store for each value size and client count,
 * and with --baseline redis the same workload against a local
 * redis-server started on a free loopback port, in the same run; the
 * ratio is store ops/s over Redis ops/s.
 *
 * Each client is a process (its own store handle with its own segment, or
 * its own Redis connection).  A phase: every client starts together, puts
 * (keys b-<client>-<i>) or gets (the keys of the next client, so that with
 * several clients most reads are of another client's memory) for
 * --duration seconds, checks every value read, and reports its count,
 * CPU and latency samples through a pipe. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mooncake/store.h"
#include "sbench.h"

#ifndef SB_MASTER_BUILD_PATH
#define SB_MASTER_BUILD_PATH ""
#endif

typedef struct sb_child {
  pid_t pid;
  int to, from; /* pipes: commands to it, results from it */
} sb_child;

/* Command to a child: phase 1 put, 2 get, 0 quit; nkeys of the client
 * whose keys it reads. */
typedef struct sb_cmd {
  int phase;
  uint64_t nkeys;
} sb_cmd;

static int rd(int fd, void *p, size_t n) {
  char *c = p;
  while (n) {
    ssize_t r = read(fd, c, n);
    if (r <= 0)
      return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static int wr(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t r = write(fd, c, n);
    if (r <= 0)
      return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

/* The value of key (client c, index i): the first 16 bytes name it, the
 * rest is a fixed pattern. */
static void stamp(char *v, size_t n, int c, uint64_t i) {
  char h[40];
  snprintf(h, sizeof h, "%04d:%010llu", c, (unsigned long long)i);
  memcpy(v, h, n < 16 ? n : 16);
}

static int check(const char *v, size_t n, int c, uint64_t i) {
  char h[40];
  snprintf(h, sizeof h, "%04d:%010llu", c, (unsigned long long)i);
  return memcmp(v, h, n < 16 ? n : 16) == 0 && (n < 32 || (unsigned char)v[n - 1] == 0xa5);
}

static void worker(const sb_opts *o, const sb_backend *b, const char *addr, int id, int nclients,
                   uint64_t size, uint64_t max_keys, int in, int out) {
  void *ctx = b->open(o, addr, size);
  char ready = ctx ? 1 : 0;
  wr(out, &ready, 1);
  if (!ctx)
    _exit(1);
  char *val = b->buffer(ctx, size), *buf = b->buffer(ctx, size);
  float *lat = malloc(SB_MAX_LAT * sizeof *lat);
  if (!val || !buf || !lat)
    _exit(1);
  memset(val, 0xa5, size);
  int src = (id + 1) % nclients; /* whose keys the gets read */
  uint64_t nput = 0;
  sb_cmd cmd;
  char key[64];
  while (rd(in, &cmd, sizeof cmd) == 0 && cmd.phase) {
    sb_result r = {0};
    double cpu0 = sb_cpu_self(), t0 = sb_now(), end = t0 + o->duration;
    for (uint64_t i = 0;; i++) {
      double now = sb_now();
      if (now >= end || (cmd.phase == 1 && i >= max_keys) || (cmd.phase == 2 && !cmd.nkeys))
        break;
      double s = now;
      if (cmd.phase == 1) {
        snprintf(key, sizeof key, "b-%d-%llu", id, (unsigned long long)i);
        stamp(val, size, id, i);
        if (b->put(ctx, key, val, size) && !r.errors++)
          fprintf(stderr, "mc-store-bench: %s client %d: put %s failed: %s\n", b->name, id, key,
                  b->last_error ? b->last_error() : "");
        else
          nput = i + 1;
      } else {
        uint64_t k = i % cmd.nkeys;
        snprintf(key, sizeof key, "b-%d-%llu", src, (unsigned long long)k);
        int64_t got = b->get(ctx, key, buf, size);
        if (got < 0) {
          if (!r.errors++)
            fprintf(stderr, "mc-store-bench: %s client %d: get %s failed: %s\n", b->name, id,
                    key, b->last_error ? b->last_error() : "");
        } else if ((uint64_t)got != size || !check(buf, size, src, k))
          r.bad++;
      }
      double us = (sb_now() - s) * 1e6;
      if (r.nlat < SB_MAX_LAT)
        lat[r.nlat++] = (float)us;
      r.ops++;
    }
    r.secs = sb_now() - t0;
    r.cpu = sb_cpu_self() - cpu0;
    /* The put phase also tells the parent how many keys exist. */
    uint64_t n = nput;
    if (wr(out, &r, sizeof r) || wr(out, lat, r.nlat * sizeof *lat) || wr(out, &n, sizeof n))
      _exit(1);
  }
  b->close(ctx);
  free(val);
  free(buf);
  free(lat);
  _exit(0);
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

typedef struct sb_line {
  double ops_s, gb_s, p50, p99, cpu;
  uint64_t ops, errors, bad;
} sb_line;

/* Runs the put then the get phase with n clients of backend b. */
static int run(const sb_opts *o, const sb_backend *b, const char *addr, int n, uint64_t size,
               sb_line out[2]) {
  sb_child ch[SB_MAX_CLIENTS];
  uint64_t pool = o->segment * (uint64_t)n;
  /* Fill at most 60% of the pool, so the store never evicts. */
  uint64_t max_keys = pool * 6 / 10 / size / (uint64_t)n;
  if (max_keys < 1)
    max_keys = 1;
  for (int i = 0; i < n; i++) {
    int a[2], c[2];
    if (pipe(a) || pipe(c))
      return -1;
    pid_t pid = fork();
    if (pid == 0) {
      close(a[1]);
      close(c[0]);
      worker(o, b, addr, i, n, size, max_keys, a[0], c[1]);
    }
    close(a[0]);
    close(c[1]);
    ch[i] = (sb_child){pid, a[1], c[0]};
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char ready = 0;
    if (rd(ch[i].from, &ready, 1) || !ready)
      rc = -1;
  }
  uint64_t nkeys[SB_MAX_CLIENTS] = {0};
  for (int phase = 1; phase <= 2 && !rc; phase++) {
    for (int i = 0; i < n; i++) {
      sb_cmd cmd = {phase, nkeys[(i + 1) % n]};
      wr(ch[i].to, &cmd, sizeof cmd);
    }
    float *all = malloc((size_t)n * SB_MAX_LAT * sizeof *all);
    uint32_t nall = 0;
    sb_line *l = &out[phase - 1];
    memset(l, 0, sizeof *l);
    double secs = 0;
    for (int i = 0; i < n; i++) {
      sb_result r;
      uint64_t nk;
      if (rd(ch[i].from, &r, sizeof r) || !all ||
          rd(ch[i].from, all + nall, r.nlat * sizeof *all) || rd(ch[i].from, &nk, sizeof nk)) {
        rc = -1;
        break;
      }
      nall += r.nlat;
      if (phase == 1)
        nkeys[i] = nk;
      l->ops += r.ops;
      l->errors += r.errors;
      l->bad += r.bad;
      l->cpu += r.cpu;
      if (r.secs > secs)
        secs = r.secs;
    }
    if (!rc && nall) {
      qsort(all, nall, sizeof *all, cmp_float);
      l->p50 = all[nall / 2];
      l->p99 = all[(size_t)((double)nall * 0.99) < nall ? (size_t)((double)nall * 0.99) : nall - 1];
      l->ops_s = secs > 0 ? (double)(l->ops - l->errors) / secs : 0;
      l->gb_s = l->ops_s * (double)size / 1e9;
    }
    free(all);
  }
  for (int i = 0; i < n; i++) {
    sb_cmd q = {0, 0};
    wr(ch[i].to, &q, sizeof q);
    close(ch[i].to);
    close(ch[i].from);
  }
  for (int i = 0; i < n; i++) {
    int st;
    waitpid(ch[i].pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
      rc = -1;
  }
  return rc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: mc-store-bench [options]\n"
          "  --value-size SIZE   value size (repeatable; default 4K, 1M and 16M)\n"
          "  --clients N         client processes (repeatable; default 1 and 4)\n"
          "  --duration SEC      seconds per phase (default 2)\n"
          "  --segment SIZE      bytes each store client contributes (default 256M)\n"
          "  --master HOST:PORT  use this master (default: start mooncake-master on a\n"
          "                      free loopback port)\n"
          "  --master-bin PATH   the mooncake-master to start\n"
          "  --zero-copy         store: put_from/get_into registered buffers\n"
          "  --baseline redis    also run the workload on a local redis-server (SET/GET)\n"
          "  --json              one JSON object per op and configuration\n");
}

static const char *find_master(const sb_opts *o) {
  if (o->master_bin)
    return o->master_bin;
  if (*SB_MASTER_BUILD_PATH && access(SB_MASTER_BUILD_PATH, X_OK) == 0)
    return SB_MASTER_BUILD_PATH;
  return "mooncake-master";
}

int main(int argc, char **argv) {
  sb_opts o = {.duration = 2, .segment = 256u << 20};
  static const struct option lo[] = {
      {"value-size", required_argument, 0, 'v'}, {"clients", required_argument, 0, 'c'},
      {"duration", required_argument, 0, 'd'},   {"segment", required_argument, 0, 's'},
      {"master", required_argument, 0, 'm'},     {"master-bin", required_argument, 0, 'M'},
      {"baseline", required_argument, 0, 'b'},   {"json", no_argument, 0, 'j'},
      {"zero-copy", no_argument, 0, 'z'},        {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'v':
      if (o.nsizes == 8 || !(o.sizes[o.nsizes++] = sb_parse_size(optarg))) {
        fprintf(stderr, "mc-store-bench: --value-size: bad size '%s'\n", optarg);
        return 2;
      }
      break;
    case 'c':
      if (o.nclients == 8 || (o.clients[o.nclients++] = atoi(optarg)) < 1 ||
          o.clients[o.nclients - 1] > SB_MAX_CLIENTS) {
        fprintf(stderr, "mc-store-bench: --clients: 1..%d, got '%s'\n", SB_MAX_CLIENTS, optarg);
        return 2;
      }
      break;
    case 'd':
      o.duration = atof(optarg);
      if (!(o.duration > 0 && o.duration <= 600)) {
        fprintf(stderr, "mc-store-bench: --duration: (0, 600] seconds, got '%s'\n", optarg);
        return 2;
      }
      break;
    case 's':
      if (!(o.segment = sb_parse_size(optarg))) {
        fprintf(stderr, "mc-store-bench: --segment: bad size '%s'\n", optarg);
        return 2;
      }
      break;
    case 'm': o.master = optarg; break;
    case 'M': o.master_bin = optarg; break;
    case 'b':
      if (strcmp(optarg, "redis")) {
        fprintf(stderr, "mc-store-bench: --baseline: only 'redis' is known, got '%s'\n", optarg);
        return 2;
      }
      o.redis = 1;
      break;
    case 'j': o.json = 1; break;
    case 'z': o.zero_copy = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "mc-store-bench: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!o.nsizes) {
    o.sizes[0] = 4096, o.sizes[1] = 1u << 20, o.sizes[2] = 16u << 20;
    o.nsizes = 3;
  }
  if (!o.nclients) {
    o.clients[0] = 1, o.clients[1] = 4;
    o.nclients = 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char maddr[64], raddr[64];
  pid_t mpid = 0, rpid = 0;
  if (o.master) {
    snprintf(maddr, sizeof maddr, "%s", o.master);
  } else {
    int port = sb_free_port();
    char pa[32];
    snprintf(pa, sizeof pa, "--rpc_port=%d", port);
    const char *bin = find_master(&o);
    char *av[] = {(char *)bin, pa, "--rpc_address=127.0.0.1", "--enable_metric_reporting=false",
                  NULL};
    mpid = sb_spawn(av);
    if (mpid < 0 || sb_wait_port(port, 10000)) {
      fprintf(stderr, "mc-store-bench: %s did not start on port %d\n", bin, port);
      sb_kill(mpid);
      return 1;
    }
    snprintf(maddr, sizeof maddr, "127.0.0.1:%d", port);
  }
  if (o.redis) {
    int port = sb_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    char *av[] = {"redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--protected-mode", "no", NULL};
    rpid = sb_spawn(av);
    if (rpid < 0 || sb_wait_port(port, 10000)) {
      fprintf(stderr, "mc-store-bench: redis-server did not start on port %d "
              "(install redis-server)\n", port);
      sb_kill(rpid);
      sb_kill(mpid);
      return 1;
    }
    snprintf(raddr, sizeof raddr, "127.0.0.1:%d", port);
  }
  int rc = 0;
  if (!o.json)
    printf("%-4s %8s %3s  %-6s %10s %8s %9s %9s %7s %7s\n", "op", "size", "cl", "system",
           "ops/s", "GB/s", "p50_us", "p99_us", "cpu_s", "ratio");
  for (int si = 0; si < o.nsizes && !rc; si++)
    for (int ci = 0; ci < o.nclients && !rc; ci++) {
      uint64_t size = o.sizes[si];
      int n = o.clients[ci];
      sb_line st[2], rd_[2];
      if (run(&o, &sb_store_backend, maddr, n, size, st)) {
        fprintf(stderr, "mc-store-bench: the store run failed (size %llu, %d clients)\n",
                (unsigned long long)size, n);
        rc = 1;
        break;
      }
      if (o.redis && run(&o, &sb_redis_backend, raddr, n, size, rd_)) {
        fprintf(stderr, "mc-store-bench: the redis run failed\n");
        rc = 1;
        break;
      }
      /* Remove what this configuration stored, so the next starts empty. */
      mc_store_config cfg = {.struct_size = sizeof cfg, .master = maddr};
      mc_store *cl;
      if (mc_store_create(&cfg, &cl) == 0) {
        mc_store_remove_all(cl, 1);
        mc_store_destroy(cl);
      }
      if (o.redis) {
        void *r = sb_redis_backend.open(&o, raddr, 0);
        if (r) {
          sb_redis_backend.flush(r);
          sb_redis_backend.close(r);
        }
      }
      static const char *ops[2] = {"put", "get"};
      for (int p = 0; p < 2; p++) {
        double ratio = o.redis && rd_[p].ops_s > 0 ? st[p].ops_s / rd_[p].ops_s : NAN;
        if (st[p].bad || st[p].errors)
          fprintf(stderr, "mc-store-bench: store %s: %llu errors, %llu bad values\n", ops[p],
                  (unsigned long long)st[p].errors, (unsigned long long)st[p].bad);
        if (st[p].bad)
          rc = 1;
        if (o.json) {
          printf("{\"op\":\"%s\",\"value_size\":%llu,\"clients\":%d,\"ops\":%llu,"
                 "\"ops_per_s\":%.1f,\"gb_per_s\":%.4f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                 "\"cpu_s\":%.3f,\"errors\":%llu,\"bad\":%llu",
                 ops[p], (unsigned long long)size, n, (unsigned long long)st[p].ops, st[p].ops_s,
                 st[p].gb_s, st[p].p50, st[p].p99, st[p].cpu, (unsigned long long)st[p].errors,
                 (unsigned long long)st[p].bad);
          if (o.redis)
            printf(",\"baseline\":\"redis\",\"baseline_ops_per_s\":%.1f,\"baseline_gb_per_s\":%.4f,"
                   "\"baseline_p50_us\":%.1f,\"baseline_p99_us\":%.1f,\"baseline_cpu_s\":%.3f,"
                   "\"ratio\":%.3f",
                   rd_[p].ops_s, rd_[p].gb_s, rd_[p].p50, rd_[p].p99, rd_[p].cpu, ratio);
          else
            printf(",\"ratio\":null");
          printf("}\n");
        } else {
          printf("%-4s %8llu %3d  %-6s %10.1f %8.3f %9.1f %9.1f %7.2f %7.2f\n", ops[p],
                 (unsigned long long)size, n, "store", st[p].ops_s, st[p].gb_s, st[p].p50,
                 st[p].p99, st[p].cpu, ratio);
          if (o.redis)
            printf("%-4s %8llu %3d  %-6s %10.1f %8.3f %9.1f %9.1f %7.2f\n", ops[p],
                   (unsigned long long)size, n, "redis", rd_[p].ops_s, rd_[p].gb_s, rd_[p].p50,
                   rd_[p].p99, rd_[p].cpu);
        }
        fflush(stdout);
      }
    }
  sb_kill(rpid);
  sb_kill(mpid);
  return rc;
}
