/* Plugin discovery and loading (see loader.h).
 *
 * A scan walks the search entries once and records every candidate file in
 * search order: the first file for a name is its "winner", later files for
 * the same name are shadowed.  Loading dlopens the winner, finds the newest
 * entry symbol this core knows, adapts the table into the internal one and
 * validates it.  All state lives in the mc_loader; nothing is global. */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define COMP "loader"
#define PREFIX "mc-transport-"
#define SUFFIX ".so"
#define NAME_CAP 64   /* == sizeof(mc_plugin.name) */
#define PATH_CAP 4096 /* == sizeof(mc_plugin.path) */
#define REASON_CAP 512

/* ---- entry points this core knows, newest first ----
 *
 * Supporting ABI v2 is one row here plus its adapter: the adapter calls the
 * entry symbol with its real type, checks the table header against `major`
 * and converts it into the internal (v1-shaped) table. */

typedef int (*adapt_fn)(void *sym, mc_transport_ops *out, uint32_t hdr[3],
                        char *why, size_t whylen);

static int adapt_v1(void *sym, mc_transport_ops *out, uint32_t hdr[3],
                    char *why, size_t whylen);

static const struct entry_abi {
  uint32_t major;
  const char *symbol;
  adapt_fn adapt;
} entry_abis[] = {
    {1, MC_TRANSPORT_ENTRY_V1, adapt_v1},
};
#define N_ENTRY_ABIS (sizeof entry_abis / sizeof entry_abis[0])

/* "1" or "2, 1": the majors this core supports, for messages. */
static void supported_majors(char *buf, size_t len) {
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_ENTRY_ABIS && off < len; i++) {
    int k = snprintf(buf + off, len - off, "%s%u", i ? ", " : "",
                     entry_abis[i].major);
    if (k < 0)
      break;
    off += (size_t)k;
  }
}

static int adapt_v1(void *sym, mc_transport_ops *out, uint32_t hdr[3],
                    char *why, size_t whylen) {
  /* dlsym hands back an object pointer; POSIX guarantees the conversion. */
  mc_transport_entry_v1_fn entry = (mc_transport_entry_v1_fn)sym;
  const mc_transport_ops *t = entry();
  if (!t) {
    snprintf(why, whylen, "%s returned NULL", MC_TRANSPORT_ENTRY_V1);
    return MC_EABI;
  }
  hdr[0] = t->abi_major;
  hdr[1] = t->abi_minor;
  hdr[2] = t->struct_size;
  if (t->abi_major != 1) {
    char sup[64];
    supported_majors(sup, sizeof sup);
    snprintf(why, whylen, "ABI major %u, this core supports %s", t->abi_major,
             sup);
    return MC_EABI;
  }
  if (t->struct_size < MC_TRANSPORT_OPS_V1_MIN_SIZE) {
    snprintf(why, whylen, "struct_size %u < minimum %zu", t->struct_size,
             (size_t)MC_TRANSPORT_OPS_V1_MIN_SIZE);
    return MC_EABI;
  }
  /* Newer minors append members we do not know: copy what both know; a
   * missing tail stays NULL. */
  size_t n = t->struct_size < sizeof *out ? t->struct_size : sizeof *out;
  memset(out, 0, sizeof *out);
  memcpy(out, t, n);
  return 0;
}

/* ---- candidates ---- */

typedef struct cand {
  char name[NAME_CAP];
  char path[PATH_CAP]; /* realpath when resolvable, else as found */
  int winner;          /* first file for its name */
  uint32_t state;      /* enum mc_plugin_state for the report */
  char version[64];
  uint32_t abi_major, abi_minor;
  uint64_t caps;
  uint32_t nrails;
  int load_rc;         /* cached refusal of the loader itself, 0 if none */
  char reason[REASON_CAP];
} cand;

/* One search entry and where it came from, for messages. */
typedef struct entry {
  char *path;
  const char *origin; /* "MC_PLUGIN_PATH", "plugin_path", ... (static) */
  int quiet;          /* missing is normal (build tree, install dir) */
} entry;

struct mc_loader {
  mc_logger logger; /* copy, so the caller's may go away */
  const mc_logger *lg;
  entry *entries;
  size_t nentries, capentries;
  int scanned;
  cand *cands;
  size_t ncands, capcands;
};

