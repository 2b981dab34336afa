/* mc-transport-ctrlfix: the example transport (examples/transport-plugin,
 * memcpy between engines of one process, with its target-side checks) plus
 * a control channel (ABI 1.2), for tests/ctrl and the conformance tool's
 * ctrl checks.
 *
 * ctrl_handle answers these requests from the peer's same transport:
 *   "echo:<x>"  ->  "<this segment>|<calling segment>|<x>"
 *   "size:<n>"  ->  n bytes of 'z' (n <= MC_CTRL_MAX)
 *   "err:<n>"   ->  returns -n (an MC_E* code)
 * anything else -> MC_EINVAL (hostile input is expected and harmless).
 *
 * Test hooks, exported (this fixture is not linked with the plugins'
 * version script) and found by tests with dlsym on the loaded plugin:
 *   ctrlfix_call(self, peer, ...)   ctrl_call from the context of engine
 *                                   segment `self`
 *   ctrlfix_hello(n)                from now on connect() first waits (up
 *                                   to 3 s) until n connects are in
 *                                   progress, then says "echo:hello" to the
 *                                   peer through ctrl_call and fails unless
 *                                   answered: with n = 2 and two engines
 *                                   connecting to each other, both are in
 *                                   connect (the core's control lock held)
 *                                   while calling out: simultaneous open.
 *   ctrlfix_handled()               ctrl_handle calls so far.
 *
 * Built a second time as mc-transport-ctrlbad.so with FX_BAD_CTRL: its
 * ctrl_handle breaks the contract (it claims a reply longer than the
 * buffer for long requests, and answers some with a positive code), which
 * mc-transport-conformance's ctrl checks must catch. */
#ifndef FX_NAME
#define FX_NAME "ctrlfix"
#endif
#define OOT_NAME FX_NAME
/* The example's own entry point is renamed; ours returns a copy of its
 * table with the 1.2 member and the connect wrapper. */
#define mc_transport_plugin_v1 oot_example_entry
#include "oot_transport.c"
#undef mc_transport_plugin_v1

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void);
MC_TRANSPORT_EXPORT int ctrlfix_call(const char *self, const char *peer,
                                     const void *req, size_t req_len,
                                     void *resp, size_t *resp_len,
                                     uint32_t timeout_ms);
MC_TRANSPORT_EXPORT void ctrlfix_hello(int n);
MC_TRANSPORT_EXPORT long ctrlfix_handled(void);

#define FX_MAX 16

typedef struct fx_entry {
  void *ctx;
  const mc_host_api *host;
  char seg[MC_NAME_MAX];
} fx_entry;

static pthread_mutex_t fx_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fx_cv = PTHREAD_COND_INITIALIZER;
static fx_entry fx_tab[FX_MAX];
static int fx_hello_n, fx_connecting;
static atomic_long fx_handled;

static int fx_init(const mc_host_api *host, const mc_init_args *args,
                   void **out) {
  int rc = oot_init(host, args, out);
  if (rc)
    return rc;
  pthread_mutex_lock(&fx_mu);
  for (int i = 0; i < FX_MAX; i++)
    if (!fx_tab[i].ctx) {
      fx_tab[i].ctx = *out;
      fx_tab[i].host = host;
      snprintf(fx_tab[i].seg, sizeof fx_tab[i].seg, "%s",
               args && args->segment_name ? args->segment_name : "");
      break;
    }
  pthread_mutex_unlock(&fx_mu);
  return 0;
}

static int fx_fini(void *ctx) {
  pthread_mutex_lock(&fx_mu);
  for (int i = 0; i < FX_MAX; i++)
    if (fx_tab[i].ctx == ctx)
      fx_tab[i].ctx = NULL;
  pthread_mutex_unlock(&fx_mu);
  return oot_fini(ctx);
}

/* The entry of ctx (by context) or of segment self (by name). */
static int fx_find(void *ctx, const char *self, fx_entry *out) {
  int rc = MC_ENOENT;
  pthread_mutex_lock(&fx_mu);
  for (int i = 0; i < FX_MAX; i++)
    if (fx_tab[i].ctx &&
        (ctx ? fx_tab[i].ctx == ctx : strcmp(fx_tab[i].seg, self) == 0)) {
      *out = fx_tab[i];
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&fx_mu);
  return rc;
}

