/* tcp_test_host.c - see tcp_test_host.h. */
#include "tcp_test_host.h"

#include "config.h" /* the core's value parsers and params reader */

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The plugin th_load loaded last: the typed getters read its params. */
static const mc_transport_ops *th_ops;

const mc_transport_ops *th_load(const char *path, void **dl) {
  *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!*dl) {
    fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
    exit(1);
  }
  mc_transport_entry_v1_fn entry;
  *(void **)&entry = dlsym(*dl, MC_TRANSPORT_ENTRY_V1);
  if (!entry) {
    fprintf(stderr, "%s: no entry point\n", path);
    exit(1);
  }
  th_ops = entry();
  return th_ops;
}

__attribute__((format(printf, 3, 4))) static void h_log(void *host, int level, const char *fmt,
                                                        ...) {
  th_host *h = host;
  if (level > MC_LOG_WARN)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "  [%s] ", h->name);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static int h_log_enabled(void *host, int level) {
  (void)host;
  return level <= MC_LOG_WARN;
}

/* Finds key in "k=v;k=v"; values are copied into the host's small table
 * (init reads each key once, so it does not wrap). */
static int h_config_get(void *host, const char *key, const char **val) {
  th_host *h = host;
  if (!h->params)
    return MC_ENOENT;
  size_t kl = strlen(key);
  for (const char *p = h->params; *p;) {
    const char *end = strchr(p, ';');
    size_t l = end ? (size_t)(end - p) : strlen(p);
    if (l > kl && !strncmp(p, key, kl) && p[kl] == '=') {
      pthread_mutex_lock(&h->lock);
      char *b = h->vals[h->nvals++ % 16];
      pthread_mutex_unlock(&h->lock);
      snprintf(b, sizeof h->vals[0], "%.*s", (int)(l - kl - 1), p + kl + 1);
      *val = b;
      return 0;
    }
    p += l + (end ? 1 : 0);
  }
  return MC_ENOENT;
}

static void h_complete(void *host, uint64_t token, int status, uint64_t bytes, int32_t verr) {
  (void)bytes;
  (void)verr;
  th_host *h = host;
  pthread_mutex_lock(&h->lock);
  if (token < TH_MAX_TOKENS) {
    if (h->count[token]++)
      h->doubles++;
    h->status[token] = status;
  } else {
    h->doubles++;
  }
  h->done++;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

static void h_notify_recv(void *host, const char *peer, const void *msg, size_t len) {
  (void)peer;
  (void)msg;
  (void)len;
  th_host *h = host;
  pthread_mutex_lock(&h->lock);
  h->notifies++;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

/* The typed getters of ABI 1.1, as an engine's: the configured text, else
 * the param's default_text, parsed by the core's own parsers (config.h),
 * so the plugin reads here what it reads in an engine.  Ranges are left
 * to the plugin, which checks them again, so bad values still reach it. */
static int h_typed(void *host, const char *key, uint32_t type,
                   const char **val) {
  mc_param_info pi;
  if (!th_ops || !key || mc_param_find(th_ops, key, &pi) || pi.type != type)
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

void th_host_init(th_host *h, const char *name, const char *params) {
  memset(h, 0, sizeof *h);
  h->name = name;
  h->params = params;
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  h->api = (mc_host_api){MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR, sizeof(mc_host_api), h,
                         h_log, h_log_enabled, h_config_get, h_complete, h_notify_recv,
                         h_get_size, h_get_int, h_get_bool};
}

void th_host_fini(th_host *h) {
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
}

int th_wait(th_host *h, uint64_t first, uint32_t n, int timeout_ms) {
  int64_t end = th_now_ms() + timeout_ms;
  pthread_mutex_lock(&h->lock);
  for (uint32_t i = 0; i < n; i++) {
    while (!h->count[first + i]) {
      if (th_now_ms() > end) {
        pthread_mutex_unlock(&h->lock);
        return -1;
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 10 * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&h->cond, &h->lock, &ts);
    }
  }
  pthread_mutex_unlock(&h->lock);
  return 0;
}
