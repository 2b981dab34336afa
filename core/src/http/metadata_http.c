/* The HTTP metadata backend (mc_metadata_http_ops), a libcurl client of
 * mooncake-metadata-server (protocol in http_proto.h).
 *
 * URL: http://host:port/path[?ttl=SECONDS]   (ttl default 10, 0 = never
 * expire).  Published descriptors are PUT with the TTL and refreshed by a
 * background thread every TTL/3 with a cheap POST; if the server lost the
 * key (restart, expiry during an outage) the thread PUTs it again.  There
 * is no watch: HTTP has no push, so watch is not offered (NULL) and the
 * engine refetches on demand.  Each request uses its own curl easy handle,
 * so calls from several threads do not contend. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "descriptor.h"
#include "http/http_proto.h"
#include "metadata.h"
#include "mooncake/errors.h"
#include "net.h"
#include "token.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_TTL_S 10
#define MAX_TTL_S 3600
#define RETRY_MS 500

typedef struct pub {
  struct pub *next;
  char *segment;
  char *json;
  size_t len;
  int dirty; /* must be PUT again */
} pub;

typedef struct http_md {
  char base[512];
  char auth[MC_TOKEN_MAX + 32]; /* "Authorization: ..." or "" (token.h) */
  const mc_logger *log;
  int timeout_ms;
  int ttl_s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pub *pubs;
  int stop;
  int thread_running;
  int degraded;
  pthread_t thread;
} http_md;

typedef struct rbuf {
  char *p;
  size_t n, cap, max;
  int overflow;
} rbuf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg) {
  rbuf *b = arg;
  size_t n = size * nmemb;
  if (b->n + n > b->max) {
    b->overflow = 1;
    return 0; /* aborts the transfer */
  }
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
      return 0;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, ptr, n);
  b->n += n;
  b->p[b->n] = 0;
  return n;
}

int mc_http_auth_header(const char *token, char *buf, size_t len) {
  int n = snprintf(buf, len, "Authorization: Bearer %s", token);
  return n < 0 || (size_t)n >= len ? MC_ENOSPC : 0;
}

/* One request.  auth: the Authorization header line, or "".  param is "key"
 * or "prefix"; ttl >= 0 adds &ttl=.  On 2xx the body (if resp) is returned
 * malloc'd and NUL-terminated. */
