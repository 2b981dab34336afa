/* See mds_fixture.h. */
#include "mds_fixture.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "md_util.h"

void mds_start(mds *s, const char *bin, const char *extra1, const char *extra2) {
  const char *extra[] = {extra1, extra1 ? extra2 : NULL, NULL};
  mds_startv(s, bin, extra);
}

void mds_startv(mds *s, const char *bin, const char *const *extra) {
  s->bin = bin;
  if (!s->port)
    s->port = tu_free_port();
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    const char *argv[20] = {bin, "--listen", listen, "--path", "/metadata", "--threads", "2"};
    size_t n = 7;
    for (size_t i = 0; extra && extra[i] && i < 8; i++)
      argv[n++] = extra[i];
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  s->pid = pid;
  char line[256] = "";
  size_t n = 0;
  uint64_t deadline = mc_now_ms() + 10000;
  while (!strchr(line, '\n') && mc_now_ms() < deadline && n < sizeof line - 1) {
    struct pollfd pfd = {p[0], POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    ssize_t r = read(p[0], line + n, sizeof line - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
    line[n] = 0;
  }
  close(p[0]);
  if (!strstr(line, "listening on http://")) {
    fprintf(stderr, "metadata server %s did not start (port %d): '%s'\n", bin, s->port, line);
    abort();
  }
  snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/metadata", s->port);
}

int mds_stop(mds *s, int sig) {
  if (!s->pid)
    return -1;
  kill(s->pid, sig);
  int st = 0;
  waitpid(s->pid, &st, 0);
  s->pid = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
