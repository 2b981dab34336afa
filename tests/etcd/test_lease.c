/* A publishing engine killed with SIGKILL: its segment stays while the
 * lease lives and disappears within the lease TTL (2 s here), because
 * nobody renews the lease any more.  The publisher is a re-exec of this
 * program ("--child URL"), so it starts with a clean gRPC state. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_fixture.h"
#include "md_common.h"
#include "net.h"
#include "md_util.h"

static int child(const char *url, int fd) {
  mc_metadata *md = md_open(url, 2000, NULL);
  CHECK_RC(md_publish(md, "victim", 3), 0);
  CHECK(write(fd, "r", 1) == 1);
  for (;;)
    pause(); /* keeps the lease alive until killed */
  return 0; /* not reached */
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0)
    return child(argv[2], atoi(argv[3]));
  etcd_cluster c;
  if (etcd_cluster_start(&c, 1) != 0)
    return 77;
  char url[400];
  snprintf(url, sizeof url, "%s?ttl=2", c.url);
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", p[1]);
    execl("/proc/self/exe", argv[0], "--child", url, fd, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char ch;
  CHECK(read(p[0], &ch, 1) == 1);
  mc_metadata *md = md_open(url, 2000, NULL);
  CHECK(md_fetch_version(md, "victim") == 3);
  /* Alive and renewing: still there after more than one TTL. */
  tu_sleep_ms(3000);
  CHECK(md_fetch_version(md, "victim") == 3);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  uint64_t t0 = mc_now_ms();
  long ms = md_wait_version(md, "victim", MC_ENOENT, 6000);
  printf("killed publisher's segment vanished after %ld ms (ttl 2000 ms)\n", ms);
  CHECK(ms >= 0 && mc_now_ms() - t0 <= 3500);
  mc_metadata_close(md);
  etcd_cluster_destroy(&c);
  printf("etcd lease ok\n");
  return 0;
}