static int request(const char *base, const char *auth, const char *method,
                   const char *param,
                   const char *value, int ttl, const void *body, size_t len,
                   int timeout_ms, char **resp, size_t *resp_len, char *err,
                   size_t errlen) {
  CURL *c = curl_easy_init();
  if (!c)
    return MC_ENOMEM;
  char *esc = curl_easy_escape(c, value, 0);
  size_t ulen = strlen(base) + (esc ? strlen(esc) : 0) + 64;
  char *url = malloc(ulen);
  if (!esc || !url) {
    curl_free(esc);
    free(url);
    curl_easy_cleanup(c);
    return MC_ENOMEM;
  }
  if (ttl >= 0)
    snprintf(url, ulen, "%s?%s=%s&ttl=%d", base, param, esc, ttl);
  else
    snprintf(url, ulen, "%s?%s=%s", base, param, esc);
  curl_free(esc);
  rbuf b = {.max = MC_DESC_JSON_MAX};
  struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
  hdr = curl_slist_append(hdr, "Content-Type: application/json");
  if (*auth)
    hdr = curl_slist_append(hdr, auth);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  if (strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  int rc = 0;
  if (cc != CURLE_OK) {
    if (b.overflow) {
      snprintf(err, errlen, "%s %s: answer larger than %u bytes", method, url, MC_DESC_JSON_MAX);
      rc = MC_EPROTO;
    } else {
      snprintf(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(cc));
      rc = cc == CURLE_OPERATION_TIMEDOUT ? MC_ETIMEDOUT
           : (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
              cc == CURLE_GOT_NOTHING || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR)
               ? MC_EPEER
               : MC_EIO;
    }
  } else if (status == 401 || status == 403) {
    snprintf(err, errlen,
             "%s %s: HTTP %ld: the server refused %s cluster token; set "
             "cluster_token_file (or MC_CLUSTER_TOKEN_FILE) to the file "
             "holding the token the server was started with",
             method, url, status, *auth ? "our" : "a request without a");
    rc = MC_EACCES;
  } else if (status < 200 || status >= 300) {
    snprintf(err, errlen, "%s %s: HTTP %ld%s%.120s", method, url, status,
             b.n ? ": " : "", b.n ? b.p : "");
    rc = status == 404 ? MC_ENOENT
         : (status == 400 || status == 413 || status == 414) ? MC_EINVAL
         : (status == 401 || status == 403) ? MC_EACCES
         : MC_EIO;
  } else if (resp) {
    if (!b.p && !(b.p = calloc(1, 1)))
      rc = MC_ENOMEM;
    else {
      *resp = b.p;
      *resp_len = b.n;
      b.p = NULL;
    }
  }
  free(b.p);
  free(url);
  curl_slist_free_all(hdr);
  curl_easy_cleanup(c);
  return rc;
}

int mc_http_list_keys(const char *base_url, const char *token,
                      const char *prefix, int timeout_ms, mc_http_key_fn fn,
                      void *arg, char *err, size_t errlen) {
  char auth[MC_TOKEN_MAX + 32] = "";
  if (token && mc_http_auth_header(token, auth, sizeof auth))
    return MC_EINVAL;
  char *body = NULL;
  size_t len = 0;
  int rc = request(base_url, auth, "GET", "prefix", prefix, -1, NULL, 0, timeout_ms,
                   &body, &len, err, errlen);
  if (rc == 0)
    rc = mc_http_parse_keys(body, len, fn, arg, err, errlen);
  free(body);
  return rc;
}

static int seg_key(const char *segment, char *key, size_t len) {
  if (!segment || !*segment || strlen(segment) >= MC_NAME_MAX)
    return MC_EINVAL;
  snprintf(key, len, "%s%s", MC_HTTP_SEG_PREFIX, segment);
  return 0;
}

static int kv_key(const char *k, char *key, size_t len) {
  if (!k || !*k || strlen(k) + strlen(MC_HTTP_KV_PREFIX) > MC_HTTP_KEY_MAX)
    return MC_EINVAL;
  snprintf(key, len, "%s%s", MC_HTTP_KV_PREFIX, k);
  return 0;
}

/* Refresh loop: POST (touch) every published key each TTL/3; PUT again
 * whatever the server no longer has or what failed before. */
static void *refresh_main(void *arg) {
  http_md *m = arg;
  int period = m->ttl_s * 1000 / 3;
  pthread_mutex_lock(&m->mu);
  while (!m->stop) {
    int failed = 0;
    for (pub *p = m->pubs; p && !m->stop; p = p->next) {
      char key[MC_HTTP_KEY_MAX + 1], err[512] = "";
      seg_key(p->segment, key, sizeof(key));
      int t = m->timeout_ms < period ? m->timeout_ms : period;
      int rc = MC_ENOENT;
      if (!p->dirty)
        rc = request(m->base, m->auth, "POST", "key", key, m->ttl_s, NULL, 0, t, NULL, NULL, err, sizeof(err));
      if (rc == MC_ENOENT)
        rc = request(m->base, m->auth, "PUT", "key", key, m->ttl_s, p->json, p->len, t, NULL, NULL, err, sizeof(err));
      p->dirty = rc != 0;
      if (rc) {
        failed = 1;
        if (!m->degraded)
          MC_WARN(m->log, "http-md", "refreshing segment '%s' failed: %s; retrying every %d ms",
                  p->segment, err, RETRY_MS);
        m->degraded = 1;
      }
    }
    if (!failed && m->degraded) {
      MC_INFO(m->log, "http-md", "metadata server %s reachable again", m->base);
      m->degraded = 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int wait = failed ? RETRY_MS : period;
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    if (!m->stop)
      pthread_cond_timedwait(&m->cv, &m->mu, &ts);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static void http_close(void *ctx);

static int http_open(const mc_metadata_args *args, void **ctx) {
  http_md *m = calloc(1, sizeof(*m));
  if (!m)
    return MC_ENOMEM;
  m->log = args->log;
  m->timeout_ms = args->timeout_ms ? (int)args->timeout_ms : DEFAULT_TIMEOUT_MS;
  m->ttl_s = DEFAULT_TTL_S;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&m->mu, NULL);
  curl_global_init(CURL_GLOBAL_DEFAULT); /* refcounted; thread-safe in curl >= 7.84 */
  const char *url = args->url;
  const char *q = strchr(url, '?');
  size_t n = q ? (size_t)(q - url) : strlen(url);
  const char *hostpart = url + strlen("http://");
  if (n >= sizeof(m->base) || n <= strlen("http://") || *hostpart == '/' ||
      !memchr(hostpart, '/', n - strlen("http://"))) {
    MC_ERROR(m->log, "http-md", "metadata '%s': want http://host:port/path", url);
    http_close(m);
    return MC_EINVAL;
  }
  memcpy(m->base, url, n);
  m->base[n] = 0;
  if (args->token && mc_http_auth_header(args->token, m->auth, sizeof m->auth)) {
    MC_ERROR(m->log, "http-md", "cluster token longer than %d bytes", MC_TOKEN_MAX);
    http_close(m);
    return MC_EINVAL;
  }
  if (q) {
    char *end = NULL;
    long v = -1;
    if (strncmp(q, "?ttl=", 5) == 0)
      v = strtol(q + 5, &end, 10);
    if (v < 0 || v > MAX_TTL_S || !end || *end) {
      MC_ERROR(m->log, "http-md", "metadata '%s': the only parameter is ttl=0..%d (seconds)",
               url, MAX_TTL_S);
      http_close(m);
      return MC_EINVAL;
    }
    m->ttl_s = (int)v;
  }
  MC_INFO(m->log, "http-md", "metadata backend on %s (ttl %d s)", m->base, m->ttl_s);
  *ctx = m;
  return 0;
}

static void free_pub(pub *p) {
  free(p->segment);
  free(p->json);
  free(p);
}

static void http_close(void *ctx) {
  http_md *m = ctx;
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (m->thread_running)
    pthread_join(m->thread, NULL);
  int t = m->timeout_ms < 2000 ? m->timeout_ms : 2000;
  while (m->pubs) {
    pub *p = m->pubs;
    m->pubs = p->next;
    char key[MC_HTTP_KEY_MAX + 1], err[512];
    /* Remove what we published now rather than after the TTL. */
    if (m->base[0] && seg_key(p->segment, key, sizeof(key)) == 0)
      (void)request(m->base, m->auth, "DELETE", "key", key, -1, NULL, 0, t, NULL, NULL, err, sizeof(err));
    free_pub(p);
  }
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  curl_global_cleanup();
  free(m);
}

static int http_local_name(void *ctx, char *buf, size_t len) {
  (void)ctx;
  (void)buf;
  (void)len;
  return MC_ENOTSUP;
}

static int http_publish(void *ctx, const char *segment, const char *json, size_t len) {
  http_md *m = ctx;
  char key[MC_HTTP_KEY_MAX + 1], err[512] = "";
  if (seg_key(segment, key, sizeof(key)) != 0 || !json || !len || len > MC_DESC_JSON_MAX) {
    MC_ERROR(m->log, "http-md", "publish: bad segment name or descriptor (segment '%s', %zu bytes)",
             segment ? segment : "(null)", len);
    return MC_EINVAL;
  }
  pub *np = calloc(1, sizeof(*np));
  if (!np || !(np->segment = strdup(segment)) || !(np->json = malloc(len))) {
    if (np)
      free(np->segment);
    free(np);
    return MC_ENOMEM;
  }
  memcpy(np->json, json, len);
  np->len = len;
  int rc = request(m->base, m->auth, "PUT", "key", key, m->ttl_s > 0 ? m->ttl_s : -1, json,
                   len, m->timeout_ms, NULL, NULL, err, sizeof(err));
  np->dirty = rc != 0;
  pthread_mutex_lock(&m->mu);
  for (pub **pp = &m->pubs; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->segment, segment) == 0) {
      pub *old = *pp;
      *pp = old->next;
      free_pub(old);
      break;
    }
  }
  np->next = m->pubs;
  m->pubs = np;
  int trc = 0;
  if (m->ttl_s > 0 && !m->thread_running) {
    if (pthread_create(&m->thread, NULL, refresh_main, m) == 0)
      m->thread_running = 1;
    else
      trc = MC_ENOMEM;
  }
  pthread_mutex_unlock(&m->mu);
  if (rc) {
    MC_ERROR(m->log, "http-md", "publishing segment '%s' failed: %s", segment, err);
    return rc;
  }
  return trc;
}

static int http_unpublish(void *ctx, const char *segment) {
  http_md *m = ctx;
  char key[MC_HTTP_KEY_MAX + 1], err[512] = "";
  if (seg_key(segment, key, sizeof(key)) != 0)
    return MC_EINVAL;
  pthread_mutex_lock(&m->mu);
  for (pub **pp = &m->pubs; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->segment, segment) == 0) {
      pub *old = *pp;
      *pp = old->next;
      free_pub(old);
      break;
    }
  }
  pthread_mutex_unlock(&m->mu);
  int rc = request(m->base, m->auth, "DELETE", "key", key, -1, NULL, 0, m->timeout_ms, NULL, NULL,
                   err, sizeof(err));
  if (rc && rc != MC_ENOENT)
    MC_WARN(m->log, "http-md", "unpublishing segment '%s' failed: %s", segment, err);
  return rc == MC_ENOENT ? 0 : rc;
}

