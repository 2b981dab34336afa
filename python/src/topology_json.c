/* get_local_topology(): upstream's topology text built from what the
 * engine's loaded transports report as rails (mc_engine_rails). */
#include "mcpy.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RAILS 256

typedef struct rail {
  char name[MC_RAIL_NAME_MAX + 70]; /* "<transport>:<rail>" */
  int numa;
} rail;

/* NUMA nodes of this host from sysfs; node 0 alone when unknown. */
static int numa_nodes(int *out, int max) {
  int n = 0;
  DIR *d = opendir("/sys/devices/system/node");
  struct dirent *e;
  while (d && (e = readdir(d)) && n < max) {
    int id;
    char tail;
    if (sscanf(e->d_name, "node%d%c", &id, &tail) == 1)
      out[n++] = id;
  }
  if (d)
    closedir(d);
  if (n == 0)
    out[n++] = 0;
  for (int i = 1; i < n; i++) /* sort: readdir order is arbitrary */
    for (int j = i; j > 0 && out[j] < out[j - 1]; j--) {
      int t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
  return n;
}

/* Whether name passes the comma-separated filter (NULL/"" keeps all). */
static int wanted(const char *filter, const char *transport, const char *rname) {
  if (!filter || !*filter)
    return 1;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", filter);
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
    if (strcmp(t, rname) == 0 || strcmp(t, transport) == 0)
      return 1;
  return 0;
}

static int collect(mc_engine *eng, const char *filter, rail *out, int max) {
  uint32_t np = 0;
  mc_engine_plugins(eng, NULL, &np);
  mc_plugin_info *pi = calloc(np ? np : 1, sizeof *pi);
  if (!pi)
    return 0;
  int n = 0;
  if (mc_engine_plugins(eng, pi, &np) == 0) {
    for (uint32_t i = 0; i < np; i++) {
      if (pi[i].state != MC_PLUGIN_LOADED)
        continue;
      mc_rail_info ri[64];
      uint32_t nr = 64;
      if (mc_engine_rails(eng, pi[i].name, ri, &nr) != 0 && nr > 64)
        nr = 64;
      for (uint32_t j = 0; j < nr && j < 64 && n < max; j++) {
        if (!wanted(filter, pi[i].name, ri[j].name))
          continue;
        snprintf(out[n].name, sizeof out[n].name, "%.63s:%.63s", pi[i].name, ri[j].name);
        out[n].numa = ri[j].numa_node;
        n++;
      }
    }
  }
  free(pi);
  return n;
}

static void put_list(char **p, size_t *left, const rail *r, int n, int node, int pref) {
  int first = 1;
  int w = snprintf(*p, *left, "[");
  *p += w, *left -= (size_t)w;
  for (int i = 0; i < n; i++) {
    int near = r[i].numa == node || r[i].numa < 0;
    if (near != pref)
      continue;
    w = snprintf(*p, *left, "%s\"%s\"", first ? "" : ", ", r[i].name);
    if ((size_t)w >= *left)
      return;
    *p += w, *left -= (size_t)w;
    first = 0;
  }
  w = snprintf(*p, *left, "]");
  if ((size_t)w < *left)
    *p += w, *left -= (size_t)w;
}

char *mcpy_topology_json(mc_engine *eng, const char *filter) {
  mc_engine *tmp = NULL;
  if (!eng) {
    /* As upstream: a temporary engine on this host with every transport
     * found, on a free loopback port, gone when done. */
    mc_engine_opts o = {.struct_size = sizeof o, .listen = "127.0.0.1:0",
                        .metadata = "p2p", .transports = "auto"};
    if (mc_engine_create(&o, &tmp) == 0)
      eng = tmp;
  }
  rail *r = calloc(MAX_RAILS, sizeof *r);
  int nodes[64];
  int nn = numa_nodes(nodes, 64);
  size_t cap = 64 + (size_t)nn * (64 + MAX_RAILS * sizeof r->name);
  char *out = malloc(cap);
  if (!r || !out) {
    free(r);
    free(out);
    mc_engine_destroy(tmp);
    return NULL;
  }
  int n = eng ? collect(eng, filter, r, MAX_RAILS) : 0;
  char *p = out;
  size_t left = cap;
  int w = snprintf(p, left, "{");
  p += w, left -= (size_t)w;
  for (int i = 0; n > 0 && i < nn; i++) {
    w = snprintf(p, left, "%s\"cpu:%d\": [", i ? ", " : "", nodes[i]);
    p += w, left -= (size_t)w;
    put_list(&p, &left, r, n, nodes[i], 1);
    w = snprintf(p, left, ", ");
    p += w, left -= (size_t)w;
    put_list(&p, &left, r, n, nodes[i], 0);
    w = snprintf(p, left, "]");
    p += w, left -= (size_t)w;
  }
  snprintf(p, left, "}");
  free(r);
  mc_engine_destroy(tmp);
  return out;
}
