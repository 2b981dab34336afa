/* nvmeof through the engine (engine.h only), on real files in $TMPDIR (or
 * /tmp) and /dev/shm.  One case per run, named by argv[1]:
 *   loopback    a file registered with mc_register_file, read and written
 *               by the same engine; a sub-range registration; mc_unregister
 *   large       a sparse 6 GiB file, a range past 4 GiB at an odd offset;
 *               no disk space used
 *   unaligned   odd offsets, lengths and local addresses, both directions,
 *               checked against pread
 *   truncate    the file shrinks under a registered range: a read past the
 *               new end fails MC_ERANGE, reads before it still work
 *   readonly    MC_FILE_READ_ONLY: reads work, a write fails MC_EACCES and
 *               the file is unchanged
 *   tmpfs       a file on /dev/shm (where O_DIRECT may be refused)
 *   refused     O_DIRECT refused at I/O time (direct_align: 1 makes the
 *               plugin send unaligned O_DIRECT reads, which the file system
 *               answers EINVAL): buffered from then on, data right
 *   missing     a missing path: MC_ENOENT naming it in mc_last_error()
 *   twoproc     the file registered by another process, reached by path
 *   fallback    an initiator that cannot reach the file (local_paths:
 *               false): the request goes to the next transport (fixfile,
 *               standing in for tcp); with local_paths it stays on nvmeof
 *   fallback-tcp  the same over the real tcp plugin: the engine that
 *               registered the file serves the range over tcp (tcp_file.c)
 *   gds         cuda:0 memory read from and written to a file through
 *               cuFile (the software libcufile of this folder); without
 *               cuFile a cuda buffer is MC_ENOTSUP
 * argv[2]: the fixfile fixture plugin, argv[3]: the fake libcufile. */
#include <dlfcn.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nv_test.h"

#define MB (1ull << 20)

static char dir[256];

static const char *path_in(const char *d, const char *name) {
  static char buf[4][512];
  static int k;
  char *b = buf[k++ % 4];
  snprintf(b, 512, "%s/%s", d, name);
  return b;
}

/* Reads remote [r, +n) and checks it against the file's bytes at off. */
static void read_check(mc_engine *e, mc_segment *s, uint8_t *loc, uint64_t r, size_t n,
                       const char *path, uint64_t off) {
  uint8_t *want = malloc(n);
  nt_pread(path, want, n, off);
  memset(loc, 0x5a, n);
  mc_transfer_status st;
  int rc = nt_xfer(e, MC_OP_READ, loc, s, r, n, &st);
  CHECK_MSG(rc == 0, "read %zu at +%llu: %s", n, (unsigned long long)off, mc_strerror(rc));
  CHECK_MSG(strcmp(st.transport, "nvmeof") == 0, "carried by %s", st.transport);
  CHECK_MSG(memcmp(loc, want, n) == 0, "read %zu bytes at file offset %llu differ", n,
            (unsigned long long)off);
  free(want);
}

/* Writes pattern seed to remote [r, +n) and checks the file at off. */
static void write_check(mc_engine *e, mc_segment *s, uint8_t *loc, uint64_t r, size_t n,
                        const char *path, uint64_t off, uint32_t seed) {
  nt_fill(loc, n, seed, off);
  int rc = nt_xfer(e, MC_OP_WRITE, loc, s, r, n, NULL);
  CHECK_MSG(rc == 0, "write %zu at +%llu: %s", n, (unsigned long long)off, mc_strerror(rc));
  uint8_t *got = malloc(n);
  nt_pread(path, got, n, off);
  CHECK_MSG(nt_check(got, n, seed, off), "file after a write of %zu at %llu", n,
            (unsigned long long)off);
  free(got);
}

typedef struct one {
  mc_engine *e;
  mc_segment *s;
  uint8_t *loc;
  size_t loclen;
} one;

