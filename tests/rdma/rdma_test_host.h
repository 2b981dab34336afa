/* rdma_test_host.h - hosting mc-transport-rdma in a test process without an
 * engine: the shared fake host (tools/conformance/fake_host.h) plus a
 * control channel of its own, routed between test processes over Unix
 * sockets in a test directory (<dir>/<segment>.sock), standing in for the
 * core's handshake-listener channel.  Completions are recorded per token
 * (tokens are indexes < RT_MAX_TOKENS). */
#ifndef MC_RDMA_TEST_HOST_H
#define MC_RDMA_TEST_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "fake_host.h"
#include "mooncake/transport.h"

#define RT_MAX_TOKENS (1u << 20)

typedef struct rt_node {
  mc_fake_host h;
  const mc_transport_ops *ops;
  void *dl, *ctx;
  char name[64], dir[200];
  int lfd;
  pthread_t srv;
  volatile int stop;
  int srv_started;
  /* Completions: status[token], done count, under lock. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int32_t *status;
  uint8_t *seen;
  uint64_t done, dup;
  uint64_t wake_at; /* a waiter wants done >= wake_at: broadcast then only */
} rt_node;

/* Loads the plugin, sets the key/value pairs (NULL-terminated
 * {"key","value",...}), starts the control listener and calls init.
 * Returns init's code (the node is usable for rt_node_fini either way). */
int rt_node_init(rt_node *n, const char *plugin, const char *name, const char *dir,
                 const char *const *kv);
void rt_node_fini(rt_node *n);
/* Marks tokens [from, to) as pending. */
void rt_expect(rt_node *n, uint64_t from, uint64_t to);
/* Waits until `count` completions were recorded in total; 0 or -1 on timeout. */
int rt_wait_done(rt_node *n, uint64_t count, int timeout_ms);
/* Submits all of s[0..cnt) (retrying back-pressure), 0 or the error. */
int rt_submit_all(rt_node *n, void *ep, const mc_slice *s, uint32_t cnt, int timeout_ms);

#endif
