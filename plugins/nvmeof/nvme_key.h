/* nvme_key.h - the nvmeof plugin's blobs: the remote key of a registration
 * and the endpoint descriptor.  Both travel through metadata from peers, so
 * decoding is defensive: every length is checked against the blob, strings
 * must be NUL-free, and a 64-bit checksum over the whole key refuses keys
 * that were corrupted or edited (it is an integrity check, not a secret:
 * who may read a file is decided by the file system on the host that opens
 * it).  Little-endian, versioned. */
#ifndef MC_NVME_KEY_H
#define MC_NVME_KEY_H

#include <stddef.h>
#include <stdint.h>

#define NV_KEY_VERSION 1
#define NV_KIND_FILE 1 /* an MC_MEM_FILE range */
#define NV_KIND_CPU 2  /* host memory: local use only, never imported */
#define NV_KIND_GPU 3  /* GPU memory (cuFile): local use only, never imported */
#define NV_KEY_RO 1u   /* flags: registered read-only */
#define NV_NQN_MAX 224 /* NVMe NQNs are at most 223 bytes */
#define NV_PATH_MAX 4096

typedef struct nv_key {
  uint8_t kind;         /* NV_KIND_* */
  uint16_t flags;       /* NV_KEY_RO */
  uint64_t reg_id;      /* random per registration (revocation in-process) */
  uint64_t host_hash;   /* FNV-1a of the owner's host_id */
  uint32_t pid;         /* owner process */
  uint32_t nsid;        /* NVMe namespace id, 0: not an NVMe namespace */
  uint64_t addr, len;   /* the registered range as the owner addresses it */
  uint64_t file_offset; /* file offset of addr */
  uint64_t dev, ino;    /* st_dev/st_ino (st_rdev for block devices) */
  char nqn[NV_NQN_MAX]; /* subsystem NQN, "" when none */
  char path[NV_PATH_MAX];
} nv_key;

/* FNV-1a 64 of n bytes. */
uint64_t nv_fnv64(const void *p, size_t n);

/* Encodes k into buf (cap bytes); returns the length, or the size needed
 * (> cap) when it does not fit. */
size_t nv_key_encode(const nv_key *k, uint8_t *buf, size_t cap);

/* Decodes a key; 0, or MC_EPROTO for anything malformed (short, bad magic,
 * version, lengths, embedded NUL, checksum). */
int nv_key_decode(const uint8_t *buf, size_t len, nv_key *k);

/* Endpoint descriptor: magic, version, the host hash. */
#define NV_DESC_LEN 16
void nv_desc_encode(uint64_t host_hash, uint8_t out[NV_DESC_LEN]);
int nv_desc_decode(const uint8_t *buf, size_t len, uint64_t *host_hash);

#endif
