/* mooncake/conductor.h - the Conductor: KVCache-centric global scheduling.
 *
 * libmooncake-conductor picks, for each request, the prefill instance by
 * predicted TTFT including KV cache reuse and transfer time (FAST'25
 * Algorithm 1, with kvcache_balancing_threshold and hot-block replication),
 * the decode instance under the TBT SLO and KV memory, and admits or
 * rejects the request (baseline, early rejection, or early rejection on the
 * *predicted* decode load, arXiv v3 section 7).
 *
 * It keeps a global prefix index: which instance holds which block (a block
 * id stands for the block and its whole prefix, as in the released traces),
 * fed by per-instance event streams carrying sequence numbers; a gap in a
 * stream drops that instance's entries until it resyncs with a snapshot.
 *
 * Every policy is one function behind a small ops table
 * (mc_cond_prefill_ops, mc_cond_decode_ops, mc_cond_admit_ops): the built-in
 * ones are exported so they can be tested and wrapped, and a caller may pass
 * its own table in mc_cond_opts.
 *
 * Threading: one mc_cond is not thread-safe; callers serialize (the
 * mooncake-conductor service holds a mutex).  Profiles and the policy
 * functions are pure and may be used from any thread.
 *
 * Errors: functions returning int give 0 or a negative MC_E* code
 * (mooncake/errors.h); those taking an err buffer also write a message
 * there (file and line for bad YAML, the key for a bad value).
 *
 * The library does not link libmooncake; it exports exactly the functions
 * declared MC_CONDUCTOR_API here, under version MOONCAKE_CONDUCTOR_0.
 */
#ifndef MOONCAKE_CONDUCTOR_H
#define MOONCAKE_CONDUCTOR_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef MC_CONDUCTOR_API
#if defined(__GNUC__)
#define MC_CONDUCTOR_API __attribute__((visibility("default")))
#else
#define MC_CONDUCTOR_API
#endif
#endif

/* Most instances one conductor tracks (prefill, decode and pool segments
 * together); the index keeps one bit per instance per block. */
#define MC_COND_MAX_INSTANCES 256
/* Most terms of the prefill-time polynomial of a profile. */
#define MC_COND_MAX_TERMS 16
/* Longest instance name (bytes, without the NUL). */
#define MC_COND_NAME_MAX 127

/* ---------------------------------------------------------------- profile */

/* One term coef * input_len^len_pow * prefix_len^prefix_pow (seconds, the
 * lengths in tokens). */
typedef struct mc_cond_term {
  double coef;
  unsigned len_pow, prefix_pow;
} mc_cond_term;

/* An instance's performance model, normally loaded from a YAML profile
 * (examples/conductor/llama3-70b.yaml documents the keys). */
typedef struct mc_cond_profile {
  char name[64];
  uint32_t block_tokens;          /* tokens per KV block (512 in the traces) */
  double bytes_per_token;         /* KV bytes per token (all layers) */
  unsigned n_terms;               /* prefill time polynomial */
  mc_cond_term prefill[MC_COND_MAX_TERMS];
  double decode_base_s;           /* decode step = base + per_seq * batch */
  double decode_per_seq_s;        /*   + per_token * tokens in the batch */
  double decode_per_token_s;
  double kv_capacity_tokens;      /* KV memory of a decode instance */
  double link_gbps;               /* bandwidth fetching remote KV (Gbit/s) */
  double transfer_setup_s;        /* fixed cost of one remote fetch */
} mc_cond_profile;

/* Reads a YAML profile from PATH into *OUT.  MC_ENOENT when the file cannot
 * be opened, MC_EINVAL on bad YAML or a bad/missing key; ERR (ERRLEN bytes,
 * may be NULL) then says the file, line and key. */
MC_CONDUCTOR_API int mc_cond_profile_load(const char *path, mc_cond_profile *out, char *err,
                                          size_t errlen);

/* Same from a YAML text of LEN bytes; NAME labels error messages. */
MC_CONDUCTOR_API int mc_cond_profile_parse(const char *text, size_t len, const char *name,
                                           mc_cond_profile *out, char *err, size_t errlen);

