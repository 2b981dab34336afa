/* Topology discovery with hwloc: this host, an XML export or a synthetic
 * description.  Built only with MC_HAVE_HWLOC. */
#include <hwloc.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"
#include "topology.h"

static uint32_t bus_id(const struct hwloc_pcidev_attr_s *p) {
  return (uint32_t)p->domain << 16 | (uint32_t)p->bus << 8 |
         (uint32_t)p->dev << 3 | p->func;
}

/* NUMA node of an I/O object: its first non-I/O ancestor's single node. */
static int io_numa(hwloc_topology_t topo, hwloc_obj_t o) {
  hwloc_obj_t a = hwloc_get_non_io_ancestor_obj(topo, o);
  if (!a || !a->nodeset || hwloc_bitmap_weight(a->nodeset) != 1)
    return -1;
  return hwloc_bitmap_first(a->nodeset);
}

/* Bridges above pcidev, root first. */
static void pci_path(hwloc_obj_t pci, mc_topo_dev *d) {
  uint32_t rev[MC_TOPO_PCI_DEPTH];
  uint32_t n = 0;
  for (hwloc_obj_t o = pci->parent; o && o->type == HWLOC_OBJ_BRIDGE &&
                                    n < MC_TOPO_PCI_DEPTH;
       o = o->parent) {
    const struct hwloc_bridge_attr_s *b = &o->attr->bridge;
    if (b->upstream_type == HWLOC_OBJ_BRIDGE_HOST)
      rev[n++] = MC_TOPO_HOST_BRIDGE | (uint32_t)b->downstream.pci.domain << 16 |
                 b->downstream.pci.secondary_bus;
    else
      rev[n++] = bus_id(&b->upstream.pci);
  }
  d->depth = n;
  for (uint32_t i = 0; i < n; i++)
    d->path[i] = rev[n - 1 - i];
}

static int is_gpu(hwloc_obj_t pci) {
  const struct hwloc_pcidev_attr_s *p = &pci->attr->pcidev;
  return (p->class_id >> 8) == 0x03 &&
         (p->vendor_id == 0x10de || p->vendor_id == 0x1002);
}

static int add_gpus(hwloc_topology_t topo, mc_topology *t) {
  int next[2] = {0, 0}; /* per vendor: nvidia, amd, in PCI order */
  for (hwloc_obj_t o = NULL;
       (o = hwloc_get_next_pcidev(topo, o)) != NULL;) {
    if (!is_gpu(o))
      continue;
    int amd = o->attr->pcidev.vendor_id == 0x1002;
    mc_topo_dev d = {0};
    d.kind = MC_TOPO_GPU;
    d.pci_bus_id = bus_id(&o->attr->pcidev);
    d.numa_node = io_numa(topo, o);
    pci_path(o, &d);
    int idx = next[amd]++;
    /* A CUDA osdev ("cuda3") gives the runtime's own index. */
    for (hwloc_obj_t c = o->io_first_child; c; c = c->next_sibling) {
      int n;
      if (c->type == HWLOC_OBJ_OS_DEVICE && c->name &&
          sscanf(c->name, "cuda%d", &n) == 1)
        idx = n;
    }
    snprintf(d.name, sizeof d.name, "%s:%d", amd ? "hip" : "cuda", idx);
    if (mc_topo_add_dev(t, &d))
      return MC_ENOMEM;
  }
  return 0;
}

static int add_nics(hwloc_topology_t topo, mc_topology *t) {
  for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(topo, o)) != NULL;) {
    hwloc_obj_osdev_type_t ty = o->attr->osdev.type;
    hwloc_obj_t pci = o->parent;
    if (!o->name || !pci || pci->type != HWLOC_OBJ_PCI_DEVICE)
      continue; /* virtual interfaces have no PCI device */
    if (ty == HWLOC_OBJ_OSDEV_NETWORK) {
      /* An RDMA NIC shows both; the verbs name is the rail. */
      int has_ib = 0;
      for (hwloc_obj_t c = pci->io_first_child; c; c = c->next_sibling)
        if (c->type == HWLOC_OBJ_OS_DEVICE &&
            c->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS)
          has_ib = 1;
      if (has_ib)
        continue;
    } else if (ty != HWLOC_OBJ_OSDEV_OPENFABRICS) {
      continue;
    }
    mc_topo_dev d = {0};
    d.kind = MC_TOPO_NIC;
    snprintf(d.name, sizeof d.name, "%s", o->name);
    d.pci_bus_id = bus_id(&pci->attr->pcidev);
    d.numa_node = io_numa(topo, pci);
    pci_path(pci, &d);
    if (mc_topo_add_dev(t, &d))
      return MC_ENOMEM;
  }
  return 0;
}

