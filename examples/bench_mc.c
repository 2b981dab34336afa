/* bench_mc.c - the mooncake path: batches through the engine API. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pattern.h"
#include "bench_run.h"

/* With depth D, a thread keeps D batches in flight, each on its own slot
 * (batch x block bytes at its own offset, both sides): a step waits for
 * the oldest and submits it again, as a serving engine that overlaps
 * layers keeps transfers going while it waits for the earlier ones. */
typedef struct mc_worker {
  mc_request *reqs;     /* depth x batch, slot by slot */
  mc_batch **inflight;  /* per slot, NULL when not submitted */
  uint64_t *t0;         /* per slot, its submit time */
  uint64_t region;      /* offset of this thread's region, both sides */
  uint32_t next;        /* the oldest slot in flight */
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
  uint32_t depth = pt->depth ? pt->depth : 1;
  mc_worker *s = calloc(1, sizeof *s);
  if (s) {
    s->reqs = calloc((size_t)depth * pt->batch, sizeof *s->reqs);
    s->inflight = calloc(depth, sizeof *s->inflight);
    s->t0 = calloc(depth, sizeof *s->t0);
  }
  if (!s || !s->reqs || !s->inflight || !s->t0) {
    if (s) {
      free(s->reqs);
      free(s->inflight);
      free(s->t0);
    }
    free(s);
    snprintf(w->err, sizeof w->err, "out of memory");
    return -1;
  }
  s->region = (uint64_t)w->index * depth * pt->batch * pt->block;
  for (uint32_t j = 0; j < depth * pt->batch; j++) {
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
static void describe_failure(bench_worker *w, mc_batch *b, const mc_request *reqs,
                             int rc, const char *what) {
  for (uint32_t j = 0; j < w->pt->batch; j++) {
    mc_transfer_status st;
    if (mc_batch_status(b, j, &st) != 0 || st.state == MC_XFER_COMPLETED)
      continue;
    snprintf(w->err, sizeof w->err,
             "%s: request %u (%s %" PRIu64 " bytes at remote 0x%" PRIx64
             ") %s: %s (transport '%s', vendor error %d)",
             what, j, w->pt->op == MC_OP_WRITE ? "write" : "read",
             reqs[j].len, reqs[j].remote, state_name(st.state),
             mc_strerror(st.error ? st.error : rc), st.transport,
             st.vendor_error);
    return;
  }
  snprintf(w->err, sizeof w->err, "%s: %s", what, mc_strerror(rc));
}

/* Creates and submits slot k's batch. */
static int slot_submit(bench_worker *w, uint32_t k) {
  const bench_mc_env *env = w->env;
  const bench_point *pt = w->pt;
  mc_worker *s = w->state;
  uint64_t bytes = pt->batch * pt->block;
  if (pt->verify && pt->op == MC_OP_READ)
    memset(env->local + s->region + k * bytes, 0, bytes);
  mc_batch *b = NULL;
  int rc = mc_batch_create(env->engine, pt->batch, &b);
  if (rc) {
    snprintf(w->err, sizeof w->err, "mc_batch_create(%u): %s", pt->batch,
             mc_strerror(rc));
    return -1;
  }
  s->t0[k] = bench_now_ns();
  rc = mc_batch_submit(b, s->reqs + (size_t)k * pt->batch, pt->batch);
  if (rc) {
    describe_failure(w, b, s->reqs + (size_t)k * pt->batch, rc, "transfer failed");
    mc_batch_destroy(b);
    return -1;
  }
  s->inflight[k] = b;
  return 0;
}

/* Waits for slot k's batch, checks it and destroys it. */
static int slot_finish(bench_worker *w, uint32_t k, uint64_t *lat_ns) {
  const bench_mc_env *env = w->env;
  const bench_point *pt = w->pt;
  mc_worker *s = w->state;
  uint64_t bytes = pt->batch * pt->block;
  const mc_request *reqs = s->reqs + (size_t)k * pt->batch;
  mc_batch *b = s->inflight[k];
  s->inflight[k] = NULL;
  int rc = mc_batch_wait(b, env->timeout_ms);
  *lat_ns = bench_now_ns() - s->t0[k];
  if (rc) {
    describe_failure(w, b, reqs, rc, rc == MC_ETIMEDOUT ? "batch wait timed out"
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
  if (pt->verify && pt->op == MC_OP_READ) {
    uint64_t region = s->region + k * bytes;
    uint64_t bad = bench_check(env->local + region, region, bytes, BENCH_SEED_TARGET);
    if (bad != bytes) {
      snprintf(w->err, sizeof w->err,
               "read data wrong at remote offset %" PRIu64 " (block %" PRIu64 ")",
               region + bad, bad / pt->block);
      return -1;
    }
  }
  return 0;
}

/* One round: the oldest batch completes (latency: its submit .. its
 * completion) and its slot is submitted again; with depth 1 that is
 * submit then wait. */
static int mc_step(bench_worker *w, uint64_t *lat_ns) {
  mc_worker *s = w->state;
  uint32_t depth = w->pt->depth ? w->pt->depth : 1;
  for (uint32_t k = 0; k < depth; k++) /* the first round fills every slot */
    if (!s->inflight[k] && slot_submit(w, k))
      return -1;
  uint32_t k = s->next;
  s->next = (k + 1) % depth;
  if (slot_finish(w, k, lat_ns))
    return -1;
  /* Refilled by the next round, before it waits: with depth 1 this keeps
   * the plain submit-then-wait loop and its latency. */
  return 0;
}

static void mc_teardown(bench_worker *w) {
  mc_worker *s = w->state;
  uint32_t depth = w->pt->depth ? w->pt->depth : 1;
  /* Batches still in flight when the time was up: not counted, but waited
   * for before their requests and buffers go. */
  for (uint32_t k = 0; k < depth; k++)
    if (s->inflight[k]) {
      mc_batch_wait(s->inflight[k], ((const bench_mc_env *)w->env)->timeout_ms);
      mc_batch_destroy(s->inflight[k]);
    }
  free(s->reqs);
  free(s->inflight);
  free(s->t0);
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
  uint32_t depth = pt->depth ? pt->depth : 1;
  for (uint32_t t = 0; t < pt->threads * depth; t++) { /* every slot of every thread */
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
