/* mooncake-metadata-server --token-file: every request needs the cluster
 * token.  The HTTP backend presents it (and is refused with MC_EACCES
 * without it or with another); a raw request without it gets 401 with a
 * WWW-Authenticate header; a token file others can read stops the server. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http/http_proto.h"
#include "mds_fixture.h"
#include "md_common.h"
#include "mooncake/engine.h"
#include "net.h"
#include "md_util.h"

#define TOKEN "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"

static char dir[256];

static void write_file(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  CHECK(f);
  CHECK(fputs(text, f) >= 0);
  CHECK(fclose(f) == 0);
  CHECK(chmod(path, mode) == 0);
}

static mc_metadata *open_with(const char *url, const char *token) {
  mc_metadata_args a = {.url = url, .timeout_ms = 2000, .token = token};
  mc_metadata *md = NULL;
  char err[256];
  CHECK_RC(mc_metadata_open(&a, &md, err, sizeof err), 0);
  return md;
}

static size_t keep_header(char *p, size_t sz, size_t n, void *arg) {
  if (sz * n > 17 && strncasecmp(p, "WWW-Authenticate:", 17) == 0)
    *(int *)arg = 1;
  return sz * n;
}

static size_t discard(char *p, size_t sz, size_t n, void *arg) {
  (void)p;
  (void)arg;
  return sz * n;
}

/* A plain curl GET with an optional Authorization header: the status, and
 * whether a WWW-Authenticate header came back. */
static long raw_get(const char *url, const char *auth, int *challenged) {
  CURL *c = curl_easy_init();
  char full[512];
  snprintf(full, sizeof full, "%s?key=anything", url);
  struct curl_slist *h = auth ? curl_slist_append(NULL, auth) : NULL;
  *challenged = 0;
  curl_easy_setopt(c, CURLOPT_URL, full);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, keep_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, challenged);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  CHECK(curl_easy_perform(c) == CURLE_OK);
  long st = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return st;
}

static int count_key(void *arg, const char *key, size_t len) {
  (void)key;
  (void)len;
  (*(int *)arg)++;
  return 0;
}

int main(int argc, char **argv) {
  setenv("MC_LOG_LEVEL", "warn", 1); /* the checks read warnings */
  CHECK(argc == 2);
  CHECK(tu_mkdtemp(dir, sizeof dir, "mds-token") == 0);
  char tok_path[300], open_path[300];
  snprintf(tok_path, sizeof tok_path, "%s/token", dir);
  snprintf(open_path, sizeof open_path, "%s/open-token", dir);
  write_file(tok_path, TOKEN "\n", 0600);
  write_file(open_path, TOKEN "\n", 0644);

  /* A token file group or others can read: the server refuses to start. */
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(argv[1], argv[1], "--listen", "127.0.0.1:0", "--token-file",
          open_path, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);

  mds s = {0};
  mds_start(&s, argv[1], "--token-file", tok_path);

  /* The right token: the full backend contract holds. */
  mc_metadata *a = open_with(s.url, TOKEN), *b = open_with(s.url, TOKEN);
  CHECK_RC(md_publish(a, "seg-a", 3), 0);
  CHECK(md_fetch_version(b, "seg-a") == 3);
  CHECK_RC(mc_metadata_kv_put(a, "k", "v", 1), 0);
  int n = 0;
  char err[512];
  CHECK_RC(mc_http_list_keys(s.url, TOKEN, MC_HTTP_SEG_PREFIX, 2000, count_key,
                             &n, err, sizeof err),
           0);
  CHECK(n == 1);

  /* Without it, or with another cluster's: refused, nothing changes. */
  mc_metadata *none = open_with(s.url, NULL), *other = open_with(s.url, OTHER);
  CHECK(tu_capture_begin() == 0);
  CHECK(md_fetch_version(none, "seg-a") == MC_EACCES);
  CHECK(md_fetch_version(other, "seg-a") == MC_EACCES);
  char *log = tu_capture_end();
  CHECK_HAS(mc_last_error(), "refused our cluster token; set cluster_token_file");
  /* The refused side is told what to set, with and without a token. */
  CHECK_HAS(log, "refused a request without a cluster token; set "
                 "cluster_token_file (or MC_CLUSTER_TOKEN_FILE)");
  CHECK_HAS(log, "refused our cluster token; set cluster_token_file");
  free(log);
  CHECK_RC(md_publish(none, "seg-a", 9), MC_EACCES);
  CHECK_RC(md_publish(other, "seg-x", 1), MC_EACCES);
  CHECK_RC(mc_metadata_kv_delete(other, "k"), MC_EACCES);
  CHECK_RC(mc_http_list_keys(s.url, NULL, MC_HTTP_SEG_PREFIX, 2000, count_key,
                             &n, err, sizeof err),
           MC_EACCES);
  CHECK(strstr(err, "401") != NULL);
  CHECK(strstr(err, "cluster_token_file") != NULL);
  CHECK(md_fetch_version(b, "seg-a") == 3);
  CHECK(md_fetch_version(b, "seg-x") == MC_ENOENT);
  void *v = NULL;
  size_t vl = 0;
  CHECK_RC(mc_metadata_kv_get(b, "k", &v, &vl), 0);
  CHECK(vl == 1 && memcmp(v, "v", 1) == 0);
  free(v);

  /* On the wire: 401 with a challenge; a near miss is no better. */
  int challenged = 0;
  CHECK(raw_get(s.url, NULL, &challenged) == 401 && challenged);
  CHECK(raw_get(s.url, "Authorization: Bearer " TOKEN "x", &challenged) == 401);
  CHECK(raw_get(s.url, "Authorization: Basic " TOKEN, &challenged) == 401);
  CHECK(raw_get(s.url, "Authorization: Bearer " TOKEN, &challenged) == 404);

  mc_metadata_close(other);
  mc_metadata_close(none);
  mc_metadata_close(b);
  mc_metadata_close(a);
  CHECK(mds_stop(&s, SIGTERM) == 0);
  tu_rmtree(dir);
  printf("http cluster token ok\n");
  return 0;
}
