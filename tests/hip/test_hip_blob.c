/* The hip plugin's blob codec (plugins/hip/hip_blob.c): round trips, and
 * every truncation, every single-byte change and random bytes are either
 * refused or decode to values that pass the decoder's own checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hip_blob.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint8_t)rng;
}

int main(void) {
  hip_desc d = {.pid = 4242};
  snprintf(d.host_id, sizeof d.host_id, "%s", "0b4f1c2e-5a6d-4e7f-8a9b-0c1d2e3f4a5b");
  uint8_t buf[512];
  size_t n = hip_desc_encode(&d, buf, sizeof buf);
  CHECK(n > 0 && n <= HIP_DESC_MAX);
  CHECK_EQ_INT(hip_desc_encode(&d, buf, n - 1), 0);
  hip_desc d2;
  const char *why = NULL;
  CHECK_EQ_INT(hip_desc_decode(buf, n, &d2, &why), 0);
  CHECK_EQ_INT(d2.pid, 4242);
  CHECK_STR(d2.host_id, d.host_id);
  for (size_t cut = 0; cut < n; cut++)
    CHECK_EQ_INT(hip_desc_decode(buf, cut, &d2, &why), -1);
  CHECK_EQ_INT(hip_desc_decode(NULL, 0, &d2, &why), -1);
  buf[n] = 'x'; /* a trailing byte */
  CHECK_EQ_INT(hip_desc_decode(buf, n + 1, &d2, &why), -1);
  buf[10] = '\n'; /* an unprintable host id */
  CHECK_EQ_INT(hip_desc_decode(buf, n, &d2, &why), -1);

  hip_key k = {.kind = HIP_KEY_DEVICE, .device = 3, .base = 0x7f0000001000ull, .len = 1 << 20,
               .alloc_off = 4096};
  for (int i = 0; i < HIP_HANDLE_SIZE; i++)
    k.handle[i] = (uint8_t)(i * 7);
  n = hip_key_encode(&k, buf, sizeof buf);
  CHECK_EQ_INT(n, HIP_KEY_SIZE);
  CHECK(n <= 256); /* MC_RKEY_MAX */
  hip_key k2;
  CHECK_EQ_INT(hip_key_decode(buf, n, &k2, &why), 0);
  CHECK(k2.kind == k.kind && k2.device == 3 && k2.base == k.base && k2.len == k.len &&
        k2.alloc_off == 4096 && !memcmp(k2.handle, k.handle, HIP_HANDLE_SIZE));
  for (size_t cut = 0; cut < n; cut++)
    CHECK_EQ_INT(hip_key_decode(buf, cut, &k2, &why), -1);
  /* Forged ranges and kinds. */
  hip_key f = k;
  f.len = 0;
  hip_key_encode(&f, buf, sizeof buf);
  CHECK_EQ_INT(hip_key_decode(buf, n, &k2, &why), -1);
  f = k;
  f.base = UINT64_MAX - 10;
  hip_key_encode(&f, buf, sizeof buf);
  CHECK_EQ_INT(hip_key_decode(buf, n, &k2, &why), -1);
  f = k;
  f.device = -1;
  hip_key_encode(&f, buf, sizeof buf);
  CHECK_EQ_INT(hip_key_decode(buf, n, &k2, &why), -1);
  f = k;
  f.kind = 9;
  hip_key_encode(&f, buf, sizeof buf);
  CHECK_EQ_INT(hip_key_decode(buf, n, &k2, &why), -1);
  /* Every single-byte change: refused, or a key that keeps the decoder's
   * invariants (the plugin checks the rest against its imports). */
  hip_key_encode(&k, buf, sizeof buf);
  for (size_t i = 0; i < n; i++)
    for (int bit = 0; bit < 8; bit++) {
      buf[i] ^= (uint8_t)(1 << bit);
      if (hip_key_decode(buf, n, &k2, &why) == 0)
        CHECK(k2.len && k2.base + k2.len > k2.base && k2.device >= 0 &&
              (k2.kind == HIP_KEY_DEVICE || k2.kind == HIP_KEY_HOST));
      else
        CHECK(why && why[0]);
      buf[i] ^= (uint8_t)(1 << bit);
    }
  /* Random blobs of every length up to 300 bytes. */
  for (int round = 0; round < 20000; round++) {
    size_t len = rnd() % 300;
    for (size_t i = 0; i < len; i++)
      buf[i] = rnd();
    if (round & 1)
      memcpy(buf, round & 2 ? "MCHK\x01" : "MCHD\x01", len < 5 ? len : 5);
    (void)hip_key_decode(buf, len, &k2, &why);
    (void)hip_desc_decode(buf, len, &d2, &why);
  }
  printf("PASS\n");
  return mc_check_exit_status();
}
