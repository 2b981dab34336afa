/* Topology: rail choices on an hwloc XML 2-socket/8-GPU/8-NIC box and a
 * synthetic 2-socket box, YAML overrides, printing that the config parser
 * reads back, a fake sysfs tree, and discovery of this host.
 * argv[1] = directory holding dgx_2s8g8n.xml. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "mooncake/errors.h"
#include "topology.h"

static const char *dir;

/* Ranks and renders "p0,p1|f0,f1" for compact expectations. */
static void rank(const mc_topology *t, const char *loc, const mc_topo_rail *r,
                 size_t n, char *out, size_t len) {
  uint32_t p[32], f[32];
  size_t np, nf;
  CHECK_RC(mc_topo_select(t, loc, r, n, p, &np, f, &nf), 0);
  size_t o = 0;
  out[0] = 0;
  for (size_t i = 0; i < np; i++)
    o += (size_t)snprintf(out + o, len - o, "%s%u", i ? "," : "", p[i]);
  o += (size_t)snprintf(out + o, len - o, "|");
  for (size_t i = 0; i < nf; i++)
    o += (size_t)snprintf(out + o, len - o, "%s%u", i ? "," : "", f[i]);
}

static void expect(const mc_topology *t, const char *loc, const mc_topo_rail *r,
                   size_t n, const char *want) {
  char got[256];
  rank(t, loc, r, n, got, sizeof got);
  if (strcmp(got, want)) {
    fprintf(stderr, "%s: got %s, want %s\n", loc, got, want);
    exit(1);
  }
}

static const mc_topo_dev *find_dev(const mc_topology *t, const char *name) {
  for (size_t i = 0; i < t->ndevs; i++)
    if (!strcmp(t->devs[i].name, name))
      return &t->devs[i];
  return NULL;
}

static void test_dgx(void) {
  char path[4096], err[256];
  snprintf(path, sizeof path, "%s/dgx_2s8g8n.xml", dir);
  mc_topology *t = NULL;
  int rc = mc_topo_load_xml(path, &t, err, sizeof err);
  if (rc == MC_ENOTSUP) {
    printf("SKIP dgx: %s\n", err);
    return;
  }
  CHECK(rc == 0);
  CHECK(t->nnuma == 2 && t->distance && t->distance[1] == 21);
  CHECK(!strcmp(t->numa[0].cpus, "0-3") && !strcmp(t->numa[1].cpus, "4-7"));
  CHECK_EQ_INT(t->ndevs, 16); /* ib* netdevs of RDMA NICs are not extra rails */
  mc_topo_rail r[9];
  char names[8][16];
  for (int i = 0; i < 8; i++) {
    snprintf(names[i], sizeof names[i], "mlx5_%d", i);
    const mc_topo_dev *d = find_dev(t, names[i]);
    CHECK(d && d->kind == MC_TOPO_NIC && d->numa_node == i / 4 && d->depth == 3);
    /* rails carry only their PCI address, as an rdma plugin reports it */
    r[i] = (mc_topo_rail){"rdma", names[i], -1, d->pci_bus_id};
    char gpu[16];
    snprintf(gpu, sizeof gpu, "cuda:%d", i);
    const mc_topo_dev *g = find_dev(t, gpu);
    CHECK(g && g->kind == MC_TOPO_GPU && g->numa_node == i / 4);
    CHECK(mc_topo_location_numa(t, gpu) == i / 4);
  }
  /* GPU: its own NIC, then its switch, its socket, the other socket. */
  expect(t, "cuda:0", r, 8, "0|1,2,3,4,5,6,7");
  expect(t, "cuda:3", r, 8, "3|2,0,1,4,5,6,7");
  expect(t, "cuda:5", r, 8, "5|4,6,7,0,1,2,3");
  /* CPU: the NICs of its socket, then the others. */
  expect(t, "cpu:0", r, 8, "0,1,2,3|4,5,6,7");
  expect(t, "cpu:1", r, 8, "4,5,6,7|0,1,2,3");
  /* A rail of unknown place (tcp) sits after local and before remote. */
  r[8] = (mc_topo_rail){"tcp", "conn0", -1, 0};
  expect(t, "cpu:1", r, 9, "4,5,6,7|8,0,1,2,3");
  expect(t, "cuda:6", r, 9, "6|7,4,5,8,0,1,2,3");
  /* Unknown or absent locations: no locality. */
  expect(t, "cuda:9", r, 4, "0,1,2,3|");
  expect(t, "cpu", r, 2, "0,1|");
  expect(t, NULL, r, 2, "0,1|");
  uint32_t p[9], f[9];
  size_t np, nf;
  CHECK_RC(mc_topo_select(t, "cuda:x", r, 9, p, &np, f, &nf), MC_EINVAL);
  CHECK_RC(mc_topo_select(t, "CUDA:1", r, 9, p, &np, f, &nf), MC_EINVAL);
  CHECK_RC(mc_topo_select(t, "cuda:", r, 9, p, &np, f, &nf), MC_EINVAL);

  /* YAML overrides discovery for the locations it names. */
  char *pref[] = {"rdma:mlx5_3"}, *fb[] = {"mlx5_2", "nosuch"};
  mc_config_topo e = {"cuda:0", pref, 1, fb, 2, 1};
  CHECK_RC(mc_topo_apply_config(t, &e, 1), 0);
  expect(t, "cuda:0", r, 9, "3,8|2"); /* other rdma rails left out */
  expect(t, "cuda:1", r, 9, "1|0,2,3,8,4,5,6,7");

  /* Printed YAML is what the config parser reads back. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f2 = open_memstream(&buf, &len);
  CHECK_RC(mc_topo_print_yaml(t, NULL, 0, f2), 0);
  fclose(f2);
  CHECK(strstr(buf, "  \"cuda:1\": {preferred: [\"mlx5_1\"], fallback: "
                    "[\"mlx5_0\", \"mlx5_2\", \"mlx5_3\", \"mlx5_4\", \"mlx5_5\", "
                    "\"mlx5_6\", \"mlx5_7\"]}\n"));
  CHECK(strstr(buf, "  \"cuda:0\": {preferred: [\"rdma:mlx5_3\"], fallback: "
                    "[\"mlx5_2\", \"nosuch\"]}\n"));
  mc_config *cfg = NULL;
  char cerr[MC_CONFIG_ERR_MAX];
  rc = mc_config_load_string(buf, len, "mc-topology output", &cfg, cerr,
                             sizeof cerr);
  if (rc)
    fprintf(stderr, "%s\n----\n%s", cerr, buf);
  CHECK(rc == 0);
  CHECK_EQ_INT(cfg->ntopology, 10); /* cpu:0-1, cuda:1-7, then cuda:0 */
  mc_topology *back = NULL;
  CHECK_RC(mc_topo_from_config(cfg->topology, cfg->ntopology, &back), 0);
  for (int i = 0; i < 8; i++) {
    char gpu[16], a[256], b[256];
    snprintf(gpu, sizeof gpu, "cuda:%d", i);
    rank(t, gpu, r, 8, a, sizeof a);
    rank(back, gpu, r, 8, b, sizeof b);
    CHECK(!strcmp(a, b));
  }
  mc_topo_free(back);
  mc_config_free(cfg);
  free(buf);
  mc_topo_free(t);
  printf("dgx 2-socket 8-GPU 8-NIC: ok\n");
}

