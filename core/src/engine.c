/* Engine life cycle: configuration, transports, metadata, publication. */
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

static void replace_str(char **dst, const char *val) {
  if (!val)
    return;
  free(*dst);
  *dst = strdup(val);
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

/* Checks transports.<name> options against the plugin's documented params. */
static int validate_params(const mc_config *cfg, const mc_plugin *p,
                           const mc_config_transport *ct, char *err,
                           size_t errlen) {
  if (!ct)
    return 0;
  for (size_t i = 0; i < ct->nparams; i++) {
    const mc_config_param *cp = &ct->params[i];
    const mc_param_info *pi = NULL;
    for (const mc_param_info *q = p->ops.params; q && q->type != MC_PARAM_END; q++)
      if (strcmp(q->name, cp->key) == 0)
        pi = q;
    char where[600];
    if (cp->line > 0)
      snprintf(where, sizeof where, "%s:%d", cfg->source, cp->line);
    else
      snprintf(where, sizeof where, "MC_TRANSPORT_%s_%s", p->name, cp->key);
    if (!pi) {
      char known[400] = "";
      size_t off = 0;
      for (const mc_param_info *q = p->ops.params; q && q->type != MC_PARAM_END; q++)
        off += (size_t)snprintf(known + off, off < sizeof known ? sizeof known - off : 0,
                                "%s%s", off ? ", " : "", q->name);
      mc_seterr(err, errlen,
             "%s: key 'transports.%s.%s': unknown key (%s accepts: %s)", where,
             p->name, cp->key, p->name, known[0] ? known : "no keys");
      return MC_EINVAL;
    }
    const char *v = cp->value;
    int ok = 1;
    char *end;
    switch (pi->type) {
    case MC_PARAM_BOOL:
      ok = !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "1") ||
           !strcmp(v, "0") || !strcmp(v, "yes") || !strcmp(v, "no");
      break;
    case MC_PARAM_INT:
      errno = 0;
      (void)strtoll(v, &end, 0);
      ok = !errno && end != v && *end == '\0';
      break;
    case MC_PARAM_SIZE: {
      uint64_t sz;
      ok = mc_config_parse_size(v, &sz) == 0;
      break;
    }
    default:
      break;
    }
    if (!ok) {
      mc_seterr(err, errlen, "%s: key 'transports.%s.%s': expected %s, got '%s'",
             where, p->name, cp->key,
             pi->type == MC_PARAM_BOOL ? "a boolean"
             : pi->type == MC_PARAM_INT ? "an integer"
                                        : "a size like 64K",
             v);
      return MC_EINVAL;
    }
  }
  return 0;
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

/* Loads, validates and initializes one transport.  Returns 0, or MC_E* with
 * err set; *fatal tells whether the engine must fail (plugin missing or
 * refused) or may go on without it (init failed: no device). */
static int transport_open(mc_engine *e, const char *name, char *err,
                          size_t errlen, int *fatal) {
  *fatal = 1;
  if (e->ntransports >= MC_MAX_TRANSPORTS) {
    mc_seterr(err, errlen, "too many transports (max %d)", MC_MAX_TRANSPORTS);
    return MC_EINVAL;
  }
  mc_plugin *p = NULL;
  int rc = mc_loader_load(e->loader, name, &p, err, errlen);
  if (rc)
    return rc;
  const mc_config_transport *ct = mc_config_find_transport(e->cfg, name);
  rc = validate_params(e->cfg, p, ct, err, errlen);
  if (rc) {
    mc_loader_unload(p);
    return rc;
  }
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
  rc = t->ops->init(&t->host, &args, &t->ctx);
  if (rc) {
    char reason[512];
    snprintf(reason, sizeof reason, "init failed: %s", mc_strerror(rc));
    mc_loader_mark_refused(e->loader, name, reason);
    MC_WARN(&e->log, COMP, "transport %s (%s): %s; continuing without it",
            name, p->path, reason);
    mc_seterr(err, errlen, "transport '%s' (%s): %s", name, p->path, reason);
    mc_loader_unload(p);
    transport_free(t);
    *fatal = 0;
    return rc;
  }
  uint32_t n = 64;
  t->rails = calloc(n, sizeof *t->rails);
  if (t->rails)
    rc = t->ops->query_rails(t->ctx, t->rails, &n);
  if (!t->rails || rc || n == 0) {
    mc_seterr(err, errlen, "transport '%s' (%s): query_rails failed: %s", name,
           p->path, t->rails ? mc_strerror(rc ? rc : MC_EINVAL) : "out of memory");
    t->ops->fini(t->ctx);
    mc_loader_unload(p);
    transport_free(t);
    return rc ? rc : MC_EINVAL;
  }
  t->nrails = n;
  t->rail_down_until = calloc(n, sizeof *t->rail_down_until);
  t->rail_inflight = calloc(n, sizeof *t->rail_inflight);
  t->desc_len = sizeof t->desc;
  rc = t->rail_down_until && t->rail_inflight
           ? t->ops->local_desc(t->ctx, t->desc, &t->desc_len)
           : MC_ENOMEM;
  if (rc) {
    mc_seterr(err, errlen, "transport '%s' (%s): local_desc failed: %s", name,
           p->path, mc_strerror(rc));
    t->ops->fini(t->ctx);
    mc_loader_unload(p);
    transport_free(t);
    return rc;
  }
  if (t->ops->progress)
    atomic_store(&e->progress_needed, 1);
  mc_loader_mark_loaded(e->loader, name, n);
  e->transports[e->ntransports++] = t;
  MC_INFO(&e->log, COMP, "transport %s %s ready: %u rail(s), %s", name,
          p->ops.version, n, p->path);
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
    if (c->cluster_token_line)
      mc_seterr(err, errlen, "%s:%d: cluster_token_file: %s", c->source,
             c->cluster_token_line, why);
    else
      mc_seterr(err, errlen, "MC_CLUSTER_TOKEN_FILE: %s", why);
    return rc;
  }
  if (strncmp(c->metadata, "etcd://", 7) == 0)
    MC_WARN(&e->log, COMP,
            "cluster_token_file is not used by etcd:// metadata: descriptors "
            "there are as safe as the etcd cluster (use etcd's own "
            "authentication and network policy)");
  return 0;
}

