/* mooncake-master (also installed as mooncake_master): the Mooncake Store
 * master.  Settings: master_config.h (--help).  Prints
 *   mooncake-master: listening on ADDRESS:PORT view VIEW
 * on stdout once it serves, and stops cleanly on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master.h"
#include "master_config.h"
#include "mooncake/errors.h"
#include "rpc/rpc.h"
#include "service.h"

int main(int argc, char **argv) {
  mcs_master_config cfg;
  char err[512] = "";
  mcs_config_defaults(&cfg);
  int rc = mcs_config_parse(&cfg, argc, argv, stdout, err, sizeof err);
  if (rc == 1)
    return 0;
  if (rc) {
    fprintf(stderr, "mooncake-master: %s\n", err);
    return 2;
  }
  /* Block the stop signals before any thread starts: the main thread
   * waits for them with sigwait. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  mcs_master *m;
  rc = mcs_master_create(&cfg, &m);
  if (rc) {
    fprintf(stderr, "mooncake-master: %s\n",
            rc == MC_EIO || rc == MC_EINVAL
                ? "auth_token_file: cannot read a non-empty token of at most 256 bytes"
                : mc_strerror(rc));
    return 1;
  }
  char addr[160];
  snprintf(addr, sizeof addr, strchr(cfg.rpc_address, ':') ? "[%s]:%d" : "%s:%d",
           cfg.rpc_address, cfg.rpc_port);
  mc_rpc_server *srv = NULL;
  int port = 0;
  rc = mc_rpc_server_create(addr, &srv);
  if (!rc)
    rc = mcs_service_register(srv, m);
  if (!rc)
    rc = mcs_master_start(m);
  int nthreads = cfg.rpc_thread_num;
  if (nthreads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = n < 1 ? 1 : n > 16 ? 16 : (int)n;
  }
  if (!rc && (rc = mc_rpc_server_start(srv, nthreads, &port)) != 0)
    fprintf(stderr, "mooncake-master: cannot listen on %s (port in use?)\n", addr);
  else if (rc)
    fprintf(stderr, "mooncake-master: start failed: %s\n", mc_strerror(rc));
  if (rc) {
    mc_rpc_server_destroy(srv);
    mcs_master_destroy(m);
    return 1;
  }
  printf("mooncake-master: listening on %s:%d view %llu\n", cfg.rpc_address, port,
         (unsigned long long)m->view_version);
  fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  fprintf(stderr, "mooncake-master: signal %d, stopping\n", sig);
  mc_rpc_server_destroy(srv);
  mcs_master_destroy(m);
  return 0;
}
