/* tcp_test_host.h - the TCP plugin tests' host: the shared fake host
 * (tools/conformance/fake_host.h) with completions counted per token;
 * config values from a "k=v;k=v" string. */
#ifndef MC_TCP_TEST_HOST_H
#define MC_TCP_TEST_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "fake_host.h"
#include "mooncake/transport.h"

#define TH_MAX_TOKENS 65536u

typedef struct th_host {
  mc_fake_host fh;
  mc_host_api api; /* a copy of fh.api: hand &api to init */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int count[TH_MAX_TOKENS];
  int status[TH_MAX_TOKENS];
  uint64_t done, doubles;
  int notifies;
} th_host;

/* dlopen + entry; exits the test on failure.  The typed getters of hosts
 * initialised afterwards read this plugin's params. */
const mc_transport_ops *th_load(const char *path, void **dl);
void th_host_init(th_host *h, const char *name, const char *params);
void th_host_fini(th_host *h);
/* Waits until `n` tokens from `first` completed; 0, or -1 after timeout_ms. */
int th_wait(th_host *h, uint64_t first, uint32_t n, int timeout_ms);
int64_t th_now_ms(void);
/* This process's threads, resident set (KiB) and open fds, from /proc. */
void th_proc_stats(int *threads, long *rss_kb, int *fds);
/* Raises the soft fd limit to the hard one (many-connection tests). */
void th_raise_nofile(void);
void th_sleep_ms(int ms);

#endif
