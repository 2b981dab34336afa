/* shm transport: wire format of the endpoint descriptor and remote keys.
 *
 * Both blobs are published in the segment descriptor and come from peers,
 * so decoding is defensive: fixed little-endian fields, a magic and a
 * format version, every length checked, the whole input consumed.  This
 * file has no plugin state so the fuzz target can compile it alone. */
#ifndef MC_SHM_BLOB_H
#define MC_SHM_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define SHM_BLOB_VERSION 1
#define SHM_HOST_ID_MAX 128 /* host_id from init args, bytes */
#define SHM_PATH_MAX 160    /* pool_path carried in an rkey, bytes */

/* Who a peer is: host identity, process identity and a proof handle. */
typedef struct shm_desc {
  char host_id[SHM_HOST_ID_MAX + 1]; /* core's host id, "" if none */
  uint8_t boot_id[16];               /* /proc/sys/kernel/random/boot_id */
  uint64_t ns_net, ns_ipc, ns_pid;   /* namespace inode numbers */
  uint64_t ns_dev;                   /* st_dev of the nsfs inodes */
  uint32_t pid;                      /* in the (shared) pid namespace */
  uint64_t start_time;               /* /proc/<pid>/stat field 22 */
  uint8_t nonce[16];                 /* random per ctx */
  int32_t ident_fd;                  /* memfd holding the nonce, -1 none */
} shm_desc;

enum shm_rkey_kind {
  SHM_RKEY_VM = 1,    /* any memory: process_vm_readv/writev */
  SHM_RKEY_MEMFD = 2, /* inside a memfd pool: map /proc/<pid>/fd/<fd> */
  SHM_RKEY_FILE = 3,  /* inside a file/DAX pool: map path (or the fd) */
};

typedef struct shm_rkey {
  uint32_t kind; /* enum shm_rkey_kind */
  uint32_t pid;  /* owner process */
  uint64_t base; /* registered address in the owner */
  uint64_t len;  /* registered length */
  uint64_t secret;     /* pools: part of the memfd name */
  uint32_t slot;       /* registration table slot */
  uint64_t reg_secret; /* must equal the slot's secret */
  /* pools only */
  uint64_t pool_id;
  uint64_t pool_size; /* bytes of the mapping (memfd size or window) */
  uint64_t file_off;  /* file offset of the mapping start (0 for memfd) */
  uint64_t reg_off;   /* offset of base inside the mapping */
  int32_t fd;         /* owner's fd of the pool */
  uint64_t dev, ino;  /* identity of the backing file */
  char path[SHM_PATH_MAX + 1]; /* file pools: the pool_path, else "" */
} shm_rkey;

/* Encoders: *len in/out; -14 (MC_ENOSPC) with the size needed. */
int shm_desc_encode(const shm_desc *d, void *buf, size_t *len);
int shm_rkey_encode(const shm_rkey *k, void *buf, size_t *len);

/* Decoders: 0, or MC_EPROTO with a short reason in *why (static text). */
int shm_desc_decode(const void *buf, size_t len, shm_desc *d, const char **why);
int shm_rkey_decode(const void *buf, size_t len, shm_rkey *k, const char **why);

#endif
