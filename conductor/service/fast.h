/* The fast path of POST /schedule: the service's hot call, read and
 * answered without building a jansson tree (which costs an allocation per
 * block id and dominated the call's CPU time).
 *
 * The reader accepts only the plain form: one object whose keys are among
 * "blocks", "input_length", "output_length", "ttft_slo_s" and "tbt_slo_s",
 * each at most once and spelled without escapes; block ids as unsigned
 * integers below 2^63 or hex strings; every value valid and in range.
 * Anything else (another key, a duplicate, an escape, an error of any
 * kind) is not an error here: the caller falls back to the general jansson
 * path, which gives the same answer it always did, error message included.
 * So the fast path never changes what the service answers, only how fast
 * (tests/conductor/test_fast.c and the api fuzz target check both paths
 * byte for byte). */
#ifndef MC_COND_SERVICE_FAST_H
#define MC_COND_SERVICE_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/conductor.h"

typedef struct cs_sched_req {
  uint64_t *blocks; /* BUF given to cs_fast_schedule_parse, or malloc'd */
  size_t n_blocks;
  double input_len, output_len, ttft_slo_s, tbt_slo_s;
} cs_sched_req;

/* Reads BODY (LEN bytes) into R.  Block ids go into BUF (CAP of them) or,
 * when more, a malloc'd array (R->blocks != BUF: the caller frees it).
 * 1: read; 0: not the plain form (use the general path); MC_ENOMEM. */
int cs_fast_schedule_parse(const char *body, size_t len, size_t max_blocks, uint64_t *buf,
                           size_t cap, cs_sched_req *r);

/* What an answer to /schedule says, names copied out of the conductor. */
typedef struct cs_sched_ans {
  mc_cond_decision d;
  char prefill[MC_COND_NAME_MAX + 1], fetch_from[MC_COND_NAME_MAX + 1],
      decode[MC_COND_NAME_MAX + 1];
} cs_sched_ans;

/* The answer's JSON, malloc'd, exactly as jansson's json_dumps(JSON_COMPACT
 * | JSON_REAL_PRECISION(9)) writes it; NULL when it cannot be written so
 * (a name that needs escaping or is not ASCII, a number that is not
 * finite, no memory): the caller then builds it with jansson. */
char *cs_fast_schedule_reply(const cs_sched_ans *a);

#endif
