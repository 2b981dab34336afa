/* mc-transfer-bench - measures mooncake transfers between two processes.
 *
 *   target:    registers a buffer, prints "SEGMENT <name>", "CONTROL
 *              <host:port>", "BUFFER <addr> <len>" and "READY" on stdout and
 *              serves until SIGINT/SIGTERM or until its stdin (a pipe or a
 *              terminal) closes.
 *   initiator: opens the target's segment and runs --threads workers, each
 *              looping over batches of --batch-size requests of --block-size
 *              bytes at distinct offsets, for --duration seconds.
 *   loopback:  starts a target child (bench_child.c) and is its initiator.
 * With --baseline each point is also run over a plain path between the same
 * processes (bench_base.c) and the throughput ratio is printed.
 * See README.md ("Benchmark") for what each column measures. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_child.h"
#include "bench_ctl.h"
#include "bench_fio.h"
#include "bench_iperf.h"
#include "bench_mem.h"
#include "bench_opts.h"
#include "bench_pattern.h"
#include "bench_run.h"
#include "bench_stats.h"
#include "mooncake/engine.h"

#define PROG "mc-transfer-bench"
#define TARGET_DEFAULT_SIZE (256ull << 20)
#define BATCH_TIMEOUT_MS 60000

static void fail(const char *what, const char *detail) {
  fprintf(stderr, PROG ": %s%s%s\n", what, detail && *detail ? ": " : "",
          detail ? detail : "");
}

static int make_engine(const bench_opts *o, const char *listen,
                       mc_engine **out) {
  mc_engine_opts eo = {.struct_size = sizeof eo,
                       .config_path = o->config,
                       .listen = listen,
                       .metadata = o->metadata,
                       .transports = o->transport};
  char msg[512] = "";
  int rc = mc_engine_create_ex(&eo, out, msg, sizeof msg);
  if (rc) {
    /* The engine logs the reason it put in msg (an error line above):
     * repeat only what the bench was doing. */
    fprintf(stderr, PROG ": cannot create the engine (transport '%s'): %s%s\n",
            o->transport, mc_strerror(rc), msg[0] ? " (reason above)" : "");
    return -1;
  }
  return 0;
}

/* A private buffer (bench_mem.h) registered with the engine; NULL after
 * printing why. */
static uint8_t *alloc_registered(mc_engine *e, uint64_t len, int mem_kind,
                                 const char *what) {
  char why[256] = "";
  uint8_t *p = bench_mem_alloc(len, mem_kind, why, sizeof why);
  if (!p) {
    fprintf(stderr, PROG ": the %s buffer (%" PRIu64 " bytes): %s\n", what,
            len, why);
    return NULL;
  }
  int rc = mc_register(e, p, len, NULL);
  if (rc) {
    fprintf(stderr, PROG ": mc_register of the %s buffer (%p, %" PRIu64
            " bytes): %s\n", what, (void *)p, len, mc_strerror(rc));
    bench_mem_free(p, len, mem_kind);
    return NULL;
  }
  return p;
}

static void free_registered(mc_engine *e, uint8_t *p, uint64_t len,
                            int mem_kind) {
  if (!p)
    return;
  int rc = mc_unregister(e, p);
  if (rc)
    fprintf(stderr, PROG ": mc_unregister(%p): %s\n", (void *)p, mc_strerror(rc));
  bench_mem_free(p, len, mem_kind);
}

/* ---- target ---- */

/* The control listener binds the handshake listener's host by default. */
static void default_control(const bench_opts *o, char *buf, size_t len) {
  const char *l = o->listen ? o->listen : "127.0.0.1:0";
  const char *colon = strrchr(l, ':');
  int hostlen = colon ? (int)(colon - l) : (int)strlen(l);
  snprintf(buf, len, "%.*s:0", hostlen, l);
}

/* --file: the file holds at least `total` bytes, the ones it lacks
 * written with the target pattern (a hole would read faster than data). */
