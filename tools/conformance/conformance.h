/* mc-transport-conformance: what the check files share.
 *
 * The program is split by subject: fake_host.c (the host API handed to the
 * plugin; a library the tests share), accounting.c (this program's own
 * malloc and mmap, for the leak checks), common.c (reporting, the token
 * tracker, loading the plugin, contexts, transfers), check_static.c (the
 * ABI table and params), check_data.c (rails, blobs, data, back-pressure,
 * notify, cancel), check_access.c (refusals and the hostile initiator),
 * check_lifecycle.c (fini, dead peers, leaks, reload), check_ctrl.c (the
 * ABI 1.2 control channel's ctrl_handle) and main.c. */
#ifndef MC_CONFORMANCE_H
#define MC_CONFORMANCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_host.h"
#include "mooncake/errors.h"
#include "mooncake/transport.h"

#define MAX_TOKENS (1u << 18)
#define BUF_SIZE ((size_t)8 << 20)
#define WAIT_MS 60000
/* Slices refused or never completed: one_slice's hang value. */
#define HANG 1

typedef struct completion {
  atomic_int count;
  int status;
  uint64_t bytes;
} completion;

typedef struct tracker {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  completion *c;
  uint64_t next;      /* next token to hand out */
  uint64_t done;      /* completions seen */
  uint64_t doubles;   /* tokens completed twice */
  uint64_t strays;    /* unknown tokens */
  char notify_peer[MC_NAME_MAX];
  char notify_msg[MC_NOTIFY_MAX];
  size_t notify_len;
  int notifies;
} tracker;

typedef struct plugin {
  void *dl;
  const mc_transport_ops *raw; /* the plugin's own table */
  const mc_transport_ops *ops; /* &copy */
  mc_transport_ops copy;       /* min(struct_size, sizeof) bytes, rest zero */
} plugin;

/* One context of the plugin with its host table.  A plugin without
 * MC_CAP_OWN_THREADS gets a thread calling progress(), as the core's
 * progress worker would, from ctx_init until ctx_fini. */
typedef struct tctx {
  mc_fake_host host; /* host.name: the segment name */
  int host_on;
  const plugin *p;
  void *ctx;
  uint8_t desc[MC_DESC_MAX];
  size_t desc_len;
  pthread_t prog;
  atomic_int prog_stop;
  int prog_on;
} tctx;

typedef struct reg {
  void *mem;
  uint8_t rkey[MC_RKEY_MAX];
  size_t rkey_len;
} reg;

typedef struct pair {
  const plugin *p;
  tctx *a, *b;      /* a: target, b: initiator */
  uint8_t *abuf, *bbuf;
  reg ra, rb;
  void *ep;         /* b -> a */
  void *rmem;       /* a's buffer imported on b */
  uint32_t nrails;
} pair;

typedef struct usage {
  long long bytes, blocks, mapped;
  int fds, threads;
} usage;

/* ---- common.c ---- */
extern int n_fail, n_pass, n_skip, verbose;
/* File mode: the plugin reaches MC_MEM_FILE targets only (nvmeof).  Target
 * buffers are then MAP_SHARED mappings of files in $MC_CONFORMANCE_FILE_DIR
 * (default /dev/shm), registered as MC_MEM_FILE ranges, so the checks read
 * and compare them as memory while the plugin moves file bytes. */
extern int file_mode;
/* A target buffer: malloc, or in file mode a mapped temporary file. */
void *target_alloc(size_t n);
void target_free(void *p);
extern tracker T;

__attribute__((format(printf, 2, 3))) void pass(const char *name, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void fail(const char *name, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void skip(const char *name, const char *fmt, ...);
/* 1 (and a SKIP line with the reason) when MC_CONFORMANCE_SKIP names the
 * check: "name,name:reason;name:reason". */
int skip_listed(const char *name);
int64_t now_ms(void);
void sleep_ms(int ms);
int count_dir(const char *path);
void params_load(void);
uint64_t tokens(uint32_t n);
int wait_tokens(uint64_t first, uint32_t n, int timeout_ms);
int plugin_open(const char *path, plugin *p, int quiet);
int ctx_init(const plugin *p, tctx *t, const char *segment);
int ctx_fini(tctx *t);
uint32_t rail_count(const plugin *p, void *ctx);
/* Registers [addr, +len): as MC_MEM_FILE when it lies in a target_alloc
 * file mapping, else as host memory. */
int do_register(const plugin *p, tctx *t, void *addr, size_t len, reg *r);
/* Always as host memory (the local side of a file-mode loopback). */
int do_register_cpu(const plugin *p, tctx *t, void *addr, size_t len, reg *r);
int submit_all(const plugin *p, void *ctx, void *ep, mc_slice *s, uint32_t n,
                      uint64_t *partial);
void fill_pattern(uint8_t *b, size_t n, uint32_t seed);
int xfer(pair *x, uint32_t op, size_t loff, size_t roff, size_t len, size_t slice,
                int *first_err);
int one_slice_at(pair *x, void *rmem, uint32_t op, uint64_t laddr, uint64_t raddr,
                        uint64_t len, int *submit_err, int wait_ms);
int one_slice(pair *x, void *rmem, uint32_t op, uint64_t raddr, uint64_t len,
                     int *submit_err);
uint32_t flood(const plugin *p, void *ctx, void *ep, void *lmem, uint8_t *lbuf,
                      void *rmem, uint8_t *rbuf, uint32_t nrails, uint32_t n, uint64_t *t0);
int exactly_once(uint64_t t0, uint32_t n, int *st_ok, int *st_err);

/* ---- accounting.c ---- */
void usage_now(usage *u);
void threads_settle(int want);

/* ---- the checks ---- */
int check_abi(const char *path, const plugin *p);
void check_rails(const plugin *p, tctx *a, uint32_t *nrails);
void check_desc(const plugin *p, tctx *a);
void check_blob_fuzz(const plugin *p, tctx *b, const tctx *a, const reg *ra,
                            uint64_t base, uint64_t len);
void check_loopback(pair *x);
void check_backpressure(pair *x);
void check_notify(pair *x);
void check_cancel(pair *x);
void check_refusals(pair *x);
void check_hostile(pair *x);
void check_ctrl(pair *x);
void check_fini_inflight(const plugin *p, uint8_t *abuf, reg *ra, tctx *a);
void check_target_gone(const plugin *p);
void check_leaks(const plugin *p, int keep);
void check_reload(const char *path);

#endif