static void copy_str(char *dst, size_t cap, const char *src) {
  if (!cap)
    return;
  snprintf(dst, cap, "%s", src ? src : "");
}

/* snprintf into a fixed field; a long path is cut and marked with "...". */
static void fmt_field(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_field(char *dst, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
  if (k >= 0 && (size_t)k >= cap && cap > 4)
    memcpy(dst + cap - 4, "...", 4);
}

int mc_loader_check_name(const char *name, char *why, size_t whylen) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0) {
    snprintf(why, whylen, "transport name is empty");
    return -1;
  }
  if (n >= NAME_CAP) {
    snprintf(why, whylen, "transport name '%.40s...' is longer than %d bytes",
             name, NAME_CAP - 1);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      snprintf(why, whylen,
               "transport name '%s' is not [a-z0-9_]+ (it must be usable "
               "in MC_TRANSPORT_<NAME>_<KEY> variables)",
               name);
      return -1;
    }
  }
  return 0;
}

/* Whether base is "mc-transport-<something>.so". */
static int is_plugin_file(const char *base) {
  size_t lp = strlen(PREFIX), ls = strlen(SUFFIX), lb = strlen(base);
  return lb > lp + ls && strncmp(base, PREFIX, lp) == 0 &&
         strcmp(base + lb - ls, SUFFIX) == 0;
}

/* <name> of "mc-transport-<name>.so": 0 when it is a valid transport name,
 * -1 when base is not such a file name, -2 when <name> is not a valid
 * transport name (the reason in why; name holds what fits of it). */
static int name_from_file(const char *base, char *name, size_t cap, char *why,
                          size_t whylen) {
  if (!is_plugin_file(base))
    return -1;
  size_t lp = strlen(PREFIX), ln = strlen(base) - lp - strlen(SUFFIX);
  char raw[PATH_CAP];
  snprintf(raw, sizeof raw, "%.*s", (int)ln, base + lp);
  size_t k = ln < cap ? ln : cap - 1;
  memcpy(name, raw, k);
  name[k] = '\0';
  return mc_loader_check_name(raw, why, whylen) == 0 ? 0 : -2;
}

static cand *find_winner(mc_loader *ld, const char *name) {
  for (size_t i = 0; i < ld->ncands; i++)
    if (ld->cands[i].winner && strcmp(ld->cands[i].name, name) == 0)
      return &ld->cands[i];
  return NULL;
}

static cand *new_cand(mc_loader *ld) {
  if (ld->ncands == ld->capcands) {
    size_t nc = ld->capcands ? ld->capcands * 2 : 8;
    cand *c = realloc(ld->cands, nc * sizeof *c);
    if (!c)
      return NULL;
    ld->cands = c;
    ld->capcands = nc;
  }
  cand *c = &ld->cands[ld->ncands++];
  memset(c, 0, sizeof *c);
  return c;
}

