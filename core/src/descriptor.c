/* Segment descriptor <-> JSON (see descriptor.h for the format).
 *
 * The decoder is the trust boundary for everything a peer tells us about its
 * memory: every field is type-checked and bounded, and the first problem is
 * reported as MC_EPROTO with the field's JSON path ("buffers[3].len: ...").
 * Unknown members are ignored so that a newer writer can add optional fields
 * without bumping "format". */
#include "descriptor.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mooncake/errors.h"

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

/* out must hold b64_encoded_len(n) + 1 bytes. */
static void b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t i = 0, o = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/* Strict decoding: length a multiple of 4, alphabet only, '=' only as the
 * final one or two characters, unused trailing bits zero (so every blob has
 * exactly one accepted spelling).  Returns the decoded length, -1 when the
 * text is invalid, or -2 when it would not fit in cap bytes. */
static long b64_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  if (n % 4)
    return -1;
  size_t pad = 0;
  if (n && in[n - 1] == '=')
    pad = (n >= 2 && in[n - 2] == '=') ? 2 : 1;
  size_t outlen = n / 4 * 3 - pad;
  if (outlen > cap)
    return -2;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int last = i + 4 == n;
    int v[4];
    for (int k = 0; k < 4; k++) {
      if (last && in[i + k] == '=' && k >= 4 - (int)pad) {
        v[k] = 0;
        continue;
      }
      v[k] = b64_value(in[i + k]);
      if (v[k] < 0)
        return -1;
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                 (uint32_t)v[2] << 6 | (uint32_t)v[3];
    if (last && pad == 2 && (w & 0xffff))
      return -1;
    if (last && pad == 1 && (w & 0xff))
      return -1;
    out[o++] = (uint8_t)(w >> 16);
    if (!(last && pad == 2))
      out[o++] = (uint8_t)(w >> 8);
    if (!(last && pad >= 1))
      out[o++] = (uint8_t)w;
  }
  return (long)o;
}

/* Segment names end up in logs and on the p2p wire. */
static int has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

/* ---- encoding ---- */

static int cmp_by_addr(const void *a, const void *b) {
  const mc_desc_buffer *x = *(const mc_desc_buffer *const *)a;
  const mc_desc_buffer *y = *(const mc_desc_buffer *const *)b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static json_t *b64_json(const uint8_t *bytes, size_t n) {
  char *s = malloc(b64_encoded_len(n) + 1);
  if (!s)
    return NULL;
  b64_encode(bytes, n, s);
  json_t *j = json_string(s);
  free(s);
  return j;
}

/* json_object_set_new that also fails when value is NULL (allocation). */
static int set_new(json_t *obj, const char *key, json_t *val) {
  return val ? json_object_set_new(obj, key, val) : -1;
}

static int append_new(json_t *arr, json_t *val) {
  return val ? json_array_append_new(arr, val) : -1;
}

/* Checks what the decoder would refuse, so an encoded descriptor always
 * decodes; MC_EINVAL otherwise. */
static int encode_check(const mc_seg_desc *d) {
  size_t nl = strnlen(d->name, sizeof d->name);
  if (nl == 0 || nl >= sizeof d->name || has_control(d->name))
    return MC_EINVAL;
  if (strnlen(d->host_id, sizeof d->host_id) >= sizeof d->host_id)
    return MC_EINVAL;
  if (strnlen(d->listen, sizeof d->listen) >= sizeof d->listen ||
      has_control(d->listen))
    return MC_EINVAL;
  if (d->version > INT64_MAX || d->ntransports > MC_DESC_MAX_TRANSPORTS ||
      d->nbuffers > MC_DESC_MAX_BUFFERS)
    return MC_EINVAL;
  if ((d->ntransports && !d->transports) || (d->nbuffers && !d->buffers))
    return MC_EINVAL;
  for (uint32_t i = 0; i < d->ntransports; i++) {
    const mc_desc_transport *t = &d->transports[i];
    size_t tl = strnlen(t->name, sizeof t->name);
    if (tl == 0 || tl >= sizeof t->name || t->len > MC_DESC_MAX ||
        (t->len && !t->blob))
      return MC_EINVAL;
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(d->transports[j].name, t->name) == 0)
        return MC_EINVAL;
  }
  for (uint32_t i = 0; i < d->nbuffers; i++) {
    const mc_desc_buffer *b = &d->buffers[i];
    if (b->len == 0 || b->len > INT64_MAX || b->addr > UINT64_MAX - b->len ||
        b->kind == 0 || (b->kind & (b->kind - 1)) ||
        strnlen(b->location, sizeof b->location) >= sizeof b->location ||
        b->nkeys > d->ntransports || (b->nkeys && !b->keys))
      return MC_EINVAL;
    for (uint32_t k = 0; k < b->nkeys; k++) {
      if (b->keys[k].transport >= d->ntransports ||
          b->keys[k].len > MC_RKEY_MAX)
        return MC_EINVAL;
      for (uint32_t j = 0; j < k; j++)
        if (b->keys[j].transport == b->keys[k].transport)
          return MC_EINVAL;
    }
  }
  return 0;
}

