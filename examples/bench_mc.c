/* bench_mc.c - the mooncake path: batches through the engine API. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pattern.h"
#include "bench_run.h"

typedef struct mc_worker {
  mc_request *reqs;
  uint64_t region; /* offset of this thread's region, both sides */
} mc_worker;

static const char *state_name(uint32_t s) {
  static const char *const names[] = {"WAITING", "PENDING", "COMPLETED",
                                      "FAILED", "TIMEOUT", "CANCELED",
                                      "INVALID"};
  return s < sizeof names / sizeof names[0] ? names[s] : "UNKNOWN";
}

static int mc_setup(bench_worker *w) {
  const bench_mc_env *env = w->env;
  const bench_point *pt = w->pt;
  mc_worker *s = calloc(1, sizeof *s);
  if (s)
    s->reqs = calloc(pt->batch, sizeof *s->reqs);
  if (!s || !s->reqs) {
    free(s);
    snprintf(w->err, sizeof w->err, "out of memory");
    return -1;
  }
  s->region = (uint64_t)w->index * pt->batch * pt->block;
  for (uint32_t j = 0; j < pt->batch; j++) {
    uint64_t off = s->region + (uint64_t)j * pt->block;
    s->reqs[j] = (mc_request){.op = pt->op,
                              .local = env->local + off,
                              .segment = env->seg,
                              .remote = env->remote_addr + off,
                              .len = pt->block};
  }
  w->state = s;
  return 0;
}

/* Names the first request of a failed batch that did not complete. */
static void describe_failure(bench_worker *w, mc_batch *b, int rc,
                             const char *what) {
  const mc_worker *s = w->state;
  for (uint32_t j = 0; j < w->pt->batch; j++) {
    mc_transfer_status st;
    if (mc_batch_status(b, j, &st) != 0 || st.state == MC_XFER_COMPLETED)
      continue;
    snprintf(w->err, sizeof w->err,
             "%s: request %u (%s %" PRIu64 " bytes at remote 0x%" PRIx64
             ") %s: %s (transport '%s', vendor error %d)",
             what, j, w->pt->op == MC_OP_WRITE ? "write" : "read",
             s->reqs[j].len, s->reqs[j].remote, state_name(st.state),
             mc_strerror(st.error ? st.error : rc), st.transport,
             st.vendor_error);
    return;
  }
  snprintf(w->err, sizeof w->err, "%s: %s", what, mc_strerror(rc));
}

static int mc_step(bench_worker *w, uint64_t *lat_ns) {
  const bench_mc_env *env = w->env;
  const bench_point *pt = w->pt;
  mc_worker *s = w->state;
  uint64_t bytes = pt->batch * pt->block;
  int verify_read = pt->verify && pt->op == MC_OP_READ;
  if (verify_read)
    memset(env->local + s->region, 0, bytes);
  mc_batch *b = NULL;
  int rc = mc_batch_create(env->engine, pt->batch, &b);
  if (rc) {
    snprintf(w->err, sizeof w->err, "mc_batch_create(%u): %s", pt->batch,
             mc_strerror(rc));
    return -1;
  }
  uint64_t t0 = bench_now_ns();
  rc = mc_batch_submit(b, s->reqs, pt->batch);
  if (rc == 0)
    rc = mc_batch_wait(b, env->timeout_ms);
  *lat_ns = bench_now_ns() - t0;
  if (rc) {
    describe_failure(w, b, rc, rc == MC_ETIMEDOUT ? "batch wait timed out"
                                                  : "transfer failed");
    mc_batch_destroy(b);
    return -1;
  }
  if (pt->verify) {
    for (uint32_t j = 0; j < pt->batch; j++) {
      mc_transfer_status st;
      if (mc_batch_status(b, j, &st) == 0 && st.bytes != pt->block) {
        snprintf(w->err, sizeof w->err,
                 "request %u COMPLETED with %" PRIu64 " of %" PRIu64 " bytes", j,
                 st.bytes, pt->block);
        mc_batch_destroy(b);
        return -1;
      }
    }
  }
  mc_batch_destroy(b);
  if (verify_read) {
    uint64_t bad = bench_check(env->local + s->region, s->region, bytes,
                               BENCH_SEED_TARGET);
    if (bad != bytes) {
      snprintf(w->err, sizeof w->err,
               "read data wrong at remote offset %" PRIu64 " (block %" PRIu64 ")",
               s->region + bad, bad / pt->block);
      return -1;
    }
  }
  return 0;
}

static void mc_teardown(bench_worker *w) {
  mc_worker *s = w->state;
  free(s->reqs);
  free(s);
  w->state = NULL;
}

int bench_run_mooncake(const bench_mc_env *env, const bench_point *pt,
                       bench_result *r, char *err, size_t errlen) {
  static const bench_team_ops ops = {mc_setup, mc_step, mc_teardown};
  return bench_team_run(pt, &ops, (void *)env, r, err, errlen);
}

int bench_verify_writes(const bench_mc_env *env, const bench_point *pt,
                        char *err, size_t errlen) {
  uint64_t bytes = pt->batch * pt->block;
  for (uint32_t t = 0; t < pt->threads; t++) {
    uint64_t region = (uint64_t)t * bytes;
    memset(env->scratch, 0, bytes);
    mc_request rq = {.op = MC_OP_READ,
                     .local = env->scratch,
                     .segment = env->seg,
                     .remote = env->remote_addr + region,
                     .len = bytes};
    int rc = mc_transfer_sync(env->engine, &rq, 1, env->timeout_ms);
    if (rc) {
      snprintf(err, errlen, "verify: reading back %" PRIu64 " bytes at 0x%" PRIx64
               ": %s", bytes, rq.remote, mc_strerror(rc));
      return -1;
    }
    uint64_t bad = bench_check(env->scratch, region, bytes, pt->write_seed);
    if (bad != bytes) {
      snprintf(err, errlen, "verify: written data wrong at remote offset %" PRIu64,
               region + bad);
      return -1;
    }
  }
  return 0;
}
