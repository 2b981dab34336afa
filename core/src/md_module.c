/* Finding and loading metadata backend modules (backend.h); the rules are
 * the transport loader's (loader.c), on their own search path:
 *
 *   1. each entry of $MC_METADATA_MODULE_PATH (colon-separated; a directory
 *      or the path of one mc-metadata-<name>.so),
 *   2. the build tree's module folder (MC_BUILD_METADATA_DIR,
 *      <build>/core/metadata) only when this core runs from its build tree:
 *      the libmooncake in <build>/core (the same dladdr test as loader.c),
 *      or a program of the build tree that links the core's internal
 *      archive (its file lies under MC_BUILD_ROOT, e.g. the build's
 *      mc-metadata-bench).  An installed library or program never searches
 *      a build tree,
 *   3. the compiled-in MC_METADATA_DIR ($libdir/mooncake/metadata).
 *
 * A separate variable rather than MC_PLUGIN_PATH: transports and metadata
 * modules are packaged and pointed at separately, and a metadata module in
 * a transport folder (or the reverse) is never picked up by mistake.
 *
 * The URL scheme X is served by the file mc-metadata-X.so, whose table must
 * name X among its schemes.  The first file found wins; a refused one is an
 * error (later copies are not tried, as for transports), with the reason:
 * dlerror() (e.g. the vendor library it needs is missing), no entry symbol,
 * a wrong ABI major, a short table, a name or scheme mismatch, a NULL
 * mandatory member. */
#include "md_module.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader.h"
#include "mooncake/errors.h"

#define COMP "metadata"
#define PREFIX "mc-metadata-"
#define SUFFIX ".so"
#define MAX_ENTRIES 32

#ifndef MC_METADATA_DIR
#define MC_METADATA_DIR "/usr/local/lib/mooncake/metadata"
#endif

/* The size of the 1.0 table: every member up to watch_close. */
#define MD_V1_MIN_SIZE (offsetof(mc_md_backend, watch_close) + sizeof(void *))

typedef struct search {
  char *buf; /* owns the strings */
  const char *entry[MAX_ENTRIES];
  const char *origin[MAX_ENTRIES];
  size_t n;
} search;

/* Whether this core runs from its build tree (rule 2 above). */
static const char md_anchor = 0;
static int in_build_tree(void) {
  if (mc_loader_build_plugin_dir())
    return 1;
#ifdef MC_BUILD_ROOT
  Dl_info di;
  char self[PATH_MAX], root[PATH_MAX];
  if (!dladdr(&md_anchor, &di) || !di.dli_fname || !di.dli_fname[0] ||
      !realpath(di.dli_fname, self)) {
    /* The main program: glibc may name it "" */
    if (!realpath("/proc/self/exe", self))
      return 0;
  }
  if (!realpath(MC_BUILD_ROOT, root))
    return 0;
  size_t n = strlen(root);
  return strncmp(self, root, n) == 0 && self[n] == '/';
#else
  return 0;
#endif
}

/* Appends an entry unless the same text is already listed. */
static void search_add(search *s, const char *entry, const char *origin) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->entry[i], entry) == 0)
      return;
  s->entry[s->n] = entry;
  s->origin[s->n++] = origin;
}

static void search_init(search *s) {
  memset(s, 0, sizeof *s);
  const char *env = getenv("MC_METADATA_MODULE_PATH");
  if (env && *env && (s->buf = strdup(env))) {
    char *save = NULL;
    for (char *t = strtok_r(s->buf, ":", &save); t && s->n < MAX_ENTRIES - 2;
         t = strtok_r(NULL, ":", &save))
      search_add(s, t, "MC_METADATA_MODULE_PATH");
  }
#ifdef MC_BUILD_METADATA_DIR
  if (in_build_tree())
    search_add(s, MC_BUILD_METADATA_DIR, "build tree");
#endif
  search_add(s, MC_METADATA_DIR, "install");
}

static void search_fini(search *s) { free(s->buf); }

