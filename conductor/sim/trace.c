/* See trace.h. */
#include "trace.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_time(const void *a, const void *b) {
  const sim_treq *x = a, *y = b;
  if (x->t != y->t)
    return x->t < y->t ? -1 : 1;
  /* Equal times keep file order: blocks point into one pool in file
   * order, so their addresses order them. */
  return (x->blocks > y->blocks) - (x->blocks < y->blocks);
}

static int field_u(json_t *o, const char *k, double max, double *v) {
  json_t *x = json_object_get(o, k);
  if (!json_is_number(x))
    return -1;
  *v = json_number_value(x);
  return (*v >= 0 && *v <= max && *v == floor(*v)) ? 0 : -1;
}

int sim_trace_load(const char *path, size_t limit, double speed, double spread_ms,
                   sim_trace *t, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open", path);
    return -1;
  }
  size_t cap = 1024, pcap = 1 << 16, np = 0;
  t->r = malloc(cap * sizeof *t->r);
  t->pool = malloc(pcap * sizeof *t->pool);
  char *line = NULL;
  size_t lcap = 0;
  unsigned long lineno = 0;
  int rc = 0;
  double *ts = NULL;
  while (t->r && t->pool && (!limit || t->n < limit) && getline(&line, &lcap, f) > 0) {
    lineno++;
    if (line[strspn(line, " \t\r\n")] == 0)
      continue;
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    double tsv, in, out;
    json_t *h = o ? json_object_get(o, "hash_ids") : NULL;
    if (!o || field_u(o, "timestamp", 1e15, &tsv) || field_u(o, "input_length", 1e9, &in) ||
        field_u(o, "output_length", 1e9, &out) || !json_is_array(h) ||
        json_array_size(h) == 0 || in < 1) {
      snprintf(err, errlen, "%s:%lu: %s", path, lineno,
               o ? "needs timestamp, input_length >= 1, output_length and a non-empty hash_ids"
                 : je.text);
      json_decref(o);
      rc = -1;
      break;
    }
    if (t->n == cap) {
      cap *= 2;
      sim_treq *nr = realloc(t->r, cap * sizeof *nr);
      if (!nr) {
        json_decref(o);
        rc = -1;
        snprintf(err, errlen, "out of memory");
        break;
      }
      t->r = nr;
    }
    size_t nb = json_array_size(h);
    while (np + nb > pcap) {
      pcap *= 2;
      uint64_t *pp = realloc(t->pool, pcap * sizeof *pp);
      if (!pp) {
        free(t->pool);
        t->pool = NULL;
        break;
      }
      t->pool = pp;
    }
    if (!t->pool) {
      json_decref(o);
      break;
    }
    sim_treq *q = &t->r[t->n];
    q->t = tsv;
    q->in = (uint32_t)in;
    q->out = (uint32_t)out;
    q->n_blocks = (uint32_t)nb;
    q->blocks = (uint64_t *)(uintptr_t)np; /* an offset until the pool stops moving */
    for (size_t i = 0; i < nb; i++) {
      json_t *b = json_array_get(h, i);
      if (!json_is_integer(b) || json_integer_value(b) < 0) {
        snprintf(err, errlen, "%s:%lu: hash_ids[%zu] is not a non-negative integer", path,
                 lineno, i);
        rc = -1;
        break;
      }
      t->pool[np + i] = (uint64_t)json_integer_value(b);
    }
    json_decref(o);
    if (rc)
      break;
    np += nb;
    t->n++;
  }
  free(line);
  fclose(f);
  if (!rc && (!t->r || !t->pool)) {
    snprintf(err, errlen, "out of memory");
    rc = -1;
  }
  if (!rc && !t->n) {
    snprintf(err, errlen, "%s: no requests", path);
    rc = -1;
  }
  if (rc) {
    free(t->r);
    free(t->pool);
    memset(t, 0, sizeof *t);
    return -1;
  }
  for (size_t i = 0; i < t->n; i++)
    t->r[i].blocks = t->pool + (uintptr_t)t->r[i].blocks;
  /* Arrival order (the released traces are sorted already; a stable sort
   * keeps them as they are). */
  qsort(t->r, t->n, sizeof *t->r, by_time);
  /* Spread each bucket of equal timestamps evenly up to the next one: the
   * conversation trace is quantized to ~3 s, and bursting a whole bucket
   * at once would measure the quantization, not the scheduler. */
  ts = malloc(t->n * sizeof *ts);
  if (ts) {
    for (size_t i = 0; i < t->n; i++)
      ts[i] = t->r[i].t;
    for (size_t i = 0; i < t->n;) {
      size_t j = i;
      while (j < t->n && ts[j] == ts[i])
        j++;
      double gap = j < t->n ? ts[j] - ts[i] : spread_ms;
      if (gap > spread_ms || gap < 0)
        gap = spread_ms;
      for (size_t k = i; k < j; k++)
        t->r[k].t = ts[i] + gap * (double)(k - i) / (double)(j - i);
      i = j;
    }
    free(ts);
  }
  double t0 = t->r[0].t;
  for (size_t i = 0; i < t->n; i++)
    t->r[i].t = (t->r[i].t - t0) / 1000.0 / speed;
  return 0;
}

void sim_trace_free(sim_trace *t) {
  free(t->r);
  free(t->pool);
  memset(t, 0, sizeof *t);
}
