/* Topology discovery from sysfs, for builds without hwloc (and a fallback
 * when hwloc cannot load this host).  `root` is "/sys" or, in tests, a
 * directory laid out the same way. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MC_HAVE_NUMA
#include <numa.h>
#endif

#include "mooncake/errors.h"
#include "topology.h"

static int read_line(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  char *ok = fgets(buf, (int)len, f);
  fclose(f);
  if (!ok)
    return -1;
  buf[strcspn(buf, "\n")] = 0;
  return 0;
}

static int parse_bus(const char *s, uint32_t *out) {
  unsigned dom, bus, dev, fn;
  if (sscanf(s, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4 || dom > 0xffff ||
      bus > 0xff || dev > 0x1f || fn > 7)
    return -1;
  *out = dom << 16 | bus << 8 | dev << 3 | fn;
  return 0;
}

/* dir/name into buf; -1 when it does not fit. */
static int join(char *buf, size_t len, const char *dir, const char *name) {
  int n = snprintf(buf, len, "%s/%s", dir, name);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int numa_filter(const struct dirent *e) {
  return !strncmp(e->d_name, "node", 4) && e->d_name[4] >= '0' &&
         e->d_name[4] <= '9';
}

static int numa_cmp(const struct dirent **a, const struct dirent **b) {
  return atoi((*a)->d_name + 4) - atoi((*b)->d_name + 4);
}

static int load_numa(const char *root, mc_topology *t) {
  char dir[PATH_MAX], path[PATH_MAX + 64], buf[1024];
  snprintf(dir, sizeof dir, "%s/devices/system/node", root);
  struct dirent **ents;
  int n = scandir(dir, &ents, numa_filter, numa_cmp);
  if (n <= 0)
    return -1;
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char sub[300];
    snprintf(sub, sizeof sub, "%s/cpulist", ents[i]->d_name);
    if (join(path, sizeof path, dir, sub) || read_line(path, buf, sizeof buf))
      buf[0] = 0;
    if (!rc)
      rc = mc_topo_add_numa(t, atoi(ents[i]->d_name + 4), buf);
  }
  t->distance = rc ? NULL : calloc((size_t)n * (size_t)n, sizeof *t->distance);
  for (int i = 0; t->distance && i < n; i++) {
    char sub[300];
    snprintf(sub, sizeof sub, "%s/distance", ents[i]->d_name);
    char *p = buf;
    int ok = !join(path, sizeof path, dir, sub) && !read_line(path, buf, sizeof buf);
    for (int j = 0; j < n; j++) {
      char *end = p;
      unsigned long v = ok ? strtoul(p, &end, 10) : 0;
      if (end == p)
        ok = 0;
      p = end;
#ifdef MC_HAVE_NUMA
      if (!ok && !strcmp(root, "/sys") && numa_available() >= 0)
        v = (unsigned long)numa_distance(t->numa[i].id, t->numa[j].id), ok = v > 0;
#endif
      t->distance[(size_t)i * (size_t)n + (size_t)j] =
          ok ? (uint32_t)v : (i == j ? 10u : 20u);
    }
  }
  for (int i = 0; i < n; i++)
    free(ents[i]);
  free(ents);
  return rc;
}

/* First entry name of dir/sub, or "" */
static void first_child(const char *dir, const char *sub, char *out, size_t len) {
  char path[PATH_MAX + 64];
  out[0] = 0;
  if (join(path, sizeof path, dir, sub))
    return;
  DIR *d = opendir(path);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] != '.' && strlen(e->d_name) < len) {
      memcpy(out, e->d_name, strlen(e->d_name) + 1);
      break;
    }
  }
  closedir(d);
}

/* Bridges from the real path: .../pci0000:00/0000:00:01.0/<self>. */
static void sysfs_path(const char *devdir, mc_topo_dev *d) {
  char real[PATH_MAX];
  d->depth = 0;
  if (!realpath(devdir, real))
    return;
  char *p = strstr(real, "/pci");
  unsigned dom, bus;
  if (!p || sscanf(p, "/pci%x:%x", &dom, &bus) != 2)
    return;
  d->path[d->depth++] = MC_TOPO_HOST_BRIDGE | dom << 16 | bus;
  for (char *s = strchr(p + 1, '/'); s && d->depth < MC_TOPO_PCI_DEPTH;
       s = strchr(s + 1, '/')) {
    uint32_t b;
    if (parse_bus(s + 1, &b) == 0 && b != d->pci_bus_id)
      d->path[d->depth++] = b;
  }
}

static int pci_filter(const struct dirent *e) { return e->d_name[0] != '.'; }

static int load_pci(const char *root, mc_topology *t) {
  char dir[PATH_MAX], dev[PATH_MAX + 300], path[PATH_MAX + 400], buf[64];
  snprintf(dir, sizeof dir, "%s/bus/pci/devices", root);
  struct dirent **ents;
  int n = scandir(dir, &ents, pci_filter, alphasort); /* = PCI order */
  if (n < 0)
    return 0;
  int next[2] = {0, 0}, rc = 0;
  for (int i = 0; i < n && !rc; i++) {
    mc_topo_dev d = {0};
    if (parse_bus(ents[i]->d_name, &d.pci_bus_id))
      continue;
    snprintf(dev, sizeof dev, "%s/%s", dir, ents[i]->d_name);
    unsigned long cls = 0, vendor = 0;
    snprintf(path, sizeof path, "%s/class", dev);
    if (!read_line(path, buf, sizeof buf))
      cls = strtoul(buf, NULL, 16);
    snprintf(path, sizeof path, "%s/vendor", dev);
    if (!read_line(path, buf, sizeof buf))
      vendor = strtoul(buf, NULL, 16);
    snprintf(path, sizeof path, "%s/numa_node", dev);
    d.numa_node = read_line(path, buf, sizeof buf) ? -1 : atoi(buf);
    if ((cls >> 16) == 0x03 && (vendor == 0x10de || vendor == 0x1002)) {
      int amd = vendor == 0x1002;
      d.kind = MC_TOPO_GPU;
      snprintf(d.name, sizeof d.name, "%s:%d", amd ? "hip" : "cuda", next[amd]++);
    } else if ((cls >> 16) == 0x02) {
      d.kind = MC_TOPO_NIC;
      first_child(dev, "infiniband", d.name, sizeof d.name);
      if (!d.name[0])
        first_child(dev, "net", d.name, sizeof d.name);
      if (!d.name[0])
        continue;
    } else {
      continue;
    }
    sysfs_path(dev, &d);
    rc = mc_topo_add_dev(t, &d);
  }
  for (int i = 0; i < n; i++)
    free(ents[i]);
  free(ents);
  return rc;
}

int mc_topo_sysfs_load(const char *root, mc_topology **out) {
  char source[PATH_MAX + 8];
  snprintf(source, sizeof source, strcmp(root, "/sys") ? "sysfs:%s" : "sysfs",
           root);
  mc_topology *t = mc_topo_new(source);
  if (!t)
    return MC_ENOMEM;
  if (load_numa(root, t) || load_pci(root, t)) {
    mc_topo_free(t);
    return MC_ENOENT;
  }
  *out = t;
  return 0;
}
