/* ascend_blob.h - the ascend plugin's blobs: the endpoint descriptor and
 * the remote key (published through the segment descriptor) and the
 * control request an importer sends the exporter (ABI 1.2 ctrl_call).  All
 * come from peers and are parsed defensively.  libc only (tests link it).
 *
 * Descriptor v1: "MCAD" u8 ver u32 pid i32 tgid u8 host_id_len host_id[]
 *   tgid: aclrtDeviceGetBareTgid, the id the runtime whitelists (-1: none).
 * Remote key v1: "MCAK" u8 ver u8 kind u8 flags i32 device u64 base
 *   u64 len char ipc_key[65]
 *   kind 1: NPU memory exported with aclrtIpcMemGetExportKey (ipc_key);
 *   kind 2: host memory, local use only; kind 3: NPU memory without IPC
 *   (runtime without the IPC calls).  flags bit 0: the exporter checks
 *   importers' pids (aclrtIpcMemSetImportPid).
 * Allow request v1: "MCAP" u8 ver i32 tgid char ipc_key[65]
 *   asks the exporter to whitelist tgid for ipc_key; the empty reply is
 *   the answer.
 * Integers little-endian; ipc_key is NUL-terminated printable ASCII. */
#ifndef MC_ASCEND_BLOB_H
#define MC_ASCEND_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define ASC_BLOB_VERSION 1
#define ASC_HOST_ID_MAX 64
#define ASC_IPC_KEY_LEN 65

enum { ASC_KEY_IPC = 1, ASC_KEY_HOST = 2, ASC_KEY_NOIPC = 3 };
#define ASC_KEY_F_PID 1u

typedef struct asc_desc {
  uint32_t pid;
  int32_t tgid;
  char host_id[ASC_HOST_ID_MAX + 1];
} asc_desc;

typedef struct asc_key {
  uint8_t kind, flags;
  int32_t device;
  uint64_t base, len;
  char ipc_key[ASC_IPC_KEY_LEN];
} asc_key;

typedef struct asc_allow {
  int32_t tgid;
  char ipc_key[ASC_IPC_KEY_LEN];
} asc_allow;

#define ASC_DESC_MAX (4 + 1 + 4 + 4 + 1 + ASC_HOST_ID_MAX)
#define ASC_KEY_SIZE (4 + 1 + 1 + 1 + 4 + 8 + 8 + ASC_IPC_KEY_LEN)
#define ASC_ALLOW_SIZE (4 + 1 + 4 + ASC_IPC_KEY_LEN)

/* Encoders return the length, 0 when cap is too small. */
size_t asc_desc_encode(const asc_desc *d, uint8_t *buf, size_t cap);
size_t asc_key_encode(const asc_key *k, uint8_t *buf, size_t cap);
size_t asc_allow_encode(const asc_allow *a, uint8_t *buf, size_t cap);
/* Decoders: 0, or -1 with a static reason in *why. */
int asc_desc_decode(const void *buf, size_t len, asc_desc *d, const char **why);
int asc_key_decode(const void *buf, size_t len, asc_key *k, const char **why);
int asc_allow_decode(const void *buf, size_t len, asc_allow *a, const char **why);

#endif
