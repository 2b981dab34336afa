/* A test transport for the core's handling of plugin params: it reads its
 * keys with the typed getters of mc_host_api (ABI 1.1) in init and records
 * what it got for the test to read (pt_seen_<id>), and fails init with
 * MC_ENODEV when fail_init is set, as a plugin without its device would.
 *
 * Built twice (tests/config/meson.build):
 *   ptyped  a 1.1 table: entries with min/max, param_info_size set;
 *   pv10    a 1.0 table: struct_size and entries of ABI 1.0 (no min/max,
 *           no param_info_size), so the core must read the params array
 *           with the 1.0 stride.
 * It moves no bytes: submit fails every slice with MC_ENOTSUP. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/transport.h"

#ifndef PT_NAME
#define PT_NAME "ptyped"
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

/* What init saw; the layout is repeated in test_config_engine.c. */
typedef struct pt_seen {
  int inits;
  int has_typed; /* MC_HOST_HAS for the three getters */
  int rc_count, rc_chunk, rc_verbose, rc_nodefault;
  int rc_label_as_int, rc_nosuch, rc_chunk_as_int, rc_count_as_bool;
  int64_t count, nodefault;
  uint64_t chunk;
  int verbose;
} pt_seen;

__attribute__((visibility("default"))) pt_seen CAT(pt_seen_, PT_ID);
#define SEEN CAT(pt_seen_, PT_ID)

#ifdef PT_V10
/* mc_param_info as ABI 1.0 declared it: no min and max. */
typedef struct param_v10 {
  uint32_t type;
  const char *name, *default_text, *help;
} param_v10;
static const param_v10 params[] = {
    {MC_PARAM_INT, "count", "4", "an int (1.0: no range)"},
    {MC_PARAM_SIZE, "chunk", "64K", "a size"},
    {MC_PARAM_BOOL, "verbose", "false", "a bool"},
    {MC_PARAM_STRING, "label", "x", "a string"},
    {MC_PARAM_INT, "nodefault", NULL, "an int without a default"},
    {MC_PARAM_BOOL, "fail_init", "false", "init fails with MC_ENODEV"},
    {MC_PARAM_END, NULL, NULL, NULL},
};
#else
static const mc_param_info params[] = {
    {MC_PARAM_INT, "count", "4", "an int", 1, 16},
    {MC_PARAM_SIZE, "chunk", "64K", "a size", 4096, 1 << 20},
    {MC_PARAM_BOOL, "verbose", "false", "a bool", 0, 0},
    {MC_PARAM_STRING, "label", "x", "a string", 0, 0},
    {MC_PARAM_INT, "nodefault", NULL, "an int without a default", 0, 0},
    {MC_PARAM_BOOL, "fail_init", "false", "init fails with MC_ENODEV", 0, 0},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};
#endif

typedef struct ctx {
  const mc_host_api *host;
} ctx;

static int p_init(const mc_host_api *h, const mc_init_args *a, void **out) {
  (void)a;
  pt_seen *s = &SEEN;
  memset(s, 0, sizeof *s);
  s->inits = 1;
  s->has_typed = MC_HOST_HAS(h, config_get_size) &&
                 MC_HOST_HAS(h, config_get_int) &&
                 MC_HOST_HAS(h, config_get_bool);
  if (!s->has_typed)
    return MC_EABI;
  int64_t i64;
  int b = 0;
  s->rc_count = h->config_get_int(h->host, "count", &s->count);
  s->rc_chunk = h->config_get_size(h->host, "chunk", &s->chunk);
  s->rc_verbose = h->config_get_bool(h->host, "verbose", &s->verbose);
  s->rc_nodefault = h->config_get_int(h->host, "nodefault", &s->nodefault);
  s->rc_label_as_int = h->config_get_int(h->host, "label", &i64);
  s->rc_nosuch = h->config_get_int(h->host, "nosuch", &i64);
  s->rc_chunk_as_int = h->config_get_int(h->host, "chunk", &i64);
  s->rc_count_as_bool = h->config_get_bool(h->host, "count", &b);
  int fail = 0;
  if (h->config_get_bool(h->host, "fail_init", &fail) == 0 && fail) {
    h->log(h->host, MC_LOG_ERROR, "no test device (fail_init is set)");
    return MC_ENODEV;
  }
  ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = h;
  *out = c;
  return 0;
}

static int p_fini(void *c) {
  free(c);
  return 0;
}

static int p_rails(void *c, mc_rail_info *out, uint32_t *n) {
  (void)c;
  uint32_t cap = *n;
  *n = 1;
  if (cap < 1)
    return MC_ENOSPC;
  memset(out, 0, sizeof *out);
  strcpy(out->name, "r0");
  out->numa_node = -1;
  return 0;
}

static int p_desc(void *c, void *buf, size_t *len) {
  (void)c;
  if (*len < 2) {
    *len = 2;
    return MC_ENOSPC;
  }
  memcpy(buf, "pt", 2);
  *len = 2;
  return 0;
}

static int p_reg(void *c, const mc_mem_desc *d, void **mem, void *rkey,
                 size_t *rkey_len) {
  (void)c;
  (void)d;
  if (*rkey_len < 1) {
    *rkey_len = 1;
    return MC_ENOSPC;
  }
  *(uint8_t *)rkey = 'k';
  *rkey_len = 1;
  *mem = (void *)(uintptr_t)1;
  return 0;
}

static int p_dereg(void *c, void *mem) {
  (void)c;
  (void)mem;
  return 0;
}

static int p_connect(void *c, const char *peer, const void *desc, size_t len,
                     void **ep) {
  (void)c;
  (void)peer;
  (void)desc;
  (void)len;
  *ep = (void *)(uintptr_t)1;
  return 0;
}

static int p_disconnect(void *c, void *ep) {
  (void)c;
  (void)ep;
  return 0;
}

static int p_import(void *c, void *ep, uint64_t base, uint64_t len,
                    const void *rkey, size_t rkey_len, void **rmem) {
  (void)c;
  (void)ep;
  (void)base;
  (void)len;
  (void)rkey;
  (void)rkey_len;
  *rmem = (void *)(uintptr_t)1;
  return 0;
}

static int p_release(void *c, void *rmem) {
  (void)c;
  (void)rmem;
  return 0;
}

static int p_submit(void *vc, void *ep, const mc_slice *s, uint32_t n,
                    uint32_t *accepted) {
  ctx *c = vc;
  (void)ep;
  for (uint32_t i = 0; i < n; i++)
    c->host->complete(c->host->host, s[i].token, MC_ENOTSUP, 0, 0);
  *accepted = n;
  return 0;
}

static const mc_transport_ops ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
#ifdef PT_V10
    /* A 1.0 table ends before param_info_size. */
    .abi_minor = 0,
    .struct_size = offsetof(mc_transport_ops, param_info_size),
#else
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .param_info_size = sizeof(mc_param_info),
#endif
    .name = PT_NAME,
    .version = "0.0.1",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE |
            MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_CPU,
    .params = (const mc_param_info *)(const void *)params,
    .init = p_init,
    .fini = p_fini,
    .query_rails = p_rails,
    .local_desc = p_desc,
    .register_mem = p_reg,
    .deregister_mem = p_dereg,
    .connect = p_connect,
    .disconnect = p_disconnect,
    .import_mem = p_import,
    .release_mem = p_release,
    .submit = p_submit,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) {
  return &ops;
}
