/* tcp_test_host.h - a minimal mc_host_api for the TCP plugin tests: loads
 * the plugin with dlopen, records completions by token, takes per-key
 * config values from a "k=v;k=v" string. */
#ifndef MC_TCP_TEST_HOST_H
#define MC_TCP_TEST_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "mooncake/transport.h"

#define TH_MAX_TOKENS 65536u

typedef struct th_host {
  mc_host_api api;
  const char *name;
  const char *params; /* "k=v;k=v" or NULL */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int count[TH_MAX_TOKENS];
  int status[TH_MAX_TOKENS];
  uint64_t done, doubles;
  int notifies;
  char vals[16][128];
  int nvals;
} th_host;

/* dlopen + entry; exits the test on failure. */
const mc_transport_ops *th_load(const char *path, void **dl);
void th_host_init(th_host *h, const char *name, const char *params);
void th_host_fini(th_host *h);
/* Waits until `n` tokens from `first` completed; 0, or -1 after timeout_ms. */
int th_wait(th_host *h, uint64_t first, uint32_t n, int timeout_ms);
int64_t th_now_ms(void);
void th_sleep_ms(int ms);

#define TH_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#endif
