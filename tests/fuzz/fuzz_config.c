/* Fuzz target: the YAML configuration loader.  Any input must give either a
 * configuration or an error message, never a crash, leak or hang. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mc_config *cfg = NULL;
  char err[MC_CONFIG_ERR_MAX];
  err[0] = '\0';
  int rc = mc_config_load_string((const char *)data, size, "fuzz.yaml", &cfg,
                                 err, sizeof err);
  if (rc == 0) {
    /* Walk what was built so sanitizers see every string. */
    size_t n = strlen(cfg->listen) + strlen(cfg->metadata);
    for (size_t i = 0; i < cfg->ntransports; i++)
      for (size_t j = 0; j < cfg->transports[i].nparams; j++)
        n += strlen(cfg->transports[i].params[j].value);
    for (size_t i = 0; i < cfg->ntopology; i++)
      n += cfg->topology[i].npreferred + cfg->topology[i].nfallback;
    (void)n;
    mc_config_free(cfg);
  } else if (err[0] == '\0') {
    __builtin_trap(); /* every failure must explain itself */
  }
  return 0;
}
