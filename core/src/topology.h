/* Internal: the host topology (NUMA nodes, their CPUs, PCI NICs and GPUs)
 * and, for every memory location, which rails to use first.
 *
 * Sources, in the order the engine is expected to use them:
 *   - the config's `topology:` section (mc_topo_apply_config), which
 *     overrides whatever was discovered for the locations it names;
 *   - discovery (mc_topo_discover): hwloc when built with it (MC_HAVE_HWLOC),
 *     else sysfs (/sys/devices/system/node, /sys/bus/pci), else one node;
 *   - for tests and offline planning: an hwloc XML file or synthetic string.
 *
 * Rail choice (mc_topo_select) follows Mooncake's topology matrix: for a
 * location, rails are ranked by distance; the nearest tier is "preferred",
 * the rest are "fallback" in increasing distance.  Distances:
 *   - GPU location and rail both on PCI: hops through their lowest common
 *     PCI bridge (same PCIe switch < same root complex), when they share a
 *     host bridge;
 *   - otherwise by NUMA node: same node 100, other node 100 + 10 x the SLIT
 *     distance (so 300 for the usual 20); a rail or location of unknown node
 *     ranks 150 (after local, before remote).
 * A topology is immutable after construction and may be read from any
 * thread. */
#ifndef MC_TOPOLOGY_H
#define MC_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define MC_TOPO_NAME_MAX 64
#define MC_TOPO_PCI_DEPTH 8
#define MC_TOPO_HOST_BRIDGE 0x80000000u /* path entry: host bridge | dom<<16 | bus */

enum mc_topo_dev_kind {
  MC_TOPO_NIC = 1,
  MC_TOPO_GPU = 2,
};

typedef struct mc_topo_numa {
  int32_t id;     /* OS index */
  char cpus[256]; /* cpulist, "0-15,32-47" ("" unknown) */
} mc_topo_numa;

typedef struct mc_topo_dev {
  uint32_t kind;               /* enum mc_topo_dev_kind */
  char name[MC_TOPO_NAME_MAX]; /* NIC: "mlx5_0", "eth0"; GPU: "cuda:0", "hip:1" */
  uint32_t pci_bus_id;         /* domain<<16|bus<<8|dev<<3|fn, as mc_rail_info */
  int32_t numa_node;           /* -1 unknown */
  uint32_t path[MC_TOPO_PCI_DEPTH]; /* bridges above the device, root first */
  uint32_t depth;                   /* entries used in path */
} mc_topo_dev;

/* An explicit choice for one location (from YAML). Rails are "rail" or
 * "transport:rail". */
typedef struct mc_topo_entry {
  char *location;
  char **preferred;
  size_t npreferred;
  char **fallback;
  size_t nfallback;
} mc_topo_entry;

typedef struct mc_topology {
  char source[160]; /* "hwloc", "sysfs", "single-node", "xml:<path>", ... */
  mc_topo_numa *numa;
  size_t nnuma;
  uint32_t *distance; /* nnuma x nnuma, row-major, 10 = local; NULL = 10/20 */
  mc_topo_dev *devs;
  size_t ndevs;
  mc_topo_entry *entries;
  size_t nentries;
} mc_topology;

/* One rail of a loaded transport, as the engine knows it. */
typedef struct mc_topo_rail {
  const char *transport; /* "rdma"; NULL when printing plain NIC rails */
  const char *name;      /* "mlx5_0" */
  int32_t numa_node;     /* -1 unknown */
  uint32_t pci_bus_id;   /* 0 none */
} mc_topo_rail;

/* Discovers this host.  Never fails for lack of hwloc or sysfs: the worst
 * case is one node with no devices (source "single-node").  MC_ENOMEM only. */
int mc_topo_discover(mc_topology **out, char *err, size_t errlen);

/* Loads an hwloc XML export (lstopo --of xml) or synthetic description
 * ("pack:2 numa:1 core:8 pu:2").  MC_ENOTSUP without hwloc; MC_EINVAL with
 * err naming the file/description and hwloc's complaint. */
int mc_topo_load_xml(const char *path, mc_topology **out, char *err,
                     size_t errlen);
int mc_topo_load_synthetic(const char *desc, mc_topology **out, char *err,
                           size_t errlen);

/* An empty topology (one node 0, no devices) holding the config entries. */
int mc_topo_from_config(const mc_config_topo *e, size_t n, mc_topology **out);

/* Adds or replaces explicit entries (YAML overrides discovery). */
int mc_topo_apply_config(mc_topology *t, const mc_config_topo *e, size_t n);

void mc_topo_free(mc_topology *t);

/* Ranks rails for `location` ("cpu:N", "cuda:N", "hip:N", "npu:N"; NULL or
 * "cpu" = no locality).  preferred and fallback have room for nrails
 * indices each; every rail index lands in exactly one of them, except rails
 * of a transport the location's explicit entry names and that entry does
 * not list (they are left out on purpose).  A location unknown to the
 * topology ranks every rail as preferred.  0, or MC_EINVAL for a malformed
 * location. */
int mc_topo_select(const mc_topology *t, const char *location,
                   const mc_topo_rail *rails, size_t nrails,
                   uint32_t *preferred, size_t *npreferred,
                   uint32_t *fallback, size_t *nfallback);

/* NUMA node of a location: N for "cpu:N", the GPU's node for "cuda:N";
 * -1 unknown. */
int mc_topo_location_numa(const mc_topology *t, const char *location);

/* The NUMA node holding the page at addr, asked without faulting it in
 * (move_pages query); for a page not yet there, the first node of the
 * mapping's NUMA policy (mbind), else the calling thread's node, where a
 * first touch by it would put the page.  -1 when it cannot tell. */
int mc_topo_addr_node(const void *addr);

/* mc_topo_addr_node as "cpu:N" ("cpu:0" when it cannot tell). */
void mc_topo_locate_addr(const void *addr, char *buf, size_t len);

/* Prints the topology as the config's `topology:` section, with comments
 * describing nodes and devices: one entry per NUMA node and GPU, plus the
 * explicit entries.  rails NULL: the topology's NICs are the rails. */
int mc_topo_print_yaml(const mc_topology *t, const mc_topo_rail *rails,
                       size_t nrails, FILE *f);

/* Builder used by the discovery back ends (topology.c, topo/). */
int mc_topo_add_numa(mc_topology *t, int32_t id, const char *cpus);
int mc_topo_add_dev(mc_topology *t, const mc_topo_dev *d);
mc_topology *mc_topo_new(const char *source);
int mc_topo_hwloc_load(int how, const char *arg, mc_topology **out, char *err,
                       size_t errlen); /* how: 0 this host, 1 xml, 2 synthetic */
int mc_topo_sysfs_load(const char *root, mc_topology **out);

#endif
