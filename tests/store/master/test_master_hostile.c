/* mooncake-master against hostile or unauthenticated peers:
 *  - raw TCP garbage, an HTTP/1.1 request, an HTTP/2 preface followed by
 *    junk frames, and 64 idle connections held open while a real client
 *    works: the master keeps serving, and stops cleanly with them open;
 *  - a 60 MiB key (near the 64 MiB message limit) and a 16 MiB batch;
 *  - --auth_token_file: requests without the token, or with a wrong one,
 *    are refused (ILLEGAL_CLIENT) and take no space; with it they work.
 * argv[1]: the master. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "master_fixture.h"
#include "testutil.h"

#define E(x) MCSTORE__ERROR_CODE__##x

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  /* The master may close on us mid-way: that is a fine answer. */
  (void)!send(fd, p, n, MSG_NOSIGNAL);
}

static void work(mf_client *c, int round) {
  for (int i = 0; i < 20; i++) {
    char key[64];
    snprintf(key, sizeof key, "work-%d-%d", round, i);
    CHECK_EQ_INT(mf_put(c, key, 4096, 1), 0);
    CHECK_EQ_INT(mf_get(c, key, NULL), 0);
  }
}

static void test_garbage(const char *bin) {
  mf_master m;
  CHECK_OK(mf_start(&m, bin, 0, NULL));
  mf_client c;
  mf_client_open(&c, m.target);
  uint8_t sid[MCS_CLIENT_ID_LEN];
  mf_sid(sid, 1);
  CHECK_EQ_INT(mf_mount(&c, sid, "seg", "h", 1 << 20, 64 << 20), 0);
  uint8_t junk[4096];
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < sizeof junk; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    junk[i] = (uint8_t)x;
  }
  int fd = dial(m.port);
  send_all(fd, junk, sizeof junk);
  close(fd);
  fd = dial(m.port);
  static const char http1[] = "POST /mcstore.Master/PutStart HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 5\r\n\r\nhello";
  send_all(fd, http1, sizeof http1 - 1);
  close(fd);
  fd = dial(m.port);
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  send_all(fd, preface, sizeof preface - 1);
  /* a frame header claiming 16 MiB of an unknown type, then junk */
  static const uint8_t frame[] = {0xff, 0xff, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x01};
  send_all(fd, frame, sizeof frame);
  send_all(fd, junk, sizeof junk);
  close(fd);
  work(&c, 0);
  /* Idle connections take no worker from a working client. */
  int idle[64];
  for (int i = 0; i < 64; i++) {
    idle[i] = dial(m.port);
    if (i % 2)
      send_all(idle[i], preface, sizeof preface - 1);
  }
  work(&c, 1);
  /* Near the 64 MiB message limit: a 60 MiB key is parsed and refused. */
  size_t huge = 60u << 20;
  char *big = malloc(huge + 1);
  memset(big, 'k', huge);
  big[huge] = 0;
  CHECK_EQ_INT(mf_put_start(&c, big, 10, 1, NULL, 0, 0, NULL), E(INVALID_KEY));
  free(big);
  work(&c, 2);
  /* A 16 MiB batch of valid 4095-byte keys is served. */
  size_t n = MCS_MAX_BATCH;
  char **keys = malloc(n * sizeof(*keys));
  char *k = malloc(MCS_MAX_KEY_LEN + 1);
  memset(k, 'q', MCS_MAX_KEY_LEN);
  k[MCS_MAX_KEY_LEN] = 0;
  for (size_t i = 0; i < n; i++)
    keys[i] = k;
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, c.id, NULL, 0);
  Mcstore__BatchKeyRequest br = MCSTORE__BATCH_KEY_REQUEST__INIT;
  br.header = &hdr;
  br.keys = keys;
  br.n_keys = n;
  Mcstore__BatchExistKeyResponse *er =
      mf_call(&c, "BatchExistKey", &br.base, &mcstore__batch_exist_key_response__descriptor);
  CHECK_EQ_U64(er->n_results, n);
  CHECK_EQ_INT(er->results[n - 1]->code, 0);
  CHECK_EQ_INT(er->results[n - 1]->exists, 0);
  MF_FREE(er);
  free(keys);
  free(k);
  work(&c, 3);
  mf_client_close(&c);
  /* Stops cleanly with the idle connections still open. */
  CHECK_EQ_INT(mf_stop(&m, SIGTERM), 0);
  for (int i = 0; i < 64; i++)
    close(idle[i]);
}

