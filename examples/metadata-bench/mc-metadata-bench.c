/* mc-metadata-bench: segment descriptor throughput and latency of a
 * metadata backend (the layer under mc_segment_open).
 *
 *   mc-metadata-bench --metadata URL [--segments N] [--fetches M]
 *                     [--updates U] [--peers K] [--json] [--quiet]
 *                     [--progress SECONDS]
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
#include <unistd.h>

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
        "                         [--updates U] [--peers K] [--json] [--quiet]\n"
        "                         [--progress SECONDS]\n"
        "  URL: p2p, etcd://host:port[,host:port], http://host:port/path\n"
        "  --segments N   descriptors to publish (default 1000; p2p: --peers)\n"
        "  --updates U    timed descriptor updates (default 2000)\n"
        "  --fetches M    timed fetches from a second client (default 5000)\n"
        "  --peers K      p2p listeners, one segment each (default 16)\n"
        "  --json         the results as one JSON object on stdout\n"
        "  --quiet        no progress lines\n"
        "  --progress S   seconds between progress lines on a terminal\n"
        "                 (default 2; 0 = none)\n",
        f);
}

/* Progress: on a terminal (unless --quiet or --json), one line every
 * progress_us so a long phase does not look hung. */
static FILE *progress_out;
static uint64_t progress_us = 2000000, progress_next;

static void progress(const char *phase, long done, long total, uint64_t t0) {
  if (!progress_out)
    return;
  uint64_t now = now_us();
  if (progress_next == 0)
    progress_next = now + progress_us;
  if (now < progress_next)
    return;
  progress_next = now + progress_us;
  fprintf(progress_out, "mc-metadata-bench: progress: %s %ld/%ld after %.1f s\n",
          phase, done, total, (double)(now - t0) / 1e6);
  fflush(progress_out);
}

static void bad_usage(const char *opt, const char *why) {
  fprintf(stderr, "mc-metadata-bench: %s: %s\n", opt, why);
  usage(stderr);
  exit(2);
}

int main(int argc, char **argv) {
  const char *url = NULL;
  long nseg = 1000, nfetch = 5000, nupd = 2000, npeers = 16;
  int as_json = 0, quiet = 0;
  double every = 2.0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--json") == 0 || strcmp(a, "--quiet") == 0) {
      *(a[2] == 'j' ? &as_json : &quiet) = 1;
      continue;
    }
    if (strcmp(a, "--progress") == 0) {
      if (i + 1 >= argc)
        bad_usage(a, "missing value");
      char *end;
      errno = 0;
      every = strtod(argv[++i], &end);
      if (end == argv[i] || *end || errno || every < 0 || every > 3600)
        bad_usage(a, "expected seconds, 0..3600");
      continue;
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
  if (!quiet && !as_json && every > 0) {
    progress_out = isatty(STDERR_FILENO) ? stderr : isatty(STDOUT_FILENO) ? stdout : NULL;
    progress_us = (uint64_t)(every * 1e6);
  }
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
    progress("publish", i + 1, nseg, t0);
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
    progress("update", i + 1, nupd, t0);
  }
  double upd_s = (double)(now_us() - t0) / 1e6;

  /* Fetch latency from a separate client. */
  mc_metadata *cli = open_md(url, "127.0.0.1:0");
  t0 = now_us();
  for (long i = 0; i < nfetch; i++) {
    long s = (long)rnd((uint32_t)nseg);
    char *desc = NULL;
    size_t len = 0;
    uint64_t a = now_us();
    int rc = mc_metadata_fetch(cli, names[s], &desc, &len);
    lat[i] = now_us() - a;
    if (rc) {
      fprintf(stderr, "mc-metadata-bench: fetch %s: %s\n", names[s], mc_strerror(rc));
      return 1;
    }
    free(desc);
    progress("fetch", i + 1, nfetch, t0);
  }
  qsort(lat, (size_t)nfetch, sizeof(*lat), cmp_u64);
  uint64_t sum = 0;
  for (long i = 0; i < nfetch; i++)
    sum += lat[i];
  double p50 = (double)lat[nfetch / 2], p99 = (double)lat[(nfetch * 99) / 100],
         mean = (double)sum / (double)nfetch, max = (double)lat[nfetch - 1];
  if (as_json) {
    /* The URL goes out as given; it is a command-line argument the user
     * typed, but quote and backslash would break the object: drop them. */
    char u[512];
    size_t k = 0;
    for (const char *c = url; *c && k + 1 < sizeof u; c++)
      if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
        u[k++] = *c;
    u[k] = '\0';
    printf("{\"metadata\":\"%s\",\"segments\":%ld,\"descriptor_bytes\":%zu,"
           "\"publish\":%ld,\"publish_s\":%.3f,\"publish_per_s\":%.0f,"
           "\"updates\":%ld,\"updates_s\":%.3f,\"updates_per_s\":%.0f,"
           "\"fetches\":%ld,\"fetch_p50_us\":%.1f,\"fetch_p99_us\":%.1f,"
           "\"fetch_mean_us\":%.1f,\"fetch_max_us\":%.1f}\n",
           u, nseg, desc_len, nseg, pub_s, (double)nseg / pub_s, nupd, upd_s,
           (double)nupd / upd_s, nfetch, p50, p99, mean, max);
  } else {
    printf("metadata %s: %ld segments (%zu-byte descriptors)%s\n", url, nseg, desc_len,
           p2p ? " served by as many p2p listeners" : "");
    printf("  publish   %ld in %.2f s  = %.0f/s\n", nseg, pub_s, (double)nseg / pub_s);
    printf("  updates   %ld in %.2f s  = %.0f updates/s\n", nupd, upd_s, (double)nupd / upd_s);
    printf("  open(fetch+validate) x%ld: p50 %.1f us  p99 %.1f us  mean %.1f us  max %.1f us\n",
           nfetch, p50, p99, mean, max);
  }
  mc_metadata_close(cli);
  for (long i = 0; i < nsrv; i++)
    mc_metadata_close(srv[i]);
  free(srv);
  free(names);
  free(version);
  free(lat);
  return 0;
}
