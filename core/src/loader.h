/* Internal: plugin discovery and loading.
 *
 * The search path is, in order (mc_loader_open):
 *   1. each entry of $MC_PLUGIN_PATH (colon-separated),
 *   2. each entry of the config's plugin_path,
 *   3. the build tree's plugin folder (MC_BUILD_PLUGIN_DIR, <build>/plugins,
 *      where plugins/meson.build puts every plugin), only when this
 *      libmooncake is the one in its own build tree: dladdr() on an object
 *      of the library names the file it was loaded from, and that file's
 *      directory must be MC_BUILD_CORE_DIR (both compared as real paths).
 *      `meson install` copies the library into libdir, so an installed
 *      library never matches and never looks into a build tree; a program
 *      run from the build tree (build/tools/mc-info, the tests, the benches)
 *      finds the plugins built beside it without MC_PLUGIN_PATH.
 *   4. the compiled-in install directory MC_PLUGIN_DIR
 *      ($libdir/mooncake/plugins).
 * An entry is a directory (scanned for mc-transport-<name>.so) or a path to
 * one .so.  The first file for a name wins; later ones are recorded as
 * shadowed.  An entry of 1 or 2 that does not exist is logged once per
 * loader (so once per engine) at warn level, naming the entry and the
 * variable or key it came from; a missing 3 or 4 is only a debug line.
 *
 * Transport names are [a-z0-9_]+ (at most 63 characters), so that
 * MC_TRANSPORT_<NAME>_<KEY> can be set from a shell: a file
 * mc-transport-<name>.so whose <name> is not such a name is refused, with
 * that reason, without being opened.
 *
 * Loading: dlopen(RTLD_NOW|RTLD_LOCAL), look up the newest entry symbol the
 * core knows (mc_transport_plugin_v1 today), validate the table (major,
 * struct_size, name == file name, mandatory members) and copy it into a
 * zeroed internal table.  Every refusal is logged once (warn) with path and
 * reason, and kept for mc_engine_plugins().
 */
#ifndef MC_LOADER_H
#define MC_LOADER_H

#include <stddef.h>

#include "log.h"
#include "mooncake/engine.h"
#include "mooncake/transport.h"

typedef struct mc_loader mc_loader;

/* A successfully loaded (not yet initialized) plugin. */
typedef struct mc_plugin {
  char name[64];
  char path[4096];      /* realpath of the .so */
  void *dl;             /* dlopen handle */
  mc_transport_ops ops; /* normalized copy; unknown tail members NULL */
  uint32_t found_major, found_minor, found_size;
} mc_plugin;

/* Creates a loader over the search entries (copied).  `builtin_dir` is
 * appended last (NULL to omit).  lg may be NULL.  A missing entry is
 * warned about as a "search path" entry. */
int mc_loader_create(const mc_logger *lg, const char *const *entries,
                     size_t nentries, const char *builtin_dir,
                     mc_loader **out);

/* Creates the engine's loader over the full search path described above:
 * env_path is the value of $MC_PLUGIN_PATH (NULL or "" for none),
 * cfg_entries the config's plugin_path.  lg may be NULL. */
int mc_loader_open(const mc_logger *lg, const char *env_path,
                   const char *const *cfg_entries, size_t ncfg,
                   mc_loader **out);

/* The build tree's plugin folder when this libmooncake runs from its build
 * tree (see above), else NULL. */
const char *mc_loader_build_plugin_dir(void);

/* 0 when `name` is a valid transport name ([a-z0-9_]+, < 64 bytes), else
 * -1 with the reason in why. */
int mc_loader_check_name(const char *name, char *why, size_t whylen);

/* Scans the search path (idempotent; called by the functions below). */
int mc_loader_scan(mc_loader *ld);

/* Names of every distinct plugin found (for `transports: auto`), in
 * search order.  *n in/out; MC_ENOSPC. */
int mc_loader_names(mc_loader *ld, const char **names, size_t *n);

/* Loads plugin `name`.  MC_ENOENT (err names the searched entries),
 * MC_EABI or MC_EINVAL (err names path and reason).  On success *out is
 * owned by the caller and freed with mc_loader_unload after fini. */
int mc_loader_load(mc_loader *ld, const char *name, mc_plugin **out,
                   char *err, size_t errlen);

/* dlcloses and frees a plugin.  Call only after ops.fini returned. */
void mc_loader_unload(mc_plugin *p);

/* Records that a loaded plugin was refused later (its init failed),
 * so the report shows it as refused with this reason. */
void mc_loader_mark_refused(mc_loader *ld, const char *name, const char *reason);

/* Records that a found plugin was loaded and initialized. */
void mc_loader_mark_loaded(mc_loader *ld, const char *name, uint32_t nrails);

/* Fills the report (loaded, shadowed, refused, available); *n in/out. */
int mc_loader_report(mc_loader *ld, mc_plugin_info *out, uint32_t *n);

/* The search entries joined with ':'. */
int mc_loader_search_path(mc_loader *ld, char *buf, size_t len);

void mc_loader_destroy(mc_loader *ld);

#endif
