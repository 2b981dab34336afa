/* bench_iperf.c - iperf3 as a baseline (bench_iperf.h).
 *
 * For one point: an iperf3 server ("-s -1", bound to 127.0.0.1 on a free
 * port) and an iperf3 client ("-c -P threads -t ceil(duration) -l block
 * -J", with -R for read so the data flows from the server as from a
 * target), both children of this process.  Throughput comes from the
 * client's JSON (end.sum_received), CPU from each child's own rusage
 * (wait4): the client's is the initiator side, the server's the target
 * side, so CPU seconds per GB compare like for like. */
#include "bench_iperf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_stats.h"
#include "mooncake/transport.h"

#define IPERF_MAX_LEN (1u << 20) /* iperf3 refuses larger -l */
#define IPERF_OUT_MAX (1u << 20)

static double ru_s(const struct rusage *ru) {
  return (double)ru->ru_utime.tv_sec + (double)ru->ru_stime.tv_sec +
         ((double)ru->ru_utime.tv_usec + (double)ru->ru_stime.tv_usec) / 1e6;
}

/* A port free right now on 127.0.0.1 (iperf3 binds it next: a tiny race,
 * retried by the caller). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* Starts argv with stdout to out_fd (-1: /dev/null), stderr to /dev/null. */
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

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Reads the whole of fd into a NUL-terminated heap buffer. */
static char *slurp(int fd) {
  char *buf = malloc(IPERF_OUT_MAX + 1);
  size_t n = 0;
  if (!buf)
    return NULL;
  for (;;) {
    ssize_t k = read(fd, buf + n, IPERF_OUT_MAX - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    n += (size_t)k;
    if (n == IPERF_OUT_MAX)
      break;
  }
  buf[n] = '\0';
  return buf;
}

/* The number after "key": inside the object that follows "section". */
static int json_num(const char *js, const char *section, const char *key, double *out) {
  const char *s = strstr(js, section);
  if (!s)
    return -1;
  const char *end = strchr(s, '}');
  const char *k = strstr(s, key);
  if (!k || (end && k > end))
    return -1;
  k = strchr(k + strlen(key), ':');
  if (!k)
    return -1;
  char *e = NULL;
  *out = strtod(k + 1, &e);
  return e == k + 1 ? -1 : 0;
}

int bench_iperf_available(void) {
  char *const argv[] = {"iperf3", "--version", NULL};
  pid_t pid = spawn(argv, -1);
  int st = 0;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int bench_run_iperf3(const bench_point *pt, bench_result *r, char *err, size_t errlen) {
  char port_s[16], par[16], tsec[16], len[32];
  uint64_t l = pt->block < IPERF_MAX_LEN ? pt->block : IPERF_MAX_LEN;
  snprintf(par, sizeof par, "%u", pt->threads);
  snprintf(tsec, sizeof tsec, "%d", (int)ceil(pt->duration));
  snprintf(len, sizeof len, "%" PRIu64, l);
  for (int attempt = 0; attempt < 5; attempt++) {
    int port = free_port();
    if (port < 0) {
      snprintf(err, errlen, "iperf3: no free port");
      return -1;
    }
    snprintf(port_s, sizeof port_s, "%d", port);
    char *const sargv[] = {"iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port_s, NULL};
    pid_t srv = spawn(sargv, -1);
    if (srv < 0) {
      snprintf(err, errlen, "iperf3: fork: %s", strerror(errno));
      return -1;
    }
    sleep_ms(200); /* let it listen */
    int p[2];
    if (pipe(p)) {
      kill(srv, SIGKILL);
      waitpid(srv, NULL, 0);
      snprintf(err, errlen, "iperf3: pipe: %s", strerror(errno));
      return -1;
    }
    char *cargv[16];
    int n = 0;
    cargv[n++] = "iperf3";
    cargv[n++] = "-c";
    cargv[n++] = "127.0.0.1";
    cargv[n++] = "-p";
    cargv[n++] = port_s;
    cargv[n++] = "-P";
    cargv[n++] = par;
    cargv[n++] = "-t";
    cargv[n++] = tsec;
    cargv[n++] = "-l";
    cargv[n++] = len;
    cargv[n++] = "-J";
    if (pt->op == MC_OP_READ)
      cargv[n++] = "-R";
    cargv[n] = NULL;
    uint64_t t0 = bench_now_ns();
    pid_t cli = spawn(cargv, p[1]);
    close(p[1]);
    char *js = slurp(p[0]);
    close(p[0]);
    struct rusage cru = {0}, sru = {0};
    int cst = 0, sst = 0;
    wait4(cli, &cst, 0, &cru);
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    /* The one-off server exits after its test; if the client never got to
     * it, it would not. */
    pid_t got = 0;
    for (int i = 0; i < 40 && (got = wait4(srv, &sst, WNOHANG, &sru)) == 0; i++)
      sleep_ms(50);
    if (got != srv) {
      kill(srv, SIGKILL);
      wait4(srv, &sst, 0, &sru);
    }
    double bps = 0, bytes = 0, secs = 0;
    int ok = js && WIFEXITED(cst) && WEXITSTATUS(cst) == 0 &&
             !json_num(js, "\"sum_received\"", "\"bits_per_second\"", &bps) &&
             !json_num(js, "\"sum_received\"", "\"bytes\"", &bytes) &&
             !json_num(js, "\"sum_received\"", "\"seconds\"", &secs) && secs > 0;
    if (!ok) {
      const char *e = js ? strstr(js, "\"error\"") : NULL;
      snprintf(err, errlen, "iperf3 client failed%s%.200s", e ? ": " : "", e ? e : "");
      int retry = e && strstr(e, "connect");
      free(js);
      if (retry)
        continue; /* the port was taken after all: another one */
      return -1;
    }
    free(js);
    memset(r, 0, sizeof *r);
    r->kind = "baseline";
    snprintf(r->path, sizeof r->path, "iperf3");
    r->op = pt->op;
    r->block = pt->block;
    r->batch = pt->batch;
    r->threads = pt->threads;
    r->wall_s = secs;
    r->bytes = (uint64_t)bytes;
    r->requests = (uint64_t)(bytes / (double)l);
    /* CPU over the whole of each process's life (start-up and the JSON
     * are small next to seconds of streaming). */
    r->cpu_pct = 100.0 * ru_s(&cru) / (wall > secs ? wall : secs);
    r->target_cpu_pct = 100.0 * ru_s(&sru) / (wall > secs ? wall : secs);
    r->p50_us = r->p99_us = r->max_us = -1; /* a stream has no batch latency */
    r->verified = 0;
    return 0;
  }
  return -1;
}