static int fx_ctrl_handle(void *ctx, const char *peer, const void *req,
                          size_t req_len, void *resp, size_t *resp_len) {
  atomic_fetch_add(&fx_handled, 1);
  fx_entry e;
  if (fx_find(ctx, NULL, &e))
    return MC_EINVAL;
  char text[64];
  size_t n = req_len < sizeof text - 1 ? req_len : sizeof text - 1;
  memcpy(text, req, n);
  text[n] = '\0';
  size_t cap = *resp_len;
#ifdef FX_BAD_CTRL
  if (req_len > 3000) {
    *resp_len = cap + 1; /* a length past the buffer */
    return 0;
  }
  if (req_len > 2000)
    return 1; /* not an MC_E* code */
#endif
  if (req_len > 5 && memcmp(req, "echo:", 5) == 0) {
    int w = snprintf(resp, cap, "%s|%s|%.*s", e.seg, peer, (int)(req_len - 5),
                     (const char *)req + 5);
    if (w < 0 || (size_t)w >= cap)
      return MC_ENOSPC;
    *resp_len = (size_t)w;
    return 0;
  }
  char *end;
  if (req_len > 5 && req_len < 16 && memcmp(text, "size:", 5) == 0) {
    unsigned long v = strtoul(text + 5, &end, 10);
    if (*end || v > cap)
      return MC_EINVAL;
    memset(resp, 'z', v);
    *resp_len = v;
    return 0;
  }
  if (req_len > 4 && req_len < 16 && memcmp(text, "err:", 4) == 0) {
    long v = strtol(text + 4, &end, 10);
    if (*end || v <= 0 || v > 1000)
      return MC_EINVAL;
    return (int)-v;
  }
  return MC_EINVAL;
}

static int fx_connect(void *ctx, const char *peer, const void *desc, size_t len,
                      void **ep) {
  pthread_mutex_lock(&fx_mu);
  int want = fx_hello_n;
  if (want) {
    fx_connecting++;
    pthread_cond_broadcast(&fx_cv);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 3;
    while (fx_connecting < want &&
           pthread_cond_timedwait(&fx_cv, &fx_mu, &ts) == 0)
      ;
  }
  pthread_mutex_unlock(&fx_mu);
  if (want) {
    fx_entry e;
    int rc = fx_find(ctx, NULL, &e);
    char resp[MC_CTRL_MAX];
    size_t rl = sizeof resp;
    if (!rc)
      rc = e.host->ctrl_call(e.host->host, peer, "echo:hello", 10, resp, &rl,
                             5000);
    pthread_mutex_lock(&fx_mu);
    fx_connecting--;
    pthread_mutex_unlock(&fx_mu);
    if (rc)
      return rc;
    /* The answer comes from the peer's context and names us. */
    char want_text[2 * MC_NAME_MAX + 16];
    snprintf(want_text, sizeof want_text, "|%s|hello", e.seg);
    size_t wl = strlen(want_text);
    if (rl < wl || memcmp(resp + rl - wl, want_text, wl) != 0)
      return MC_EPROTO;
  }
  return oot_connect(ctx, peer, desc, len, ep);
}

int ctrlfix_call(const char *self, const char *peer, const void *req,
                 size_t req_len, void *resp, size_t *resp_len,
                 uint32_t timeout_ms) {
  fx_entry e;
  int rc = fx_find(NULL, self, &e);
  if (rc)
    return rc;
  if (!MC_HOST_HAS(e.host, ctrl_call))
    return MC_ENOTSUP;
  return e.host->ctrl_call(e.host->host, peer, req, req_len, resp, resp_len,
                           timeout_ms);
}

void ctrlfix_hello(int n) {
  pthread_mutex_lock(&fx_mu);
  fx_hello_n = n;
  pthread_mutex_unlock(&fx_mu);
}

long ctrlfix_handled(void) { return atomic_load(&fx_handled); }

static mc_transport_ops fx_ops;
static pthread_once_t fx_once = PTHREAD_ONCE_INIT;

static void fx_build(void) {
  fx_ops = oot_ops;
  fx_ops.init = fx_init;
  fx_ops.fini = fx_fini;
  fx_ops.connect = fx_connect;
  fx_ops.ctrl_handle = fx_ctrl_handle;
}

const mc_transport_ops *mc_transport_plugin_v1(void) {
  pthread_once(&fx_once, fx_build);
  return &fx_ops;
}