/* Predicted prefill time (s) of INPUT tokens of which PREFIX are already
 * cached: the profile's polynomial, never below 0. */
MC_CONDUCTOR_API double mc_cond_prefill_time(const mc_cond_profile *p, double input,
                                             double prefix);

/* Predicted time (s) to fetch BLOCKS remote KV blocks into an instance with
 * profile P: setup + blocks * block_tokens * bytes_per_token / bandwidth;
 * 0 for no blocks. */
MC_CONDUCTOR_API double mc_cond_transfer_time(const mc_cond_profile *p, double blocks);

/* Predicted decode step time (s) of a batch of BATCH requests holding
 * TOKENS tokens of KV in total. */
MC_CONDUCTOR_API double mc_cond_decode_step(const mc_cond_profile *p, double batch,
                                            double tokens);

/* --------------------------------------------------------------- policies */

/* A prefill candidate as a prefill policy sees it. */
typedef struct mc_cond_pcand {
  int id;                          /* instance id */
  uint32_t local_blocks;           /* longest prefix it holds itself */
  double queue_s;                  /* T_queue: queued predicted prefill work */
  const mc_cond_profile *profile;
} mc_cond_pcand;

/* What a prefill policy decides from. */
typedef struct mc_cond_pctx {
  uint32_t input_len;              /* prompt tokens */
  uint32_t n_blocks;               /* prompt blocks */
  const mc_cond_pcand *cand;       /* prefill instances (at least one) */
  size_t n_cand;
  uint32_t best_blocks;            /* longest prefix held anywhere */
  int best_id;                     /* its holder (-1: none) */
  double balancing_threshold;      /* kvcache_balancing_threshold */
  uint64_t rand;                   /* a random number for this decision */
} mc_cond_pctx;

/* A prefill decision. */
typedef struct mc_cond_pchoice {
  int id;                          /* chosen prefill instance */
  uint32_t prefix_blocks;          /* blocks it will reuse (local + fetched) */
  uint32_t local_blocks;           /* of which it holds already */
  int fetch_from;                  /* instance to fetch the rest from, or -1 */
  double queue_s, transfer_s, prefill_s;
  double ttft_s;                   /* queue + transfer + prefill */
} mc_cond_pchoice;

/* A prefill policy: fills *OUT from *CTX; 0 or a negative MC_E* code. */
typedef int (*mc_cond_prefill_fn)(const mc_cond_pctx *ctx, mc_cond_pchoice *out);
typedef struct mc_cond_prefill_ops {
  const char *name;
  mc_cond_prefill_fn select;
} mc_cond_prefill_ops;

/* Built-in prefill policies.  random: a uniform pick (ctx->rand).
 * load-balance: the shortest queue, cache ignored.  cache-local: the
 * smallest queue + prefill time with each instance's own prefix, no remote
 * fetch.  cache-global: Algorithm 1 - an instance whose own prefix is short
 * against the best one (best/own > threshold) is costed as fetching the
 * difference from the best holder (transfer time added); the smallest TTFT
 * wins.  Ties go to the lowest candidate index.  Each returns 0, or
 * MC_EINVAL for no candidates. */
MC_CONDUCTOR_API int mc_cond_prefill_random(const mc_cond_pctx *ctx, mc_cond_pchoice *out);
MC_CONDUCTOR_API int mc_cond_prefill_load_balance(const mc_cond_pctx *ctx, mc_cond_pchoice *out);
MC_CONDUCTOR_API int mc_cond_prefill_cache_local(const mc_cond_pctx *ctx, mc_cond_pchoice *out);
MC_CONDUCTOR_API int mc_cond_prefill_cache_global(const mc_cond_pctx *ctx, mc_cond_pchoice *out);

/* A decode candidate. */
typedef struct mc_cond_dcand {
  int id;
  uint32_t batch;                  /* requests decoding or on their way */
  double tokens;                   /* their KV tokens (reserved) */
  const mc_cond_profile *profile;
} mc_cond_dcand;

typedef struct mc_cond_dctx {
  double req_tokens;               /* KV tokens the request will hold */
  double tbt_slo_s;
  const mc_cond_dcand *cand;
  size_t n_cand;
} mc_cond_dctx;