/* Records the file at `path` (a regular file or a link to one). */
static int add_file(mc_loader *ld, const char *path, const char *base) {
  char real[PATH_MAX];
  if (!realpath(path, real)) {
    MC_DEBUG(ld->lg, COMP, "plugin candidate %s: %s", path, strerror(errno));
    return 0;
  }
  /* The same file reached twice (a directory listed in both MC_PLUGIN_PATH
   * and plugin_path) is one candidate, not a shadow of itself. */
  for (size_t i = 0; i < ld->ncands; i++)
    if (strcmp(ld->cands[i].path, real) == 0)
      return 0;

  char name[NAME_CAP], why[REASON_CAP];
  int named = name_from_file(base, name, sizeof name, why, sizeof why);
  cand *c = new_cand(ld);
  if (!c)
    return MC_ENOMEM;
  copy_str(c->path, sizeof c->path, real);
  if (named != 0) {
    /* Refused without being opened: a file that is not named
     * mc-transport-<name>.so (an explicit entry; a directory scan skips
     * those) or whose <name> is not a valid transport name. */
    if (named == -1) {
      size_t lb = strlen(base), ls = strlen(SUFFIX);
      size_t keep =
          lb > ls && strcmp(base + lb - ls, SUFFIX) == 0 ? lb - ls : lb;
      snprintf(c->name, sizeof c->name, "%.*s", (int)keep, base);
      fmt_field(c->reason, sizeof c->reason,
                "file name '%s' is not mc-transport-<name>.so", base);
    } else {
      copy_str(c->name, sizeof c->name, name);
      fmt_field(c->reason, sizeof c->reason, "file name '%s': %s", base, why);
    }
    c->state = MC_PLUGIN_REFUSED;
    c->load_rc = MC_EINVAL;
    MC_WARN(ld->lg, COMP, "plugin %s refused: %s", real, c->reason);
    return 0;
  }
  copy_str(c->name, sizeof c->name, name);
  cand *w = find_winner(ld, name);
  if (w) {
    c->state = MC_PLUGIN_SHADOWED;
    fmt_field(c->reason, sizeof c->reason, "shadowed by %s", w->path);
    MC_INFO(ld->lg, COMP, "plugin '%s' at %s shadowed by %s", name, real,
            w->path);
  } else {
    c->winner = 1;
    c->state = MC_PLUGIN_AVAILABLE;
    MC_DEBUG(ld->lg, COMP, "plugin '%s' found at %s", name, real);
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int scan_dir(mc_loader *ld, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    MC_DEBUG(ld->lg, COMP, "plugin dir %s: %s", dir, strerror(errno));
    return 0;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    /* Every mc-transport-*.so is a candidate, so one with a bad name is
     * reported as refused rather than silently ignored. */
    if (!is_plugin_file(de->d_name))
      continue;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      char **p = realloc(names, nc * sizeof *p);
      if (!p) {
        rc = MC_ENOMEM;
        break;
      }
      names = p;
      cap = nc;
    }
    if (!(names[n] = strdup(de->d_name))) {
      rc = MC_ENOMEM;
      break;
    }
    n++;
  }
  closedir(d);
  /* readdir order is arbitrary; sort so discovery is deterministic. */
  if (n)
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    if (rc == 0) {
      char path[PATH_MAX];
      struct stat st;
      int k = snprintf(path, sizeof path, "%s/%s", dir, names[i]);
      if (k < 0 || (size_t)k >= sizeof path)
        MC_DEBUG(ld->lg, COMP, "plugin path too long: %s/%s", dir, names[i]);
      else if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        MC_DEBUG(ld->lg, COMP, "plugin candidate %s: not a regular file",
                 path);
      else
        rc = add_file(ld, path, names[i]);
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int mc_loader_scan(mc_loader *ld) {
  if (!ld)
    return MC_EINVAL;
  if (ld->scanned)
    return 0;
  for (size_t i = 0; i < ld->nentries; i++) {
    const char *e = ld->entries[i].path;
    struct stat st;
    if (stat(e, &st) != 0) {
      /* Scanned once per loader, so said once per engine. */
      if (ld->entries[i].quiet)
        MC_DEBUG(ld->lg, COMP, "plugin search entry %s (%s): %s", e,
                 ld->entries[i].origin, strerror(errno));
      else
        MC_WARN(ld->lg, COMP, "plugin search entry %s (from %s): %s; ignored",
                e, ld->entries[i].origin, strerror(errno));
      continue;
    }
    int rc;
    if (S_ISDIR(st.st_mode)) {
      rc = scan_dir(ld, e);
    } else {
      const char *slash = strrchr(e, '/');
      rc = add_file(ld, e, slash ? slash + 1 : e);
    }
    if (rc) {
      /* Only ENOMEM gets here; forget the partial scan. */
      ld->ncands = 0;
      return rc;
    }
  }
  ld->scanned = 1;
  return 0;
}

/* Appends one search entry; empty ones ("a::b") are skipped, as in $PATH
 * handling. */
static int add_entry(mc_loader *ld, const char *path, const char *origin,
                     int quiet) {
  if (!path || !path[0])
    return 0;
  /* The same folder named twice (MC_PLUGIN_PATH=build/plugins from the
   * build tree, which is searched anyway) is searched, and shown, once:
   * the first naming wins, as a first match would. */
  char real[PATH_MAX], other[PATH_MAX];
  int have_real = realpath(path, real) != NULL;
  for (size_t i = 0; i < ld->nentries; i++) {
    const char *p = ld->entries[i].path;
    if (strcmp(p, path) == 0 ||
        (have_real && realpath(p, other) && strcmp(other, real) == 0))
      return 0;
  }
  if (ld->nentries == ld->capentries) {
    size_t nc = ld->capentries ? ld->capentries * 2 : 8;
    entry *e = realloc(ld->entries, nc * sizeof *e);
    if (!e)
      return MC_ENOMEM;
    ld->entries = e;
    ld->capentries = nc;
  }
  char *dup = strdup(path);
  if (!dup)
    return MC_ENOMEM;
  ld->entries[ld->nentries++] = (entry){dup, origin, quiet};
  return 0;
}

static mc_loader *loader_new(const mc_logger *lg) {
  mc_loader *ld = calloc(1, sizeof *ld);
  if (ld && lg) {
    ld->logger = *lg;
    ld->lg = &ld->logger;
  }
  return ld;
}

int mc_loader_create(const mc_logger *lg, const char *const *entries,
                     size_t nentries, const char *builtin_dir,
                     mc_loader **out) {
  if (!out || (nentries && !entries))
    return MC_EINVAL;
  mc_loader *ld = loader_new(lg);
  if (!ld)
    return MC_ENOMEM;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < nentries; i++)
    rc = add_entry(ld, entries[i], "search path", 0);
  if (rc == 0)
    rc = add_entry(ld, builtin_dir, "built-in plugin directory", 1);
  if (rc) {
    mc_loader_destroy(ld);
    return rc;
  }
  *out = ld;
  return 0;
}

/* Any object of this library: dladdr() on its address names the file the
 * library was loaded from. */
static const char build_tree_anchor = 0;

const char *mc_loader_build_plugin_dir(void) {
#if defined(MC_BUILD_PLUGIN_DIR) && defined(MC_BUILD_CORE_DIR)
  Dl_info di;
  if (!dladdr(&build_tree_anchor, &di) || !di.dli_fname)
    return NULL;
  char lib[PATH_MAX], core[PATH_MAX];
  if (!realpath(di.dli_fname, lib) || !realpath(MC_BUILD_CORE_DIR, core))
    return NULL;
  char *slash = strrchr(lib, '/');
  if (!slash)
    return NULL;
  *slash = '\0';
  return strcmp(lib, core) == 0 ? MC_BUILD_PLUGIN_DIR : NULL;
#else
  return NULL;
#endif
}

int mc_loader_open(const mc_logger *lg, const char *env_path,
                   const char *const *cfg_entries, size_t ncfg,
                   mc_loader **out) {
  if (!out || (ncfg && !cfg_entries))
    return MC_EINVAL;
  mc_loader *ld = loader_new(lg);
  if (!ld)
    return MC_ENOMEM;
  int rc = 0;
  for (const char *p = env_path; rc == 0 && p && *p;) {
    size_t len = strcspn(p, ":");
    char *one = strndup(p, len);
    rc = one ? add_entry(ld, one, "MC_PLUGIN_PATH", 0) : MC_ENOMEM;
    free(one);
    p += len;
    if (*p == ':')
      p++;
  }
  for (size_t i = 0; rc == 0 && i < ncfg; i++)
    rc = add_entry(ld, cfg_entries[i], "plugin_path", 0);
  const char *build = mc_loader_build_plugin_dir();
  if (rc == 0 && build) {
    MC_DEBUG(ld->lg, COMP, "running from the build tree: searching %s", build);
    rc = add_entry(ld, build, "build tree", 1);
  }
#ifdef MC_PLUGIN_DIR
  if (rc == 0)
    rc = add_entry(ld, MC_PLUGIN_DIR, "built-in plugin directory", 1);
#endif
  if (rc) {
    mc_loader_destroy(ld);
    return rc;
  }
  *out = ld;
  return 0;
}

void mc_loader_destroy(mc_loader *ld) {
  if (!ld)
    return;
  for (size_t i = 0; i < ld->nentries; i++)
    free(ld->entries[i].path);
  free(ld->entries);
  free(ld->cands);
  free(ld);
}

int mc_loader_search_path(mc_loader *ld, char *buf, size_t len) {
  if (!ld || !buf || !len)
    return MC_EINVAL;
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < ld->nentries; i++) {
    size_t need = strlen(ld->entries[i].path) + (i ? 1 : 0);
    if (off + need >= len)
      return MC_ENOSPC;
    off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ":" : "",
                            ld->entries[i].path);
  }
  return 0;
}

