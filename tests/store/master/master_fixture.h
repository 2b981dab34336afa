/* Test fixture for mooncake-master: starts the real program on a free
 * loopback port (it picks the port, --rpc_port=0, and prints it), stops
 * or kills it, and talks to it with a raw RPC client (the typed calls of
 * store/common, no client library). */
#ifndef MF_MASTER_FIXTURE_H
#define MF_MASTER_FIXTURE_H

#include <stdint.h>
#include <sys/types.h>

#include "check.h"
#include "store_proto.h"

typedef struct mf_master {
  pid_t pid;
  int port;
  uint64_t view;
  char target[64];
} mf_master;

/* Starts bin with --rpc_address=127.0.0.1 --rpc_port=<port or 0> and the
 * extra arguments (NULL-terminated, may be NULL); waits (10 s) for it to
 * serve.  0 or MC_EIO. */
int mf_start(mf_master *m, const char *bin, int port, const char *const *extra);
/* Sends sig (SIGTERM: clean stop, SIGKILL: crash) and reaps it; returns
 * the exit status as from waitpid (or -1). */
int mf_stop(mf_master *m, int sig);

typedef struct mf_client {
  mc_rpc_channel *ch;
  uint8_t id[MCS_CLIENT_ID_LEN];
  uint64_t view;
} mf_client;

/* A client with a fresh random id on target; pings once (registers). */
void mf_client_open(mf_client *c, const char *target);
void mf_client_close(mf_client *c);

/* One call; CHECKs the RPC itself succeeded and returns the response. */
void *mf_call(mf_client *c, const char *call, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *desc);
#define MF_FREE(msg) protobuf_c_message_free_unpacked((ProtobufCMessage *)(msg), NULL)

/* Typed shortcuts; each returns the ErrorCode. */
int mf_ping(mf_client *c, int *status);
int mf_mount(mf_client *c, const uint8_t *sid, const char *name, const char *host,
             uint64_t base, uint64_t size);
int mf_unmount(mf_client *c, const uint8_t *sid);
/* PutStart (upsert 0) / UpsertStart (1); *resp (may be NULL) keeps the answer. */
int mf_put_start(mf_client *c, const char *key, uint64_t size, uint32_t replicas,
                 const char *const *preferred, int npref, int upsert,
                 Mcstore__PutStartResponse **resp);
int mf_put_start_cfg(mf_client *c, const char *key, uint64_t size,
                     const Mcstore__ReplicateConfig *cfg, int upsert,
                     Mcstore__PutStartResponse **resp);
/* "PutEnd", "PutRevoke", "UpsertEnd", "UpsertRevoke", "Remove". */
int mf_key_call(mf_client *c, const char *call, const char *key, int force);
/* PutStart + PutEnd. */
int mf_put(mf_client *c, const char *key, uint64_t size, uint32_t replicas);
int mf_get(mf_client *c, const char *key, Mcstore__GetReplicaListResponse **resp);
int mf_exist(mf_client *c, const char *key, int *exists);
Mcstore__GetStatsResponse *mf_stats(mf_client *c);

/* A segment id from a small number (readable in failures). */
void mf_sid(uint8_t *sid, int n);

#endif
