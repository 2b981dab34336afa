/* Bad input reaches the caller as a clear code and a last-error line, and
 * loses nothing: empty and 4 KiB+ keys, zero-size and NULL values, a value
 * larger than the pool, too many replicas, a buffer too small, an
 * unregistered zero-copy buffer, an unreachable master; the code names
 * and texts of store.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_fixture.h"

int main(void) {
  /* The table: names without the prefix, texts, unknown codes. */
  CHECK_STR(mc_store_errname(MC_STORE_OBJECT_NOT_FOUND), "OBJECT_NOT_FOUND");
  CHECK_EQ_INT(MC_STORE_OBJECT_NOT_FOUND, -704);
  CHECK_EQ_INT(MC_STORE_LEASE_EXPIRED, -707);
  CHECK_EQ_INT(MC_STORE_NO_AVAILABLE_HANDLE, -200);
  CHECK_EQ_INT(MC_STORE_RPC_FAIL, -900);
  CHECK_STR(mc_store_errname(12345), "UNKNOWN");
  CHECK_STR(mc_store_strerror(MC_STORE_OBJECT_HAS_LEASE), "object has a read lease");
  CHECK_STR(mc_store_strerror(12345), "unknown error");

  /* No master there: a clear RPC error within the timeout. */
  mc_store_config bad = {.struct_size = sizeof bad, .master = "127.0.0.1:1",
                         .rpc_timeout_ms = 2000};
  mc_store *s = NULL;
  uint64_t t0 = fx_ms();
  int rc = mc_store_create(&bad, &s);
  CHECK_MSG(rc == MC_STORE_RPC_FAIL || rc == MC_STORE_RPC_TIMEOUT, "create: %s",
            mc_store_errname(rc));
  CHECK(s == NULL);
  CHECK(fx_ms() - t0 < 6000);
  CHECK_HAS(mc_store_last_error(), "127.0.0.1:1");
  CHECK_EQ_INT(mc_store_create(NULL, &s), MC_STORE_INVALID_PARAMS);
  mc_store_config badproto = {.struct_size = sizeof bad, .master = "127.0.0.1:1",
                              .protocol = "nosuchwire"};
  rc = mc_store_create(&badproto, &s);
  CHECK(rc < 0 && s == NULL);

  fx_master m;
  fx_master_start(&m, NULL);
  s = fx_client(&m, 32u << 20);
  char *big = calloc(1, 64u << 20);
  CHECK(big);

  CHECK_EQ_INT(mc_store_put(s, "", "x", 1, NULL), MC_STORE_INVALID_KEY);
  CHECK_HAS(mc_store_last_error(), "empty key");
  CHECK_EQ_INT(mc_store_put(s, NULL, "x", 1, NULL), MC_STORE_INVALID_KEY);
  char key[MC_STORE_KEY_MAX + 2];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = 0; /* 4096 bytes */
  CHECK_EQ_INT(mc_store_put(s, key, "x", 1, NULL), MC_STORE_INVALID_KEY);
  CHECK_EQ_INT(mc_store_get(s, key, big, 10), MC_STORE_INVALID_KEY);
  CHECK_EQ_INT(mc_store_exist(s, key), MC_STORE_INVALID_KEY);
  CHECK_EQ_INT(mc_store_remove(s, "", 0), MC_STORE_INVALID_KEY);
  key[MC_STORE_KEY_MAX] = 0; /* 4095 bytes: the longest valid key */
  CHECK_EQ_INT(mc_store_put(s, key, "x", 1, NULL), 0);
  char one;
  CHECK_EQ_INT(mc_store_get(s, key, &one, 1), 1);
  CHECK(one == 'x');

  CHECK_EQ_INT(mc_store_put(s, "zero", "x", 0, NULL), MC_STORE_INVALID_PARAMS);
  CHECK_HAS(mc_store_last_error(), "size 0");
  CHECK_EQ_INT(mc_store_put(s, "null", NULL, 5, NULL), MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_exist(s, "zero"), 0);

  /* Larger than the whole pool (one 32 MiB segment). */
  CHECK_EQ_INT(mc_store_put(s, "huge", big, 64u << 20, NULL), MC_STORE_NO_AVAILABLE_HANDLE);
  CHECK_EQ_INT(mc_store_exist(s, "huge"), 0);
  mc_store_replicate_config many = {.replica_num = MC_STORE_MAX_REPLICAS + 1};
  CHECK_EQ_INT(mc_store_put(s, "many", "x", 1, &many), MC_STORE_INVALID_PARAMS);
  const char *nullpref[1] = {NULL};
  mc_store_replicate_config np = {.preferred_segments = nullpref, .preferred_count = 1};
  CHECK_EQ_INT(mc_store_put(s, "np", "x", 1, &np), MC_STORE_INVALID_PARAMS);

  /* Reads: too small a buffer, unknown key, unregistered zero-copy. */
  CHECK_EQ_INT(mc_store_put(s, "ten", "0123456789", 10, NULL), 0);
  char small[4];
  CHECK_EQ_INT(mc_store_get(s, "ten", small, sizeof small), MC_STORE_BUFFER_OVERFLOW);
  CHECK_EQ_INT(mc_store_get(s, "nope", small, sizeof small), MC_STORE_OBJECT_NOT_FOUND);
  CHECK_EQ_INT(mc_store_get_size(s, "nope"), MC_STORE_OBJECT_NOT_FOUND);
  CHECK_EQ_INT(mc_store_get_into(s, "ten", small, sizeof small), MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_get(s, "ten", NULL, 10), MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_register_buffer(s, NULL, 10), MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_unregister_buffer(s, small), MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_remove_by_regex(s, "([", 1), MC_STORE_INVALID_PARAMS);
  /* Nothing was lost by all of that. */
  char ten[10];
  CHECK_EQ_INT(mc_store_get(s, "ten", ten, sizeof ten), 10);
  CHECK(memcmp(ten, "0123456789", 10) == 0);

  /* A batch with bad items: the good ones go through. */
  const char *keys[3] = {"b-ok", "", "b-ok2"};
  const void *vals[3] = {"a", "b", "c"};
  size_t sizes[3] = {1, 1, 0};
  int res[3];
  CHECK(mc_store_batch_put(s, keys, vals, sizes, 3, NULL, res) != 0);
  CHECK_EQ_INT(res[0], 0);
  CHECK_EQ_INT(res[1], MC_STORE_INVALID_KEY);
  CHECK_EQ_INT(res[2], MC_STORE_INVALID_PARAMS);
  CHECK_EQ_INT(mc_store_exist(s, "b-ok"), 1);

  mc_store_destroy(s);
  free(big);
  fx_master_stop(&m, SIGTERM);
  printf("bad input: ok\n");
  return 0;
}