static int build_config(const mc_engine_opts *o, mc_config **out, char *err,
                        size_t errlen) {
  const char *path = o && o->config_path ? o->config_path : getenv("MC_CONFIG");
  mc_config *cfg = NULL;
  int rc;
  if (path && *path)
    rc = mc_config_load_file(path, &cfg, err, errlen);
  else
    rc = (cfg = mc_config_new_default()) ? 0 : MC_ENOMEM;
  if (!rc)
    rc = mc_config_apply_env(cfg, err, errlen);
  if (rc) {
    mc_config_free(cfg);
    return rc;
  }
  if (o) {
    replace_str(&cfg->segment_name, o->segment_name);
    replace_str(&cfg->listen, o->listen);
    replace_str(&cfg->metadata, o->metadata);
    if (o->transports && strcmp(o->transports, "auto") == 0) {
      /* As MC_TRANSPORTS=auto: every plugin found, and the configured
       * transports keep their options (mc-info relies on this). */
      cfg->transports_auto = 1;
    } else if (o->transports) {
      /* Same semantics as MC_TRANSPORTS: a list replaces, options kept. */
      mc_config_transport *old = cfg->transports;
      size_t nold = cfg->ntransports;
      cfg->transports = NULL;
      cfg->ntransports = 0;
      cfg->transports_auto = strcmp(o->transports, "auto") == 0;
      char *list = strdup(o->transports);
      char *save = NULL;
      for (char *tok = cfg->transports_auto ? NULL : strtok_r(list, ", ", &save);
           tok; tok = strtok_r(NULL, ", ", &save)) {
        mc_config_transport *nt = mc_config_add_transport(cfg, tok);
        for (size_t i = 0; nt && i < nold; i++)
          if (strcmp(old[i].name, tok) == 0 && old[i].nparams) {
            free(nt->params);
            nt->params = old[i].params;
            nt->nparams = old[i].nparams;
            old[i].params = NULL;
            old[i].nparams = 0;
          }
      }
      free(list);
      for (size_t i = 0; i < nold; i++) {
        for (size_t j = 0; j < old[i].nparams; j++) {
          free(old[i].params[j].key);
          free(old[i].params[j].value);
        }
        free(old[i].params);
        free(old[i].name);
      }
      free(old);
    }
    if (o->plugin_path) {
      char *list = strdup(o->plugin_path);
      char *save = NULL;
      size_t n = 0;
      for (char *p = list; *p; p++)
        n += *p == ':';
      char **entries = calloc(n + 1 + cfg->nplugin_path, sizeof *entries);
      size_t k = 0;
      for (char *tok = strtok_r(list, ":", &save); tok && entries;
           tok = strtok_r(NULL, ":", &save))
        entries[k++] = strdup(tok);
      for (size_t i = 0; entries && i < cfg->nplugin_path; i++)
        entries[k++] = cfg->plugin_path[i];
      free(cfg->plugin_path);
      cfg->plugin_path = entries;
      cfg->nplugin_path = k;
      free(list);
    }
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
    int fatal = 0;
    char terr[1024] = "";
    int rc = transport_open(e, names[i], terr, sizeof terr, &fatal);
    if (rc && fatal && !e->cfg->transports_auto) {
      mc_seterr(err, errlen, "%s", terr);
      return rc;
    }
    if (rc)
      snprintf(last, sizeof last, "%s", terr);
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

int mc_engine_create_ex(const mc_engine_opts *opts, mc_engine **out,
                        char *err, size_t errlen) {
  if (!out)
    return MC_EINVAL;
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
  if (!e)
    return MC_ENOMEM;
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
    mc_seterr(err, errlen, "%s: listen: expected host:port, got '%s'",
           e->cfg->source, e->cfg->listen);
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
  if (rc)
    goto fail;
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
  if (err && errlen && err[0])
    MC_ERROR(&e->log, COMP, "%s", err);
  mc_engine_destroy(e);
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

