/* The fake plugin host (tools/conformance/fake_host.h) that the plugin
 * tests and mc-transport-conformance share: config keys from a list, the
 * ABI 1.1 typed getters over a params table with defaults, completions
 * and notifications recorded and forwarded, log lines kept.  Its value
 * parsers are a copy of the core's (the tool cannot link the core): every
 * input here must parse the same way through both (white box: config.h). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "fake_host.h"

static const mc_param_info params[] = {
    {MC_PARAM_SIZE, "chunk", "64K", "bytes per slice", 0, 0},
    {MC_PARAM_INT, "threads", "4", "workers", 0, 0},
    {MC_PARAM_BOOL, "direct", "false", "O_DIRECT", 0, 0},
    {MC_PARAM_STRING, "label", NULL, "a name", 0, 0},
    {MC_PARAM_INT, "nodefault", NULL, "no default", 0, 0},
    {MC_PARAM_END, NULL, NULL, NULL, 0, 0},
};

static int completed, notified;
static void on_complete(void *arg, uint64_t token, int status, uint64_t bytes, int32_t verr) {
  CHECK(arg == &completed && token == 7 && status == MC_EIO && bytes == 0 && verr == -5);
  completed++;
}
static void on_notify(void *arg, const char *peer, const void *msg, size_t len) {
  CHECK(arg == &completed);
  CHECK_STR(peer, "peer:1");
  CHECK(len == 3 && !memcmp(msg, "hey", 3));
  notified++;
}

int main(void) {

  mc_transport_ops ops = {.abi_major = MC_TRANSPORT_ABI_MAJOR,
                          .abi_minor = MC_TRANSPORT_ABI_MINOR,
                          .struct_size = sizeof ops,
                          .name = "fake",
                          .params = params,
                          .param_info_size = sizeof(mc_param_info)};
  mc_fake_host h;
  mc_fake_host_init(&h, "fake:1", &ops);
  const mc_host_api *a = &h.api;
  CHECK(MC_HOST_HAS(a, config_get_bool));
  CHECK(a->host == &h);

  const char *v = NULL;
  CHECK_RC(a->config_get(a->host, "label", &v), MC_ENOENT);
  CHECK_OK(mc_fake_host_set_list(&h, "label=tcp;threads=8"));
  CHECK_RC(mc_fake_host_set_list(&h, "broken;chunk=1M"), MC_EINVAL);
  const char *const pairs[] = {"direct", "yes", NULL};
  CHECK_OK(mc_fake_host_set_pairs(&h, pairs));
  CHECK_OK(a->config_get(a->host, "label", &v));
  CHECK_STR(v, "tcp");
  CHECK_OK(mc_fake_host_set(&h, "label", "shm")); /* replaces; v stays valid */
  CHECK_STR(v, "tcp");
  CHECK_OK(a->config_get(a->host, "label", &v));
  CHECK_STR(v, "shm");

  uint64_t sz = 0;
  int64_t n = 0;
  int b = -1;
  CHECK_OK(a->config_get_size(a->host, "chunk", &sz));
  CHECK_EQ_U64(sz, 1u << 20);
  CHECK_OK(a->config_get_int(a->host, "threads", &n));
  CHECK_EQ_INT(n, 8);
  CHECK_OK(a->config_get_bool(a->host, "direct", &b));
  CHECK_EQ_INT(b, 1);
  CHECK_RC(a->config_get_int(a->host, "chunk", &n), MC_EINVAL); /* wrong type */
  CHECK_RC(a->config_get_int(a->host, "nope", &n), MC_EINVAL);  /* not a param */
  CHECK_RC(a->config_get_int(a->host, "nodefault", &n), MC_ENOENT);
  CHECK_OK(mc_fake_host_set(&h, "threads", "many"));
  CHECK_RC(a->config_get_int(a->host, "threads", &n), MC_EINVAL);

  /* Defaults when unset. */
  mc_fake_host d;
  mc_fake_host_init(&d, "fake:2", &ops);
  CHECK_OK(d.api.config_get_size(d.api.host, "chunk", &sz));
  CHECK_EQ_U64(sz, 65536);
  CHECK_OK(d.api.config_get_bool(d.api.host, "direct", &b));
  CHECK_EQ_INT(b, 0);
  mc_fake_host_fini(&d);

  a->log(a->host, MC_LOG_WARN, "no device %d", 3);
  a->log(a->host, MC_LOG_DEBUG, "detail");
  CHECK_STR(h.log, "detail");
  CHECK_STR(h.last_warn, "no device 3");
  CHECK_EQ_INT(h.nlogs, 2);
  CHECK(a->log_enabled(a->host, MC_LOG_WARN) && !a->log_enabled(a->host, MC_LOG_INFO));

  h.on_complete = on_complete;
  h.on_notify = on_notify;
  h.cb_arg = &completed;
  a->complete(a->host, 7, MC_EIO, 0, -5);
  CHECK_EQ_U64(h.completions, 1);
  CHECK_EQ_U64(h.last_token, 7);
  CHECK_RC(h.last_status, MC_EIO);
  CHECK_EQ_INT(completed, 1);
  a->notify_recv(a->host, "peer:1", "hey", 3);
  CHECK_OK(mc_fake_host_wait_notifies(&h, 0, 1000));
  CHECK_EQ_INT(mc_fake_host_wait_notifies(&h, 1, 10), -1);
  CHECK_STR(h.notify_peer, "peer:1");
  CHECK_EQ_INT(notified, 1);
  mc_fake_host_fini(&h);

  void *dl = NULL;
  char err[256];
  CHECK(!mc_fake_load("/nonexistent/mc-transport-x.so", &dl, err, sizeof err));
  CHECK_HAS(err, "cannot load /nonexistent/mc-transport-x.so");
  printf("fake host: ok\n");
  return 0;
}
