/* The HTTP metadata protocol's client side (libcurl): one request, key
 * listings and the token header.  Linked into the HTTP metadata module
 * (module_http.c) and the HTTP tests; mooncake-metadata-server does not
 * link it (it needs only http_proto.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http/http_proto.h"
#include "mooncake/errors.h"
#include "descriptor.h" /* MC_DESC_JSON_MAX */
#include "token.h"      /* MC_TOKEN_MAX */

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

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg) {
  size_t n = size * nmemb;
  static const char name[] = MC_HTTP_REV_HEADER ":";
  if (n > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
    char v[32];
    size_t vl = n - (sizeof name - 1);
    if (vl >= sizeof v)
      vl = sizeof v - 1;
    memcpy(v, ptr + sizeof name - 1, vl);
    v[vl] = 0;
    *(int64_t *)arg = strtoll(v, NULL, 10);
  }
  return n;
}

int mc_http_request(const char *base, const char *auth, const char *method,
                   const char *param,
                   const char *value, int ttl, const void *body, size_t len,
                   int timeout_ms, char **resp, size_t *resp_len, char *err,
                   size_t errlen) {
  return mc_http_request_ex(base, auth, method, param, value, ttl, NULL, body, len,
                            timeout_ms, resp, resp_len, NULL, err, errlen);
}

int mc_http_request_ex(const char *base, const char *auth, const char *method,
                       const char *param, const char *value, int ttl,
                       const char *extra, const void *body, size_t len,
                       int timeout_ms, char **resp, size_t *resp_len,
                       int64_t *rev, char *err, size_t errlen) {
  int64_t got_rev = 0;
  if (!extra)
    extra = "";
  CURL *c = curl_easy_init();
  if (!c)
    return MC_ENOMEM;
  char *esc = curl_easy_escape(c, value, 0);
  size_t ulen = strlen(base) + (esc ? strlen(esc) : 0) + strlen(extra) + 64;
  char *url = malloc(ulen);
  if (!esc || !url) {
    curl_free(esc);
    free(url);
    curl_easy_cleanup(c);
    return MC_ENOMEM;
  }
  if (ttl >= 0)
    snprintf(url, ulen, "%s?%s=%s&ttl=%d%s", base, param, esc, ttl, extra);
  else
    snprintf(url, ulen, "%s?%s=%s%s", base, param, esc, extra);
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
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &got_rev);
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
         : status == 412 ? MC_EAGAIN
         : (status == 400 || status == 413 || status == 414) ? MC_EINVAL
         : (status == 401 || status == 403) ? MC_EACCES
         : MC_EIO;
  } else {
    if (rev)
      *rev = got_rev;
  }
  if (rc == 0 && resp) {
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
  int rc = mc_http_request(base_url, auth, "GET", "prefix", prefix, -1, NULL, 0, timeout_ms,
                   &body, &len, err, errlen);
  if (rc == 0)
    rc = mc_http_parse_keys(body, len, fn, arg, err, errlen);
  free(body);
  return rc;
}

