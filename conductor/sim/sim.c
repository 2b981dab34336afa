/* See sim.h.  Events: a request arrives (the conductor schedules it), a
 * prefill ends (its blocks go into the instance's cache, reported to the
 * conductor as stored/removed events with sequence numbers; the decode
 * instance re-checks), a decode step ends (continuous batching: every
 * running request gets a token), and a sampling tick for the load curves.
 * Prefill instances run one request at a time in FIFO order; the real
 * prefill time is the profile's prediction times a seeded +-noise factor,
 * so the conductor's estimates are close but not exact. */
#include "sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lru.h"
#include "stats.h"

enum { EV_ARRIVE, EV_PREFILL_END, EV_STEP_END, EV_SAMPLE };

typedef struct ev {
  double t;
  uint64_t seq;
  int type;
  size_t a;
} ev;

typedef struct sreq {
  uint64_t rid;
  int p, d, fetch_from; /* simulator indexes (pool: -2) */
  double prefill_s;
  int state;            /* 0 new, 1 queued, 2 prefill, 3 decoding, 4 done, 5 rejected */
  size_t step0;         /* first decode step on its instance */
  uint32_t left;        /* tokens still to generate */
  double ttft;
  double decode_t0;     /* when its KV reached decode */
} sreq;

typedef struct pinst {
  int id;
  sim_lru cache;
  uint64_t seq;
  size_t *q, qh, qn, qcap; /* FIFO of request indexes: q[qh .. qh+qn) */
  int busy;
  size_t cur;
} pinst;

typedef struct dinst {
  int id;
  size_t *run, nrun, rcap;
  size_t *join, njoin, jcap;
  double *steps;
  size_t nsteps, scap;
  int stepping;
  double tokens;
} dinst;

typedef struct sim {
  const sim_cfg *cfg;
  const sim_trace *tr;
  const sim_opts *o;
  sim_result *res;
  mc_cond *c;
  ev *h;
  size_t nh, hcap;
  uint64_t evseq;
  sreq *r;
  pinst *p;
  dinst *d;
  int pool_id;
  sim_lru pool;
  uint64_t pool_seq;
  double *ttft, *tbt;
  size_t nttft, ntbt;
  double hit_blocks, all_blocks;
  uint64_t rng;
  int oom;
  uint64_t *stored, *removed;
  size_t live; /* events other than samples pending */
  double decode_time_sum, decode_time_sq;
  uint64_t decode_n;
} sim;

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void push(sim *s, double t, int type, size_t a) {
  if (s->nh == s->hcap) {
    size_t cap = s->hcap ? s->hcap * 2 : 1024;
    ev *n = realloc(s->h, cap * sizeof *n);
    if (!n) {
      s->oom = 1;
      return;
    }
    s->h = n;
    s->hcap = cap;
  }
  ev e = {t, s->evseq++, type, a};
  size_t i = s->nh++;
  while (i) {
    size_t up = (i - 1) / 2;
    if (s->h[up].t < e.t || (s->h[up].t == e.t && s->h[up].seq < e.seq))
      break;
    s->h[i] = s->h[up];
    i = up;
  }
  s->h[i] = e;
  if (type != EV_SAMPLE)
    s->live++;
}

static ev pop(sim *s) {
  ev top = s->h[0], last = s->h[--s->nh];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    const ev *best = &last;
    if (l < s->nh && (s->h[l].t < best->t || (s->h[l].t == best->t && s->h[l].seq < best->seq))) {
      m = l;
      best = &s->h[l];
    }
    if (l + 1 < s->nh &&
        (s->h[l + 1].t < best->t || (s->h[l + 1].t == best->t && s->h[l + 1].seq < best->seq)))
      m = l + 1;
    if (m == i)
      break;
    s->h[i] = s->h[m];
    i = m;
  }
  if (s->nh)
    s->h[i] = last;
  if (top.type != EV_SAMPLE)
    s->live--;
  return top;
}

static int grow(void **p, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *n = realloc(*p, c * sz);
  if (!n)
    return -1;
  *p = n;
  *cap = c;
  return 0;
}

