/* Engine life cycle: configuration, transports, metadata, publication; the
 * top of the core's modules (below it: the host services, the request
 * pipeline, registry and segments, rails, the transports, the job queue and
 * the notification queue), and the engine.h calls that name an engine. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ctrl.h"
#include "engine_md.h"
#include "hostapi.h"
#include "jobs.h"
#include "listener.h"
#include "loader.h"
#include "log.h"
#include "metadata.h"
#include "net.h"
#include "notify.h"
#include "pipeline.h"
#include "rails.h"
#include "registry.h"
#include "segment.h"
#include "token.h"
#include "topology.h"
#include "transports.h"

#define COMP "engine"

struct mc_engine {
  mc_logger log;
  mc_config *cfg;
  char name[MC_NAME_MAX];
  char host_id[128];
  char listen_host[256];
  mc_loader *loader;
  mc_listener *lis;      /* the handshake listener (every backend) */
  mc_ctrl_client ctrl;   /* the control channel's client side */
  mc_metadata *md;
  char cluster_token[MC_TOKEN_MAX + 1]; /* "" = none (token.h) */
  mc_tset set;           /* the transports, sorted by preference */
  mc_topology *topo;
  mc_registry *reg;      /* local buffers */
  pthread_mutex_t publish_lock;
  uint64_t version;
  mc_segments *segs;     /* remote segments opened here */
  mc_jobq *jobs;         /* the worker */
  mc_pipeline *pipe;     /* batches, slices, retries */
  mc_notify_queue *notes;
};


const char *mc_version(void) { return MC_VERSION; }

mc_metadata *mc_engine_metadata(mc_engine *e) { return e ? e->md : NULL; }
const char *mc_engine_metadata_url(mc_engine *e) {
  return e && e->cfg->metadata ? e->cfg->metadata : "p2p";
}

/* Host identity for same-host checks: boot id plus the network namespace,
 * so engines in different containers/netns never look co-located. */
static void compute_host_id(char *out, size_t len) {
  char boot[64] = "unknown";
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (f) {
    if (fgets(boot, sizeof boot, f))
      boot[strcspn(boot, "\n")] = '\0';
    fclose(f);
  }
  struct stat st;
  unsigned long long netns = 0;
  if (stat("/proc/self/ns/net", &st) == 0)
    netns = (unsigned long long)st.st_ino;
  snprintf(out, len, "%s/net:%llu", boot, netns);
}

/* Default preference when the config has no transport_order: intra-host
 * first, then RDMA-class fabrics, then storage, tcp last. */
static const char *const default_order[] = {"shm",  "nvlink", "hip", "ascend",
                                            "rdma", "efa",    "nvmeof", NULL};

static int transport_rank(const mc_config *cfg, const char *name) {
  if (cfg->ntransport_order) {
    for (size_t i = 0; i < cfg->ntransport_order; i++)
      if (strcmp(cfg->transport_order[i], name) == 0)
        return (int)i;
    return 1000;
  }
  if (strcmp(name, "tcp") == 0)
    return 900;
  for (int i = 0; default_order[i]; i++)
    if (strcmp(default_order[i], name) == 0)
      return i;
  return 500; /* out-of-tree transports: between fabrics and tcp */
}

static void transport_free(mc_transport *t) {
  if (!t)
    return;
  pthread_mutex_destroy(&t->ctl_lock);
  pthread_mutex_destroy(&t->submit_lock);
  free(t->rails);
  free((void *)t->rail_down_until);
  free((void *)t->rail_inflight);
  free(t);
}

/* Whether transport `name` may be skipped when it cannot start: under
 * `transports: auto`, or when the config marks it `optional`. */
static int transport_optional(const mc_config *cfg, const char *name) {
  const mc_config_transport *ct = mc_config_find_transport(cfg, name);
  return cfg->transports_auto || (ct && ct->optional);
}

/* More rails than any host has: a plugin reporting more is broken. */
#define MC_MAX_RAILS 4096

/* init, query_rails and local_desc of a new transport; *step names the
 * call that failed. */
