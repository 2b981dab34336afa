/* tcp_file.h - the target serving MC_MEM_FILE ranges (mc_register_file):
 * a peer that cannot reach a file itself reads and writes it through this
 * engine, which does pread/pwrite at file_offset + (addr - base) where a
 * memory buffer would be sent from or received into.
 *
 * The frame machine (tcp_frames.c) calls these around its usual path: a
 * READ's bytes are read from the file into a buffer of their own before
 * the response is queued (so a short read is a status in the response,
 * never a half-sent frame), a WRITE's payload is received into a buffer
 * and written to the file when whole.  Frames addressing a file carry at
 * most TCP_FILE_MAX_IO bytes (the core slices at 1 MiB unless configured
 * otherwise), which bounds what one connection holds. */
#ifndef MC_TCP_FILE_H
#define MC_TCP_FILE_H

#include <stdint.h>

#include "tcp_ctx.h"

#define TCP_FILE_MAX_IO (16u << 20)

/* register_mem of an MC_MEM_FILE range: opens d->path (read-only when
 * d->flags has MC_MEM_F_READ_ONLY, else read-write) and registers it.
 * MC_ENOENT, MC_EACCES, MC_EINVAL (a NULL path), MC_ENOMEM; logged with
 * the path. */
int tcp_file_register(tcp_ctx *ctx, const mc_mem_desc *d, tcp_buf **out);

/* READ of [addr, +len) of file buffer b (pinned by the caller) for peer:
 * 0 and *data (malloc'd, len bytes; the caller frees it once sent), or
 * MC_EINVAL (len over TCP_FILE_MAX_IO), MC_ENOMEM, MC_EIO (the read
 * failed), MC_ERANGE (the file ends before the range does: truncated since
 * it was registered).  Failures are logged (rate-limited). */
int tcp_file_read(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t addr,
                  uint64_t len, void **data);

/* Before receiving a WRITE of len bytes into file buffer b: 0 and *buf
 * (malloc'd, len bytes) to receive the payload into, or MC_EACCES (a
 * read-only registration), MC_EINVAL (len over TCP_FILE_MAX_IO),
 * MC_ENOMEM.  Refusals are logged (rate-limited). */
int tcp_file_write_begin(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t len,
                         void **buf);

/* Once the payload is whole: writes data[0, len) at addr of b.  0 or
 * MC_EIO (logged). */
int tcp_file_write_end(tcp_ctx *ctx, const tcp_buf *b, const char *peer, uint64_t addr,
                       const void *data, uint64_t len);

#endif
