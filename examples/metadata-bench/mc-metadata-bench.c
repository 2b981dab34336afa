/* mc-metadata-bench: segment descriptor throughput and latency of a
 * metadata backend (the layer under mc_segment_open).
 *
 *   mc-metadata-bench --metadata URL [--segments N] [--fetches M]
 *                     [--updates U] [--peers K]
 *
 * etcd:// and http:// : one publisher publishes N synthetic (valid)
 *   descriptors, then U random descriptor updates (version bumps) are
 *   timed (updates/s), then a second client fetches M random segments one
 *   at a time (each fetch validates the descriptor, as the engine's open
 *   does) and the latency p50/p99 is reported.
 * p2p : a segment is served by its own engine's listener, so N segments
 *   would need N engines; the bench starts K (default 16) p2p listeners and
 *   fetches at random among them.  "Updates" are local for p2p (the
 *   listener serves the latest descriptor), so updates/s measures only the
 *   local publish.
 *
 * It uses the core's internal metadata interface, so it links the core's
 * internal archive of the metadata modules instead of libmooncake.so (see
 * examples/metadata-bench/meson.build). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descriptor.h"
#include "metadata.h"
#include "mooncake/errors.h"
#include "net.h"

static char *make_desc(const char *name, uint64_t version, size_t *len) {
  /* Shaped like a real engine's: one tcp transport, 4 buffers. */
  uint8_t blob[24] = {1, 0, 0, 0, 127, 0, 0, 1};
  mc_desc_transport t = {.name = "tcp", .len = sizeof blob, .blob = blob};
  mc_desc_key k[4];
  mc_desc_buffer b[4];
  memset(k, 0, sizeof k);
  memset(b, 0, sizeof b);
  for (int i = 0; i < 4; i++) {
    k[i].transport = 0;
    k[i].len = 8;
    b[i].addr = 0x7f0000000000ull + (uint64_t)i * (1ull << 30);
    b[i].len = 1ull << 30;
    b[i].kind = MC_MEM_CPU;
    snprintf(b[i].location, sizeof b[i].location, "cpu:%d", i / 2);
    b[i].nkeys = 1;
    b[i].keys = &k[i];
  }
  mc_seg_desc d = {.version = version, .ntransports = 1, .transports = &t,
                   .nbuffers = 4, .buffers = b};
  snprintf(d.name, sizeof d.name, "%s", name);
  snprintf(d.host_id, sizeof d.host_id, "bench-host/1");
  char *json = NULL;
  if (mc_desc_encode(&d, &json, len) != 0) {
    fprintf(stderr, "mc-metadata-bench: cannot encode a descriptor\n");
    exit(1);
  }
  return json;
}

