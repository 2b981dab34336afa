/* Mooncake trace files (JSONL: timestamp ms, input_length, output_length,
 * hash_ids) read into memory, arrivals spread and scaled. */
#ifndef MC_SIM_TRACE_H
#define MC_SIM_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_treq {
  double t;            /* arrival (s), after spreading and speed */
  uint32_t in, out;
  uint64_t *blocks;
  uint32_t n_blocks;
} sim_treq;

typedef struct sim_trace {
  sim_treq *r;
  size_t n;
  uint64_t *pool; /* all block ids, r[i].blocks point into it */
} sim_trace;

/* Reads at most LIMIT requests (0: all) of PATH.  Requests sharing a
 * timestamp bucket are spread evenly over the gap to the next bucket (at
 * most SPREAD_MS); times are divided by SPEED.  0, or -1 with ERR set
 * (file and line). */
int sim_trace_load(const char *path, size_t limit, double speed, double spread_ms,
                   sim_trace *t, char *err, size_t errlen);
void sim_trace_free(sim_trace *t);

#endif
