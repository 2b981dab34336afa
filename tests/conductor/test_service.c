/* mooncake-conductor driven by a real HTTP client (libcurl) over
 * loopback: registration, event batches with a gap and the resync,
 * /query, /schedule with the decision and a rejection, /complete,
 * /metrics, /unregister; malformed JSON, unknown instances and paths,
 * oversized bodies, the bearer token, and the refusal to listen beyond
 * loopback without one.  The server runs as a child process on a port it
 * picks itself. */
#include <curl/curl.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

static const char *bin, *profile;

typedef struct srv {
  pid_t pid;
  char url[64];
} srv;

static int start(srv *s, const char *const *extra) {
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    const char *argv[24] = {bin, "--profile", profile, "--threads", "2"};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i] && n < 22; i++)
      argv[n++] = extra[i];
    if (n == 5 || strcmp(argv[5], "--listen"))
      argv[n++] = "--listen", argv[n++] = "127.0.0.1:0";
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  s->pid = pid;
  char line[256] = "";
  size_t n = 0;
  for (int tries = 0; tries < 100 && !strchr(line, '\n') && n < sizeof line - 1; tries++) {
    struct pollfd pfd = {p[0], POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    ssize_t r = read(p[0], line + n, sizeof line - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
    line[n] = 0;
  }
  close(p[0]);
  const char *u = strstr(line, "http://");
  if (!u) {
    int st;
    waitpid(pid, &st, 0);
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  }
  snprintf(s->url, sizeof s->url, "%.*s", (int)strcspn(u, "\n"), u);
  return 0;
}

static void stop(srv *s) {
  int st;
  kill(s->pid, SIGTERM);
  CHECK(waitpid(s->pid, &st, 0) == s->pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit status %d", st);
}

typedef struct buf {
  char *p;
  size_t n;
} buf;

static size_t sink(char *d, size_t sz, size_t nm, void *u) {
  buf *b = u;
  char *np = realloc(b->p, b->n + sz * nm + 1);
  CHECK(np != NULL);
  memcpy(np + b->n, d, sz * nm);
  b->p = np;
  b->n += sz * nm;
  b->p[b->n] = 0;
  return sz * nm;
}

static CURL *cu;
static char body_out[65536];

/* METHOD PATH with BODY (NULL: none); returns the status, the reply in
 * body_out. */
static long call(const srv *s, const char *method, const char *path, const char *body,
                 const char *auth) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", s->url, path);
  buf b = {NULL, 0};
  curl_easy_reset(cu);
  curl_easy_setopt(cu, CURLOPT_URL, url);
  curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(cu, CURLOPT_TIMEOUT, 10L);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  char ah[300];
  if (auth) {
    snprintf(ah, sizeof ah, "Authorization: Bearer %s", auth);
    h = curl_slist_append(h, ah);
  }
  curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
  if (body) {
    curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  CURLcode rc = curl_easy_perform(cu);
  CHECK_MSG(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
  long code = 0;
  curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(h);
  snprintf(body_out, sizeof body_out, "%s", b.p ? b.p : "");
  free(b.p);
  return code;
}

static json_t *reply_json(void) {
  json_error_t e;
  json_t *o = json_loads(body_out, 0, &e);
  CHECK_MSG(o != NULL, "reply is not JSON: %s", body_out);
  return o;
}

static long longest_of(const char *name) {
  json_t *o = reply_json(), *arr = json_object_get(o, "instances");
  long v = -1;
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *x = json_array_get(arr, i);
    if (!strcmp(json_string_value(json_object_get(x, "name")), name))
      v = (long)json_integer_value(json_object_get(x, "longest_matched"));
  }
  json_decref(o);
  return v;
}

#define EXPECT(st, want)                                                                 \
  CHECK_MSG((st) == (want), "status %ld, want %d: %s", (long)(st), (want), body_out)

static void test_api(void) {
  srv s;
  CHECK_OK(start(&s, NULL));
  tu_note("server at %s", s.url);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"p0\",\"role\":\"prefill\"}", NULL), 200);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"p1\",\"role\":\"prefill\"}", NULL), 200);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"d0\",\"role\":\"decode\"}", NULL), 200);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"p0\",\"role\":\"prefill\"}", NULL), 409);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"x\",\"role\":\"chef\"}", NULL), 400);
  CHECK_HAS(body_out, "'role' must be");
  EXPECT(call(&s, "POST", "/register",
              "{\"name\":\"x\",\"role\":\"prefill\",\"profile_yaml\":\"block_tokens: 0\"}", NULL),
         400);
  CHECK_HAS(body_out, "profile_yaml:1:");
  /* Malformed JSON, wrong shapes, paths and methods. */
  EXPECT(call(&s, "POST", "/register", "{\"name\":", NULL), 400);
  CHECK_HAS(body_out, "malformed JSON");
  EXPECT(call(&s, "POST", "/schedule", "[1,2]", NULL), 400);
  CHECK_HAS(body_out, "JSON object");
  EXPECT(call(&s, "POST", "/schedule", "{\"blocks\":[1,\"zz\"],\"input_length\":9}", NULL), 400);
  CHECK_HAS(body_out, "'blocks'[1]");
  EXPECT(call(&s, "POST", "/schedule", "{\"blocks\":[1],\"input_length\":0}", NULL), 400);
  CHECK_HAS(body_out, "input_length");
  EXPECT(call(&s, "POST", "/schedule", "{\"blocks\":[],\"input_length\":10}", NULL), 400);
  EXPECT(call(&s, "GET", "/register", NULL, NULL), 405);
  EXPECT(call(&s, "POST", "/nowhere", "{}", NULL), 404);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"a\",\"name\":\"b\",\"role\":\"decode\"}", NULL),
         400); /* duplicate keys refused */

  /* Events: p0 holds blocks 100..107. */
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"p0\",\"events\":[{\"seq\":1,\"type\":\"stored\","
              "\"blocks\":[100,101,102,103]},{\"seq\":2,\"type\":\"stored\","
              "\"blocks\":[104,105,106,\"0x6b\"]}]}", NULL), 200);
  CHECK_HAS(body_out, "\"applied\":2");
  EXPECT(call(&s, "GET", "/query?blocks=100,101,102,103,104,105,106,107,108", NULL, NULL), 200);
  CHECK_EQ_INT(longest_of("p0"), 8);
  CHECK_EQ_INT(longest_of("p1"), 0);
  EXPECT(call(&s, "POST", "/query", "{\"blocks\":[100,101,999]}", NULL), 200);
  CHECK_EQ_INT(longest_of("p0"), 2);
  EXPECT(call(&s, "GET", "/query?blocks=1,,2", NULL, NULL), 400);
  EXPECT(call(&s, "GET", "/query", NULL, NULL), 400);
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"ghost\",\"events\":[{\"seq\":1,\"type\":\"stored\",\"blocks\":[1]}]}",
              NULL), 404);
  CHECK_HAS(body_out, "unknown instance 'ghost'");
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"p0\",\"events\":[{\"seq\":3,\"type\":\"moved\",\"blocks\":[1]}]}",
              NULL), 400);
  /* Replayed seq 2: a duplicate, ignored. */
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"p0\",\"events\":[{\"seq\":2,\"type\":\"removed\",\"blocks\":[100]}]}",
              NULL), 200);
  CHECK_HAS(body_out, "\"duplicates\":1");
  EXPECT(call(&s, "GET", "/query?blocks=100,101", NULL, NULL), 200);
  CHECK_EQ_INT(longest_of("p0"), 2);
  /* Schedule while p0 holds the prefix: p0, no transfer. */
  const char *req = "{\"blocks\":[100,101,102,103,104,105,106,107,108,109],"
                    "\"input_length\":5000,\"output_length\":100}";
  EXPECT(call(&s, "POST", "/schedule", req, NULL), 200);
  json_t *o = reply_json();
  CHECK(json_is_true(json_object_get(o, "admitted")));
  CHECK_STR(json_string_value(json_object_get(o, "prefill")), "p0");
  CHECK_STR(json_string_value(json_object_get(o, "decode")), "d0");
  CHECK_EQ_INT(json_integer_value(json_object_get(o, "prefix_blocks")), 8);
  CHECK(json_is_null(json_object_get(o, "fetch_from")));
  CHECK(json_real_value(json_object_get(o, "expected_ttft_s")) > 0);
  CHECK(json_real_value(json_object_get(o, "expected_tbt_s")) > 0);
  char rid[64];
  snprintf(rid, sizeof rid, "%s", json_string_value(json_object_get(o, "request_id")));
  json_decref(o);
  /* A gap: seq 4 after 2. */
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"p0\",\"events\":[{\"seq\":4,\"type\":\"stored\",\"blocks\":[1]}]}",
              NULL), 409);
  CHECK_HAS(body_out, "\"needs_resync\":true");
  EXPECT(call(&s, "GET", "/query?blocks=100,101", NULL, NULL), 200);
  CHECK_EQ_INT(longest_of("p0"), 0);
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"p0\",\"events\":[{\"seq\":5,\"type\":\"stored\",\"blocks\":[1]}]}",
              NULL), 409);
  EXPECT(call(&s, "POST", "/events",
              "{\"instance\":\"p0\",\"resync\":{\"seq\":10,\"blocks\":[100,101,102]}}", NULL), 200);
  CHECK_HAS(body_out, "\"needs_resync\":false");
  CHECK_HAS(body_out, "\"last_seq\":10");
  EXPECT(call(&s, "GET", "/query?blocks=100,101,102,103", NULL, NULL), 200);
  CHECK_EQ_INT(longest_of("p0"), 3);
  /* The load feedback. */
  char cb[160];
  snprintf(cb, sizeof cb, "{\"request_id\":\"%s\",\"stage\":\"prefill\"}", rid);
  EXPECT(call(&s, "POST", "/complete", cb, NULL), 200);
  snprintf(cb, sizeof cb, "{\"request_id\":\"%s\",\"stage\":\"decode\"}", rid);
  EXPECT(call(&s, "POST", "/complete", cb, NULL), 200);
  CHECK_HAS(body_out, "\"admitted\":true");
  snprintf(cb, sizeof cb, "{\"request_id\":\"%s\",\"stage\":\"done\"}", rid);
  EXPECT(call(&s, "POST", "/complete", cb, NULL), 200);
  EXPECT(call(&s, "POST", "/complete", cb, NULL), 404);
  EXPECT(call(&s, "POST", "/complete", "{\"request_id\":\"-1\",\"stage\":\"done\"}", NULL), 400);
  /* A rejection: an SLO no instance can meet. */
  EXPECT(call(&s, "POST", "/schedule",
              "{\"blocks\":[1,2,3],\"input_length\":1500,\"ttft_slo_s\":1e-6}", NULL), 429);
  CHECK_HAS(body_out, "\"reason\":\"ttft-slo\"");
  CHECK_HAS(body_out, "\"admitted\":false");
  /* Metrics. */
  EXPECT(call(&s, "GET", "/metrics", NULL, NULL), 200);
  CHECK_HAS(body_out, "mc_conductor_instances 3");
  CHECK_HAS(body_out, "mc_conductor_event_gaps_total 1");
  CHECK_HAS(body_out, "mc_conductor_rejected_total{reason=\"ttft-slo\"} 1");
  CHECK_HAS(body_out, "mc_conductor_instance_blocks{instance=\"p0\"} 3");
  /* Unregister, twice. */
  EXPECT(call(&s, "POST", "/unregister", "{\"name\":\"p0\"}", NULL), 200);
  EXPECT(call(&s, "POST", "/unregister", "{\"name\":\"p0\"}", NULL), 404);
  EXPECT(call(&s, "GET", "/query?blocks=100", NULL, NULL), 200);
  CHECK_EQ_INT(longest_of("p0"), -1);
  /* A body over --max-body (default 4 MiB) is refused. */
  size_t big = (4u << 20) + 100;
  char *huge = malloc(big + 1);
  CHECK(huge != NULL);
  memset(huge, ' ', big);
  huge[0] = '{';
  huge[big - 1] = '}';
  huge[big] = 0;
  EXPECT(call(&s, "POST", "/schedule", huge, NULL), 413);
  free(huge);
  stop(&s);
}