static sim_lru *cache_of(sim *s, int fetch_from) {
  if (fetch_from == s->pool_id)
    return &s->pool;
  for (long i = 0; i < s->cfg->prefill; i++)
    if (s->p[i].id == fetch_from)
      return &s->p[i].cache;
  return NULL;
}

static void start_prefill(sim *s, pinst *p, size_t i, double now) {
  const sim_treq *t = &s->tr->r[i];
  sreq *q = &s->r[i];
  const mc_cond_profile *pr = &s->cfg->prof;
  uint32_t local = sim_lru_prefix(&p->cache, t->blocks, t->n_blocks);
  uint32_t reuse = local, fetch = 0;
  for (uint32_t k = 0; k < local; k++)
    sim_lru_touch(&p->cache, t->blocks[k]);
  sim_lru *src = q->fetch_from >= 0 ? cache_of(s, q->fetch_from) : NULL;
  if (src) {
    /* What the source still holds now (it may have evicted since). */
    uint32_t remote = sim_lru_prefix(src, t->blocks, t->n_blocks);
    if (remote > local) {
      fetch = remote - local;
      reuse = remote;
      for (uint32_t k = 0; k < remote; k++)
        sim_lru_touch(src, t->blocks[k]);
    }
  }
  double tokens = fmin((double)reuse * pr->block_tokens, t->in);
  double u = (double)(mix(s->o->seed * 0x100000001b3ull + i) >> 11) / 9007199254740992.0;
  double compute = mc_cond_prefill_time(pr, t->in, tokens) * (1 + s->cfg->noise * (2 * u - 1));
  double xfer = mc_cond_transfer_time(pr, fetch);
  q->prefill_s = compute;
  q->state = 2;
  s->hit_blocks += reuse;
  s->all_blocks += t->n_blocks;
  s->res->prefill_gpu_s += compute;
  s->res->fetched_blocks += fetch;
  p->busy = 1;
  p->cur = i;
  push(s, now + xfer + compute, EV_PREFILL_END, (size_t)(p - s->p));
}

/* Inserts the request's blocks into CACHE and reports them to the
 * conductor as instance ID's next events. */
static void store_blocks(sim *s, sim_lru *cache, int id, uint64_t *seq, const sim_treq *t) {
  if (!cache->cap)
    return;
  size_t ns = 0, nr = 0;
  for (uint32_t k = 0; k < t->n_blocks; k++) {
    uint64_t ev_key;
    int r = sim_lru_insert(cache, t->blocks[k], &ev_key);
    if (r >= 1)
      s->stored[ns++] = t->blocks[k];
    if (r == 1)
      s->removed[nr++] = ev_key;
  }
  if (ns && mc_cond_apply_event(s->c, id, ++*seq, MC_COND_EV_STORED, s->stored, ns) < 0)
    s->oom = 1;
  if (nr && mc_cond_apply_event(s->c, id, ++*seq, MC_COND_EV_REMOVED, s->removed, nr) < 0)
    s->oom = 1;
}

static void next_prefill(sim *s, pinst *p, double now) {
  p->busy = 0;
  if (!p->qn)
    return;
  size_t i = p->q[p->qh++];
  if (!--p->qn)
    p->qh = 0;
  start_prefill(s, p, i, now);
}

static void finish(sim *s, size_t i, double tbt) {
  sreq *q = &s->r[i];
  q->state = 4;
  s->res->served++;
  s->ttft[s->nttft++] = q->ttft;
  s->tbt[s->ntbt++] = tbt;
  if (q->ttft <= s->cfg->ttft_slo_s && tbt <= s->cfg->tbt_slo_s)
    s->res->slo_attained++;
}

