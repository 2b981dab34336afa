/* Fuzz target: bodies the HTTP metadata client receives: key listings
 * ({"keys":[...]}) and segment descriptors fetched by key (validated with
 * the descriptor decoder before the engine sees them).  Without the HTTP
 * backend in the build only the descriptor path runs. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "descriptor.h"
#ifdef MC_HAVE_HTTP_METADATA
#include "http/http_proto.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef MC_HAVE_HTTP_METADATA
static size_t sink;

static int on_key(void *arg, const char *key, size_t len) {
  for (size_t i = 0; i < len; i++)
    sink += (unsigned char)key[i];
  return 0;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
#ifdef MC_HAVE_HTTP_METADATA
  (void)mc_http_parse_keys((const char *)data, size, on_key, NULL, err, sizeof err);
  (void)mc_http_key_check((const char *)data, size);
#endif
  mc_seg_desc *d = NULL;
  if (mc_desc_decode((const char *)data, size, &d, err, sizeof err) == 0)
    mc_desc_free(d);
  return 0;
}