static int transport_start(mc_engine *e, mc_transport *t, const char **step) {
  mc_init_args args = {.struct_size = sizeof args,
                       .segment_name = e->name,
                       .listen_host = e->listen_host,
                       .host_id = e->host_id};
  *step = "init";
  int rc = t->ops->init(&t->host, &args, &t->ctx);
  if (rc)
    return rc;
  /* Most transports have a few rails; one with more says how many it has
   * (MC_ENOSPC with *n set) and is asked again with room for all. */
  uint32_t n = 64;
  *step = "query_rails";
  t->rails = calloc(n, sizeof *t->rails);
  rc = t->rails ? t->ops->query_rails(t->ctx, t->rails, &n) : MC_ENOMEM;
  if (rc == MC_ENOSPC && n > 64 && n <= MC_MAX_RAILS) {
    mc_rail_info *more = realloc(t->rails, n * sizeof *more);
    if (more) {
      t->rails = more;
      memset(more, 0, n * sizeof *more);
      rc = t->ops->query_rails(t->ctx, t->rails, &n);
    } else {
      rc = MC_ENOMEM;
    }
  }
  if (rc == 0 && n == 0)
    rc = MC_EINVAL; /* the contract says at least one rail */
  t->nrails = n;
  if (rc == 0) {
    *step = "local_desc";
    t->rail_down_until = calloc(n, sizeof *t->rail_down_until);
    t->rail_inflight = calloc(n, sizeof *t->rail_inflight);
    t->desc_len = sizeof t->desc;
    rc = t->rail_down_until && t->rail_inflight
             ? t->ops->local_desc(t->ctx, t->desc, &t->desc_len)
             : MC_ENOMEM;
  }
  if (rc)
    t->ops->fini(t->ctx);
  return rc;
}

/* Records why transport `name` could not start and says so in err: how to
 * start without it unless it may be skipped. */
static void transport_refused(mc_engine *e, const char *name, const char *path,
                              const char *step, int rc, int optional, char *err,
                              size_t errlen, int *skip) {
  char reason[512];
  snprintf(reason, sizeof reason, "%s failed: %s", step, mc_strerror(rc));
  mc_loader_mark_refused(e->loader, name, reason);
  *skip = optional && rc != MC_ENOMEM;
  if (*skip) {
    mc_seterr(err, errlen, "transport '%s' (%s): %s", name, path, reason);
    return;
  }
  char up[64]; /* names are [a-z0-9_], the variable's part upper case */
  size_t i = 0;
  for (; name[i] && i + 1 < sizeof up; i++)
    up[i] = (char)toupper((unsigned char)name[i]);
  up[i] = '\0';
  mc_seterr(err, errlen,
            "transport '%s' (%s): %s (set transports.%s.optional: true "
            "or MC_TRANSPORT_%s_OPTIONAL=1 to start without it)",
            name, path, reason, name, up);
}

/* Loads, validates and initializes one transport.  Returns 0, or MC_E*
 * with err set; *skip tells whether the engine may go on without it: the
 * transport could not start (plugin missing or refused, init or setup
 * failed) and the config marked it optional.  A configured value the
 * plugin's params refuse is never skipped: the configuration is wrong. */