static void start_step(sim *s, dinst *d, double now) {
  /* Joiners enter at a step boundary. */
  if (grow((void **)&d->run, &d->rcap, d->nrun + d->njoin, sizeof *d->run)) {
    s->oom = 1;
    return;
  }
  for (size_t k = 0; k < d->njoin; k++) {
    size_t i = d->join[k];
    s->r[i].step0 = d->nsteps;
    d->run[d->nrun++] = i;
  }
  d->njoin = 0;
  if (!d->nrun) {
    d->stepping = 0;
    return;
  }
  d->stepping = 1;
  double dt = mc_cond_decode_step(&s->cfg->dprof, (double)d->nrun, d->tokens);
  if (grow((void **)&d->steps, &d->scap, d->nsteps + 1, sizeof *d->steps)) {
    s->oom = 1;
    return;
  }
  d->steps[d->nsteps++] = dt;
  push(s, now + dt, EV_STEP_END, (size_t)(d - s->d));
}

static void step_end(sim *s, dinst *d, double now) {
  size_t keep = 0;
  for (size_t k = 0; k < d->nrun; k++) {
    size_t i = d->run[k];
    sreq *q = &s->r[i];
    d->tokens += 1;
    if (--q->left > 0) {
      d->run[keep++] = i;
      continue;
    }
    /* TBT as FAST'25 measures it: the mean of the slowest 10% of the
     * request's token intervals. */
    size_t n = d->nsteps - q->step0;
    /* Requests' ranges of the step log overlap: sort a copy. */
    double *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) {
      s->oom = 1;
      return;
    }
    memcpy(tmp, d->steps + q->step0, n * sizeof *tmp);
    double tbt = sim_top_mean(tmp, n, 0.1);
    free(tmp);
    d->tokens -= (double)s->tr->r[i].in + s->tr->r[i].out;
    s->decode_time_sum += now - q->decode_t0;
    s->decode_time_sq += (now - q->decode_t0) * (now - q->decode_t0);
    s->decode_n++;
    mc_cond_request_done(s->c, q->rid, now);
    finish(s, i, tbt);
  }
  d->nrun = keep;
  start_step(s, d, now);
}

static int sim_index(const sim *s, int id, int decode) {
  long n = decode ? s->cfg->decode : s->cfg->prefill;
  for (long i = 0; i < n; i++)
    if ((decode ? s->d[i].id : s->p[i].id) == id)
      return (int)i;
  return -1;
}

static void arrive(sim *s, size_t i, double now) {
  const sim_treq *t = &s->tr->r[i];
  sreq *q = &s->r[i];
  mc_cond_req rq = {.blocks = t->blocks, .n_blocks = t->n_blocks, .input_len = t->in,
                    .output_len = t->out, .now_s = now};
  mc_cond_decision dc;
  s->res->requests++;
  int rc = mc_cond_schedule(s->c, &rq, &dc);
  if (rc < 0 || dc.reject) {
    q->state = 5;
    s->res->rejected++;
    s->res->rej_reason[rc < 0 ? MC_COND_REJ_NO_INSTANCE : dc.reject]++;
    return;
  }
  q->rid = dc.req_id;
  q->p = sim_index(s, dc.prefill.id, 0);
  q->d = sim_index(s, dc.decode.id, 1);
  q->fetch_from = dc.prefill.fetch_from;
  q->state = 1;
  pinst *p = &s->p[q->p];
  if (!p->busy) {
    start_prefill(s, p, i, now);
    return;
  }
  /* FIFO: a vector read from qh; compacted or grown when the end is hit. */
  if (p->qh + p->qn == p->qcap && p->qh) {
    memmove(p->q, p->q + p->qh, p->qn * sizeof *p->q);
    p->qh = 0;
  }
  if (grow((void **)&p->q, &p->qcap, p->qh + p->qn + 1, sizeof *p->q)) {
    s->oom = 1;
    return;
  }
  p->q[p->qh + p->qn++] = i;
}

