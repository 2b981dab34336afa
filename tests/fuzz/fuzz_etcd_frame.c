/* Fuzz target: etcd response frames as they come off the gRPC stream
 * (WatchResponse and RangeResponse, decoded with protobuf-c and walked by
 * the etcd client).  Any input must decode or be refused with MC_EPROTO,
 * never crash, leak or hang.  Without the etcd backend in the build there
 * is nothing to decode and the target only consumes its input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef MC_HAVE_ETCD
#include "etcd/etcd_client.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef MC_HAVE_ETCD
static size_t sink;

static void on_event(void *arg, int type, const char *key, size_t klen,
                     const void *val, size_t vlen, int64_t rev) {
  /* Touch every byte so sanitizers check the bounds we were given. */
  for (size_t i = 0; i < klen; i++)
    sink += (unsigned char)key[i];
  for (size_t i = 0; i < vlen; i++)
    sink += ((const unsigned char *)val)[i];
  sink += (size_t)type + (size_t)rev;
}

static int on_kv(void *arg, const char *key, size_t klen, const void *val,
                 size_t vlen) {
  on_event(arg, 0, key, klen, val, vlen, 0);
  return 0;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
#ifdef MC_HAVE_ETCD
  char err[256];
  int64_t rev = 0;
  (void)mc_etcd_decode_watch(data, size, on_event, NULL, &rev, err, sizeof err);
  (void)mc_etcd_decode_range(data, size, on_kv, NULL, err, sizeof err);
#else
  volatile size_t n = 0;
  for (size_t i = 0; i < size; i++)
    n += data[i];
#endif
  return 0;
}
