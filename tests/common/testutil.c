/* tests/common/testutil.c - see testutil.h. */
#include "testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tu_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int tu_mkdtemp(char *buf, size_t len, const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !base[0])
    base = "/tmp";
  int k = snprintf(buf, len, "%s/mc-%s-XXXXXX", base, tag);
  if (k < 0 || (size_t)k >= len)
    return -1;
  return mkdtemp(buf) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

void tu_rmtree(const char *dir) {
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_copy(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return -1;
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (out < 0) {
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    if (write(out, buf, (size_t)n) != n) {
      rc = -1;
      break;
    }
  }
  if (n < 0)
    rc = -1;
  close(in);
  if (close(out) != 0)
    rc = -1;
  return rc;
}

const char *tu_join(char *buf, size_t len, const char *a, const char *b) {
  int k = snprintf(buf, len, "%s/%s", a, b);
  if (k < 0 || (size_t)k >= len) {
    fprintf(stderr, "path too long: %s/%s\n", a, b);
    abort();
  }
  return buf;
}

static int saved_fd = -1;
static FILE *cap_file;

int tu_capture_begin(void) {
  fflush(stderr);
  cap_file = tmpfile();
  if (!cap_file)
    return -1;
  saved_fd = dup(STDERR_FILENO);
  if (saved_fd < 0 || dup2(fileno(cap_file), STDERR_FILENO) < 0) {
    fclose(cap_file);
    cap_file = NULL;
    return -1;
  }
  return 0;
}

char *tu_capture_end(void) {
  if (!cap_file)
    return NULL;
  fflush(stderr);
  dup2(saved_fd, STDERR_FILENO);
  close(saved_fd);
  saved_fd = -1;
  long n = ftell(cap_file);
  char *text = malloc(n > 0 ? (size_t)n + 1 : 1);
  if (text) {
    rewind(cap_file);
    size_t got = n > 0 ? fread(text, 1, (size_t)n, cap_file) : 0;
    text[got] = '\0';
    /* Echo, so the test log still shows what the loader said. */
    fputs(text, stderr);
  }
  fclose(cap_file);
  cap_file = NULL;
  return text;
}

int tu_count(const char *hay, const char *needle) {
  int n = 0;
  size_t ln = strlen(needle);
  for (const char *p = hay; ln && (p = strstr(p, needle)) != NULL; p += ln)
    n++;
  return n;
}