static void prefill_end(sim *s, pinst *p, double now) {
  size_t i = p->cur;
  const sim_treq *t = &s->tr->r[i];
  sreq *q = &s->r[i];
  if (s->cfg->global_pool)
    store_blocks(s, &s->pool, s->pool_id, &s->pool_seq, t);
  else
    store_blocks(s, &p->cache, p->id, &p->seq, t);
  q->ttft = now - t->t;
  int reject = 0;
  mc_cond_decode_admit(s->c, q->rid, now, &reject);
  if (reject) {
    q->state = 5;
    s->res->rejected++;
    s->res->rej_reason[reject]++;
    s->res->wasted_prefill_s += q->prefill_s;
  } else if (t->out <= 1) {
    mc_cond_request_done(s->c, q->rid, now);
    finish(s, i, 0);
  } else {
    dinst *d = &s->d[q->d];
    q->state = 3;
    q->left = t->out - 1;
    q->decode_t0 = now;
    d->tokens += (double)t->in + 1;
    if (grow((void **)&d->join, &d->jcap, d->njoin + 1, sizeof *d->join)) {
      s->oom = 1;
    } else {
      d->join[d->njoin++] = i;
      if (!d->stepping)
        start_step(s, d, now);
    }
  }
  next_prefill(s, p, now);
}

static void sample(sim *s, double now) {
  double pl = 0, batch = 0, queued = 0;
  for (long k = 0; k < s->cfg->prefill; k++) {
    mc_cond_inst_stats st;
    mc_cond_instance_stats(s->c, s->p[k].id, now, &st);
    pl += st.queue_s / s->cfg->ttft_slo_s;
    queued += st.prefill_queued;
  }
  for (long k = 0; k < s->cfg->decode; k++)
    batch += (double)s->d[k].nrun;
  mc_cond_stats cs;
  mc_cond_get_stats(s->c, &cs);
  fprintf(s->o->csv, "%.3f,%.4f,%.4f,%.0f,%.0f,%llu,%llu\n", now, pl / s->cfg->prefill,
          mc_cond_decode_load(s->c, now), queued, batch, (unsigned long long)s->res->served,
          (unsigned long long)s->res->rejected);
}

static int setup(sim *s, char *err, size_t errlen) {
  const sim_cfg *cfg = s->cfg;
  mc_cond_opts co;
  mc_cond_opts_init(&co);
  co.prefill = mc_cond_prefill_policy(s->o->policy);
  co.admit = mc_cond_admit_policy(s->o->admission);
  if (!co.prefill || !co.admit) {
    snprintf(err, errlen, "unknown %s '%s'", co.prefill ? "admission" : "policy",
             co.prefill ? s->o->admission : s->o->policy);
    return -1;
  }
  co.kvcache_balancing_threshold = cfg->threshold;
  co.ttft_slo_s = cfg->ttft_slo_s;
  co.tbt_slo_s = cfg->tbt_slo_s;
  co.decode_time_s = cfg->decode_time_s;
  co.load_limit = cfg->load_limit;
  co.seed = s->o->seed;
  co.decode_load_scope = cfg->decode_load_scope;
  co.index_blocks_hint = (size_t)(cfg->global_pool ? cfg->pool_blocks
                                                   : cfg->prefill * cfg->cache_blocks);
  if (mc_cond_create(&co, &s->c, err, errlen))
    return -1;
  s->r = calloc(s->tr->n, sizeof *s->r);
  s->p = calloc((size_t)cfg->prefill, sizeof *s->p);
  s->d = calloc((size_t)cfg->decode, sizeof *s->d);
  s->ttft = malloc(s->tr->n * sizeof *s->ttft);
  s->tbt = malloc(s->tr->n * sizeof *s->tbt);
  uint32_t maxb = 1;
  for (size_t i = 0; i < s->tr->n; i++)
    if (s->tr->r[i].n_blocks > maxb)
      maxb = s->tr->r[i].n_blocks;
  s->stored = malloc(maxb * sizeof *s->stored);
  s->removed = malloc(maxb * sizeof *s->removed);
  if (!s->r || !s->p || !s->d || !s->ttft || !s->tbt || !s->stored || !s->removed) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  char name[64];
  for (long k = 0; k < cfg->prefill; k++) {
    snprintf(name, sizeof name, "prefill-%ld", k);
    if (mc_cond_add_instance(s->c, name, MC_COND_PREFILL, &cfg->prof, &s->p[k].id) ||
        sim_lru_init(&s->p[k].cache, cfg->global_pool ? 0 : (size_t)cfg->cache_blocks)) {
      snprintf(err, errlen, "cannot set up %s", name);
      return -1;
    }
  }
  for (long k = 0; k < cfg->decode; k++) {
    snprintf(name, sizeof name, "decode-%ld", k);
    if (mc_cond_add_instance(s->c, name, MC_COND_DECODE, &cfg->dprof, &s->d[k].id)) {
      snprintf(err, errlen, "cannot set up %s", name);
      return -1;
    }
  }
  s->pool_id = -100;
  if (cfg->global_pool &&
      (mc_cond_add_instance(s->c, "pool", MC_COND_POOL, &cfg->prof, &s->pool_id) ||
       sim_lru_init(&s->pool, (size_t)cfg->pool_blocks))) {
    snprintf(err, errlen, "cannot set up the pool");
    return -1;
  }
  return 0;
}

