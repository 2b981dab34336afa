/* Test fixture: real etcd servers (Debian etcd-server) on free loopback
 * ports with data in a temp dir.  Members die with the test process
 * (PR_SET_PDEATHSIG), so a crashed or timed-out test leaves no etcd
 * behind; etcd_cluster_destroy kills them and removes the temp dir. */
#ifndef MC_ETCD_FIXTURE_H
#define MC_ETCD_FIXTURE_H

#include <sys/types.h>

#define ETCD_MAX_MEMBERS 3

typedef struct etcd_member {
  pid_t pid; /* 0 when stopped */
  int client_port, peer_port;
  char name[16];
  char dir[300];
} etcd_member;

typedef struct etcd_cluster {
  int n;
  etcd_member m[ETCD_MAX_MEMBERS];
  char tmp[256];
  char endpoints[256]; /* "127.0.0.1:p1,127.0.0.1:p2,..." */
  char url[300];       /* "etcd://" + endpoints */
} etcd_cluster;

/* Starts an n-member cluster and waits (<= 20 s) until it serves writes.
 * Returns 0, or -1 if etcd is not installed (the test then skips with exit
 * code 77); aborts on other failures. */
int etcd_cluster_start(etcd_cluster *c, int n);
/* Stops member i with sig (SIGKILL/SIGTERM) and reaps it. */
void etcd_member_stop(etcd_cluster *c, int i, int sig);
/* Restarts a stopped member on the same ports; wipe != 0 deletes its data
 * first (a brand-new single-member cluster, only valid when n == 1). */
void etcd_member_start(etcd_cluster *c, int i, int wipe);
/* Waits (<= timeout_ms) until the cluster serves a write; 0 or -1. */
int etcd_cluster_wait_ready(etcd_cluster *c, int timeout_ms);
void etcd_cluster_destroy(etcd_cluster *c);

#endif
