/* fake_host.c - see fake_host.h. */
#include "fake_host.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config_value.h" /* the core's value parsers (libmooncake_value) */
#include "mooncake/errors.h"

/* ---- params ---------------------------------------------------------------- */

size_t mc_fake_param_stride(const mc_transport_ops *o) {
  return o->param_info_size ? o->param_info_size : MC_PARAM_INFO_V1_SIZE;
}

void mc_fake_param_at(const mc_transport_ops *o, size_t i, mc_param_info *out) {
  size_t st = mc_fake_param_stride(o);
  memset(out, 0, sizeof *out);
  memcpy(out, (const char *)o->params + i * st, st < sizeof *out ? st : sizeof *out);
}

int mc_fake_param_find(const mc_transport_ops *o, const char *key, mc_param_info *out) {
  if (!o || !o->params || !key)
    return MC_ENOENT;
  for (size_t i = 0; i < 256; i++) {
    mc_param_info pi;
    mc_fake_param_at(o, i, &pi);
    if (pi.type == MC_PARAM_END)
      break;
    if (pi.name && !strcmp(pi.name, key)) {
      *out = pi;
      return 0;
    }
  }
  return MC_ENOENT;
}

/* ---- the host table --------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void h_log(void *host, int level, const char *fmt,
                                                        ...) {
  mc_fake_host *h = host;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&h->lock);
  memcpy(h->log, line, sizeof line);
  if (level <= MC_LOG_WARN)
    memcpy(h->last_warn, line, sizeof line);
  h->nlogs++;
  pthread_mutex_unlock(&h->lock);
  if (level <= h->print_level)
    fprintf(stderr, "  [%s] %s\n", h->name, line);
}

static int h_log_enabled(void *host, int level) {
  const mc_fake_host *h = host;
  return level <= h->enabled_level;
}

static int h_config_get(void *host, const char *key, const char **val) {
  mc_fake_host *h = host;
  if (!key || !val)
    return MC_EINVAL;
  int rc = MC_ENOENT;
  pthread_mutex_lock(&h->lock);
  for (int i = 0; i < h->nkeys; i++)
    if (!strcmp(h->keys[i], key)) {
      *val = h->vals[i]; /* values are never freed before fini */
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

/* The value text of typed key `key`: configured, else its default. */
static int typed_value(mc_fake_host *h, const char *key, uint32_t type, const char **val) {
  mc_param_info pi;
  if (!key || mc_fake_param_find(h->ops, key, &pi))
    return MC_EINVAL;
  if (pi.type != type)
    return MC_EINVAL;
  if (h_config_get(h, key, val) == 0)
    return 0;
  if (!pi.default_text || !pi.default_text[0])
    return MC_ENOENT; /* as the core's getters */
  *val = pi.default_text;
  return 0;
}

static int h_get_size(void *host, const char *key, uint64_t *out) {
  const char *v;
  int rc = typed_value(host, key, MC_PARAM_SIZE, &v);
  return rc ? rc : mc_config_parse_size(v, out) ? MC_EINVAL : 0;
}

static int h_get_int(void *host, const char *key, int64_t *out) {
  const char *v;
  int rc = typed_value(host, key, MC_PARAM_INT, &v);
  return rc ? rc : mc_config_parse_int(v, out) ? MC_EINVAL : 0;
}

static int h_get_bool(void *host, const char *key, int *out) {
  const char *v;
  int rc = typed_value(host, key, MC_PARAM_BOOL, &v);
  return rc ? rc : mc_config_parse_bool(v, out) ? MC_EINVAL : 0;
}

static void h_complete(void *host, uint64_t token, int status, uint64_t bytes, int32_t verr) {
  mc_fake_host *h = host;
  pthread_mutex_lock(&h->lock);
  h->completions++;
  h->last_token = token;
  h->last_status = status;
  h->last_bytes = bytes;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
  if (h->on_complete)
    h->on_complete(h->cb_arg, token, status, bytes, verr);
}

static void h_notify_recv(void *host, const char *peer, const void *msg, size_t len) {
  mc_fake_host *h = host;
  pthread_mutex_lock(&h->lock);
  snprintf(h->notify_peer, sizeof h->notify_peer, "%s", peer ? peer : "(null)");
  h->notify_len = len > sizeof h->notify_msg ? sizeof h->notify_msg : len;
  if (h->notify_len)
    memcpy(h->notify_msg, msg, h->notify_len);
  h->notifies++;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
  if (h->on_notify)
    h->on_notify(h->cb_arg, peer, msg, len);
}