/* Concurrent clients: every /schedule is answered and counted once (the
 * library runs under the service's mutex). */
typedef struct worker {
  const srv *s;
  int ok, other;
} worker;

static void *hammer(void *arg) {
  worker *w = arg;
  CURL *c = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "%s/schedule", w->s->url);
  const char *body = "{\"blocks\":[100,101,102,103,104,105,106,107,108,109],\"input_length\":5000}";
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  buf b = {NULL, 0};
  for (int i = 0; i < 200; i++) {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200 || code == 429)
      w->ok++;
    else
      w->other++;
  }
  free(b.p);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return NULL;
}

static void test_concurrent(void) {
  srv s;
  CHECK_OK(start(&s, NULL));
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"p0\",\"role\":\"prefill\"}", NULL), 200);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"d0\",\"role\":\"decode\"}", NULL), 200);
  pthread_t t[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){&s, 0, 0};
    CHECK(pthread_create(&t[i], NULL, hammer, &w[i]) == 0);
  }
  int ok = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    CHECK_EQ_INT(w[i].other, 0);
    ok += w[i].ok;
  }
  CHECK_EQ_INT(ok, 800);
  EXPECT(call(&s, "GET", "/metrics", NULL, NULL), 200);
  CHECK_HAS(body_out, "mc_conductor_scheduled_total 800");
  stop(&s);
}

