/* nvme_sysfs.h - what the nvmeof plugin reads from sysfs: the block devices
 * (one rail each), the disk a file lives on, and the NVMe subsystem NQN and
 * namespace id of a disk, both ways.  sysroot is "/sys" normally (the
 * `sysfs_root` key; tests point it at a tree they build). */
#ifndef MC_NVME_SYSFS_H
#define MC_NVME_SYSFS_H

#include <stddef.h>
#include <stdint.h>

#define NV_DISK_NAME 32

/* Sorted names of the block devices under <sysroot>/block that can hold
 * data files (loop, ram, zram, optical, floppy and hidden multipath paths
 * are left out); returns how many (at most max). */
int nv_sysfs_disks(const char *sysroot, char (*names)[NV_DISK_NAME], int max);

/* The whole-disk name holding device maj:min (a partition maps to its
 * disk); 0 or -1 when sysfs does not know it (tmpfs, NFS...). */
int nv_sysfs_disk_of(const char *sysroot, uint32_t maj, uint32_t min, char *name,
                     size_t n);

/* NQN and nsid of NVMe namespace disk `disk` ("nvme1n1"); 0, or -1 when it
 * is not an NVMe namespace. */
int nv_sysfs_ns_ident(const char *sysroot, const char *disk, char *nqn, size_t n,
                      uint32_t *nsid);

/* The namespace disk of subsystem nqn with id nsid on this host (what `nvme
 * connect` created); 0 with its name, or -1 when none is connected. */
int nv_sysfs_find_ns(const char *sysroot, const char *nqn, uint32_t nsid, char *disk,
                     size_t n);

#endif
