/* hip_blob.h - the hip plugin's two blobs, which travel through the
 * segment descriptor to peers and are parsed defensively there (every
 * length checked, every field validated, nothing trusted).  libc only, so
 * tests/hip and tests/fuzz link it without the plugin.
 *
 * Endpoint descriptor (local_desc), version 1:
 *   "MCHD" u8 version u32 pid u8 host_id_len host_id[host_id_len]
 * Remote key (register_mem), version 1:
 *   "MCHK" u8 version u8 kind i32 device u64 base u64 len u64 alloc_off
 *   u8 handle[64]
 * kind 1: device memory exported with hipIpcGetMemHandle (handle is the
 * allocation's IPC handle; base is the registered address, alloc_off its
 * offset from the allocation's start).  kind 2: host memory registered for
 * local use only; peers cannot import it (MC_ENOTSUP).  Integers are
 * little-endian. */
#ifndef MC_HIP_BLOB_H
#define MC_HIP_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define HIP_BLOB_VERSION 1
#define HIP_HOST_ID_MAX 64
#define HIP_HANDLE_SIZE 64

enum { HIP_KEY_DEVICE = 1, HIP_KEY_HOST = 2 };

typedef struct hip_desc {
  uint32_t pid;
  char host_id[HIP_HOST_ID_MAX + 1]; /* NUL-terminated */
} hip_desc;

typedef struct hip_key {
  uint8_t kind; /* HIP_KEY_* */
  int32_t device;
  uint64_t base, len, alloc_off;
  uint8_t handle[HIP_HANDLE_SIZE];
} hip_key;

#define HIP_DESC_MAX (4 + 1 + 4 + 1 + HIP_HOST_ID_MAX)
#define HIP_KEY_SIZE (4 + 1 + 1 + 4 + 8 + 8 + 8 + HIP_HANDLE_SIZE)

/* Encodes into buf (cap bytes); returns the length, or 0 when cap is too
 * small. */
size_t hip_desc_encode(const hip_desc *d, uint8_t *buf, size_t cap);
size_t hip_key_encode(const hip_key *k, uint8_t *buf, size_t cap);
/* Decodes; 0, or -1 with a static reason in *why. */
int hip_desc_decode(const void *buf, size_t len, hip_desc *d, const char **why);
int hip_key_decode(const void *buf, size_t len, hip_key *k, const char **why);

#endif
