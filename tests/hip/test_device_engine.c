/* A device transport plugin (hip, ascend) present on a host without its
 * device, seen through the public API (engine.h):
 *   - transports "auto": the engine starts (tcp carries), the plugin is
 *     listed by mc_engine_plugins as not loaded with the init failure;
 *   - transports "<name>" named alone: creation fails MC_ENODEV and the
 *     error text names the transport;
 *   - "<name>" marked optional (MC_TRANSPORT_<NAME>_OPTIONAL=1) beside
 *     tcp: the engine starts without it.
 * argv[1] = the transport's name.  Skips (77) when the device is usable
 * here (then init succeeds and there is nothing to refuse). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mooncake/engine.h"

static int create(const char *transports, mc_engine **e, char *err, size_t errlen) {
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  o.transports = transports;
  err[0] = 0;
  return mc_engine_create_ex(&o, e, err, errlen);
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  const char *name = argv[1];
  unsetenv("MC_CONFIG");
  unsetenv("MC_TRANSPORTS");
  char err[1024];
  mc_engine *e = NULL;

  CHECK_OK(create("auto", &e, err, sizeof err));
  mc_plugin_info pi[32];
  uint32_t n = 32;
  CHECK_OK(mc_engine_plugins(e, pi, &n));
  int seen = 0, loaded = 0, tcp = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!strcmp(pi[i].name, "tcp"))
      tcp = pi[i].state == MC_PLUGIN_LOADED;
    if (strcmp(pi[i].name, name))
      continue;
    seen = 1;
    loaded = pi[i].state == MC_PLUGIN_LOADED;
    printf("%s: %s%s%s\n", name, loaded ? "loaded" : "not loaded", pi[i].reason[0] ? ": " : "",
           pi[i].reason);
    if (!loaded)
      CHECK_MSG(strstr(pi[i].reason, "no such device"), "reason: %s", pi[i].reason);
  }
  CHECK_MSG(seen, "mc_engine_plugins does not list %s", name);
  CHECK(tcp);
  mc_engine_destroy(e);
  if (loaded) {
    printf("SKIP: the %s device is usable on this host\n", name);
    return 77;
  }

  e = NULL;
  int rc = create(name, &e, err, sizeof err);
  CHECK_EQ_INT(rc, MC_ENODEV);
  CHECK(e == NULL);
  CHECK_MSG(strstr(err, name), "error text does not name %s: %s", name, err);
  printf("named alone: %s: %s\n", mc_errname(rc), err);

  char var[64], list[64];
  snprintf(var, sizeof var, "MC_TRANSPORT_%s_OPTIONAL", name);
  for (char *c = var; *c; c++)
    *c = (char)toupper((unsigned char)*c);
  /* The variable applies to a transport the configuration lists
   * (MC_TRANSPORTS is the configuration here). */
  setenv(var, "1", 1);
  snprintf(list, sizeof list, "%s,tcp", name);
  setenv("MC_TRANSPORTS", list, 1);
  rc = create(NULL, &e, err, sizeof err);
  CHECK_MSG(rc == 0, "%s optional: %s: %s", name, mc_errname(rc), err);
  n = 32;
  CHECK_OK(mc_engine_plugins(e, pi, &n));
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(pi[i].name, name))
      CHECK(pi[i].state != MC_PLUGIN_LOADED);
  mc_engine_destroy(e);
  unsetenv(var);
  unsetenv("MC_TRANSPORTS");
  printf("PASS\n");
  return mc_check_exit_status();
}