static json_t *encode_buffer(const mc_seg_desc *d, const mc_desc_buffer *b) {
  char addr[24];
  snprintf(addr, sizeof addr, "0x%" PRIx64, b->addr);
  json_t *o = json_object();
  json_t *keys = json_object();
  if (!o || !keys)
    goto fail;
  for (uint32_t k = 0; k < b->nkeys; k++) {
    const mc_desc_key *key = &b->keys[k];
    if (set_new(keys, d->transports[key->transport].name,
                b64_json(key->bytes, key->len)))
      goto fail;
  }
  if (set_new(o, "addr", json_string(addr)) ||
      set_new(o, "len", json_integer((json_int_t)b->len)) ||
      set_new(o, "location", json_string(b->location)) ||
      set_new(o, "kind", json_integer(b->kind)) ||
      json_object_set(o, "keys", keys))
    goto fail;
  json_decref(keys);
  return o;
fail:
  json_decref(keys);
  json_decref(o);
  return NULL;
}

int mc_desc_encode(const mc_seg_desc *d, char **json, size_t *len) {
  if (!d || !json || !len)
    return MC_EINVAL;
  int rc = encode_check(d);
  if (rc)
    return rc;
  /* The wire form is sorted by address whatever the in-memory order. */
  const mc_desc_buffer **order = NULL;
  if (d->nbuffers) {
    order = malloc(d->nbuffers * sizeof *order);
    if (!order)
      return MC_ENOMEM;
    for (uint32_t i = 0; i < d->nbuffers; i++)
      order[i] = &d->buffers[i];
    qsort(order, d->nbuffers, sizeof *order, cmp_by_addr);
    for (uint32_t i = 1; i < d->nbuffers; i++)
      if (order[i]->addr < order[i - 1]->addr + order[i - 1]->len) {
        free(order);
        return MC_EINVAL; /* overlapping buffers */
      }
  }
  rc = MC_ENOMEM;
  json_t *root = json_object();
  json_t *ts = json_array();
  json_t *bs = json_array();
  if (!root || !ts || !bs)
    goto out;
  for (uint32_t i = 0; i < d->ntransports; i++) {
    const mc_desc_transport *t = &d->transports[i];
    json_t *o = json_object();
    if (!o || set_new(o, "name", json_string(t->name)) ||
        set_new(o, "desc", b64_json(t->blob, t->len)) || append_new(ts, o)) {
      json_decref(o);
      goto out;
    }
  }
  for (uint32_t i = 0; i < d->nbuffers; i++)
    if (append_new(bs, encode_buffer(d, order[i])))
      goto out;
  if (set_new(root, "format", json_integer(MC_DESC_FORMAT)) ||
      set_new(root, "name", json_string(d->name)) ||
      set_new(root, "version", json_integer((json_int_t)d->version)) ||
      set_new(root, "host_id", json_string(d->host_id)) ||
      (d->listen[0] && set_new(root, "listen", json_string(d->listen))) ||
      json_object_set(root, "transports", ts) ||
      json_object_set(root, "buffers", bs))
    goto out;
  char *text = json_dumps(root, JSON_COMPACT);
  if (!text)
    goto out;
  size_t n = strlen(text);
  if (n > MC_DESC_JSON_MAX) {
    free(text);
    rc = MC_ERANGE;
    goto out;
  }
  *json = text;
  *len = n;
  rc = 0;
out:
  json_decref(ts);
  json_decref(bs);
  json_decref(root);
  free(order);
  return rc;
}

