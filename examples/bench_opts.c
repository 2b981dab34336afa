/* bench_opts.c - command line parsing for mc-transfer-bench. */
#include "bench_opts.h"
#include "bench_mem.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/transport.h"

#define BENCH_MAX_BLOCK (1ull << 30)
#define BENCH_MAX_THREADS 256u
#define BENCH_MAX_BATCH 65536u

void bench_usage(FILE *f, const char *prog) {
  fprintf(f,
    "usage: %s [options]\n"
    "Measures mooncake transfers between two processes (and a plain baseline).\n"
    "\n"
    "  --mode target|initiator|loopback  role (default loopback: this process is the\n"
    "                           initiator and a child process the target)\n"
    "  --transport NAME         transport to load and use (default tcp)\n"
    "  --segment NAME           initiator: the target's segment (its SEGMENT line)\n"
    "  --control HOST:PORT      initiator: the target's CONTROL line; target: where the\n"
    "                           bench control listener binds (default <listen host>:0)\n"
    "  --listen HOST:PORT       this engine's handshake listener (target in loopback)\n"
    "  --op read|write|both     read: target -> initiator; write: initiator -> target;\n"
    "                           both (or read,write): every point for each, in turn\n"
    "  --block-size SIZE        bytes per request, K/M/G suffixes (default 64K)\n"
    "  --batch-size N           requests per batch (default 16)\n"
    "  --max-batch-bytes SIZE   cap batch x block per point (the batch shrinks for\n"
    "                           large blocks; default: no cap)\n"
    "  --threads N              initiator threads, one batch each (default 1)\n"
    "  --duration SEC           measured time per point (default 5)\n"
    "  --depth D                batches each thread keeps in flight (default 1:\n"
    "                           submit, wait, repeat); D > 1 submits the next\n"
    "                           batch while earlier ones complete, as a serving\n"
    "                           engine overlapping layers does (mooncake path)\n"
    "  --repeat N               run each point N times, alternating with its\n"
    "                           baselines, and print the median of the paired\n"
    "                           ratios (a shared machine drifts; default 1)\n"
    "  --total-size SIZE        target buffer (default: threads x batch x block in\n"
    "                           loopback, 256M for a standalone target)\n"
    "  --sweep                  run every block size x thread count below\n"
    "  --block-sizes LIST       sweep block sizes (default 64K,1M,16M)\n"
    "  --thread-sweep LIST      sweep thread counts (default 1,2,4)\n"
    "  --baseline               also measure a plain path between the same processes:\n"
    "                           a TCP socket stream (or memcpy for --transport shm)\n"
    "  --baseline-kind socket|memcpy  override that choice\n"
    "  --iperf3                 also run iperf3 (client and server on 127.0.0.1,\n"
    "                           -P threads, -l min(block, 1M), -R for read) for\n"
    "                           each point, and print the ratios to it; with\n"
    "                           --sweep, a summary of 64K vs 1M per thread count\n"
    "  --file PATH              the target's buffer is this file (mc_register_file;\n"
    "                           created or extended to --total-size with the\n"
    "                           pattern), for file transports (nvmeof)\n"
    "  --fio                    with --file: also run fio (ioengine=io_uring,\n"
    "                           direct=1, one job per thread, iodepth = batch) on\n"
    "                           the same file per point, and print the ratios\n"
    "  --verify                 check the bytes that arrive\n"
    "  --shared-pool            target buffer from mc_alloc_shared (shm transport)\n"
    "  --buffers pool|malloc|huge  how every data buffer (target, initiator,\n"
    "                           baseline) is allocated: pool = 2 MiB-aligned mmap\n"
    "                           as a KV-cache pool gets (default); malloc =\n"
    "                           posix_memalign(4096); huge = pool plus\n"
    "                           MADV_HUGEPAGE before first touch\n"
    "  --hugepages              same as --buffers huge\n"
    "  --config FILE            engine YAML config (else $MC_CONFIG)\n"
    "  --metadata URL           p2p (default), etcd://h:p, http://h:p/path\n"
    "  --json                   one JSON object per result line\n"
    "  --quiet                  no progress notes or lines on stderr\n"
    "  --progress SEC           on a terminal (and without --quiet or --json), a\n"
    "                           progress line every SEC seconds (default 2; 0 = none)\n"
    "  --help\n",
    prog);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int bench_parse_size(const char *text, uint64_t *out) {
  if (!text || !*text || *text == '-' || *text == '+')
    return -1;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text)
    return -1;
  unsigned shift = 0;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  default: return -1;
  }
  if (*end == 'i' && shift)
    end++;
  if ((*end == 'b' || *end == 'B') && shift)
    end++;
  if (*end != '\0')
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