/* One address cannot hold every slot: with --max-conns-per-ip 2, two idle
 * connections that never send a byte leave no room for a third from the
 * same address, and closing them frees it. */
static void test_per_ip(void) {
  srv s;
  const char *extra[] = {"--max-conns-per-ip", "2", NULL};
  CHECK_OK(start(&s, extra));
  int port = atoi(strrchr(s.url, ':') + 1);
  int fd[2];
  for (int i = 0; i < 2; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd[i], (struct sockaddr *)&sa, sizeof sa) == 0);
  }
  usleep(200 * 1000); /* let the server accept both */
  char url[128];
  snprintf(url, sizeof url, "%s/metrics", s.url);
  curl_easy_reset(cu);
  curl_easy_setopt(cu, CURLOPT_URL, url);
  curl_easy_setopt(cu, CURLOPT_TIMEOUT, 5L);
  curl_easy_setopt(cu, CURLOPT_FORBID_REUSE, 1L);
  buf b = {NULL, 0};
  curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(cu);
  long code = 0;
  curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
  CHECK_MSG(rc != CURLE_OK || code != 200, "a third connection from one address was served");
  close(fd[0]);
  close(fd[1]);
  usleep(200 * 1000);
  EXPECT(call(&s, "GET", "/metrics", NULL, NULL), 200);
  free(b.p);
  stop(&s);
}