/* ---- decoding ---- */

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return MC_EPROTO;
}

typedef struct dec {
  char *err;
  size_t errlen;
} dec;

#define FAIL(dc, ...) fail((dc)->err, (dc)->errlen, __VA_ARGS__)

/* Copies a JSON string member into buf (cap includes the NUL).  A missing
 * member is an error unless optional. */
static int get_str(dec *dc, json_t *obj, const char *key, const char *path,
                   char *buf, size_t cap, int nonempty) {
  json_t *v = json_object_get(obj, key);
  if (!v)
    return FAIL(dc, "%s%s: missing", path, key);
  if (!json_is_string(v))
    return FAIL(dc, "%s%s: must be a string", path, key);
  size_t n = json_string_length(v);
  if (n >= cap)
    return FAIL(dc, "%s%s: longer than %zu bytes", path, key, cap - 1);
  if (nonempty && n == 0)
    return FAIL(dc, "%s%s: must not be empty", path, key);
  memcpy(buf, json_string_value(v), n + 1);
  return 0;
}

static int get_uint(dec *dc, json_t *obj, const char *key, const char *path,
                    uint64_t *out) {
  json_t *v = json_object_get(obj, key);
  if (!v)
    return FAIL(dc, "%s%s: missing", path, key);
  if (!json_is_integer(v))
    return FAIL(dc, "%s%s: must be an integer", path, key);
  json_int_t x = json_integer_value(v);
  if (x < 0)
    return FAIL(dc, "%s%s: must be >= 0", path, key);
  *out = (uint64_t)x;
  return 0;
}

