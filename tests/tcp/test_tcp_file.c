/* The tcp transport serving files (plugins/tcp/tcp_file.c), two processes
 * on loopback through the engine API: the target registers ranges of real
 * temporary files with mc_register_file (one read-write, one read-only);
 * the initiator, which uses only the segment, reads and writes them; every
 * byte is checked against the file itself.  Then: a write into the
 * read-only range fails MC_EACCES and leaves the file unchanged; the file
 * truncated under the registration makes a read past its new end fail
 * with MC_ERANGE (no crash, the connection and the rest of the file still
 * usable). */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mooncake/engine.h"
#include "testutil.h"

#define FILE_OFF 4096u                  /* registered from this file offset */
#define FILE_LEN ((8u << 20) + 123u)    /* bytes of the read-write file */
#define RO_LEN (1u << 20)               /* bytes of the read-only file */
#define LOCAL_LEN (16u << 20)

static uint8_t pat(uint64_t i, uint64_t seed) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
  return (uint8_t)(x >> 29);
}

static void fill(uint8_t *p, uint64_t n, uint64_t seed) {
  for (uint64_t i = 0; i < n; i++)
    p[i] = pat(i, seed);
}

static int make_file(const char *path, uint64_t len, uint64_t seed) {
  uint8_t *b = malloc(len);
  if (!b)
    return -1;
  fill(b, len, seed);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  int ok = fd >= 0 && write(fd, b, len) == (ssize_t)len;
  if (fd >= 0)
    close(fd);
  free(b);
  return ok ? 0 : -1;
}

/* The file's bytes [off, +n) equal p? */
static int file_equals(const char *path, uint64_t off, const uint8_t *p, uint64_t n) {
  uint8_t *b = malloc(n);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int ok = b && fd >= 0 && pread(fd, b, n, (off_t)off) == (ssize_t)n && memcmp(b, p, n) == 0;
  if (fd >= 0)
    close(fd);
  free(b);
  return ok;
}

/* The target: registers both files, prints their addresses, serves until
 * its stdin closes. */
static int target(const char *rw, const char *ro, int out_fd) {
  mc_engine *e;
  char err[512] = "";
  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0", .transports = "tcp"};
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc) {
    fprintf(stderr, "target: engine: %s: %s\n", mc_strerror(rc), err);
    return 1;
  }
  void *a1 = NULL, *a2 = NULL;
  rc = mc_register_file(e, rw, FILE_OFF, 0, 0, &a1);
  int rc2 = rc ? rc : mc_register_file(e, ro, 0, 0, MC_FILE_READ_ONLY, &a2);
  if (rc || rc2) {
    fprintf(stderr, "target: mc_register_file: %s\n", mc_strerror(rc ? rc : rc2));
    mc_engine_destroy(e);
    return 1;
  }
  dprintf(out_fd, "READY %s %" PRIx64 " %" PRIx64 "\n", mc_engine_segment_name(e),
          (uint64_t)(uintptr_t)a1, (uint64_t)(uintptr_t)a2);
  close(out_fd);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  rc = mc_unregister(e, a1);
  rc2 = mc_unregister(e, a2);
  mc_engine_destroy(e);
  return rc || rc2 ? 1 : 0;
}

static int xfer(mc_engine *e, uint32_t op, void *local, mc_segment *s, uint64_t remote,
                uint64_t len) {
  mc_request r = {op, local, s, remote, len};
  return mc_transfer_sync(e, &r, 1, 30000);
}