static mc_metadata *open_md(const char *url, const char *listen) {
  mc_metadata_args a = {.url = url, .listen = listen, .timeout_ms = 5000};
  mc_metadata *md = NULL;
  char err[512] = "";
  int rc = mc_metadata_open(&a, &md, err, sizeof err);
  if (rc) {
    fprintf(stderr, "mc-metadata-bench: cannot open %s: %s (%s)\n", url, mc_strerror(rc), err);
    exit(1);
  }
  return md;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

static void usage(FILE *f) {
  fputs("usage: mc-metadata-bench --metadata URL [--segments N] [--fetches M]\n"
        "                         [--updates U] [--peers K]\n"
        "  URL: p2p, etcd://host:port[,host:port], http://host:port/path\n",
        f);
}

static void bad_usage(const char *opt, const char *why) {
  fprintf(stderr, "mc-metadata-bench: %s: %s\n", opt, why);
  usage(stderr);
  exit(2);
}

int main(int argc, char **argv) {
  const char *url = NULL;
  long nseg = 1000, nfetch = 5000, nupd = 2000, npeers = 16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    long *slot = strcmp(a, "--segments") == 0  ? &nseg
                 : strcmp(a, "--fetches") == 0 ? &nfetch
                 : strcmp(a, "--updates") == 0 ? &nupd
                 : strcmp(a, "--peers") == 0   ? &npeers
                                               : NULL;
    if (!slot && strcmp(a, "--metadata") != 0)
      bad_usage(a, "unknown option");
    if (i + 1 >= argc)
      bad_usage(a, "missing value");
    const char *v = argv[++i];
    if (!slot) {
      url = v;
      continue;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || errno || n < 1)
      bad_usage(a, "expected a positive integer");
    *slot = n;
  }
  if (!url)
    bad_usage("--metadata", "required");
  int p2p = strcmp(url, "p2p") == 0;
  long nsrv = p2p ? npeers : 1;
  if (p2p)
    nseg = npeers;
  mc_metadata **srv = calloc((size_t)nsrv, sizeof(*srv));
  char (*names)[MC_NAME_MAX] = calloc((size_t)nseg, MC_NAME_MAX);
  uint64_t *version = calloc((size_t)nseg, sizeof(uint64_t));
  uint64_t *lat = calloc((size_t)nfetch, sizeof(uint64_t));
  if (!srv || !names || !version || !lat)
    return 1;
  for (long i = 0; i < nsrv; i++)
    srv[i] = open_md(url, "127.0.0.1:0");
  size_t desc_len = 0;

  /* Publish N segments. */
  uint64_t t0 = now_us();
  for (long i = 0; i < nseg; i++) {
    mc_metadata *md = srv[p2p ? i : 0];
    if (p2p)
      mc_metadata_local_name(md, names[i], MC_NAME_MAX);
    else
      snprintf(names[i], MC_NAME_MAX, "bench-seg-%05ld", i);
    version[i] = 1;
    char *json = make_desc(names[i], 1, &desc_len);
    int rc = mc_metadata_publish(md, names[i], json, desc_len);
    free(json);
    if (rc) {
      fprintf(stderr, "mc-metadata-bench: publish %s: %s\n", names[i], mc_strerror(rc));
      return 1;
    }
  }
  double pub_s = (double)(now_us() - t0) / 1e6;

  /* Descriptor updates. */
  t0 = now_us();
  for (long i = 0; i < nupd; i++) {
    long s = (long)rnd((uint32_t)nseg);
    size_t len;
    char *json = make_desc(names[s], ++version[s], &len);
    int rc = mc_metadata_publish(srv[p2p ? s : 0], names[s], json, len);
    free(json);
    if (rc) {
      fprintf(stderr, "mc-metadata-bench: update %s: %s\n", names[s], mc_strerror(rc));
      return 1;
    }
  }
  double upd_s = (double)(now_us() - t0) / 1e6;

  /* Fetch latency from a separate client. */
  mc_metadata *cli = open_md(url, "127.0.0.1:0");
  for (long i = 0; i < nfetch; i++) {
    long s = (long)rnd((uint32_t)nseg);
    char *json = NULL;
    size_t len = 0;
    uint64_t a = now_us();
    int rc = mc_metadata_fetch(cli, names[s], &json, &len);
    lat[i] = now_us() - a;
    if (rc) {
      fprintf(stderr, "mc-metadata-bench: fetch %s: %s\n", names[s], mc_strerror(rc));
      return 1;
    }
    free(json);
  }
  qsort(lat, (size_t)nfetch, sizeof(*lat), cmp_u64);
  uint64_t sum = 0;
  for (long i = 0; i < nfetch; i++)
    sum += lat[i];
  printf("metadata %s: %ld segments (%zu-byte descriptors)%s\n", url, nseg, desc_len,
         p2p ? " served by as many p2p listeners" : "");
  printf("  publish   %ld in %.2f s  = %.0f/s\n", nseg, pub_s, (double)nseg / pub_s);
  printf("  updates   %ld in %.2f s  = %.0f updates/s\n", nupd, upd_s, (double)nupd / upd_s);
  printf("  open(fetch+validate) x%ld: p50 %.1f us  p99 %.1f us  mean %.1f us  max %.1f us\n",
         nfetch, (double)lat[nfetch / 2], (double)lat[(nfetch * 99) / 100],
         (double)sum / (double)nfetch, (double)lat[nfetch - 1]);
  mc_metadata_close(cli);
  for (long i = 0; i < nsrv; i++)
    mc_metadata_close(srv[i]);
  free(srv);
  free(names);
  free(version);
  free(lat);
  return 0;
}
