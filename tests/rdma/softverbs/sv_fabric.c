/* sv_fabric.c - libsoftverbs's configuration, shared fabric file, slot of
 * this process and fake sysfs tree (see sv.h).
 *
 * Config file: $SOFTVERBS_CONFIG, one directive a line ('#' comments):
 *   fabric <path>            the shared file (created, 0600)
 *   nic <name> [numa=N] [pci=DDDD:BB:DD.F] [mtu=256..4096]
 *       [max_mr_size=BYTES] [link=eth|ib]
 * The sysfs tree lives at <path>.sysfs/<name>/device -> ../pci/<pci>, with
 * numa_node, and is what ibv_device.ibdev_path points at, so the plugin
 * reads NUMA node and PCI address the way it does on a real host. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sv.h"

sv_global sv_g;

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sv_g.err, sizeof sv_g.err, fmt, ap);
  va_end(ap);
  fprintf(stderr, "softverbs: %s\n", sv_g.err);
  return -1;
}

static enum ibv_mtu mtu_enum(long v) {
  switch (v) {
  case 256: return IBV_MTU_256;
  case 512: return IBV_MTU_512;
  case 1024: return IBV_MTU_1024;
  case 2048: return IBV_MTU_2048;
  default: return IBV_MTU_4096;
  }
}

/* Written aside and renamed into place: processes sharing the fabric
 * create the tree at the same time and must never read a half file. */
static void write_file(const char *path, const char *text) {
  char tmp[800];
  snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ssize_t w = write(fd, text, strlen(text));
    (void)w;
    close(fd);
    if (rename(tmp, path))
      unlink(tmp);
  }
}

static void make_sysfs(const char *fabric, int i) {
  char base[300], p[600], t[700];
  snprintf(base, sizeof base, "%s.sysfs", fabric);
  mkdir(base, 0700);
  snprintf(p, sizeof p, "%s/pci", base);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/pci/%s", base, sv_g.cfg[i].pci);
  mkdir(p, 0700);
  snprintf(t, sizeof t, "%s/numa_node", p);
  char num[32];
  snprintf(num, sizeof num, "%d\n", sv_g.cfg[i].numa);
  write_file(t, num);
  snprintf(p, sizeof p, "%s/%s", base, sv_g.cfg[i].name);
  mkdir(p, 0700);
  snprintf(t, sizeof t, "%s/device", p);
  char target[300];
  snprintf(target, sizeof target, "../pci/%s", sv_g.cfg[i].pci);
  if (symlink(target, t) && errno != EEXIST)
    fprintf(stderr, "softverbs: cannot link %s\n", t);
  struct ibv_device *d = &sv_g.dev[i];
  memset(d, 0, sizeof *d);
  d->node_type = IBV_NODE_CA;
  d->transport_type = IBV_TRANSPORT_IB;
  snprintf(d->name, sizeof d->name, "%s", sv_g.cfg[i].name);
  snprintf(d->dev_name, sizeof d->dev_name, "uverbs%d", i);
  size_t pl = strlen(p);
  if (pl >= sizeof d->ibdev_path)
    pl = sizeof d->ibdev_path - 1;
  memcpy(d->ibdev_path, p, pl);
  memcpy(d->dev_path, p, pl);
}

static int parse_config(char *fabric, size_t flen) {
  const char *path = getenv("SOFTVERBS_CONFIG");
  if (!path || !*path)
    return fail("%s", "SOFTVERBS_CONFIG is not set");
  FILE *f = fopen(path, "r");
  if (!f)
    return fail("cannot open config %s", path);
  char line[512];
  fabric[0] = '\0';
  while (fgets(line, sizeof line, f)) {
    char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
    if (!tok || tok[0] == '#')
      continue;
    if (!strcmp(tok, "fabric")) {
      tok = strtok_r(NULL, " \t\r\n", &save);
      if (tok)
        snprintf(fabric, flen, "%s", tok);
    } else if (!strcmp(tok, "nic") && sv_g.nnic < SV_NICS) {
      sv_nic_cfg *c = &sv_g.cfg[sv_g.nnic];
      tok = strtok_r(NULL, " \t\r\n", &save);
      if (!tok)
        continue;
      snprintf(c->name, sizeof c->name, "%s", tok);
      c->numa = -1;
      snprintf(c->pci, sizeof c->pci, "0000:%02x:00.0", 0x10 + sv_g.nnic);
      c->mtu = IBV_MTU_4096;
      c->max_mr_size = 1ull << 40;
      while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
        if (!strncmp(tok, "numa=", 5))
          c->numa = atoi(tok + 5);
        else if (!strncmp(tok, "pci=", 4))
          snprintf(c->pci, sizeof c->pci, "%s", tok + 4);
        else if (!strncmp(tok, "mtu=", 4))
          c->mtu = mtu_enum(atol(tok + 4));
        else if (!strncmp(tok, "max_mr_size=", 12))
          c->max_mr_size = strtoull(tok + 12, NULL, 0);
        else if (!strcmp(tok, "link=ib"))
          c->link_ib = 1;
      }
      sv_g.nnic++;
    }
  }
  fclose(f);
  if (!fabric[0])
    return fail("config %s has no fabric line", path);
  return 0;
}