static void test_synthetic(void) {
  mc_topology *t = NULL;
  char err[256];
  int rc = mc_topo_load_synthetic("pack:2 numa:1 core:4 pu:2", &t, err, sizeof err);
  if (rc == MC_ENOTSUP) {
    printf("SKIP synthetic: %s\n", err);
    return;
  }
  CHECK(rc == 0);
  CHECK(t->nnuma == 2 && t->ndevs == 0);
  CHECK(!strcmp(t->numa[0].cpus, "0-7") && !strcmp(t->numa[1].cpus, "8-15"));
  mc_topo_rail r[5] = {{"efa", "rdmap0", 1, 0},
                       {"efa", "rdmap1", 0, 0},
                       {"tcp", "conn0", -1, 0},
                       {"efa", "rdmap2", 1, 0},
                       {"efa", "rdmap3", 0, 0}};
  expect(t, "cpu:0", r, 5, "1,4|2,0,3");
  expect(t, "cpu:1", r, 5, "0,3|2,1,4");
  expect(t, "cpu:7", r, 5, "0,1,2,3,4|"); /* no such node */
  CHECK_RC(mc_topo_load_synthetic("pack:x", &t, err, sizeof err), MC_EINVAL);
  CHECK(strstr(err, "pack:x"));
  mc_topo_free(t);
  printf("synthetic 2-socket: ok\n");
}