static void one_open_cfg(one *o, const char *transports, size_t loclen, const char *yaml) {
  o->e = nt_engine(transports, dir, yaml, NULL);
  o->loclen = loclen;
  o->loc = malloc(loclen);
  CHECK_OK(mc_register(o->e, o->loc, loclen, NULL));
  CHECK_OK(mc_segment_open(o->e, mc_engine_segment_name(o->e), &o->s));
}

static void one_open(one *o, const char *transports, size_t loclen) {
  one_open_cfg(o, transports, loclen, NULL);
}

static void one_close(one *o) {
  mc_segment_close(o->s);
  CHECK_OK(mc_unregister(o->e, o->loc));
  free(o->loc);
  mc_engine_destroy(o->e);
}

static void case_loopback(void) {
  const char *f = path_in(dir, "data");
  nt_make_file(f, 8 * MB, 1);
  one o;
  one_open(&o, "nvmeof", 8 * MB);
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, 0, 0, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  read_check(o.e, o.s, o.loc, r, 8 * MB, f, 0);
  write_check(o.e, o.s, o.loc, r, 8 * MB, f, 0, 2);
  read_check(o.e, o.s, o.loc, r + MB, 3 * MB, f, MB);
  /* A sub-range: byte addr+i is file byte 2 MiB + i. */
  void *sub = NULL;
  CHECK_OK(mc_register_file(o.e, f, 2 * MB, MB, 0, &sub));
  read_check(o.e, o.s, o.loc, (uint64_t)(uintptr_t)sub, MB, f, 2 * MB);
  CHECK_OK(mc_unregister(o.e, sub));
  CHECK_OK(mc_unregister(o.e, fa));
  /* Gone from the segment: a request for it is refused. */
  int rc = nt_xfer(o.e, MC_OP_READ, o.loc, o.s, r, 4096, NULL);
  CHECK_MSG(rc != 0, "a read of an unregistered file range succeeded");
  printf("loopback: 8 MiB read, written, re-read; sub-range; unregistered range refused (%s)\n",
         mc_errname(rc));
  one_close(&o);
}

static void case_large(void) {
  const char *f = path_in(dir, "sparse");
  int fd = open(f, O_CREAT | O_RDWR | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, (off_t)(6ull << 30)) == 0);
  close(fd);
  const uint64_t base = (4ull << 30) + 12345; /* past 4 GiB, unaligned */
  one o;
  one_open(&o, "nvmeof", 8 * MB);
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, base, 64 * MB, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  /* Holes read as zeros. */
  memset(o.loc, 0x77, MB);
  CHECK_OK(nt_xfer(o.e, MC_OP_READ, o.loc, o.s, r + 10 * MB, MB, NULL));
  for (size_t i = 0; i < MB; i++)
    CHECK(o.loc[i] == 0);
  write_check(o.e, o.s, o.loc, r + 777, 3 * MB, f, base + 777, 3);
  read_check(o.e, o.s, o.loc, r + 777, 3 * MB, f, base + 777);
  /* The last byte of the range, at 4 GiB + 64 MiB + 12344. */
  write_check(o.e, o.s, o.loc, r + 64 * MB - 4096, 4096, f, base + 64 * MB - 4096, 4);
  struct stat st;
  CHECK(stat(f, &st) == 0);
  CHECK_MSG((uint64_t)st.st_blocks * 512 < 64 * MB, "sparse file uses %lld bytes",
            (long long)st.st_blocks * 512);
  printf("large: 6 GiB sparse file, writes/reads at 4 GiB+12345+777 and at the range's end; "
         "%lld KiB on disk\n", (long long)st.st_blocks / 2);
  CHECK_OK(mc_unregister(o.e, fa));
  one_close(&o);
}

