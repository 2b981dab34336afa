/* mooncake-metadata-server input bounds, on the wire:
 *  - a key (or prefix, ttl, rev) whose decoded form holds a NUL ("%00") is
 *    refused with 400 by every method, and the key it would have cut down
 *    to is untouched;
 *  - a value over --max-value-size answers 507 and is not stored, whether
 *    its length is declared (refused before the body) or it comes chunked
 *    (dropped as it arrives: the server's memory stays small);
 *  - past --max-total-size a PUT answers 507; deleting (or a key expiring)
 *    makes room; replacing a key counts only the change in size;
 *  - --max-body still works as the older name of --max-value-size; the
 *    defaults take a 4 MiB value and refuse one byte more;
 *  - bad option values are refused with a message and exit 2. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "mds_fixture.h"
#include "md_util.h"

static const char *bin;

typedef struct body {
  const char *p; /* NULL: synthesize len bytes of 'x' */
  size_t len, off;
} body;

typedef struct resp {
  char text[1024]; /* the first 1023 bytes */
  size_t n, total;
} resp;

static size_t read_body(char *dst, size_t sz, size_t nmemb, void *arg) {
  body *b = arg;
  size_t n = sz * nmemb;
  if (n > b->len - b->off)
    n = b->len - b->off;
  if (b->p)
    memcpy(dst, b->p + b->off, n);
  else
    memset(dst, 'x', n);
  b->off += n;
  return n;
}

static size_t keep_resp(char *p, size_t sz, size_t nmemb, void *arg) {
  resp *r = arg;
  size_t n = sz * nmemb, room = sizeof r->text - 1 - r->n;
  memcpy(r->text + r->n, p, n < room ? n : room);
  r->n += n < room ? n : room;
  r->text[r->n] = 0;
  r->total += n;
  return sz * nmemb;
}

/* One request: method on url + query, with a body for PUT (val NULL and
 * len > 0: len bytes of 'x'; chunked: no Content-Length).  The status;
 * the response text in *r (may be NULL). */
static long req(const mds *s, const char *method, const char *query, const char *val,
                size_t len, int chunked, resp *r) {
  char url[2048];
  snprintf(url, sizeof url, "%s?%s", s->url, query);
  resp sink = {0};
  if (!r)
    r = &sink;
  memset(r, 0, sizeof *r);
  body b = {val, len, 0};
  CURL *c = curl_easy_init();
  CHECK(c);
  struct curl_slist *h = NULL;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_resp);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  if (strcmp(method, "PUT") == 0) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(c, CURLOPT_READDATA, &b);
    if (chunked)
      h = curl_slist_append(h, "Transfer-Encoding: chunked");
    else
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  CURLcode cc = curl_easy_perform(c);
  if (cc != CURLE_OK) {
    fprintf(stderr, "%s %s: %s\n", method, url, curl_easy_strerror(cc));
    abort();
  }
  long st = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return st;
}

static long put(const mds *s, const char *key, const char *val, size_t len, resp *r) {
  char q[1400];
  snprintf(q, sizeof q, "key=%s", key);
  return req(s, "PUT", q, val, len, 0, r);
}

/* GET key: its status; the value in *r. */
static long get(const mds *s, const char *key, resp *r) {
  char q[1400];
  snprintf(q, sizeof q, "key=%s", key);
  return req(s, "GET", q, NULL, 0, 0, r);
}

static long del(const mds *s, const char *key) {
  char q[1400];
  snprintf(q, sizeof q, "key=%s", key);
  return req(s, "DELETE", q, NULL, 0, 0, NULL);
}

/* The server's peak resident memory (kB). */
static long peak_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  CHECK(f);
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* Runs the server with args (NULL-terminated); it must exit 2 with want
 * in its stderr. */
