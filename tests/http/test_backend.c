/* The HTTP metadata backend against a real mooncake-metadata-server:
 * publish/fetch/unpublish/kv between two instances, listing, malformed
 * values rejected with MC_EPROTO, a value limit, a killed publisher's
 * segment expiring after its TTL, server down -> bounded clear errors,
 * server back (empty) -> the backend republishes by itself, clean exit on
 * SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http/http_proto.h"
#include "mds_fixture.h"
#include "md_common.h"
#include "net.h"
#include "md_util.h"

static size_t discard(char *p, size_t sz, size_t n, void *arg) {
  (void)p;
  (void)arg;
  return sz * n;
}

static void raw_put(const char *url, const char *key, const char *body) {
  CURL *c = curl_easy_init();
  char *esc = curl_easy_escape(c, key, 0);
  char full[512];
  snprintf(full, sizeof full, "%s?key=%s", url, esc);
  curl_free(esc);
  curl_easy_setopt(c, CURLOPT_URL, full);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  CHECK(curl_easy_perform(c) == CURLE_OK);
  long st = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
  CHECK(st == 200);
  curl_easy_cleanup(c);
}

static int count_key(void *arg, const char *key, size_t len) {
  (*(int *)arg)++;
  CHECK(strncmp(key, MC_HTTP_SEG_PREFIX, strlen(MC_HTTP_SEG_PREFIX)) == 0);
  return 0;
}

static int child(const char *url, int fd) {
  mc_metadata *md = md_open(url, 2000, NULL);
  CHECK_RC(md_publish(md, "victim", 5), 0);
  CHECK(write(fd, "r", 1) == 1);
  for (;;)
    pause();
  return 0; /* not reached */
}

static void bad_url(const char *url) {
  mc_metadata_args a = {.url = url, .timeout_ms = 500};
  mc_metadata *md = NULL;
  char err[256];
  CHECK_RC(mc_metadata_open(&a, &md, err, sizeof err), MC_EINVAL);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0)
    return child(argv[2], atoi(argv[3]));
  CHECK(argc == 2);
  mds s = {0};
  mds_start(&s, argv[1], NULL, NULL);
  char url[200];
  snprintf(url, sizeof url, "%s?ttl=2", s.url);
  md_check_basic(url, 0);

  bad_url("http://127.0.0.1:1");
  bad_url("http:///metadata");
  bad_url("http://127.0.0.1:1/metadata?ttl=-1");
  bad_url("http://127.0.0.1:1/metadata?color=red");

  /* Listing and malformed values. */
  mc_metadata *a = md_open(url, 2000, NULL), *b = md_open(url, 2000, NULL);
  CHECK_RC(md_publish(a, "l1", 1), 0);
  CHECK_RC(md_publish(a, "l2", 1), 0);
  int n = 0;
  char err[512];
  CHECK_RC(mc_http_list_keys(s.url, NULL, MC_HTTP_SEG_PREFIX, 2000, count_key, &n, err, sizeof err), 0);
  CHECK(n == 2);
  raw_put(s.url, MC_HTTP_SEG_PREFIX "bad", "{\"format\":1,\"name\":\"bad\"");
  CHECK_RC(md_fetch_version(b, "bad"), MC_EPROTO);
  raw_put(s.url, MC_HTTP_SEG_PREFIX "bad", "{\"format\":1,\"version\":1}");
  CHECK_RC(md_fetch_version(b, "bad"), MC_EPROTO);

  /* A killed publisher's segment expires after its TTL. */
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", p[1]);
    execl("/proc/self/exe", argv[0], "--child", url, fd, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char ch;
  CHECK(read(p[0], &ch, 1) == 1);
  close(p[0]);
  tu_sleep_ms(3000); /* refreshed while alive */
  CHECK(md_fetch_version(b, "victim") == 5);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  uint64_t t0 = mc_now_ms();
  long ms = md_wait_version(b, "victim", MC_ENOENT, 6000);
  printf("killed publisher's segment vanished after %ld ms (ttl 2000 ms)\n", ms);
  CHECK(ms >= 0 && mc_now_ms() - t0 <= 3500);

  /* Server down: bounded, clear errors. */
  CHECK_RC(md_publish(a, "segO", 1), 0);
  CHECK(mds_stop(&s, SIGKILL) == 128 + SIGKILL);
  mc_metadata *c1 = md_open(url, 1000, NULL);
  t0 = mc_now_ms();
  long long rc = md_fetch_version(c1, "segO");
  printf("fetch with server down: %s after %llu ms\n", mc_strerror((int)rc),
         (unsigned long long)(mc_now_ms() - t0));
  CHECK(rc == MC_EPEER || rc == MC_ETIMEDOUT);
  CHECK(mc_now_ms() - t0 <= 2500);
  /* Server back, empty: the publisher's refresh thread puts it back. */
  mds_start(&s, argv[1], NULL, NULL);
  ms = md_wait_version(b, "segO", 1, 8000);
  printf("republished after server restart in %ld ms\n", ms);
  CHECK(ms >= 0);
  mc_metadata_close(c1);
  mc_metadata_close(a);
  mc_metadata_close(b);
  CHECK(mds_stop(&s, SIGTERM) == 0);

  /* Value limit (--max-body: the older name of --max-value-size): the
   * server answers 507 with the reason, which the publisher reports. */
  mds s2 = {0};
  mds_start(&s2, argv[1], "--max-body", "100");
  mc_metadata *d = md_open(s2.url, 2000, NULL);
  CHECK(tu_capture_begin() == 0);
  CHECK_RC(md_publish(d, "big", 1), MC_EIO);
  char *log = tu_capture_end();
  CHECK_HAS(log, "HTTP 507: value too large");
  CHECK_HAS(log, "--max-value-size of 100 bytes");
  free(log);
  mc_metadata_close(d);
  CHECK(mds_stop(&s2, SIGINT) == 0);
  printf("http backend ok\n");
  return 0;
}