int main(void) {
  char dir[512], rw[600], ro[600];
  CHECK(tu_mkdtemp(dir, sizeof dir, "tcpfile") == 0);
  tu_join(rw, sizeof rw, dir, "rw.bin");
  tu_join(ro, sizeof ro, dir, "ro.bin");
  CHECK(make_file(rw, FILE_LEN, 1) == 0 && make_file(ro, RO_LEN, 2) == 0);
  int to_child[2], from_child[2];
  CHECK(pipe(to_child) == 0 && pipe(from_child) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(to_child[0], 0);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    exit(target(rw, ro, from_child[1]));
  }
  close(to_child[0]);
  close(from_child[1]);
  char line[512] = "", seg[256];
  FILE *f = fdopen(from_child[0], "r");
  uint64_t a1 = 0, a2 = 0;
  CHECK_MSG(f && fgets(line, sizeof line, f) &&
                sscanf(line, "READY %255s %" SCNx64 " %" SCNx64, seg, &a1, &a2) == 3,
            "target did not start: '%s'", line);
  fclose(f);

  mc_engine *e;
  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0", .transports = "tcp"};
  CHECK_EQ_INT(mc_engine_create(&o, &e), 0);
  uint8_t *local = aligned_alloc(4096, LOCAL_LEN);
  CHECK(local != NULL);
  CHECK_EQ_INT(mc_register(e, local, LOCAL_LEN, NULL), 0);
  mc_segment *s;
  CHECK_EQ_INT(mc_segment_open(e, seg, &s), 0);

  /* Writes and reads of several sizes (many slices, one byte, the range's
   * last byte), checked against the file. */
  static const struct {
    uint64_t off, len;
  } cases[] = {{777, (3u << 20) + 13}, {0, 1}, {FILE_LEN - FILE_OFF - 1, 1},
               {65536, 65536}, {5u << 20, (2u << 20) + 999}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t off = cases[i].off, len = cases[i].len;
    fill(local, len, 100 + i);
    CHECK_EQ_INT(xfer(e, MC_OP_WRITE, local, s, a1 + off, len), 0);
    CHECK_MSG(file_equals(rw, FILE_OFF + off, local, len),
              "write of %" PRIu64 " bytes at %" PRIu64 ": file differs", len, off);
    memset(local, 0, len);
    CHECK_EQ_INT(xfer(e, MC_OP_READ, local, s, a1 + off, len), 0);
    CHECK_MSG(file_equals(rw, FILE_OFF + off, local, len),
              "read of %" PRIu64 " bytes at %" PRIu64 ": bytes differ from the file", len, off);
  }
  /* A batch of 64 KiB requests (pipelined on every connection). */
  mc_request reqs[96];
  for (uint32_t i = 0; i < 96; i++)
    reqs[i] = (mc_request){MC_OP_WRITE, local + i * 65536u, s, a1 + i * 65536u, 65536};
  fill(local, 96u * 65536u, 7);
  CHECK_EQ_INT(mc_transfer_sync(e, reqs, 96, 30000), 0);
  CHECK(file_equals(rw, FILE_OFF, local, 96u * 65536u));
  for (uint32_t i = 0; i < 96; i++) {
    reqs[i].op = MC_OP_READ;
    reqs[i].local = local + (8u << 20) + i * 65536u;
  }
  CHECK_EQ_INT(mc_transfer_sync(e, reqs, 96, 30000), 0);
  CHECK(memcmp(local, local + (8u << 20), 96u * 65536u) == 0);
  printf("read-write file: writes and reads verified against the file\n");

  /* Read-only: a write is refused with MC_EACCES, the file is unchanged;
   * reads work. */
  uint8_t *orig = malloc(RO_LEN);
  CHECK(orig != NULL);
  fill(orig, RO_LEN, 2);
  memset(local, 0xAB, 65536);
  CHECK_EQ_INT(xfer(e, MC_OP_WRITE, local, s, a2 + 4096, 65536), MC_EACCES);
  CHECK_EQ_INT(xfer(e, MC_OP_WRITE, local, s, a2, RO_LEN), MC_EACCES);
  CHECK(file_equals(ro, 0, orig, RO_LEN));
  CHECK_EQ_INT(xfer(e, MC_OP_READ, local, s, a2, RO_LEN), 0);
  CHECK(memcmp(local, orig, RO_LEN) == 0);
  printf("read-only file: writes refused with MC_EACCES, file unchanged, reads verified\n");

  /* Truncated under the registration: reads past the new end fail with
   * MC_ERANGE; what is left is still served. */
  CHECK(truncate(rw, FILE_OFF + (1u << 20)) == 0);
  CHECK_EQ_INT(xfer(e, MC_OP_READ, local, s, a1 + (2u << 20), 65536), MC_ERANGE);
  CHECK_EQ_INT(xfer(e, MC_OP_READ, local, s, a1 + (1u << 20) - 100, 200), MC_ERANGE);
  memset(local, 0, 4096);
  CHECK_EQ_INT(xfer(e, MC_OP_READ, local, s, a1 + 8192, 4096), 0);
  CHECK(file_equals(rw, FILE_OFF + 8192, local, 4096));
  printf("truncated file: reads past its end fail with MC_ERANGE, the rest is served\n");

  mc_segment_close(s);
  CHECK_EQ_INT(mc_unregister(e, local), 0);
  mc_engine_destroy(e);
  free(local);
  free(orig);
  close(to_child[1]); /* the target exits */
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target exit status 0x%x", st);
  tu_rmtree(dir);
  return 0;
}
