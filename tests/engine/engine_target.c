/* Target process for the two-process engine tests.  It registers a buffer
 * and answers line commands on stdin (one reply line each on stdout):
 *   SUM off len        -> "SUM <fnv64 hex>" of the region
 *   FILL off len seed  -> "OK" after filling the region with pattern(seed)
 *   REG len            -> "BUF <hex addr>" of a newly registered buffer
 *   NOTE ms            -> "NOTE <peer> <msg>" or "NONE" after ms
 *   QUIT               -> exits
 * It first prints "READY <segment> <hex addr> <len>". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_test_util.h"
#include "mooncake/engine.h"

int main(int argc, char **argv) {
  size_t len = argc > 1 ? strtoull(argv[1], NULL, 0) : (1u << 20);
  mc_engine *e;
  char err[1024] = "";
  mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0",
                      .transports = argc > 2 ? argv[2] : "tcp"};
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc) {
    fprintf(stderr, "target: engine: %s: %s\n", mc_strerror(rc), err);
    return 1;
  }
  uint8_t *buf = aligned_alloc(4096, (len + 4095) & ~(size_t)4095);
  fill_pattern(buf, len, 0);
  rc = mc_register(e, buf, len, NULL);
  if (rc) {
    fprintf(stderr, "target: register: %s\n", mc_strerror(rc));
    return 1;
  }
  printf("READY %s %" PRIx64 " %zu\n", mc_engine_segment_name(e), (uint64_t)(uintptr_t)buf, len);
  fflush(stdout);
  char line[256];
  void *extra[16];
  int nextra = 0;
  while (fgets(line, sizeof line, stdin)) {
    unsigned long long off, n, seed;
    if (sscanf(line, "SUM %llu %llu", &off, &n) == 2 && off + n <= len) {
      printf("SUM %016" PRIx64 "\n", fnv64(buf + off, n));
    } else if (sscanf(line, "FILL %llu %llu %llu", &off, &n, &seed) == 3 && off + n <= len) {
      fill_pattern(buf + off, n, seed);
      printf("OK\n");
    } else if (sscanf(line, "REG %llu", &n) == 1 && nextra < 16) {
      void *p = aligned_alloc(4096, (n + 4095) & ~4095ull);
      memset(p, 0, n);
      rc = mc_register(e, p, n, NULL);
      extra[nextra++] = p;
      printf("BUF %" PRIx64 " %d\n", (uint64_t)(uintptr_t)p, rc);
    } else if (sscanf(line, "NOTE %llu", &n) == 1) {
      mc_notification note;
      int k = mc_notify_poll(e, &note, 1, (int)n);
      if (k == 1)
        printf("NOTE %s %.*s\n", note.peer, (int)note.len, (const char *)note.msg);
      else
        printf("NONE\n");
    } else if (strncmp(line, "QUIT", 4) == 0) {
      break;
    } else {
      printf("ERR %s", line);
    }
    fflush(stdout);
  }
  mc_engine_destroy(e);
  for (int i = 0; i < nextra; i++)
    free(extra[i]);
  free(buf);
  return 0;
}
