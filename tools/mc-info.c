/* mc-info: what this host's mooncake would load, and why.
 *
 *   mc-info [--config FILE] [--json]
 *
 * Creates an engine (every plugin found, `transports: auto`, unless a config
 * file says otherwise) and prints the library version, the plugin search
 * path, and every plugin file considered: LOADED (with version, ABI, caps and
 * rails), SHADOWED (by which file), REFUSED (why) or AVAILABLE.  Uses only
 * the public engine API. */
#include <mooncake/engine.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  uint64_t bit;
  const char *name;
} cap_names[] = {
    {MC_CAP_READ, "READ"},
    {MC_CAP_WRITE, "WRITE"},
    {MC_CAP_NOTIFY, "NOTIFY"},
    {MC_CAP_INTRA_NODE, "INTRA_NODE"},
    {MC_CAP_INTER_NODE, "INTER_NODE"},
    {MC_CAP_CANCEL, "CANCEL"},
    {MC_CAP_MT_SUBMIT, "MT_SUBMIT"},
    {MC_CAP_OWN_THREADS, "OWN_THREADS"},
};
#define N_CAPS (sizeof cap_names / sizeof cap_names[0])

static const char *state_name(uint32_t s) {
  switch (s) {
  case MC_PLUGIN_LOADED:
    return "LOADED";
  case MC_PLUGIN_SHADOWED:
    return "SHADOWED";
  case MC_PLUGIN_REFUSED:
    return "REFUSED";
  case MC_PLUGIN_AVAILABLE:
    return "AVAILABLE";
  default:
    return "UNKNOWN";
  }
}

static void usage(FILE *f) {
  fprintf(f, "usage: mc-info [--config FILE] [--json]\n"
             "  --config FILE  engine settings from FILE (default: load every\n"
             "                 plugin found, transports: auto)\n"
             "  --json         machine-readable output\n");
}

/* JSON string literal of s. */
static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", stdout);
      break;
    case '\\':
      fputs("\\\\", stdout);
      break;
    case '\n':
      fputs("\\n", stdout);
      break;
    case '\t':
      fputs("\\t", stdout);
      break;
    default:
      if (*p < 0x20)
        printf("\\u%04x", *p);
      else
        putchar(*p);
    }
  }
  putchar('"');
}

/* Rails of a loaded transport, malloc'd; *n their count (0 on error). */
static mc_rail_info *get_rails(mc_engine *e, const char *name, uint32_t *n) {
  uint32_t cap = 16;
  for (int tries = 0; tries < 4; tries++) {
    mc_rail_info *r = calloc(cap, sizeof *r);
    if (!r)
      break;
    uint32_t k = cap;
    int rc = mc_engine_rails(e, name, r, &k);
    if (rc == 0) {
      *n = k;
      return r;
    }
    free(r);
    if (rc != MC_ENOSPC || k <= cap)
      break;
    cap = k;
  }
  *n = 0;
  return NULL;
}

static void print_text(mc_engine *e, const char *search,
                       const mc_plugin_info *pi, uint32_t n) {
  printf("mooncake %s\n", mc_version());
  printf("plugin search path (first match wins):\n");
  const char *p = search;
  while (*p) {
    size_t len = strcspn(p, ":");
    printf("  %.*s\n", (int)len, p);
    p += len;
    if (*p == ':')
      p++;
  }
  printf("plugins (%u):\n", n);
  for (uint32_t i = 0; i < n; i++) {
    const mc_plugin_info *x = &pi[i];
    printf("  %-9s %-10s %s\n", state_name(x->state), x->name, x->path);
    if (x->version[0])
      printf("            version %s, ABI %u.%u\n", x->version, x->abi_major,
             x->abi_minor);
    if (x->state == MC_PLUGIN_LOADED) {
      printf("            caps:");
      for (size_t c = 0; c < N_CAPS; c++)
        if (x->caps & cap_names[c].bit)
          printf(" %s", cap_names[c].name);
      printf("\n");
      uint32_t nr = 0;
      mc_rail_info *r = get_rails(e, x->name, &nr);
      printf("            rails (%u):", nr);
      for (uint32_t k = 0; k < nr; k++) {
        printf(" %s", r[k].name);
        if (r[k].numa_node >= 0)
          printf("[numa %d]", r[k].numa_node);
      }
      printf("\n");
      free(r);
    }
    if (x->reason[0])
      printf("            %s\n", x->reason);
  }
}