static int file_prepare(const char *path, uint64_t total) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    fprintf(stderr, PROG ": --file %s: %s\n", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  uint64_t have = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : total;
  uint8_t *chunk = have < total ? malloc(1 << 20) : NULL;
  int rc = 0;
  for (uint64_t o = have & ~(uint64_t)((1 << 20) - 1); o < total && chunk && !rc; o += 1 << 20) {
    uint64_t n = total - o < (1u << 20) ? total - o : 1u << 20;
    bench_fill(chunk, o, n, BENCH_SEED_TARGET);
    rc = pwrite(fd, chunk, n, (off_t)o) == (ssize_t)n ? 0 : -1;
  }
  if (rc || (have < total && !chunk))
    fprintf(stderr, PROG ": --file %s: cannot fill it to %" PRIu64 " bytes: %s\n", path,
            total, strerror(errno));
  else if (have < total)
    fsync(fd);
  free(chunk);
  close(fd);
  return rc || (have < total && !chunk) ? -1 : 0;
}

/* Stdin counts as a stop signal only if something can close it: a pipe, a
 * socket or a terminal (not /dev/null, which a shell gives to `cmd &`). */
static int stdin_watchable(void) {
  struct stat st;
  if (fstat(STDIN_FILENO, &st) != 0)
    return 0;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO);
}