typedef struct mc_cond_dchoice {
  int id;                          /* chosen decode instance (-1: none fits) */
  double tbt_s;                    /* its predicted step time with the request */
  int fits;                        /* 1 when within the TBT SLO and memory */
} mc_cond_dchoice;

typedef int (*mc_cond_decode_fn)(const mc_cond_dctx *ctx, mc_cond_dchoice *out);
typedef struct mc_cond_decode_ops {
  const char *name;
  mc_cond_decode_fn select;
} mc_cond_decode_ops;

/* Built-in decode policy "slo-balance": among the instances whose step time
 * with the request stays within the TBT SLO and whose KV memory holds it,
 * the one with the smallest step time; when none fits, the smallest step
 * time with fits = 0.  MC_EINVAL for no candidates. */
MC_CONDUCTOR_API int mc_cond_decode_slo_balance(const mc_cond_dctx *ctx, mc_cond_dchoice *out);

/* Rejection reasons (mc_cond_decision.reject). */
enum mc_cond_reject {
  MC_COND_ADMITTED = 0,
  MC_COND_REJ_TTFT = 1,            /* predicted TTFT over the SLO (prefill load) */
  MC_COND_REJ_DECODE = 2,          /* decode load over the limit now */
  MC_COND_REJ_PREDICTED = 3,       /* predicted decode load over the limit */
  MC_COND_REJ_DECODE_LOCAL = 4,    /* the decode instance refused it after prefill */
  MC_COND_REJ_NO_INSTANCE = 5,     /* no prefill or no decode instance */
};

/* What an admission policy decides from.  Loads are 1.0 at the SLO. */
typedef struct mc_cond_actx {
  double prefill_load;             /* TTFT / TTFT SLO */
  double decode_load_now;          /* mean decode load now, request included */
  double decode_load_pred;         /* mean decode load when it reaches decode
                                      (filled only for ops with predicts = 1) */
  int decode_fits;                 /* the chosen decode instance fits it, counting
                                      the requests on their way (for custom
                                      policies; the built-ins do not use it) */
  double limit;                    /* admit while load <= limit */
} mc_cond_actx;

/* Returns MC_COND_ADMITTED or a reason. */
typedef int (*mc_cond_admit_fn)(const mc_cond_actx *ctx);
typedef struct mc_cond_admit_ops {
  const char *name;
  mc_cond_admit_fn admit;
  int predicts;                    /* needs decode_load_pred */
} mc_cond_admit_ops;

/* Built-in admission.  baseline: prefill load only (decode re-checks after
 * prefill, mc_cond_decode_admit).  early: max(prefill load, decode load
 * now).  predicted: max(prefill load, predicted decode load).  A load over
 * ctx->limit rejects, naming the first load that is over. */
MC_CONDUCTOR_API int mc_cond_admit_baseline(const mc_cond_actx *ctx);
MC_CONDUCTOR_API int mc_cond_admit_early(const mc_cond_actx *ctx);
MC_CONDUCTOR_API int mc_cond_admit_predicted(const mc_cond_actx *ctx);

/* Built-in ops tables by name ("random", "load-balance", "cache-local",
 * "cache-global"; "slo-balance"; "baseline", "early", "predicted"); NULL
 * for an unknown name. */
MC_CONDUCTOR_API const mc_cond_prefill_ops *mc_cond_prefill_policy(const char *name);
MC_CONDUCTOR_API const mc_cond_decode_ops *mc_cond_decode_policy(const char *name);
MC_CONDUCTOR_API const mc_cond_admit_ops *mc_cond_admit_policy(const char *name);

/* Static text of a rejection reason ("ttft", "decode-load", ...). */
MC_CONDUCTOR_API const char *mc_cond_reject_str(int reason);

/* -------------------------------------------------------------- conductor */

typedef struct mc_cond mc_cond;

/* Whose decode load the admission policies see: the mean over all decode
 * instances (the paper's system-level load) or the chosen instance's. */
enum mc_cond_scope { MC_COND_SCOPE_MEAN = 0, MC_COND_SCOPE_CHOSEN = 1 };

