/* mc-topology: discovers this host's topology (or loads one) and prints it
 * as the `topology:` section of the mooncake YAML config, with comments
 * listing NUMA nodes, GPUs and NICs.  Paste it into the config to pin the
 * choices; a topology section in the config overrides discovery. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "mooncake/errors.h"
#include "topology.h"

static void usage(FILE *f) {
  fputs("usage: mc-topology [--xml FILE | --synthetic DESC | --sysfs ROOT]\n"
        "                   [--config FILE]\n"
        "  default      discover this host (hwloc, else sysfs)\n"
        "  --xml        load an hwloc XML export (lstopo --of xml)\n"
        "  --synthetic  load an hwloc synthetic description (\"pack:2 numa:1 pu:8\")\n"
        "  --sysfs      read a sysfs tree rooted at ROOT instead of /sys\n"
        "  --config     apply the topology section of a mooncake YAML file\n",
        f);
}

int main(int argc, char **argv) {
  const char *xml = NULL, *syn = NULL, *sysfs = NULL, *cfgpath = NULL;
  for (int i = 1; i < argc; i++) {
    const char **slot = !strcmp(argv[i], "--xml")         ? &xml
                        : !strcmp(argv[i], "--synthetic") ? &syn
                        : !strcmp(argv[i], "--sysfs")     ? &sysfs
                        : !strcmp(argv[i], "--config")    ? &cfgpath
                                                          : NULL;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (!slot || i + 1 >= argc) {
      fprintf(stderr, "mc-topology: %s: %s\n", argv[i],
              slot ? "missing value" : "unknown option");
      usage(stderr);
      return 2;
    }
    *slot = argv[++i];
  }
  if (!!xml + !!syn + !!sysfs > 1) {
    fprintf(stderr, "mc-topology: --xml, --synthetic and --sysfs exclude each other\n");
    return 2;
  }
  /* A path that is not there is the user's typo, not a topology hwloc
   * could not parse: say so before any loader turns it into EINVAL. */
  const char *paths[3][2] = {{"--xml", xml}, {"--sysfs", sysfs}, {"--config", cfgpath}};
  for (int k = 0; k < 3; k++) {
    struct stat st;
    const char *p = paths[k][1];
    if (!p)
      continue;
    if (stat(p, &st) != 0) {
      int e = errno;
      fprintf(stderr, "mc-topology: %s %s: %s\n", paths[k][0], p,
              e == ENOENT ? "no such file or directory" : strerror(e));
      return 1;
    }
    if (k == 1 ? !S_ISDIR(st.st_mode) : S_ISDIR(st.st_mode)) {
      fprintf(stderr, "mc-topology: %s %s: %s\n", paths[k][0], p,
              k == 1 ? "not a directory" : "is a directory, not a file");
      return 1;
    }
  }
  mc_topology *t = NULL;
  char err[512] = "";
  int rc;
  if (xml)
    rc = mc_topo_load_xml(xml, &t, err, sizeof err);
  else if (syn)
    rc = mc_topo_load_synthetic(syn, &t, err, sizeof err);
  else if (sysfs) {
    rc = mc_topo_sysfs_load(sysfs, &t);
    snprintf(err, sizeof err, "%s: no NUMA nodes under devices/system/node", sysfs);
  } else
    rc = mc_topo_discover(&t, err, sizeof err);
  if (rc) {
    fprintf(stderr, "mc-topology: %s (%s)\n", err, mc_strerror(rc));
    return 1;
  }
  if (cfgpath) {
    mc_config *cfg = NULL;
    char cerr[MC_CONFIG_ERR_MAX];
    rc = mc_config_load_file(cfgpath, &cfg, cerr, sizeof cerr);
    if (rc || mc_topo_apply_config(t, cfg->topology, cfg->ntopology)) {
      fprintf(stderr, "mc-topology: %s\n", rc ? cerr : "out of memory");
      mc_config_free(cfg);
      mc_topo_free(t);
      return 1;
    }
    mc_config_free(cfg);
  }
  rc = mc_topo_print_yaml(t, NULL, 0, stdout);
  int gpus = 0;
  for (size_t i = 0; i < t->ndevs; i++)
    gpus += t->devs[i].kind == MC_TOPO_GPU;
  if (!rc && gpus)
    printf("# note: GPU locations are listed for planning; no transport serves "
           "device memory yet\n# (tcp and shm move CPU memory only), so "
           "registering a buffer as \"cuda:N\" fails with 'not supported'.\n");
  mc_topo_free(t);
  if (rc || fflush(stdout)) {
    fprintf(stderr, "mc-topology: cannot print: %s\n", mc_strerror(rc ? rc : MC_EIO));
    return 1;
  }
  return 0;
}
