/* mc-store-bench: the same put/get workload against Mooncake Store and,
 * with --baseline redis, against a local redis-server (SET/GET through
 * hiredis), each client a process of its own. */
#ifndef MC_SBENCH_H
#define MC_SBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SB_MAX_CLIENTS 64
#define SB_MAX_LAT 200000 /* latency samples kept per client and phase */

typedef struct sb_opts {
  uint64_t sizes[8];
  int nsizes;
  int clients[8];
  int nclients;
  double duration;      /* seconds per phase */
  uint64_t segment;     /* bytes each store client contributes */
  const char *master;   /* NULL: start one */
  const char *master_bin;
  int redis;            /* --baseline redis */
  int json;
  int zero_copy;        /* store: put_from/get_into */
} sb_opts;

/* One backend: a client connection in a worker process. */
typedef struct sb_backend {
  const char *name;
  void *(*open)(const sb_opts *o, const char *addr, uint64_t value_size);
  int (*put)(void *ctx, const char *key, const void *v, size_t n);
  int64_t (*get)(void *ctx, const char *key, void *buf, size_t n);
  /* A buffer of n bytes the backend moves data from/to best (registered
   * memory for the store), or NULL for malloc. */
  void *(*buffer)(void *ctx, size_t n);
  void (*close)(void *ctx);
  /* The last failure's text (NULL: none kept). */
  const char *(*last_error)(void);
  /* Drops every key (NULL: not needed). */
  void (*flush)(void *ctx);
} sb_backend;

extern const sb_backend sb_store_backend;
extern const sb_backend sb_redis_backend;

/* What one client reports for one phase. */
typedef struct sb_result {
  uint64_t ops, errors, bad;  /* bad: a value that did not check */
  double secs, cpu;           /* wall and CPU seconds of the phase */
  uint32_t nlat;              /* samples that follow, in microseconds (float) */
} sb_result;

/* A free TCP port on 127.0.0.1 (bind to 0 and read it back); 0 on error. */
int sb_free_port(void);
/* Waits until 127.0.0.1:port accepts a connection, at most timeout_ms. */
int sb_wait_port(int port, int timeout_ms);
/* Starts argv[0] with argv, dying with this process; its output to
 * /dev/null unless verbose.  Returns the pid or -1. */
pid_t sb_spawn(char *const argv[]);
void sb_kill(pid_t pid);
/* CPU seconds of this process so far (all threads). */
double sb_cpu_self(void);
double sb_now(void);
/* "4K" -> 4096; 0 when bad. */
uint64_t sb_parse_size(const char *s);

#endif
