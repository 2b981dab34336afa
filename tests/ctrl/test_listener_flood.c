/* The handshake listener under a flood (issue 12): more idle and slow
 * unauthenticated connections than its pending pool holds (32, 8 per
 * source address), from 60 source addresses and from the legitimate
 * client's own address, reopened as soon as the listener drops them, while
 * a legitimate engine keeps asking: control calls (mc_host_api.ctrl_call
 * through the ctrlfix fixture) and p2p descriptor fetches (a new engine's
 * mc_segment_open) must all succeed.  The rate before and during the
 * flood and the error count are printed; zero errors are required.
 *
 *   test_listener_flood <ctrlfix dir> */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "flood.h"
#include "mooncake/engine.h"
#include "mooncake/transport.h"
#include "testutil.h"

typedef int (*call_fn)(const char *self, const char *peer, const void *req,
                       size_t req_len, void *resp, size_t *resp_len,
                       uint32_t timeout_ms);
static call_fn fx_call;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static mc_engine *engine(void) {
  mc_engine_opts o = {.struct_size = sizeof o,
                      .listen = "127.0.0.1:0",
                      .metadata = "p2p",
                      .transports = "ctrlfix"};
  mc_engine *e = NULL;
  char err[512] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc)
    fprintf(stderr, "engine: %s\n", err);
  CHECK_RC(rc, 0);
  return e;
}

/* Control calls from `from` to `to` for ms milliseconds: calls done,
 * failures (each printed), the slowest call. */
static long hammer(mc_engine *from, mc_engine *to, int ms, long *errors,
                   uint64_t *worst) {
  const char *self = mc_engine_segment_name(from);
  const char *peer = mc_engine_segment_name(to);
  char want[600];
  snprintf(want, sizeof want, "%s|%s|ping", peer, self);
  long n = 0;
  *errors = 0;
  *worst = 0;
  uint64_t end = now_ms() + (uint64_t)ms;
  while (now_ms() < end) {
    char resp[MC_CTRL_MAX];
    size_t rl = sizeof resp;
    uint64_t t0 = now_ms();
    int rc = fx_call(self, peer, "echo:ping", 9, resp, &rl, 10000);
    uint64_t took = now_ms() - t0;
    if (took > *worst)
      *worst = took;
    if (rc || rl != strlen(want) || memcmp(resp, want, rl) != 0) {
      fprintf(stderr, "control call %ld failed: %s (%s)\n", n, mc_strerror(rc),
              mc_last_error());
      (*errors)++;
    }
    n++;
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <ctrlfix dir>\n", argv[0]);
    return 2;
  }
  tu_raise_nofile(4096);
  char path[1024];
  snprintf(path, sizeof path, "%s/mc-transport-ctrlfix.so", argv[1]);
  setenv("MC_PLUGIN_PATH", argv[1], 1);
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  CHECK(dl != NULL);
  *(void **)&fx_call = dlsym(dl, "ctrlfix_call");
  CHECK(fx_call != NULL);

  mc_engine *target = engine(), *client = engine();
  const char *tname = mc_engine_segment_name(target);
  uint16_t port = (uint16_t)atoi(strrchr(tname, ':') + 1);

  long err0, err1;
  uint64_t worst0, worst1;
  hammer(client, target, 300, &err0, &worst0); /* warm-up: address cached */
  CHECK(err0 == 0);
  long base = hammer(client, target, 1500, &err0, &worst0);
  CHECK(err0 == 0 && base > 0);

  /* 400 idle clients from 127.0.0.2..51 (8 each: each source at the
   * per-source limit), 40 slow ones from 127.0.0.60..69 trickling a
   * header that announces a long name, 16 idle ones from 127.0.0.1 (the
   * legitimate client's own address), all reopened at once when dropped:
   * far more than the 32-connection pending pool. */
  tu_flood_args idle = {.port = port, .n = 400, .first_src = 2, .nsrc = 50,
                        .reconnect = 1};
  static const char hdr[] = "MCP2\x01\x01\x00\x00\x00\x00\x0f\xa0"
                            "aaaaaaaaaaaaaaaa";
  tu_flood_args slow = {.port = port, .n = 40, .first_src = 60, .nsrc = 10,
                        .slow = hdr, .slow_len = (int)sizeof hdr - 1,
                        .slow_loop = 12, .slow_ms = 100, .reconnect = 1};
  tu_flood_args same = {.port = port, .n = 16, .first_src = 1, .nsrc = 1,
                        .reconnect = 1};
  tu_flood *f1 = tu_flood_start(&idle), *f2 = tu_flood_start(&slow),
           *f3 = tu_flood_start(&same);
  CHECK(f1 && f2 && f3);
  usleep(300 * 1000); /* let the flood fill the pool */

  long under = hammer(client, target, 3000, &err1, &worst1);

  /* A new engine still opens the flooded engine's segment (a p2p
   * descriptor fetch through the same listener). */
  mc_engine *late = engine();
  mc_segment *s = NULL;
  uint64_t t0 = now_ms();
  CHECK_RC(mc_segment_open(late, tname, &s), 0);
  uint64_t open_ms = now_ms() - t0;
  mc_segment_close(s);

  tu_flood_stats st[3];
  tu_flood_get(f1, &st[0]);
  tu_flood_get(f2, &st[1]);
  tu_flood_get(f3, &st[2]);
  tu_flood_stop(f3);
  tu_flood_stop(f2);
  tu_flood_stop(f1);

  long flood_conns = st[0].connects + st[1].connects + st[2].connects;
  long dropped = st[0].closed + st[1].closed + st[2].closed;
  printf("listener flood: %ld flood connections opened (%ld dropped by the "
         "listener and reopened), 456 held open at a time\n",
         flood_conns, dropped);
  printf("legitimate control calls: %.0f/s before, %.0f/s during the flood "
         "(%.2fx), errors %ld, slowest %llu ms; segment open while flooded: "
         "%llu ms\n",
         base * 1000.0 / 1500, under * 1000.0 / 3000,
         base ? (under * 1500.0) / (base * 3000.0) : 0.0, err1,
         (unsigned long long)worst1, (unsigned long long)open_ms);
  CHECK(err1 == 0);
  CHECK(under > 0);
  /* The flood really exceeded the pool: the listener had to drop clients. */
  CHECK(flood_conns > 456 && dropped > 0);

  mc_engine_destroy(late);
  mc_engine_destroy(client);
  mc_engine_destroy(target);
  dlclose(dl);
  printf("listener flood: all checks passed\n");
  return 0;
}
