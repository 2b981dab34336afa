/* Internal: finding and loading metadata backend modules (md_module.c has
 * the search rules). */
#ifndef MC_MD_MODULE_H
#define MC_MD_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "log.h"
#include "mooncake/engine.h"

typedef struct mc_md_module {
  char name[64];
  char path[4096];   /* real path of the .so */
  void *dl;
  mc_md_backend ops; /* normalized copy; unknown tail members NULL */
} mc_md_module;

/* Loads the module serving `scheme` (for the message: the whole url).
 * MC_ENOENT when no module file is found (err names the module and the
 * search path), MC_EABI/MC_ENOTSUP when the file found is refused (err
 * names path and reason). */
int mc_md_module_load(const mc_logger *lg, const char *scheme, const char *url,
                      mc_md_module **out, char *err, size_t errlen);
void mc_md_module_unload(mc_md_module *m);

/* Every module file on the search path: AVAILABLE (loads and validates),
 * SHADOWED or REFUSED with the reason; *n in/out (MC_ENOSPC).  version
 * holds the URL schemes served ("etcd://").  search_path (may be NULL)
 * gets the search path joined with ':'. */
int mc_md_module_report(mc_plugin_info *out, uint32_t *n, char *search_path,
                        size_t splen);

#endif