static void print_json(mc_engine *e, const char *search,
                       const mc_plugin_info *pi, uint32_t n) {
  printf("{\"version\": ");
  json_str(mc_version());
  printf(", \"search_path\": [");
  const char *p = search;
  int first = 1;
  while (*p) {
    size_t len = strcspn(p, ":");
    char entry[4096];
    snprintf(entry, sizeof entry, "%.*s", (int)len, p);
    printf("%s", first ? "" : ", ");
    json_str(entry);
    first = 0;
    p += len;
    if (*p == ':')
      p++;
  }
  printf("], \"plugins\": [");
  for (uint32_t i = 0; i < n; i++) {
    const mc_plugin_info *x = &pi[i];
    printf("%s\n  {\"name\": ", i ? "," : "");
    json_str(x->name);
    printf(", \"state\": ");
    json_str(state_name(x->state));
    printf(", \"path\": ");
    json_str(x->path);
    printf(", \"version\": ");
    json_str(x->version);
    printf(", \"abi\": \"%u.%u\", \"caps\": [", x->abi_major, x->abi_minor);
    int fc = 1;
    for (size_t c = 0; c < N_CAPS; c++) {
      if (x->caps & cap_names[c].bit) {
        printf("%s", fc ? "" : ", ");
        json_str(cap_names[c].name);
        fc = 0;
      }
    }
    printf("], \"rails\": [");
    if (x->state == MC_PLUGIN_LOADED) {
      uint32_t nr = 0;
      mc_rail_info *r = get_rails(e, x->name, &nr);
      for (uint32_t k = 0; k < nr; k++) {
        printf("%s{\"name\": ", k ? ", " : "");
        json_str(r[k].name);
        printf(", \"numa_node\": %d, \"bandwidth_mbps\": %llu}",
               r[k].numa_node, (unsigned long long)r[k].bandwidth_mbps);
      }
      free(r);
    }
    printf("], \"reason\": ");
    json_str(x->reason);
    printf("}");
  }
  printf("\n]}\n");
}

int main(int argc, char **argv) {
  const char *config = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "mc-info: unknown or incomplete option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  /* Without a config: every plugin found, a loopback-only listener (this
   * engine only looks around), embedded metadata. */
  mc_engine_opts o = {.struct_size = sizeof o};
  if (config) {
    o.config_path = config;
  } else {
    o.transports = "auto";
    o.listen = "127.0.0.1:0";
    o.metadata = "p2p";
  }
  mc_engine *e = NULL;
  char err[1024] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc) {
    fprintf(stderr, "mc-info: cannot create an engine: %s: %s\n",
            mc_strerror(rc), err[0] ? err : "(no detail)");
    return 1;
  }

  char search[8192] = "";
  rc = mc_engine_plugin_search_path(e, search, sizeof search);
  if (rc)
    snprintf(search, sizeof search, "(unavailable: %s)", mc_strerror(rc));

  uint32_t n = 0;
  mc_plugin_info *pi = NULL;
  rc = mc_engine_plugins(e, NULL, &n);
  if (rc == MC_ENOSPC || (rc == 0 && n > 0)) {
    pi = calloc(n, sizeof *pi);
    rc = pi ? mc_engine_plugins(e, pi, &n) : MC_ENOMEM;
  }
  if (rc) {
    fprintf(stderr, "mc-info: listing plugins: %s\n", mc_strerror(rc));
    free(pi);
    mc_engine_destroy(e);
    return 1;
  }
  if (json)
    print_json(e, search, pi, n);
  else
    print_text(e, search, pi, n);
  free(pi);
  mc_engine_destroy(e);
  return 0;
}
