/* bench_fio.c - fio as the baseline of file points (bench_fio.h).
 *
 *   fio --name=mc --filename=PATH --ioengine=io_uring --direct=1
 *       --rw=read|write --bs=BLOCK --iodepth=BATCH --numjobs=THREADS
 *       --size=BATCH*BLOCK --offset_increment=BATCH*BLOCK --time_based
 *       --runtime=ceil(duration) --group_reporting --output-format=json
 *
 * Each job loops over its own BATCH x BLOCK region as each bench thread
 * does over its batch.  Throughput, latency and CPU come from fio's JSON
 * (group totals) and the child's rusage (wait4). */
#include "bench_fio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mooncake/transport.h"

#define FIO_OUT_MAX (4u << 20)

static pid_t spawn(char *const argv[], int out_fd) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int null = open("/dev/null", O_RDWR);
  dup2(null, STDIN_FILENO);
  dup2(out_fd >= 0 ? out_fd : null, STDOUT_FILENO);
  dup2(null, STDERR_FILENO);
  execvp(argv[0], argv);
  _exit(127);
}

int bench_fio_available(void) {
  char *const argv[] = {"fio", "--version", NULL};
  pid_t pid = spawn(argv, -1);
  int st = 0;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The object `"name" : {` of fio's JSON, or NULL. */
static const char *object(const char *js, const char *name) {
  size_t n = strlen(name);
  for (const char *s = js; (s = strstr(s, name)); s += n) {
    const char *p = s + n;
    while (*p == ' ')
      p++;
    if (*p++ != ':')
      continue;
    while (*p == ' ')
      p++;
    if (*p == '{')
      return p;
  }
  return NULL;
}

/* The number after "key" : inside obj (before its first nested object). */
static int num(const char *obj, const char *key, double *out) {
  const char *k = obj ? strstr(obj, key) : NULL;
  const char *nested = obj ? strchr(obj + 1, '{') : NULL;
  if (!k || (nested && k > nested && strcmp(key, "\"50.000000\"") &&
             strcmp(key, "\"99.000000\"")))
    return -1;
  k = strchr(k + strlen(key), ':');
  if (!k)
    return -1;
  char *e = NULL;
  *out = strtod(k + 1, &e);
  return e == k + 1 ? -1 : 0;
}

int bench_run_fio(const char *path, const bench_point *pt, bench_result *r, char *err,
                  size_t errlen) {
  char fname[4200], rw[16], bs[40], qd[32], jobs[32], size[48], inc[48], rt[32];
  uint64_t region = (uint64_t)pt->batch * pt->block;
  snprintf(fname, sizeof fname, "--filename=%s", path);
  snprintf(rw, sizeof rw, "--rw=%s", pt->op == MC_OP_READ ? "read" : "write");
  snprintf(bs, sizeof bs, "--bs=%" PRIu64, pt->block);
  snprintf(qd, sizeof qd, "--iodepth=%u", pt->batch);
  snprintf(jobs, sizeof jobs, "--numjobs=%u", pt->threads);
  snprintf(size, sizeof size, "--size=%" PRIu64, region);
  snprintf(inc, sizeof inc, "--offset_increment=%" PRIu64, region);
  snprintf(rt, sizeof rt, "--runtime=%d", (int)ceil(pt->duration));
  char *argv[] = {"fio", "--name=mc", fname, "--ioengine=io_uring", "--direct=1", rw, bs, qd,
                  jobs, size, inc, "--time_based", rt, "--group_reporting",
                  "--output-format=json", NULL};
  int p[2];
  if (pipe(p)) {
    snprintf(err, errlen, "fio: pipe: %s", strerror(errno));
    return -1;
  }
  uint64_t t0 = bench_now_ns();
  pid_t pid = spawn(argv, p[1]);
  close(p[1]);
  char *js = malloc(FIO_OUT_MAX + 1);
  size_t n = 0;
  while (js && n < FIO_OUT_MAX) {
    ssize_t k = read(p[0], js + n, FIO_OUT_MAX - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  close(p[0]);
  struct rusage ru = {0};
  int st = 0;
  wait4(pid, &st, 0, &ru);
  double wall = (double)(bench_now_ns() - t0) / 1e9;
  if (!js) {
    snprintf(err, errlen, "fio: out of memory");
    return -1;
  }
  js[n] = '\0';
  const char *o = object(js, pt->op == MC_OP_READ ? "\"read\"" : "\"write\"");
  double bytes = 0, ms = 0, p50 = -1, p99 = -1;
  int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && o && !num(o, "\"io_bytes\"", &bytes) &&
           !num(o, "\"runtime\"", &ms) && ms > 0;
  if (!ok) {
    snprintf(err, errlen, "fio failed (exit %d)%s%.300s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
             n ? ": " : "", n ? js : "");
    free(js);
    return -1;
  }
  const char *clat = object(o, "\"clat_ns\"");
  if (clat) {
    num(clat, "\"50.000000\"", &p50);
    num(clat, "\"99.000000\"", &p99);
  }
  free(js);
  double secs = ms / 1000.0;
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
               ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  memset(r, 0, sizeof *r);
  r->kind = "baseline";
  snprintf(r->path, sizeof r->path, "fio");
  r->op = pt->op;
  r->block = pt->block;
  r->batch = pt->batch;
  r->threads = pt->threads;
  r->wall_s = secs;
  r->bytes = (uint64_t)bytes;
  r->requests = (uint64_t)(bytes / (double)pt->block);
  r->batches = 0;
  r->p50_us = p50 >= 0 ? p50 / 1000.0 : -1;
  r->p99_us = p99 >= 0 ? p99 / 1000.0 : -1;
  r->max_us = -1;
  /* Over fio's whole life (layout and start-up are small next to the run). */
  r->cpu_pct = 100.0 * cpu / (wall > secs ? wall : secs);
  r->target_cpu_pct = -1;
  return 0;
}
