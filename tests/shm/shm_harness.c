/* Test harness for the shm plugin: see shm_harness.h. */
#include "shm_harness.h"

#include "config.h" /* the core's value parsers and params reader */

#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *h_err(int rc) {
  static const char *const names[] = {
      "OK", "EINVAL", "ENOMEM", "ENOTSUP", "ENODEV", "ENOENT", "ERANGE",
      "EACCES", "EAGAIN", "ETIMEDOUT", "EPEER", "ECANCELED", "EPROTO",
      "EABI", "ENOSPC", "EIO", "EEXIST", "EBUSY"};
  return rc <= 0 && rc >= -17 ? names[-rc] : "?";
}

static void h_log(void *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void h_log(void *host, int level, const char *fmt, ...) {
  (void)host;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[shm %d pid %d] ", level, (int)getpid());
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int h_log_enabled(void *host, int level) {
  (void)host;
  return level <= MC_LOG_INFO;
}

static int h_config_get(void *host, const char *key, const char **val) {
  h_plugin *h = host;
  for (int i = 0; i < h->nopts; i++) {
    if (!strcmp(h->keys[i], key)) {
      *val = h->vals[i];
      return 0;
    }
  }
  return MC_ENOENT;
}

/* The typed getters of ABI 1.1, as an engine's: the configured text, else
 * the param's default_text, parsed by the core's own parsers (config.h),
 * so the plugin reads here what it reads in an engine.  Ranges are left
 * to the plugin, which checks them again, so bad values still reach it. */
static int h_typed(void *host, const char *key, uint32_t type,
                   const char **val) {
  h_plugin *h = host;
  mc_param_info pi;
  if (!key || mc_param_find(h->ops, key, &pi) || pi.type != type)
    return MC_EINVAL;
  if (h_config_get(host, key, val) == 0)
    return 0;
  if (!pi.default_text || !pi.default_text[0])
    return MC_ENOENT;
  *val = pi.default_text;
  return 0;
}

static int h_get_size(void *host, const char *key, uint64_t *out) {
  const char *v;
  int rc = h_typed(host, key, MC_PARAM_SIZE, &v);
  return rc ? rc : mc_config_parse_size(v, out) ? MC_EINVAL : 0;
}

static int h_get_int(void *host, const char *key, int64_t *out) {
  const char *v;
  int rc = h_typed(host, key, MC_PARAM_INT, &v);
  return rc ? rc : mc_config_parse_int(v, out) ? MC_EINVAL : 0;
}

static int h_get_bool(void *host, const char *key, int *out) {
  const char *v;
  int rc = h_typed(host, key, MC_PARAM_BOOL, &v);
  return rc ? rc : mc_config_parse_bool(v, out) ? MC_EINVAL : 0;
}

static void h_complete(void *host, uint64_t token, int status, uint64_t bytes,
                       int32_t verr) {
  h_plugin *h = host;
  pthread_mutex_lock(&h->lock);
  H_CHECK(h->ndone < H_MAX_DONE);
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

static void h_notify(void *host, const char *peer, const void *msg, size_t len) {
  (void)host, (void)peer, (void)msg, (void)len;
}

void h_load(h_plugin *h, const char *path) {
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h->dl) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    exit(1);
  }
  mc_transport_entry_v1_fn entry;
  *(void **)&entry = dlsym(h->dl, MC_TRANSPORT_ENTRY_V1);
  H_CHECK(entry);
  h->ops = entry();
  H_CHECK(h->ops && h->ops->abi_major == MC_TRANSPORT_ABI_MAJOR);
  h->api = (mc_host_api){MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR,
                         sizeof(mc_host_api), h, h_log, h_log_enabled,
                         h_config_get, h_complete, h_notify,
                         h_get_size, h_get_int, h_get_bool};
}

void h_opt(h_plugin *h, const char *key, const char *val) {
  H_CHECK(h->nopts < H_MAX_OPTS);
  h->keys[h->nopts] = key;
  h->vals[h->nopts++] = val;
}

int h_init(h_plugin *h, const char *segment) {
  mc_init_args a = {sizeof a, segment, "127.0.0.1", NULL};
  return h->ops->init(&h->api, &a, &h->ctx);
}

void h_fini(h_plugin *h) {
  if (h->ctx)
    H_RC(h->ops->fini(h->ctx), 0);
  h->ctx = NULL;
}

void h_unload(h_plugin *h) {
  h_fini(h);
  dlclose(h->dl);
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
}

size_t h_desc(h_plugin *h, void *buf, size_t cap) {
  size_t len = cap;
  H_RC(h->ops->local_desc(h->ctx, buf, &len), 0);
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
  H_RC(h->ops->submit(h->ctx, ep, &s, 1, &acc), 0);
  H_CHECK(acc == 1);
  H_CHECK(h_wait(h, 1, 10000) == 0);
  H_CHECK(h_ndone(h) == 1); /* once, and nothing else */
  const h_done *d = h_find(h, token);
  H_CHECK(d);
  int st = d->status;
  H_CHECK(d->bytes == (st ? 0 : len));
  h_clear(h);
  return st;
}

void h_send(int fd, const void *buf, uint32_t len) {
  H_CHECK(write(fd, &len, 4) == 4);
  if (len)
    H_CHECK(write(fd, buf, len) == (ssize_t)len);
}

uint32_t h_recv(int fd, void *buf, uint32_t cap) {
  uint32_t len = 0;
  ssize_t n = read(fd, &len, 4);
  if (n != 4)
    return UINT32_MAX; /* peer gone */
  H_CHECK(len <= cap);
  size_t got = 0;
  while (got < len) {
    n = read(fd, (char *)buf + got, len - got);
    if (n <= 0)
      return UINT32_MAX;
    got += (size_t)n;
  }
  return len;
}
