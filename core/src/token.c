/* The cluster token (see token.h). */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mooncake/errors.h"

static int fail(char *err, size_t errlen, int rc, const char *path,
                const char *why) {
  if (err && errlen)
    snprintf(err, errlen, "cluster token file '%s': %s", path, why);
  return rc;
}

int mc_token_load(const char *path, char out[MC_TOKEN_MAX + 1], char *err,
                  size_t errlen) {
  char why[160];
  out[0] = '\0';
  if (!path || !*path)
    return fail(err, errlen, MC_EINVAL, "", "empty path");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    snprintf(why, sizeof why, "cannot open: %s", strerror(e));
    return fail(err, errlen, e == ENOENT ? MC_ENOENT : MC_EACCES, path, why);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(err, errlen, MC_EINVAL, path, "not a regular file");
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    close(fd);
    snprintf(why, sizeof why,
             "mode %04o lets group or others at the secret; chmod 600 it",
             (unsigned)(st.st_mode & 07777));
    return fail(err, errlen, MC_EACCES, path, why);
  }
  /* One byte more than the longest token plus a newline tells "too long". */
  char buf[MC_TOKEN_MAX + 64];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof buf - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      snprintf(why, sizeof why, "read: %s", strerror(e));
      return fail(err, errlen, MC_EIO, path, why);
    }
    if (r == 0 || (n += (size_t)r) == sizeof buf)
      break;
  }
  close(fd);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
               buf[n - 1] == '\t'))
    n--;
  if (n > MC_TOKEN_MAX) {
    snprintf(why, sizeof why, "longer than %d bytes", MC_TOKEN_MAX);
    return fail(err, errlen, MC_EINVAL, path, why);
  }
  if (n < MC_TOKEN_MIN) {
    snprintf(why, sizeof why,
             "%zu bytes; a token needs at least %d (e.g. `openssl rand -hex 32`)",
             n, MC_TOKEN_MIN);
    return fail(err, errlen, MC_EINVAL, path, why);
  }
  if (!mc_token_ok(buf, n)) {
    size_t i = 0;
    while (i < n && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
      i++;
    snprintf(why, sizeof why,
             "byte %zu is not printable ASCII (spaces and control "
             "characters are not allowed)",
             i + 1);
    return fail(err, errlen, MC_EINVAL, path, why);
  }
  memcpy(out, buf, n);
  out[n] = '\0';
  return 0;
}

int mc_token_ok(const char *t, size_t len) {
  if (len < MC_TOKEN_MIN || len > MC_TOKEN_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)t[i];
    if (c <= 0x20 || c >= 0x7f)
      return 0;
  }
  return 1;
}

int mc_token_equal(const char *token, const void *a, size_t a_len) {
  size_t t_len = strlen(token);
  const unsigned char *x = (const unsigned char *)token, *y = a;
  /* Walk the presented bytes whatever the token's length, so the time
   * tells nothing about where the first difference is. */
  unsigned diff = t_len != a_len;
  for (size_t i = 0; i < a_len; i++)
    diff |= (unsigned)(y[i] ^ (i < t_len ? x[i] : 0));
  return diff == 0;
}
