/* nv_test.c - helpers of the nvmeof engine tests (nv_test.h). */
#include "nv_test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void nt_fill(uint8_t *p, size_t n, uint32_t seed, uint64_t o) {
  for (size_t i = 0; i < n; i++)
    p[i] = nt_pat(seed, o + i);
}

int nt_check(const uint8_t *p, size_t n, uint32_t seed, uint64_t o) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != nt_pat(seed, o + i)) {
      tu_note("byte %zu (offset %llu) is 0x%02x, want 0x%02x", i,
              (unsigned long long)(o + i), p[i], nt_pat(seed, o + i));
      return 0;
    }
  return 1;
}

mc_engine *nt_engine(const char *transports, const char *dir, const char *yaml,
                     const char *plugin_path) {
  mc_engine_opts o = {0};
  o.struct_size = sizeof o;
  o.listen = "127.0.0.1:0";
  o.transports = transports;
  o.plugin_path = plugin_path;
  char cfg[512];
  if (yaml) {
    static int n;
    snprintf(cfg, sizeof cfg, "%s/engine%d.yaml", dir, n++);
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    fputs(yaml, f);
    fclose(f);
    o.config_path = cfg;
  }
  mc_engine *e = NULL;
  char err[512] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  CHECK_MSG(rc == 0, "engine (%s): %s: %s", transports, mc_strerror(rc), err);
  return e;
}

int nt_xfer(mc_engine *e, uint32_t op, void *local, mc_segment *s, uint64_t remote,
            uint64_t len, mc_transfer_status *out) {
  mc_batch *b;
  CHECK_OK(mc_batch_create(e, 1, &b));
  mc_request r = {op, local, s, remote, len};
  CHECK_OK(mc_batch_submit(b, &r, 1));
  mc_batch_wait(b, 60000);
  mc_transfer_status st;
  CHECK_OK(mc_batch_status(b, 0, &st));
  CHECK_MSG(st.state != MC_XFER_PENDING, "request still pending after 60 s");
  mc_batch_destroy(b);
  if (out)
    *out = st;
  return st.state == MC_XFER_COMPLETED ? 0 : st.error ? st.error : MC_EIO;
}

void nt_make_file(const char *path, uint64_t n, uint32_t seed) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  CHECK_MSG(fd >= 0, "create %s", path);
  uint8_t *buf = malloc(1 << 20);
  CHECK(buf != NULL);
  for (uint64_t o = 0; o < n; o += 1 << 20) {
    size_t k = n - o < (1u << 20) ? (size_t)(n - o) : 1u << 20;
    nt_fill(buf, k, seed, o);
    CHECK(pwrite(fd, buf, k, (off_t)o) == (ssize_t)k);
  }
  free(buf);
  close(fd);
}

void nt_pread(const char *path, void *buf, size_t n, uint64_t off) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK_MSG(fd >= 0, "open %s", path);
  CHECK(pread(fd, buf, n, (off_t)off) == (ssize_t)n);
  close(fd);
}

void nt_pwrite(const char *path, const void *buf, size_t n, uint64_t off) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  CHECK_MSG(fd >= 0, "open %s", path);
  CHECK(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
  close(fd);
}