static void search_text(const search *s, char *buf, size_t len) {
  size_t off = 0;
  if (!buf || !len)
    return;
  buf[0] = 0;
  for (size_t i = 0; i < s->n && off < len; i++) {
    int k = snprintf(buf + off, len - off, "%s%s", i ? ":" : "", s->entry[i]);
    if (k < 0)
      break;
    off += (size_t)k;
  }
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* name from ".../mc-metadata-<name>.so", or -1. */
static int name_of(const char *path, char *name, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t bl = strlen(base), pl = strlen(PREFIX), sl = strlen(SUFFIX);
  if (bl <= pl + sl || strncmp(base, PREFIX, pl) != 0 ||
      strcmp(base + bl - sl, SUFFIX) != 0 || bl - pl - sl >= cap)
    return -1;
  memcpy(name, base + pl, bl - pl - sl);
  name[bl - pl - sl] = 0;
  return 0;
}

/* Opens and validates one file; 0, or MC_EABI / MC_ENOTSUP with why.
 * flags: extra dlopen flags. */
static int try_open(const char *path, const char *name, const char *scheme, int flags,
                    void **dl_out, mc_md_backend *ops, char *why, size_t whylen) {
  dlerror();
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | flags);
  if (!dl) {
    const char *e = dlerror();
    snprintf(why, whylen, "cannot be loaded: %s", e ? e : "dlopen failed");
    return MC_ENOTSUP;
  }
  void *sym = dlsym(dl, MC_MD_ENTRY_V1);
  if (!sym) {
    snprintf(why, whylen, "no entry symbol %s (not a mooncake metadata module, or a newer ABI)",
             MC_MD_ENTRY_V1);
    dlclose(dl);
    return MC_EABI;
  }
  const mc_md_backend *t = ((mc_md_entry_v1_fn)sym)();
  int rc = MC_EABI;
  if (!t)
    snprintf(why, whylen, "%s returned NULL", MC_MD_ENTRY_V1);
  else if (t->abi_major != MC_MD_ABI_MAJOR)
    snprintf(why, whylen, "ABI major %u, this core supports %u", t->abi_major, MC_MD_ABI_MAJOR);
  else if (t->struct_size < MD_V1_MIN_SIZE)
    snprintf(why, whylen, "struct_size %u < minimum %zu", t->struct_size,
             (size_t)MD_V1_MIN_SIZE);
  else
    rc = 0;
  if (rc == 0) {
    size_t n = t->struct_size < sizeof *ops ? t->struct_size : sizeof *ops;
    memset(ops, 0, sizeof *ops);
    memcpy(ops, t, n);
    int served = 0;
    for (const char *const *s = ops->schemes; s && *s && scheme; s++)
      if (strcmp(*s, scheme) == 0)
        served = 1;
    if (!ops->name || strcmp(ops->name, name) != 0) {
      snprintf(why, whylen, "name '%.64s' does not match file name '%s'",
               ops->name ? ops->name : "(null)", name);
      rc = MC_EABI;
    } else if (!ops->schemes || !ops->schemes[0]) {
      snprintf(why, whylen, "serves no URL scheme");
      rc = MC_EABI;
    } else if (scheme && !served) {
      snprintf(why, whylen, "does not serve the scheme '%s'", scheme);
      rc = MC_EABI;
    } else if (!ops->open || !ops->close || !ops->put || !ops->get || !ops->del) {
      snprintf(why, whylen, "a mandatory member (open, close, put, get, del) is NULL");
      rc = MC_EABI;
    } else if ((ops->watch_open || ops->watch_next || ops->watch_close) &&
               !(ops->watch_open && ops->watch_next && ops->watch_close)) {
      snprintf(why, whylen, "watch_open, watch_next and watch_close must come together");
      rc = MC_EABI;
    }
  }
  if (rc) {
    dlclose(dl);
    return rc;
  }
  *dl_out = dl;
  return 0;
}

int mc_md_module_load(const mc_logger *lg, const char *scheme, const char *url,
                      mc_md_module **out, char *err, size_t errlen) {
  *out = NULL;
  if (!scheme || !*scheme || strlen(scheme) > 32 || strchr(scheme, '/'))
    return MC_EINVAL;
  search s;
  search_init(&s);
  char path[4096] = "";
  for (size_t i = 0; i < s.n && !path[0]; i++) {
    char cand[4096];
    if (is_dir(s.entry[i])) {
      snprintf(cand, sizeof cand, "%s/%s%s%s", s.entry[i], PREFIX, scheme, SUFFIX);
      if (is_file(cand))
        snprintf(path, sizeof path, "%s", cand);
    } else if (is_file(s.entry[i])) {
      char nm[64];
      if (name_of(s.entry[i], nm, sizeof nm) == 0 && strcmp(nm, scheme) == 0)
        snprintf(path, sizeof path, "%s", s.entry[i]);
    } else {
      MC_DEBUG(lg, COMP, "module search entry %s (%s): absent", s.entry[i], s.origin[i]);
    }
  }
  if (!path[0]) {
    char sp[2048];
    search_text(&s, sp, sizeof sp);
    mc_seterr(err, errlen,
              "metadata '%s' (the metadata key or MC_METADATA) needs the %s backend module "
              "(%s%s%s), not found in %s; install it or point MC_METADATA_MODULE_PATH at it",
              url, scheme, PREFIX, scheme, SUFFIX, sp);
    search_fini(&s);
    return MC_ENOENT;
  }
  search_fini(&s);
  mc_md_module *m = calloc(1, sizeof *m);
  if (!m)
    return MC_ENOMEM;
  char real[4096];
  snprintf(m->path, sizeof m->path, "%s", realpath(path, real) ? real : path);
  snprintf(m->name, sizeof m->name, "%s", scheme);
  char why[512];
  /* RTLD_NODELETE: a module in use stays mapped until the process exits,
   * with the libraries it brought (gRPC's shutdown may finish on a thread
   * of its own after the last client is gone). */
  int rc = try_open(m->path, scheme, scheme, RTLD_NODELETE, &m->dl, &m->ops, why, sizeof why);
  if (rc) {
    MC_WARN(lg, COMP, "metadata module '%s' (%s) refused: %s", scheme, m->path, why);
    mc_seterr(err, errlen, "metadata '%s': the %s backend module %s was refused: %s", url,
              scheme, m->path, why);
    free(m);
    return rc;
  }
  MC_INFO(lg, COMP, "metadata module '%s' loaded from %s (ABI %u.%u)", scheme, m->path,
          m->ops.abi_major, m->ops.abi_minor);
  *out = m;
  return 0;
}