static int transport_open(mc_engine *e, const char *name, char *err,
                          size_t errlen, int *skip) {
  int optional = transport_optional(e->cfg, name);
  *skip = 0;
  if (e->set.n >= MC_MAX_TRANSPORTS) {
    mc_seterr(err, errlen, "too many transports (max %d)", MC_MAX_TRANSPORTS);
    return MC_EINVAL;
  }
  mc_plugin *p = NULL;
  int rc = mc_loader_load(e->loader, name, &p, err, errlen);
  if (rc) {
    *skip = optional && rc != MC_ENOMEM;
    return rc;
  }
  /* Every configured key is known to the plugin, well typed and in range
   * before init, so init never sees a bad value (and the typed getters
   * never fail on one); the table itself is checked first. */
  rc = mc_config_check_plugin(e->cfg, name, p->path, &p->ops, err, errlen);
  if (rc) {
    if (rc == MC_EABI) {
      /* A defect of the plugin, not of the config: refused like a bad
       * table would be by the loader. */
      mc_loader_mark_refused(e->loader, name, err);
      *skip = optional;
    }
    mc_loader_unload(p);
    return rc;
  }
  const mc_config_transport *ct = mc_config_find_transport(e->cfg, name);
  mc_transport *t = calloc(1, sizeof *t);
  if (!t) {
    mc_loader_unload(p);
    return MC_ENOMEM;
  }
  t->set = &e->set;
  t->plugin = p;
  t->ops = &p->ops;
  t->cfg = ct;
  t->index = e->set.n;
  t->rank = transport_rank(e->cfg, name);
  t->slice_size = !e->cfg->slice_size_set && p->ops.slice_size ? p->ops.slice_size
                                                              : e->cfg->slice_size;
  pthread_mutex_init(&t->ctl_lock, NULL);
  pthread_mutex_init(&t->submit_lock, NULL);
  mc_hostapi_fill(t, e->notes);
  const char *step = "init";
  rc = transport_start(e, t, &step);
  if (rc) {
    transport_refused(e, name, p->path, step, rc, optional, err, errlen, skip);
    mc_loader_unload(p);
    transport_free(t);
    return rc;
  }
  mc_loader_mark_loaded(e->loader, name, t->nrails);
  e->set.t[e->set.n++] = t;
  MC_INFO(&e->log, COMP, "transport %s %s ready: %u rail(s), %s", name,
          p->ops.version, t->nrails, p->path);
  return 0;
}

static void transport_close(mc_transport *t) {
  if (!t->stopped)
    t->ops->fini(t->ctx);
  mc_loader_unload(t->plugin);
  transport_free(t);
}

/* Publishes the segment descriptor (the registry's publish callback). */
static int engine_publish(void *arg) {
  mc_engine *e = arg;
  pthread_mutex_lock(&e->publish_lock);
  mc_seg_desc d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "%s", e->name);
  snprintf(d.host_id, sizeof d.host_id, "%s", e->host_id);
  snprintf(d.listen, sizeof d.listen, "%s", mc_listener_address(e->lis));
  d.version = ++e->version;
  mc_desc_transport tr[MC_MAX_TRANSPORTS];
  for (int i = 0; i < e->set.n; i++) {
    snprintf(tr[i].name, sizeof tr[i].name, "%s", e->set.t[i]->plugin->name);
    tr[i].len = (uint32_t)e->set.t[i]->desc_len;
    tr[i].blob = e->set.t[i]->desc;
  }
  d.ntransports = (uint32_t)e->set.n;
  d.transports = tr;
  int rc = mc_registry_fill_desc(e->reg, &d);
  char *json = NULL;
  size_t len = 0;
  if (!rc)
    rc = mc_desc_encode(&d, &json, &len);
  if (!rc)
    rc = mc_metadata_publish(e->md, e->name, json, len);
  if (rc)
    MC_ERROR(&e->log, COMP, "publishing segment %s failed: %s", e->name,
             mc_strerror(rc));
  free(json);
  for (uint32_t i = 0; i < d.nbuffers; i++)
    free(d.buffers[i].keys);
  free(d.buffers);
  pthread_mutex_unlock(&e->publish_lock);
  return rc;
}

/* Reads cluster_token_file, if set; errors name where it was set. */
static int load_cluster_token(mc_engine *e, char *err, size_t errlen) {
  const mc_config *c = e->cfg;
  if (!c->cluster_token_file)
    return 0;
  char why[512];
  int rc = mc_token_load(c->cluster_token_file, e->cluster_token, why, sizeof why);
  if (rc) {
    char where[600];
    mc_config_where(c, "cluster_token_file", where, sizeof where);
    mc_seterr(err, errlen, "%s: %s", where, why);
    return rc;
  }
  if (strncmp(c->metadata, "etcd://", 7) == 0)
    MC_WARN(&e->log, COMP,
            "cluster_token_file is not used by etcd:// metadata: descriptors "
            "there are as safe as the etcd cluster (use etcd's own "
            "authentication and network policy)");
  return 0;
}

