/* mc-store-ssd-bench: the store's SSD tier against its memory, in one run.
 *
 * Starts a master and a holder process (a store handle with --memory bytes
 * of memory and an SSD tier in --dir), puts --objects values of
 * --value-size bytes from this process (so most of them are evicted to the
 * tier), then measures:
 *   - offload: objects copied to the tier per second while the puts ran,
 *     and the holder's CPU per offloaded MiB (its whole life, from wait4);
 *   - gets of objects still in memory (the baseline) and of objects only
 *     on the tier, each for --duration seconds: ops/s, GB/s, latency p50 /
 *     p99 and this process's CPU per get; every value is checked.
 * The disk row's ratio is disk over memory.  MC_STORE_SSD_MODE (file,
 * mmap) is passed to the holder: --mode sets it. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mooncake/store.h"
#include "sbench.h"

#ifndef SB_MASTER_BUILD_PATH
#define SB_MASTER_BUILD_PATH ""
#endif

static void fill(char *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = (char)x;
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct row {
  double ops, gbs, p50, p99, cpu_us;
  uint64_t n, bad, err; /* bad: a wrong value; err: a failed get (e.g. lease expired) */
} row;

/* Gets keys[i] (seed seeds[i]) round-robin for secs seconds. */
static row run_gets(mc_store *s, char **keys, uint64_t *seeds, int nk, size_t vsz, double secs,
                    char *buf, char *want) {
  row r = {0};
  size_t cap = 1 << 20;
  double *lat = malloc(cap * sizeof *lat);
  double t0 = sb_now(), c0 = sb_cpu_self(), t;
  for (uint64_t i = 0; (t = sb_now()) - t0 < secs && lat; i++) {
    int k = (int)(i % (uint64_t)nk);
    int64_t got = mc_store_get(s, keys[k], buf, vsz);
    double t1 = sb_now();
    fill(want, vsz, seeds[k]);
    if (got != (int64_t)vsz)
      r.err++;
    else if (memcmp(buf, want, vsz))
      r.bad++;
    if (r.n < cap)
      lat[r.n] = (t1 - t) * 1e6;
    r.n++;
  }
  double wall = sb_now() - t0, cpu = sb_cpu_self() - c0;
  size_t nl = r.n < cap ? r.n : cap;
  if (lat && nl) {
    qsort(lat, nl, sizeof *lat, cmp_d);
    r.p50 = lat[nl / 2];
    r.p99 = lat[(size_t)((double)nl * 0.99)];
  }
  free(lat);
  r.ops = (double)r.n / wall;
  r.gbs = r.ops * (double)vsz / 1e9;
  r.cpu_us = r.n ? cpu * 1e6 / (double)r.n : 0;
  return r;
}

