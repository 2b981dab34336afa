/* A test transport for the engine's slicing, retry and failover logic: it
 * moves bytes with memcpy between engines of the same process and fails
 * slices on demand.  Params: rails (count), fail_rails (bitmask of rails
 * whose slices fail with MC_EPEER), fail_all (every slice fails),
 * slow_reg_len and slow_reg_ms (register_mem and deregister_mem of a
 * buffer of exactly slow_reg_len bytes sleep slow_reg_ms, as pinning and
 * unpinning a large region on a NIC do; reg_sleeping is 1 meanwhile,
 * reg_slow and dereg_slow count them).  Counters
 * are exported (flaky_stats_<name>) for the test to read. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mooncake/transport.h"

#ifndef FLAKY_NAME
#define FLAKY_NAME "flaky"
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

typedef struct flaky_stats {
  _Atomic uint64_t slices, failed, bytes, max_len, min_len, notifies;
  _Atomic uint64_t per_rail[8];
  _Atomic uint64_t reg_sleeping, reg_slow, dereg_slow;
} flaky_stats;

__attribute__((visibility("default"))) flaky_stats CAT(flaky_stats_, FLAKY_ID);

typedef struct ctx {
  const mc_host_api *host;
  uint32_t rails, fail_rails;
  int fail_all;
  uint64_t id;
  uint64_t slow_reg_len, slow_reg_ms;
} ctx;

typedef struct mem {
  uint64_t base, len;
  uint64_t slow_ms; /* deregister_mem sleeps this long */
} mem;

static const mc_param_info params[] = {
    {MC_PARAM_INT, "rails", "2", "number of rails", 1, 200},
    {MC_PARAM_INT, "fail_rails", "0", "bitmask of failing rails"},
    {MC_PARAM_BOOL, "fail_all", "false", "fail every slice"},
    {MC_PARAM_INT, "slow_reg_len", "0", "register_mem of this length sleeps"},
    {MC_PARAM_INT, "slow_reg_ms", "1500", "how long it sleeps"},
    {MC_PARAM_END, NULL, NULL, NULL}};

static long param(const mc_host_api *h, const char *k, long def) {
  const char *v;
  if (h->config_get(h->host, k, &v))
    return def;
  if (!strcmp(v, "true"))
    return 1;
  if (!strcmp(v, "false"))
    return 0;
  return strtol(v, NULL, 0);
}