/* The file, then the MC_* variables, then the opts members: one schema
 * (config.c) checks all three, so a value gets the same reason whichever
 * way it came. */
static int build_config(const mc_engine_opts *o, mc_config **out, char *err,
                        size_t errlen) {
  const char *env_path = getenv("MC_CONFIG");
  const char *path = o && o->config_path ? o->config_path : env_path;
  mc_config *cfg = NULL;
  int rc;
  if (path && *path) {
    rc = mc_config_load_file(path, &cfg, err, errlen);
    /* A file that cannot be read names the path; say where it came from
     * when that was the variable (file:line messages name it already). */
    if (rc && rc != MC_EINVAL && path == env_path && err && errlen) {
      char tmp[MC_ERR_MAX];
      snprintf(tmp, sizeof tmp, "MC_CONFIG: %s", err);
      mc_seterr(err, errlen, "%s", tmp);
    }
  } else {
    rc = (cfg = mc_config_new_default()) ? 0 : MC_ENOMEM;
  }
  if (!rc)
    rc = mc_config_apply_env_for(cfg, o ? o->transports : NULL, err, errlen);
  if (!rc)
    rc = mc_config_apply_opts(cfg, o, err, errlen);
  if (rc) {
    mc_config_free(cfg);
    return rc;
  }
  *out = cfg;
  return 0;
}

static int loader_open(mc_engine *e, char *err, size_t errlen) {
  /* $MC_PLUGIN_PATH, the config's plugin_path, the build tree's plugins
   * (when running from it), the install dir: see loader.h. */
  int rc = mc_loader_open(&e->log, getenv("MC_PLUGIN_PATH"),
                          (const char *const *)e->cfg->plugin_path,
                          e->cfg->nplugin_path, &e->loader);
  if (rc)
    mc_seterr(err, errlen, "plugin loader: %s", mc_strerror(rc));
  return rc;
}

static int open_transports(mc_engine *e, char *err, size_t errlen) {
  const char *names[64];
  size_t n = 0;
  if (e->cfg->transports_auto) {
    n = sizeof names / sizeof names[0];
    int rc = mc_loader_names(e->loader, names, &n);
    if (rc) {
      mc_seterr(err, errlen, "listing plugins: %s", mc_strerror(rc));
      return rc;
    }
  } else {
    for (size_t i = 0; i < e->cfg->ntransports && n < 64; i++)
      names[n++] = e->cfg->transports[i].name;
  }
  char last[1024] = "";
  for (size_t i = 0; i < n; i++) {
    int skip = 0;
    char terr[1024] = "";
    int rc = transport_open(e, names[i], terr, sizeof terr, &skip);
    if (rc && !skip) {
      mc_seterr(err, errlen, "%s", terr);
      return rc;
    }
    if (rc) {
      /* Optional (or auto): one line, and on without it. */
      MC_WARN(&e->log, COMP, "%s; continuing without it", terr);
      snprintf(last, sizeof last, "%s", terr);
    }
  }
  if (e->set.n == 0) {
    char sp[2048];
    mc_loader_search_path(e->loader, sp, sizeof sp);
    mc_seterr(err, errlen, "no transport could be loaded%s%s (searched: %s)",
           last[0] ? "; last error: " : "", last, sp);
    return MC_ENOENT;
  }
  /* Stable order by preference so candidate lists come out sorted. */
  mc_transport **t = e->set.t;
  for (int i = 1; i < e->set.n; i++)
    for (int j = i; j > 0 && t[j]->rank < t[j - 1]->rank; j--) {
      mc_transport *tmp = t[j];
      t[j] = t[j - 1];
      t[j - 1] = tmp;
    }
  for (int i = 0; i < e->set.n; i++)
    t[i]->index = i;
  return 0;
}

