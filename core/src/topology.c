/* Host topology model, rail ranking per memory location, YAML printing.
 * Discovery back ends live in topo/ (hwloc, sysfs). */
#include "topology.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mooncake/errors.h"

#define D_LOCAL 100u
#define D_UNKNOWN 150u

mc_topology *mc_topo_new(const char *source) {
  mc_topology *t = calloc(1, sizeof *t);
  if (t)
    snprintf(t->source, sizeof t->source, "%s", source);
  return t;
}

static void free_entry(mc_topo_entry *e) {
  for (size_t i = 0; i < e->npreferred; i++)
    free(e->preferred[i]);
  for (size_t i = 0; i < e->nfallback; i++)
    free(e->fallback[i]);
  free(e->preferred);
  free(e->fallback);
  free(e->location);
}

void mc_topo_free(mc_topology *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nentries; i++)
    free_entry(&t->entries[i]);
  free(t->entries);
  free(t->numa);
  free(t->distance);
  free(t->devs);
  free(t);
}

int mc_topo_add_numa(mc_topology *t, int32_t id, const char *cpus) {
  mc_topo_numa *n = realloc(t->numa, (t->nnuma + 1) * sizeof *n);
  if (!n)
    return MC_ENOMEM;
  t->numa = n;
  n[t->nnuma].id = id;
  snprintf(n[t->nnuma].cpus, sizeof n->cpus, "%s", cpus ? cpus : "");
  t->nnuma++;
  return 0;
}

int mc_topo_add_dev(mc_topology *t, const mc_topo_dev *d) {
  mc_topo_dev *n = realloc(t->devs, (t->ndevs + 1) * sizeof *n);
  if (!n)
    return MC_ENOMEM;
  t->devs = n;
  n[t->ndevs++] = *d;
  return 0;
}

static char **dup_list(char *const *src, size_t n) {
  char **out = calloc(n ? n : 1, sizeof *out);
  for (size_t i = 0; out && i < n; i++) {
    out[i] = strdup(src[i]);
    if (!out[i]) {
      while (i--)
        free(out[i]);
      free(out);
      return NULL;
    }
  }
  return out;
}

int mc_topo_apply_config(mc_topology *t, const mc_config_topo *e, size_t n) {
  for (size_t i = 0; i < n; i++) {
    mc_topo_entry ne = {0};
    ne.location = strdup(e[i].location);
    ne.preferred = dup_list(e[i].preferred, e[i].npreferred);
    ne.fallback = dup_list(e[i].fallback, e[i].nfallback);
    ne.npreferred = e[i].npreferred;
    ne.nfallback = e[i].nfallback;
    if (!ne.location || !ne.preferred || !ne.fallback) {
      ne.npreferred = ne.preferred ? ne.npreferred : 0;
      ne.nfallback = ne.fallback ? ne.nfallback : 0;
      free_entry(&ne);
      return MC_ENOMEM;
    }
    size_t j = 0;
    while (j < t->nentries && strcmp(t->entries[j].location, ne.location))
      j++;
    if (j == t->nentries) {
      mc_topo_entry *g = realloc(t->entries, (t->nentries + 1) * sizeof *g);
      if (!g) {
        free_entry(&ne);
        return MC_ENOMEM;
      }
      t->entries = g;
      t->nentries++;
    } else {
      free_entry(&t->entries[j]);
    }
    t->entries[j] = ne;
  }
  return 0;
}

int mc_topo_from_config(const mc_config_topo *e, size_t n, mc_topology **out) {
  mc_topology *t = mc_topo_new("config");
  if (!t || mc_topo_add_numa(t, 0, "") || mc_topo_apply_config(t, e, n)) {
    mc_topo_free(t);
    return MC_ENOMEM;
  }
  *out = t;
  return 0;
}

int mc_topo_discover(mc_topology **out, char *err, size_t errlen) {
#ifdef MC_HAVE_HWLOC
  if (mc_topo_hwloc_load(0, NULL, out, err, errlen) == 0)
    return 0;
#endif
  if (mc_topo_sysfs_load("/sys", out) == 0)
    return 0;
  mc_topology *t = mc_topo_new("single-node");
  if (!t || mc_topo_add_numa(t, 0, "")) {
    mc_topo_free(t);
    snprintf(err, errlen, "out of memory");
    return MC_ENOMEM;
  }
  *out = t;
  return 0;
}

int mc_topo_load_xml(const char *path, mc_topology **out, char *err,
                     size_t errlen) {
#ifdef MC_HAVE_HWLOC
  return mc_topo_hwloc_load(1, path, out, err, errlen);
#else
  snprintf(err, errlen, "%s: hwloc XML needs a build with hwloc", path);
  (void)out;
  return MC_ENOTSUP;
#endif
}

