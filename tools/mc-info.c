/* mc-info: what this host's mooncake would load, and why.
 *
 *   mc-info [--config FILE] [--transports LIST] [--json | --yaml-keys]
 *
 * Creates an engine the way an application would (the YAML file of
 * --config or $MC_CONFIG with its `transports:` section and per-transport
 * options, then the MC_* variables, MC_TRANSPORT_<NAME>_<KEY> included) and
 * prints the library version, the plugin search path and every plugin file
 * considered: LOADED (with its rails), SHADOWED (by which file), REFUSED
 * (why) or AVAILABLE (found, not asked for).  Without any config (no file,
 * no MC_TRANSPORTS) it loads every plugin found (`transports: auto`).
 * mc-info only looks around: its engine listens on 127.0.0.1:0 and uses the
 * embedded p2p metadata whatever the config says, so it runs beside a live
 * engine without taking its port or publishing into its etcd.
 *
 * For every usable plugin (LOADED or AVAILABLE) it also shows what the
 * plugin's table declares: memory kinds, caps, slice size hint and its keys
 * (name, type, default, range, help).  It reads them the way transport.h
 * allows any tool to: dlopen the path mc_engine_plugins() reports and call
 * the side-effect-free entry point, reading the params array with the
 * plugin's own param_info_size stride.  Only public headers are used.
 *
 * --yaml-keys prints the `transports:` section of a config file with every
 * key of every listed plugin commented out at its default, each under its
 * help text; examples/mooncake.yaml carries that output verbatim between
 * its markers and tests/info checks it for drift.
 *
 * Errors from engine creation are logged once by the engine itself (error
 * level, always on); mc-info adds a line only when the engine gave none. */
#include <mooncake/engine.h>

#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS 256 /* a params array longer than this is not trusted */

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

static const struct {
  uint32_t bit;
  const char *name;
} kind_names[] = {
    {MC_MEM_CPU, "CPU"},   {MC_MEM_CUDA, "CUDA"}, {MC_MEM_HIP, "HIP"},
    {MC_MEM_NPU, "NPU"},   {MC_MEM_FILE, "FILE"},
};
#define N_KINDS (sizeof kind_names / sizeof kind_names[0])

/* What a plugin's own table declares (read through its entry point). */
typedef struct described {
  int ok;             /* the table could be read */
  char why[256];      /* why not, when !ok */
  void *dl;           /* kept open: the strings below live in the .so */
  const char *version;
  uint32_t abi_major, abi_minor;
  uint64_t caps;
  uint32_t local_kinds, remote_kinds;
  uint64_t slice_size;
  int ctrl; /* has ctrl_handle (ABI 1.2 control channel) */
  mc_param_info *params; /* normalized copies (1.0 entries: min = max = 0) */
  size_t nparams;
} described;

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

