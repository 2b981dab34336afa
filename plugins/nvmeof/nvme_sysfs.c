/* nvme_sysfs.c - block devices and NVMe namespaces from sysfs
 * (nvme_sysfs.h). */
#include "nvme_sysfs.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* First line of a sysfs attribute, without the newline; -1 when absent. */
static int read_attr(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  int ok = fgets(buf, (int)n, f) != NULL;
  fclose(f);
  if (!ok)
    return -1;
  buf[strcspn(buf, "\n")] = '\0';
  return 0;
}

static int skipped(const char *sysroot, const char *name) {
  static const char *const no[] = {"loop", "ram", "zram", "sr", "fd", "nbd", NULL};
  for (int i = 0; no[i]; i++)
    if (strncmp(name, no[i], strlen(no[i])) == 0)
      return 1;
  char p[PATH_MAX], v[16];
  snprintf(p, sizeof p, "%s/block/%s/hidden", sysroot, name);
  return read_attr(p, v, sizeof v) == 0 && v[0] == '1';
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

int nv_sysfs_disks(const char *sysroot, char (*names)[NV_DISK_NAME], int max) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/block", sysroot);
  DIR *d = opendir(p);
  if (!d)
    return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < max) {
    if (de->d_name[0] == '.' || strlen(de->d_name) >= NV_DISK_NAME ||
        skipped(sysroot, de->d_name))
      continue;
    snprintf(names[n++], NV_DISK_NAME, "%s", de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, NV_DISK_NAME, cmp_name);
  return n;
}

int nv_sysfs_disk_of(const char *sysroot, uint32_t maj, uint32_t min, char *name,
                     size_t n) {
  char p[PATH_MAX + 16], real[PATH_MAX], v[16];
  snprintf(p, sizeof p, "%s/dev/block/%u:%u", sysroot, maj, min);
  if (!realpath(p, real))
    return -1;
  /* A partition's directory sits inside its disk's and has `partition`. */
  snprintf(p, sizeof p, "%s/partition", real);
  if (read_attr(p, v, sizeof v) == 0) {
    char *slash = strrchr(real, '/');
    if (!slash)
      return -1;
    *slash = '\0';
  }
  const char *base = strrchr(real, '/');
  base = base ? base + 1 : real;
  if (!*base || strlen(base) >= n)
    return -1;
  snprintf(name, n, "%s", base);
  return 0;
}

int nv_sysfs_ns_ident(const char *sysroot, const char *disk, char *nqn, size_t n,
                      uint32_t *nsid) {
  char p[PATH_MAX], v[32];
  if (strncmp(disk, "nvme", 4) != 0)
    return -1;
  snprintf(p, sizeof p, "%s/block/%s/nsid", sysroot, disk);
  if (read_attr(p, v, sizeof v))
    return -1;
  char *end;
  unsigned long id = strtoul(v, &end, 0);
  if (end == v || id == 0 || id > UINT32_MAX)
    return -1;
  /* device/ is the controller, or the subsystem for a multipath head:
   * both carry subsysnqn. */
  snprintf(p, sizeof p, "%s/block/%s/device/subsysnqn", sysroot, disk);
  if (read_attr(p, nqn, n) || !nqn[0])
    return -1;
  *nsid = (uint32_t)id;
  return 0;
}

int nv_sysfs_find_ns(const char *sysroot, const char *nqn, uint32_t nsid, char *disk,
                     size_t n) {
  char names[256][NV_DISK_NAME];
  int nd = nv_sysfs_disks(sysroot, names, 256);
  for (int i = 0; i < nd; i++) {
    char q[256];
    uint32_t id = 0;
    if (nv_sysfs_ns_ident(sysroot, names[i], q, sizeof q, &id) == 0 && id == nsid &&
        strcmp(q, nqn) == 0 && strlen(names[i]) < n) {
      snprintf(disk, n, "%s", names[i]);
      return 0;
    }
  }
  return -1;
}