static void case_unaligned(void) {
  const char *f = path_in(dir, "odd");
  nt_make_file(f, 16 * MB, 5);
  one o;
  one_open(&o, "nvmeof", 8 * MB + 8192);
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, 0, 0, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  const struct {
    uint64_t off, len, lmis;
  } cs[] = {{1, 1, 0},          {511, 2, 3},          {4095, 4097, 1},
            {4096, 4096, 1},    {8192, MB, 17},       {12345, 3 * MB + 7, 0},
            {MB - 1, MB + 2, 4095}, {16 * MB - 5, 5, 2}, {0, 8 * MB, 1},
            {4096 * 3, 4096 * 5, 0}};
  int n = 0;
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    uint8_t *l = o.loc + cs[i].lmis;
    read_check(o.e, o.s, l, r + cs[i].off, cs[i].len, f, cs[i].off);
    write_check(o.e, o.s, l, r + cs[i].off, cs[i].len, f, cs[i].off, (uint32_t)(10 + i));
    n++;
  }
  /* The whole file against a shadow rebuilt the same way: no byte outside
   * the writes changed (the bounce and buffered paths rewrite whole blocks). */
  uint8_t *shadow = malloc(16 * MB), *file = malloc(16 * MB);
  nt_fill(shadow, 16 * MB, 5, 0);
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
    nt_fill(shadow + cs[i].off, cs[i].len, (uint32_t)(10 + i), cs[i].off);
  nt_pread(f, file, 16 * MB, 0);
  CHECK_MSG(memcmp(shadow, file, 16 * MB) == 0, "bytes outside the writes changed");
  free(shadow);
  free(file);
  printf("unaligned: %d offset/length/address cases read and written, file checked whole\n", n);
  CHECK_OK(mc_unregister(o.e, fa));
  one_close(&o);
}

static void case_truncate(void) {
  const char *f = path_in(dir, "shrinks");
  nt_make_file(f, 8 * MB, 6);
  one o;
  one_open(&o, "nvmeof", 8 * MB);
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, 0, 8 * MB, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  read_check(o.e, o.s, o.loc, r, 8 * MB, f, 0);
  CHECK(truncate(f, (off_t)(MB + 100)) == 0);
  mc_transfer_status st;
  int rc = nt_xfer(o.e, MC_OP_READ, o.loc, o.s, r, 4 * MB, &st);
  CHECK_MSG(rc == MC_ERANGE, "read past the new end: %s", mc_errname(rc));
  rc = nt_xfer(o.e, MC_OP_READ, o.loc, o.s, r + MB + 50, 4096, &st);
  CHECK_MSG(rc == MC_ERANGE, "read across the new end: %s", mc_errname(rc));
  rc = nt_xfer(o.e, MC_OP_READ, o.loc, o.s, r + 2 * MB + 1, 10, &st);
  CHECK_MSG(rc == MC_ERANGE, "unaligned read past the new end: %s", mc_errname(rc));
  read_check(o.e, o.s, o.loc, r, MB + 100, f, 0);
  read_check(o.e, o.s, o.loc, r + 3, MB + 90, f, 3);
  printf("truncate: reads past the new end fail %s, reads before it still work\n",
         mc_errname(MC_ERANGE));
  CHECK_OK(mc_unregister(o.e, fa));
  one_close(&o);
}

static void case_readonly(void) {
  const char *f = path_in(dir, "ro");
  nt_make_file(f, 4 * MB, 7);
  CHECK(chmod(f, 0444) == 0);
  one o;
  one_open(&o, "nvmeof", 4 * MB);
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, 0, 0, MC_FILE_READ_ONLY, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  read_check(o.e, o.s, o.loc, r, 4 * MB, f, 0);
  nt_fill(o.loc, MB, 99, 0);
  mc_transfer_status st;
  int rc = nt_xfer(o.e, MC_OP_WRITE, o.loc, o.s, r, MB, &st);
  CHECK_MSG(rc == MC_EACCES, "write into a read-only registration: %s", mc_errname(rc));
  rc = nt_xfer(o.e, MC_OP_WRITE, o.loc, o.s, r + 1, 100, &st);
  CHECK_MSG(rc == MC_EACCES, "unaligned write into a read-only registration: %s",
            mc_errname(rc));
  uint8_t *got = malloc(4 * MB);
  nt_pread(f, got, 4 * MB, 0);
  CHECK(nt_check(got, 4 * MB, 7, 0));
  free(got);
  printf("readonly: reads work, writes fail %s, file unchanged\n", mc_errname(MC_EACCES));
  CHECK_OK(mc_unregister(o.e, fa));
  one_close(&o);
}

