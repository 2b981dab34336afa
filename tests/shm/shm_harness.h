/* Test harness for the shm plugin at ABI level: dlopens the .so, hosts it
 * with the fake host shared with mc-transport-conformance
 * (tools/conformance/fake_host.h: options, typed getters, logging) and
 * keeps a log of the completions. */
#ifndef MC_TEST_SHM_HARNESS_H
#define MC_TEST_SHM_HARNESS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "fake_host.h"
#include "mooncake/transport.h"

#define H_MAX_DONE 4096

typedef struct h_done {
  uint64_t token;
  int status;
  uint64_t bytes;
  int32_t verr;
} h_done;

typedef struct h_plugin {
  void *dl;
  const mc_transport_ops *ops;
  mc_fake_host host;
  void *ctx;
  /* Completions arrive from submit or from the plugin's copy workers. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  h_done done[H_MAX_DONE];
  int ndone;
} h_plugin;

/* Loads the plugin (no init).  Exits on failure. */
void h_load(h_plugin *h, const char *path);
/* Sets an option for the next init (copied). */
void h_opt(h_plugin *h, const char *key, const char *val);
/* init with segment name; returns init's rc. */
int h_init(h_plugin *h, const char *segment);
void h_fini(h_plugin *h);
void h_unload(h_plugin *h);

/* Encodes this ctx's descriptor into buf; returns its length. */
size_t h_desc(h_plugin *h, void *buf, size_t cap);
/* Registers; returns rc; rkey/len out. */
int h_register(h_plugin *h, void *addr, uint64_t len, void **mem, void *rkey,
               size_t *rkey_len);
/* One slice through submit; waits (10 s at most) for its completion and
 * returns its status.  Clears the completion log. */
int h_xfer(h_plugin *h, void *ep, uint32_t op, void *lmem, void *laddr,
           void *rmem, uint64_t raddr, uint64_t len);
/* Waits until at least n completions are logged; 0, or -1 after ms. */
int h_wait(h_plugin *h, int n, int ms);
/* Completions logged so far (locked read). */
int h_ndone(h_plugin *h);
/* How many completions carry this token. */
int h_count(h_plugin *h, uint64_t token);
/* The log entry of this token (NULL if none). */
const h_done *h_find(h_plugin *h, uint64_t token);
/* Empties the completion log. */
void h_clear(h_plugin *h);

/* Pipe messages between a test process and its child. */
void h_send(int fd, const void *buf, uint32_t len);
uint32_t h_recv(int fd, void *buf, uint32_t cap);

#endif
