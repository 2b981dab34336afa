/* mc-store: the Mooncake Store from a shell.
 *
 *   mc-store [options] put KEY [VALUE]     value from the argument, else stdin
 *   mc-store [options] get KEY             value to stdout
 *   mc-store [options] exist KEY           prints 1 or 0
 *   mc-store [options] size KEY
 *   mc-store [options] remove KEY
 *   mc-store [options] remove-regex REGEX
 *   mc-store [options] ls [REGEX]          keys and sizes, then pool figures
 *   mc-store [options] mount SIZE          contributes SIZE bytes; serves
 *                                          until SIGINT/SIGTERM (with
 *                                          --ssd-offload-dir: and an SSD tier)
 * Exit status 0 on success, 1 on a store error (its name and reason on
 * stderr), 2 on a usage error. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mooncake/store.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: mc-store [options] COMMAND ...\n"
          "commands:\n"
          "  put KEY [VALUE]     store VALUE (default: all of stdin) under KEY\n"
          "  get KEY             write KEY's value to stdout\n"
          "  exist KEY           print 1 if KEY exists, else 0\n"
          "  size KEY            print the length of KEY's value\n"
          "  remove KEY          remove KEY (--force: even while leased)\n"
          "  remove-regex REGEX  remove the keys matching REGEX; prints the count\n"
          "  ls [REGEX]          list keys (at most --limit) and the pool's figures\n"
          "  mount SIZE          contribute SIZE bytes (e.g. 1G) to the pool and\n"
          "                      serve them until SIGINT or SIGTERM\n"
          "options:\n"
          "  --master HOST:PORT  the master (default $MC_STORE_MASTER, else 127.0.0.1:50051)\n"
          "  --metadata URL      Transfer Engine metadata: p2p (default), etcd://, http://\n"
          "  --host HOST         this host's address as peers see it (default 127.0.0.1)\n"
          "  --protocol NAME     transport (default tcp)\n"
          "  --replicas N        replicas per put (default 1)\n"
          "  --soft-pin          soft-pin what put stores\n"
          "  --hard-pin          hard-pin what put stores\n"
          "  --force             remove/remove-regex even leased objects\n"
          "  --limit N           ls: at most N keys (default 1000)\n"
          "  --segment SIZE      bytes this command contributes while it runs (default 0)\n"
          "  --ssd-offload-dir DIR  keep an SSD tier (objects evicted from memory) in DIR\n"
          "  --ssd-offload-size SIZE  bytes of the SSD tier file (default 1G)\n"
          "  --promotion-on-hit  a get served from an SSD tier puts the object back in memory\n"
          "  --help\n");
}

/* "64M" -> bytes; 0 on a bad size. */
static uint64_t parse_size(const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v <= 0)
    return 0;
  uint64_t mul = 1;
  switch (*end) {
  case 'k': case 'K': mul = 1ull << 10; end++; break;
  case 'm': case 'M': mul = 1ull << 20; end++; break;
  case 'g': case 'G': mul = 1ull << 30; end++; break;
  case 't': case 'T': mul = 1ull << 40; end++; break;
  default: break;
  }
  if (*end == 'i' || *end == 'B')
    end++;
  if (*end == 'B')
    end++;
  return *end ? 0 : (uint64_t)(v * (double)mul);
}

static int fail(const char *what, int64_t rc) {
  fprintf(stderr, "mc-store: %s: %s: %s\n", what, mc_store_errname((int)rc),
          mc_store_last_error()[0] ? mc_store_last_error() : mc_store_strerror((int)rc));
  return 1;
}