static void case_tmpfs(void) {
  char d[256];
  if (access("/dev/shm", W_OK) != 0)
    SKIP("/dev/shm is not writable here: %s", strerror(errno));
  char *saved = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
  setenv("TMPDIR", "/dev/shm", 1);
  CHECK(tu_mkdtemp(d, sizeof d, "nvmeof-shm") == 0);
  if (saved)
    setenv("TMPDIR", saved, 1);
  else
    unsetenv("TMPDIR");
  free(saved);
  const char *f = path_in(d, "t");
  nt_make_file(f, 4 * MB, 8);
  int fd = open(f, O_RDONLY | O_DIRECT);
  int direct_ok = fd >= 0;
  if (fd >= 0)
    close(fd);
  one o;
  one_open(&o, "nvmeof", 4 * MB);
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, 0, 0, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  read_check(o.e, o.s, o.loc, r, 4 * MB, f, 0);
  write_check(o.e, o.s, o.loc, r + 3, MB + 5, f, 3, 9);
  read_check(o.e, o.s, o.loc + 1, r + 1, 4 * MB - 1, f, 1);
  printf("tmpfs: /dev/shm file read and written (this kernel %s O_DIRECT on tmpfs)\n",
         direct_ok ? "accepts" : "refuses at open; the plugin opened it buffered:");
  CHECK_OK(mc_unregister(o.e, fa));
  one_close(&o);
  tu_rmtree(d);
}

