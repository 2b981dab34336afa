/* Helpers of the HTTP metadata protocol (see http_proto.h). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "http/http_proto.h"
#include "mooncake/errors.h"

int mc_http_key_check(const char *key, size_t len) {
  if (!key || len == 0 || len > MC_HTTP_KEY_MAX)
    return MC_EINVAL;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
      return MC_EINVAL;
  return 0;
}

static int parse_listing(const char *body, size_t len, mc_http_key_fn fn,
                         mc_http_keyrev_fn fn_rev, void *arg, char *err,
                         size_t errlen) {
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "key listing is not JSON: %s (line %d)", je.text, je.line);
    return MC_EPROTO;
  }
  int rc = 0;
  json_t *keys = json_object_get(root, "keys");
  json_t *revs = json_object_get(root, "revs");
  if (!json_is_array(revs) || json_array_size(revs) != json_array_size(keys))
    revs = NULL;
  if (!json_is_object(root) || !json_is_array(keys)) {
    snprintf(err, errlen, "key listing lacks a \"keys\" array");
    rc = MC_EPROTO;
  } else {
    for (size_t i = 0; i < json_array_size(keys); i++) {
      json_t *k = json_array_get(keys, i);
      const char *s = json_string_value(k);
      size_t n = s ? json_string_length(k) : 0;
      if (!s || mc_http_key_check(s, n) != 0 || strlen(s) != n) {
        snprintf(err, errlen, "key listing entry %zu is not a valid key", i);
        rc = MC_EPROTO;
        break;
      }
      if (fn && fn(arg, s, n))
        break;
      json_t *r = revs ? json_array_get(revs, i) : NULL;
      if (fn_rev && fn_rev(arg, s, n, json_is_integer(r) ? json_integer_value(r) : 0))
        break;
    }
  }
  json_decref(root);
  return rc;
}

int mc_http_parse_keys(const char *body, size_t len, mc_http_key_fn fn,
                       void *arg, char *err, size_t errlen) {
  return parse_listing(body, len, fn, NULL, arg, err, errlen);
}

int mc_http_parse_keys_rev(const char *body, size_t len, mc_http_keyrev_fn fn,
                           void *arg, char *err, size_t errlen) {
  return parse_listing(body, len, NULL, fn, arg, err, errlen);
}