static void put(const char *root, const char *rel, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  for (char *s = strchr(path + strlen(root) + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    mkdir(path, 0755);
    *s = '/';
  }
  if (text) {
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
  } else {
    mkdir(path, 0755);
  }
}

static void test_sysfs(void) {
  char root[] = "/tmp/mc-topo-sysfs-XXXXXX";
  CHECK(mkdtemp(root));
  put(root, "devices/system/node/node0/cpulist", "0-3\n");
  put(root, "devices/system/node/node0/distance", "10 32\n");
  put(root, "devices/system/node/node1/cpulist", "4-7\n");
  put(root, "devices/system/node/node1/distance", "32 10\n");
  const char *nic0 = "devices/pci0000:00/0000:00:01.0/0000:01:00.0";
  const char *gpu0 = "devices/pci0000:00/0000:00:01.0/0000:02:00.0";
  const char *nic1 = "devices/pci0000:80/0000:80:01.0/0000:81:00.0";
  const char *devs[3] = {nic0, gpu0, nic1};
  const char *cls[3] = {"0x020700\n", "0x030200\n", "0x020000\n"};
  const char *ven[3] = {"0x15b3\n", "0x10de\n", "0x8086\n"};
  const char *node[3] = {"0\n", "0\n", "1\n"};
  const char *child[3] = {"infiniband/mlx5_0", NULL, "net/ens5"};
  put(root, "bus/pci/devices/.keep", "");
  for (int i = 0; i < 3; i++) {
    char rel[512], link[512], target[512];
    snprintf(rel, sizeof rel, "%s/class", devs[i]);
    put(root, rel, cls[i]);
    snprintf(rel, sizeof rel, "%s/vendor", devs[i]);
    put(root, rel, ven[i]);
    snprintf(rel, sizeof rel, "%s/numa_node", devs[i]);
    put(root, rel, node[i]);
    if (child[i]) {
      snprintf(rel, sizeof rel, "%s/%s", devs[i], child[i]);
      put(root, rel, NULL);
    }
    snprintf(link, sizeof link, "%s/bus/pci/devices/%s", root,
             strrchr(devs[i], '/') + 1);
    snprintf(target, sizeof target, "../../../%s", devs[i]);
    CHECK(symlink(target, link) == 0);
  }
  mc_topology *t = NULL;
  CHECK_RC(mc_topo_sysfs_load(root, &t), 0);
  CHECK(t->nnuma == 2 && t->distance[1] == 32);
  CHECK_EQ_INT(t->ndevs, 3);
  const mc_topo_dev *g = find_dev(t, "cuda:0"), *n0 = find_dev(t, "mlx5_0"),
                    *n1 = find_dev(t, "ens5");
  CHECK(g && n0 && n1 && g->depth == 2 && n0->depth == 2 && n1->numa_node == 1);
  mc_topo_rail r[2] = {{"tcp", "ens5", -1, n1->pci_bus_id},
                       {"rdma", "mlx5_0", -1, n0->pci_bus_id}};
  expect(t, "cuda:0", r, 2, "1|0");
  expect(t, "cpu:1", r, 2, "0|1");
  mc_topo_free(t);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  CHECK(system(cmd) == 0);
  printf("sysfs tree: ok\n");
}

static void test_this_host(void) {
  mc_topology *t = NULL;
  char err[256];
  CHECK_RC(mc_topo_discover(&t, err, sizeof err), 0);
  CHECK(t->nnuma >= 1);
  FILE *null = fopen("/dev/null", "w");
  CHECK_RC(mc_topo_print_yaml(t, NULL, 0, null), 0);
  fclose(null);
  char loc[32];
  int *page = malloc(4096);
  *page = 1;
  mc_topo_locate_addr(page, loc, sizeof loc);
  CHECK(!strncmp(loc, "cpu:", 4));
  free(page);
  /* Locating must not fault memory in: a page touched before the
   * transports advise huge pages keeps its 2 MiB window in 4 KiB pages. */
  unsigned char *fresh = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(fresh != MAP_FAILED);
  unsigned char resident = 1;
  mc_topo_locate_addr(fresh + 100, loc, sizeof loc);
  CHECK(!strncmp(loc, "cpu:", 4));
  CHECK(mincore(fresh, 4096, &resident) == 0);
  CHECK((resident & 1) == 0);
  /* An mbind policy places a page not yet there: still nothing faulted. */
  unsigned long node0 = 1;
  long mb = syscall(SYS_mbind, fresh + 8192, 4096ul, 2 /* MPOL_BIND */, &node0,
                    8 * sizeof node0, 0u);
  if (mb == 0) {
    CHECK_EQ_INT(mc_topo_addr_node(fresh + 8192), 0);
    CHECK(mincore(fresh + 8192, 4096, &resident) == 0);
    CHECK((resident & 1) == 0);
  } else {
    printf("mbind unavailable (%s): policy lookup not checked\n", strerror(errno));
  }
  /* A page that is there is reported on its node, as the kernel says. */
  fresh[0] = 1;
  int want = -1;
  CHECK(syscall(SYS_get_mempolicy, &want, NULL, 0ul, fresh, 3ul) == 0);
  CHECK(mc_topo_addr_node(fresh) == want);
  munmap(fresh, 1 << 16);
  printf("this host (%s): %zu nodes, %zu devices, heap at %s\n", t->source,
         t->nnuma, t->ndevs, loc);
  mc_topo_free(t);
}

int main(int argc, char **argv) {
  dir = argc > 1 ? argv[1] : ".";
  test_dgx();
  test_synthetic();
  test_sysfs();
  test_this_host();
  return 0;
}
