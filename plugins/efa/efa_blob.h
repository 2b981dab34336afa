/* efa_blob.h - the efa plugin's two blobs: the endpoint descriptor
 * (local_desc, parsed by a peer's connect) and the remote key
 * (register_mem, parsed by a peer's import_mem).  Both come from untrusted
 * peers, so the decoders check every length and count before reading; both
 * carry a magic and a format version.  Integers are little-endian.
 *
 * Descriptor, version 1:
 *   "MCFD" u8 version u8 nrails u16 addr_format
 *   u8 secret[16]                the target's notification secret
 *   u8 provlen, provider name    (1..EFAB_MAX_PROV bytes)
 *   nrails x { u16 len, address bytes (1..EFAB_MAX_ADDR) }  fi_getname
 * Remote key, version 1:
 *   "MCFK" u8 version u8 nrails u8 flags u8 0
 *   u64 base u64 len             the registered range
 *   nrails x u64 key             one libfabric key per rail (domain)
 *   flags bit 0: the target's provider addresses by virtual address
 *   (FI_MR_VIRT_ADDR); otherwise RMA addresses are offsets from base. */
#ifndef MC_EFA_BLOB_H
#define MC_EFA_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define EFAB_MAX_RAILS 16u
#define EFAB_MAX_ADDR 192u
#define EFAB_MAX_PROV 64u
#define EFAB_SECRET 16u
#define EFAB_RKEY_VIRT 1u

typedef struct efab_desc {
  uint32_t nrails;
  uint16_t addr_format;
  uint8_t secret[EFAB_SECRET];
  char prov[EFAB_MAX_PROV + 1];
  uint16_t addr_len[EFAB_MAX_RAILS];
  uint8_t addr[EFAB_MAX_RAILS][EFAB_MAX_ADDR];
} efab_desc;

typedef struct efab_rkey {
  uint32_t nrails;
  uint32_t flags;
  uint64_t base, len;
  uint64_t key[EFAB_MAX_RAILS];
} efab_rkey;

/* Encoders: *len in/out; MC_ENOSPC with the size needed; MC_EINVAL when
 * the struct holds something the format cannot carry. */
int efab_desc_encode(const efab_desc *d, void *buf, size_t *len);
int efab_rkey_encode(const efab_rkey *k, void *buf, size_t *len);
/* Decoders: 0, or MC_EPROTO for anything malformed (short, long, bad magic
 * or version, zero or too many rails, lengths past the end, trailing
 * bytes, an unprintable provider name, a range that wraps). */
int efab_desc_decode(const void *buf, size_t len, efab_desc *d);
int efab_rkey_decode(const void *buf, size_t len, efab_rkey *k);

#endif
