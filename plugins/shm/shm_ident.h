/* shm transport: who we are, and whether a peer shares our host.
 *
 * "Same host" here means: the peer's memory is reachable from this process
 * without a network.  That needs the same kernel (boot id), the same pid
 * namespace (its pid means the same process to us, for /proc/<pid>/fd and
 * process_vm_*), and we also require the same network and IPC namespaces so
 * a container that is a separate "host" on the network is never merged with
 * ours.  connect() then proves it: the peer's nonce is read back through
 * /proc/<pid>/fd/<ident_fd>, which only works for a process in our pid
 * namespace that really holds that memfd. */
#ifndef MC_SHM_IDENT_H
#define MC_SHM_IDENT_H

#include <stddef.h>

#include "shm_blob.h"

/* Fills d with this process's identity: boot id, namespaces, pid, start
 * time and host_id (may be NULL).  nonce and ident_fd are the caller's.
 * 0, or MC_EIO with *why naming the file that could not be read. */
int shm_ident_self(shm_desc *d, const char *host_id, const char **why);

/* Why the peer is not on our host, or NULL when its identity matches. */
const char *shm_ident_mismatch(const shm_desc *self, const shm_desc *peer);

/* Start time (clock ticks since boot) of pid; 0 if it does not exist. */
uint64_t shm_ident_start_time(uint32_t pid);

/* Reads the peer's ident memfd through /proc and compares the nonce.
 * 0 proven, *fd open on the memfd (the caller closes it); MC_EACCES
 * unreadable (permissions); MC_EPEER mismatch or gone.  errbuf gets the
 * reason. */
int shm_ident_prove(const shm_desc *peer, int *fd, char *errbuf, size_t errlen);

/* Current value of /proc/sys/kernel/yama/ptrace_scope, or "absent (no
 * Yama)" into buf. */
void shm_ident_ptrace_scope(char *buf, size_t len);

#endif