/* Opens the metadata backend; an error names where its URL was set. */
static int metadata_open(mc_engine *e, char *err, size_t errlen) {
  mc_metadata_args ma = {.url = e->cfg->metadata,
                         .token = e->cluster_token[0] ? e->cluster_token : NULL,
                         .listen = e->cfg->listen,
                         .listener = e->lis,
                         .timeout_ms = e->cfg->timeout_ms < 10000 ? e->cfg->timeout_ms : 10000,
                         .log = &e->log,
                         .on_change = mc_segments_on_change,
                         .on_change_arg = e->segs};
  int rc = mc_metadata_open(&ma, &e->md, err, errlen);
  if (rc) {
    /* Name where the URL was set, unless it is the built-in default. */
    char where[600], tmp[MC_ERR_MAX];
    mc_config_where(e->cfg, "metadata", where, sizeof where);
    if (mc_config_src(e->cfg, "metadata") != MC_SRC_DEFAULT && err[0]) {
      snprintf(tmp, sizeof tmp, "%s: %s", where, err);
      mc_seterr(err, errlen, "%s", tmp);
    }
  }
  return rc;
}

/* The handshake listener on `listen`, run whatever the metadata backend:
 * p2p serves descriptors on it, and every backend's engines reach each
 * other's control channel through it. */
static int listener_open(mc_engine *e, char *err, size_t errlen) {
  mc_listener_args la = {.listen = e->cfg->listen,
                         .token = e->cluster_token,
                         .timeout_ms = e->cfg->timeout_ms < 10000 ? e->cfg->timeout_ms : 10000,
                         .log = &e->log};
  char why[512] = "";
  int rc = mc_listener_open(&la, &e->lis, why, sizeof why);
  if (rc) {
    char where[600];
    mc_config_where(e->cfg, "listen", where, sizeof where);
    mc_seterr(err, errlen, "%s: %s", where, why[0] ? why : mc_strerror(rc));
  }
  return rc;
}

/* Target side of the control channel: the listener's workers call this,
 * outside the transports' control lock (a peer's connect may be calling in
 * while ours calls out). */
static int engine_ctrl(void *arg, const char *transport, const char *peer,
                       const void *req, size_t req_len, void *resp,
                       size_t *resp_len) {
  mc_engine *e = arg;
  for (int i = 0; i < e->set.n; i++) {
    mc_transport *t = e->set.t[i];
    if (strcmp(t->plugin->name, transport) != 0)
      continue;
    if (!t->ops->ctrl_handle || t->stopped)
      return MC_ENOTSUP;
    size_t cap = *resp_len;
    int rc = t->ops->ctrl_handle(t->ctx, peer, req, req_len, resp, resp_len);
    if (rc == 0 && *resp_len > cap) {
      MC_ERROR(&e->log, COMP, "transport %s: ctrl_handle wrote %zu bytes (max %zu)",
               transport, *resp_len, cap);
      return MC_EPROTO;
    }
    return rc;
  }
  return MC_ENOTSUP;
}

/* A loopback listener cannot serve peers on other hosts: say so when a
 * transport that reaches them has a control channel needing it and the
 * metadata service is shared beyond this host (p2p names are listener
 * addresses, so a loopback one is a single-host setup by construction). */
static void warn_loopback_ctrl(mc_engine *e) {
  const char *la = mc_listener_address(e->lis);
  const char *url = mc_engine_metadata_url(e);
  if ((strncmp(la, "127.", 4) != 0 && strncmp(la, "[::1]", 5) != 0) ||
      strncmp(url, "p2p", 3) == 0 || strstr(url, "//127.") ||
      strstr(url, "//localhost") || strstr(url, "//[::1]"))
    return;
  for (int i = 0; i < e->set.n; i++) {
    const mc_transport_ops *ops = e->set.t[i]->ops;
    if (ops->ctrl_handle && (ops->caps & MC_CAP_INTER_NODE)) {
      MC_WARN(&e->log, COMP,
              "transport %s uses the control channel, but this engine's "
              "handshake listener is on loopback (%s): peers on other hosts "
              "cannot reach it; set listen (MC_LISTEN) to a reachable address",
              e->set.t[i]->plugin->name, la);
      return;
    }
  }
}

