/* bench_child.c - the target process of --mode loopback. */
#include "bench_child.h"
#include "bench_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_stats.h"

#define READY_TIMEOUT_MS 60000 /* engine start: plugin load, listeners */
#define STOP_GRACE_MS 20000    /* engine teardown; ASan builds are slow */

/* argv for "--mode target", from the options that matter to a target. */
static void build_argv(const bench_opts *o, uint64_t total, char **argv,
                       char *total_buf, size_t total_len) {
  size_t k = 0;
  argv[k++] = "mc-transfer-bench";
  argv[k++] = "--mode";
  argv[k++] = "target";
  argv[k++] = "--transport";
  argv[k++] = (char *)o->transport;
  argv[k++] = "--listen";
  argv[k++] = (char *)(o->listen ? o->listen : "127.0.0.1:0");
  if (o->control) {
    argv[k++] = "--control";
    argv[k++] = (char *)o->control;
  }
  snprintf(total_buf, total_len, "%" PRIu64, total);
  argv[k++] = "--total-size";
  argv[k++] = total_buf;
  if (o->config) {
    argv[k++] = "--config";
    argv[k++] = (char *)o->config;
  }
  if (o->metadata) {
    argv[k++] = "--metadata";
    argv[k++] = (char *)o->metadata;
  }
  if (o->shared_pool)
    argv[k++] = "--shared-pool";
  if (o->file) {
    argv[k++] = "--file";
    argv[k++] = (char *)o->file;
  }
  argv[k++] = "--buffers";
  argv[k++] = (char *)bench_mem_kind_name(o->mem_kind);
  argv[k++] = "--quiet";
  argv[k] = NULL;
}

static void reap(bench_child *c, int *status) {
  /* Bounded wait, then SIGKILL: a stuck target must not hang the bench. */
  uint64_t deadline = bench_now_ns() + (uint64_t)STOP_GRACE_MS * 1000000ull;
  for (;;) {
    pid_t p = waitpid(c->pid, status, WNOHANG);
    if (p == c->pid || (p < 0 && errno != EINTR))
      break;
    if (bench_now_ns() >= deadline) {
      kill(c->pid, SIGKILL);
      waitpid(c->pid, status, 0);
      *status = -1;
      break;
    }
    usleep(10000);
  }
  c->pid = -1;
}

static void close_fds(bench_child *c) {
  if (c->in_fd >= 0)
    close(c->in_fd);
  if (c->out_fd >= 0)
    close(c->out_fd);
  c->in_fd = c->out_fd = -1;
}

static void kill_child(bench_child *c) {
  close_fds(c);
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = -1;
  }
}

/* A truncated name would address the wrong peer: refuse it instead. */
static int copy_field(char *dst, size_t dstlen, const char *src, char *err,
                      size_t errlen) {
  size_t n = strlen(src);
  if (n == 0 || n >= dstlen) {
    snprintf(err, errlen, "target printed a bad name '%.64s...' (%zu bytes)",
             src, n);
    return -1;
  }
  memcpy(dst, src, n + 1);
  return 0;
}

/* Reads the child's stdout up to "READY", collecting SEGMENT and CONTROL. */
static int read_banner(bench_child *c, char *err, size_t errlen) {
  char buf[2048];
  size_t have = 0;
  uint64_t deadline = bench_now_ns() + (uint64_t)READY_TIMEOUT_MS * 1000000ull;
  for (;;) {
    char *nl;
    while ((nl = memchr(buf, '\n', have)) != NULL) {
      *nl = '\0';
      if (strncmp(buf, "SEGMENT ", 8) == 0) {
        if (copy_field(c->segment, sizeof c->segment, buf + 8, err, errlen))
          return -1;
      } else if (strncmp(buf, "CONTROL ", 8) == 0) {
        if (copy_field(c->control, sizeof c->control, buf + 8, err, errlen))
          return -1;
      } else if (strcmp(buf, "READY") == 0) {
        if (c->segment[0] && c->control[0])
          return 0;
        snprintf(err, errlen, "target said READY without SEGMENT and CONTROL");
        return -1;
      }
      size_t used = (size_t)(nl - buf) + 1;
      memmove(buf, nl + 1, have - used);
      have -= used;
    }
    if (have == sizeof buf) {
      snprintf(err, errlen, "target sent an over-long line");
      return -1;
    }
    uint64_t now = bench_now_ns();
    if (now >= deadline) {
      snprintf(err, errlen, "target printed no READY within %d s",
               READY_TIMEOUT_MS / 1000);
      return -1;
    }
    struct pollfd p = {c->out_fd, POLLIN, 0};
    int left = (int)((deadline - now) / 1000000ull) + 1;
    int n = poll(&p, 1, left);
    if (n < 0 && errno != EINTR) {
      snprintf(err, errlen, "poll on target stdout: %s", strerror(errno));
      return -1;
    }
    if (n <= 0)
      continue;
    ssize_t r = read(c->out_fd, buf + have, sizeof buf - have);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      snprintf(err, errlen, "target exited before READY (its error is above)");
      return -1;
    }
    have += (size_t)r;
  }
}

int bench_child_start(const bench_opts *o, uint64_t total, bench_child *c,
                      char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->pid = -1;
  c->in_fd = c->out_fd = -1;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    return -1;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    close(in[0]);
    close(in[1]);
    return -1;
  }
  char *argv[24], total_buf[32];
  build_argv(o, total, argv, total_buf, sizeof total_buf);
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    close(in[0]); close(in[1]); close(out[0]); close(out[1]);
    return -1;
  }
  if (pid == 0) {
    /* Child: only async-signal-safe calls until exec. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(127);
    if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
      _exit(127);
    execv("/proc/self/exe", argv);
    static const char msg[] = "mc-transfer-bench: cannot exec /proc/self/exe\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  c->pid = pid;
  c->in_fd = in[1];
  c->out_fd = out[0];
  if (read_banner(c, err, errlen) != 0) {
    kill_child(c);
    return -1;
  }
  return 0;
}

int bench_child_stop(bench_child *c, char *err, size_t errlen) {
  if (c->pid <= 0)
    return 0;
  close_fds(c); /* EOF on the child's stdin: it shuts down */
  int status = 0;
  reap(c, &status);
  if (status == -1) {
    snprintf(err, errlen, "target did not stop within %d s; killed",
             STOP_GRACE_MS / 1000);
    return -1;
  }
  if (WIFSIGNALED(status)) {
    snprintf(err, errlen, "target died of signal %d", WTERMSIG(status));
    return -1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    snprintf(err, errlen, "target exited with status %d", WEXITSTATUS(status));
    return -1;
  }
  return 0;
}
