/* test_efa_blob.c - the efa plugin's blob codecs (white box): round trips,
 * ENOSPC sizes, and every truncation and single-bit flip of each blob
 * either refused (MC_EPROTO) or decoded within bounds. */
#include <string.h>

#include "check.h"
#include "efa_blob.h"
#include "mooncake/errors.h"

int main(void) {
  efab_desc d = {.nrails = 2, .addr_format = 2};
  memset(d.secret, 0xab, sizeof d.secret);
  strcpy(d.prov, "tcp;ofi_rxm");
  d.addr_len[0] = 16;
  d.addr_len[1] = 28;
  memset(d.addr[0], 1, 16);
  memset(d.addr[1], 2, 28);
  uint8_t buf[4096];
  size_t len = 4;
  CHECK(efab_desc_encode(&d, buf, &len) == MC_ENOSPC);
  size_t need = len;
  CHECK(efab_desc_encode(&d, buf, &len) == 0 && len == need);
  efab_desc o;
  CHECK(efab_desc_decode(buf, len, &o) == 0);
  CHECK(o.nrails == 2 && o.addr_format == 2 && !strcmp(o.prov, d.prov));
  CHECK(o.addr_len[1] == 28 && !memcmp(o.addr[1], d.addr[1], 28));
  CHECK(!memcmp(o.secret, d.secret, sizeof d.secret));
  for (size_t l = 0; l < len; l++)
    CHECK(efab_desc_decode(buf, l, &o) == MC_EPROTO);
  CHECK(efab_desc_decode(buf, len + 1, &o) == MC_EPROTO);
  for (size_t b = 0; b < len * 8; b++) {
    buf[b / 8] ^= (uint8_t)(1u << (b % 8));
    if (efab_desc_decode(buf, len, &o) == 0)
      CHECK(o.nrails >= 1 && o.nrails <= EFAB_MAX_RAILS && strlen(o.prov) <= EFAB_MAX_PROV);
    buf[b / 8] ^= (uint8_t)(1u << (b % 8));
  }
  d.nrails = 0;
  CHECK(efab_desc_encode(&d, buf, &len) == MC_EINVAL);

  efab_rkey k = {.nrails = 3, .flags = EFAB_RKEY_VIRT, .base = 0x1000, .len = 4096,
                 .key = {1, 2, 0xffffffffffffffffull}};
  len = sizeof buf;
  const uint8_t secret[EFAB_SECRET] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12, 13, 14, 15, 16};
  k.tag = efab_rkey_tag(secret, &k);
  CHECK(efab_rkey_encode(&k, buf, &len) == 0 && len == 24 + 24 + 8);
  efab_rkey ko;
  CHECK(efab_rkey_decode(buf, len, &ko) == 0 && ko.key[2] == k.key[2] && ko.base == 0x1000);
  CHECK(ko.tag == k.tag && efab_rkey_tag(secret, &ko) == ko.tag);
  /* The tag binds every field: any one-bit change of a decodable blob
   * fails it (what import_mem checks), and so does another secret. */
  for (size_t b = 0; b < len * 8; b++) {
    buf[b / 8] ^= (uint8_t)(1u << (b % 8));
    if (efab_rkey_decode(buf, len, &ko) == 0)
      CHECK(efab_rkey_tag(secret, &ko) != ko.tag);
    buf[b / 8] ^= (uint8_t)(1u << (b % 8));
  }
  uint8_t other[EFAB_SECRET];
  memcpy(other, secret, sizeof other);
  other[15] ^= 1;
  CHECK(efab_rkey_decode(buf, len, &ko) == 0 && efab_rkey_tag(other, &ko) != ko.tag);
  /* SipHash-2-4's reference vector: key 00..0f, message 00..0e (15 bytes). */
  uint8_t sk[16], sm[15];
  for (int i = 0; i < 16; i++)
    sk[i] = (uint8_t)i;
  for (int i = 0; i < 15; i++)
    sm[i] = (uint8_t)i;
  CHECK(efab_siphash(sk, sm, 15) == 0xa129ca6149be45e5ull);
  for (size_t l = 0; l < len; l++)
    CHECK(efab_rkey_decode(buf, l, &ko) == MC_EPROTO);
  for (size_t b = 0; b < len * 8; b++) {
    buf[b / 8] ^= (uint8_t)(1u << (b % 8));
    if (efab_rkey_decode(buf, len, &ko) == 0)
      CHECK(ko.len > 0 && ko.base + ko.len >= ko.base && ko.nrails == 3);
    buf[b / 8] ^= (uint8_t)(1u << (b % 8));
  }
  k.base = UINT64_MAX - 10; /* wraps */
  CHECK(efab_rkey_encode(&k, buf, &len) == MC_EINVAL);
  return 0;
}