/* The segment's name: configured, else the backend's, else host:pid. */
static void segment_name(mc_engine *e) {
  if (e->cfg->segment_name) {
    snprintf(e->name, sizeof e->name, "%s", e->cfg->segment_name);
  } else if (mc_metadata_local_name(e->md, e->name, sizeof e->name) != 0) {
    char host[HOST_NAME_MAX + 1] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(e->name, sizeof e->name, "%s:%d", host, (int)getpid());
  }
}

/* The modules over the transports: registry, segments, pipeline, and the
 * job queue's worker running the pipeline's hooks. */
static int start_modules(mc_engine *e, char *err, size_t errlen) {
  int rc = mc_registry_create(&e->set, e->topo, engine_publish, e, &e->reg);
  if (!rc)
    rc = mc_pipeline_create(&e->set, e->reg, e->jobs, e->cfg, &e->pipe);
  if (rc) {
    mc_seterr(err, errlen, "mc_engine_create: out of memory");
    return rc;
  }
  mc_segments_attach(e->segs, &e->set, e->jobs, e->md, e->cfg->metadata);
  mc_jobq_hooks h = mc_pipeline_hooks(e->pipe);
  rc = mc_jobq_start(e->jobs, &h);
  if (rc)
    mc_seterr(err, errlen, "cannot start the engine worker thread");
  return rc;
}

/* Creates the engine; err (never NULL) gets the one-line reason. */
static int engine_create(const mc_engine_opts *opts, mc_engine **out,
                         char *err, size_t errlen) {
  if (!out) {
    mc_seterr(err, errlen, "mc_engine_create: out is NULL");
    return MC_EINVAL;
  }
  /* Read only the members the caller's struct has (struct_size), so a
   * program built against an older, shorter mc_engine_opts keeps working. */
  mc_engine_opts o;
  memset(&o, 0, sizeof o);
  if (opts) {
    size_t n = opts->struct_size ? opts->struct_size : sizeof o;
    if (n < sizeof(uint32_t)) {
      mc_seterr(err, errlen, "mc_engine_opts.struct_size %u is too small", opts->struct_size);
      return MC_EINVAL;
    }
    memcpy(&o, opts, n < sizeof o ? n : sizeof o);
    opts = &o;
  }
  mc_engine *e = calloc(1, sizeof *e);
  if (!e) {
    mc_seterr(err, errlen, "mc_engine_create: out of memory");
    return MC_ENOMEM;
  }
  pthread_mutex_init(&e->publish_lock, NULL);
  mc_ctrl_client_init(&e->ctrl);
  e->set.log = &e->log;
  e->log.level = mc_log_env_level();
  int rc = build_config(opts, &e->cfg, err, errlen);
  if (rc)
    goto fail;
  e->log.level = e->cfg->log_level;
  compute_host_id(e->host_id, sizeof e->host_id);
  uint16_t port;
  if (mc_net_split_hostport(e->cfg->listen, e->listen_host, sizeof e->listen_host,
                            &port)) {
    char where[600];
    mc_config_where(e->cfg, "listen", where, sizeof where);
    mc_seterr(err, errlen, "%s: expected host:port, got '%s'", where,
              e->cfg->listen);
    rc = MC_EINVAL;
    goto fail;
  }
  rc = mc_notify_queue_create(1024, &e->notes);
  if (!rc)
    rc = mc_segments_create(&e->log, e->host_id, &e->segs);
  if (!rc)
    rc = mc_jobq_create(&e->jobs);
  if (rc)
    goto fail;
  rc = load_cluster_token(e, err, errlen);
  if (rc)
    goto fail;
  rc = listener_open(e, err, errlen);
  if (rc)
    goto fail;
  rc = metadata_open(e, err, errlen);
  if (rc)
    goto fail;
  segment_name(e);
  e->ctrl.md = e->md;
  e->ctrl.token = e->cluster_token;
  e->ctrl.self = e->name;
  e->ctrl.host_id = e->host_id;
  e->ctrl.log = &e->log;
  e->ctrl.timeout_ms = e->cfg->timeout_ms < 10000 ? e->cfg->timeout_ms : 10000;
  e->set.ctrl = &e->ctrl;
  rc = loader_open(e, err, errlen);
  if (rc)
    goto fail;
  rc = open_transports(e, err, errlen);
  if (rc)
    goto fail;
  rc = mc_rails_topology_init(e->cfg, &e->log, &e->topo, err, errlen);
  if (rc)
    goto fail;
  rc = start_modules(e, err, errlen);
  if (rc)
    goto fail;
  warn_loopback_ctrl(e);
  /* The transport set is final: peers' control requests may come in. */
  mc_listener_set_ctrl(e->lis, engine_ctrl, e, e->name);
  rc = engine_publish(e);
  if (rc) {
    mc_seterr(err, errlen, "publishing segment '%s' through %s failed: %s", e->name,
           e->cfg->metadata, mc_strerror(rc));
    goto fail;
  }
  MC_INFO(&e->log, COMP, "segment %s up: %d transport(s), metadata %s", e->name,
          e->set.n, e->cfg->metadata);
  *out = e;
  return 0;
fail:
  mc_engine_destroy(e);
  return rc;
}

