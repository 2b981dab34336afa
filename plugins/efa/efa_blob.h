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
 * Remote key, version 2:
 *   "MCFK" u8 version u8 nrails u8 flags u8 0
 *   u64 base u64 len             the registered range
 *   nrails x u64 key             one libfabric key per rail (domain)
 *   u64 tag                      SipHash-2-4 of every byte before it, keyed
 *                                by the target's 16-byte descriptor secret
 *   flags bit 0: the target's provider addresses by virtual address
 *   (FI_MR_VIRT_ADDR); otherwise RMA addresses are offsets from base.
 *   Why the tag: with offset addressing the initiator computes the offset
 *   from base, so a blob whose base was changed would move an access to
 *   other bytes of the registration (the target's provider bounds it only
 *   by the registration).  import_mem recomputes the tag with the secret
 *   of the peer's descriptor and refuses any blob that differs. */
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
  uint64_t tag; /* efab_rkey_tag of the fields above */
} efab_rkey;

/* Size of an encoded remote key of nrails rails. */
#define EFAB_RKEY_LEN(nrails) (32 + 8 * (size_t)(nrails))

/* Encoders: *len in/out; MC_ENOSPC with the size needed; MC_EINVAL when
 * the struct holds something the format cannot carry. */
int efab_desc_encode(const efab_desc *d, void *buf, size_t *len);
int efab_rkey_encode(const efab_rkey *k, void *buf, size_t *len);
/* Decoders: 0, or MC_EPROTO for anything malformed (short, long, bad magic
 * or version, zero or too many rails, lengths past the end, trailing
 * bytes, an unprintable provider name, a range that wraps). */
int efab_desc_decode(const void *buf, size_t len, efab_desc *d);
int efab_rkey_decode(const void *buf, size_t len, efab_rkey *k);
/* The tag of k: SipHash-2-4 under the 16-byte secret of every field but
 * tag, as encoded.  Callers compare it with k->tag. */
uint64_t efab_rkey_tag(const uint8_t secret[EFAB_SECRET], const efab_rkey *k);
/* SipHash-2-4 of msg under a 16-byte key (exposed for the tests). */
uint64_t efab_siphash(const uint8_t key[16], const void *msg, size_t len);

#endif