void bench_format_size(uint64_t bytes, char *buf, size_t len) {
  static const char suffix[] = {'G', 'M', 'K'};
  static const unsigned shifts[] = {30, 20, 10};
  for (size_t i = 0; i < 3; i++) {
    uint64_t unit = 1ull << shifts[i];
    if (bytes >= unit && bytes % unit == 0) {
      snprintf(buf, len, "%" PRIu64 "%c", bytes / unit, suffix[i]);
      return;
    }
  }
  snprintf(buf, len, "%" PRIu64, bytes);
}

static int parse_u32(const char *text, uint32_t lo, uint32_t hi, uint32_t *out) {
  if (!text || *text < '0' || *text > '9')
    return -1;
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

/* Comma-separated list of sizes (blocks) or counts (threads). */
static int parse_list(const char *opt, const char *text, int sizes,
                      uint64_t *blocks, uint32_t *counts, size_t *n,
                      char *err, size_t errlen) {
  char tmp[512];
  if (strlen(text) >= sizeof tmp) {
    set_err(err, errlen, "%s: list too long", opt);
    return -1;
  }
  strcpy(tmp, text);
  size_t k = 0;
  char *save = NULL;
  for (char *tok = strtok_r(tmp, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    if (k == BENCH_LIST_MAX) {
      set_err(err, errlen, "%s: more than %d entries", opt, BENCH_LIST_MAX);
      return -1;
    }
    if (sizes) {
      if (bench_parse_size(tok, &blocks[k]) || blocks[k] == 0 ||
          blocks[k] > BENCH_MAX_BLOCK) {
        set_err(err, errlen, "%s: bad size '%s' (1 .. 1G, K/M/G suffixes)", opt,
                tok);
        return -1;
      }
    } else if (parse_u32(tok, 1, BENCH_MAX_THREADS, &counts[k])) {
      set_err(err, errlen, "%s: bad thread count '%s' (1 .. %u)", opt, tok,
              BENCH_MAX_THREADS);
      return -1;
    }
    k++;
  }
  if (k == 0) {
    set_err(err, errlen, "%s: empty list", opt);
    return -1;
  }
  *n = k;
  return 0;
}

enum {
  OPT_MODE = 256, OPT_TRANSPORT, OPT_SEGMENT, OPT_LISTEN, OPT_CONTROL, OPT_OP,
  OPT_BLOCK, OPT_BLOCKS, OPT_BATCH, OPT_MAXBATCH, OPT_THREADS, OPT_TSWEEP, OPT_SWEEP,
  OPT_DURATION, OPT_REPEAT, OPT_DEPTH, OPT_TOTAL, OPT_JSON, OPT_CONFIG, OPT_METADATA, OPT_BASELINE,
  OPT_BASEKIND, OPT_IPERF3, OPT_FILE, OPT_FIO, OPT_VERIFY, OPT_SHARED, OPT_HUGE, OPT_BUFFERS, OPT_QUIET, OPT_PROGRESS, OPT_HELP,
};

static const struct option long_opts[] = {
  {"mode", required_argument, NULL, OPT_MODE},
  {"transport", required_argument, NULL, OPT_TRANSPORT},
  {"segment", required_argument, NULL, OPT_SEGMENT},
  {"listen", required_argument, NULL, OPT_LISTEN},
  {"control", required_argument, NULL, OPT_CONTROL},
  {"op", required_argument, NULL, OPT_OP},
  {"block-size", required_argument, NULL, OPT_BLOCK},
  {"block-sizes", required_argument, NULL, OPT_BLOCKS},
  {"batch-size", required_argument, NULL, OPT_BATCH},
  {"max-batch-bytes", required_argument, NULL, OPT_MAXBATCH},
  {"threads", required_argument, NULL, OPT_THREADS},
  {"thread-sweep", required_argument, NULL, OPT_TSWEEP},
  {"sweep", no_argument, NULL, OPT_SWEEP},
  {"duration", required_argument, NULL, OPT_DURATION},
  {"repeat", required_argument, NULL, OPT_REPEAT},
  {"depth", required_argument, NULL, OPT_DEPTH},
  {"total-size", required_argument, NULL, OPT_TOTAL},
  {"json", no_argument, NULL, OPT_JSON},
  {"config", required_argument, NULL, OPT_CONFIG},
  {"metadata", required_argument, NULL, OPT_METADATA},
  {"baseline", no_argument, NULL, OPT_BASELINE},
  {"baseline-kind", required_argument, NULL, OPT_BASEKIND},
  {"iperf3", no_argument, NULL, OPT_IPERF3},
  {"file", required_argument, NULL, OPT_FILE},
  {"fio", no_argument, NULL, OPT_FIO},
  {"verify", no_argument, NULL, OPT_VERIFY},
  {"shared-pool", no_argument, NULL, OPT_SHARED},
  {"hugepages", no_argument, NULL, OPT_HUGE},
  {"buffers", required_argument, NULL, OPT_BUFFERS},
  {"quiet", no_argument, NULL, OPT_QUIET},
  {"progress", required_argument, NULL, OPT_PROGRESS},
  {"help", no_argument, NULL, OPT_HELP},
  {NULL, 0, NULL, 0},
};

int bench_opts_parse(int argc, char **argv, bench_opts *o, char *err,
                     size_t errlen) {
  memset(o, 0, sizeof *o);
  o->mode = BENCH_LOOPBACK;
  o->transport = "tcp";
  o->op = MC_OP_READ;
  o->ops[0] = MC_OP_READ;
  o->nops = 1;
  o->blocks[0] = 64u << 10;
  o->threads[0] = 1;
  o->batch = 16;
  o->duration = 5.0;
  o->repeat = 1;
  o->depth = 1;
  o->progress = 2.0;
  int sweep = 0, have_blocks = 0, have_tsweep = 0;
  uint64_t block = o->blocks[0];
  uint32_t nthr = 1;

  opterr = 0;
  optind = 1;
  for (;;) {
    int c = getopt_long(argc, argv, ":", long_opts, NULL);
    if (c == -1)
      break;
    const char *a = optarg;
    switch (c) {
    case OPT_MODE:
      if (!strcmp(a, "target")) o->mode = BENCH_TARGET;
      else if (!strcmp(a, "initiator")) o->mode = BENCH_INITIATOR;
      else if (!strcmp(a, "loopback")) o->mode = BENCH_LOOPBACK;
      else {
        set_err(err, errlen, "--mode: '%s' is not target, initiator or loopback", a);
        return -1;
      }
      break;
    case OPT_TRANSPORT:
      if (!*a || strlen(a) >= 32) {
        set_err(err, errlen, "--transport: bad name '%s'", a);
        return -1;
      }
      o->transport = a;
      break;
    case OPT_SEGMENT:
      if (!*a || strlen(a) >= MC_NAME_MAX) {
        set_err(err, errlen, "--segment: bad name '%s'", a);
        return -1;
      }
      o->segment = a;
      break;
    case OPT_LISTEN: o->listen = a; break;
    case OPT_CONTROL: o->control = a; break;
    case OPT_CONFIG: o->config = a; break;
    case OPT_METADATA: o->metadata = a; break;
    case OPT_OP:
      if (!strcmp(a, "read")) o->ops[0] = MC_OP_READ, o->nops = 1;
      else if (!strcmp(a, "write")) o->ops[0] = MC_OP_WRITE, o->nops = 1;
      else if (!strcmp(a, "both") || !strcmp(a, "read,write"))
        o->ops[0] = MC_OP_READ, o->ops[1] = MC_OP_WRITE, o->nops = 2;
      else if (!strcmp(a, "write,read"))
        o->ops[0] = MC_OP_WRITE, o->ops[1] = MC_OP_READ, o->nops = 2;
      else {
        set_err(err, errlen, "--op: '%s' is not read, write or both", a);
        return -1;
      }
      o->op = o->ops[0];
      break;
    case OPT_BLOCK:
      if (bench_parse_size(a, &block) || block == 0 || block > BENCH_MAX_BLOCK) {
        set_err(err, errlen, "--block-size: bad size '%s' (1 .. 1G, K/M/G suffixes)", a);
        return -1;
      }
      break;
    case OPT_BLOCKS:
      if (parse_list("--block-sizes", a, 1, o->blocks, NULL, &o->nblocks, err, errlen))
        return -1;
      have_blocks = 1;
      break;
    case OPT_THREADS:
      if (parse_u32(a, 1, BENCH_MAX_THREADS, &nthr)) {
        set_err(err, errlen, "--threads: bad count '%s' (1 .. %u)", a, BENCH_MAX_THREADS);
        return -1;
      }
      break;
    case OPT_TSWEEP:
      if (parse_list("--thread-sweep", a, 0, NULL, o->threads, &o->nthreads, err, errlen))
        return -1;
      have_tsweep = 1;
      break;
    case OPT_BATCH:
      if (parse_u32(a, 1, BENCH_MAX_BATCH, &o->batch)) {
        set_err(err, errlen, "--batch-size: bad count '%s' (1 .. %u)", a, BENCH_MAX_BATCH);
        return -1;
      }
      break;
    case OPT_MAXBATCH:
      if (bench_parse_size(a, &o->max_batch_bytes) || o->max_batch_bytes == 0) {
        set_err(err, errlen, "--max-batch-bytes: bad size '%s'", a);
        return -1;
      }
      break;
    case OPT_SWEEP: sweep = 1; break;
    case OPT_DURATION: {
      char *end = NULL;
      errno = 0;
      o->duration = strtod(a, &end);
      if (errno || end == a || *end || !(o->duration > 0) || o->duration > 86400) {
        set_err(err, errlen, "--duration: bad seconds '%s' (0 < SEC <= 86400)", a);
        return -1;
      }
      break;
    }
    case OPT_REPEAT:
      if (parse_u32(a, 1, BENCH_REPEAT_MAX, &o->repeat)) {
        set_err(err, errlen, "--repeat: bad count '%s' (1..%d)", a, BENCH_REPEAT_MAX);
        return -1;
      }
      break;
    case OPT_DEPTH:
      if (parse_u32(a, 1, BENCH_DEPTH_MAX, &o->depth)) {
        set_err(err, errlen, "--depth: bad count '%s' (1..%d)", a, BENCH_DEPTH_MAX);
        return -1;
      }
      break;
    case OPT_TOTAL:
      if (bench_parse_size(a, &o->total_size) || o->total_size == 0) {
        set_err(err, errlen, "--total-size: bad size '%s'", a);
        return -1;
      }
      break;
    case OPT_JSON: o->json = 1; break;
    case OPT_BASELINE: o->baseline = 1; break;
    case OPT_BASEKIND:
      if (!strcmp(a, "socket")) o->baseline_kind = BENCH_BASE_SOCKET;
      else if (!strcmp(a, "memcpy")) o->baseline_kind = BENCH_BASE_MEMCPY;
      else {
        set_err(err, errlen, "--baseline-kind: '%s' is not socket or memcpy", a);
        return -1;
      }
      break;
    case OPT_IPERF3: o->iperf3 = 1; break;
    case OPT_FILE:
      if (!*a) {
        set_err(err, errlen, "--file: empty path");
        return -1;
      }
      o->file = a;
      break;
    case OPT_FIO: o->fio = 1; break;
    case OPT_VERIFY: o->verify = 1; break;
    case OPT_SHARED: o->shared_pool = 1; break;
    case OPT_HUGE: o->mem_kind = BENCH_MEM_HUGE; break;
    case OPT_BUFFERS:
      if ((o->mem_kind = bench_mem_kind_parse(a)) < 0) {
        set_err(err, errlen, "--buffers: '%s' is not pool, malloc or huge", a);
        return -1;
      }
      break;
    case OPT_QUIET: o->quiet = 1; break;
    case OPT_PROGRESS: {
      char *end = NULL;
      errno = 0;
      o->progress = strtod(a, &end);
      if (errno || end == a || *end || !(o->progress >= 0) || o->progress > 3600) {
        set_err(err, errlen, "--progress: bad seconds '%s' (0 <= SEC <= 3600)", a);
        return -1;
      }
      break;
    }
    case OPT_HELP:
      bench_usage(stdout, argv[0]);
      return 1;
    case ':':
      set_err(err, errlen, "%s needs a value", argv[optind - 1]);
      return -1;
    default:
      set_err(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
      return -1;
    }
  }
  if (optind < argc) {
    set_err(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
    return -1;
  }

  /* A list given alone implies --sweep; --sweep alone takes both defaults. */
  if (sweep || have_blocks || have_tsweep) {
    if (!have_blocks) {
      o->blocks[0] = 64u << 10;
      o->blocks[1] = 1u << 20;
      o->blocks[2] = 16u << 20;
      o->nblocks = 3;
    }
    if (!have_tsweep) {
      o->threads[0] = 1;
      o->threads[1] = 2;
      o->threads[2] = 4;
      o->nthreads = 3;
    }
  } else {
    o->blocks[0] = block;
    o->nblocks = 1;
    o->threads[0] = nthr;
    o->nthreads = 1;
  }

  if (o->mode == BENCH_INITIATOR && (!o->segment || !o->control)) {
    set_err(err, errlen,
            "--mode initiator needs --segment NAME and --control HOST:PORT "
            "(the SEGMENT and CONTROL lines a target prints)");
    return -1;
  }
  if (o->mode != BENCH_INITIATOR && o->segment) {
    set_err(err, errlen, "--segment is only for --mode initiator");
    return -1;
  }
  if (o->fio && !o->file) {
    set_err(err, errlen, "--fio needs --file PATH (the file fio and the bench share)");
    return -1;
  }
  if (o->file && (o->baseline || o->shared_pool)) {
    set_err(err, errlen, "--file: the target buffer is a file; use --fio as its baseline "
                         "(not --baseline or --shared-pool)");
    return -1;
  }
  uint64_t need = bench_need_bytes(o);
  if (o->total_size && o->mode == BENCH_LOOPBACK && o->total_size < need) {
    set_err(err, errlen,
            "--total-size %" PRIu64 " is below threads x depth x batch x block = %" PRIu64,
            o->total_size, need);
    return -1;
  }
  return 0;
}

uint32_t bench_point_batch(const bench_opts *o, uint64_t block) {
  if (!o->max_batch_bytes || block == 0 || (uint64_t)o->batch * block <= o->max_batch_bytes)
    return o->batch;
  uint64_t b = o->max_batch_bytes / block;
  return b ? (uint32_t)b : 1;
}

uint64_t bench_max_batch_bytes(const bench_opts *o) {
  uint64_t maxb = 0;
  for (size_t i = 0; i < o->nblocks; i++) {
    uint64_t b = o->blocks[i] * bench_point_batch(o, o->blocks[i]);
    if (b > maxb)
      maxb = b;
  }
  return maxb; /* <= 1G * 65536 = 2^46 */
}

uint64_t bench_need_bytes(const bench_opts *o) {
  uint32_t maxt = 0;
  for (size_t i = 0; i < o->nthreads; i++)
    if (o->threads[i] > maxt)
      maxt = o->threads[i];
  return bench_max_batch_bytes(o) * maxt * o->depth; /* <= 2^46 * 256 * 8 */
}

int bench_baseline_kind(const bench_opts *o) {
  if (o->baseline_kind != BENCH_BASE_AUTO)
    return o->baseline_kind;
  return strcmp(o->transport, "shm") == 0 ? BENCH_BASE_MEMCPY
                                          : BENCH_BASE_SOCKET;
}
