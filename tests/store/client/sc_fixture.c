/* The store client tests' fixture (sc_fixture.h). */
#include "sc_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

uint64_t fx_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(fd >= 0);
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

static const char *env_path(const char *var) {
  const char *p = getenv(var);
  if (!p || !*p || access(p, X_OK))
    SKIP("%s is not set to a program (run through meson test)", var);
  return p;
}

/* fork+exec dying with us; stdout to out_fd when >= 0. */
static pid_t spawn(char *const argv[], int out_fd) {
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1);
  if (out_fd >= 0)
    dup2(out_fd, 1);
  execv(argv[0], argv);
  _exit(127);
}

static void master_exec(fx_master *m) {
  char port[32];
  snprintf(port, sizeof port, "--rpc_port=%d", m->port);
  char *av[24];
  int n = 0;
  av[n++] = (char *)env_path("MC_STORE_MASTER_BIN");
  av[n++] = port;
  av[n++] = "--rpc_address=127.0.0.1";
  av[n++] = "--enable_metric_reporting=false";
  for (int i = 0; i < m->nargs; i++)
    av[n++] = m->args[i];
  av[n] = NULL;
  m->pid = spawn(av, -1);
  for (int i = 0; i < 500; i++) {
    if (port_open(m->port))
      return;
    int st;
    if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
      m->pid = 0;
      CHECK_MSG(0, "mooncake-master exited (status %d) before listening", st);
    }
    usleep(20000);
  }
  CHECK_MSG(0, "mooncake-master did not listen on port %d within 10 s", m->port);
}

void fx_master_start(fx_master *m, ...) {
  memset(m, 0, sizeof *m);
  m->port = free_port();
  snprintf(m->addr, sizeof m->addr, "127.0.0.1:%d", m->port);
  va_list ap;
  va_start(ap, m);
  const char *a;
  while ((a = va_arg(ap, const char *)) && m->nargs < 16)
    m->args[m->nargs++] = strdup(a);
  va_end(ap);
  master_exec(m);
}

void fx_master_stop(fx_master *m, int sig) {
  if (m->pid > 0) {
    kill(m->pid, sig);
    waitpid(m->pid, NULL, 0);
  }
  m->pid = 0;
  if (sig == SIGTERM)
    for (int i = 0; i < m->nargs; i++)
      free(m->args[i]);
  if (sig == SIGTERM)
    m->nargs = 0;
}

void fx_master_restart(fx_master *m) { master_exec(m); }

pid_t fx_holder_start(const fx_master *m, uint64_t size, char *name, size_t len) {
  return fx_holder_start_ex(m, size, name, len, NULL);
}

pid_t fx_holder_start_ex(const fx_master *m, uint64_t size, char *name, size_t len,
                         const char *const *extra) {
  char sz[32];
  snprintf(sz, sizeof sz, "%llu", (unsigned long long)size);
  char *av[24];
  int na = 0;
  av[na++] = (char *)env_path("MC_STORE_CLI");
  av[na++] = "--master";
  av[na++] = (char *)m->addr;
  for (int i = 0; extra && extra[i] && na < 19; i++)
    av[na++] = (char *)extra[i];
  av[na++] = "mount";
  av[na++] = sz;
  av[na] = NULL;
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = spawn(av, p[1]);
  close(p[1]);
  char line[512];
  size_t n = 0;
  while (n < sizeof line - 1) {
    ssize_t r = read(p[0], line + n, 1);
    if (r <= 0)
      break;
    if (line[n++] == '\n')
      break;
  }
  line[n] = 0;
  close(p[0]);
  const char *seg = strstr(line, "as segment ");
  CHECK_MSG(seg != NULL, "mc-store mount printed '%s'", line);
  snprintf(name, len, "%s", seg + 11);
  name[strcspn(name, "\n")] = 0;
  return pid;
}

void fx_holder_kill(pid_t pid, int sig) {
  kill(pid, sig);
  waitpid(pid, NULL, 0);
}

mc_store *fx_client(const fx_master *m, uint64_t seg) {
  mc_store_config c = {.struct_size = sizeof c, .master = m->addr, .global_segment_size = seg,
                       .local_buffer_size = 16u << 20};
  mc_store *s = NULL;
  int rc = mc_store_create(&c, &s);
  CHECK_MSG(rc == 0, "mc_store_create: %s: %s", mc_store_errname(rc), mc_store_last_error());
  return s;
}

void fx_fill(void *buf, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  uint8_t *b = buf;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(b + i, &x, 8);
  }
  for (; i < n; i++)
    b[i] = (uint8_t)(x >> (8 * (i & 7)));
}

uint64_t fx_hash(const void *buf, size_t n) {
  const uint8_t *b = buf;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
