/* tcp_mem.h - registry of local buffers the target side serves.
 *
 * Each registration gets an id and a 128-bit random secret.  The target's
 * server threads pin a buffer for the duration of one access
 * (tcp_reg_acquire/release); tcp_reg_remove unpublishes it and waits until
 * no access is in progress, so on return no plugin thread touches it. */
#ifndef MC_TCP_MEM_H
#define MC_TCP_MEM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TCP_REG_BUCKETS 256u

typedef struct tcp_buf {
  uint64_t id, base, len;
  uint8_t secret[16];
  /* MC_MEM_FILE (tcp_file.c): served with pread/pwrite of this open file
   * at file_offset + (addr - base); [base, +len) is address space the core
   * reserved, never dereferenced.  fd -1 for memory. */
  int fd;
  int read_only;
  uint64_t file_offset;
  char *path;
  uint32_t active; /* accesses in progress; under the registry lock */
  struct tcp_buf *next;
} tcp_buf;

typedef struct tcp_registry {
  pthread_mutex_t lock;
  pthread_cond_t idle; /* signalled when an access ends */
  tcp_buf *buckets[TCP_REG_BUCKETS];
  uint64_t next_id;
} tcp_registry;

int tcp_reg_init(tcp_registry *r);
/* Frees every remaining registration; no access may be in progress. */
void tcp_reg_fini(tcp_registry *r);
/* Registers [base, +len) with a fresh secret.  0, MC_ENOMEM or MC_EIO. */
int tcp_reg_add(tcp_registry *r, uint64_t base, uint64_t len, tcp_buf **out);
/* The same for a file range: fd and path (copied) become the registry's,
 * closed and freed by tcp_reg_remove (on failure the caller keeps fd). */
int tcp_reg_add_file(tcp_registry *r, uint64_t base, uint64_t len, int fd,
                     uint64_t file_offset, int read_only, const char *path,
                     tcp_buf **out);
/* Unpublishes b, waits for its accesses to end, frees it (closing a
 * file range's descriptor). */
void tcp_reg_remove(tcp_registry *r, tcp_buf *b);
/* Checks a remote access and pins the buffer: MC_ERANGE for an unknown id
 * or a range outside the buffer, MC_EACCES for a wrong secret (compared in
 * constant time). */
int tcp_reg_acquire(tcp_registry *r, uint64_t id, const uint8_t *secret,
                    uint64_t addr, uint64_t len, tcp_buf **out);
void tcp_reg_release(tcp_registry *r, tcp_buf *b);

/* 1 when two 16-byte secrets are equal, in time that does not depend on
 * where they differ. */
int tcp_secret_equal(const uint8_t *a, const uint8_t *b);

/* n bytes from getrandom.  0 or MC_EIO. */
int tcp_fill_random(uint8_t *p, size_t n);

#endif
