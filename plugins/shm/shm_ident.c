/* shm transport: host and process identity, and the same-host proof. */
#include "shm_ident.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mooncake/errors.h"

static const uint8_t ident_magic[4] = {'M', 'C', 'S', 'I'};

static int read_small(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, len - 1);
  close(fd);
  if (n < 0)
    return -1;
  buf[n] = 0;
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* "1e37510d-eb7f-4ee6-baab-688522ad7107" -> 16 bytes. */
static int parse_uuid(const char *s, uint8_t out[16]) {
  int n = 0;
  for (; *s && *s != '\n' && n < 32; s++) {
    if (*s == '-')
      continue;
    int v = hexval((unsigned char)*s);
    if (v < 0)
      return -1;
    if (n % 2 == 0)
      out[n / 2] = (uint8_t)(v << 4);
    else
      out[n / 2] |= (uint8_t)v;
    n++;
  }
  return n == 32 ? 0 : -1;
}

int shm_ident_self(shm_desc *d, const char *host_id, const char **why) {
  char buf[128];
  if (read_small("/proc/sys/kernel/random/boot_id", buf, sizeof buf) ||
      parse_uuid(buf, d->boot_id)) {
    *why = "/proc/sys/kernel/random/boot_id";
    return MC_EIO;
  }
  static const char *const ns[3] = {"/proc/self/ns/net", "/proc/self/ns/ipc",
                                    "/proc/self/ns/pid"};
  uint64_t *dst[3] = {&d->ns_net, &d->ns_ipc, &d->ns_pid};
  for (int i = 0; i < 3; i++) {
    struct stat st;
    if (stat(ns[i], &st)) {
      *why = ns[i];
      return MC_EIO;
    }
    *dst[i] = st.st_ino;
    d->ns_dev = st.st_dev;
  }
  d->pid = (uint32_t)getpid();
  d->start_time = shm_ident_start_time(d->pid);
  if (!d->start_time) {
    *why = "/proc/self/stat";
    return MC_EIO;
  }
  d->host_id[0] = 0;
  if (host_id) {
    size_t n = strnlen(host_id, SHM_HOST_ID_MAX);
    memcpy(d->host_id, host_id, n);
    d->host_id[n] = 0;
  }
  return 0;
}

const char *shm_ident_mismatch(const shm_desc *self, const shm_desc *peer) {
  if (self->host_id[0] && peer->host_id[0] &&
      strcmp(self->host_id, peer->host_id))
    return "host_id differs";
  if (memcmp(self->boot_id, peer->boot_id, 16))
    return "boot id differs (another host or kernel)";
  if (self->ns_dev != peer->ns_dev || self->ns_pid != peer->ns_pid)
    return "pid namespace differs";
  if (self->ns_net != peer->ns_net)
    return "network namespace differs";
  if (self->ns_ipc != peer->ns_ipc)
    return "IPC namespace differs";
  return NULL;
}

uint64_t shm_ident_start_time(uint32_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
  if (read_small(path, buf, sizeof buf))
    return 0;
  /* comm may hold spaces and parens: fields restart after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p)
    return 0;
  p++;
  for (int field = 3; field <= 22; field++) {
    while (*p == ' ')
      p++;
    if (field == 22)
      return strtoull(p, NULL, 10);
    p = strchr(p, ' ');
    if (!p)
      return 0;
  }
  return 0;
}

int shm_ident_prove(const shm_desc *peer, int *fdp, char *errbuf, size_t errlen) {
  *fdp = -1;
  char path[64];
  if (peer->ident_fd < 0) {
    snprintf(errbuf, errlen, "peer pid %u published no ident fd", peer->pid);
    return MC_EPEER;
  }
  snprintf(path, sizeof path, "/proc/%u/fd/%d", peer->pid, peer->ident_fd);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(errbuf, errlen, "cannot open %s: %s", path, strerror(e));
    return e == EACCES || e == EPERM ? MC_EACCES : MC_EPEER;
  }
  uint8_t blob[24];
  ssize_t n = pread(fd, blob, sizeof blob, 0);
  if (n != (ssize_t)sizeof blob || memcmp(blob, ident_magic, 4) ||
      memcmp(blob + 4, peer->nonce, 16) || memcmp(blob + 20, &peer->pid, 4)) {
    close(fd);
    snprintf(errbuf, errlen, "%s does not hold the peer's nonce", path);
    return MC_EPEER;
  }
  if (shm_ident_start_time(peer->pid) != peer->start_time) {
    close(fd);
    snprintf(errbuf, errlen, "pid %u was restarted", peer->pid);
    return MC_EPEER;
  }
  *fdp = fd;
  return 0;
}

void shm_ident_ptrace_scope(char *buf, size_t len) {
  char v[32];
  if (read_small("/proc/sys/kernel/yama/ptrace_scope", v, sizeof v)) {
    snprintf(buf, len, "absent (no Yama LSM)");
    return;
  }
  v[strcspn(v, "\n")] = 0;
  snprintf(buf, len, "%s", v);
}