static void refused(const char *const *args, const char *want) {
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    const char *argv[16] = {bin, "--listen", "127.0.0.1:0"};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 15; i++)
      argv[n++] = args[i];
    dup2(p[1], 2);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    alarm(10); /* an option wrongly accepted: the server would serve on */
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  char out[4096];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof out - 1 && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
    n += (size_t)r;
  out[n] = 0;
  close(p[0]);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 2 || !strstr(out, want)) {
    fprintf(stderr, "%s %s: want exit 2 and '%s', got status 0x%x and '%s'\n", args[0],
            args[1] ? args[1] : "", want, st, out);
    abort();
  }
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  bin = argv[1];
  CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0);
  resp r;

  mds s = {0};
  const char *small[] = {"--max-value-size", "4K", "--max-total-size", "16K", NULL};
  mds_startv(&s, bin, small);

  /* "victim%00junk" is refused by every method; victim is unchanged. */
  CHECK(put(&s, "victim", "original", 8, NULL) == 200);
  CHECK(put(&s, "victim%00junk", "evil", 4, &r) == 400);
  CHECK_HAS(r.text, "NUL");
  CHECK(req(&s, "GET", "key=victim%00junk", NULL, 0, 0, &r) == 400);
  CHECK(req(&s, "POST", "key=victim%00junk&ttl=1", NULL, 0, 0, NULL) == 400);
  CHECK(req(&s, "DELETE", "key=victim%00junk", NULL, 0, 0, NULL) == 400);
  CHECK(req(&s, "GET", "prefix=vic%00tim", NULL, 0, 0, &r) == 400);
  CHECK_HAS(r.text, "NUL");
  CHECK(req(&s, "GET", "prefix=%00", NULL, 0, 0, NULL) == 400);
  CHECK(req(&s, "PUT", "key=victim&ttl=5%00", "evil", 4, 0, NULL) == 400);
  CHECK(req(&s, "PUT", "key=victim&rev=1%00", "evil", 4, 0, NULL) == 400);
  CHECK(get(&s, "victim", &r) == 200);
  CHECK(r.n == 8 && memcmp(r.text, "original", 8) == 0);
  CHECK(req(&s, "GET", "prefix=vic", NULL, 0, 0, &r) == 200);
  CHECK_HAS(r.text, "\"victim\"");

  /* --max-value-size: exactly the limit is stored, one byte more is not,
   * declared or chunked. */
  CHECK(put(&s, "v4k", NULL, 4096, NULL) == 200);
  CHECK(get(&s, "v4k", NULL) == 200);
  CHECK(put(&s, "over", NULL, 4097, &r) == 507);
  CHECK_HAS(r.text, "--max-value-size of 4096 bytes");
  CHECK(req(&s, "PUT", "key=over", NULL, 4097, 1, &r) == 507);
  CHECK_HAS(r.text, "--max-value-size");
  CHECK(get(&s, "over", NULL) == 404);
  /* 64 MiB chunked: dropped as it arrives, never buffered. */
  long before = peak_kb(s.pid);
  CHECK(req(&s, "PUT", "key=over", NULL, (size_t)64 << 20, 1, NULL) == 507);
  CHECK(req(&s, "PUT", "key=over", NULL, (size_t)64 << 20, 0, NULL) == 507);
  long after = peak_kb(s.pid);
  printf("server peak RSS %ld kB before, %ld kB after 2 x 64 MiB refused\n", before, after);
  CHECK(after - before < 8 * 1024);
  CHECK(get(&s, "over", NULL) == 404);

  /* --max-total-size counts keys and values: four keys "fN" with
   * 4094-byte values fill 16 KiB exactly. */
  CHECK(del(&s, "victim") == 200 && del(&s, "v4k") == 200);
  CHECK(put(&s, "f0", NULL, 4094, NULL) == 200);
  CHECK(put(&s, "f1", NULL, 4094, NULL) == 200);
  CHECK(put(&s, "f2", NULL, 4094, NULL) == 200);
  CHECK(req(&s, "PUT", "key=f3&ttl=1", NULL, 4094, 0, NULL) == 200);
  CHECK(put(&s, "g", "1", 1, &r) == 507);
  CHECK_HAS(r.text, "--max-total-size of 16384 bytes");
  CHECK(get(&s, "g", NULL) == 404);
  /* A replacement of the same size fits at the limit; one byte more not. */
  CHECK(put(&s, "f0", "yyyy", 4, NULL) == 200);
  CHECK(put(&s, "f0", NULL, 4094, NULL) == 200);
  CHECK(put(&s, "f0", NULL, 4095, NULL) == 507);
  CHECK(get(&s, "f0", &r) == 200 && r.total == 4094);
  /* Deleting makes room. */
  CHECK(del(&s, "f1") == 200);
  CHECK(put(&s, "g", "1", 1, NULL) == 200);
  CHECK(put(&s, "f1", NULL, 4094, NULL) == 507);
  /* So does a key expiring (f3, ttl 1 s), though nothing listed it. */
  usleep(1300 * 1000);
  CHECK(put(&s, "f1", NULL, 4094, NULL) == 200);
  CHECK(get(&s, "f3", NULL) == 404);
  CHECK(mds_stop(&s, SIGTERM) == 0);

  /* --max-body is the older name of --max-value-size; a total under the
   * default value size bounds values too. */
  mds a = {0};
  const char *alias[] = {"--max-body", "1K", NULL};
  mds_startv(&a, bin, alias);
  CHECK(put(&a, "k", NULL, 1024, NULL) == 200);
  CHECK(put(&a, "k", NULL, 1025, &r) == 507);
  CHECK_HAS(r.text, "--max-value-size of 1024 bytes");
  CHECK(mds_stop(&a, SIGTERM) == 0);
  mds t = {0};
  const char *tiny[] = {"--max-total-size", "2K", NULL};
  mds_startv(&t, bin, tiny);
  CHECK(put(&t, "k", NULL, 2047, NULL) == 200);
  CHECK(put(&t, "k", NULL, 2049, NULL) == 507);
  CHECK(mds_stop(&t, SIGTERM) == 0);

  /* Defaults: a 4 MiB value is stored, one byte more is not. */
  mds d = {0};
  mds_start(&d, bin, NULL, NULL);
  CHECK(put(&d, "k", NULL, (size_t)4 << 20, NULL) == 200);
  CHECK(put(&d, "k", NULL, ((size_t)4 << 20) + 1, &r) == 507);
  CHECK_HAS(r.text, "--max-value-size of 4194304 bytes");
  CHECK(mds_stop(&d, SIGTERM) == 0);

  /* Bad values: a message and exit 2. */
  refused((const char *[]){"--max-value-size", "0", NULL}, "bad --max-value-size '0'");
  refused((const char *[]){"--max-value-size", "12Q", NULL}, "bad --max-value-size '12Q'");
  refused((const char *[]){"--max-value-size", "5G", NULL}, "bad --max-value-size '5G'");
  refused((const char *[]){"--max-total-size", "-5", NULL}, "bad --max-total-size '-5'");
  refused((const char *[]){"--max-total-size", "", NULL}, "bad --max-total-size ''");
  refused((const char *[]){"--max-body", "abc", NULL}, "bad --max-body 'abc'");
  refused((const char *[]){"--max-total-size", NULL}, "--max-total-size needs a value");
  refused((const char *[]){"--max-value-size", "8M", "--max-total-size", "4M", NULL},
          "--max-value-size (8388608 bytes) is larger than --max-total-size (4194304 bytes)");

  curl_global_cleanup();
  printf("http metadata server limits ok\n");
  return 0;
}
