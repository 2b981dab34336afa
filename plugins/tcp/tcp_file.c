/* tcp_file.c - the target serving MC_MEM_FILE ranges (tcp_file.h). */
#include "tcp_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A warning a peer can provoke: at most one line a second. */
#define FILE_WARN(ctx, fmt, ...)                                                  \
  do {                                                                         \
    unsigned long supp_ = 0;                                                   \
    if (tcp_warn_allowed((ctx), &supp_))                                       \
      (ctx)->host->log((ctx)->host->host, MC_LOG_WARN,                         \
                       fmt " (%lu similar warnings suppressed)", __VA_ARGS__,  \
                       supp_);                                                 \
  } while (0)

int tcp_file_register(tcp_ctx *ctx, const mc_mem_desc *d, tcp_buf **out) {
  if (!d->path || !d->path[0]) {
    TCP_LOG(ctx, MC_LOG_ERROR, "register of a file range without a path");
    return MC_EINVAL;
  }
  int ro = (d->flags & MC_MEM_F_READ_ONLY) != 0;
  int fd = open(d->path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    TCP_LOG(ctx, MC_LOG_ERROR, "cannot open '%s' %s: %s", d->path,
            ro ? "read-only" : "read-write", strerror(err));
    return err == ENOENT || err == ENOTDIR ? MC_ENOENT
           : err == EACCES || err == EPERM || err == EROFS ? MC_EACCES
                                                            : MC_EIO;
  }
  int rc = tcp_reg_add_file(&ctx->reg, d->addr, d->len, fd, d->file_offset, ro, d->path, out);
  if (rc) {
    close(fd);
    return rc;
  }
  TCP_LOG(ctx, MC_LOG_DEBUG, "serving '%s' [%" PRIu64 ", +%" PRIu64 ")%s", d->path,
          d->file_offset, d->len, ro ? " read-only" : "");
  return 0;
}

static int too_long(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t len) {
  if (len <= TCP_FILE_MAX_IO)
    return 0;
  FILE_WARN(ctx, "peer '%s': a frame of %" PRIu64 " bytes into file '%s' is over the %u "
            "bytes served per frame (lower the initiator's slice_size)",
            peer, len, b->path, TCP_FILE_MAX_IO);
  return 1;
}

int tcp_file_read(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t addr,
                  uint64_t len, void **data) {
  *data = NULL;
  if (too_long(ctx, b, peer, len))
    return MC_EINVAL;
  uint8_t *p = malloc((size_t)len);
  if (!p)
    return MC_ENOMEM;
  uint64_t pos = b->file_offset + (addr - b->base), done = 0;
  while (done < len) {
    ssize_t k = pread(b->fd, p + done, (size_t)(len - done), (off_t)(pos + done));
    if (k > 0) {
      done += (uint64_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    int err = k < 0 ? errno : 0;
    free(p);
    if (err) {
      FILE_WARN(ctx, "peer '%s': reading '%s' at %" PRIu64 " (+%" PRIu64 "): %s", peer,
                b->path, pos, len, strerror(err));
      return MC_EIO;
    }
    struct stat st;
    long long size = fstat(b->fd, &st) == 0 ? (long long)st.st_size : -1;
    FILE_WARN(ctx, "peer '%s': reading '%s' at %" PRIu64 " (+%" PRIu64 "): the file ends "
              "at %lld, inside the registered range (truncated since it was registered)",
              peer, b->path, pos, len, size);
    return MC_ERANGE;
  }
  *data = p;
  return 0;
}

int tcp_file_write_begin(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t len,
                         void **buf) {
  *buf = NULL;
  if (b->read_only) {
    FILE_WARN(ctx, "peer '%s': refused a write of %" PRIu64 " bytes into '%s': registered "
              "read-only", peer, len, b->path);
    return MC_EACCES;
  }
  if (too_long(ctx, b, peer, len))
    return MC_EINVAL;
  *buf = malloc((size_t)len);
  return *buf ? 0 : MC_ENOMEM;
}

int tcp_file_write_end(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t addr,
                       const void *data, uint64_t len) {
  uint64_t pos = b->file_offset + (addr - b->base), done = 0;
  const uint8_t *p = data;
  while (done < len) {
    ssize_t k = pwrite(b->fd, p + done, (size_t)(len - done), (off_t)(pos + done));
    if (k > 0) {
      done += (uint64_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    FILE_WARN(ctx, "peer '%s': writing '%s' at %" PRIu64 " (+%" PRIu64 "): %s", peer,
              b->path, pos, len, k < 0 ? strerror(errno) : "nothing written");
    return MC_EIO;
  }
  return 0;
}