int main(int argc, char **argv) {
  uint64_t vsz = 1 << 20, mem = 16u << 20;
  int nobj = 64;
  double secs = 2;
  const char *dir = NULL, *mode = NULL, *mbin = SB_MASTER_BUILD_PATH;
  static const struct option opts[] = {
      {"value-size", required_argument, 0, 's'}, {"objects", required_argument, 0, 'n'},
      {"memory", required_argument, 0, 'm'},     {"duration", required_argument, 0, 'd'},
      {"dir", required_argument, 0, 'D'},        {"mode", required_argument, 0, 'M'},
      {"master-bin", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 's': vsz = sb_parse_size(optarg); break;
    case 'n': nobj = atoi(optarg); break;
    case 'm': mem = sb_parse_size(optarg); break;
    case 'd': secs = atof(optarg); break;
    case 'D': dir = optarg; break;
    case 'M': mode = optarg; break;
    case 'b': mbin = optarg; break;
    default:
      fprintf(c == 'h' ? stdout : stderr,
              "usage: mc-store-ssd-bench [--value-size 1M] [--objects 64] [--memory 16M]\n"
              "       [--duration 2] [--dir DIR (default: a temporary one)] [--mode file|mmap]\n"
              "       [--master-bin PATH]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (!vsz || nobj < 8 || mem < vsz * 2 || secs <= 0 || !mbin || !*mbin) {
    fprintf(stderr, "mc-store-ssd-bench: bad options (objects >= 8, memory >= 2 values, "
                    "a master binary)\n");
    return 2;
  }
  char tmp[256] = "";
  if (!dir) {
    const char *t = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/mc-ssd-bench-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp)) {
      perror("mkdtemp");
      return 1;
    }
    dir = tmp;
  }
  if (mode)
    setenv("MC_STORE_SSD_MODE", mode, 1);
  int port = sb_free_port();
  char portarg[32], addr[64];
  snprintf(portarg, sizeof portarg, "--rpc_port=%d", port);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  char *mav[] = {(char *)mbin, portarg, "--rpc_address=127.0.0.1",
                 "--enable_metric_reporting=false", "--default_kv_lease_ttl=1s", NULL};
  pid_t mpid = sb_spawn(mav);
  if (mpid < 0 || sb_wait_port(port, 10000)) {
    fprintf(stderr, "mc-store-ssd-bench: the master did not start\n");
    return 1;
  }
  /* The holder: memory and the SSD tier, until its pipe closes. */
  int hp[2], ready[2];
  if (pipe(hp) || pipe(ready))
    return 1;
  fflush(NULL);
  pid_t hpid = fork();
  if (hpid == 0) {
    close(hp[1]);
    close(ready[0]);
    mc_store_config hc = {.struct_size = sizeof hc, .master = addr,
                          .global_segment_size = mem, .ssd_offload_dir = dir,
                          .ssd_offload_size = vsz * (uint64_t)nobj * 2};
    mc_store *h = NULL;
    int rc = mc_store_create(&hc, &h);
    if (rc)
      fprintf(stderr, "holder: %s: %s\n", mc_store_errname(rc), mc_store_last_error());
    char ok = rc == 0;
    mc_store_tier_stats ht = {.struct_size = sizeof ht};
    if (ok && mc_store_tier_stats_get(h, &ht) == 0)
      ok = (char)(1 + ht.ssd_mode);
    if (write(ready[1], &ok, 1) != 1)
      _exit(1);
    char x;
    while (read(hp[0], &x, 1) > 0)
      ;
    mc_store_destroy(h);
    _exit(0);
  }
  close(hp[0]);
  close(ready[1]);
  char ok = 0;
  if (read(ready[0], &ok, 1) != 1 || !ok) {
    fprintf(stderr, "mc-store-ssd-bench: the holder did not start\n");
    sb_kill(mpid);
    return 1;
  }
  int hmode = ok - 1;
  mc_store_config cc = {.struct_size = sizeof cc, .master = addr};
  mc_store *s = NULL;
  int rc = mc_store_create(&cc, &s);
  if (rc) {
    fprintf(stderr, "client: %s\n", mc_store_last_error());
    return 1;
  }
  char *buf = malloc(vsz), *want = malloc(vsz);
  char **keys = calloc((size_t)nobj, sizeof *keys);
  uint64_t *seeds = calloc((size_t)nobj, sizeof *seeds);
  if (!buf || !want || !keys || !seeds)
    return 1;
  /* Puts: memory fills, eviction offloads the oldest to the tier. */
  double t0 = sb_now();
  for (int i = 0; i < nobj; i++) {
    keys[i] = malloc(32);
    snprintf(keys[i], 32, "ssd-bench-%d", i);
    seeds[i] = (uint64_t)i + 1;
    fill(want, vsz, seeds[i]);
    double tp = sb_now();
    while ((rc = mc_store_put(s, keys[i], want, vsz, NULL)) == MC_STORE_NO_AVAILABLE_HANDLE &&
           sb_now() - tp < 30)
      usleep(2000);
    if (rc) {
      fprintf(stderr, "put %s: %s\n", keys[i], mc_store_last_error());
      return 1;
    }
  }
  mc_store_tier_stats t = {.struct_size = sizeof t};
  uint64_t last = 0;
  double tl = sb_now();
  while (sb_now() - tl < 0.3) { /* until offloading settles */
    if (mc_store_tier_stats_get(s, &t) == 0 && (t.offloaded_objects != last || t.pending_offloads))
      last = t.offloaded_objects, tl = sb_now();
    usleep(20000);
  }
  double off_secs = tl - t0;
  char **mk = calloc((size_t)nobj, sizeof *mk), **dk = calloc((size_t)nobj, sizeof *dk);
  uint64_t *ms = calloc((size_t)nobj, sizeof *ms), *ds = calloc((size_t)nobj, sizeof *ds);
  int nm = 0, nd = 0;
  for (int i = 0; i < nobj && mk && dk && ms && ds; i++) {
    uint32_t m = 0, d = 0;
    if (mc_store_replica_tiers(s, keys[i], &m, &d) != 0)
      continue;
    if (m)
      mk[nm] = keys[i], ms[nm++] = seeds[i];
    else if (d)
      dk[nd] = keys[i], ds[nd++] = seeds[i];
  }
  if (!nm || !nd) {
    fprintf(stderr, "mc-store-ssd-bench: %d objects in memory, %d on disk only: nothing "
                    "to compare (more --objects or less --memory)\n", nm, nd);
    return 1;
  }
  row rm = run_gets(s, mk, ms, nm, vsz, secs, buf, want);
  row rd = run_gets(s, dk, ds, nd, vsz, secs, buf, want);
  mc_store_destroy(s);
  close(hp[1]);
  struct rusage ru;
  int st;
  double hcpu = 0;
  if (wait4(hpid, &st, 0, &ru) == hpid)
    hcpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  sb_kill(mpid);
  if (tmp[0])
    rmdir(tmp);
  double mib = (double)t.offloaded_objects * (double)vsz / (1 << 20);
  printf("SSD tier (%s), value %llu B, %d objects, memory %llu B: %d in memory, %d on disk\n",
         hmode == 1 ? "file: mc_register_file" : "mmap", (unsigned long long)vsz, nobj,
         (unsigned long long)mem, nm, nd);
  printf("offload: %llu objects in %.2f s (%.1f MiB/s while putting), holder CPU %.2f ms per "
         "offloaded MiB (whole life)\n",
         (unsigned long long)t.offloaded_objects, off_secs, mib / off_secs,
         mib > 0 ? hcpu * 1e3 / mib : 0.0);
  printf("%-8s %10s %8s %10s %10s %12s %6s %6s\n", "get", "ops/s", "GB/s", "p50 us", "p99 us",
         "CPU us/op", "failed", "bad");
  printf("%-8s %10.0f %8.3f %10.1f %10.1f %12.1f %6llu %6llu\n", "memory", rm.ops, rm.gbs,
         rm.p50, rm.p99, rm.cpu_us, (unsigned long long)rm.err, (unsigned long long)rm.bad);
  printf("%-8s %10.0f %8.3f %10.1f %10.1f %12.1f %6llu %6llu\n", "disk", rd.ops, rd.gbs, rd.p50,
         rd.p99, rd.cpu_us, (unsigned long long)rd.err, (unsigned long long)rd.bad);
  printf("disk/memory: ops %.2fx, p50 %.2fx, CPU per get %.2fx\n", rd.ops / rm.ops,
         rd.p50 / rm.p50, rm.cpu_us > 0 ? rd.cpu_us / rm.cpu_us : 0.0);
  for (int i = 0; i < nobj; i++)
    free(keys[i]);
  free(keys), free(seeds), free(mk), free(dk), free(ms), free(ds), free(buf), free(want);
  /* A wrong value fails the run; a failed get (a lease that ran out on a
   * loaded machine) is counted and shown. */
  return rm.bad || rd.bad ? 1 : 0;
}