/* Every way to create an engine ends here, so the reason of a failure
 * reaches the caller whichever call it used: logged once at error level
 * (shown at every MC_LOG_LEVEL, before any config is read), kept as this
 * thread's mc_last_error(), and copied to errbuf when there is one. */
int mc_engine_create_ex(const mc_engine_opts *opts, mc_engine **out,
                        char *errbuf, size_t errlen) {
  char err[MC_ERR_MAX] = "";
  int rc = engine_create(opts, out, err, sizeof err);
  if (rc) {
    if (!err[0])
      snprintf(err, sizeof err, "cannot create the engine: %s",
               mc_strerror(rc));
    MC_ERROR(NULL, COMP, "%s", err);
    mc_last_error_set("%s", err);
    mc_seterr(errbuf, errlen, "%s", err);
  }
  return rc;
}

int mc_engine_create(const mc_engine_opts *opts, mc_engine **out) {
  return mc_engine_create_ex(opts, out, NULL, 0);
}

int mc_engine_create_from_file(const char *path, mc_engine **out) {
  mc_engine_opts o = {.struct_size = sizeof o, .config_path = path};
  return mc_engine_create_ex(&o, out, NULL, 0);
}

void mc_engine_destroy(mc_engine *e) {
  if (!e)
    return;
  /* No control request reaches a transport from here on (waits for the
   * handler calls running). */
  mc_listener_set_ctrl(e->lis, NULL, NULL, NULL);
  if (e->md && e->name[0] && e->set.n)
    mc_metadata_unpublish(e->md, e->name);
  mc_jobq_stop(e->jobs); /* cancels what was queued or waiting for a retry */
  int64_t inflight = mc_pipeline_inflight(e->pipe);
  if (inflight > 0) {
    /* Slices are still inside plugins: stop the transports first.  fini
     * completes each one (MC_ECANCELED) and releases endpoints, imports
     * and registrations, so nothing below calls into a plugin. */
    MC_WARN(&e->log, COMP, "destroying %s with %lld slice(s) in flight: canceling them",
            e->name, (long long)inflight);
    atomic_store(&e->set.closing, 1);
    for (int i = e->set.n - 1; i >= 0; i--) {
      e->set.t[i]->ops->fini(e->set.t[i]->ctx);
      e->set.t[i]->stopped = 1;
    }
  }
  /* The metadata watch thread calls back into the segments: stop it
   * before they go. */
  mc_metadata_quiesce(e->md);
  mc_segments_destroy(e->segs);
  mc_registry_destroy(e->reg);
  for (int i = e->set.n - 1; i >= 0; i--)
    transport_close(e->set.t[i]);
  e->set.n = 0;
  mc_topo_free(e->topo);
  mc_metadata_close(e->md);
  mc_listener_close(e->lis);
  mc_loader_destroy(e->loader);
  mc_pipeline_destroy(e->pipe);
  mc_jobq_destroy(e->jobs);
  mc_notify_queue_destroy(e->notes);
  mc_config_free(e->cfg);
  mc_ctrl_client_fini(&e->ctrl);
  pthread_mutex_destroy(&e->publish_lock);
  free(e);
}

