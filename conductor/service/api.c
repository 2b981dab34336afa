/* See api.h.  Every input is checked before it reaches the library; the
 * library calls run under one mutex (mc_cond is not thread-safe). */
#include "api.h"
#include "fast.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cs_api_init(cs_api *a, const mc_cond_opts *o, const mc_cond_profile *p, char *err,
                size_t errlen) {
  memset(a, 0, sizeof *a);
  if (mc_cond_create(o, &a->c, err, errlen))
    return -1;
  a->profile = *p;
  pthread_mutex_init(&a->mu, NULL);
  a->clock = mono;
  a->t0 = mono();
  a->max_blocks = 1 << 16;
  return 0;
}

void cs_api_fini(cs_api *a) {
  mc_cond_destroy(a->c);
  pthread_mutex_destroy(&a->mu);
}

__attribute__((format(printf, 3, 4))) static int fail(char **out, int status, const char *fmt,
                                                      ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *o = json_pack("{s:s}", "error", msg);
  *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return status;
}

static int reply(char **out, int status, json_t *o) {
  *out = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
  json_decref(o);
  return *out ? status : 500;
}

/* One block id: an integer >= 0, or up to 16 hex digits as a string. */
static int block_id(json_t *v, uint64_t *out) {
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if (i < 0)
      return -1;
    *out = (uint64_t)i;
    return 0;
  }
  if (!json_is_string(v))
    return -1;
  const char *s = json_string_value(v);
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    s += 2;
  size_t n = strlen(s);
  if (!n || n > 16)
    return -1;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isxdigit((unsigned char)s[i]))
      return -1;
    x = x << 4 | (uint64_t)(isdigit((unsigned char)s[i]) ? s[i] - '0'
                                                          : (tolower((unsigned char)s[i]) - 'a' + 10));
  }
  *out = x;
  return 0;
}

/* KEY of O as block ids into *B (malloc'd; *N of them).  An error message
 * in ERR otherwise. */
static int blocks_of(cs_api *a, json_t *o, const char *key, uint64_t **b, size_t *n,
                     int allow_empty, char *err, size_t errlen) {
  json_t *arr = json_object_get(o, key);
  *b = NULL;
  *n = 0;
  if (!json_is_array(arr)) {
    snprintf(err, errlen, "'%s' must be an array of block ids", key);
    return -1;
  }
  size_t m = json_array_size(arr);
  if ((!m && !allow_empty) || m > a->max_blocks) {
    snprintf(err, errlen, "'%s' must hold 1..%zu block ids", key, a->max_blocks);
    return -1;
  }
  *b = malloc((m ? m : 1) * sizeof **b);
  if (!*b) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < m; i++)
    if (block_id(json_array_get(arr, i), &(*b)[i])) {
      snprintf(err, errlen, "'%s'[%zu] is not a block id (integer >= 0 or hex string)", key, i);
      free(*b);
      *b = NULL;
      return -1;
    }
  *n = m;
  return 0;
}

/* A number field: absent -> DEF (when not REQUIRED); must lie in [LO, HI]. */
static int num_field(json_t *o, const char *key, int required, double def, double lo, double hi,
                     double *out, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v) {
    if (required) {
      snprintf(err, errlen, "'%s' is required", key);
      return -1;
    }
    *out = def;
    return 0;
  }
  if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
    snprintf(err, errlen, "'%s' must be a number in [%g, %g]", key, lo, hi);
    return -1;
  }
  *out = json_number_value(v);
  return 0;
}