static int print_key(void *arg, const char *key, uint64_t size) {
  (void)arg;
  printf("%s\t%" PRIu64 "\n", key, size);
  return 0;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap)
      break;
    char *nb = realloc(buf, cap * 2);
    if (!nb) {
      free(buf);
      return NULL;
    }
    buf = nb;
    cap *= 2;
  }
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  mc_store_config cfg = {.struct_size = sizeof cfg};
  mc_store_replicate_config rc_cfg = {0};
  int force = 0;
  uint32_t limit = 0;
  cfg.master = getenv("MC_STORE_MASTER");
  static const struct option opts[] = {
      {"master", required_argument, 0, 'm'},   {"metadata", required_argument, 0, 'd'},
      {"host", required_argument, 0, 'H'},     {"protocol", required_argument, 0, 'p'},
      {"replicas", required_argument, 0, 'r'}, {"soft-pin", no_argument, 0, 's'},
      {"hard-pin", no_argument, 0, 'P'},       {"force", no_argument, 0, 'f'},
      {"limit", required_argument, 0, 'l'},    {"segment", required_argument, 0, 'S'},
      {"ssd-offload-dir", required_argument, 0, 'D'},
      {"ssd-offload-size", required_argument, 0, 'Z'},
      {"promotion-on-hit", no_argument, 0, 'O'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': cfg.master = optarg; break;
    case 'd': cfg.metadata = optarg; break;
    case 'H': cfg.local_hostname = optarg; break;
    case 'p': cfg.protocol = optarg; break;
    case 'r': rc_cfg.replica_num = (uint32_t)atoi(optarg); break;
    case 's': rc_cfg.with_soft_pin = 1; break;
    case 'P': rc_cfg.with_hard_pin = 1; break;
    case 'f': force = 1; break;
    case 'l': limit = (uint32_t)atoi(optarg); break;
    case 'S':
      if (!(cfg.global_segment_size = parse_size(optarg))) {
        fprintf(stderr, "mc-store: --segment: bad size '%s'\n", optarg);
        return 2;
      }
      break;
    case 'D': cfg.ssd_offload_dir = optarg; break;
    case 'Z':
      if (!(cfg.ssd_offload_size = parse_size(optarg))) {
        fprintf(stderr, "mc-store: --ssd-offload-size: bad size '%s'\n", optarg);
        return 2;
      }
      break;
    case 'O': cfg.promotion_on_hit = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[optind++];
  int nargs = argc - optind;
  const char *a1 = nargs > 0 ? argv[optind] : NULL, *a2 = nargs > 1 ? argv[optind + 1] : NULL;
  static const struct { const char *name; int min, max; } cmds[] = {
      {"put", 1, 2}, {"get", 1, 1}, {"exist", 1, 1}, {"size", 1, 1}, {"remove", 1, 1},
      {"remove-regex", 1, 1}, {"ls", 0, 1}, {"mount", 1, 1}};
  int known = 0;
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(cmd, cmds[i].name)) {
      known = 1;
      if (nargs < cmds[i].min || nargs > cmds[i].max) {
        fprintf(stderr, "mc-store: %s takes %d to %d arguments, got %d\n", cmd, cmds[i].min,
                cmds[i].max, nargs);
        return 2;
      }
    }
  if (!known) {
    fprintf(stderr, "mc-store: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
  }
  if (!strcmp(cmd, "mount") && !(cfg.global_segment_size = parse_size(a1))) {
    fprintf(stderr, "mc-store: mount: bad size '%s'\n", a1);
    return 2;
  }
  mc_store *st;
  int64_t rc = mc_store_create(&cfg, &st);
  if (rc)
    return fail("connect", rc);
  int ret = 0;
  if (!strcmp(cmd, "put")) {
    size_t len = 0;
    char *val = NULL;
    if (a2) {
      len = strlen(a2);
      rc = mc_store_put(st, a1, a2, len, &rc_cfg);
    } else if (!(val = read_all(stdin, &len))) {
      fprintf(stderr, "mc-store: put: out of memory reading stdin\n");
      ret = 1;
    } else {
      rc = mc_store_put(st, a1, val, len, &rc_cfg);
    }
    free(val);
    if (rc)
      ret = fail("put", rc);
  } else if (!strcmp(cmd, "get")) {
    void *val;
    size_t len;
    rc = mc_store_get_alloc(st, a1, &val, &len);
    if (rc) {
      ret = fail("get", rc);
    } else {
      if (fwrite(val, 1, len, stdout) != len)
        ret = 1;
      mc_store_free(val);
    }
  } else if (!strcmp(cmd, "exist")) {
    rc = mc_store_exist(st, a1);
    if (rc < 0)
      ret = fail("exist", rc);
    else
      printf("%d\n", (int)rc);
  } else if (!strcmp(cmd, "size")) {
    rc = mc_store_get_size(st, a1);
    if (rc < 0)
      ret = fail("size", rc);
    else
      printf("%" PRId64 "\n", rc);
  } else if (!strcmp(cmd, "remove")) {
    if ((rc = mc_store_remove(st, a1, force)))
      ret = fail("remove", rc);
  } else if (!strcmp(cmd, "remove-regex")) {
    rc = mc_store_remove_by_regex(st, a1, force);
    if (rc < 0)
      ret = fail("remove-regex", rc);
    else
      printf("%" PRId64 "\n", rc);
  } else if (!strcmp(cmd, "ls")) {
    rc = mc_store_list(st, a1, limit, print_key, NULL);
    mc_store_stats s;
    if (rc < 0) {
      ret = fail("ls", rc);
    } else if ((rc = mc_store_stats_get(st, &s))) {
      ret = fail("stats", rc);
    } else {
      fprintf(stderr, "# objects %" PRIu64 ", segments %" PRIu64 ", clients %" PRIu64
              ", used %" PRIu64 " of %" PRIu64 " bytes\n", s.objects, s.segments, s.clients,
              s.used, s.capacity);
      mc_store_tier_stats t = {.struct_size = sizeof t};
      if (mc_store_tier_stats_get(st, &t) == 0 && t.disk_capacity)
        fprintf(stderr, "# SSD tier: used %" PRIu64 " of %" PRIu64 " bytes, offloaded %" PRIu64
                " objects, %" PRIu64 " offloads pending\n", t.disk_used, t.disk_capacity,
                t.offloaded_objects, t.pending_offloads);
    }
  } else if (!strcmp(cmd, "mount")) {
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("mounted %" PRIu64 " bytes as segment %s\n", cfg.global_segment_size,
           mc_store_segment_name(st));
    fflush(stdout);
    while (!stop)
      pause();
  }
  mc_store_destroy(st);
  return ret;
}
