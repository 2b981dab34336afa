/* The ascend plugin's blob codec (plugins/ascend/ascend_blob.c): round
 * trips of the descriptor, the remote key and the allow request, and every
 * truncation, bit flip and random blob refused or decoded within the
 * decoder's own invariants. */
#include <stdio.h>
#include <string.h>

#include "ascend_blob.h"
#include "check.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint8_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint8_t)rng;
}

int main(void) {
  uint8_t buf[512];
  const char *why = NULL;

  asc_desc d = {.pid = 77, .tgid = 88};
  snprintf(d.host_id, sizeof d.host_id, "boot-1234");
  size_t n = asc_desc_encode(&d, buf, sizeof buf);
  CHECK(n > 0 && n <= ASC_DESC_MAX);
  asc_desc d2;
  CHECK_EQ_INT(asc_desc_decode(buf, n, &d2, &why), 0);
  CHECK(d2.pid == 77 && d2.tgid == 88);
  CHECK_STR(d2.host_id, "boot-1234");
  for (size_t cut = 0; cut < n; cut++)
    CHECK_EQ_INT(asc_desc_decode(buf, cut, &d2, &why), -1);

  asc_key k = {.kind = ASC_KEY_IPC, .flags = ASC_KEY_F_PID, .device = 1, .base = 0x100000,
               .len = 4096};
  snprintf(k.ipc_key, sizeof k.ipc_key, "fk:123:4:5");
  n = asc_key_encode(&k, buf, sizeof buf);
  CHECK_EQ_INT(n, ASC_KEY_SIZE);
  CHECK(n <= 256);
  asc_key k2;
  CHECK_EQ_INT(asc_key_decode(buf, n, &k2, &why), 0);
  CHECK(k2.kind == ASC_KEY_IPC && k2.flags == ASC_KEY_F_PID && k2.device == 1 &&
        k2.base == 0x100000 && k2.len == 4096);
  CHECK_STR(k2.ipc_key, "fk:123:4:5");
  for (size_t cut = 0; cut < n; cut++)
    CHECK_EQ_INT(asc_key_decode(buf, cut, &k2, &why), -1);
  /* An IPC key without its NUL, with an unprintable byte, or empty. */
  uint8_t f[ASC_KEY_SIZE];
  memcpy(f, buf, n);
  memset(f + 27, 'a', ASC_IPC_KEY_LEN);
  CHECK_EQ_INT(asc_key_decode(f, n, &k2, &why), -1);
  memcpy(f, buf, n);
  f[28] = 0x01;
  CHECK_EQ_INT(asc_key_decode(f, n, &k2, &why), -1);
  memcpy(f, buf, n);
  f[27] = 0;
  CHECK_EQ_INT(asc_key_decode(f, n, &k2, &why), -1);
  for (size_t i = 0; i < n; i++)
    for (int bit = 0; bit < 8; bit++) {
      buf[i] ^= (uint8_t)(1 << bit);
      if (asc_key_decode(buf, n, &k2, &why) == 0)
        CHECK(k2.len && k2.base + k2.len > k2.base && k2.device >= 0 &&
              k2.kind >= ASC_KEY_IPC && k2.kind <= ASC_KEY_NOIPC &&
              strlen(k2.ipc_key) < ASC_IPC_KEY_LEN);
      buf[i] ^= (uint8_t)(1 << bit);
    }

  asc_allow a = {.tgid = 999};
  snprintf(a.ipc_key, sizeof a.ipc_key, "fk:1:2:3");
  n = asc_allow_encode(&a, buf, sizeof buf);
  CHECK_EQ_INT(n, ASC_ALLOW_SIZE);
  CHECK(n <= 4096); /* MC_CTRL_MAX */
  asc_allow a2;
  CHECK_EQ_INT(asc_allow_decode(buf, n, &a2, &why), 0);
  CHECK(a2.tgid == 999);
  CHECK_STR(a2.ipc_key, "fk:1:2:3");
  for (size_t cut = 0; cut < n; cut++)
    CHECK_EQ_INT(asc_allow_decode(buf, cut, &a2, &why), -1);
  a.tgid = 0;
  asc_allow_encode(&a, buf, sizeof buf);
  CHECK_EQ_INT(asc_allow_decode(buf, n, &a2, &why), -1);

  for (int round = 0; round < 20000; round++) {
    size_t len = rnd() % 300;
    for (size_t i = 0; i < len; i++)
      buf[i] = rnd();
    static const char *const mg[] = {"MCAD\x01", "MCAK\x01", "MCAP\x01"};
    if (round & 1)
      memcpy(buf, mg[round % 3], len < 5 ? len : 5);
    (void)asc_desc_decode(buf, len, &d2, &why);
    (void)asc_key_decode(buf, len, &k2, &why);
    (void)asc_allow_decode(buf, len, &a2, &why);
  }
  printf("PASS\n");
  return mc_check_exit_status();
}