static const char *str_field(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static int do_register(cs_api *a, json_t *o, char **out) {
  const char *name = str_field(o, "name"), *role = str_field(o, "role");
  if (!name || !role)
    return fail(out, 400, "'name' and 'role' (strings) are required");
  unsigned roles = !strcmp(role, "prefill") ? MC_COND_PREFILL
                   : !strcmp(role, "decode") ? MC_COND_DECODE
                   : !strcmp(role, "both")   ? MC_COND_PREFILL | MC_COND_DECODE
                   : !strcmp(role, "pool")   ? MC_COND_POOL
                                             : 0;
  if (!roles)
    return fail(out, 400, "'role' must be prefill, decode, both or pool");
  mc_cond_profile p = a->profile;
  const char *y = str_field(o, "profile_yaml");
  if (json_object_get(o, "profile_yaml") && !y)
    return fail(out, 400, "'profile_yaml' must be a string");
  char err[256] = "";
  if (y && mc_cond_profile_parse(y, strlen(y), "profile_yaml", &p, err, sizeof err))
    return fail(out, 400, "%s", err);
  int id = -1;
  pthread_mutex_lock(&a->mu);
  int rc = mc_cond_add_instance(a->c, name, roles, &p, &id);
  pthread_mutex_unlock(&a->mu);
  if (rc == MC_EEXIST)
    return fail(out, 409, "instance '%s' is already registered", name);
  if (rc == MC_ENOSPC)
    return fail(out, 507, "no room for another instance (at most %d)", MC_COND_MAX_INSTANCES);
  if (rc)
    return fail(out, 400, "cannot register '%s': %s (name of 1..%d printable bytes)", name,
                mc_strerror(rc), MC_COND_NAME_MAX);
  return reply(out, 200, json_pack("{s:i,s:s,s:s}", "id", id, "name", name, "role", role));
}

static int find(cs_api *a, json_t *o, const char *key, char **out, int *status) {
  const char *name = str_field(o, key);
  if (!name) {
    *status = fail(out, 400, "'%s' (a string) is required", key);
    return -1;
  }
  int id = mc_cond_find_instance(a->c, name);
  if (id < 0)
    *status = fail(out, 404, "unknown instance '%s'", name);
  return id;
}

static int do_unregister(cs_api *a, json_t *o, char **out) {
  int status;
  pthread_mutex_lock(&a->mu);
  int id = find(a, o, "name", out, &status);
  if (id >= 0)
    mc_cond_remove_instance(a->c, id);
  pthread_mutex_unlock(&a->mu);
  return id < 0 ? status : reply(out, 200, json_pack("{s:b}", "removed", 1));
}

static int do_events(cs_api *a, json_t *o, char **out) {
  char err[256];
  json_t *evs = json_object_get(o, "events"), *rs = json_object_get(o, "resync");
  if ((!evs) == (!rs) || (evs && !json_is_array(evs)) || (rs && !json_is_object(rs)))
    return fail(out, 400, "give either 'events' (an array) or 'resync' (an object)");
  if (!json_is_string(json_object_get(o, "instance")))
    return fail(out, 400, "'instance' (a string) is required");
  /* Parse everything before touching the index: a malformed batch is
   * refused whole, never half applied. */
  size_t n = rs ? 1 : json_array_size(evs);
  if (n > 4096)
    return fail(out, 413, "at most 4096 events per batch");
  struct ev {
    uint64_t seq;
    int type;
    uint64_t *b;
    size_t nb;
  } *e = calloc(n ? n : 1, sizeof *e);
  if (!e)
    return fail(out, 500, "out of memory");
  int status = 0;
  for (size_t i = 0; i < n && !status; i++) {
    json_t *x = rs ? rs : json_array_get(evs, i);
    double seq;
    const char *type = rs ? "resync" : str_field(x, "type");
    if (!json_is_object(x) || !type)
      status = fail(out, 400, "events[%zu]: needs 'seq', 'type' and 'blocks'", i);
    else if (num_field(x, "seq", 1, 0, rs ? 0 : 1, 9007199254740992.0, &seq, err, sizeof err) ||
             seq != floor(seq))
      status = fail(out, 400, "events[%zu]: %s", i, "'seq' must be a whole number >= 1");
    else if (!rs && strcmp(type, "stored") && strcmp(type, "removed"))
      status = fail(out, 400, "events[%zu]: 'type' must be stored or removed", i);
    else if (blocks_of(a, x, "blocks", &e[i].b, &e[i].nb, 1, err, sizeof err))
      status = fail(out, 400, "events[%zu]: %s", i, err);
    else {
      e[i].seq = (uint64_t)seq;
      e[i].type = rs ? 0 : !strcmp(type, "stored") ? MC_COND_EV_STORED : MC_COND_EV_REMOVED;
    }
  }
  size_t applied = 0, dup = 0;
  int gap = 0, needs = 0;
  uint64_t last = 0;
  if (!status) {
    pthread_mutex_lock(&a->mu);
    int id = find(a, o, "instance", out, &status);
    for (size_t i = 0; id >= 0 && i < n; i++) {
      int rc = rs ? mc_cond_resync(a->c, id, e[i].seq, e[i].b, e[i].nb)
                  : mc_cond_apply_event(a->c, id, e[i].seq, e[i].type, e[i].b, e[i].nb);
      if (rc == 0)
        applied++;
      else if (rc == 1)
        dup++;
      else if (rc == MC_EPROTO || rc == MC_EAGAIN) {
        gap = 1;
        break;
      } else {
        status = fail(out, 500, "index: %s", mc_strerror(rc));
        break;
      }
    }
    mc_cond_inst_stats st;
    if (id >= 0 && mc_cond_instance_stats(a->c, id, 0, &st) == 0) {
      needs = st.needs_resync;
      last = st.last_seq;
    }
    pthread_mutex_unlock(&a->mu);
  }
  for (size_t i = 0; i < n; i++)
    free(e[i].b);
  free(e);
  if (status)
    return status;
  json_t *r = json_pack("{s:I,s:I,s:b,s:I}", "applied", (json_int_t)applied, "duplicates",
                        (json_int_t)dup, "needs_resync", needs, "last_seq", (json_int_t)last);
  if (gap && r)
    json_object_set_new(r, "error",
                        json_string("event sequence gap: the instance's index entries were "
                                    "dropped; send a resync snapshot"));
  return reply(out, gap ? 409 : 200, r);
}

static const char *name_of(cs_api *a, int id) {
  const char *n = id >= 0 ? mc_cond_instance_name(a->c, id) : NULL;
  return n ? n : "";
}

/* The answer to /schedule built with jansson (the general path, and the
 * fallback of cs_fast_schedule_reply). */
static json_t *sched_json(const cs_sched_ans *s) {
  const mc_cond_decision *d = &s->d;
  char id[32];
  snprintf(id, sizeof id, "%" PRIu64, d->req_id);
  json_t *j = json_pack("{s:b,s:s,s:f,s:f,s:f,s:f,s:f}", "admitted", !d->reject, "reason",
                        mc_cond_reject_str(d->reject), "expected_ttft_s", d->prefill.ttft_s,
                        "expected_tbt_s", d->decode.tbt_s, "prefill_load", d->prefill_load,
                        "decode_load", d->decode_load_now, "queue_s", d->prefill.queue_s);
  if (j && d->prefill.id >= 0) {
    json_object_set_new(j, "prefill", json_string(s->prefill));
    json_object_set_new(j, "prefix_blocks", json_integer(d->prefill.prefix_blocks));
    json_object_set_new(j, "local_blocks", json_integer(d->prefill.local_blocks));
    json_object_set_new(j, "fetch_from",
                        d->prefill.fetch_from >= 0 ? json_string(s->fetch_from) : json_null());
    json_object_set_new(j, "transfer_s", json_real(d->prefill.transfer_s));
  }
  if (j && d->decode.id >= 0)
    json_object_set_new(j, "decode", json_string(s->decode));
  if (j && !d->reject)
    json_object_set_new(j, "request_id", json_string(id));
  return j;
}

static void copy_name(cs_api *a, int id, char *to) {
  snprintf(to, MC_COND_NAME_MAX + 1, "%s", name_of(a, id));
}

/* Schedules Q (read by either path) and answers. */
static int schedule(cs_api *a, const cs_sched_req *q, int fast, char **out) {
  mc_cond_req r = {.blocks = q->blocks, .n_blocks = q->n_blocks,
                   .input_len = (uint32_t)q->input_len, .output_len = (uint32_t)q->output_len,
                   .ttft_slo_s = q->ttft_slo_s, .tbt_slo_s = q->tbt_slo_s};
  cs_sched_ans s;
  /* Only the decision and the names it picked are taken under the lock;
   * the answer is written after. */
  pthread_mutex_lock(&a->mu);
  r.now_s = a->clock() - a->t0;
  int rc = mc_cond_schedule(a->c, &r, &s.d);
  if (rc == 0) {
    copy_name(a, s.d.prefill.id, s.prefill);
    copy_name(a, s.d.prefill.fetch_from, s.fetch_from);
    copy_name(a, s.d.decode.id, s.decode);
  }
  pthread_mutex_unlock(&a->mu);
  if (rc == MC_EBUSY)
    return fail(out, 503, "too many requests in flight: report them with POST /complete");
  if (rc)
    return fail(out, 400, "cannot schedule: %s (blocks must not outnumber the input tokens)",
                mc_strerror(rc));
  int st = s.d.reject ? 429 : 200;
  if (fast && (*out = cs_fast_schedule_reply(&s)))
    return st;
  return reply(out, st, sched_json(&s));
}

static int do_schedule(cs_api *a, json_t *o, char **out) {
  char err[256];
  cs_sched_req q;
  if (blocks_of(a, o, "blocks", &q.blocks, &q.n_blocks, 0, err, sizeof err))
    return fail(out, 400, "%s", err);
  if (num_field(o, "input_length", 1, 0, 1, 4294967295.0, &q.input_len, err, sizeof err) ||
      num_field(o, "output_length", 0, 0, 0, 4294967295.0, &q.output_len, err, sizeof err) ||
      num_field(o, "ttft_slo_s", 0, 0, 0, 1e9, &q.ttft_slo_s, err, sizeof err) ||
      num_field(o, "tbt_slo_s", 0, 0, 0, 1e9, &q.tbt_slo_s, err, sizeof err)) {
    free(q.blocks);
    return fail(out, 400, "%s", err);
  }
  int st = schedule(a, &q, !a->no_fast, out);
  free(q.blocks);
  return st;
}

/* POST /schedule in its plain form, without jansson (fast.h); 0 when the
 * body is not in that form. */
static int fast_schedule(cs_api *a, const char *body, size_t len, char **out) {
  uint64_t buf[512];
  cs_sched_req q;
  int rc = cs_fast_schedule_parse(body, len, a->max_blocks, buf, sizeof buf / sizeof buf[0], &q);
  if (rc == MC_ENOMEM)
    return fail(out, 500, "out of memory");
  if (rc != 1)
    return 0;
  int st = schedule(a, &q, 1, out);
  if (q.blocks != buf)
    free(q.blocks);
  return st;
}

static int do_complete(cs_api *a, json_t *o, char **out) {
  const char *id = str_field(o, "request_id"), *stage = str_field(o, "stage");
  if (!id || !stage)
    return fail(out, 400, "'request_id' and 'stage' (strings) are required");
  char *end;
  errno = 0;
  unsigned long long rid = strtoull(id, &end, 10);
  if (!*id || *end || errno || !isdigit((unsigned char)id[0]))
    return fail(out, 400, "'request_id' is not one this service issued");
  int rc, reject = 0;
  pthread_mutex_lock(&a->mu);
  double now = a->clock() - a->t0;
  if (!strcmp(stage, "prefill"))
    rc = mc_cond_prefill_done(a->c, rid, now);
  else if (!strcmp(stage, "decode"))
    rc = mc_cond_decode_admit(a->c, rid, now, &reject);
  else if (!strcmp(stage, "done"))
    rc = mc_cond_request_done(a->c, rid, now);
  else
    rc = 1;
  pthread_mutex_unlock(&a->mu);
  if (rc == 1)
    return fail(out, 400, "'stage' must be prefill, decode or done");
  if (rc == MC_ENOENT)
    return fail(out, 404, "unknown request '%s'", id);
  if (rc)
    return fail(out, 400, "%s", mc_strerror(rc));
  return reply(out, reject ? 429 : 200,
               json_pack("{s:b,s:s}", "admitted", !reject, "reason", mc_cond_reject_str(reject)));
}

static int do_query(cs_api *a, const uint64_t *b, size_t nb, char **out) {
  uint32_t *len = malloc(MC_COND_MAX_INSTANCES * sizeof *len);
  json_t *arr = json_array();
  if (!len || !arr) {
    free(len);
    json_decref(arr);
    return fail(out, 500, "out of memory");
  }
  pthread_mutex_lock(&a->mu);
  uint32_t best = mc_cond_match(a->c, b, nb, len);
  for (int i = 0; i < MC_COND_MAX_INSTANCES; i++) {
    const char *n = mc_cond_instance_name(a->c, i);
    if (n)
      json_array_append_new(arr, json_pack("{s:s,s:i}", "name", n, "longest_matched",
                                           (json_int_t)len[i]));
  }
  pthread_mutex_unlock(&a->mu);
  free(len);
  return reply(out, 200, json_pack("{s:I,s:I,s:o}", "blocks", (json_int_t)nb, "longest",
                                   (json_int_t)best, "instances", arr));
}

static int query_get(cs_api *a, const char *q, char **out) {
  if (!q || !*q)
    return fail(out, 400, "GET /query needs ?blocks=ID,ID,...");
  size_t cap = 1;
  for (const char *s = q; *s; s++)
    cap += *s == ',';
  if (cap > a->max_blocks)
    return fail(out, 400, "too many block ids (at most %zu)", a->max_blocks);
  uint64_t *b = malloc(cap * sizeof *b);
  if (!b)
    return fail(out, 500, "out of memory");
  size_t n = 0;
  const char *s = q;
  for (;;) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) {
      free(b);
      return fail(out, 400, "blocks: expected decimal ids separated by commas");
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || (*end && *end != ',')) {
      free(b);
      return fail(out, 400, "blocks: expected decimal ids separated by commas");
    }
    b[n++] = v;
    if (!*end)
      break;
    s = end + 1;
  }
  int st = do_query(a, b, n, out);
  free(b);
  return st;
}