/* "0x" followed by 1-16 hex digits. */
static int parse_hex64(const char *s, size_t n, uint64_t *out) {
  if (n < 3 || n > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
    return -1;
  uint64_t v = 0;
  for (size_t i = 2; i < n; i++) {
    char c = s[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

static int get_blob(dec *dc, json_t *v, const char *path, uint8_t *out,
                    size_t cap, uint32_t *len) {
  if (!json_is_string(v))
    return FAIL(dc, "%s: must be a base64 string", path);
  size_t n = json_string_length(v);
  if (n > b64_encoded_len(cap))
    return FAIL(dc, "%s: blob longer than %zu bytes", path, cap);
  long r = b64_decode(json_string_value(v), n, out, cap);
  if (r == -2)
    return FAIL(dc, "%s: blob longer than %zu bytes", path, cap);
  if (r < 0)
    return FAIL(dc, "%s: invalid base64", path);
  *len = (uint32_t)r;
  return 0;
}

static int decode_transports(dec *dc, json_t *root, mc_seg_desc *d) {
  json_t *ts = json_object_get(root, "transports");
  if (!ts)
    return FAIL(dc, "transports: missing");
  if (!json_is_array(ts))
    return FAIL(dc, "transports: must be an array");
  size_t n = json_array_size(ts);
  if (n > MC_DESC_MAX_TRANSPORTS)
    return FAIL(dc, "transports: %zu entries, at most %d allowed", n,
                MC_DESC_MAX_TRANSPORTS);
  if (n == 0)
    return 0;
  d->transports = calloc(n, sizeof *d->transports);
  if (!d->transports)
    return MC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    char path[48];
    snprintf(path, sizeof path, "transports[%zu].", i);
    json_t *o = json_array_get(ts, i);
    mc_desc_transport *t = &d->transports[i];
    if (!json_is_object(o))
      return FAIL(dc, "transports[%zu]: must be an object", i);
    int rc = get_str(dc, o, "name", path, t->name, sizeof t->name, 1);
    if (rc)
      return rc;
    for (size_t j = 0; j < i; j++)
      if (strcmp(d->transports[j].name, t->name) == 0)
        return FAIL(dc, "transports[%zu].name: duplicate transport '%s'", i,
                    t->name);
    json_t *blob = json_object_get(o, "desc");
    snprintf(path, sizeof path, "transports[%zu].desc", i);
    if (!blob)
      return FAIL(dc, "%s: missing", path);
    uint8_t tmp[MC_DESC_MAX];
    rc = get_blob(dc, blob, path, tmp, sizeof tmp, &t->len);
    if (rc)
      return rc;
    /* At least one byte so blob is never NULL, even for an empty blob. */
    t->blob = malloc(t->len ? t->len : 1);
    if (!t->blob)
      return MC_ENOMEM;
    memcpy(t->blob, tmp, t->len);
    d->ntransports = (uint32_t)i + 1;
  }
  return 0;
}

static int decode_keys(dec *dc, json_t *keys, size_t bi, mc_seg_desc *d,
                       mc_desc_buffer *b) {
  if (!json_is_object(keys))
    return FAIL(dc, "buffers[%zu].keys: must be an object", bi);
  size_t n = json_object_size(keys);
  if (n > d->ntransports)
    return FAIL(dc, "buffers[%zu].keys: %zu keys for %u transports", bi, n,
                d->ntransports);
  if (n == 0)
    return 0;
  b->keys = calloc(n, sizeof *b->keys);
  if (!b->keys)
    return MC_ENOMEM;
  const char *name;
  json_t *v;
  json_object_foreach(keys, name, v) {
    int ti = mc_desc_find_transport(d, name);
    if (ti < 0)
      return FAIL(dc, "buffers[%zu].keys.%.64s: no such transport", bi, name);
    mc_desc_key *k = &b->keys[b->nkeys];
    char path[128];
    snprintf(path, sizeof path, "buffers[%zu].keys.%s", bi, name);
    k->transport = (uint32_t)ti;
    int rc = get_blob(dc, v, path, k->bytes, MC_RKEY_MAX, &k->len);
    if (rc)
      return rc;
    b->nkeys++;
  }
  return 0;
}

static int decode_buffers(dec *dc, json_t *root, mc_seg_desc *d) {
  json_t *bs = json_object_get(root, "buffers");
  if (!bs)
    return FAIL(dc, "buffers: missing");
  if (!json_is_array(bs))
    return FAIL(dc, "buffers: must be an array");
  size_t n = json_array_size(bs);
  if (n > MC_DESC_MAX_BUFFERS)
    return FAIL(dc, "buffers: %zu entries, at most %d allowed", n,
                MC_DESC_MAX_BUFFERS);
  if (n == 0)
    return 0;
  d->buffers = calloc(n, sizeof *d->buffers);
  if (!d->buffers)
    return MC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    char path[48];
    snprintf(path, sizeof path, "buffers[%zu].", i);
    json_t *o = json_array_get(bs, i);
    mc_desc_buffer *b = &d->buffers[i];
    d->nbuffers = (uint32_t)i + 1; /* so mc_desc_free sees b->keys */
    if (!json_is_object(o))
      return FAIL(dc, "buffers[%zu]: must be an object", i);
    json_t *a = json_object_get(o, "addr");
    if (!a)
      return FAIL(dc, "buffers[%zu].addr: missing", i);
    if (!json_is_string(a) ||
        parse_hex64(json_string_value(a), json_string_length(a), &b->addr))
      return FAIL(dc, "buffers[%zu].addr: must be a \"0x...\" 64-bit hex string",
                  i);
    int rc = get_uint(dc, o, "len", path, &b->len);
    if (rc)
      return rc;
    if (b->len == 0)
      return FAIL(dc, "buffers[%zu].len: must be > 0", i);
    if (b->addr > UINT64_MAX - b->len)
      return FAIL(dc, "buffers[%zu].len: 0x%" PRIx64 "+%" PRIu64
                      " wraps the address space", i, b->addr, b->len);
    if (i > 0) {
      const mc_desc_buffer *p = &d->buffers[i - 1];
      if (b->addr < p->addr)
        return FAIL(dc, "buffers[%zu].addr: 0x%" PRIx64 " not sorted (after 0x%"
                        PRIx64 ")", i, b->addr, p->addr);
      if (b->addr < p->addr + p->len)
        return FAIL(dc, "buffers[%zu].addr: 0x%" PRIx64
                        " overlaps buffers[%zu] [0x%" PRIx64 ", 0x%" PRIx64 ")",
                    i, b->addr, i - 1, p->addr, p->addr + p->len);
    }
    uint64_t kind;
    rc = get_uint(dc, o, "kind", path, &kind);
    if (rc)
      return rc;
    if (kind == 0 || kind > UINT32_MAX || (kind & (kind - 1)))
      return FAIL(dc, "buffers[%zu].kind: %" PRIu64
                      " is not a single memory-kind bit", i, kind);
    b->kind = (uint32_t)kind;
    rc = get_str(dc, o, "location", path, b->location, sizeof b->location, 0);
    if (rc)
      return rc;
    json_t *keys = json_object_get(o, "keys");
    if (!keys)
      return FAIL(dc, "buffers[%zu].keys: missing", i);
    rc = decode_keys(dc, keys, i, d, b);
    if (rc)
      return rc;
  }
  return 0;
}

static int decode_root(dec *dc, json_t *root, mc_seg_desc *d) {
  if (!json_is_object(root))
    return FAIL(dc, "descriptor: must be a JSON object");
  uint64_t format;
  int rc = get_uint(dc, root, "format", "", &format);
  if (rc)
    return rc;
  if (format != MC_DESC_FORMAT)
    return FAIL(dc, "format: %" PRIu64 " unsupported (this build reads %d)",
                format, MC_DESC_FORMAT);
  rc = get_str(dc, root, "name", "", d->name, sizeof d->name, 1);
  if (!rc && has_control(d->name))
    rc = FAIL(dc, "name: control characters not allowed");
  if (!rc)
    rc = get_uint(dc, root, "version", "", &d->version);
  if (!rc)
    rc = get_str(dc, root, "host_id", "", d->host_id, sizeof d->host_id, 0);
  /* Optional: engines before ABI 1.2 did not advertise their listener. */
  if (!rc && json_object_get(root, "listen")) {
    rc = get_str(dc, root, "listen", "", d->listen, sizeof d->listen, 0);
    if (!rc && has_control(d->listen))
      rc = FAIL(dc, "listen: control characters not allowed");
  }
  if (!rc)
    rc = decode_transports(dc, root, d);
  if (!rc)
    rc = decode_buffers(dc, root, d);
  return rc;
}

int mc_desc_decode(const char *json, size_t len, mc_seg_desc **out, char *err,
                   size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  if (!json || !out)
    return MC_EINVAL;
  *out = NULL;
  if (len > MC_DESC_JSON_MAX)
    return fail(err, errlen, "descriptor: %zu bytes, at most %u allowed", len,
                MC_DESC_JSON_MAX);
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return fail(err, errlen, "descriptor: invalid JSON at line %d column %d: %s",
                je.line, je.column, je.text);
  mc_seg_desc *d = calloc(1, sizeof *d);
  if (!d) {
    json_decref(root);
    return MC_ENOMEM;
  }
  dec dc = {err, errlen};
  int rc = decode_root(&dc, root, d);
  json_decref(root);
  if (rc) {
    mc_desc_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

long mc_desc_find_buffer(const mc_seg_desc *d, uint64_t addr, uint64_t len) {
  if (!d || d->nbuffers == 0)
    return -1;
  /* Last buffer starting at or below addr. */
  size_t lo = 0, hi = d->nbuffers;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->buffers[mid].addr <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return -1;
  const mc_desc_buffer *b = &d->buffers[lo - 1];
  uint64_t off = addr - b->addr;
  if (off >= b->len || len > b->len - off)
    return -1;
  return (long)(lo - 1);
}

int mc_desc_find_transport(const mc_seg_desc *d, const char *name) {
  if (!d || !name)
    return -1;
  for (uint32_t i = 0; i < d->ntransports; i++)
    if (strcmp(d->transports[i].name, name) == 0)
      return (int)i;
  return -1;
}

void mc_desc_free(mc_seg_desc *d) {
  if (!d)
    return;
  for (uint32_t i = 0; i < d->ntransports; i++)
    free(d->transports[i].blob);
  for (uint32_t i = 0; i < d->nbuffers; i++)
    free(d->buffers[i].keys);
  free(d->transports);
  free(d->buffers);
  free(d);
}
