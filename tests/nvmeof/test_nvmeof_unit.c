/* nvmeof white-box checks: the remote key codec (round trip; every bit
 * flip and every truncation refused), the sysfs lookups over a tree this
 * test builds (an NVMe-oF namespace nvme9n1 of a subsystem, a hidden
 * multipath path, a partition, skipped loop devices), and an import through
 * the namespace: the plugin (loaded with dlopen, hosted by the fake host)
 * maps a peer's key naming subsystem NQN + nsid to <dev_root>/nvme9n1 and
 * reads it; an unconnected namespace is MC_ENODEV.  argv[1]: the plugin. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fake_host.h"
#include "nvme_key.h"
#include "nvme_sysfs.h"
#include "testutil.h"

static char root[256];

static void put(const char *rel, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  /* make parents */
  for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
    *s = '\0';
    mkdir(p, 0755);
    *s = '/';
  }
  if (text) {
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
  } else {
    mkdir(p, 0755);
  }
}

static void link_(const char *target, const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  CHECK(symlink(target, p) == 0);
}

#define NQN "nqn.2014-08.org.example:kvcache-sub1"

static void check_codec(void) {
  nv_key k;
  memset(&k, 0, sizeof k);
  k.kind = NV_KIND_FILE;
  k.flags = NV_KEY_RO;
  k.reg_id = 0x1122334455667788ull;
  k.host_hash = 42;
  k.pid = 77;
  k.nsid = 3;
  k.addr = 0x7f0000000000ull;
  k.len = 1 << 20;
  k.file_offset = 5ull << 32;
  k.dev = 259 << 8;
  snprintf(k.nqn, sizeof k.nqn, "%s", NQN);
  snprintf(k.path, sizeof k.path, "/dev/nvme1n1");
  uint8_t b[MC_RKEY_MAX];
  size_t n = nv_key_encode(&k, b, sizeof b);
  CHECK(n <= sizeof b);
  CHECK(nv_key_encode(&k, b, 10) == n); /* size query */
  nv_key d;
  CHECK_OK(nv_key_decode(b, n, &d));
  CHECK(d.reg_id == k.reg_id && d.nsid == 3 && d.addr == k.addr && d.len == k.len &&
        d.file_offset == k.file_offset && d.flags == NV_KEY_RO && d.pid == 77);
  CHECK(!strcmp(d.nqn, NQN) && !strcmp(d.path, "/dev/nvme1n1"));
  for (size_t bit = 0; bit < n * 8; bit++) {
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    CHECK_MSG(nv_key_decode(b, n, &d) == MC_EPROTO, "bit %zu flipped was accepted", bit);
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  for (size_t l = 0; l < n; l++)
    CHECK_MSG(nv_key_decode(b, l, &d) == MC_EPROTO, "%zu-byte prefix accepted", l);
  CHECK(nv_key_decode(NULL, n, &d) == MC_EPROTO);
  uint8_t desc[NV_DESC_LEN];
  uint64_t h = 0;
  nv_desc_encode(99, desc);
  CHECK_OK(nv_desc_decode(desc, sizeof desc, &h));
  CHECK(h == 99);
  CHECK(nv_desc_decode(desc, sizeof desc - 1, &h) == MC_EPROTO);
  desc[0] ^= 1;
  CHECK(nv_desc_decode(desc, sizeof desc, &h) == MC_EPROTO);
  printf("codec: %zu-byte key round trip; %zu bit flips and every prefix refused\n", n, n * 8);
}

static void build_tree(void) {
  put("sys/block/nvme9n1/nsid", "3\n");
  put("sys/block/nvme9n1/device/subsysnqn", NQN "\n");
  put("sys/block/nvme9c9n1/nsid", "3\n"); /* a multipath path: hidden */
  put("sys/block/nvme9c9n1/hidden", "1\n");
  put("sys/block/nvme9c9n1/device/subsysnqn", NQN "\n");
  put("sys/block/nvme8n2/nsid", "2\n"); /* another subsystem */
  put("sys/block/nvme8n2/device/subsysnqn", "nqn.2014-08.org.example:other\n");
  put("sys/block/vdz/vdz1/partition", "1\n");
  put("sys/block/loop0/size", "0\n");
  put("sys/dev/block/x", "");
  link_("../../block/nvme9n1", "sys/dev/block/259:3");
  link_("../../block/vdz/vdz1", "sys/dev/block/253:1");
  put("dev/x", "");
}

static void check_sysfs(void) {
  char sys[300];
  snprintf(sys, sizeof sys, "%s/sys", root);
  char names[8][NV_DISK_NAME];
  int n = nv_sysfs_disks(sys, names, 8);
  CHECK_EQ_INT(n, 3);
  CHECK(!strcmp(names[0], "nvme8n2") && !strcmp(names[1], "nvme9n1") && !strcmp(names[2], "vdz"));
  char disk[NV_DISK_NAME], nqn[256];
  uint32_t id = 0;
  CHECK_OK(nv_sysfs_find_ns(sys, NQN, 3, disk, sizeof disk));
  CHECK(!strcmp(disk, "nvme9n1"));
  CHECK(nv_sysfs_find_ns(sys, NQN, 4, disk, sizeof disk) == -1);
  CHECK(nv_sysfs_find_ns(sys, "nqn.none", 3, disk, sizeof disk) == -1);
  CHECK_OK(nv_sysfs_ns_ident(sys, "nvme9n1", nqn, sizeof nqn, &id));
  CHECK(id == 3 && !strcmp(nqn, NQN));
  CHECK(nv_sysfs_ns_ident(sys, "vdz", nqn, sizeof nqn, &id) == -1);
  CHECK_OK(nv_sysfs_disk_of(sys, 259, 3, disk, sizeof disk));
  CHECK(!strcmp(disk, "nvme9n1"));
  CHECK_OK(nv_sysfs_disk_of(sys, 253, 1, disk, sizeof disk));
  CHECK(!strcmp(disk, "vdz"));
  CHECK(nv_sysfs_disk_of(sys, 1, 1, disk, sizeof disk) == -1);
  printf("sysfs: disks listed (loop and hidden paths left out), namespace found by NQN+nsid, "
         "partition mapped to its disk\n");
}

typedef struct done {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int n, status;
} done;

static void on_complete(void *arg, uint64_t token, int status, uint64_t bytes, int32_t v) {
  (void)token;
  (void)bytes;
  (void)v;
  done *d = arg;
  pthread_mutex_lock(&d->lock);
  d->n++;
  d->status = status;
  pthread_cond_broadcast(&d->cond);
  pthread_mutex_unlock(&d->lock);
}

static void check_import(const char *so) {
  void *dl = NULL;
  char err[256];
  const mc_transport_ops *ops = mc_fake_load(so, &dl, err, sizeof err);
  CHECK_MSG(ops != NULL, "%s", err);
  mc_fake_host h;
  mc_fake_host_init(&h, "unit", ops);
  char sys[300], dev[300];
  snprintf(sys, sizeof sys, "%s/sys", root);
  snprintf(dev, sizeof dev, "%s/dev", root);
  CHECK_OK(mc_fake_host_set(&h, "sysfs_root", sys));
  CHECK_OK(mc_fake_host_set(&h, "dev_root", dev));
  done dn = {.n = 0};
  pthread_mutex_init(&dn.lock, NULL);
  pthread_cond_init(&dn.cond, NULL);
  h.on_complete = on_complete;
  h.cb_arg = &dn;
  mc_init_args ia = {sizeof ia, "unit:1", "127.0.0.1", "this-host"};
  void *ctx = NULL;
  CHECK_OK(ops->init(&h.api, &ia, &ctx));
  mc_rail_info rails[8];
  uint32_t nr = 8;
  CHECK_OK(ops->query_rails(ctx, rails, &nr));
  CHECK_EQ_INT(nr, 4); /* nvme8n2 nvme9n1 vdz + files */
  CHECK(!strcmp(rails[1].name, "nvme9n1") && !strcmp(rails[3].name, "files"));
  /* The namespace as this host sees it: a 1 MiB stand-in file. */
  char nsdev[400];
  snprintf(nsdev, sizeof nsdev, "%s/nvme9n1", dev);
  uint8_t *data = malloc(1 << 20);
  for (int i = 0; i < 1 << 20; i++)
    data[i] = (uint8_t)(i * 7 + (i >> 12));
  int fd = open(nsdev, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  CHECK(fd >= 0 && write(fd, data, 1 << 20) == 1 << 20);
  close(fd);
  /* A peer's key: another host, subsystem NQN, nsid 3, a range at 64 KiB. */
  nv_key k;
  memset(&k, 0, sizeof k);
  k.kind = NV_KIND_FILE;
  k.reg_id = 5;
  k.host_hash = 0xfeedull;
  k.pid = 1;
  k.nsid = 3;
  k.addr = 0x100000000ull;
  k.len = 512 << 10;
  k.file_offset = 64 << 10;
  snprintf(k.nqn, sizeof k.nqn, "%s", NQN);
  snprintf(k.path, sizeof k.path, "/dev/nvme0n1");
  uint8_t key[MC_RKEY_MAX], desc[NV_DESC_LEN];
  size_t kl = nv_key_encode(&k, key, sizeof key);
  nv_desc_encode(0xfeedull, desc);
  void *ep = NULL, *rm = NULL, *lm = NULL;
  CHECK_OK(ops->connect(ctx, "peer:2", desc, sizeof desc, &ep));
  CHECK_OK(ops->import_mem(ctx, ep, k.addr, k.len, key, kl, &rm));
  uint8_t *loc = calloc(1, 256 << 10);
  mc_mem_desc md = {(uint64_t)(uintptr_t)loc, 256 << 10, MC_MEM_CPU, -1, "cpu:0", NULL, 0, 0};
  uint8_t lk[MC_RKEY_MAX];
  size_t lkl = sizeof lk;
  CHECK_OK(ops->register_mem(ctx, &md, &lm, lk, &lkl));
  mc_slice s = {1, MC_OP_READ, 0, lm, md.addr, rm, k.addr + 4096 + 3, (256 << 10) - 5};
  uint32_t acc = 0;
  CHECK_OK(ops->submit(ctx, ep, &s, 1, &acc));
  CHECK_EQ_INT(acc, 1);
  pthread_mutex_lock(&dn.lock);
  while (dn.n < 1)
    pthread_cond_wait(&dn.cond, &dn.lock);
  pthread_mutex_unlock(&dn.lock);
  CHECK_OK(dn.status);
  CHECK(memcmp(loc, data + (64 << 10) + 4096 + 3, (256 << 10) - 5) == 0);
  /* Past the key's range, at import. */
  void *rm2 = NULL;
  CHECK(ops->import_mem(ctx, ep, k.addr, k.len + 1, key, kl, &rm2) == MC_ERANGE);
  /* A namespace this host has not connected. */
  k.nsid = 4;
  kl = nv_key_encode(&k, key, sizeof key);
  CHECK(ops->import_mem(ctx, ep, k.addr, k.len, key, kl, &rm2) == MC_ENODEV);
  CHECK(strstr(h.last_warn, "not connected") != NULL);
  /* A plain file of another host: out of reach. */
  k.nqn[0] = '\0';
  kl = nv_key_encode(&k, key, sizeof key);
  CHECK(ops->import_mem(ctx, ep, k.addr, k.len, key, kl, &rm2) == MC_ENODEV);
  CHECK_OK(ops->release_mem(ctx, rm));
  CHECK_OK(ops->deregister_mem(ctx, lm));
  CHECK_OK(ops->disconnect(ctx, ep));
  CHECK_OK(ops->fini(ctx));
  mc_fake_host_fini(&h);
  dlclose(dl);
  free(loc);
  free(data);
  printf("import: a peer's namespace (NQN + nsid) read through %s; unconnected namespace and "
         "another host's plain file MC_ENODEV\n", nsdev);
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  check_codec();
  CHECK(tu_mkdtemp(root, sizeof root, "nvmeof-sysfs") == 0);
  build_tree();
  check_sysfs();
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  long fd = syscall(__NR_io_uring_setup, 4, &p);
  if (fd < 0) {
    printf("import: skipped, io_uring is not available here (%s)\n", strerror(errno));
  } else {
    close((int)fd);
    check_import(argv[1]);
  }
  tu_rmtree(root);
  return 0;
}