static void test_token(void) {
  char dir[256], tok[300];
  CHECK_OK(tu_mkdtemp(dir, sizeof dir, "cond-token"));
  tu_join(tok, sizeof tok, dir, "token");
  FILE *f = fopen(tok, "w");
  CHECK(f != NULL);
  fputs("s3cret-token-0123456789\n", f);
  fclose(f);
  srv s;
  const char *extra[] = {"--token-file", tok, NULL};
  CHECK_OK(start(&s, extra));
  EXPECT(call(&s, "GET", "/metrics", NULL, NULL), 401);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"p0\",\"role\":\"prefill\"}", "wrong-token-0123456789"), 401);
  EXPECT(call(&s, "POST", "/register", "{\"name\":\"p0\",\"role\":\"prefill\"}", "s3cret-token-0123456789"), 200);
  EXPECT(call(&s, "GET", "/metrics", NULL, "s3cret-token-0123456789"), 200);
  stop(&s);
  /* Beyond loopback without a token: refused at start. */
  const char *open[] = {"--listen", "0.0.0.0:0", NULL};
  CHECK_EQ_INT(start(&s, open), 2);
  const char *badopt[] = {"--listen", "127.0.0.1:0", "--policy", "nope", NULL};
  CHECK_EQ_INT(start(&s, badopt), 2);
  tu_rmtree(dir);
}

int main(int argc, char **argv) {
  if (argc < 3)
    SKIP("usage: test_cond_service MOONCAKE_CONDUCTOR PROFILE");
  bin = argv[1];
  profile = argv[2];
  signal(SIGPIPE, SIG_IGN);
  CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0);
  cu = curl_easy_init();
  CHECK(cu != NULL);
  test_api();
  test_concurrent();
  test_per_ip();
  test_token();
  curl_easy_cleanup(cu);
  curl_global_cleanup();
  printf("ok: mooncake-conductor over HTTP\n");
  return 0;
}