static int http_fetch(void *ctx, const char *segment, char **json, size_t *len) {
  http_md *m = ctx;
  char key[MC_HTTP_KEY_MAX + 1], err[512] = "";
  if (seg_key(segment, key, sizeof(key)) != 0)
    return MC_EINVAL;
  char *body = NULL;
  size_t n = 0;
  int rc = request(m->base, m->auth, "GET", "key", key, -1, NULL, 0, m->timeout_ms, &body, &n,
                   err, sizeof(err));
  if (rc == MC_ENOENT)
    return rc;
  if (rc) {
    MC_WARN(m->log, "http-md", "fetching segment '%s' failed: %s", segment, err);
    mc_last_error_set("fetching segment '%s' failed: %s", segment, err);
    return rc;
  }
  mc_seg_desc *d = NULL;
  char why[256] = "";
  rc = mc_desc_decode(body, n, &d, why, sizeof(why));
  mc_desc_free(d);
  if (rc) {
    MC_ERROR(m->log, "http-md", "key %s on %s holds a malformed segment descriptor: %s",
             key, m->base, why);
    free(body);
    return MC_EPROTO;
  }
  *json = body;
  *len = n;
  return 0;
}

static int http_kv_put(void *ctx, const char *k, const void *val, size_t len) {
  http_md *m = ctx;
  char key[MC_HTTP_KEY_MAX + 64], err[512] = "";
  if (kv_key(k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = request(m->base, m->auth, "PUT", "key", key, -1, val, len, m->timeout_ms, NULL, NULL,
                   err, sizeof(err));
  if (rc)
    MC_WARN(m->log, "http-md", "kv put '%s' failed: %s", k, err);
  return rc;
}

static int http_kv_get(void *ctx, const char *k, void **val, size_t *len) {
  http_md *m = ctx;
  char key[MC_HTTP_KEY_MAX + 64], err[512] = "";
  if (kv_key(k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  char *body = NULL;
  int rc = request(m->base, m->auth, "GET", "key", key, -1, NULL, 0, m->timeout_ms, &body, len,
                   err, sizeof(err));
  if (rc && rc != MC_ENOENT)
    MC_WARN(m->log, "http-md", "kv get '%s' failed: %s", k, err);
  if (rc == 0)
    *val = body;
  return rc;
}

static int http_kv_delete(void *ctx, const char *k) {
  http_md *m = ctx;
  char key[MC_HTTP_KEY_MAX + 64], err[512] = "";
  if (kv_key(k, key, sizeof(key)) != 0)
    return MC_EINVAL;
  int rc = request(m->base, m->auth, "DELETE", "key", key, -1, NULL, 0, m->timeout_ms, NULL, NULL,
                   err, sizeof(err));
  if (rc && rc != MC_ENOENT)
    MC_WARN(m->log, "http-md", "kv delete '%s' failed: %s", k, err);
  return rc;
}

const mc_metadata_ops mc_metadata_http_ops = {
    .scheme = "http",
    .open = http_open,
    .close = http_close,
    .local_name = http_local_name,
    .publish = http_publish,
    .unpublish = http_unpublish,
    .fetch = http_fetch,
    .watch = NULL,
    .kv_put = http_kv_put,
    .kv_get = http_kv_get,
    .kv_delete = http_kv_delete,
};
