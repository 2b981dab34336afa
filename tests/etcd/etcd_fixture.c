/* See etcd_fixture.h. */
#include "etcd_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd/etcd_client.h"
#include "net.h"
#include "md_util.h"

static const char *etcd_bin(void) {
  const char *b = getenv("MC_TEST_ETCD");
  return b && *b ? b : "etcd";
}

static int have_etcd(void) {
  const char *b = etcd_bin();
  if (strchr(b, '/'))
    return access(b, X_OK) == 0;
  const char *path = getenv("PATH");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
  char *save = NULL;
  for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", d, b);
    if (access(p, X_OK) == 0)
      return 1;
  }
  return 0;
}

static void spawn(etcd_cluster *c, int i) {
  etcd_member *m = &c->m[i];
  char cluster[1024] = "", curl[64], purl[64], log[400];
  for (int j = 0; j < c->n; j++) {
    char one[96];
    snprintf(one, sizeof one, "%s%s=http://127.0.0.1:%d", j ? "," : "", c->m[j].name,
             c->m[j].peer_port);
    strcat(cluster, one);
  }
  snprintf(curl, sizeof curl, "http://127.0.0.1:%d", m->client_port);
  snprintf(purl, sizeof purl, "http://127.0.0.1:%d", m->peer_port);
  snprintf(log, sizeof log, "%s.log", m->dir);
  pid_t parent = getpid();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    char token[64];
    snprintf(token, sizeof token, "mc-test-%d", (int)parent);
    execlp(etcd_bin(), etcd_bin(), "--name", m->name, "--data-dir", m->dir,
           "--listen-client-urls", curl, "--advertise-client-urls", curl,
           "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
           "--initial-cluster", cluster, "--initial-cluster-state", "new",
           "--initial-cluster-token", token,
           /* Fast elections: a killed leader is replaced in about a second. */
           "--heartbeat-interval", "50", "--election-timeout", "500",
           "--logger", "zap", "--log-level", "warn", (char *)NULL);
    _exit(127);
  }
  m->pid = pid;
}

int etcd_cluster_wait_ready(etcd_cluster *c, int timeout_ms) {
  char eps[256] = "";
  for (int i = 0; i < c->n; i++) {
    if (!c->m[i].pid)
      continue;
    char one[32];
    snprintf(one, sizeof one, "%s127.0.0.1:%d", eps[0] ? "," : "", c->m[i].client_port);
    strcat(eps, one);
  }
  mc_etcd *e;
  char err[512];
  CHECK_RC(mc_etcd_create(eps, NULL, &e, err, sizeof err), 0);
  uint64_t deadline = mc_now_ms() + (uint64_t)timeout_ms;
  int rc = -1;
  while (mc_now_ms() < deadline) {
    if (mc_etcd_put(e, "/fixture/health", "ok", 2, 0, 1000, err, sizeof err) == 0) {
      rc = 0;
      break;
    }
    tu_sleep_ms(100);
  }
  if (rc)
    fprintf(stderr, "etcd fixture: cluster %s not ready: %s\n", eps, err);
  mc_etcd_destroy(e);
  return rc;
}

int etcd_cluster_start(etcd_cluster *c, int n) {
  memset(c, 0, sizeof(*c));
  if (!have_etcd()) {
    fprintf(stderr, "etcd fixture: '%s' not found (install etcd-server); skipping\n", etcd_bin());
    return -1;
  }
  CHECK(n >= 1 && n <= ETCD_MAX_MEMBERS);
  c->n = n;
  CHECK(tu_mkdtemp(c->tmp, sizeof c->tmp, "etcd") == 0);
  for (int i = 0; i < n; i++) {
    etcd_member *m = &c->m[i];
    snprintf(m->name, sizeof m->name, "m%d", i);
    snprintf(m->dir, sizeof m->dir, "%s/m%d", c->tmp, i); /* c->tmp/<name> */
    m->client_port = tu_free_port();
    do
      m->peer_port = tu_free_port();
    while (m->peer_port == m->client_port);
    char one[32];
    snprintf(one, sizeof one, "%s127.0.0.1:%d", i ? "," : "", m->client_port);
    strcat(c->endpoints, one);
  }
  snprintf(c->url, sizeof c->url, "etcd://%s", c->endpoints);
  for (int i = 0; i < n; i++)
    spawn(c, i);
  CHECK(etcd_cluster_wait_ready(c, 20000) == 0);
  return 0;
}

void etcd_member_stop(etcd_cluster *c, int i, int sig) {
  etcd_member *m = &c->m[i];
  if (!m->pid)
    return;
  kill(m->pid, sig);
  int st;
  waitpid(m->pid, &st, 0);
  m->pid = 0;
}

void etcd_member_start(etcd_cluster *c, int i, int wipe) {
  etcd_member *m = &c->m[i];
  CHECK(m->pid == 0);
  if (wipe) {
    CHECK(c->n == 1);
    tu_rmtree(m->dir);
  }
  spawn(c, i);
}

void etcd_cluster_destroy(etcd_cluster *c) {
  for (int i = 0; i < c->n; i++)
    etcd_member_stop(c, i, SIGKILL);
  if (getenv("MC_TEST_KEEP_TMP") == NULL)
    tu_rmtree(c->tmp);
}
