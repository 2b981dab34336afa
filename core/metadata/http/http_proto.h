/* Internal: the HTTP metadata protocol, shared by the client backend
 * (module_http.c over http_client.c) and mooncake-metadata-server.
 *
 *   GET    <path>?key=K            200 value | 404
 *   PUT    <path>?key=K[&ttl=S]    body = value; 200.  With ttl the key
 *                                  expires S seconds after its last PUT
 *   POST   <path>?key=K&ttl=S      refreshes K's expiry (a heartbeat
 *                                  without resending the value); 200 | 404
 *   DELETE <path>?key=K            200 | 404
 *   GET    <path>?prefix=P         200 {"keys":["k1","k2",...],
 *                                  "revs":[r1,r2,...]} (sorted by key)
 *
 * Revisions (since the key/value API, mooncake/kv.h): every write bumps
 * the server's revision counter; a key's revision is the counter value of
 * its last PUT.  GET and PUT answer it in the header X-Mooncake-Revision;
 * listings carry it in "revs" (old clients ignore the member).
 *   PUT    <path>?key=K&rev=R[&ttl=S]  conditional: written only if K's
 *                                  revision is R (0: only if K is absent),
 *                                  else 412 and nothing changes
 *
 * Keys are 1..MC_HTTP_KEY_MAX bytes, URL-encoded in the query.  Segment
 * descriptors live under "mooncake/segments/<name>", generic keys under
 * "mooncake/kv/<key>" (the same layout as the etcd backend). */
#ifndef MC_HTTP_PROTO_H
#define MC_HTTP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MC_HTTP_KEY_MAX 1024
#define MC_HTTP_SEG_PREFIX "mooncake/segments/"
#define MC_HTTP_KV_PREFIX "mooncake/kv/"
#define MC_HTTP_REV_HEADER "X-Mooncake-Revision"

/* Checks a key: 1..MC_HTTP_KEY_MAX bytes, no NUL or control bytes.
 * Returns 0 or MC_EINVAL. */
int mc_http_key_check(const char *key, size_t len);

/* Parses a listing body {"keys":[...]} calling fn for each key (stops if
 * fn returns non-zero).  MC_EPROTO with a reason in err if malformed. */
typedef int (*mc_http_key_fn)(void *arg, const char *key, size_t len);
int mc_http_parse_keys(const char *body, size_t len, mc_http_key_fn fn,
                       void *arg, char *err, size_t errlen);

/* Like mc_http_parse_keys, with each key's revision from "revs" (0 when
 * the server sent none). */
typedef int (*mc_http_keyrev_fn)(void *arg, const char *key, size_t len,
                                 int64_t rev);
int mc_http_parse_keys_rev(const char *body, size_t len, mc_http_keyrev_fn fn,
                           void *arg, char *err, size_t errlen);

/* Lists the keys under prefix on the server at base_url
 * ("http://host:port/path"), calling fn for each.  token: the cluster token
 * to present (token.h), or NULL. */
int mc_http_list_keys(const char *base_url, const char *token,
                      const char *prefix, int timeout_ms, mc_http_key_fn fn,
                      void *arg, char *err, size_t errlen);

/* One request of the protocol (libcurl; http_client.c) to base
 * ("http://host:port/path").  auth: the Authorization header line, or "".
 * param is "key" or "prefix"; ttl >= 0 adds &ttl=.  On 2xx the body (if
 * resp) is returned malloc'd and NUL-terminated.  Errors: MC_ENOENT (404),
 * MC_EACCES (401/403, err says to set the cluster token), MC_EPEER /
 * MC_ETIMEDOUT (unreachable), MC_EINVAL, MC_EPROTO, MC_EIO, with err. */
int mc_http_request(const char *base, const char *auth, const char *method,
                    const char *param, const char *value, int ttl,
                    const void *body, size_t len, int timeout_ms, char **resp,
                    size_t *resp_len, char *err, size_t errlen);

/* mc_http_request with more: extra ("&rev=5" or NULL) is appended to the
 * query; *rev (may be NULL) gets the X-Mooncake-Revision answered (0 when
 * absent).  A 412 answer is MC_EAGAIN (a conditional PUT lost). */
int mc_http_request_ex(const char *base, const char *auth, const char *method,
                       const char *param, const char *value, int ttl,
                       const char *extra, const void *body, size_t len,
                       int timeout_ms, char **resp, size_t *resp_len,
                       int64_t *rev, char *err, size_t errlen);

/* The header that carries the cluster token, "Authorization: Bearer <t>";
 * 0, or MC_ENOSPC if it does not fit in len. */
int mc_http_auth_header(const char *token, char *buf, size_t len);

#endif
