/* Test harness for the shm plugin: see shm_harness.h. */
#include "shm_harness.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void h_complete(void *arg, uint64_t token, int status, uint64_t bytes,
                       int32_t verr) {
  h_plugin *h = arg;
  pthread_mutex_lock(&h->lock);
  CHECK(h->ndone < H_MAX_DONE);
  h->done[h->ndone++] = (h_done){token, status, bytes, verr};
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

int h_wait(h_plugin *h, int n, int ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  while (h->ndone < n && rc == 0)
    rc = pthread_cond_timedwait(&h->cond, &h->lock, &dl);
  int ok = h->ndone >= n;
  pthread_mutex_unlock(&h->lock);
  return ok ? 0 : -1;
}

int h_ndone(h_plugin *h) {
  pthread_mutex_lock(&h->lock);
  int n = h->ndone;
  pthread_mutex_unlock(&h->lock);
  return n;
}

int h_count(h_plugin *h, uint64_t token) {
  int n = 0;
  pthread_mutex_lock(&h->lock);
  for (int i = 0; i < h->ndone; i++)
    n += h->done[i].token == token;
  pthread_mutex_unlock(&h->lock);
  return n;
}

const h_done *h_find(h_plugin *h, uint64_t token) {
  const h_done *d = NULL;
  pthread_mutex_lock(&h->lock);
  for (int i = 0; i < h->ndone && !d; i++)
    if (h->done[i].token == token)
      d = &h->done[i];
  pthread_mutex_unlock(&h->lock);
  return d;
}

void h_clear(h_plugin *h) {
  pthread_mutex_lock(&h->lock);
  h->ndone = 0;
  pthread_mutex_unlock(&h->lock);
}

void h_load(h_plugin *h, const char *path) {
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  char err[512];
  h->ops = mc_fake_load(path, &h->dl, err, sizeof err);
  CHECK_MSG(h->ops, "%s", err);
  CHECK_EQ_INT(h->ops->abi_major, MC_TRANSPORT_ABI_MAJOR);
  char tag[64];
  snprintf(tag, sizeof tag, "shm pid %d", (int)getpid());
  mc_fake_host_init(&h->host, tag, h->ops);
  h->host.print_level = MC_LOG_INFO;
  h->host.enabled_level = MC_LOG_INFO;
  h->host.on_complete = h_complete;
  h->host.cb_arg = h;
}

void h_opt(h_plugin *h, const char *key, const char *val) {
  CHECK_OK(mc_fake_host_set(&h->host, key, val));
}

int h_init(h_plugin *h, const char *segment) {
  mc_init_args a = {sizeof a, segment, "127.0.0.1", NULL};
  return h->ops->init(&h->host.api, &a, &h->ctx);
}

void h_fini(h_plugin *h) {
  if (h->ctx)
    CHECK_RC(h->ops->fini(h->ctx), 0);
  h->ctx = NULL;
}

void h_unload(h_plugin *h) {
  h_fini(h);
  dlclose(h->dl);
  mc_fake_host_fini(&h->host);
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
}

size_t h_desc(h_plugin *h, void *buf, size_t cap) {
  size_t len = cap;
  CHECK_RC(h->ops->local_desc(h->ctx, buf, &len), 0);
  return len;
}

int h_register(h_plugin *h, void *addr, uint64_t len, void **mem, void *rkey,
               size_t *rkey_len) {
  mc_mem_desc d = {(uint64_t)(uintptr_t)addr, len, MC_MEM_CPU, 0, "cpu:0"};
  *rkey_len = MC_RKEY_MAX;
  return h->ops->register_mem(h->ctx, &d, mem, rkey, rkey_len);
}

int h_xfer(h_plugin *h, void *ep, uint32_t op, void *lmem, void *laddr,
           void *rmem, uint64_t raddr, uint64_t len) {
  static uint64_t token = 1000;
  mc_slice s = {++token, op, 0, lmem, (uint64_t)(uintptr_t)laddr, rmem, raddr, len};
  uint32_t acc = 0;
  h_clear(h);
  CHECK_RC(h->ops->submit(h->ctx, ep, &s, 1, &acc), 0);
  CHECK_EQ_INT(acc, 1);
  CHECK(h_wait(h, 1, 10000) == 0);
  CHECK(h_ndone(h) == 1); /* once, and nothing else */
  const h_done *d = h_find(h, token);
  CHECK(d);
  int st = d->status;
  CHECK(d->bytes == (st ? 0 : len));
  h_clear(h);
  return st;
}

void h_send(int fd, const void *buf, uint32_t len) {
  CHECK(write(fd, &len, 4) == 4);
  if (len)
    CHECK(write(fd, buf, len) == (ssize_t)len);
}

uint32_t h_recv(int fd, void *buf, uint32_t cap) {
  uint32_t len = 0;
  ssize_t n = read(fd, &len, 4);
  if (n != 4)
    return UINT32_MAX; /* peer gone */
  CHECK(len <= cap);
  size_t got = 0;
  while (got < len) {
    n = read(fd, (char *)buf + got, len - got);
    if (n <= 0)
      return UINT32_MAX;
    got += (size_t)n;
  }
  return len;
}
