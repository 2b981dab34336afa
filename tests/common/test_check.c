/* The assertions of check.h: a failed check names the expression and both
 * values, stops the test (or counts, with keep-going), and SKIP exits 77
 * with its reason.  Each case runs in a child whose stderr is read back. */
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

/* Runs fn in a child; its stdout+stderr into out; returns the wait status. */
static int run(void (*fn)(void), char *out, size_t cap) {
  int p[2];
  if (pipe(p))
    abort();
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[0]);
    fn();
    exit(0);
  }
  close(p[1]);
  size_t n = 0;
  ssize_t k;
  while (n + 1 < cap && (k = read(p[0], out + n, cap - 1 - n)) > 0)
    n += (size_t)k;
  out[n] = '\0';
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  fprintf(stderr, "--- child said:\n%s", out);
  return st;
}

static void c_int(void) { int x = 3; CHECK_EQ_INT(x + 1, 5); }
static void c_u64(void) { CHECK_EQ_U64((uint64_t)1 << 40, 255); }
static void c_str(void) { const char *s = "tcp"; CHECK_STR(s, "shm"); }
static void c_null(void) { CHECK_STR(NULL, "shm"); }
static void c_rc(void) { CHECK_RC(MC_ENOENT, MC_EINVAL); }
static void c_has(void) { CHECK_HAS("loaded tcp", "shm"); }
static void c_plain(void) { int ready = 0; CHECK(ready); }
static void c_msg(void) { CHECK_MSG(1 == 2, "rail %d of %d", 1, 2); }
static void c_pass(void) {
  CHECK(1);
  CHECK_EQ_INT(-1, -1);
  CHECK_EQ_U64(UINT64_MAX, UINT64_MAX);
  CHECK_STR("a", "a");
  CHECK_STR(NULL, NULL);
  CHECK_RC(MC_EINVAL, MC_EINVAL);
  CHECK_OK(MC_OK);
  CHECK_HAS("abc", "b");
}
static void c_keep(void) {
  mc_check_keep_going(1);
  CHECK_EQ_INT(1, 2);
  CHECK_STR("x", "y");
  exit(mc_check_exit_status());
}
static void c_skip(void) { SKIP("no %s here", "device"); }

static void expect_abort(void (*fn)(void), const char *const *want) {
  char out[8192];
  int st = run(fn, out, sizeof out);
  CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "wait status 0x%x", st);
  CHECK_HAS(out, "test_check.c:");
  CHECK_HAS(out, ": check failed: ");
  for (; *want; want++)
    CHECK_HAS(out, *want);
}

int main(void) {
  expect_abort(c_int, (const char *const[]){"x + 1 == 5", "got 4, want 5", NULL});
  expect_abort(c_u64, (const char *const[]){"got 1099511627776 (0x10000000000), want 255 (0xff)",
                                            NULL});
  expect_abort(c_str, (const char *const[]){"s == \"shm\"", "got \"tcp\", want \"shm\"", NULL});
  expect_abort(c_null, (const char *const[]){"got NULL, want \"shm\"", NULL});
  expect_abort(c_rc, (const char *const[]){"MC_ENOENT", "want", "(MC_EINVAL)", NULL});
  expect_abort(c_has, (const char *const[]){"\"shm\" not in:\nloaded tcp", NULL});
  expect_abort(c_plain, (const char *const[]){"check failed: ready", NULL});
  expect_abort(c_msg, (const char *const[]){"1 == 2: rail 1 of 2", NULL});

  char out[8192];
  int st = run(c_pass, out, sizeof out);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
  CHECK_STR(out, "");

  st = run(c_keep, out, sizeof out);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "wait status 0x%x", st);
  CHECK_EQ_INT(tu_count(out, "check failed"), 2);
  CHECK_HAS(out, "2 check(s) failed");

  st = run(c_skip, out, sizeof out);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 77, "wait status 0x%x", st);
  CHECK_HAS(out, "SKIP: no device here");
  printf("check.h: ok\n");
  return 0;
}