static int metrics(cs_api *a, char **out) {
  size_t cap = 4096 + (size_t)MC_COND_MAX_INSTANCES * 600, n = 0;
  char *m = malloc(cap);
  if (!m)
    return fail(out, 500, "out of memory");
#define P(...) n += (size_t)snprintf(m + n, n < cap ? cap - n : 0, __VA_ARGS__)
  pthread_mutex_lock(&a->mu);
  mc_cond_stats s;
  mc_cond_get_stats(a->c, &s);
  double now = a->clock() - a->t0;
  P("# TYPE mc_conductor_instances gauge\nmc_conductor_instances %llu\n",
    (unsigned long long)s.instances);
  P("# TYPE mc_conductor_index_blocks gauge\nmc_conductor_index_blocks %llu\n",
    (unsigned long long)s.index_blocks);
  P("# TYPE mc_conductor_events_total counter\nmc_conductor_events_total %llu\n",
    (unsigned long long)s.events);
  P("# TYPE mc_conductor_event_gaps_total counter\nmc_conductor_event_gaps_total %llu\n",
    (unsigned long long)s.gaps);
  P("# TYPE mc_conductor_resyncs_total counter\nmc_conductor_resyncs_total %llu\n",
    (unsigned long long)s.resyncs);
  P("# TYPE mc_conductor_scheduled_total counter\nmc_conductor_scheduled_total %llu\n",
    (unsigned long long)s.scheduled);
  P("# TYPE mc_conductor_admitted_total counter\nmc_conductor_admitted_total %llu\n",
    (unsigned long long)s.admitted);
  P("# TYPE mc_conductor_rejected_total counter\n");
  for (int r = 1; r <= MC_COND_REJ_NO_INSTANCE; r++)
    P("mc_conductor_rejected_total{reason=\"%s\"} %llu\n", mc_cond_reject_str(r),
      (unsigned long long)s.rejected[r]);
  P("# TYPE mc_conductor_active_requests gauge\nmc_conductor_active_requests %llu\n",
    (unsigned long long)s.active);
  P("# TYPE mc_conductor_instance_blocks gauge\n# TYPE mc_conductor_instance_queue_seconds "
    "gauge\n# TYPE mc_conductor_instance_decode_load gauge\n");
  for (int i = 0; i < MC_COND_MAX_INSTANCES; i++) {
    const char *nm = mc_cond_instance_name(a->c, i);
    mc_cond_inst_stats st;
    if (!nm || mc_cond_instance_stats(a->c, i, now, &st))
      continue;
    /* Names are printable (checked at registration); quote and backslash
     * would still break the label, so they are replaced. */
    char lab[MC_COND_NAME_MAX + 1];
    size_t k = 0;
    for (; nm[k] && k < MC_COND_NAME_MAX; k++)
      lab[k] = (nm[k] == '"' || nm[k] == '\\') ? '_' : nm[k];
    lab[k] = 0;
    P("mc_conductor_instance_blocks{instance=\"%s\"} %llu\n", lab,
      (unsigned long long)st.blocks);
    P("mc_conductor_instance_queue_seconds{instance=\"%s\"} %.6f\n", lab, st.queue_s);
    P("mc_conductor_instance_decode_load{instance=\"%s\"} %.6f\n", lab, st.decode_load);
    P("mc_conductor_instance_needs_resync{instance=\"%s\"} %d\n", lab, st.needs_resync);
  }
  pthread_mutex_unlock(&a->mu);
#undef P
  if (n >= cap) {
    free(m);
    return fail(out, 500, "metrics buffer too small");
  }
  *out = m;
  return 200;
}