static void teardown(sim *s) {
  mc_cond_destroy(s->c);
  for (long k = 0; s->p && k < s->cfg->prefill; k++) {
    sim_lru_free(&s->p[k].cache);
    free(s->p[k].q);
  }
  for (long k = 0; s->d && k < s->cfg->decode; k++) {
    free(s->d[k].run);
    free(s->d[k].join);
    free(s->d[k].steps);
  }
  sim_lru_free(&s->pool);
  free(s->p);
  free(s->d);
  free(s->r);
  free(s->h);
  free(s->ttft);
  free(s->tbt);
  free(s->stored);
  free(s->removed);
}

int sim_run(const sim_cfg *cfg, const sim_trace *t, const sim_opts *o, sim_result *res,
            char *err, size_t errlen) {
  sim s;
  memset(&s, 0, sizeof s);
  memset(res, 0, sizeof *res);
  s.cfg = cfg;
  s.tr = t;
  s.o = o;
  s.res = res;
  int rc = setup(&s, err, errlen);
  if (rc == 0) {
    for (size_t i = 0; i < t->n; i++)
      push(&s, t->r[i].t, EV_ARRIVE, i);
    if (o->csv) {
      fprintf(o->csv, "t_s,prefill_load,decode_load,prefill_queued,decode_batch,served,rejected\n");
      push(&s, 0, EV_SAMPLE, 0);
    }
    double now = 0;
    while (s.nh && !s.oom) {
      ev e = pop(&s);
      now = e.t;
      switch (e.type) {
      case EV_ARRIVE: arrive(&s, e.a, now); break;
      case EV_PREFILL_END: prefill_end(&s, &s.p[e.a], now); break;
      case EV_STEP_END: step_end(&s, &s.d[e.a], now); break;
      case EV_SAMPLE:
        sample(&s, now);
        if (s.live)
          push(&s, now + cfg->sample_s, EV_SAMPLE, 0);
        break;
      }
    }
    if (s.oom) {
      snprintf(err, errlen, "out of memory");
      rc = -1;
    }
    res->end_s = now;
    res->prefix_hit_ratio = s.all_blocks > 0 ? s.hit_blocks / s.all_blocks : 0;
    res->decode_mean_s = s.decode_n ? s.decode_time_sum / (double)s.decode_n : 0;
    res->decode_biased_s = s.decode_time_sum > 0 ? s.decode_time_sq / s.decode_time_sum : 0;
    if (s.nttft) {
      double sum = 0;
      for (size_t i = 0; i < s.nttft; i++)
        sum += s.ttft[i];
      res->ttft_mean_s = sum / (double)s.nttft;
    }
    res->ttft_p50_s = sim_quantile(s.ttft, s.nttft, 0.5);
    res->ttft_p99_s = sim_quantile(s.ttft, s.nttft, 0.99);
    res->tbt_p90_s = sim_quantile(s.tbt, s.ntbt, 0.9);
  }
  teardown(&s);
  return rc;
}
