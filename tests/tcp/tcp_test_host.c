/* tcp_test_host.c - see tcp_test_host.h. */
#include "tcp_test_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
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
  char err[512];
  th_ops = mc_fake_load(path, dl, err, sizeof err);
  if (!th_ops) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  return th_ops;
}

static void on_complete(void *arg, uint64_t token, int status, uint64_t bytes, int32_t verr) {
  (void)bytes;
  (void)verr;
  th_host *h = arg;
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

static void on_notify(void *arg, const char *peer, const void *msg, size_t len) {
  (void)peer;
  (void)msg;
  (void)len;
  th_host *h = arg;
  pthread_mutex_lock(&h->lock);
  h->notifies++;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

void th_host_init(th_host *h, const char *name, const char *params) {
  memset(h, 0, sizeof *h);
  mc_fake_host_init(&h->fh, name, th_ops);
  CHECK_OK(mc_fake_host_set_list(&h->fh, params));
  h->fh.on_complete = on_complete;
  h->fh.on_notify = on_notify;
  h->fh.cb_arg = h;
  h->api = h->fh.api;
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
}

void th_host_fini(th_host *h) {
  mc_fake_host_fini(&h->fh);
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

void th_proc_stats(int *threads, long *rss_kb, int *fds) {
  *threads = -1;
  *rss_kb = -1;
  *fds = 0;
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    if (!strncmp(line, "Threads:", 8))
      *threads = atoi(line + 8);
    else if (!strncmp(line, "VmRSS:", 6))
      *rss_kb = atol(line + 6);
  }
  if (f)
    fclose(f);
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));)
    *fds += e->d_name[0] != '.';
  if (d) {
    closedir(d);
    (*fds)--; /* the directory's own fd */
  }
}

void th_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}