int cs_api_handle(cs_api *a, const char *method, const char *path, const char *query_blocks,
                  const char *body, size_t len, char **out, const char **ctype) {
  *out = NULL;
  *ctype = "application/json";
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (!strcmp(path, "/metrics")) {
    if (!get)
      return fail(out, 405, "use GET /metrics");
    *ctype = "text/plain; version=0.0.4";
    return metrics(a, out);
  }
  if (!strcmp(path, "/query") && get)
    return query_get(a, query_blocks, out);
  static const char *const posts[] = {"/register", "/unregister", "/events", "/schedule",
                                      "/complete", "/query"};
  int known = 0;
  for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++)
    known |= !strcmp(path, posts[i]);
  if (!known)
    return fail(out, 404, "unknown path '%.64s'", path);
  if (!post)
    return fail(out, 405, "use POST %s", path);
  if (!a->no_fast && !strcmp(path, "/schedule")) {
    int st = fast_schedule(a, body, len, out);
    if (st)
      return st;
  }
  json_error_t je;
  json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
  if (!o)
    return fail(out, 400, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
  int st;
  if (!json_is_object(o))
    st = fail(out, 400, "the body must be a JSON object");
  else if (!strcmp(path, "/register"))
    st = do_register(a, o, out);
  else if (!strcmp(path, "/unregister"))
    st = do_unregister(a, o, out);
  else if (!strcmp(path, "/events"))
    st = do_events(a, o, out);
  else if (!strcmp(path, "/schedule"))
    st = do_schedule(a, o, out);
  else if (!strcmp(path, "/complete"))
    st = do_complete(a, o, out);
  else {
    uint64_t *b;
    size_t nb;
    char err[256];
    if (blocks_of(a, o, "blocks", &b, &nb, 0, err, sizeof err))
      st = fail(out, 400, "%s", err);
    else {
      st = do_query(a, b, nb, out);
      free(b);
    }
  }
  json_decref(o);
  return st;
}
