/* mc-store from a shell: put (argument and stdin), get, exist, size, ls,
 * remove, remove-regex against a real master and a `mc-store mount`
 * holder; usage errors exit 2, store errors exit 1 naming the code. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sc_fixture.h"

static const fx_master *g_m;

/* Runs `mc-store --master ADDR <args>` with sh, stdin from in (may be
 * NULL); returns the exit status, stdout+stderr in out. */
static int cli(char *out, size_t len, const char *in, const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s%s%s '%s' --master %s %s 2>&1", in ? "printf '%s' '" : "",
           in ? in : "", in ? "' | " : "", getenv("MC_STORE_CLI"), g_m->addr, args);
  FILE *p = popen(cmd, "r");
  CHECK(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
  if (!getenv("MC_STORE_CLI"))
    SKIP("MC_STORE_CLI is not set (run through meson test)");
  fx_master m;
  fx_master_start(&m, NULL);
  g_m = &m;
  char seg[MC_STORE_NAME_MAX], out[8192];
  pid_t h = fx_holder_start(&m, 16u << 20, seg, sizeof seg);
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "put greeting hello-world"), 0);
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "get greeting"), 0);
  CHECK_STR(out, "hello-world");
  CHECK_EQ_INT(cli(out, sizeof out, "from stdin\n", "put piped"), 0);
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "get piped"), 0);
  CHECK_STR(out, "from stdin\n");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "exist greeting"), 0);
  CHECK_STR(out, "1\n");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "size greeting"), 0);
  CHECK_STR(out, "11\n");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "ls"), 0);
  CHECK_HAS(out, "greeting\t11");
  CHECK_HAS(out, "piped\t11");
  CHECK_HAS(out, "# objects 2, segments 1");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "put greeting again"), 1);
  CHECK_HAS(out, "OBJECT_ALREADY_EXISTS");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "--force remove greeting"), 0);
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "exist greeting"), 0);
  CHECK_STR(out, "0\n");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "get greeting"), 1);
  CHECK_HAS(out, "OBJECT_NOT_FOUND");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "--force remove-regex '^pi'"), 0);
  CHECK_STR(out, "1\n");
  /* Usage errors. */
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "frobnicate"), 2);
  CHECK_HAS(out, "unknown command");
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "get"), 2);
  CHECK_EQ_INT(cli(out, sizeof out, NULL, "mount 12Q"), 2);
  CHECK_HAS(out, "bad size");
  /* No master. */
  char bad[512];
  snprintf(bad, sizeof bad, "'%s' --master 127.0.0.1:1 exist x 2>&1", getenv("MC_STORE_CLI"));
  FILE *p = popen(bad, "r");
  CHECK(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  CHECK_HAS(out, "RPC_");
  fx_holder_kill(h, SIGTERM);
  fx_master_stop(&m, SIGTERM);
  printf("mc-store CLI: ok\n");
  return 0;
}