static int add_numa(hwloc_topology_t topo, mc_topology *t) {
  int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < n; i++) {
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
    char cpus[256] = "";
    if (o->cpuset)
      hwloc_bitmap_list_snprintf(cpus, sizeof cpus, o->cpuset);
    if (mc_topo_add_numa(t, (int32_t)o->os_index, cpus))
      return MC_ENOMEM;
  }
  struct hwloc_distances_s *dist = NULL;
  unsigned nr = 1;
  if (hwloc_distances_get_by_type(topo, HWLOC_OBJ_NUMANODE, &nr, &dist,
                                  HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) ||
      nr == 0)
    return 0; /* none known: 10/20 */
  if (dist->nbobjs == t->nnuma) {
    t->distance = calloc(t->nnuma * t->nnuma, sizeof *t->distance);
    if (!t->distance) {
      hwloc_distances_release(topo, dist);
      return MC_ENOMEM;
    }
    for (unsigned a = 0; a < dist->nbobjs; a++)
      for (unsigned b = 0; b < dist->nbobjs; b++) {
        size_t ia = 0, ib = 0;
        for (size_t k = 0; k < t->nnuma; k++) {
          if ((unsigned)t->numa[k].id == dist->objs[a]->os_index)
            ia = k;
          if ((unsigned)t->numa[k].id == dist->objs[b]->os_index)
            ib = k;
        }
        t->distance[ia * t->nnuma + ib] =
            (uint32_t)dist->values[a * dist->nbobjs + b];
      }
  }
  hwloc_distances_release(topo, dist);
  return 0;
}

int mc_topo_hwloc_load(int how, const char *arg, mc_topology **out, char *err,
                       size_t errlen) {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo)) {
    snprintf(err, errlen, "hwloc_topology_init failed");
    return MC_ENOMEM;
  }
  hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  /* The Linux backend reads PCI from sysfs itself; the libpciaccess
   * component adds nothing we use and leaks, OpenCL/GL probe displays and
   * ICD loaders.  GPU indices come from PCI order or the cuda component. */
  static const char *const skip[] = {"pci", "opencl", "gl"};
  for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
    (void)hwloc_topology_set_components(
        topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, skip[i]);
  int rc = 0;
  if (how == 1)
    rc = hwloc_topology_set_xml(topo, arg);
  else if (how == 2)
    rc = hwloc_topology_set_synthetic(topo, arg);
  if (rc || hwloc_topology_load(topo)) {
    snprintf(err, errlen, "%s%s: hwloc cannot load it",
             how == 1 ? "xml " : how == 2 ? "synthetic " : "this host",
             how ? arg : "");
    hwloc_topology_destroy(topo);
    return MC_EINVAL;
  }
  char source[160];
  snprintf(source, sizeof source, "%s%s", how == 1 ? "xml:" : how == 2 ? "synthetic:" : "hwloc",
           how ? arg : "");
  mc_topology *t = mc_topo_new(source);
  rc = t ? 0 : MC_ENOMEM;
  if (!rc)
    rc = add_numa(topo, t);
  if (!rc && t->nnuma == 0)
    rc = mc_topo_add_numa(t, 0, "");
  if (!rc)
    rc = add_gpus(topo, t);
  if (!rc)
    rc = add_nics(topo, t);
  hwloc_topology_destroy(topo);
  if (rc) {
    snprintf(err, errlen, "out of memory");
    mc_topo_free(t);
    return rc;
  }
  *out = t;
  return 0;
}
