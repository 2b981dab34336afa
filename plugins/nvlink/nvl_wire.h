/* nvl_wire.h - the nvlink plugin's two blobs, both little-endian with a
 * magic and a format version, decoded defensively (they come from peers):
 *
 *   endpoint descriptor (local_desc): who and where the engine is, for the
 *     same-host check (boot id, pid namespace) and for watching the peer
 *     process (pid);
 *   remote key (register_mem): the CUDA IPC handle of the allocation that
 *     holds the registered range, and where the range sits in it. */
#ifndef MC_NVL_WIRE_H
#define MC_NVL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define NVL_WIRE_VERSION 1
#define NVL_HOST_ID_MAX 64 /* bytes of host_id kept, NUL included */
#define NVL_HANDLE_SIZE 64 /* CU_IPC_HANDLE_SIZE */

/* Descriptor flags. */
#define NVL_DESC_FABRIC 1u /* every device reports fabric handle support */

typedef struct nvl_desc {
  uint32_t flags;
  uint32_t pid, uid;
  uint64_t pidns; /* inode of /proc/self/ns/pid, 0 when unknown */
  uint32_t ndev;
  char host_id[NVL_HOST_ID_MAX];
} nvl_desc;

/* Remote key kinds. */
#define NVL_RKEY_IPC 1 /* legacy cuIpcGetMemHandle handle */

typedef struct nvl_rkey {
  uint32_t kind;
  int32_t device;       /* owner's device ordinal */
  uint32_t pid;         /* owner process */
  uint64_t addr, len;   /* the registered range (owner's addresses) */
  uint64_t alloc_base;  /* the allocation holding it (owner's addresses) */
  uint64_t alloc_size;
  uint8_t handle[NVL_HANDLE_SIZE];
} nvl_rkey;

#define NVL_DESC_SIZE 96 /* 4 magic, 2 version, 2 pad, 4 flags, 4 pid, 4 uid, 8 pidns, 4 ndev, 64 host id */
#define NVL_RKEY_SIZE 112 /* 4 magic, 2 version, 2 kind, 4 device, 4 pid, 4x8 ranges, 64 handle */

/* Encoders: *len in/out, MC_ENOSPC with the size needed (buf may be NULL
 * for a size query). */
int nvl_desc_encode(const nvl_desc *d, void *buf, size_t *len);
int nvl_rkey_encode(const nvl_rkey *k, void *buf, size_t *len);
/* Decoders: 0, or MC_EPROTO with a static reason in *why (wrong size,
 * magic or version, unterminated host id, inconsistent ranges). */
int nvl_desc_decode(const void *buf, size_t len, nvl_desc *d, const char **why);
int nvl_rkey_decode(const void *buf, size_t len, nvl_rkey *k, const char **why);

#endif
