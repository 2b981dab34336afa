/* rdma_test_host.c - see rdma_test_host.h. */
#include "rdma_test_host.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int rd_all(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len) {
    ssize_t r = read(fd, p, len);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

static int wr_all(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t r = write(fd, p, len);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

static int sock_path(const char *dir, const char *name, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  int l = snprintf(a->sun_path, sizeof a->sun_path, "%s/%s.sock", dir, name);
  return l > 0 && (size_t)l < sizeof a->sun_path ? 0 : -1;
}

/* The listener: one request per connection, answered by ctrl_handle with
 * the caller's announced name (the core would have authenticated it). */
static void *srv_main(void *arg) {
  rt_node *n = arg;
  while (!n->stop) {
    struct pollfd p = {n->lfd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
      continue;
    int c = accept(n->lfd, NULL, NULL);
    if (c < 0)
      continue;
    uint32_t nl = 0, rl = 0;
    char peer[MC_NAME_MAX];
    uint8_t req[MC_CTRL_MAX], resp[MC_CTRL_MAX];
    if (!rd_all(c, &nl, 4) && nl < sizeof peer && !rd_all(c, peer, nl) && !rd_all(c, &rl, 4) &&
        rl <= MC_CTRL_MAX && !rd_all(c, req, rl)) {
      peer[nl] = '\0';
      size_t olen = MC_CTRL_MAX;
      int32_t rc = n->ops->ctrl_handle && n->ctx
                       ? n->ops->ctrl_handle(n->ctx, peer, req, rl, resp, &olen)
                       : MC_ENOTSUP;
      uint32_t ol = rc ? 0 : (uint32_t)olen;
      if (!wr_all(c, &rc, 4) && !wr_all(c, &ol, 4))
        wr_all(c, resp, ol);
    }
    close(c);
  }
  return NULL;
}

static int h_ctrl_call(void *host, const char *peer, const void *req, size_t req_len, void *resp,
                       size_t *resp_len, uint32_t timeout_ms) {
  rt_node *n = (rt_node *)host; /* h is the first member */
  struct sockaddr_un a;
  if (!peer || !req || req_len == 0 || req_len > MC_CTRL_MAX || sock_path(n->dir, peer, &a))
    return MC_EINVAL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return MC_EIO;
  struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    int e = errno;
    close(fd);
    return e == ENOENT ? MC_ENOENT : MC_EPEER;
  }
  uint32_t nl = (uint32_t)strlen(n->name), rl = (uint32_t)req_len, ol = 0;
  int32_t rc = 0;
  if (wr_all(fd, &nl, 4) || wr_all(fd, n->name, nl) || wr_all(fd, &rl, 4) ||
      wr_all(fd, req, req_len) || rd_all(fd, &rc, 4) || rd_all(fd, &ol, 4)) {
    int e = errno;
    close(fd);
    return e == EAGAIN || e == EWOULDBLOCK ? MC_ETIMEDOUT : MC_EPEER;
  }
  if (ol > *resp_len) {
    close(fd);
    *resp_len = ol;
    return MC_ENOSPC;
  }
  if (ol && rd_all(fd, resp, ol)) {
    close(fd);
    return MC_EPEER;
  }
  close(fd);
  *resp_len = ol;
  return rc;
}

static void on_complete(void *arg, uint64_t token, int status, uint64_t bytes, int32_t verr) {
  (void)bytes;
  (void)verr;
  rt_node *n = arg;
  pthread_mutex_lock(&n->lock);
  if (token < RT_MAX_TOKENS) {
    if (n->seen[token])
      n->dup++;
    n->seen[token] = 1;
    n->status[token] = status;
  }
  n->done++;
  /* Wake the waiter once, when its count is reached: a broadcast per
   * completion would cost the bench more than the plugin does. */
  if (n->done == n->wake_at)
    pthread_cond_broadcast(&n->cond);
  pthread_mutex_unlock(&n->lock);
}

int rt_node_init(rt_node *n, const char *plugin, const char *name, const char *dir,
                 const char *const *kv) {
  memset(n, 0, sizeof *n);
  snprintf(n->name, sizeof n->name, "%s", name);
  snprintf(n->dir, sizeof n->dir, "%s", dir);
  n->lfd = -1;
  pthread_mutex_init(&n->lock, NULL);
  pthread_cond_init(&n->cond, NULL);
  n->status = calloc(RT_MAX_TOKENS, sizeof *n->status);
  n->seen = calloc(RT_MAX_TOKENS, 1);
  char err[512];
  n->ops = mc_fake_load(plugin, &n->dl, err, sizeof err);
  if (!n->ops || !n->status || !n->seen) {
    fprintf(stderr, "cannot load %s: %s\n", plugin, err);
    return MC_EIO;
  }
  mc_fake_host_init(&n->h, name, n->ops);
  n->h.api.ctrl_call = h_ctrl_call;
  n->h.on_complete = on_complete;
  n->h.cb_arg = n;
  if (getenv("RT_VERBOSE"))
    n->h.print_level = n->h.enabled_level = MC_LOG_DEBUG;
  mc_fake_host_set_pairs(&n->h, kv);
  struct sockaddr_un a;
  if (sock_path(dir, name, &a))
    return MC_EINVAL;
  unlink(a.sun_path);
  n->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (n->lfd < 0 || bind(n->lfd, (struct sockaddr *)&a, sizeof a) || listen(n->lfd, 64))
    return MC_EIO;
  mc_init_args args = {sizeof args, name, "127.0.0.1", "test-host"};
  int rc = n->ops->init(&n->h.api, &args, &n->ctx);
  if (rc) {
    n->ctx = NULL;
    return rc;
  }
  if (pthread_create(&n->srv, NULL, srv_main, n) == 0)
    n->srv_started = 1;
  return 0;
}

void rt_node_fini(rt_node *n) {
  n->stop = 1;
  if (n->srv_started)
    pthread_join(n->srv, NULL);
  if (n->ctx)
    n->ops->fini(n->ctx);
  if (n->lfd >= 0) {
    close(n->lfd);
    struct sockaddr_un a;
    if (!sock_path(n->dir, n->name, &a))
      unlink(a.sun_path);
  }
  if (n->ops)
    mc_fake_host_fini(&n->h);
  free(n->status);
  free(n->seen);
  pthread_cond_destroy(&n->cond);
  pthread_mutex_destroy(&n->lock);
}

void rt_expect(rt_node *n, uint64_t from, uint64_t to) {
  pthread_mutex_lock(&n->lock);
  for (uint64_t t = from; t < to && t < RT_MAX_TOKENS; t++) {
    n->seen[t] = 0;
    n->status[t] = 1;
  }
  pthread_mutex_unlock(&n->lock);
}

int rt_wait_done(rt_node *n, uint64_t count, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&n->lock);
  n->wake_at = count;
  while (n->done < count && rc == 0)
    rc = pthread_cond_timedwait(&n->cond, &n->lock, &dl);
  int ok = n->done >= count;
  pthread_mutex_unlock(&n->lock);
  return ok ? 0 : -1;
}

int rt_submit_all(rt_node *n, void *ep, const mc_slice *s, uint32_t cnt, int timeout_ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (cnt) {
    uint32_t acc = 0;
    int rc = n->ops->submit(n->ctx, ep, s, cnt, &acc);
    if (rc && rc != MC_EAGAIN)
      return rc;
    s += acc;
    cnt -= acc;
    if (cnt && !acc) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
        return MC_ETIMEDOUT;
      usleep(50);
    }
  }
  return 0;
}