static int f_init(const mc_host_api *h, const mc_init_args *a, void **out) {
  ctx *c = calloc(1, sizeof *c);
  if (!c)
    return MC_ENOMEM;
  c->host = h;
  c->rails = (uint32_t)param(h, "rails", 2);
  if (c->rails < 1 || c->rails > 200)
    c->rails = 2;
  c->fail_rails = (uint32_t)param(h, "fail_rails", 0);
  c->fail_all = (int)param(h, "fail_all", 0);
  c->slow_reg_len = (uint64_t)param(h, "slow_reg_len", 0);
  c->slow_reg_ms = (uint64_t)param(h, "slow_reg_ms", 1500);
  c->id = (uint64_t)(uintptr_t)c;
  *out = c;
  return 0;
}
static int f_fini(void *c) {
  free(c);
  return 0;
}
static int f_rails(void *vc, mc_rail_info *out, uint32_t *n) {
  ctx *c = vc;
  if (*n < c->rails) {
    *n = c->rails;
    return MC_ENOSPC;
  }
  for (uint32_t i = 0; i < c->rails; i++) {
    memset(&out[i], 0, sizeof out[i]);
    snprintf(out[i].name, sizeof out[i].name, "r%u", i);
    out[i].numa_node = -1;
  }
  *n = c->rails;
  return 0;
}
static int f_desc(void *vc, void *buf, size_t *len) {
  ctx *c = vc;
  uint64_t d[2] = {(uint64_t)getpid(), c->id};
  if (*len < sizeof d) {
    *len = sizeof d;
    return MC_ENOSPC;
  }
  memcpy(buf, d, sizeof d);
  *len = sizeof d;
  return 0;
}
static int f_reg(void *vc, const mc_mem_desc *d, void **m, void *rkey, size_t *rl) {
  ctx *c = vc;
  if (c->slow_reg_len && d->len == c->slow_reg_len) {
    flaky_stats *st = &CAT(flaky_stats_, FLAKY_ID);
    atomic_store(&st->reg_sleeping, 1);
    usleep((useconds_t)(c->slow_reg_ms * 1000));
    atomic_fetch_add(&st->reg_slow, 1);
    atomic_store(&st->reg_sleeping, 0);
  }
  mem *x = calloc(1, sizeof *x);
  if (!x)
    return MC_ENOMEM;
  x->base = d->addr;
  x->len = d->len;
  if (c->slow_reg_len && d->len == c->slow_reg_len)
    x->slow_ms = c->slow_reg_ms;
  if (*rl < sizeof *x) {
    free(x);
    return MC_ENOSPC;
  }
  memcpy(rkey, x, sizeof *x);
  *rl = sizeof *x;
  *m = x;
  return 0;
}
static int f_dereg(void *vc, void *m) {
  mem *x = m;
  if (x->slow_ms) {
    flaky_stats *st = &CAT(flaky_stats_, FLAKY_ID);
    atomic_store(&st->reg_sleeping, 1);
    usleep((useconds_t)(x->slow_ms * 1000));
    atomic_fetch_add(&st->dereg_slow, 1);
    atomic_store(&st->reg_sleeping, 0);
  }
  free(m);
  return 0;
}
static int f_connect(void *vc, const char *peer, const void *d, size_t len, void **ep) {
  uint64_t v[2];
  if (len != sizeof v)
    return MC_EPROTO;
  memcpy(v, d, sizeof v);
  if (v[0] != (uint64_t)getpid())
    return MC_EPEER;
  *ep = (void *)1;
  return 0;
}
static int f_disconnect(void *vc, void *ep) { return 0; }
static int f_import(void *vc, void *ep, uint64_t base, uint64_t len, const void *rk,
                    size_t rl, void **rm) {
  if (rl != sizeof(mem))
    return MC_EPROTO;
  mem *x = malloc(sizeof *x);
  if (!x)
    return MC_ENOMEM;
  memcpy(x, rk, sizeof *x);
  if (x->base != base || x->len != len) {
    free(x);
    return MC_EPROTO;
  }
  *rm = x;
  return 0;
}
static int f_release(void *vc, void *rm) {
  free(rm);
  return 0;
}
static int f_submit(void *vc, void *ep, const mc_slice *s, uint32_t n, uint32_t *acc) {
  ctx *c = vc;
  flaky_stats *st = &CAT(flaky_stats_, FLAKY_ID);
  for (uint32_t i = 0; i < n; i++) {
    const mem *rm = s[i].remote_mem;
    atomic_fetch_add(&st->slices, 1);
    atomic_fetch_add(&st->per_rail[s[i].rail % 8], 1);
    if (s[i].len > atomic_load(&st->max_len))
      atomic_store(&st->max_len, s[i].len);
    uint64_t mn = atomic_load(&st->min_len);
    if (mn == 0 || s[i].len < mn)
      atomic_store(&st->min_len, s[i].len);
    int fail = c->fail_all || (c->fail_rails >> (s[i].rail % 32)) & 1u;
    if (s[i].remote_addr < rm->base || s[i].remote_addr + s[i].len > rm->base + rm->len) {
      c->host->complete(c->host->host, s[i].token, MC_ERANGE, 0, 0);
      continue;
    }
    if (fail) {
      atomic_fetch_add(&st->failed, 1);
      c->host->complete(c->host->host, s[i].token, MC_EPEER, 0, 42);
      continue;
    }
    void *l = (void *)(uintptr_t)s[i].local_addr;
    void *r = (void *)(uintptr_t)s[i].remote_addr;
    if (s[i].op == MC_OP_READ)
      memcpy(l, r, s[i].len);
    else
      memcpy(r, l, s[i].len);
    atomic_fetch_add(&st->bytes, s[i].len);
    c->host->complete(c->host->host, s[i].token, 0, s[i].len, 0);
  }
  *acc = n;
  return 0;
}
static int f_notify(void *vc, void *ep, const void *msg, size_t len) {
  /* Delivered to ourselves: both engines live in this process and the
   * test polls the target engine, which this test plugin cannot reach;
   * count only. */
  atomic_fetch_add(&CAT(flaky_stats_, FLAKY_ID).notifies, 1);
  return 0;
}

static const mc_transport_ops ops = {
    .abi_major = MC_TRANSPORT_ABI_MAJOR,
    .abi_minor = MC_TRANSPORT_ABI_MINOR,
    .struct_size = sizeof(mc_transport_ops),
    .name = FLAKY_NAME,
    .version = "test",
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTRA_NODE | MC_CAP_INTER_NODE |
            MC_CAP_OWN_THREADS | MC_CAP_MT_SUBMIT | MC_CAP_NOTIFY,
    .local_mem_kinds = MC_MEM_CPU,
    .remote_mem_kinds = MC_MEM_CPU,
    .params = params,
    .param_info_size = sizeof(mc_param_info), /* 1.1: the params stride */
    .init = f_init,
    .fini = f_fini,
    .query_rails = f_rails,
    .local_desc = f_desc,
    .register_mem = f_reg,
    .deregister_mem = f_dereg,
    .connect = f_connect,
    .disconnect = f_disconnect,
    .import_mem = f_import,
    .release_mem = f_release,
    .submit = f_submit,
    .send_notify = f_notify,
};

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void) { return &ops; }