static const char *type_name(uint32_t t) {
  switch (t) {
  case MC_PARAM_BOOL:
    return "bool";
  case MC_PARAM_INT:
    return "int";
  case MC_PARAM_SIZE:
    return "size";
  case MC_PARAM_STRING:
    return "string";
  default:
    return "unknown";
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: mc-info [--config FILE] [--transports LIST] [--json | "
          "--yaml-keys]\n"
          "Shows the plugins this host's mooncake finds and loads, and each\n"
          "plugin's memory kinds, caps, slice size and configuration keys.\n"
          "  --config FILE      engine settings from FILE (default: "
          "$MC_CONFIG);\n"
          "                     its transports: section and the "
          "MC_TRANSPORT_*\n"
          "                     variables apply.  Without any config every\n"
          "                     plugin found is loaded (transports: auto)\n"
          "  --transports LIST  load these transports (\"tcp,shm\" or "
          "\"auto\")\n"
          "                     instead of the config's; options are kept.\n"
          "                     With --yaml-keys: the plugins to print, in "
          "order\n"
          "  --json             machine-readable output\n"
          "  --yaml-keys        print a config file's transports: section "
          "with\n"
          "                     every key of the listed plugins, commented, "
          "at\n"
          "                     its default (what examples/mooncake.yaml "
          "carries)\n"
          "  -h, --help         this text\n"
          "The engine mc-info creates listens on 127.0.0.1:0 and uses p2p\n"
          "metadata whatever the config says.  Search path: $MC_PLUGIN_PATH,\n"
          "plugin_path, the build tree's plugins (when run from it), the\n"
          "install directory.\n");
}

/* ---- reading a plugin's table ---- */

static void describe_plugin(const char *path, const char *name,
                            described *d) {
  memset(d, 0, sizeof *d);
  d->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!d->dl) {
    const char *e = dlerror();
    snprintf(d->why, sizeof d->why, "dlopen: %s", e ? e : "failed");
    return;
  }
  void *sym = dlsym(d->dl, MC_TRANSPORT_ENTRY_V1);
  if (!sym) {
    snprintf(d->why, sizeof d->why, "no %s", MC_TRANSPORT_ENTRY_V1);
    return;
  }
  /* POSIX: dlsym's object pointer converts to the function's type. */
  mc_transport_entry_v1_fn entry = (mc_transport_entry_v1_fn)sym;
  const mc_transport_ops *t = entry();
  if (!t || t->abi_major != MC_TRANSPORT_ABI_MAJOR ||
      t->struct_size < MC_TRANSPORT_OPS_V1_MIN_SIZE) {
    snprintf(d->why, sizeof d->why, "unusable table (ABI %u, size %u)",
             t ? t->abi_major : 0, t ? t->struct_size : 0);
    return;
  }
  /* A newer minor appends members; an older one lacks the tail. */
  mc_transport_ops o;
  memset(&o, 0, sizeof o);
  memcpy(&o, t, t->struct_size < sizeof o ? t->struct_size : sizeof o);
  if (!o.name || strcmp(o.name, name) != 0) {
    snprintf(d->why, sizeof d->why, "table name does not match '%s'", name);
    return;
  }
  d->version = o.version ? o.version : "";
  d->abi_major = o.abi_major;
  d->abi_minor = o.abi_minor;
  d->caps = o.caps;
  d->local_kinds = o.local_mem_kinds;
  d->remote_kinds = o.remote_mem_kinds;
  d->slice_size = o.slice_size;
  d->ctrl = o.ctrl_handle != NULL; /* zero in the copy of an older table */
  size_t stride = o.param_info_size ? o.param_info_size : MC_PARAM_INFO_V1_SIZE;
  if (stride < MC_PARAM_INFO_V1_SIZE) {
    snprintf(d->why, sizeof d->why, "param_info_size %zu < %zu", stride,
             (size_t)MC_PARAM_INFO_V1_SIZE);
    return;
  }
  const unsigned char *p = (const unsigned char *)o.params;
  size_t n = 0;
  while (p && n < MAX_PARAMS) {
    mc_param_info one;
    memset(&one, 0, sizeof one);
    memcpy(&one, p + n * stride, stride < sizeof one ? stride : sizeof one);
    if (one.type == MC_PARAM_END)
      break;
    n++;
  }
  if (n == MAX_PARAMS) {
    snprintf(d->why, sizeof d->why, "params array not terminated");
    return;
  }
  d->params = calloc(n ? n : 1, sizeof *d->params);
  if (!d->params) {
    snprintf(d->why, sizeof d->why, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++)
    memcpy(&d->params[i], p + i * stride,
           stride < sizeof d->params[i] ? stride : sizeof d->params[i]);
  d->nparams = n;
  d->ok = 1;
}

static void described_free(described *d) {
  free(d->params);
  if (d->dl)
    dlclose(d->dl);
}

/* ---- formatting helpers ---- */

/* 65536 -> "64K", 3 -> "3". */
static void fmt_size(char *buf, size_t len, int64_t v) {
  static const char sfx[] = "KMGT";
  int k = -1;
  while (v != 0 && k < 3 && v % 1024 == 0) {
    v /= 1024;
    k++;
  }
  /* A one-char string, not "%.*s" of &sfx[k]: gcc 12's format checker
   * crashes on the latter at -O0 (meson's plain buildtype). */
  const char unit[2] = {k >= 0 ? sfx[k] : '\0', '\0'};
  snprintf(buf, len, "%" PRId64 "%s", v, unit);
}

/* "1..64", "64K..1G", or "" when the key has no range. */
static void fmt_range(char *buf, size_t len, const mc_param_info *p) {
  buf[0] = '\0';
  if ((p->type != MC_PARAM_INT && p->type != MC_PARAM_SIZE) ||
      (p->min == 0 && p->max == 0))
    return;
  if (p->type == MC_PARAM_SIZE) {
    char a[32], b[32];
    fmt_size(a, sizeof a, p->min);
    fmt_size(b, sizeof b, p->max);
    snprintf(buf, len, "%s..%s", a, b);
  } else {
    snprintf(buf, len, "%" PRId64 "..%" PRId64, p->min, p->max);
  }
}

/* The default as YAML text ("" for an empty string). */
static const char *yaml_default(const mc_param_info *p) {
  return p->default_text && p->default_text[0] ? p->default_text : "\"\"";
}

static void print_kinds(FILE *f, uint32_t kinds) {
  int any = 0;
  for (size_t i = 0; i < N_KINDS; i++)
    if (kinds & kind_names[i].bit) {
      fprintf(f, "%s%s", any ? "," : "", kind_names[i].name);
      any = 1;
    }
  if (!any)
    fputs("none", f);
}

/* JSON string literal of s. */
static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
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

/* ---- text ---- */

static void upper(char *dst, size_t len, const char *s) {
  size_t i = 0;
  for (; s[i] && i + 1 < len; i++)
    dst[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
  dst[i] = '\0';
}

static void print_params_text(const mc_plugin_info *x, const described *d) {
  char up[64];
  upper(up, sizeof up, x->name);
  if (!d->nparams) {
    printf("            keys: none\n");
    return;
  }
  printf("            keys (transports.%s.<key> or MC_TRANSPORT_%s_<KEY>):\n",
         x->name, up);
  printf("              %-20s %-7s %-10s %s\n", "KEY", "TYPE", "DEFAULT",
         "RANGE");
  for (size_t i = 0; i < d->nparams; i++) {
    const mc_param_info *p = &d->params[i];
    char range[80];
    fmt_range(range, sizeof range, p);
    printf("              %-20s %-7s %-10s %s\n", p->name ? p->name : "?",
           type_name(p->type), yaml_default(p), range[0] ? range : "-");
    printf("                %s\n", p->help ? p->help : "");
  }
}

static void print_md_text(void);
static void print_md_json(void);

static void print_text(mc_engine *e, const char *search,
                       const mc_plugin_info *pi, const described *ds,
                       uint32_t n) {
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
    const described *d = &ds[i];
    printf("  %-9s %-10s %s\n", state_name(x->state), x->name, x->path);
    const char *version = x->version[0] ? x->version : d->ok ? d->version : "";
    int from_table = !x->abi_major && d->ok;
    if (version[0])
      printf("            version %s, ABI %u.%u\n", version,
             from_table ? d->abi_major : x->abi_major,
             from_table ? d->abi_minor : x->abi_minor);
    if (d->ok) {
      printf("            memory: local ");
      print_kinds(stdout, d->local_kinds);
      printf(", remote ");
      print_kinds(stdout, d->remote_kinds);
      printf("\n");
    }
    uint64_t caps = x->state == MC_PLUGIN_LOADED ? x->caps : d->caps;
    if (x->state == MC_PLUGIN_LOADED || d->ok) {
      printf("            caps:");
      for (size_t c = 0; c < N_CAPS; c++)
        if (caps & cap_names[c].bit)
          printf(" %s", cap_names[c].name);
      printf("\n");
    }
    if (d->ok) {
      char sz[32];
      fmt_size(sz, sizeof sz, (int64_t)d->slice_size);
      if (d->slice_size)
        printf("            slice size hint: %s (%" PRIu64 " bytes)\n", sz,
               d->slice_size);
      else
        printf("            slice size hint: none (the engine's slice_size)\n");
      if (d->ctrl)
        printf("            control channel: ctrl_handle (ABI 1.2)\n");
    }
    if (x->state == MC_PLUGIN_LOADED) {
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
    if (d->ok)
      print_params_text(x, d);
    else if (d->why[0])
      printf("            table not readable: %s\n", d->why);
    if (x->reason[0])
      printf("            %s\n", x->reason);
  }
  print_md_text();
}

/* ---- metadata backend modules ---- */

/* The modules this library finds (mc_metadata_modules); NULL with *n 0
 * when there are none or listing failed. */
static mc_plugin_info *get_md_modules(uint32_t *n, char *search, size_t len) {
  *n = 0;
  int rc = mc_metadata_modules(NULL, n, search, len);
  if (rc != MC_ENOSPC && rc != 0)
    return NULL;
  if (*n == 0)
    return NULL;
  mc_plugin_info *mi = calloc(*n, sizeof *mi);
  if (!mi || mc_metadata_modules(mi, n, search, len) != 0) {
    free(mi);
    *n = 0;
    return NULL;
  }
  return mi;
}

static void print_md_text(void) {
  char search[8192] = "";
  uint32_t n = 0;
  mc_plugin_info *mi = get_md_modules(&n, search, sizeof search);
  printf("metadata backends:\n");
  printf("  BUILT-IN  p2p        (p2p, the default)\n");
  printf("  module search path (first match wins): %s\n", search);
  for (uint32_t i = 0; i < n; i++) {
    const mc_plugin_info *x = &mi[i];
    printf("  %-9s %-10s %s\n", state_name(x->state), x->name, x->path);
    if (x->state == MC_PLUGIN_AVAILABLE)
      printf("            serves %s, ABI %u.%u\n", x->version, x->abi_major,
             x->abi_minor);
    if (x->reason[0])
      printf("            %s\n", x->reason);
  }
  if (n == 0)
    printf("  (no module found: etcd:// and http:// metadata are not "
           "available)\n");
  free(mi);
}

static void print_md_json(void) {
  char search[8192] = "";
  uint32_t n = 0;
  mc_plugin_info *mi = get_md_modules(&n, search, sizeof search);
  printf(", \"metadata_search_path\": ");
  json_str(search);
  printf(", \"metadata_backends\": [{\"state\": \"BUILT-IN\", \"name\": \"p2p\"}");
  for (uint32_t i = 0; i < n; i++) {
    const mc_plugin_info *x = &mi[i];
    printf(", {\"state\": ");
    json_str(state_name(x->state));
    printf(", \"name\": ");
    json_str(x->name);
    printf(", \"path\": ");
    json_str(x->path);
    printf(", \"schemes\": ");
    json_str(x->version);
    printf(", \"abi\": \"%u.%u\", \"reason\": ", x->abi_major, x->abi_minor);
    json_str(x->reason);
    printf("}");
  }
  printf("]");
  free(mi);
}

/* ---- JSON ---- */

static void json_kinds(uint32_t kinds) {
  putchar('[');
  int any = 0;
  for (size_t i = 0; i < N_KINDS; i++)
    if (kinds & kind_names[i].bit) {
      printf("%s", any ? ", " : "");
      json_str(kind_names[i].name);
      any = 1;
    }
  putchar(']');
}

static void json_params(const described *d) {
  printf("[");
  for (size_t i = 0; i < d->nparams; i++) {
    const mc_param_info *p = &d->params[i];
    printf("%s\n    {\"name\": ", i ? "," : "");
    json_str(p->name);
    printf(", \"type\": ");
    json_str(type_name(p->type));
    printf(", \"default\": ");
    json_str(p->default_text);
    if ((p->type == MC_PARAM_INT || p->type == MC_PARAM_SIZE) &&
        (p->min || p->max))
      printf(", \"min\": %" PRId64 ", \"max\": %" PRId64, p->min, p->max);
    else
      printf(", \"min\": null, \"max\": null");
    printf(", \"help\": ");
    json_str(p->help);
    printf("}");
  }
  printf("]");
}

static void print_json(mc_engine *e, const char *search,
                       const mc_plugin_info *pi, const described *ds,
                       uint32_t n) {
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
    const described *d = &ds[i];
    printf("%s\n  {\"name\": ", i ? "," : "");
    json_str(x->name);
    printf(", \"state\": ");
    json_str(state_name(x->state));
    printf(", \"path\": ");
    json_str(x->path);
    printf(", \"version\": ");
    json_str(x->version[0] ? x->version : d->ok ? d->version : "");
    int from_table = !x->abi_major && d->ok;
    printf(", \"abi\": \"%u.%u\", \"caps\": [",
           from_table ? d->abi_major : x->abi_major,
           from_table ? d->abi_minor : x->abi_minor);
    uint64_t caps = x->state == MC_PLUGIN_LOADED ? x->caps : d->caps;
    int fc = 1;
    for (size_t c = 0; c < N_CAPS; c++) {
      if (caps & cap_names[c].bit) {
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
    printf("]");
    if (d->ok) {
      printf(", \"local_mem_kinds\": ");
      json_kinds(d->local_kinds);
      printf(", \"remote_mem_kinds\": ");
      json_kinds(d->remote_kinds);
      printf(", \"slice_size\": %" PRIu64 ", \"ctrl_handle\": %s, \"params\": ",
             d->slice_size, d->ctrl ? "true" : "false");
      json_params(d);
    } else {
      printf(", \"local_mem_kinds\": [], \"remote_mem_kinds\": [], "
             "\"slice_size\": null, \"params\": []");
    }
    printf(", \"reason\": ");
    json_str(x->reason);
    printf("}");
  }
  printf("\n]");
  print_md_json();
  printf("}\n");
}

/* ---- --yaml-keys ---- */

#define YAML_BEGIN                                                             \
  "# >>> transport keys: generated by `mc-info --yaml-keys`; do not edit <<<"
#define YAML_END "# <<< end of generated transport keys >>>"

/* Writes "    # " + text, word-wrapped at 79 columns. */
static void yaml_comment(const char *indent, const char *text) {
  const size_t width = 79 - strlen(indent) - 2;
  const char *p = text;
  while (*p) {
    size_t len = strlen(p);
    if (len > width) {
      size_t cut = width;
      while (cut > 0 && p[cut] != ' ')
        cut--;
      len = cut ? cut : width;
    }
    printf("%s# %.*s\n", indent, (int)len, p);
    p += len;
    while (*p == ' ')
      p++;
  }
}

static void yaml_plugin(const mc_plugin_info *x, const described *d) {
  char up[64];
  upper(up, sizeof up, x->name);
  printf("  %s:\n", x->name);
  for (size_t k = 0; k < d->nparams; k++) {
    const mc_param_info *p = &d->params[k];
    char range[80], key[64];
    fmt_range(range, sizeof range, p);
    upper(key, sizeof key, p->name ? p->name : "");
    if (k)
      printf("    #\n");
    yaml_comment("    ", p->help ? p->help : "");
    printf("    # (%s%s%s, default %s; env MC_TRANSPORT_%s_%s)\n",
           type_name(p->type), range[0] ? ", " : "", range, yaml_default(p),
           up, key);
    printf("    # %s: %s\n", p->name, yaml_default(p));
  }
}

/* Prints the section for the plugins in `order` (a list, or NULL/auto for
 * every usable plugin in search order).  Returns 0, or 1 when a listed
 * plugin could not be described. */
static int print_yaml_keys(const mc_plugin_info *pi, const described *ds,
                           uint32_t n, const char *order) {
  int rc = 0;
  printf("%s\n", YAML_BEGIN);
  printf("transports:\n");
  if (order && strcmp(order, "auto") != 0) {
    for (const char *p = order; *p;) {
      size_t len = strcspn(p, ", ");
      int found = 0;
      for (uint32_t i = 0; i < n && !found; i++) {
        const mc_plugin_info *x = &pi[i];
        if ((x->state == MC_PLUGIN_LOADED ||
             x->state == MC_PLUGIN_AVAILABLE) &&
            strlen(x->name) == len && strncmp(x->name, p, len) == 0 &&
            ds[i].ok) {
          yaml_plugin(x, &ds[i]);
          found = 1;
        }
      }
      if (!found) {
        fprintf(stderr, "mc-info: --yaml-keys: transport '%.*s' not found "
                        "or not readable\n",
                (int)len, p);
        rc = 1;
      }
      p += len;
      p += strspn(p, ", ");
    }
  } else {
    for (uint32_t i = 0; i < n; i++)
      if ((pi[i].state == MC_PLUGIN_LOADED ||
           pi[i].state == MC_PLUGIN_AVAILABLE) &&
          ds[i].ok)
        yaml_plugin(&pi[i], &ds[i]);
  }
  printf("%s\n", YAML_END);
  return rc;
}

/* ---- main ---- */

int main(int argc, char **argv) {
  const char *config = NULL, *transports = NULL;
  int json = 0, yaml_keys = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--yaml-keys") == 0) {
      yaml_keys = 1;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config = argv[++i];
    } else if (strcmp(argv[i], "--transports") == 0 && i + 1 < argc) {
      transports = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      if (strcmp(argv[i], "--config") == 0 ||
          strcmp(argv[i], "--transports") == 0)
        fprintf(stderr, "mc-info: %s needs a value\n", argv[i]);
      else
        fprintf(stderr, "mc-info: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (json && yaml_keys) {
    fprintf(stderr, "mc-info: --json and --yaml-keys exclude each other\n");
    return 2;
  }

  /* The config (file and MC_* variables) decides what loads; without any,
   * every plugin found.  Listener and metadata are mc-info's own. */
  const char *env_cfg = getenv("MC_CONFIG");
  const char *env_tr = getenv("MC_TRANSPORTS");
  int have_config = (config && *config) || (env_cfg && *env_cfg) ||
                    (env_tr && *env_tr);
  mc_engine_opts o = {.struct_size = sizeof o};
  o.config_path = config;
  o.transports = transports ? transports : have_config ? NULL : "auto";
  if (yaml_keys)
    o.transports = "auto"; /* only the tables matter: nothing must fail */
  o.listen = "127.0.0.1:0";
  o.metadata = "p2p";
  mc_engine *e = NULL;
  char err[1024] = "";
  int rc = mc_engine_create_ex(&o, &e, err, sizeof err);
  if (rc) {
    /* The engine logged the reason (error level, always shown). */
    if (!err[0])
      fprintf(stderr, "mc-info: cannot create an engine: %s\n",
              mc_strerror(rc));
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
  described *ds = calloc(n ? n : 1, sizeof *ds);
  if (!rc && !ds)
    rc = MC_ENOMEM;
  if (rc) {
    fprintf(stderr, "mc-info: listing plugins: %s\n", mc_strerror(rc));
    free(ds);
    free(pi);
    mc_engine_destroy(e);
    return 1;
  }
  for (uint32_t i = 0; i < n; i++)
    if (pi[i].state == MC_PLUGIN_LOADED || pi[i].state == MC_PLUGIN_AVAILABLE)
      describe_plugin(pi[i].path, pi[i].name, &ds[i]);

  int out = 0;
  if (yaml_keys)
    out = print_yaml_keys(pi, ds, n, transports);
  else if (json)
    print_json(e, search, pi, ds, n);
  else
    print_text(e, search, pi, ds, n);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "mc-info: writing the output failed\n");
    out = 1;
  }
  mc_engine_destroy(e);
  for (uint32_t i = 0; i < n; i++)
    described_free(&ds[i]);
  free(ds);
  free(pi);
  return out;
}
