/* Test fixture of the store client tests: a real mooncake-master on a free
 * loopback port, and segment-holding clients as separate processes
 * (`mc-store mount SIZE`), all dying with the test (PR_SET_PDEATHSIG).
 * Paths come from the environment the meson test sets:
 * MC_STORE_MASTER_BIN and MC_STORE_CLI. */
#ifndef MC_TESTS_STORE_SC_FIXTURE_H
#define MC_TESTS_STORE_SC_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "check.h"
#include "mooncake/store.h"

typedef struct fx_master {
  pid_t pid;
  int port;
  char addr[64];
  char *args[16]; /* extra flags, kept for restarts */
  int nargs;
} fx_master;

/* Starts the master with extra flags (NULL-terminated list) and waits
 * (<= 10 s) until it answers.  Skips the test (77) when the binaries are
 * not configured. */
void fx_master_start(fx_master *m, ...);
/* Kills it with sig and reaps it. */
void fx_master_stop(fx_master *m, int sig);
/* Starts it again on the same port with the same flags. */
void fx_master_restart(fx_master *m);

/* A client process holding a segment: `mc-store mount SIZE`.  Returns its
 * pid once it printed its segment name (into name). */
pid_t fx_holder_start(const fx_master *m, uint64_t size, char *name, size_t len);
/* As fx_holder_start with extra mc-store options (NULL-terminated list,
 * or NULL) before the command, e.g. --ssd-offload-dir DIR. */
pid_t fx_holder_start_ex(const fx_master *m, uint64_t size, char *name, size_t len,
                         const char *const *extra);
void fx_holder_kill(pid_t pid, int sig);

/* A store handle in this process with a segment of seg bytes. */
mc_store *fx_client(const fx_master *m, uint64_t seg);

/* Fills buf with bytes derived from seed. */
void fx_fill(void *buf, size_t n, uint64_t seed);
/* FNV-1a of buf. */
uint64_t fx_hash(const void *buf, size_t n);
/* Milliseconds since an arbitrary point. */
uint64_t fx_ms(void);

#endif