int mc_topo_load_synthetic(const char *desc, mc_topology **out, char *err,
                           size_t errlen) {
#ifdef MC_HAVE_HWLOC
  return mc_topo_hwloc_load(2, desc, out, err, errlen);
#else
  snprintf(err, errlen, "synthetic topology \"%s\" needs a build with hwloc",
           desc);
  (void)out;
  return MC_ENOTSUP;
#endif
}

/* ---- locations ---- */

typedef struct loc {
  int any;           /* NULL or bare "cpu": no locality */
  int numa;          /* -1 unknown */
  const mc_topo_dev *gpu; /* GPU locations found in the topology */
} loc;

static int parse_location(const mc_topology *t, const char *s, loc *l) {
  *l = (loc){0, -1, NULL};
  if (!s || !strcmp(s, "cpu")) {
    l->any = 1;
    return 0;
  }
  const char *colon = strchr(s, ':');
  if (!colon || colon == s || colon - s > 8 || !colon[1])
    return MC_EINVAL;
  char *end;
  long n = strtol(colon + 1, &end, 10);
  if (*end || n < 0 || n > 65535 || colon[1] == '-' || colon[1] == '+')
    return MC_EINVAL;
  for (const char *p = s; p < colon; p++)
    if (*p < 'a' || *p > 'z')
      return MC_EINVAL;
  if (!strncmp(s, "cpu:", 4)) {
    l->numa = (int)n;
    for (size_t i = 0; i < t->nnuma; i++)
      if (t->numa[i].id == n)
        return 0;
    l->any = 1; /* no such node here */
    return 0;
  }
  for (size_t i = 0; i < t->ndevs; i++) {
    if (t->devs[i].kind == MC_TOPO_GPU && !strcmp(t->devs[i].name, s)) {
      l->gpu = &t->devs[i];
      l->numa = t->devs[i].numa_node;
      return 0;
    }
  }
  l->any = 1;
  return 0;
}

int mc_topo_location_numa(const mc_topology *t, const char *location) {
  loc l;
  if (parse_location(t, location, &l))
    return -1;
  if (l.gpu)
    return l.gpu->numa_node;
  return l.any ? -1 : l.numa;
}

/* Asks where the page is without touching it: get_mempolicy(MPOL_F_NODE |
 * MPOL_F_ADDR) would fault it in, and a page faulted in before the
 * transports advise huge pages pins its whole 2 MiB window to 4 KiB pages.
 * A page not yet there lands where the mapping's policy says (mbind, as
 * numa_alloc_onnode does), else, by default policy, on the node of the
 * thread that first touches it: the registering thread is the best guess. */
int mc_topo_addr_node(const void *addr) {
  int node = -1;
#ifdef SYS_move_pages
  void *page = (void *)((uintptr_t)addr & ~(uintptr_t)4095);
  int status = -1;
  /* nodes NULL: report each page's node (or -ENOENT), move nothing. */
  if (syscall(SYS_move_pages, 0, 1ul, &page, NULL, &status, 0) == 0 &&
      status >= 0)
    return status;
#endif
#ifdef SYS_get_mempolicy
  /* MPOL_F_ADDR alone: the mapping's policy and nodes, no fault. */
  int mode = 0;
  unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
  if (syscall(SYS_get_mempolicy, &mode, mask, (unsigned long)(8 * sizeof mask),
              addr, 2ul) == 0 && mode != 0 /* MPOL_DEFAULT */)
    for (size_t i = 0; i < 8 * sizeof mask; i++)
      if (mask[i / (8 * sizeof mask[0])] >> (i % (8 * sizeof mask[0])) & 1)
        return (int)i; /* bind/preferred/interleave: its first node */
#endif
  (void)addr;
#ifdef SYS_getcpu
  unsigned cpu = 0, n = 0;
  if (syscall(SYS_getcpu, &cpu, &n, NULL) == 0)
    node = (int)n;
#endif
  return node;
}

void mc_topo_locate_addr(const void *addr, char *buf, size_t len) {
  int node = mc_topo_addr_node(addr);
  snprintf(buf, len, "cpu:%d", node < 0 ? 0 : node);
}

/* ---- ranking ---- */

static uint32_t slit(const mc_topology *t, int a, int b) {
  size_t ia = t->nnuma, ib = t->nnuma;
  for (size_t i = 0; i < t->nnuma; i++) {
    if (t->numa[i].id == a)
      ia = i;
    if (t->numa[i].id == b)
      ib = i;
  }
  if (ia == t->nnuma || ib == t->nnuma)
    return a == b ? 10 : 20;
  if (t->distance)
    return t->distance[ia * t->nnuma + ib];
  return ia == ib ? 10 : 20;
}