int mc_loader_names(mc_loader *ld, const char **names, size_t *n) {
  if (!ld || !n || (*n && !names))
    return MC_EINVAL;
  int rc = mc_loader_scan(ld);
  if (rc)
    return rc;
  size_t k = 0;
  for (size_t i = 0; i < ld->ncands; i++) {
    if (!ld->cands[i].winner)
      continue;
    if (k < *n)
      names[k] = ld->cands[i].name;
    k++;
  }
  rc = k > *n ? MC_ENOSPC : 0;
  *n = k;
  return rc;
}

/* Logs and records a refusal; returns rc. */
static int refuse(mc_loader *ld, cand *c, int rc, char *err, size_t errlen,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int refuse(mc_loader *ld, cand *c, int rc, char *err, size_t errlen,
                  const char *fmt, ...) {
  char why[REASON_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  c->state = MC_PLUGIN_REFUSED;
  c->load_rc = rc;
  copy_str(c->reason, sizeof c->reason, why);
  MC_WARN(ld->lg, COMP, "plugin '%s' (%s) refused: %s", c->name, c->path, why);
  if (err && errlen)
    fmt_field(err, errlen, "plugin '%s' (%s): %s", c->name, c->path, why);
  return rc;
}

/* Checks the normalized table; writes the first problem into why. */
static int validate(const cand *c, const mc_transport_ops *o, char *why,
                    size_t whylen) {
  if (!o->name) {
    snprintf(why, whylen, "name is NULL");
    return -1;
  }
  if (strcmp(o->name, c->name) != 0) {
    snprintf(why, whylen, "name '%.64s' does not match file name '%s'",
             o->name, c->name);
    return -1;
  }
  if (!o->version) {
    snprintf(why, whylen, "version is NULL");
    return -1;
  }
  const struct {
    const char *what;
    int present;
  } mandatory[] = {
      {"init", o->init != NULL},
      {"fini", o->fini != NULL},
      {"query_rails", o->query_rails != NULL},
      {"local_desc", o->local_desc != NULL},
      {"register_mem", o->register_mem != NULL},
      {"deregister_mem", o->deregister_mem != NULL},
      {"connect", o->connect != NULL},
      {"disconnect", o->disconnect != NULL},
      {"import_mem", o->import_mem != NULL},
      {"release_mem", o->release_mem != NULL},
      {"submit", o->submit != NULL},
  };
  for (size_t i = 0; i < sizeof mandatory / sizeof mandatory[0]; i++) {
    if (!mandatory[i].present) {
      snprintf(why, whylen, "mandatory member %s is NULL", mandatory[i].what);
      return -1;
    }
  }
  if (!o->progress && !(o->caps & MC_CAP_OWN_THREADS)) {
    snprintf(why, whylen, "progress is NULL and caps lack MC_CAP_OWN_THREADS");
    return -1;
  }
  if (!o->send_notify && (o->caps & MC_CAP_NOTIFY)) {
    snprintf(why, whylen, "caps have MC_CAP_NOTIFY but send_notify is NULL");
    return -1;
  }
  if (o->alloc_mem && !o->free_mem) {
    snprintf(why, whylen, "alloc_mem is set but free_mem is NULL");
    return -1;
  }
  return 0;
}

int mc_loader_load(mc_loader *ld, const char *name, mc_plugin **out,
                   char *err, size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  if (!ld || !name || !out)
    return MC_EINVAL;
  int rc = mc_loader_scan(ld);
  if (rc)
    return rc;
  cand *c = find_winner(ld, name);
  if (!c) {
    if (err && errlen) {
      int k = snprintf(err, errlen, "transport '%s' not found; searched: ",
                       name);
      if (k >= 0 && (size_t)k < errlen &&
          mc_loader_search_path(ld, err + k, errlen - (size_t)k) != 0)
        snprintf(err + k, errlen - (size_t)k, "(search path too long)");
    }
    return MC_ENOENT;
  }
  if (c->load_rc) {
    /* Refused before: the file has not changed under us in any way we
     * could detect cheaply, so repeat the verdict without re-logging. */
    if (err && errlen)
      fmt_field(err, errlen, "plugin '%s' (%s): %s", c->name, c->path,
                c->reason);
    return c->load_rc;
  }

  mc_plugin *p = calloc(1, sizeof *p);
  if (!p)
    return MC_ENOMEM;
  (void)dlerror();
  p->dl = dlopen(c->path, RTLD_NOW | RTLD_LOCAL);
  if (!p->dl) {
    const char *de = dlerror();
    free(p);
    return refuse(ld, c, MC_EINVAL, err, errlen, "dlopen failed: %s",
                  de ? de : "unknown error");
  }

  const struct entry_abi *abi = NULL;
  void *sym = NULL;
  for (size_t i = 0; i < N_ENTRY_ABIS && !sym; i++) {
    (void)dlerror();
    sym = dlsym(p->dl, entry_abis[i].symbol);
    abi = &entry_abis[i];
  }
  char why[REASON_CAP];
  if (!sym) {
    size_t off = (size_t)snprintf(why, sizeof why, "entry symbol ");
    for (size_t i = 0; i < N_ENTRY_ABIS && off < sizeof why; i++)
      off += (size_t)snprintf(why + off, sizeof why - off, "%s%s",
                              i ? " or " : "", entry_abis[i].symbol);
    dlclose(p->dl);
    free(p);
    return refuse(ld, c, MC_EINVAL, err, errlen, "%s not found", why);
  }

  uint32_t hdr[3] = {0, 0, 0};
  rc = abi->adapt(sym, &p->ops, hdr, why, sizeof why);
  if (rc == 0 && validate(c, &p->ops, why, sizeof why) != 0)
    rc = MC_EABI;
  if (rc) {
    dlclose(p->dl);
    free(p);
    return refuse(ld, c, rc, err, errlen, "%s", why);
  }

  copy_str(p->name, sizeof p->name, c->name);
  copy_str(p->path, sizeof p->path, c->path);
  p->found_major = hdr[0];
  p->found_minor = hdr[1];
  p->found_size = hdr[2];
  copy_str(c->version, sizeof c->version, p->ops.version);
  c->abi_major = hdr[0];
  c->abi_minor = hdr[1];
  c->caps = p->ops.caps;
  MC_INFO(ld->lg, COMP, "loaded plugin '%s' %s (ABI %u.%u) from %s", p->name,
          c->version, hdr[0], hdr[1], p->path);
  *out = p;
  return 0;
}

void mc_loader_unload(mc_plugin *p) {
  if (!p)
    return;
  if (p->dl)
    dlclose(p->dl);
  free(p);
}

void mc_loader_mark_refused(mc_loader *ld, const char *name,
                            const char *reason) {
  cand *c = ld && name ? find_winner(ld, name) : NULL;
  if (!c)
    return;
  c->state = MC_PLUGIN_REFUSED;
  c->nrails = 0;
  copy_str(c->reason, sizeof c->reason, reason ? reason : "refused");
}

void mc_loader_mark_loaded(mc_loader *ld, const char *name, uint32_t nrails) {
  cand *c = ld && name ? find_winner(ld, name) : NULL;
  if (!c)
    return;
  c->state = MC_PLUGIN_LOADED;
  c->nrails = nrails;
  c->reason[0] = '\0';
}

int mc_loader_report(mc_loader *ld, mc_plugin_info *out, uint32_t *n) {
  if (!ld || !n || (*n && !out))
    return MC_EINVAL;
  int rc = mc_loader_scan(ld);
  if (rc)
    return rc;
  uint32_t k = 0;
  for (size_t i = 0; i < ld->ncands; i++, k++) {
    if (k >= *n)
      continue;
    const cand *c = &ld->cands[i];
    mc_plugin_info *r = &out[k];
    memset(r, 0, sizeof *r);
    r->state = c->state;
    copy_str(r->name, sizeof r->name, c->name);
    copy_str(r->path, sizeof r->path, c->path);
    copy_str(r->version, sizeof r->version, c->version);
    r->abi_major = c->abi_major;
    r->abi_minor = c->abi_minor;
    r->caps = c->caps;
    r->nrails = c->nrails;
    copy_str(r->reason, sizeof r->reason, c->reason);
  }
  rc = k > *n ? MC_ENOSPC : 0;
  *n = k;
  return rc;
}