typedef struct mc_cond_opts {
  const mc_cond_prefill_ops *prefill;   /* default cache-global */
  const mc_cond_decode_ops *decode;     /* default slo-balance */
  const mc_cond_admit_ops *admit;       /* default early */
  double kvcache_balancing_threshold;   /* default 1.5 */
  double ttft_slo_s;                    /* default 30 */
  double tbt_slo_s;                     /* default 0.1 */
  double decode_time_s;                 /* t_d of the prediction, default 20 */
  double load_limit;                    /* default 1.0 */
  int decode_load_scope;                /* MC_COND_SCOPE_*, default MEAN */
  uint64_t seed;                        /* random policy's seed */
  size_t index_blocks_hint;             /* expected indexed blocks, sizes the table */
  uint64_t max_requests;                /* admitted, not done; default 1,000,000 */
} mc_cond_opts;

/* Fills *O with the defaults above. */
MC_CONDUCTOR_API void mc_cond_opts_init(mc_cond_opts *o);

/* Creates a conductor; MC_EINVAL (message in ERR) for a bad option. */
MC_CONDUCTOR_API int mc_cond_create(const mc_cond_opts *o, mc_cond **out, char *err,
                                    size_t errlen);

/* Frees everything (NULL is fine). */
MC_CONDUCTOR_API void mc_cond_destroy(mc_cond *c);

/* Instance roles (a bit set). A pool holds blocks for others to fetch (the
 * store's global pool) and runs no requests. */
enum mc_cond_role { MC_COND_PREFILL = 1, MC_COND_DECODE = 2, MC_COND_POOL = 4 };

/* Registers instance NAME with ROLES and a copy of profile P; *ID gets its
 * id (0..MC_COND_MAX_INSTANCES-1).  MC_EEXIST for a taken name, MC_ENOSPC
 * when full, MC_EINVAL for a bad name (empty, too long, control bytes), no
 * role, or a profile that cannot predict (block_tokens 0). */
MC_CONDUCTOR_API int mc_cond_add_instance(mc_cond *c, const char *name, unsigned roles,
                                          const mc_cond_profile *p, int *id);

/* Unregisters instance ID: its index entries go, requests on it are
 * released.  MC_ENOENT for an unknown id. */
MC_CONDUCTOR_API int mc_cond_remove_instance(mc_cond *c, int id);

/* The id of instance NAME, or MC_ENOENT. */
MC_CONDUCTOR_API int mc_cond_find_instance(const mc_cond *c, const char *name);

/* Name of instance ID, or NULL. */
MC_CONDUCTOR_API const char *mc_cond_instance_name(const mc_cond *c, int id);

/* Event types of mc_cond_apply_event. */
enum mc_cond_event { MC_COND_EV_STORED = 1, MC_COND_EV_REMOVED = 2 };

/* Applies one event of instance ID's stream: blocks stored or removed.
 * Sequence numbers start at 1 after registration or resync and go up by 1.
 * Returns 0 when applied, 1 for a duplicate (seq <= last applied; ignored),
 * MC_EPROTO for a gap (seq > last + 1): the instance's entries are dropped
 * and it must resync; MC_EAGAIN while a resync is awaited; MC_ENOENT for an
 * unknown instance; MC_EINVAL for a bad type. */
MC_CONDUCTOR_API int mc_cond_apply_event(mc_cond *c, int id, uint64_t seq, int type,
                                         const uint64_t *blocks, size_t n);

/* Replaces everything instance ID holds by BLOCKS (a snapshot as of event
 * SEQ; the next event expected is SEQ + 1) and clears the resync flag. */
MC_CONDUCTOR_API int mc_cond_resync(mc_cond *c, int id, uint64_t seq, const uint64_t *blocks,
                                    size_t n);

/* Longest prefix of BLOCKS (N ids) each instance holds: LEN[id] for every
 * id < MC_COND_MAX_INSTANCES (0 for unused ids).  Returns the longest. */
MC_CONDUCTOR_API uint32_t mc_cond_match(const mc_cond *c, const uint64_t *blocks, size_t n,
                                        uint32_t *len);