static const mc_topo_dev *dev_by_bus(const mc_topology *t, uint32_t bus) {
  for (size_t i = 0; bus && i < t->ndevs; i++)
    if (t->devs[i].pci_bus_id == bus)
      return &t->devs[i];
  return NULL;
}

static uint32_t rail_distance(const mc_topology *t, const loc *l,
                              const mc_topo_rail *r) {
  if (l->any)
    return D_LOCAL;
  const mc_topo_dev *rd = dev_by_bus(t, r->pci_bus_id);
  int rnuma = r->numa_node >= 0 ? r->numa_node : rd ? rd->numa_node : -1;
  if (l->gpu && rd && l->gpu->depth && rd->depth &&
      l->gpu->path[0] == rd->path[0]) {
    uint32_t c = 0;
    while (c < l->gpu->depth && c < rd->depth && l->gpu->path[c] == rd->path[c])
      c++;
    return (l->gpu->depth - c) + (rd->depth - c) + 2; /* < D_LOCAL */
  }
  if (l->numa < 0 || rnuma < 0)
    return D_UNKNOWN;
  if (l->numa == rnuma)
    return D_LOCAL;
  return D_LOCAL + 10 * slit(t, l->numa, rnuma);
}

/* Does entry rail text `want` ("rail" or "transport:rail") name r? */
static int names_rail(const char *want, const mc_topo_rail *r) {
  const char *colon = strchr(want, ':');
  if (!colon)
    return !strcmp(want, r->name);
  size_t tl = (size_t)(colon - want);
  return r->transport && strlen(r->transport) == tl &&
         !strncmp(want, r->transport, tl) && !strcmp(colon + 1, r->name);
}

static int entry_names_transport(const mc_topo_entry *e, const mc_topo_rail *rails,
                                 size_t nrails, const char *transport) {
  for (size_t i = 0; i < nrails; i++) {
    if ((rails[i].transport == transport) ||
        (transport && rails[i].transport && !strcmp(rails[i].transport, transport))) {
      for (size_t j = 0; j < e->npreferred; j++)
        if (names_rail(e->preferred[j], &rails[i]))
          return 1;
      for (size_t j = 0; j < e->nfallback; j++)
        if (names_rail(e->fallback[j], &rails[i]))
          return 1;
    }
  }
  return 0;
}

/* Appends rails named by list (in list order) that belong to an overridden
 * transport; each rail at most once. */
static void take_listed(char *const *list, size_t n, const mc_topo_rail *rails,
                        size_t nrails, const uint8_t *overridden, uint8_t *used,
                        uint32_t *out, size_t *nout) {
  for (size_t j = 0; j < n; j++)
    for (size_t i = 0; i < nrails; i++)
      if (overridden[i] && !used[i] && names_rail(list[j], &rails[i])) {
        used[i] = 1;
        out[(*nout)++] = (uint32_t)i;
      }
}

int mc_topo_select(const mc_topology *t, const char *location,
                   const mc_topo_rail *rails, size_t nrails,
                   uint32_t *preferred, size_t *npreferred,
                   uint32_t *fallback, size_t *nfallback) {
  loc l;
  *npreferred = *nfallback = 0;
  if (parse_location(t, location, &l))
    return MC_EINVAL;
  if (nrails == 0)
    return 0;
  uint8_t *overridden = calloc(nrails, 2);
  uint32_t *dist = calloc(nrails, sizeof *dist);
  if (!overridden || !dist) {
    free(overridden);
    free(dist);
    return MC_ENOMEM;
  }
  uint8_t *used = overridden + nrails;
  const mc_topo_entry *e = NULL;
  for (size_t i = 0; location && i < t->nentries; i++)
    if (!strcmp(t->entries[i].location, location))
      e = &t->entries[i];
  if (e) {
    for (size_t i = 0; i < nrails; i++)
      overridden[i] = (uint8_t)entry_names_transport(e, rails, nrails,
                                                     rails[i].transport);
    take_listed(e->preferred, e->npreferred, rails, nrails, overridden, used,
                preferred, npreferred);
    take_listed(e->fallback, e->nfallback, rails, nrails, overridden, used,
                fallback, nfallback);
  }
  uint32_t best = UINT32_MAX;
  for (size_t i = 0; i < nrails; i++) {
    if (overridden[i])
      continue;
    dist[i] = rail_distance(t, &l, &rails[i]);
    if (dist[i] < best)
      best = dist[i];
  }
  size_t fstart = *nfallback;
  for (size_t i = 0; i < nrails; i++) {
    if (overridden[i])
      continue;
    if (dist[i] == best)
      preferred[(*npreferred)++] = (uint32_t)i;
    else
      fallback[(*nfallback)++] = (uint32_t)i;
  }
  /* Computed fallbacks by increasing distance, index order on ties. */
  for (size_t a = fstart + 1; a < *nfallback; a++) {
    uint32_t v = fallback[a];
    size_t b = a;
    while (b > fstart && dist[fallback[b - 1]] > dist[v]) {
      fallback[b] = fallback[b - 1];
      b--;
    }
    fallback[b] = v;
  }
  free(overridden);
  free(dist);
  return 0;
}

