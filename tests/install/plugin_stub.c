/* A plugin's view of the installed kit (pkg-config mooncake-transport):
 * transport.h and the header-only errors.h, linked with --no-undefined and
 * without libmooncake. */
#include <mooncake/errors.h>
#include <mooncake/transport.h>

const char *plugin_stub_err(int e);
const char *plugin_stub_err(int e) { return e ? mc_strerror(e) : mc_errname(MC_EINVAL); }
