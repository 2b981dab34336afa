/* Engine life cycle: configuration, transports, metadata, publication. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_internal.h"
#include "log.h"
#include "net.h"
#include "topology.h"

#define COMP "engine"


const char *mc_version(void) { return MC_VERSION; }

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
  pthread_mutex_destroy(&t->backlog_lock);
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

/* Loads, validates and initializes one transport.  Returns 0, or MC_E*
 * with err set; *skip tells whether the engine may go on without it: the
 * transport could not start (plugin missing or refused, init or setup
 * failed) and the config marked it optional.  A configured value the
 * plugin's params refuse is never skipped: the configuration is wrong. */
static int transport_open(mc_engine *e, const char *name, char *err,
                          size_t errlen, int *skip) {
  int optional = transport_optional(e->cfg, name);
  *skip = 0;
  if (e->ntransports >= MC_MAX_TRANSPORTS) {
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
  t->engine = e;
  t->plugin = p;
  t->ops = &p->ops;
  t->cfg = ct;
  t->index = e->ntransports;
  t->rank = transport_rank(e->cfg, name);
  t->slice_size = !e->cfg->slice_size_set && p->ops.slice_size ? p->ops.slice_size
                                                              : e->cfg->slice_size;
  pthread_mutex_init(&t->ctl_lock, NULL);
  pthread_mutex_init(&t->submit_lock, NULL);
  pthread_mutex_init(&t->backlog_lock, NULL);
  mc_hostapi_fill(t);
  mc_init_args args = {.struct_size = sizeof args,
                       .segment_name = e->name,
                       .listen_host = e->listen_host,
                       .host_id = e->host_id};
  const char *step = "init";
  rc = t->ops->init(&t->host, &args, &t->ctx);
  if (rc == 0) {
    uint32_t n = 64;
    step = "query_rails";
    t->rails = calloc(n, sizeof *t->rails);
    rc = t->rails ? t->ops->query_rails(t->ctx, t->rails, &n) : MC_ENOMEM;
    if (rc == 0 && n == 0)
      rc = MC_EINVAL; /* the contract says at least one rail */
    t->nrails = n;
    if (rc == 0) {
      step = "local_desc";
      t->rail_down_until = calloc(n, sizeof *t->rail_down_until);
      t->rail_inflight = calloc(n, sizeof *t->rail_inflight);
      t->desc_len = sizeof t->desc;
      rc = t->rail_down_until && t->rail_inflight
               ? t->ops->local_desc(t->ctx, t->desc, &t->desc_len)
               : MC_ENOMEM;
    }
    if (rc)
      t->ops->fini(t->ctx);
  }
  if (rc) {
    char reason[512];
    snprintf(reason, sizeof reason, "%s failed: %s", step, mc_strerror(rc));
    mc_loader_mark_refused(e->loader, name, reason);
    *skip = optional && rc != MC_ENOMEM;
    if (*skip) {
      mc_seterr(err, errlen, "transport '%s' (%s): %s", name, p->path, reason);
    } else {
      char up[64]; /* names are [a-z0-9_], the variable's part upper case */
      size_t i = 0;
      for (; name[i] && i + 1 < sizeof up; i++)
        up[i] = (char)toupper((unsigned char)name[i]);
      up[i] = '\0';
      mc_seterr(err, errlen,
                "transport '%s' (%s): %s (set transports.%s.optional: true "
                "or MC_TRANSPORT_%s_OPTIONAL=1 to start without it)",
                name, p->path, reason, name, up);
    }
    mc_loader_unload(p);
    transport_free(t);
    return rc;
  }
  if (t->ops->progress)
    atomic_store(&e->progress_needed, 1);
  mc_loader_mark_loaded(e->loader, name, t->nrails);
  e->transports[e->ntransports++] = t;
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

int mc_engine_publish(mc_engine *e) {
  pthread_mutex_lock(&e->publish_lock);
  mc_seg_desc d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "%s", e->name);
  snprintf(d.host_id, sizeof d.host_id, "%s", e->host_id);
  d.version = ++e->version;
  mc_desc_transport tr[MC_MAX_TRANSPORTS];
  for (int i = 0; i < e->ntransports; i++) {
    snprintf(tr[i].name, sizeof tr[i].name, "%s", e->transports[i]->plugin->name);
    tr[i].len = (uint32_t)e->transports[i]->desc_len;
    tr[i].blob = e->transports[i]->desc;
  }
  d.ntransports = (uint32_t)e->ntransports;
  d.transports = tr;
  int rc = mc_registry_fill_desc(e, &d);
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

const char *mc_engine_transport_param(const mc_transport *t, const char *key) {
  if (!t->cfg)
    return NULL;
  for (size_t i = 0; i < t->cfg->nparams; i++)
    if (strcmp(t->cfg->params[i].key, key) == 0)
      return t->cfg->params[i].value;
  return NULL;
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
    rc = mc_config_apply_env(cfg, err, errlen);
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
  if (e->ntransports == 0) {
    char sp[2048];
    mc_loader_search_path(e->loader, sp, sizeof sp);
    mc_seterr(err, errlen, "no transport could be loaded%s%s (searched: %s)",
           last[0] ? "; last error: " : "", last, sp);
    return MC_ENOENT;
  }
  /* Stable order by preference so candidate lists come out sorted. */
  for (int i = 1; i < e->ntransports; i++)
    for (int j = i; j > 0 && e->transports[j]->rank < e->transports[j - 1]->rank; j--) {
      mc_transport *tmp = e->transports[j];
      e->transports[j] = e->transports[j - 1];
      e->transports[j - 1] = tmp;
    }
  for (int i = 0; i < e->ntransports; i++)
    e->transports[i]->index = i;
  return 0;
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
  pthread_rwlock_init(&e->reg_lock, NULL);
  pthread_mutex_init(&e->publish_lock, NULL);
  pthread_mutex_init(&e->seg_lock, NULL);
  pthread_mutex_init(&e->job_lock, NULL);
  pthread_cond_init(&e->job_cond, NULL);
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
  rc = mc_notify_queue_init(&e->notes, 1024);
  if (rc)
    goto fail;
  rc = load_cluster_token(e, err, errlen);
  if (rc)
    goto fail;
  mc_metadata_args ma = {.url = e->cfg->metadata,
                         .token = e->cluster_token[0] ? e->cluster_token : NULL,
                         .listen = e->cfg->listen,
                         .timeout_ms = e->cfg->timeout_ms < 10000 ? e->cfg->timeout_ms : 10000,
                         .log = &e->log,
                         .on_change = mc_segments_on_change,
                         .on_change_arg = e};
  rc = mc_metadata_open(&ma, &e->md, err, errlen);
  if (rc) {
    /* Name where the URL was set, unless it is the built-in default. */
    char where[600], tmp[MC_ERR_MAX];
    mc_config_where(e->cfg, "metadata", where, sizeof where);
    if (mc_config_src(e->cfg, "metadata") != MC_SRC_DEFAULT && err[0]) {
      snprintf(tmp, sizeof tmp, "%s: %s", where, err);
      mc_seterr(err, errlen, "%s", tmp);
    }
    goto fail;
  }
  if (e->cfg->segment_name) {
    snprintf(e->name, sizeof e->name, "%s", e->cfg->segment_name);
  } else if (mc_metadata_local_name(e->md, e->name, sizeof e->name) != 0) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(e->name, sizeof e->name, "%s:%d", host, (int)getpid());
  }
  rc = loader_open(e, err, errlen);
  if (rc)
    goto fail;
  rc = open_transports(e, err, errlen);
  if (rc)
    goto fail;
  rc = mc_rails_topology_init(e, err, errlen);
  if (rc)
    goto fail;
  rc = mc_worker_start(e);
  if (rc) {
    mc_seterr(err, errlen, "cannot start the engine worker thread");
    goto fail;
  }
  rc = mc_engine_publish(e);
  if (rc) {
    mc_seterr(err, errlen, "publishing segment '%s' through %s failed: %s", e->name,
           e->cfg->metadata, mc_strerror(rc));
    goto fail;
  }
  MC_INFO(&e->log, COMP, "segment %s up: %d transport(s), metadata %s", e->name,
          e->ntransports, e->cfg->metadata);
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
  if (e->md && e->name[0] && e->ntransports)
    mc_metadata_unpublish(e->md, e->name);
  mc_worker_stop(e); /* cancels what was queued or waiting for a retry */
  int64_t inflight = atomic_load(&e->inflight);
  if (inflight > 0) {
    /* Slices are still inside plugins: stop the transports first.  fini
     * completes each one (MC_ECANCELED) and releases endpoints, imports
     * and registrations, so nothing below calls into a plugin. */
    MC_WARN(&e->log, COMP, "destroying %s with %lld slice(s) in flight: canceling them",
            e->name, (long long)inflight);
    atomic_store(&e->closing, 1);
    for (int i = e->ntransports - 1; i >= 0; i--) {
      e->transports[i]->ops->fini(e->transports[i]->ctx);
      e->transports[i]->stopped = 1;
    }
  }
  mc_segments_destroy_all(e);
  mc_registry_clear(e);
  for (int i = e->ntransports - 1; i >= 0; i--)
    transport_close(e->transports[i]);
  e->ntransports = 0;
  mc_topo_free(e->topo);
  mc_metadata_close(e->md);
  mc_loader_destroy(e->loader);
  mc_notify_queue_fini(&e->notes);
  mc_config_free(e->cfg);
  free(e->bufs);
  pthread_rwlock_destroy(&e->reg_lock);
  pthread_mutex_destroy(&e->publish_lock);
  pthread_mutex_destroy(&e->seg_lock);
  pthread_mutex_destroy(&e->job_lock);
  pthread_cond_destroy(&e->job_cond);
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
  for (int i = 0; i < e->ntransports; i++) {
    mc_transport *t = e->transports[i];
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
  return mc_notify_queue_pop(&e->notes, out, max, timeout_ms);
}