void mc_md_module_unload(mc_md_module *m) {
  if (!m)
    return;
  if (m->dl)
    dlclose(m->dl);
  free(m);
}

typedef struct found {
  char name[64];
  char path[4096];
} found;

static int cmp_found(const void *a, const void *b) {
  return strcmp(((const found *)a)->path, ((const found *)b)->path);
}

/* Appends the module files of one entry (sorted within a directory). */
static void collect(const char *entry, found **list, size_t *n, size_t *cap) {
  size_t first = *n;
  DIR *d = is_dir(entry) ? opendir(entry) : NULL;
  struct dirent *de;
  const char *single = d ? NULL : (is_file(entry) ? entry : NULL);
  while ((d && (de = readdir(d))) || single) {
    char path[4096], nm[64];
    if (single)
      snprintf(path, sizeof path, "%s", single);
    else
      snprintf(path, sizeof path, "%s/%s", entry, de->d_name);
    single = NULL;
    if (name_of(path, nm, sizeof nm) != 0 || !is_file(path))
      continue;
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 8;
      found *nl = realloc(*list, nc * sizeof *nl);
      if (!nl)
        break;
      *list = nl;
      *cap = nc;
    }
    char real[4096];
    snprintf((*list)[*n].path, sizeof (*list)[*n].path, "%s", realpath(path, real) ? real : path);
    snprintf((*list)[*n].name, sizeof (*list)[*n].name, "%s", nm);
    (*n)++;
  }
  if (d)
    closedir(d);
  if (*n > first) /* *list may still be NULL when nothing was found */
    qsort(*list + first, *n - first, sizeof **list, cmp_found);
}

int mc_md_module_report(mc_plugin_info *out, uint32_t *n, char *search_path, size_t splen) {
  if (!n || (!out && *n))
    return MC_EINVAL;
  search s;
  search_init(&s);
  search_text(&s, search_path, splen);
  found *list = NULL;
  size_t nf = 0, cap = 0;
  for (size_t i = 0; i < s.n; i++)
    collect(s.entry[i], &list, &nf, &cap);
  search_fini(&s);
  uint32_t k = 0;
  for (size_t i = 0; i < nf; i++) {
    /* The same file reached twice is one module. */
    int dup = 0, shadow = 0;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(list[j].path, list[i].path) == 0)
        dup = 1;
      else if (strcmp(list[j].name, list[i].name) == 0)
        shadow = 1;
    }
    if (dup)
      continue;
    if (k < *n) {
      mc_plugin_info *x = &out[k];
      memset(x, 0, sizeof *x);
      snprintf(x->name, sizeof x->name, "%s", list[i].name);
      snprintf(x->path, sizeof x->path, "%s", list[i].path);
      if (shadow) {
        x->state = MC_PLUGIN_SHADOWED;
        snprintf(x->reason, sizeof x->reason, "a module of that name found earlier wins");
      } else {
        void *dl = NULL;
        mc_md_backend ops;
        int rc = try_open(list[i].path, list[i].name, NULL, 0, &dl, &ops, x->reason,
                          sizeof x->reason);
        if (rc) {
          x->state = MC_PLUGIN_REFUSED;
        } else {
          x->state = MC_PLUGIN_AVAILABLE;
          x->abi_major = ops.abi_major;
          x->abi_minor = ops.abi_minor;
          /* version: the schemes it serves, e.g. "etcd" */
          size_t off = 0;
          for (const char *const *sc = ops.schemes; sc && *sc && off < sizeof x->version; sc++) {
            int w = snprintf(x->version + off, sizeof x->version - off, "%s%s://",
                             off ? "," : "", *sc);
            if (w < 0)
              break;
            off += (size_t)w;
          }
          dlclose(dl);
        }
      }
    }
    k++;
  }
  free(list);
  int rc = k > *n ? MC_ENOSPC : 0;
  *n = k;
  return rc;
}