/* A slot whose owner is gone is free: a killed peer leaves its slot. */
static int claim_slot(void) {
  int32_t me = (int32_t)getpid();
  for (int s = 0; s < SV_SLOTS; s++) {
    int32_t cur = atomic_load(&sv_g.fab->slot[s].pid);
    if (cur == me)
      return s;
    if (cur != 0 && !(kill(cur, 0) < 0 && errno == ESRCH))
      continue;
    if (atomic_compare_exchange_strong(&sv_g.fab->slot[s].pid, &cur, me)) {
      sv_slot *sl = &sv_g.fab->slot[s];
      memset((char *)sl + sizeof sl->pid, 0, sizeof *sl - sizeof sl->pid);
      atomic_store(&sl->next_tag, (uint32_t)me * 2654435761u);
      return s;
    }
  }
  return -1;
}

void sv_global_init(void) {
  char fabric[256];
  if (parse_config(fabric, sizeof fabric))
    return;
  int fd = open(fabric, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    fail("cannot open fabric %s", fabric);
    return;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && (size_t)st.st_size < sizeof(sv_fabric) &&
      ftruncate(fd, (off_t)sizeof(sv_fabric))) {
    close(fd);
    fail("cannot size fabric %s", fabric);
    return;
  }
  void *m = mmap(NULL, sizeof(sv_fabric), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    fail("cannot map fabric %s", fabric);
    return;
  }
  sv_g.fab = m;
  sv_g.slot = claim_slot();
  if (sv_g.slot < 0) {
    fail("%s", "no free fabric slot");
    return;
  }
  sv_g.me = &sv_g.fab->slot[sv_g.slot];
  for (int i = 0; i < sv_g.nnic; i++) {
    make_sysfs(fabric, i);
    sv_g.me->nic[i].mtu = (uint32_t)sv_g.cfg[i].mtu;
  }
  sv_g.ok = 1;
}

int sv_gid_for(int slot, int nic, int v2, union ibv_gid *gid) {
  memset(gid, 0, sizeof *gid);
  uint32_t gen = atomic_load(&sv_g.fab->slot[slot].nic[nic].gid_gen);
  if (v2) {
    gid->raw[10] = 0xff;
    gid->raw[11] = 0xff;
    gid->raw[12] = 10;
    gid->raw[13] = (uint8_t)slot;
    gid->raw[14] = (uint8_t)nic;
    gid->raw[15] = (uint8_t)(1 + gen);
  } else {
    gid->raw[0] = 0xfe;
    gid->raw[1] = 0x80;
    gid->raw[13] = (uint8_t)gen;
    gid->raw[14] = (uint8_t)slot;
    gid->raw[15] = (uint8_t)nic;
  }
  return 0;
}

int sv_gid_decode(const union ibv_gid *gid, int *slot, int *nic, uint32_t *gen) {
  if (gid->raw[0] == 0xfe && gid->raw[1] == 0x80) {
    *slot = gid->raw[14];
    *nic = gid->raw[15];
    *gen = gid->raw[13];
  } else if (gid->raw[10] == 0xff && gid->raw[11] == 0xff && gid->raw[12] == 10) {
    *slot = gid->raw[13];
    *nic = gid->raw[14];
    *gen = (uint8_t)(gid->raw[15] - 1);
  } else {
    return -1;
  }
  return *slot < SV_SLOTS && *nic < SV_NICS ? 0 : -1;
}
