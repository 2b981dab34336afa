/* bench_opts.h - command line of mc-transfer-bench. */
#ifndef MC_BENCH_OPTS_H
#define MC_BENCH_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_LIST_MAX 16

enum bench_mode { BENCH_TARGET, BENCH_INITIATOR, BENCH_LOOPBACK };

/* Which plain path the mooncake numbers are compared with. */
enum bench_baseline_kind {
  BENCH_BASE_AUTO = 0, /* memcpy for shm, socket otherwise */
  BENCH_BASE_SOCKET,   /* TCP stream between the same two processes */
  BENCH_BASE_MEMCPY,   /* single-threaded memcpy between two local buffers */
};

#define BENCH_REPEAT_MAX 15
#define BENCH_DEPTH_MAX 8

typedef struct bench_opts {
  int mode;              /* enum bench_mode */
  const char *transport; /* mc_engine_opts.transports; default "tcp" */
  const char *segment;   /* initiator: the target's segment name */
  const char *listen;    /* this engine's handshake listener */
  const char *control;   /* target: bind address; initiator: target's CONTROL */
  const char *config;    /* YAML file for mc_engine_opts.config_path */
  const char *metadata;  /* mc_engine_opts.metadata */
  uint32_t op;           /* MC_OP_READ or MC_OP_WRITE: the first of ops */
  uint32_t ops[2];       /* the ops to run, in order (--op read,write) */
  size_t nops;
  uint64_t blocks[BENCH_LIST_MAX]; /* block sizes to run, in order */
  size_t nblocks;
  uint32_t threads[BENCH_LIST_MAX]; /* thread counts to run, in order */
  size_t nthreads;
  uint32_t batch;
  uint64_t max_batch_bytes; /* caps batch x block per point; 0 = none */
  double duration;     /* seconds per measured point */
  uint32_t repeat;     /* runs per point, alternating with the baselines */
  uint32_t depth;      /* batches in flight per thread */
  double progress;     /* seconds between progress lines on a terminal; 0 none */
  uint64_t total_size; /* target buffer; 0 = derive (see bench_need_bytes) */
  int baseline_kind;   /* enum bench_baseline_kind */
  int json, baseline, verify, shared_pool, quiet;
  int iperf3; /* also run iperf3 with as many streams as threads, per point */
  const char *file; /* target: register this file (mc_register_file), not memory */
  int fio;          /* with file: also run fio (io_uring) on it, per point */
  int mem_kind; /* enum bench_mem_kind: how data buffers are allocated */
} bench_opts;

/* Parses argv into o (defaults first).  Returns 0 to run, 1 when --help was
 * printed, -1 with a message naming the option in err. */
int bench_opts_parse(int argc, char **argv, bench_opts *o, char *err,
                     size_t errlen);

void bench_usage(FILE *f, const char *prog);

/* "64K", "1M", "2G", "4096" -> bytes; -1 on bad text or overflow. */
int bench_parse_size(const char *text, uint64_t *out);

/* Formats bytes as "64K", "1M", "1536" (exact, largest suffix that fits). */
void bench_format_size(uint64_t bytes, char *buf, size_t len);

/* The batch of a point with this block: batch, capped so that batch x
 * block <= max_batch_bytes (at least 1). */
uint32_t bench_point_batch(const bench_opts *o, uint64_t block);

/* Bytes of one thread's batch at its largest (over the block sizes). */
uint64_t bench_max_batch_bytes(const bench_opts *o);

/* Bytes one run needs on each side: max threads x depth x the largest batch. */
uint64_t bench_need_bytes(const bench_opts *o);

/* The baseline actually used (resolves BENCH_BASE_AUTO). */
int bench_baseline_kind(const bench_opts *o);

#endif
