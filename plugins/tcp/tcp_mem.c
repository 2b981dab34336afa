/* tcp_mem.c - registry of served buffers, with pinning for safe revocation. */
#include "tcp_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mooncake/errors.h"
#include "tcp_wire.h"

int tcp_reg_init(tcp_registry *r) {
  memset(r, 0, sizeof *r);
  if (pthread_mutex_init(&r->lock, NULL))
    return MC_ENOMEM;
  if (pthread_cond_init(&r->idle, NULL)) {
    pthread_mutex_destroy(&r->lock);
    return MC_ENOMEM;
  }
  r->next_id = 1;
  return 0;
}

static void buf_free(tcp_buf *b) {
  if (b->fd >= 0)
    close(b->fd);
  free(b->path);
  free(b);
}

void tcp_reg_fini(tcp_registry *r) {
  for (size_t i = 0; i < TCP_REG_BUCKETS; i++) {
    tcp_buf *b = r->buckets[i];
    while (b) {
      tcp_buf *n = b->next;
      buf_free(b);
      b = n;
    }
  }
  pthread_cond_destroy(&r->idle);
  pthread_mutex_destroy(&r->lock);
}

int tcp_fill_random(uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = getrandom(p, n, 0);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return MC_EIO;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

int tcp_reg_add(tcp_registry *r, uint64_t base, uint64_t len, tcp_buf **out) {
  return tcp_reg_add_file(r, base, len, -1, 0, 0, NULL, out);
}

int tcp_reg_add_file(tcp_registry *r, uint64_t base, uint64_t len, int fd,
                     uint64_t file_offset, int read_only, const char *path,
                     tcp_buf **out) {
  tcp_buf *b = calloc(1, sizeof *b);
  if (!b)
    return MC_ENOMEM;
  b->path = path ? strdup(path) : NULL;
  int rc = path && !b->path ? MC_ENOMEM : tcp_fill_random(b->secret, sizeof b->secret);
  if (rc) {
    free(b->path);
    free(b);
    return rc;
  }
  b->base = base;
  b->len = len;
  b->fd = fd;
  b->file_offset = file_offset;
  b->read_only = read_only;
  pthread_mutex_lock(&r->lock);
  b->id = r->next_id++;
  tcp_buf **slot = &r->buckets[b->id % TCP_REG_BUCKETS];
  b->next = *slot;
  *slot = b;
  pthread_mutex_unlock(&r->lock);
  *out = b;
  return 0;
}

void tcp_reg_remove(tcp_registry *r, tcp_buf *b) {
  pthread_mutex_lock(&r->lock);
  for (tcp_buf **p = &r->buckets[b->id % TCP_REG_BUCKETS]; *p; p = &(*p)->next)
    if (*p == b) {
      *p = b->next;
      break;
    }
  while (b->active)
    pthread_cond_wait(&r->idle, &r->lock);
  pthread_mutex_unlock(&r->lock);
  buf_free(b);
}

/* Constant-time: the time taken does not depend on where bytes differ. */
int tcp_secret_equal(const uint8_t *a, const uint8_t *b) {
  volatile uint8_t d = 0;
  for (size_t i = 0; i < TCPW_SECRET_SIZE; i++)
    d |= a[i] ^ b[i];
  return d == 0;
}

int tcp_reg_acquire(tcp_registry *r, uint64_t id, const uint8_t *secret,
                    uint64_t addr, uint64_t len, tcp_buf **out) {
  int rc = MC_ERANGE;
  pthread_mutex_lock(&r->lock);
  for (tcp_buf *b = r->buckets[id % TCP_REG_BUCKETS]; b; b = b->next) {
    if (b->id != id)
      continue;
    if (!tcp_secret_equal(b->secret, secret))
      rc = MC_EACCES;
    else if (tcpw_range_inside(addr, len, b->base, b->len)) {
      b->active++;
      *out = b;
      rc = 0;
    }
    break;
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
}

void tcp_reg_release(tcp_registry *r, tcp_buf *b) {
  pthread_mutex_lock(&r->lock);
  if (--b->active == 0)
    pthread_cond_broadcast(&r->idle);
  pthread_mutex_unlock(&r->lock);
}