const char *mc_engine_segment_name(const mc_engine *e) {
  return e ? e->name : NULL;
}

int mc_engine_plugins(mc_engine *e, mc_plugin_info *out, uint32_t *n) {
  if (!e || !n)
    return MC_EINVAL;
  return mc_loader_report(e->loader, out, n);
}

int mc_engine_rails(mc_engine *e, const char *name, mc_rail_info *out,
                    uint32_t *n) {
  if (!e || !name || !n)
    return MC_EINVAL;
  for (int i = 0; i < e->set.n; i++) {
    mc_transport *t = e->set.t[i];
    if (strcmp(t->plugin->name, name) != 0)
      continue;
    uint32_t cap = *n;
    *n = t->nrails;
    if (cap < t->nrails)
      return MC_ENOSPC;
    if (out)
      memcpy(out, t->rails, t->nrails * sizeof *out);
    return 0;
  }
  return MC_ENOENT;
}

int mc_engine_plugin_search_path(mc_engine *e, char *buf, size_t len) {
  if (!e || !buf)
    return MC_EINVAL;
  return mc_loader_search_path(e->loader, buf, len);
}

int mc_notify_poll(mc_engine *e, mc_notification *out, uint32_t max,
                   int timeout_ms) {
  if (!e || (!out && max))
    return MC_EINVAL;
  return mc_notify_queue_pop(e->notes, out, max, timeout_ms);
}

/* The engine.h calls on the registry, the segments and the pipeline. */
int mc_register(mc_engine *e, void *addr, size_t len, const char *location) {
  mc_region r = {addr, len, location};
  return mc_register_batch(e, &r, 1, NULL);
}

int mc_register_batch(mc_engine *e, const mc_region *regions, uint32_t n,
                      uint32_t *failed) {
  if (!e) {
    if (failed)
      *failed = n;
    return MC_EINVAL;
  }
  return mc_registry_register(e->reg, regions, n, failed);
}

int mc_register_file(mc_engine *e, const char *path, uint64_t offset, uint64_t len,
                     uint32_t flags, void **addr) {
  if (!e) {
    mc_last_error_set("mc_register_file: engine is NULL");
    return MC_EINVAL;
  }
  return mc_registry_register_file(e->reg, path, offset, len, flags, addr);
}

int mc_unregister(mc_engine *e, void *addr) {
  return mc_unregister_batch(e, &addr, 1, NULL);
}

int mc_unregister_batch(mc_engine *e, void *const *addrs, uint32_t n,
                        uint32_t *failed) {
  if (!e) {
    if (failed)
      *failed = n;
    return MC_EINVAL;
  }
  return mc_registry_unregister(e->reg, addrs, n, failed);
}

int mc_alloc_shared(mc_engine *e, size_t len, const char *location, void **addr) {
  return e ? mc_registry_alloc_shared(e->reg, len, location, addr) : MC_EINVAL;
}

int mc_free_shared(mc_engine *e, void *addr) {
  return e ? mc_registry_free_shared(e->reg, addr) : MC_EINVAL;
}

int mc_segment_open(mc_engine *e, const char *name, mc_segment **out) {
  return e ? mc_segments_open(e->segs, name, out) : MC_EINVAL;
}

int mc_batch_create(mc_engine *e, uint32_t capacity, mc_batch **out) {
  return e ? mc_pipeline_batch_create(e->pipe, capacity, out) : MC_EINVAL;
}

int mc_transfer_sync(mc_engine *e, const mc_request *reqs, uint32_t n,
                     int timeout_ms) {
  if (!e || !reqs || n == 0)
    return MC_EINVAL;
  mc_batch *b;
  int rc = mc_batch_create(e, n, &b);
  if (rc)
    return rc;
  rc = mc_batch_submit(b, reqs, n);
  if (!rc)
    rc = mc_batch_wait(b, timeout_ms);
  mc_batch_destroy(b);
  return rc;
}

