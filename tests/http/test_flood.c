/* mooncake-metadata-server under a flood (issue 12): thousands of idle and
 * slow connections while a legitimate client keeps reading and writing
 * keys through the HTTP metadata backend, and a new engine starts.
 *
 *   - 2000 idle clients from 40 addresses (127.0.0.10..49, 50 each: under
 *     the default per-address limit of 64, so all are held) reopened when
 *     the server's idle timeout closes them;
 *   - 600 idle clients from one address (127.0.0.2): the per-address limit
 *     holds at most 64 of them, the rest are refused at accept;
 *   - 400 slow clients from 127.0.0.60..69 trickling a request header one
 *     byte every 300 ms (never finishing it).
 * The legitimate client (127.0.0.1) must see zero errors; its request
 * rate before and during the flood is printed.  The server runs with its
 * default limits (4096 connections, 64 per address) and a 3 s idle
 * timeout, which must close the idle clients.
 *
 *   test_http_flood <mooncake-metadata-server> <plugin dir with oot> */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flood.h"
#include "mds_fixture.h"
#include "md_common.h"
#include "md_util.h"
#include "mooncake/engine.h"

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Puts and gets for ms milliseconds; returns the requests made. */
static long hammer(mc_metadata *md, int ms, long *errors, uint64_t *worst) {
  long n = 0;
  *errors = 0;
  *worst = 0;
  uint64_t end = now_ms() + (uint64_t)ms;
  while (now_ms() < end) {
    char key[64], val[64];
    snprintf(key, sizeof key, "flood-test/k%ld", n % 50);
    snprintf(val, sizeof val, "value %ld", n);
    uint64_t t0 = now_ms();
    int rc = mc_metadata_kv_put(md, key, val, strlen(val));
    void *got = NULL;
    size_t gl = 0;
    if (!rc)
      rc = mc_metadata_kv_get(md, key, &got, &gl);
    if (!rc && (gl != strlen(val) || memcmp(got, val, gl) != 0))
      rc = MC_EPROTO;
    free(got);
    uint64_t took = now_ms() - t0;
    if (took > *worst)
      *worst = took;
    if (rc) {
      fprintf(stderr, "request %ld failed: %s (%s)\n", n, mc_strerror(rc),
              mc_last_error());
      (*errors)++;
    }
    n += 2;
  }
  return n;
}

/* Waits (<= 10 s) until every connection of f was made and, for the ones
 * the server refuses, seen closed: held + closed + failed == n. */
static void settle(tu_flood *f, int n, int held_at_least) {
  uint64_t end = now_ms() + 10000;
  tu_flood_stats st;
  for (;;) {
    tu_flood_get(f, &st);
    if ((st.open_now + st.closed + st.refused >= n &&
         st.open_now >= held_at_least) ||
        now_ms() >= end)
      return;
    usleep(50 * 1000);
  }
}

int main(int argc, char **argv) {
  CHECK(argc == 3);
  long lim = tu_raise_nofile(8192);
  if (lim < 3500) {
    printf("SKIP: the open-file limit (%ld) cannot hold 3000 flood connections\n",
           lim);
    return 77;
  }
  setenv("MC_PLUGIN_PATH", argv[2], 1);
  mds s = {0};
  const char *extra[] = {"--connection-timeout", "3", NULL};
  mds_startv(&s, argv[1], extra);
  mc_metadata *md = md_open(s.url, 5000, NULL);

  long e0, e1;
  uint64_t w0, w1;
  hammer(md, 300, &e0, &w0); /* warm-up: connection, keys created */
  CHECK(e0 == 0);
  long base = hammer(md, 1500, &e0, &w0);
  CHECK(e0 == 0 && base > 0);

  tu_flood_args many = {.port = (uint16_t)s.port, .n = 2000, .first_src = 10,
                        .nsrc = 40, .reconnect = 1};
  tu_flood_args one = {.port = (uint16_t)s.port, .n = 600, .first_src = 2,
                       .nsrc = 1};
  static const char slow_hdr[] = "GET /metadata?key=x HTTP/1.1\r\nHost: x\r\n"
                                 "X-Slow: aaaaaaaa";
  tu_flood_args slow = {.port = (uint16_t)s.port, .n = 400, .first_src = 60,
                        .nsrc = 10, .slow = slow_hdr,
                        .slow_len = (int)sizeof slow_hdr - 1,
                        .slow_loop = (int)sizeof slow_hdr - 2, .slow_ms = 300};
  tu_flood *fm = tu_flood_start(&many), *fo = tu_flood_start(&one),
           *fs = tu_flood_start(&slow);
  CHECK(fm && fo && fs);
  /* Every connection made (or refused), however slow this host is. */
  settle(fm, 2000, 1900);
  settle(fo, 600, 0);
  settle(fs, 400, 380);
  usleep(200 * 1000); /* refusals still on their way */
  tu_flood_stats sm0, so0, ss0;
  tu_flood_get(fm, &sm0);
  tu_flood_get(fo, &so0);
  tu_flood_get(fs, &ss0);

  uint64_t t0 = now_ms();
  long under = hammer(md, 2000, &e1, &w1);
  /* A new engine starts (publishes its segment) while flooded. */
  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0",
                      .metadata = s.url, .transports = "oot"};
  mc_engine *e = NULL;
  char err[512] = "";
  uint64_t t1 = now_ms();
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  uint64_t start_ms = now_ms() - t1;
  if (rc)
    fprintf(stderr, "engine start while flooded: %s\n", err);
  CHECK_RC(rc, 0);
  mc_engine_destroy(e);
  (void)t0;

  printf("flood: %d idle connections held from 40 addresses, %d of 600 from "
         "one address (limit 64; %ld refused), %d slow ones\n",
         sm0.open_now, so0.open_now, so0.closed + so0.refused, ss0.open_now);
  printf("legitimate requests: %.0f/s before, %.0f/s during the flood "
         "(%.2fx), errors %ld, slowest %llu ms; engine start while flooded: "
         "%llu ms\n",
         base * 1000.0 / 1500, under * 1000.0 / 2000,
         base ? (under * 1500.0) / (base * 2000.0) : 0.0, e1,
         (unsigned long long)w1, (unsigned long long)start_ms);
  CHECK(e1 == 0);
  /* Thousands held, the per-address limit enforced. */
  CHECK(sm0.open_now >= 1900);
  CHECK(so0.open_now <= 64 + 4); /* + a few closes not seen yet */
  CHECK(so0.closed + so0.refused >= 600 - 64 - 4);
  CHECK(ss0.open_now >= 380);

  /* The idle timeout (3 s) closes the idle clients. */
  uint64_t deadline = now_ms() + 8000;
  tu_flood_stats sm;
  do {
    usleep(200 * 1000);
    tu_flood_get(fm, &sm);
  } while (sm.closed < 1900 && now_ms() < deadline);
  printf("idle timeout: %ld idle connections closed by the server\n", sm.closed);
  CHECK(sm.closed >= 1900);

  tu_flood_stop(fs);
  tu_flood_stop(fo);
  tu_flood_stop(fm);
  mc_metadata_close(md);
  CHECK(mds_stop(&s, SIGTERM) == 0);
  printf("http flood: all checks passed\n");
  return 0;
}