static void serve_until_stopped(int sfd) {
  int watch = stdin_watchable();
  for (;;) {
    struct pollfd p[2] = {{sfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = poll(p, watch ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror(PROG ": poll");
      return;
    }
    if (p[0].revents)
      return; /* SIGINT or SIGTERM */
    if (watch && p[1].revents) {
      char buf[256];
      ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
        return; /* stdin closed: the parent wants us gone */
    }
  }
}

static int run_target(const bench_opts *o) {
  /* Block the stop signals before any thread exists, so all inherit the
   * mask and they arrive only through the signalfd. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) {
    fail("signalfd", strerror(errno));
    return 1;
  }
  int rc = 1;
  mc_engine *e = NULL;
  uint8_t *buf = NULL;
  bench_ctl *ctl = NULL;
  uint64_t total = o->total_size ? o->total_size : TARGET_DEFAULT_SIZE;
  char err[512] = "", caddr[160];
  if (make_engine(o, o->listen, &e))
    goto out;
  if (o->shared_pool) {
    void *p = NULL;
    int r = mc_alloc_shared(e, total, NULL, &p);
    if (r) {
      fprintf(stderr, PROG ": mc_alloc_shared(%" PRIu64 " bytes) with transport "
              "'%s': %s\n", total, o->transport, mc_strerror(r));
      goto out;
    }
    buf = p;
  } else if (o->file) {
    if (file_prepare(o->file, total))
      goto out;
    void *p = NULL;
    int r = mc_register_file(e, o->file, 0, total, 0, &p);
    if (r) {
      fprintf(stderr, PROG ": %s\n", mc_last_error());
      goto out;
    }
    buf = p; /* address space standing for the file: never touched here */
  } else if (!(buf = alloc_registered(e, total, o->mem_kind, "target"))) {
    goto out;
  }
  if (!o->file)
    bench_fill(buf, 0, total, BENCH_SEED_TARGET);
  if (o->control)
    snprintf(caddr, sizeof caddr, "%s", o->control);
  else
    default_control(o, caddr, sizeof caddr);
  if (bench_ctl_start(caddr, buf, total, &ctl, err, sizeof err)) {
    fail("control listener", err);
    goto out;
  }
  printf("SEGMENT %s\nCONTROL %s\nBUFFER 0x%" PRIxPTR " %" PRIu64 "\nREADY\n",
         mc_engine_segment_name(e), bench_ctl_addr(ctl), (uintptr_t)buf, total);
  fflush(stdout);
  if (!o->quiet)
    fprintf(stderr, PROG ": target: segment %s, control %s, %" PRIu64
            "-byte buffer; stop with SIGINT/SIGTERM%s\n",
            mc_engine_segment_name(e), bench_ctl_addr(ctl), total,
            stdin_watchable() ? " or by closing stdin" : "");
  serve_until_stopped(sfd);
  rc = 0;
out:
  bench_ctl_stop(ctl);
  if (buf && o->shared_pool) {
    int r = mc_free_shared(e, buf);
    if (r)
      fprintf(stderr, PROG ": mc_free_shared: %s\n", mc_strerror(r));
  } else if (buf && o->file) {
    int r = mc_unregister(e, buf);
    if (r)
      fprintf(stderr, PROG ": mc_unregister(%s): %s\n", o->file, mc_strerror(r));
  } else {
    free_registered(e, buf, total, o->mem_kind);
  }
  mc_engine_destroy(e);
  close(sfd);
  return rc;
}

/* ---- initiator ---- */

#define MAX_POINTS (BENCH_LIST_MAX * BENCH_LIST_MAX)

/* What one run of a point measured: ours, then each baseline asked for
 * (iperf3, fio, socket or memcpy, in that order). */
typedef struct point_run {
  bench_result mc;
  bench_result base[3];
  size_t nbase;
} point_run;

typedef struct init_ctx {
  const bench_opts *o;
  const char *control;
  bench_mc_env env;
  /* The current op's points and every run of each, for the medians and
   * the summary. */
  bench_point pts[MAX_POINTS];
  size_t npts;
  point_run runs[MAX_POINTS][BENCH_REPEAT_MAX];
} init_ctx;

/* Target CPU% over a measured point, from its self-reported CPU time. */
static int target_cpu(const init_ctx *c, const bench_target_info *before,
                      bench_result *r) {
  bench_target_info after;
  char err[512] = "";
  if (bench_ctl_info(c->control, &after, err, sizeof err)) {
    fail("target control", err);
    return -1;
  }
  r->target_cpu_pct =
      r->wall_s > 0 ? (double)(after.cpu_ns - before->cpu_ns) / 1e7 / r->wall_s
                    : -1;
  return 0;
}

static void note(const bench_opts *o, const char *kind, const bench_point *pt) {
  if (o->quiet)
    return;
  char bs[32];
  bench_format_size(pt->block, bs, sizeof bs);
  fprintf(stderr, PROG ": %s %s %s, %s x %u per batch, %u thread(s), %.1f s\n",
          kind, o->transport, pt->op == MC_OP_WRITE ? "write" : "read", bs,
          pt->batch, pt->threads, pt->duration);
}

static int run_point(init_ctx *c, const bench_point *pt, point_run *out) {
  const bench_opts *o = c->o;
  char err[1024] = "";
  bench_target_info info;
  bench_result mc = {.kind = "mooncake"}, base = {.kind = "baseline"};
  snprintf(mc.path, sizeof mc.path, "%s", o->transport);
  out->nbase = 0;

  note(o, "mooncake", pt);
  if (bench_ctl_info(c->control, &info, err, sizeof err)) {
    fail("target control", err);
    return -1;
  }
  if (bench_run_mooncake(&c->env, pt, &mc, err, sizeof err)) {
    fail("mooncake run failed", err);
    return -1;
  }
  if (target_cpu(c, &info, &mc))
    return -1;
  if (pt->verify && pt->op == MC_OP_WRITE &&
      bench_verify_writes(&c->env, pt, err, sizeof err)) {
    fail("mooncake run failed", err);
    return -1;
  }
  mc.verified = pt->verify;
  bench_print_result(stdout, &mc, o->json);
  out->mc = mc;
  if (o->iperf3) {
    bench_result ip;
    note(o, "baseline iperf3 for", pt);
    if (bench_run_iperf3(pt, &ip, err, sizeof err)) {
      fail("iperf3 baseline failed", err);
      return -1;
    }
    bench_print_result(stdout, &ip, o->json);
    bench_print_ratio(stdout, &mc, &ip, o->json);
    out->base[out->nbase++] = ip;
  }
  if (o->fio) {
    bench_result fr;
    note(o, "baseline fio for", pt);
    if (bench_run_fio(o->file, pt, &fr, err, sizeof err)) {
      fail("fio baseline failed", err);
      return -1;
    }
    bench_print_result(stdout, &fr, o->json);
    bench_print_ratio(stdout, &mc, &fr, o->json);
    out->base[out->nbase++] = fr;
  }
  if (!o->baseline)
    return 0;

  if (bench_baseline_kind(o) == BENCH_BASE_MEMCPY) {
    note(o, "baseline memcpy for", pt);
    if (bench_run_memcpy(c->env.local, pt, o->mem_kind, &base, err,
                         sizeof err)) {
      fail("memcpy baseline failed", err);
      return -1;
    }
  } else {
    note(o, "baseline socket for", pt);
    if (bench_ctl_info(c->control, &info, err, sizeof err)) {
      fail("target control", err);
      return -1;
    }
    if (bench_run_socket(c->control, c->env.local, pt, &base, err, sizeof err)) {
      fail("socket baseline failed", err);
      return -1;
    }
    if (target_cpu(c, &info, &base))
      return -1;
  }
  bench_print_result(stdout, &base, o->json);
  bench_print_ratio(stdout, &mc, &base, o->json);
  out->base[out->nbase++] = base;
  return 0;
}

/* With --repeat: per point and baseline, the median of the paired ratios. */
static void print_medians(const init_ctx *c) {
  const bench_opts *o = c->o;
  uint32_t n = o->repeat;
  if (n < 2)
    return;
  for (size_t p = 0; p < c->npts; p++) {
    bench_result mine[BENCH_REPEAT_MAX], base[BENCH_REPEAT_MAX];
    for (uint32_t i = 0; i < n; i++)
      mine[i] = c->runs[p][i].mc;
    for (size_t k = 0; k < c->runs[p][0].nbase; k++) {
      for (uint32_t i = 0; i < n; i++)
        base[i] = c->runs[p][i].base[k];
      bench_print_median(stdout, mine, base, n, o->json);
    }
  }
}

/* Per thread count: our 64K throughput over our 1M throughput (the issue's
 * per-request cost target), when the sweep had both.  With --repeat, the
 * ratio is taken within each round (the two points run minutes apart at
 * most, not a whole sweep apart) and the median of the rounds printed. */
static void print_summary(const init_ctx *c) {
  uint32_t n = c->o->repeat;
  for (size_t a = 0; a < c->npts; a++) {
    const bench_point *pa = &c->pts[a];
    if (pa->block != (64u << 10))
      continue;
    for (size_t b = 0; b < c->npts; b++) {
      const bench_point *pb = &c->pts[b];
      if (pb->block != (1u << 20) || pb->threads != pa->threads)
        continue;
      double r[BENCH_REPEAT_MAX];
      uint32_t nr = 0;
      for (uint32_t i = 0; i < n; i++) {
        double g1 = bench_gbps(&c->runs[b][i].mc);
        if (g1 > 0)
          r[nr++] = bench_gbps(&c->runs[a][i].mc) / g1;
      }
      if (!nr)
        continue;
      double med = bench_median(r, nr);
      const char *op = pa->op == MC_OP_WRITE ? "write" : "read";
      if (c->o->json)
        printf("{\"kind\":\"summary\",\"transport\":\"%s\",\"op\":\"%s\","
               "\"threads\":%u,\"runs\":%u,\"gb_per_s_64k_over_1m\":%.4f,"
               "\"min\":%.4f,\"max\":%.4f}\n",
               c->o->transport, op, pa->threads, nr, med, r[0], r[nr - 1]);
      else if (nr > 1)
        printf("summary  %s %s, %u thread(s): 64K/1M GB/s = %.3f (median of %u rounds, "
               "%.3f..%.3f)\n", c->o->transport, op, pa->threads, med, nr, r[0],
               r[nr - 1]);
      else
        printf("summary  %s %s, %u thread(s): 64K/1M GB/s = %.3f\n", c->o->transport, op,
               pa->threads, med);
    }
  }
}

static int run_initiator(const bench_opts *o, const char *segment,
                         const char *control) {
  static init_ctx c; /* large (the summary's results): not on the stack */
  memset(&c, 0, sizeof c);
  c.o = o;
  c.control = control;
  if (o->iperf3 && !bench_iperf_available()) {
    fail("--iperf3", "iperf3 does not run here (Debian: apt-get install iperf3)");
    return 1;
  }
  if (o->fio && !bench_fio_available()) {
    fail("--fio", "fio does not run here (Debian: apt-get install fio)");
    return 1;
  }
  mc_engine *e = NULL;
  mc_segment *seg = NULL;
  uint8_t *local = NULL, *scratch = NULL;
  uint64_t need = bench_need_bytes(o);
  char err[512] = "";
  bench_target_info info;
  int rc = 1;

  if (bench_ctl_info(control, &info, err, sizeof err)) {
    fail("target control", err);
    return 1;
  }
  if (info.len < need) {
    fprintf(stderr, PROG ": the target buffer has %" PRIu64 " bytes, this run "
            "needs threads x depth x batch x block = %" PRIu64 "; start the target with "
            "--total-size %" PRIu64 " or more\n", info.len, need, need);
    return 1;
  }
  if (make_engine(o, o->mode == BENCH_INITIATOR ? o->listen : NULL, &e))
    return 1;
  if (!(local = alloc_registered(e, need, o->mem_kind, "local")))
    goto out;
  int any_write = 0;
  for (size_t i = 0; i < o->nops; i++)
    any_write |= o->ops[i] == MC_OP_WRITE;
  if (o->verify && any_write &&
      !(scratch = alloc_registered(e, bench_max_batch_bytes(o), o->mem_kind,
                                   "read-back")))
    goto out;
  int r = mc_segment_open(e, segment, &seg);
  if (r) {
    /* The engine logged what the peer did (lines above). */
    fprintf(stderr, PROG ": cannot open segment '%s': %s\n", segment, mc_strerror(r));
    goto out;
  }
  c.env = (bench_mc_env){.engine = e, .seg = seg, .local = local,
                         .remote_addr = info.addr, .scratch = scratch,
                         .timeout_ms = BATCH_TIMEOUT_MS};
  if (!o->json) {
    char mem[160];
    bench_mem_describe(o->mem_kind, mem, sizeof mem);
    printf("# buffers: %s\n", mem);
    if (o->depth > 1)
      printf("# depth: %u batches in flight per thread (mooncake rows; p50/p99: "
             "submit to completion of each)\n", o->depth);
    bench_print_header(stdout);
  }
  uint64_t seed = BENCH_SEED_WRITE;
  for (size_t oi = 0; oi < o->nops; oi++) {
    uint32_t op = o->ops[oi];
    if (op == MC_OP_WRITE)
      bench_fill(local, 0, need, seed);
    else
      memset(local, 0, need); /* fault the pages in before measuring */
    c.npts = 0;
    for (size_t b = 0; b < o->nblocks; b++)
      for (size_t t = 0; t < o->nthreads; t++)
        c.pts[c.npts++] = (bench_point){.op = op, .block = o->blocks[b],
                                        .batch = bench_point_batch(o, o->blocks[b]),
                                        .threads = o->threads[t], .depth = o->depth,
                                        .duration = o->duration, .verify = o->verify,
                                        .write_seed = seed};
    /* Rounds outermost: each round runs every point once, so the points
     * compared in the summary ran close together in time. */
    int first = 1;
    for (uint32_t i = 0; i < o->repeat; i++) {
      for (size_t p = 0; p < c.npts; p++) {
        bench_point *pt = &c.pts[p];
        /* A fresh pattern per run, so a stale copy cannot pass the check. */
        if (o->verify && op == MC_OP_WRITE && !first) {
          pt->write_seed = ++seed;
          bench_fill(local, 0, (uint64_t)pt->threads * pt->depth * pt->batch * pt->block,
                     pt->write_seed);
        }
        first = 0;
        if (run_point(&c, pt, &c.runs[p][i]))
          goto out;
      }
    }
    print_medians(&c);
    print_summary(&c);
    seed++;
  }
  rc = 0;
out:
  if (seg)
    mc_segment_close(seg);
  free_registered(e, scratch, bench_max_batch_bytes(o), o->mem_kind);
  free_registered(e, local, need, o->mem_kind);
  mc_engine_destroy(e);
  return rc;
}

/* ---- loopback ---- */

static int run_loopback(const bench_opts *o) {
  bench_child child;
  char err[512] = "";
  uint64_t total = o->total_size ? o->total_size : bench_need_bytes(o);
  if (bench_child_start(o, total, &child, err, sizeof err)) {
    fail("cannot start the target process", err);
    return 1;
  }
  int rc = run_initiator(o, child.segment, child.control);
  if (bench_child_stop(&child, err, sizeof err)) {
    fail("target process", err);
    rc = 1;
  }
  return rc;
}

int main(int argc, char **argv) {
  bench_opts o;
  char err[512] = "";
  int rc = bench_opts_parse(argc, argv, &o, err, sizeof err);
  if (rc == 1)
    return 0;
  if (rc < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return 2;
  }
  /* On a terminal, a line every few seconds shows a long point is alive;
   * logs and pipes (and --quiet, --json) get only the results. */
  if (!o.quiet && !o.json && o.progress > 0 && o.mode != BENCH_TARGET) {
    FILE *out = isatty(STDERR_FILENO) ? stderr : isatty(STDOUT_FILENO) ? stdout : NULL;
    if (out)
      bench_team_progress(out, (unsigned)(o.progress * 1000 + 0.5), PROG);
  }
  switch (o.mode) {
  case BENCH_TARGET:
    return run_target(&o);
  case BENCH_INITIATOR:
    return run_initiator(&o, o.segment, o.control);
  default:
    return run_loopback(&o);
  }
}