/* Hosts with a context, for routing ctrl_call by peer name.  route_lock is
 * held across a routed ctrl_handle, so mc_fake_host_set_ctx(h, NULL) (before
 * the plugin's fini) waits for calls into h to finish. */
static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;
static mc_fake_host *routes;

static int route_call(mc_fake_host *to, const char *from, const void *req, size_t req_len,
                      void *resp, size_t *resp_len) {
  const mc_transport_ops *o = to->ops;
  if (!o || o->struct_size < offsetof(mc_transport_ops, ctrl_handle) + sizeof o->ctrl_handle ||
      !o->ctrl_handle)
    return MC_ENOTSUP;
  uint8_t *buf = malloc(MC_CTRL_MAX);
  if (!buf)
    return MC_ENOMEM;
  size_t rl = MC_CTRL_MAX;
  int rc = o->ctrl_handle(to->ctrl_ctx, from, req, req_len, buf, &rl);
  if (rc == 0 && rl > MC_CTRL_MAX)
    rc = MC_EPROTO;
  else if (rc > 0)
    rc = MC_EPROTO;
  if (rc == 0 && rl > *resp_len) {
    *resp_len = rl;
    rc = MC_ENOSPC;
  } else if (rc == 0) {
    if (rl)
      memcpy(resp, buf, rl);
    *resp_len = rl;
  }
  free(buf);
  return rc;
}

/* The control channel (ABI 1.2) as a loopback to the host's own context. */
static int h_ctrl_call(void *host, const char *peer, const void *req, size_t req_len, void *resp,
                       size_t *resp_len, uint32_t timeout_ms) {
  mc_fake_host *h = host;
  (void)timeout_ms; /* a loopback answers at once */
  if (!peer || !req || req_len == 0 || req_len > MC_CTRL_MAX || !resp_len || (!resp && *resp_len))
    return MC_EINVAL;
  /* A peer named like another host of this process with a context (two
   * contexts of the plugin, as the conformance pairs are) gets the call,
   * as an engine's channel routes it to the named segment; any other name
   * loops back to this host's own context. */
  pthread_mutex_lock(&route_lock);
  for (mc_fake_host *r = routes; r; r = r->route_next)
    if (r != h && !strcmp(r->name, peer) && r->ctrl_ctx) {
      int rc = route_call(r, h->name, req, req_len, resp, resp_len);
      pthread_mutex_unlock(&route_lock);
      return rc;
    }
  pthread_mutex_unlock(&route_lock);
  const mc_transport_ops *o = h->ops;
  pthread_mutex_lock(&h->lock);
  void *ctx = h->ctrl_ctx;
  pthread_mutex_unlock(&h->lock);
  /* Read ctrl_handle only when the plugin's table has it (a 1.0/1.1 table
   * is shorter). */
  if (!o || !ctx ||
      o->struct_size < offsetof(mc_transport_ops, ctrl_handle) + sizeof o->ctrl_handle ||
      !o->ctrl_handle)
    return MC_ENOTSUP;
  uint8_t *buf = malloc(MC_CTRL_MAX);
  if (!buf)
    return MC_ENOMEM;
  size_t rl = MC_CTRL_MAX;
  int rc = o->ctrl_handle(ctx, h->name, req, req_len, buf, &rl);
  pthread_mutex_lock(&h->lock);
  if (rc == 0 && rl > MC_CTRL_MAX) {
    h->ctrl_violations++;
    rc = MC_EPROTO;
  } else if (rc > 0) {
    h->ctrl_violations++; /* not an MC_E* code */
    rc = MC_EPROTO;
  } else if (rc == 0) {
    h->ctrl_calls++;
  }
  pthread_mutex_unlock(&h->lock);
  if (rc == 0 && rl > *resp_len) {
    *resp_len = rl;
    rc = MC_ENOSPC;
  } else if (rc == 0) {
    if (rl)
      memcpy(resp, buf, rl);
    *resp_len = rl;
  }
  free(buf);
  return rc;
}

