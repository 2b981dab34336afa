/* The example plugin with a fini that leaks: a heap block and an fd per
 * context.  Test-only: the conformance tool's lifecycle checks must fail
 * it (tests/oot/meson.build), which shows they can. */
#define OOT_NAME "oot_leaky"
#define mc_transport_plugin_v1 oot_example_entry
#include "oot_transport.c"
#undef mc_transport_plugin_v1

static mc_transport_ops leaky_ops;
static void *volatile leaked; /* keeps the compiler from dropping malloc */

static int leaky_fini(void *ctx) {
  int rc = oot_fini(ctx);
  leaked = malloc(64);
  if (dup(2) < 0)
    return MC_EIO;
  return rc;
}

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void);
const mc_transport_ops *mc_transport_plugin_v1(void) {
  /* Built on first call: the entry point stays cheap and idempotent. */
  if (!leaky_ops.fini) {
    leaky_ops = *oot_example_entry();
    leaky_ops.fini = leaky_fini;
  }
  return &leaky_ops;
}
