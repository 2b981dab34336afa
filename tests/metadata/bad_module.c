/* Metadata backend modules the loader must refuse (tests/metadata
 * modules_test.sh): built as mc-metadata-badabi.so (BAD_ABI: ABI major 99),
 * mc-metadata-badname.so (BAD_NAME: its table calls itself "other") and
 * mc-metadata-needsvendor.so (NEEDS_VENDOR: a valid module that needs
 * libmc_md_vendor_stub.so, which the test hides). */
#include <stddef.h>

#include "backend.h"
#include "mooncake/errors.h"

#ifdef NEEDS_VENDOR
int mc_md_vendor_stub_answer(void);
#endif

static int bad_open(const mc_md_host *host, const mc_md_open_args *args, void **ctx,
                    mc_md_conf *conf, char *err, size_t errlen) {
#ifdef NEEDS_VENDOR
  return mc_md_vendor_stub_answer() == 42 ? MC_ENOTSUP : MC_EIO;
#else
  return MC_ENOTSUP;
#endif
}
static void bad_close(void *ctx) {}
static int bad_put(void *ctx, const char *key, const void *val, size_t len, int64_t lease,
                   int ttl_s, int timeout_ms, char *err, size_t errlen) {
  return MC_ENOTSUP;
}
static int bad_get(void *ctx, const char *key, void **val, size_t *len, int timeout_ms,
                   char *err, size_t errlen) {
  return MC_ENOTSUP;
}
static int bad_del(void *ctx, const char *key, int timeout_ms, char *err, size_t errlen) {
  return MC_ENOTSUP;
}

#ifdef BAD_ABI
static const char *const schemes[] = {"badabi", NULL};
#define MAJOR 99u
#define NAME "badabi"
#elif defined(NEEDS_VENDOR)
static const char *const schemes[] = {"needsvendor", NULL};
#define MAJOR MC_MD_ABI_MAJOR
#define NAME "needsvendor"
#else
static const char *const schemes[] = {"badname", NULL};
#define MAJOR MC_MD_ABI_MAJOR
#define NAME "other"
#endif

static const mc_md_backend table = {
    .abi_major = MAJOR,
    .abi_minor = 0,
    .struct_size = sizeof(mc_md_backend),
    .name = NAME,
    .schemes = schemes,
    .description = "a module the loader refuses",
    .open = bad_open,
    .close = bad_close,
    .put = bad_put,
    .get = bad_get,
    .del = bad_del,
};

__attribute__((visibility("default"))) const mc_md_backend *mc_metadata_backend_v1(void);
const mc_md_backend *mc_metadata_backend_v1(void) { return &table; }
