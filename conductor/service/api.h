/* The mooncake-conductor HTTP/JSON API over one mc_cond, independent of
 * the HTTP server (main.c feeds it method, path, query and body).
 *
 *   POST /register    {"name", "role": prefill|decode|both|pool,
 *                      "profile_yaml"?: inline profile}      -> {"id"}
 *   POST /unregister  {"name"}
 *   POST /events      {"instance", "events": [{"seq", "type": stored|removed,
 *                      "blocks": [...]}]} or {"instance", "resync":
 *                      {"seq", "blocks"}}; a gap answers 409, needs_resync
 *   POST /schedule    {"blocks", "input_length", "output_length"?,
 *                      "ttft_slo_s"?, "tbt_slo_s"?} -> 200 with the prefill
 *                      and decode instances and expected TTFT/TBT, or 429
 *                      {"admitted": false, "reason"}
 *   POST /complete    {"request_id", "stage": prefill|decode|done}: the
 *                      load feedback (decode: the decode instance's check)
 *   GET  /query?blocks=1,2,3  or POST /query {"blocks"}: per-instance
 *                      longest match
 *   GET  /metrics     Prometheus text
 * Block ids are JSON integers (0 .. 2^63-1) or strings of up to 16 hex
 * digits ("0x..." optional) for full 64-bit hashes.  Errors answer
 * {"error": "..."} with 400 (malformed), 404 (unknown instance, request or
 * path), 405, 409 (name taken, event gap), 413, 507 (full). */
#ifndef MC_COND_SERVICE_API_H
#define MC_COND_SERVICE_API_H

#include <pthread.h>
#include <stddef.h>

#include "mooncake/conductor.h"

typedef struct cs_api {
  mc_cond *c;
  mc_cond_profile profile; /* for instances registering without one */
  pthread_mutex_t mu;
  double (*clock)(void);   /* seconds, monotonic (tests set their own) */
  double t0;               /* clock() at start */
  int no_fast;             /* 1: /schedule always through jansson (tests) */
  size_t max_blocks;       /* most block ids in one request */
} cs_api;

/* 0, or -1 with ERR. */
int cs_api_init(cs_api *a, const mc_cond_opts *o, const mc_cond_profile *p, char *err,
                size_t errlen);
void cs_api_fini(cs_api *a);

/* Handles one request; *OUT (malloc'd, caller frees) gets the body,
 * *CTYPE its content type.  Returns the HTTP status. */
int cs_api_handle(cs_api *a, const char *method, const char *path, const char *query_blocks,
                  const char *body, size_t len, char **out, const char **ctype);

#endif