static void case_refused(void) {
  const char *f = path_in(dir, "refuse");
  nt_make_file(f, 4 * MB, 11);
  /* Needs a file system that takes O_DIRECT but refuses an unaligned
   * offset (ext4, xfs); tmpfs on Linux 6.6+ takes any. */
  int fd = open(f, O_RDONLY | O_DIRECT);
  if (fd < 0)
    SKIP("%s refuses O_DIRECT at open: no I/O-time refusal to provoke", dir);
  void *b = NULL;
  CHECK(posix_memalign(&b, 4096, 8192) == 0);
  ssize_t got = pread(fd, b, 4096, 1);
  int e = errno;
  close(fd);
  free(b);
  if (got >= 0 || e != EINVAL)
    SKIP("%s takes unaligned O_DIRECT reads: no EINVAL to provoke (use TMPDIR on ext4/xfs)",
         dir);
  CHECK(tu_capture_begin() == 0);
  one o;
  one_open_cfg(&o, NULL, 4 * MB, "transports:\n  nvmeof: {direct_align: 1}\n");
  void *fa = NULL;
  CHECK_OK(mc_register_file(o.e, f, 0, 0, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  read_check(o.e, o.s, o.loc + 1, r + 3, MB + 1, f, 3);
  write_check(o.e, o.s, o.loc + 1, r + 5, 3 * MB, f, 5, 12);
  read_check(o.e, o.s, o.loc, r, 4 * MB, f, 0);
  CHECK_OK(mc_unregister(o.e, fa));
  one_close(&o);
  char *log = tu_capture_end();
  CHECK_MSG(tu_count(log, "O_DIRECT refused at I/O") == 1,
            "the plugin did not report falling back to buffered I/O once");
  free(log);
  printf("refused: EINVAL from O_DIRECT I/O switched the file to buffered I/O, data right\n");
}

static void case_missing(void) {
  one o;
  one_open(&o, "nvmeof", 4096);
  const char *f = path_in(dir, "no-such-file");
  void *fa = NULL;
  int rc = mc_register_file(o.e, f, 0, 0, 0, &fa);
  CHECK_RC(rc, MC_ENOENT);
  CHECK_MSG(strstr(mc_last_error(), f) != NULL, "mc_last_error() is \"%s\"", mc_last_error());
  rc = mc_register_file(o.e, f, 0, 4096, MC_FILE_READ_ONLY, &fa);
  CHECK_RC(rc, MC_ENOENT);
  /* And other bad arguments, each with a reason. */
  CHECK_RC(mc_register_file(o.e, "", 0, 0, 0, &fa), MC_EINVAL);
  CHECK_RC(mc_register_file(o.e, f, 0, 0, 0x80, &fa), MC_EINVAL);
  const char *g = path_in(dir, "small");
  nt_make_file(g, 4096, 1);
  CHECK_RC(mc_register_file(o.e, g, 4096, 0, 0, &fa), MC_EINVAL);
  CHECK(strstr(mc_last_error(), g) != NULL);
  CHECK_RC(mc_register_file(o.e, dir, 0, 0, MC_FILE_READ_ONLY, &fa), MC_EINVAL);
  printf("missing: MC_ENOENT with the path in mc_last_error(); bad arguments MC_EINVAL\n");
  one_close(&o);
}

/* twoproc: the child registers the file and answers 'q' by exiting. */
static void case_twoproc(void) {
  const char *f = path_in(dir, "shared");
  nt_make_file(f, 8 * MB, 13);
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    mc_engine *e = nt_engine("nvmeof", dir, NULL, NULL);
    void *fa = NULL;
    CHECK_OK(mc_register_file(e, f, MB, 4 * MB, 0, &fa));
    char msg[MC_NAME_MAX + 32];
    snprintf(msg, sizeof msg, "%s %llu", mc_engine_segment_name(e),
             (unsigned long long)(uintptr_t)fa);
    CHECK(write(b[1], msg, sizeof msg) == (ssize_t)sizeof msg);
    char c;
    CHECK(read(a[0], &c, 1) == 1);
    CHECK_OK(mc_unregister(e, fa));
    mc_engine_destroy(e);
    _exit(0);
  }
  char msg[MC_NAME_MAX + 32];
  CHECK(read(b[0], msg, sizeof msg) == (ssize_t)sizeof msg);
  char seg[MC_NAME_MAX];
  unsigned long long ra;
  CHECK(sscanf(msg, "%255s %llu", seg, &ra) == 2);
  mc_engine *e = nt_engine("nvmeof", dir, NULL, NULL);
  uint8_t *loc = malloc(4 * MB);
  CHECK_OK(mc_register(e, loc, 4 * MB, NULL));
  mc_segment *s;
  CHECK_OK(mc_segment_open(e, seg, &s));
  read_check(e, s, loc, ra, 4 * MB, f, MB);
  write_check(e, s, loc, ra + 1000, 2 * MB, f, MB + 1000, 14);
  read_check(e, s, loc, ra + 1, 4 * MB - 1, f, MB + 1);
  /* outside the child's range */
  int rc = nt_xfer(e, MC_OP_READ, loc, s, ra + 4 * MB - 10, 20, NULL);
  CHECK_MSG(rc != 0, "a read across the end of the peer's range succeeded");
  mc_segment_close(s);
  CHECK_OK(mc_unregister(e, loc));
  free(loc);
  mc_engine_destroy(e);
  CHECK(write(a[1], "q", 1) == 1);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  printf("twoproc: another process's file range read and written by path; range end enforced "
         "(%s)\n", mc_errname(rc));
}

/* via: "fixfile" (the fixture, fixture its plugin folder) or "tcp" (the
 * real plugin from MC_PLUGIN_PATH; fixture NULL). */
static void case_fallback(const char *via, const char *fixture) {
  const char *f = path_in(dir, "far");
  nt_make_file(f, 4 * MB, 15);
  /* The other transport listed first: nvmeof still ranks above it. */
  char list[64], yaml[160];
  snprintf(list, sizeof list, "%s,nvmeof", via);
  snprintf(yaml, sizeof yaml, "transports:\n  %s: {}\n  nvmeof: {local_paths: false}\n", via);
  mc_engine *t = nt_engine(list, dir, NULL, fixture);
  void *fa = NULL;
  CHECK_OK(mc_register_file(t, f, 0, 0, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  for (int far = 1; far >= 0; far--) {
    mc_engine *e = nt_engine(far ? NULL : list, dir, far ? yaml : NULL, fixture);
    uint8_t *loc = malloc(4 * MB);
    CHECK_OK(mc_register(e, loc, 4 * MB, NULL));
    mc_segment *s;
    CHECK_OK(mc_segment_open(e, mc_engine_segment_name(t), &s));
    const char *want = far ? via : "nvmeof";
    for (int i = 0; i < 2; i++) { /* the second request reuses the verdict */
      mc_transfer_status st;
      memset(loc, 0, 4 * MB);
      CHECK_OK(nt_xfer(e, MC_OP_READ, loc, s, r, 4 * MB, &st));
      CHECK_MSG(strcmp(st.transport, want) == 0, "carried by %s, want %s", st.transport, want);
      uint8_t *w = malloc(4 * MB);
      nt_pread(f, w, 4 * MB, 0);
      CHECK(memcmp(w, loc, 4 * MB) == 0);
      nt_fill(loc, MB, (uint32_t)(20 + i + 2 * far), 5);
      CHECK_OK(nt_xfer(e, MC_OP_WRITE, loc, s, r + 5, MB, &st));
      CHECK_MSG(strcmp(st.transport, want) == 0, "write carried by %s, want %s", st.transport,
                want);
      nt_pread(f, w, MB, 5);
      CHECK(nt_check(w, MB, (uint32_t)(20 + i + 2 * far), 5));
      free(w);
    }
    mc_segment_close(s);
    CHECK_OK(mc_unregister(e, loc));
    free(loc);
    mc_engine_destroy(e);
    printf("fallback: initiator %s local paths: reads and writes carried by %s\n",
           far ? "without" : "with", want);
  }
  CHECK_OK(mc_unregister(t, fa));
  mc_engine_destroy(t);
}

typedef struct fake_stats {
  long opens, closes, handles, bufs, reads, writes, outside;
} fake_stats;

static void case_gds(const char *cufile) {
  /* Without cuFile (the default library name is not installed here, or
   * the key points nowhere) GPU memory is refused. */
  char yaml[1024];
  snprintf(yaml, sizeof yaml, "transports:\n  nvmeof: {cufile_library: %s/none.so}\n", dir);
  mc_engine *e0 = nt_engine(NULL, dir, yaml, NULL);
  uint8_t *g0 = malloc(MB);
  CHECK_RC(mc_register(e0, g0, MB, "cuda:0"), MC_ENOTSUP);
  mc_engine_destroy(e0);
  free(g0);

  const char *f = path_in(dir, "gpu");
  nt_make_file(f, 8 * MB, 17);
  snprintf(yaml, sizeof yaml, "transports:\n  nvmeof: {cufile_library: \"%s\"}\n", cufile);
  mc_engine *e = nt_engine(NULL, dir, yaml, NULL);
  void *dl = dlopen(cufile, RTLD_NOW | RTLD_NOLOAD);
  CHECK_MSG(dl != NULL, "the plugin did not load %s", cufile);
  void (*stats)(fake_stats *) = (void (*)(fake_stats *))dlsym(dl, "fake_cufile_stats");
  CHECK(stats != NULL);
  uint8_t *gpu = malloc(4 * MB); /* "device memory" of the software cuFile */
  CHECK_OK(mc_register(e, gpu, 4 * MB, "cuda:0"));
  void *fa = NULL;
  CHECK_OK(mc_register_file(e, f, 0, 0, 0, &fa));
  uint64_t r = (uint64_t)(uintptr_t)fa;
  mc_segment *s;
  CHECK_OK(mc_segment_open(e, mc_engine_segment_name(e), &s));
  mc_transfer_status st;
  memset(gpu, 0, 4 * MB);
  CHECK_OK(nt_xfer(e, MC_OP_READ, gpu + 7, s, r + 5, 3 * MB, &st));
  CHECK(strcmp(st.transport, "nvmeof") == 0);
  CHECK(nt_check(gpu + 7, 3 * MB, 17, 5));
  nt_fill(gpu + 1, 2 * MB + 3, 18, 4099);
  CHECK_OK(nt_xfer(e, MC_OP_WRITE, gpu + 1, s, r + 4099, 2 * MB + 3, &st));
  uint8_t *got = malloc(2 * MB + 3);
  nt_pread(f, got, 2 * MB + 3, 4099);
  CHECK(nt_check(got, 2 * MB + 3, 18, 4099));
  free(got);
  fake_stats a;
  stats(&a);
  CHECK_MSG(a.reads >= 3 && a.writes >= 2, "cuFile reads %ld writes %ld", a.reads, a.writes);
  CHECK_EQ_INT(a.outside, 0);
  CHECK_EQ_INT(a.bufs, 1);
  CHECK_EQ_INT(a.opens, 1);
  mc_segment_close(s);
  CHECK_OK(mc_unregister(e, fa));
  CHECK_OK(mc_unregister(e, gpu));
  stats(&a);
  CHECK_EQ_INT(a.bufs, 0);
  printf("gds: cuda:0 memory read/written through cuFile (%ld reads, %ld writes, all inside "
         "registered buffers); without cuFile MC_ENOTSUP\n", a.reads, a.writes);
  dlclose(dl);
  mc_engine_destroy(e);
  free(gpu);
}

/* The plugin needs io_uring; some sandboxes (container seccomp profiles,
 * kernel.io_uring_disabled) refuse it, and then every case is skipped. */
static void need_io_uring(void) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  long fd = syscall(__NR_io_uring_setup, 4, &p);
  if (fd < 0)
    SKIP("io_uring is not available here (io_uring_setup: %s); the nvmeof transport "
         "cannot start", strerror(errno));
  close((int)fd);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CASE [fixture.so]\n", argv[0]);
    return 2;
  }
  need_io_uring();
  if (!strcmp(argv[1], "probe"))
    return 0;
  alarm(240);
  CHECK(tu_mkdtemp(dir, sizeof dir, "nvmeof") == 0);
  const char *c = argv[1];
  if (!strcmp(c, "loopback"))
    case_loopback();
  else if (!strcmp(c, "large"))
    case_large();
  else if (!strcmp(c, "unaligned"))
    case_unaligned();
  else if (!strcmp(c, "truncate"))
    case_truncate();
  else if (!strcmp(c, "readonly"))
    case_readonly();
  else if (!strcmp(c, "tmpfs"))
    case_tmpfs();
  else if (!strcmp(c, "refused"))
    case_refused();
  else if (!strcmp(c, "missing"))
    case_missing();
  else if (!strcmp(c, "twoproc"))
    case_twoproc();
  else if (!strcmp(c, "fallback") && argc > 2)
    case_fallback("fixfile", argv[2]);
  else if (!strcmp(c, "fallback-tcp"))
    case_fallback("tcp", NULL);
  else if (!strcmp(c, "gds") && argc > 3)
    case_gds(argv[3]);
  else {
    fprintf(stderr, "unknown case %s\n", c);
    tu_rmtree(dir);
    return 2;
  }
  tu_rmtree(dir);
  return 0;
}
