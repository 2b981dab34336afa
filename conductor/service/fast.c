/* See fast.h. */
#include "fast.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd {
  const char *p, *end;
} rd;

static void ws(rd *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

static int isdig(char c) {
  return c >= '0' && c <= '9';
}

/* A JSON number token: its end in *TEND, whether it is an integer (no
 * fraction, no exponent).  0 when the text there is not one. */
static int number(rd *r, const char **tend, int *integer) {
  const char *p = r->p, *e = r->end;
  if (p < e && *p == '-')
    p++;
  if (p >= e || !isdig(*p))
    return 0;
  if (*p == '0')
    p++;
  else
    while (p < e && isdig(*p))
      p++;
  *integer = 1;
  if (p < e && *p == '.') {
    *integer = 0;
    p++;
    if (p >= e || !isdig(*p))
      return 0;
    while (p < e && isdig(*p))
      p++;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    *integer = 0;
    p++;
    if (p < e && (*p == '+' || *p == '-'))
      p++;
    if (p >= e || !isdig(*p))
      return 0;
    while (p < e && isdig(*p))
      p++;
  }
  *tend = p;
  return 1;
}

/* A number as jansson reads it into json_number_value: an integer token
 * through long long (out of range: jansson refuses it, so do we), another
 * through strtod (overflow: likewise). */
static int num_value(rd *r, double *out) {
  const char *t;
  int integer;
  if (!number(r, &t, &integer))
    return 0;
  char tok[64];
  size_t n = (size_t)(t - r->p);
  if (n >= sizeof tok)
    return 0;
  memcpy(tok, r->p, n);
  tok[n] = 0;
  r->p = t;
  errno = 0;
  if (integer) {
    long long v = strtoll(tok, NULL, 10);
    if (errno)
      return 0;
    *out = (double)v;
    return 1;
  }
  double v = strtod(tok, NULL);
  if (!isfinite(v))
    return 0;
  *out = v;
  return 1;
}

/* One block id: an integer token 0..2^63-1 or a string of 1..16 hex
 * digits (after an optional 0x), no escapes. */
static int block(rd *r, uint64_t *out) {
  const char *p = r->p, *e = r->end;
  if (p < e && *p == '"') {
    p++;
    if (e - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
      p += 2;
    uint64_t x = 0;
    int n = 0;
    for (; p < e && *p != '"'; p++, n++) {
      char c = *p;
      int d = isdig(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0 || n >= 16)
        return 0;
      x = x << 4 | (uint64_t)d;
    }
    if (p >= e || !n)
      return 0;
    r->p = p + 1;
    *out = x;
    return 1;
  }
  if (p >= e || !isdig(*p) || (*p == '0' && p + 1 < e && isdig(p[1])))
    return 0;
  uint64_t x = 0;
  for (; p < e && isdig(*p); p++) {
    if (x > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(*p - '0')) / 10)
      return 0; /* over INT64_MAX: jansson refuses the number */
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (p < e && (*p == '.' || *p == 'e' || *p == 'E'))
    return 0; /* a real: not a block id */
  r->p = p;
  *out = x;
  return 1;
}

static int blocks(rd *r, size_t max_blocks, uint64_t *buf, size_t cap, cs_sched_req *q) {
  if (r->p >= r->end || *r->p != '[')
    return 0;
  r->p++;
  ws(r);
  size_t n = 0, bcap = cap;
  uint64_t *b = buf;
  int rc = 0;
  if (r->p < r->end && *r->p == ']')
    goto out; /* empty: the general path says why that is wrong */
  for (;;) {
    uint64_t v;
    if (n >= max_blocks || !block(r, &v))
      goto out;
    if (n == bcap) {
      size_t nc = bcap ? bcap * 2 : 256;
      uint64_t *nb = malloc(nc * sizeof *nb);
      if (!nb) {
        rc = MC_ENOMEM;
        goto out;
      }
      memcpy(nb, b, n * sizeof *nb);
      if (b != buf)
        free(b);
      b = nb;
      bcap = nc;
    }
    b[n++] = v;
    ws(r);
    if (r->p < r->end && *r->p == ',') {
      r->p++;
      ws(r);
      continue;
    }
    if (r->p < r->end && *r->p == ']') {
      r->p++;
      q->blocks = b;
      q->n_blocks = n;
      return 1;
    }
    goto out;
  }
out:
  if (b != buf)
    free(b);
  return rc;
}

int cs_fast_schedule_parse(const char *body, size_t len, size_t max_blocks, uint64_t *buf,
                           size_t cap, cs_sched_req *q) {
  static const char *const keys[] = {"blocks", "input_length", "output_length", "ttft_slo_s",
                                     "tbt_slo_s"};
  /* The general path's defaults and ranges (api.c do_schedule). */
  static const double lo[] = {0, 1, 0, 0, 0}, hi[] = {0, 4294967295.0, 4294967295.0, 1e9, 1e9};
  memset(q, 0, sizeof *q);
  if (!body)
    return 0;
  rd r = {body, body + len};
  unsigned seen = 0;
  double v[5] = {0, 0, 0, 0, 0};
  int rc = 0;
  ws(&r);
  if (r.p >= r.end || *r.p != '{')
    return 0;
  r.p++;
  ws(&r);
  if (r.p < r.end && *r.p == '}')
    return 0;
  for (;;) {
    if (r.p >= r.end || *r.p != '"')
      goto fail;
    const char *k = ++r.p;
    while (r.p < r.end && *r.p != '"' && *r.p != '\\')
      r.p++;
    if (r.p >= r.end || *r.p != '"')
      goto fail;
    size_t kl = (size_t)(r.p - k);
    r.p++;
    int which = -1;
    for (int i = 0; i < 5; i++)
      if (strlen(keys[i]) == kl && !memcmp(keys[i], k, kl))
        which = i;
    if (which < 0 || (seen & (1u << which)))
      goto fail; /* another key or a duplicate */
    seen |= 1u << which;
    ws(&r);
    if (r.p >= r.end || *r.p != ':')
      goto fail;
    r.p++;
    ws(&r);
    if (which == 0) {
      rc = blocks(&r, max_blocks, buf, cap, q);
      if (rc != 1)
        goto fail;
      rc = 0;
    } else if (!num_value(&r, &v[which]) || !(v[which] >= lo[which] && v[which] <= hi[which])) {
      goto fail;
    }
    ws(&r);
    if (r.p < r.end && *r.p == ',') {
      r.p++;
      ws(&r);
      continue;
    }
    if (r.p < r.end && *r.p == '}') {
      r.p++;
      break;
    }
    goto fail;
  }
  ws(&r);
  if (r.p != r.end || !(seen & 1u) || !(seen & 2u))
    goto fail; /* trailing bytes, or a required key missing */
  q->input_len = v[1];
  q->output_len = v[2];
  q->ttft_slo_s = v[3];
  q->tbt_slo_s = v[4];
  return 1;
fail:
  if (q->blocks && q->blocks != buf)
    free(q->blocks);
  q->blocks = NULL;
  q->n_blocks = 0;
  return rc;
}

/* ------------------------------------------------------------- answer */

typedef struct wr {
  char *p;
  size_t n, cap;
  int bad;
} wr;

static void put(wr *w, const char *s, size_t n) {
  if (w->bad || w->n + n + 1 > w->cap) {
    w->bad = 1;
    return;
  }
  memcpy(w->p + w->n, s, n);
  w->n += n;
  w->p[w->n] = 0;
}

static void puts_(wr *w, const char *s) {
  put(w, s, strlen(s));
}

/* jansson's real: "%.9g", ".0" added when it reads as an integer, the
 * exponent without '+' or leading zeros (jsonp_dtostr). */
static void real(wr *w, double v) {
  char b[64];
  if (!isfinite(v)) {
    w->bad = 1; /* jansson has no such real: the general path decides */
    return;
  }
  int n = snprintf(b, sizeof b - 3, "%.9g", v);
  if (n < 0 || (size_t)n >= sizeof b - 3) {
    w->bad = 1;
    return;
  }
  size_t len = (size_t)n;
  if (!strchr(b, '.') && !strchr(b, 'e')) {
    b[len++] = '.';
    b[len++] = '0';
    b[len] = 0;
  }
  char *s = strchr(b, 'e');
  if (s) {
    s++;
    char *e = s + 1;
    if (*s == '-')
      s++;
    while (*e == '0')
      e++;
    if (e != s) {
      memmove(s, e, len - (size_t)(e - b) + 1);
      len -= (size_t)(e - s);
    }
  }
  put(w, b, len);
}

static void str(wr *w, const char *s) {
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == '"' || *c == '\\')
      w->bad = 1; /* would need escaping or UTF-8 checks: jansson's job */
  put(w, "\"", 1);
  puts_(w, s);
  put(w, "\"", 1);
}

static void key(wr *w, const char *k) {
  put(w, ",\"", 2);
  puts_(w, k);
  put(w, "\":", 2);
}

char *cs_fast_schedule_reply(const cs_sched_ans *a) {
  const mc_cond_decision *d = &a->d;
  wr w = {malloc(1024), 0, 1024, 0};
  if (!w.p)
    return NULL;
  char num[32];
  puts_(&w, d->reject ? "{\"admitted\":false" : "{\"admitted\":true");
  key(&w, "reason");
  str(&w, mc_cond_reject_str(d->reject));
  key(&w, "expected_ttft_s");
  real(&w, d->prefill.ttft_s);
  key(&w, "expected_tbt_s");
  real(&w, d->decode.tbt_s);
  key(&w, "prefill_load");
  real(&w, d->prefill_load);
  key(&w, "decode_load");
  real(&w, d->decode_load_now);
  key(&w, "queue_s");
  real(&w, d->prefill.queue_s);
  if (d->prefill.id >= 0) {
    key(&w, "prefill");
    str(&w, a->prefill);
    key(&w, "prefix_blocks");
    snprintf(num, sizeof num, "%" PRIu32, d->prefill.prefix_blocks);
    puts_(&w, num);
    key(&w, "local_blocks");
    snprintf(num, sizeof num, "%" PRIu32, d->prefill.local_blocks);
    puts_(&w, num);
    key(&w, "fetch_from");
    if (d->prefill.fetch_from >= 0)
      str(&w, a->fetch_from);
    else
      puts_(&w, "null");
    key(&w, "transfer_s");
    real(&w, d->prefill.transfer_s);
  }
  if (d->decode.id >= 0) {
    key(&w, "decode");
    str(&w, a->decode);
  }
  if (!d->reject) {
    key(&w, "request_id");
    snprintf(num, sizeof num, "\"%" PRIu64 "\"", d->req_id);
    puts_(&w, num);
  }
  put(&w, "}", 1);
  if (w.bad) {
    free(w.p);
    return NULL;
  }
  return w.p;
}