void mc_fake_host_set_ctx(mc_fake_host *h, void *ctx) {
  pthread_mutex_lock(&route_lock);
  mc_fake_host **pp = &routes;
  while (*pp && *pp != h)
    pp = &(*pp)->route_next;
  if (*pp && !ctx)
    *pp = h->route_next;
  else if (!*pp && ctx) {
    h->route_next = routes;
    routes = h;
  }
  pthread_mutex_lock(&h->lock);
  h->ctrl_ctx = ctx;
  pthread_mutex_unlock(&h->lock);
  pthread_mutex_unlock(&route_lock);
}

void mc_fake_host_init(mc_fake_host *h, const char *name, const mc_transport_ops *ops) {
  memset(h, 0, sizeof *h);
  snprintf(h->name, sizeof h->name, "%s", name ? name : "plugin");
  h->ops = ops;
  h->print_level = MC_LOG_WARN;
  h->enabled_level = MC_LOG_WARN;
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  h->api = (mc_host_api){MC_TRANSPORT_ABI_MAJOR, MC_TRANSPORT_ABI_MINOR, sizeof(mc_host_api),
                         h, h_log, h_log_enabled, h_config_get, h_complete, h_notify_recv,
                         h_get_size, h_get_int, h_get_bool, h_ctrl_call};
}

void mc_fake_host_fini(mc_fake_host *h) {
  mc_fake_host_set_ctx(h, NULL); /* out of the routing list */
  for (int i = 0; i < h->nkeys; i++) {
    free(h->keys[i]);
    free(h->vals[i]);
  }
  for (int i = 0; i < h->nretired; i++)
    free(h->retired[i]);
  h->nkeys = h->nretired = 0;
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
}

int mc_fake_host_set(mc_fake_host *h, const char *key, const char *val) {
  char *v = strdup(val ? val : "");
  if (!v)
    return MC_ENOMEM;
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  int i = 0;
  while (i < h->nkeys && strcmp(h->keys[i], key))
    i++;
  if (i < h->nkeys) {
    /* A pointer config_get handed out stays valid until fini. */
    if (h->nretired < MC_FAKE_MAX_KEYS) {
      h->retired[h->nretired++] = h->vals[i];
      h->vals[i] = v;
    } else {
      rc = MC_ENOSPC;
    }
  } else if (h->nkeys < MC_FAKE_MAX_KEYS) {
    h->keys[i] = strdup(key);
    if (!h->keys[i]) {
      rc = MC_ENOMEM;
    } else {
      h->vals[i] = v;
      h->nkeys++;
    }
  } else {
    rc = MC_ENOSPC;
  }
  pthread_mutex_unlock(&h->lock);
  if (rc)
    free(v);
  return rc;
}

int mc_fake_host_set_list(mc_fake_host *h, const char *list) {
  int rc = 0;
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ';');
    size_t l = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', l);
    if (!eq) {
      if (l)
        rc = MC_EINVAL;
    } else {
      char key[256];
      size_t kl = (size_t)(eq - p);
      if (kl >= sizeof key) {
        rc = MC_EINVAL;
      } else {
        memcpy(key, p, kl);
        key[kl] = '\0';
        char *val = strndup(eq + 1, l - kl - 1);
        int r = val ? mc_fake_host_set(h, key, val) : MC_ENOMEM;
        free(val);
        if (r)
          rc = r;
      }
    }
    p += l + (end ? 1 : 0);
  }
  return rc;
}

int mc_fake_host_set_pairs(mc_fake_host *h, const char *const *kv) {
  int rc = 0;
  for (; kv && kv[0]; kv += 2) {
    int r = mc_fake_host_set(h, kv[0], kv[1]);
    if (r)
      rc = r;
  }
  return rc;
}

int mc_fake_host_wait_notifies(mc_fake_host *h, int n, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  while (h->notifies <= n && rc == 0)
    rc = pthread_cond_timedwait(&h->cond, &h->lock, &dl);
  int ok = h->notifies > n;
  pthread_mutex_unlock(&h->lock);
  return ok ? 0 : -1;
}

const mc_transport_ops *mc_fake_load(const char *path, void **dl, char *err, size_t errlen) {
  *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!*dl) {
    snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
    return NULL;
  }
  mc_transport_entry_v1_fn entry;
  *(void **)&entry = dlsym(*dl, MC_TRANSPORT_ENTRY_V1);
  const mc_transport_ops *ops = entry ? entry() : NULL;
  if (!ops) {
    snprintf(err, errlen, "%s: %s", path,
             entry ? "entry point returned NULL" : "no " MC_TRANSPORT_ENTRY_V1);
    dlclose(*dl);
    *dl = NULL;
  }
  return ops;
}
