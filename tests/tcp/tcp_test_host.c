/* tcp_test_host.c - see tcp_test_host.h. */
#include "tcp_test_host.h"

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
  return entry();
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

void th_host_init(th_host *h, const char *name, const char *params) {
  memset(h, 0, sizeof *h);
  h->name = name;
  h->params = params;
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  h->api = (mc_host_api){MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR, sizeof(mc_host_api), h,
                         h_log, h_log_enabled, h_config_get, h_complete, h_notify_recv};
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