static int ping_with(mf_client *c, const char *token, int *status) {
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, c->id, token, token ? strlen(token) : 0);
  Mcstore__PingRequest r = MCSTORE__PING_REQUEST__INIT;
  r.header = &hdr;
  Mcstore__PingResponse *p = mf_call(c, "Ping", &r.base, &mcstore__ping_response__descriptor);
  int rc = p->code;
  *status = p->client_status;
  MF_FREE(p);
  return rc;
}

static int put_with(mf_client *c, const char *token, const char *key) {
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, c->id, token, token ? strlen(token) : 0);
  Mcstore__PutStartRequest r = MCSTORE__PUT_START_REQUEST__INIT;
  r.header = &hdr;
  r.key = (char *)key;
  r.value_length = 100;
  Mcstore__PutStartResponse *p =
      mf_call(c, "PutStart", &r.base, &mcstore__put_start_response__descriptor);
  int rc = p->code;
  MF_FREE(p);
  return rc;
}

static void test_token(const char *bin) {
  char dir[256], path[300];
  CHECK_OK(tu_mkdtemp(dir, sizeof dir, "store-token"));
  snprintf(path, sizeof path, "%s/token", dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fputs("s3cret-token\n", f);
  fclose(f);
  char arg[400];
  snprintf(arg, sizeof arg, "--auth_token_file=%s", path);
  const char *extra[] = {arg, NULL};
  mf_master m;
  CHECK_OK(mf_start(&m, bin, 0, extra));
  mf_client c = {0};
  CHECK_OK(mcs_random_id(c.id));
  CHECK_OK(mc_rpc_channel_create(m.target, &c.ch));
  int st;
  CHECK_EQ_INT(ping_with(&c, NULL, &st), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(ping_with(&c, "s3cret-tokeX", &st), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(ping_with(&c, "s3cret-token-and-more", &st), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(mf_mount(&c, (const uint8_t *)"0123456789abcdef", "seg", "h", 0, 1 << 20),
               E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(ping_with(&c, "s3cret-token", &st), 0);
  /* Mount with the token (by hand: the fixture's helpers send none). */
  Mcstore__RequestHeader hdr;
  mcs_header_set(&hdr, c.id, "s3cret-token", 12);
  Mcstore__MountSegmentRequest mr = MCSTORE__MOUNT_SEGMENT_REQUEST__INIT;
  Mcstore__SegmentDesc sd = MCSTORE__SEGMENT_DESC__INIT;
  sd.id.data = (uint8_t *)"0123456789abcdef";
  sd.id.len = 16;
  sd.name = "seg";
  sd.host = "h";
  sd.size = 1 << 20;
  mr.header = &hdr;
  mr.segment = &sd;
  Mcstore__MountSegmentResponse *mp =
      mf_call(&c, "MountSegment", &mr.base, &mcstore__mount_segment_response__descriptor);
  CHECK_EQ_INT(mp->code, 0);
  MF_FREE(mp);
  /* Without the token nothing is reserved, even for a known client id. */
  CHECK_EQ_INT(put_with(&c, NULL, "k"), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(put_with(&c, "wrong", "k"), E(ILLEGAL_CLIENT));
  CHECK_EQ_INT(put_with(&c, "s3cret-token", "k"), 0);
  mc_rpc_channel_destroy(c.ch);
  CHECK_EQ_INT(mf_stop(&m, SIGTERM), 0);
  tu_rmtree(dir);
}

int main(int argc, char **argv) {
  if (argc < 2)
    SKIP("usage: test_master_hostile MASTER");
  test_garbage(argv[1]);
  test_token(argv[1]);
  printf("hostile peers: all checks passed\n");
  return 0;
}
