/* bench_base.c - the baselines mooncake is compared with. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_ctl.h"
#include "bench_mem.h"
#include "bench_net.h"
#include "bench_pattern.h"
#include "bench_run.h"

/* ---- TCP socket stream between the same two processes ---- */

typedef struct sock_env {
  const char *ctl_addr;
  uint8_t *local;
} sock_env;

typedef struct sock_worker {
  int fd;
  uint64_t region;
} sock_worker;

static int sock_setup(bench_worker *w) {
  const sock_env *env = w->env;
  sock_worker *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(w->err, sizeof w->err, "out of memory");
    return -1;
  }
  s->region = (uint64_t)w->index * w->pt->batch * w->pt->block;
  s->fd = bench_ctl_stream(env->ctl_addr, w->pt->op, w->pt->block, w->pt->batch,
                           s->region, w->err, sizeof w->err);
  if (s->fd < 0) {
    free(s);
    return -1;
  }
  w->state = s;
  return 0;
}

static int sock_step(bench_worker *w, uint64_t *lat_ns) {
  const sock_env *env = w->env;
  const bench_point *pt = w->pt;
  sock_worker *s = w->state;
  uint8_t *base = env->local + s->region;
  char ack = 'R';
  int verify = pt->verify && pt->op == MC_OP_READ;
  if (verify)
    memset(base, 0, pt->batch * pt->block);
  uint64_t t0 = bench_now_ns();
  int rc = 0;
  if (pt->op == MC_OP_WRITE) {
    for (uint32_t j = 0; j < pt->batch && rc == 0; j++)
      rc = bench_send_all(s->fd, base + j * pt->block, pt->block);
    if (rc == 0)
      rc = bench_recv_all(s->fd, &ack, 1);
  } else {
    rc = bench_send_all(s->fd, &ack, 1);
    for (uint32_t j = 0; j < pt->batch && rc == 0; j++)
      rc = bench_recv_all(s->fd, base + j * pt->block, pt->block);
  }
  *lat_ns = bench_now_ns() - t0;
  if (rc) {
    snprintf(w->err, sizeof w->err, "baseline socket: %s",
             errno ? strerror(errno) : "target closed the connection");
    return -1;
  }
  if (verify) {
    uint64_t n = pt->batch * pt->block;
    uint64_t bad = bench_check(base, s->region, n, BENCH_SEED_TARGET);
    if (bad != n) {
      snprintf(w->err, sizeof w->err,
               "baseline socket: data wrong at offset %" PRIu64, s->region + bad);
      return -1;
    }
  }
  return 0;
}

static void sock_teardown(bench_worker *w) {
  sock_worker *s = w->state;
  close(s->fd);
  free(s);
  w->state = NULL;
}

int bench_run_socket(const char *ctl_addr, uint8_t *local,
                     const bench_point *pt, bench_result *r, char *err,
                     size_t errlen) {
  static const bench_team_ops ops = {sock_setup, sock_step, sock_teardown};
  sock_env env = {ctl_addr, local};
  snprintf(r->path, sizeof r->path, "socket");
  int rc = bench_team_run(pt, &ops, &env, r, err, errlen);
  r->verified = rc == 0 && pt->verify && pt->op == MC_OP_READ;
  return rc;
}

/* ---- memcpy between two buffers of this process ---- */

typedef struct copy_env {
  uint8_t *local, *other;
} copy_env;

static int copy_step(bench_worker *w, uint64_t *lat_ns) {
  const copy_env *env = w->env;
  const bench_point *pt = w->pt;
  /* read: "remote" (other) -> local, as a read transfer would move it */
  uint8_t *dst = pt->op == MC_OP_READ ? env->local : env->other;
  const uint8_t *src = pt->op == MC_OP_READ ? env->other : env->local;
  uint64_t t0 = bench_now_ns();
  for (uint32_t j = 0; j < pt->batch; j++)
    memcpy(dst + j * pt->block, src + j * pt->block, pt->block);
  *lat_ns = bench_now_ns() - t0;
  return 0;
}

int bench_run_memcpy(uint8_t *local, const bench_point *pt, int mem_kind,
                     bench_result *r, char *err, size_t errlen) {
  static const bench_team_ops ops = {NULL, copy_step, NULL};
  bench_point one = *pt;
  one.threads = 1;
  uint64_t n = pt->batch * pt->block;
  char why[256] = "";
  copy_env env = {local, bench_mem_alloc(n, mem_kind, why, sizeof why)};
  if (!env.other) {
    snprintf(err, errlen, "memcpy baseline buffer: %s", why);
    return -1;
  }
  bench_fill(env.other, 0, n, BENCH_SEED_TARGET); /* touch every page first */
  snprintf(r->path, sizeof r->path, "memcpy");
  int rc = bench_team_run(&one, &ops, &env, r, err, errlen);
  r->target_cpu_pct = -1;
  r->verified = 0;
  if (rc == 0 && pt->op == MC_OP_READ) {
    uint64_t bad = bench_check(local, 0, n, BENCH_SEED_TARGET);
    if (bad != n) {
      snprintf(err, errlen, "memcpy baseline: data wrong at offset %" PRIu64, bad);
      rc = -1;
    } else {
      r->verified = pt->verify;
    }
  }
  bench_mem_free(env.other, n, mem_kind);
  return rc;
}