/* A request to schedule. */
typedef struct mc_cond_req {
  const uint64_t *blocks;          /* prefix-chained block ids */
  size_t n_blocks;
  uint32_t input_len;              /* prompt tokens */
  uint32_t output_len;             /* expected output tokens (KV reserve) */
  double ttft_slo_s, tbt_slo_s;    /* 0: the conductor's */
  double now_s;                    /* the caller's clock, never going back */
} mc_cond_req;

typedef struct mc_cond_decision {
  int reject;                      /* MC_COND_ADMITTED or a reason */
  uint64_t req_id;                 /* when admitted: for the calls below */
  mc_cond_pchoice prefill;
  mc_cond_dchoice decode;
  double prefill_load, decode_load_now, decode_load_pred;
} mc_cond_decision;

/* Schedules R: fills *D (also when rejected, with the choice that was
 * costed).  An admitted request is accounted on its instances until
 * mc_cond_request_done (or a decode refusal).  When the choice fetches
 * from another instance the blocks are expected to be kept by the prefill
 * instance (hot-block replication; it reports them as stored events).
 * 0, or MC_EINVAL for a bad request (no blocks, more blocks than input
 * tokens, input 0, a non-finite clock), or MC_EBUSY when max_requests
 * admitted requests are not done yet (nothing is accounted then). */
MC_CONDUCTOR_API int mc_cond_schedule(mc_cond *c, const mc_cond_req *r, mc_cond_decision *d);

/* The prefill of REQ_ID finished at NOW_S: its work leaves the queue. */
MC_CONDUCTOR_API int mc_cond_prefill_done(mc_cond *c, uint64_t req_id, double now_s);

/* The decode instance's own check when REQ_ID's KV arrives (the local
 * scheduler's re-check): *REJECT = 0 and the request decodes, or
 * MC_COND_REJ_DECODE_LOCAL and the request is released.  Calls
 * mc_cond_prefill_done first if it was not called. */
MC_CONDUCTOR_API int mc_cond_decode_admit(mc_cond *c, uint64_t req_id, double now_s,
                                          int *reject);

/* REQ_ID finished (or was abandoned): released.  MC_ENOENT if unknown. */
MC_CONDUCTOR_API int mc_cond_request_done(mc_cond *c, uint64_t req_id, double now_s);

/* One instance's state. */
typedef struct mc_cond_inst_stats {
  unsigned roles;
  uint64_t blocks;                 /* blocks indexed for it */
  uint64_t last_seq;
  int needs_resync;
  double queue_s;                  /* T_queue at now_s */
  uint32_t prefill_queued;
  uint32_t decode_batch;           /* decoding */
  uint32_t decode_incoming;        /* admitted, still in prefill */
  double decode_tokens;
  double decode_load;              /* max(TBT / SLO, KV / capacity) */
} mc_cond_inst_stats;

/* Fills *ST for instance ID at time NOW_S; MC_ENOENT if unknown. */
MC_CONDUCTOR_API int mc_cond_instance_stats(const mc_cond *c, int id, double now_s,
                                            mc_cond_inst_stats *st);

/* Conductor-wide counters. */
typedef struct mc_cond_stats {
  uint64_t instances, index_blocks, events, duplicates, gaps, resyncs;
  uint64_t scheduled, admitted, rejected[6];  /* by enum mc_cond_reject */
  uint64_t active;                 /* admitted, not done */
} mc_cond_stats;

/* Fills *ST. */
MC_CONDUCTOR_API void mc_cond_get_stats(const mc_cond *c, mc_cond_stats *st);

/* Mean decode load over the decode instances at NOW_S (max of TBT / SLO
 * and KV / capacity per instance), and the same predicted at time AT_S:
 * requests whose prefill is predicted to end by then are added, those
 * decoding longer than decode_time_s by then removed. */
MC_CONDUCTOR_API double mc_cond_decode_load(const mc_cond *c, double now_s);
MC_CONDUCTOR_API double mc_cond_decode_load_at(const mc_cond *c, double now_s, double at_s);

#ifdef __cplusplus
}
#endif
#endif