/* ---- printing ---- */

static void print_rail(FILE *f, const mc_topo_rail *r) {
  if (r->transport)
    fprintf(f, "\"%s:%s\"", r->transport, r->name);
  else
    fprintf(f, "\"%s\"", r->name);
}

static void print_list(FILE *f, const mc_topo_rail *rails, const uint32_t *idx,
                       size_t n) {
  fputc('[', f);
  for (size_t i = 0; i < n; i++) {
    if (i)
      fputs(", ", f);
    print_rail(f, &rails[idx[i]]);
  }
  fputc(']', f);
}

static void print_names(FILE *f, char *const *names, size_t n) {
  fputc('[', f);
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%s\"%s\"", i ? ", " : "", names[i]);
  fputc(']', f);
}

static int has_entry(const mc_topology *t, const char *location) {
  for (size_t i = 0; i < t->nentries; i++)
    if (!strcmp(t->entries[i].location, location))
      return 1;
  return 0;
}

static int print_location(const mc_topology *t, const char *location,
                          const mc_topo_rail *rails, size_t nrails, FILE *f) {
  uint32_t *p = calloc(nrails ? nrails * 2 : 1, sizeof *p);
  if (!p)
    return MC_ENOMEM;
  size_t np, nf;
  int rc = mc_topo_select(t, location, rails, nrails, p, &np, p + nrails, &nf);
  if (!rc) {
    fprintf(f, "  \"%s\": {preferred: ", location);
    print_list(f, rails, p, np);
    fputs(", fallback: ", f);
    print_list(f, rails, p + nrails, nf);
    fputs("}\n", f);
  }
  free(p);
  return rc;
}

static void print_bus(FILE *f, uint32_t b) {
  fprintf(f, "%04x:%02x:%02x.%x", b >> 16, (b >> 8) & 0xff, (b >> 3) & 0x1f,
          b & 7);
}

int mc_topo_print_yaml(const mc_topology *t, const mc_topo_rail *rails,
                       size_t nrails, FILE *f) {
  mc_topo_rail *own = NULL;
  if (!rails) {
    own = calloc(t->ndevs ? t->ndevs : 1, sizeof *own);
    if (!own)
      return MC_ENOMEM;
    nrails = 0;
    for (size_t i = 0; i < t->ndevs; i++)
      if (t->devs[i].kind == MC_TOPO_NIC)
        own[nrails++] = (mc_topo_rail){NULL, t->devs[i].name,
                                       t->devs[i].numa_node,
                                       t->devs[i].pci_bus_id};
    rails = own;
  }
  fprintf(f, "# mooncake topology (source: %s)\n", t->source);
  for (size_t i = 0; i < t->nnuma; i++) {
    fprintf(f, "# numa %d: cpus %s; distances [", t->numa[i].id,
            t->numa[i].cpus[0] ? t->numa[i].cpus : "?");
    for (size_t j = 0; j < t->nnuma; j++)
      fprintf(f, "%s%u", j ? ", " : "", slit(t, t->numa[i].id, t->numa[j].id));
    fputs("]\n", f);
  }
  for (size_t i = 0; i < t->ndevs; i++) {
    const mc_topo_dev *d = &t->devs[i];
    fprintf(f, "# %s %s: pci ", d->kind == MC_TOPO_GPU ? "gpu" : "nic", d->name);
    print_bus(f, d->pci_bus_id);
    fprintf(f, ", numa %d\n", d->numa_node);
  }
  if (nrails == 0)
    fputs("# no NIC found: every location lists no rails\n", f);
  fputs("topology:\n", f);
  int rc = 0;
  char name[32];
  for (size_t i = 0; !rc && i < t->nnuma; i++) {
    snprintf(name, sizeof name, "cpu:%d", t->numa[i].id);
    if (!has_entry(t, name))
      rc = print_location(t, name, rails, nrails, f);
  }
  for (size_t i = 0; !rc && i < t->ndevs; i++)
    if (t->devs[i].kind == MC_TOPO_GPU && !has_entry(t, t->devs[i].name))
      rc = print_location(t, t->devs[i].name, rails, nrails, f);
  for (size_t i = 0; !rc && i < t->nentries; i++) {
    const mc_topo_entry *e = &t->entries[i];
    fprintf(f, "  \"%s\": {preferred: ", e->location);
    print_names(f, e->preferred, e->npreferred);
    fputs(", fallback: ", f);
    print_names(f, e->fallback, e->nfallback);
    fputs("}\n", f);
  }
  free(own);
  return rc;
}
