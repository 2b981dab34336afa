/* The request pipeline with its lower modules but without an engine (no
 * loader, no plugin files, no host API): a fake transport built here, a
 * real registry, segments over a p2p metadata pair on loopback, and a job
 * queue running the pipeline's hooks.  The fake takes at most 8 slices per
 * submit and holds them until its completer thread finishes them, so the
 * pipeline's back-pressure backlog fills and drains; every slice's first
 * attempt on rail 0 fails (MC_EPEER), so retries move it to rail 1; a
 * notification goes out only after every write of its group landed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_test_util.h"
#include "pipeline.h"

#define HOLD 64
typedef struct fake {
  pthread_mutex_t lock;
  mc_slice held[HOLD];
  uint32_t nheld;
  _Atomic int stop;
  _Atomic uint64_t submits, refused, failed, bytes, notifies, done_at_notify;
  _Atomic uint64_t per_rail[2];
  _Atomic uint32_t max_n; /* most slices handed over in one submit call */
} fake;
static fake F = {.lock = PTHREAD_MUTEX_INITIALIZER};
static _Atomic uint64_t completed; /* slices completed successfully */

static int f_reg(void *c, const mc_mem_desc *d, void **m, void *rk, size_t *rl) {
  *m = (void *)1;
  memcpy(rk, "k", 1);
  *rl = 1;
  return 0;
}
static int f_dereg(void *c, void *m) { return 0; }
static int f_connect(void *c, const char *p, const void *b, size_t l, void **ep) {
  *ep = (void *)2;
  return 0;
}
static int f_disconnect(void *c, void *ep) { return 0; }
static int f_import(void *c, void *ep, uint64_t a, uint64_t l, const void *k, size_t kl,
                    void **rm) {
  *rm = (void *)3;
  return 0;
}
static int f_release(void *c, void *rm) { return 0; }
static int f_submit(void *c, void *ep, const mc_slice *s, uint32_t n, uint32_t *acc) {
  atomic_fetch_add(&F.submits, 1);
  uint32_t m = atomic_load(&F.max_n);
  while (n > m && !atomic_compare_exchange_weak(&F.max_n, &m, n)) {
  }
  pthread_mutex_lock(&F.lock);
  uint32_t room = HOLD - F.nheld, k = n < room ? n : room;
  if (k > 8)
    k = 8;
  memcpy(&F.held[F.nheld], s, k * sizeof *s);
  F.nheld += k;
  pthread_mutex_unlock(&F.lock);
  *acc = k;
  if (k < n)
    atomic_fetch_add(&F.refused, n - k);
  return k < n ? MC_EAGAIN : 0;
}
static int f_notify(void *c, void *ep, const void *msg, size_t len) {
  atomic_store(&F.done_at_notify, atomic_load(&completed));
  atomic_fetch_add(&F.notifies, 1);
  return 0;
}

static const mc_transport_ops ops = {
    .caps = MC_CAP_READ | MC_CAP_WRITE | MC_CAP_INTER_NODE | MC_CAP_INTRA_NODE |
            MC_CAP_NOTIFY | MC_CAP_OWN_THREADS,
    .local_mem_kinds = MC_MEM_CPU, .remote_mem_kinds = MC_MEM_CPU,
    .register_mem = f_reg, .deregister_mem = f_dereg, .connect = f_connect,
    .disconnect = f_disconnect, .import_mem = f_import, .release_mem = f_release,
    .submit = f_submit, .send_notify = f_notify};

/* Completes what the fake holds: a slice's first attempt on rail 0 fails,
 * the rest are copied and succeed. */
static void *completer(void *arg) {
  const mc_host_api *h = arg;
  (void)h;
  while (!atomic_load(&F.stop)) {
    mc_slice s[HOLD];
    pthread_mutex_lock(&F.lock);
    uint32_t n = F.nheld;
    memcpy(s, F.held, n * sizeof *s);
    F.nheld = 0;
    pthread_mutex_unlock(&F.lock);
    for (uint32_t i = 0; i < n; i++) {
      atomic_fetch_add(&F.per_rail[s[i].rail & 1], 1);
      if (s[i].rail == 0) {
        atomic_fetch_add(&F.failed, 1);
        mc_pipeline_complete(s[i].token, MC_EPEER, 0, 5);
        continue;
      }
      void *l = (void *)(uintptr_t)s[i].local_addr, *r = (void *)(uintptr_t)s[i].remote_addr;
      if (s[i].op == MC_OP_WRITE)
        memcpy(r, l, s[i].len);
      else
        memcpy(l, r, s[i].len);
      atomic_fetch_add(&F.bytes, s[i].len);
      atomic_fetch_add(&completed, 1);
      mc_pipeline_complete(s[i].token, 0, s[i].len, 0);
    }
    if (!n)
      usleep(200);
  }
  return NULL;
}

static mc_logger lg;
static mc_tset set;
static mc_plugin plugin;
static mc_transport t;
static mc_rail_info rails[2];
static _Atomic uint64_t down[2];
static _Atomic uint32_t railload[2];
static uint8_t local[1 << 20] __attribute__((aligned(4096)));
static uint8_t remote[1 << 20] __attribute__((aligned(4096)));

static void publish_remote(mc_metadata *md, const char *name) {
  mc_desc_transport dt = {"fake", 1, (uint8_t *)"x"};
  mc_desc_key key = {.transport = 0, .len = 1, .bytes = {'k'}};
  mc_desc_buffer b = {.addr = (uint64_t)(uintptr_t)remote, .len = sizeof remote,
                      .kind = MC_MEM_CPU, .location = "cpu:0", .nkeys = 1, .keys = &key};
  mc_seg_desc d = {.version = 1, .ntransports = 1, .transports = &dt, .nbuffers = 1,
                   .buffers = &b};
  snprintf(d.name, sizeof d.name, "%s", name);
  snprintf(d.host_id, sizeof d.host_id, "elsewhere");
  char *json = NULL;
  size_t len = 0;
  CHECK_MSG(mc_desc_encode(&d, &json, &len) == 0 && mc_metadata_publish(md, name, json, len) == 0,
        "publish");
  free(json);
}

int main(void) {
  mc_check_keep_going(1);
  lg.level = mc_log_env_level();
  set.log = &lg;
  set.n = 1;
  set.t[0] = &t;
  snprintf(plugin.name, sizeof plugin.name, "fake");
  t = (mc_transport){.set = &set, .plugin = &plugin, .ops = &ops, .rails = rails,
                     .nrails = 2, .rail_down_until = down, .rail_inflight = railload,
                     .slice_size = 4096};
  pthread_mutex_init(&t.ctl_lock, NULL);
  pthread_mutex_init(&t.submit_lock, NULL);
  mc_config *cfg = mc_config_new_default();
  cfg->retry_count = 4;

  char pname[MC_NAME_MAX], sname[MC_NAME_MAX];
  char err[256];
  mc_metadata_args a = {.url = "p2p", .listen = "127.0.0.1:0", .timeout_ms = 2000, .log = &lg};
  mc_metadata *mdp = NULL, *mds = NULL;
  CHECK_MSG(mc_metadata_open(&a, &mdp, err, sizeof err) == 0, "md: %s", err);
  CHECK_MSG(mc_metadata_open(&a, &mds, err, sizeof err) == 0, "md: %s", err);
  if (!mdp || !mds || !cfg)
    return 1;
  mc_metadata_local_name(mdp, pname, sizeof pname);
  mc_metadata_local_name(mds, sname, sizeof sname);
  publish_remote(mdp, pname);

  mc_jobq *jobs = NULL;
  mc_registry *reg = NULL;
  mc_segments *ss = NULL;
  mc_pipeline *p = NULL;
  mc_jobq_create(&jobs);
  CHECK_MSG(mc_registry_create(&set, NULL, NULL, NULL, &reg) == 0, "registry");
  CHECK_MSG(mc_segments_create(&lg, "here", &ss) == 0, "segments");
  mc_segments_attach(ss, &set, jobs, mds, "p2p");
  CHECK_MSG(mc_pipeline_create(&set, reg, jobs, cfg, &p) == 0, "pipeline");
  mc_jobq_hooks h = mc_pipeline_hooks(p);
  mc_jobq_start(jobs, &h);
  pthread_t th;
  pthread_create(&th, NULL, completer, NULL);

  CHECK_MSG(mc_registry_register(reg, &(mc_region){local, sizeof local, "cpu:0"}, 1, NULL) == 0,
        "register");
  mc_segment *seg = NULL;
  CHECK_MSG(mc_segments_open(ss, pname, &seg) == 0, "open");
  for (size_t i = 0; i < sizeof local; i++)
    local[i] = (uint8_t)(i * 31 + 7);

  /* Four writes of 256 KiB (64 slices each) in one notify group. */
  mc_batch *b = NULL;
  CHECK_MSG(mc_pipeline_batch_create(p, 8, &b) == 0, "batch");
  mc_request rq[4];
  for (int i = 0; i < 4; i++)
    rq[i] = (mc_request){MC_OP_WRITE, local + i * (256 << 10), seg,
                         (uint64_t)(uintptr_t)remote + (uint64_t)i * (256 << 10), 256 << 10};
  CHECK_MSG(mc_batch_submit_notify(b, rq, 4, "ready", 5) == 0, "submit");
  int rc = mc_batch_wait(b, 10000);
  CHECK_MSG(rc == 0, "wait: %s", mc_strerror(rc));
  for (uint32_t i = 0; i < 4; i++) {
    mc_transfer_status st;
    mc_batch_status(b, i, &st);
    CHECK_MSG(st.state == MC_XFER_COMPLETED && st.bytes == (256 << 10) &&
              strcmp(st.transport, "fake") == 0,
          "request %u: state %u bytes %llu", i, st.state, (unsigned long long)st.bytes);
  }
  CHECK_MSG(memcmp(local, remote, sizeof local) == 0, "data differs");
  CHECK_MSG(atomic_load(&F.refused) > 0, "no back-pressure happened");
  CHECK_MSG(atomic_load(&F.failed) > 0 && atomic_load(&F.per_rail[1]) >= 256,
        "retries: %llu failed, rail 1 carried %llu", (unsigned long long)F.failed,
        (unsigned long long)F.per_rail[1]);
  CHECK_MSG(atomic_load(&F.notifies) == 1 && atomic_load(&F.done_at_notify) == 256,
        "notification %llu, after %llu of 256 slices", (unsigned long long)F.notifies,
        (unsigned long long)F.done_at_notify);
  CHECK_MSG(mc_pipeline_inflight(p) == 0, "in flight after wait: %lld",
        (long long)mc_pipeline_inflight(p));
  printf("pipeline: %llu submits, %llu slices refused (backlog), %llu failed and retried\n",
         (unsigned long long)F.submits, (unsigned long long)F.refused,
         (unsigned long long)F.failed);
  mc_batch_destroy(b);

  /* 32 one-slice requests to one buffer reach the plugin in one submit
   * call, not 32 (a wake-up of its thread each). */
  atomic_store(&F.max_n, 0);
  CHECK_MSG(mc_pipeline_batch_create(p, 32, &b) == 0, "batch 32");
  mc_request small[32];
  for (int i = 0; i < 32; i++)
    small[i] = (mc_request){MC_OP_READ, local + i * 4096, seg,
                            (uint64_t)(uintptr_t)remote + (uint64_t)i * 4096, 4096};
  CHECK_MSG(mc_batch_submit(b, small, 32) == 0, "submit 32");
  rc = mc_batch_wait(b, 10000);
  CHECK_MSG(rc == 0, "wait 32: %s", mc_strerror(rc));
  CHECK_MSG(atomic_load(&F.max_n) == 32, "32 small requests: at most %u slices per submit",
            atomic_load(&F.max_n));
  CHECK_MSG(memcmp(local, remote, 32 * 4096) == 0, "data differs after the reads");
  mc_batch_destroy(b);

  /* Invalid requests never reach the transport. */
  CHECK_MSG(mc_pipeline_batch_create(p, 2, &b) == 0, "batch 2");
  mc_request bad = {MC_OP_WRITE, local, seg, 12, 4096}; /* remote not registered */
  CHECK_MSG(mc_batch_submit(b, &bad, 1) == 0, "submit bad");
  mc_transfer_status st;
  mc_batch_status(b, 0, &st);
  CHECK_MSG(st.state == MC_XFER_INVALID && st.error == MC_ERANGE, "invalid: %u %d", st.state,
        st.error);
  mc_batch_destroy(b);

  atomic_store(&F.stop, 1);
  pthread_join(th, NULL);
  mc_segment_close(seg);
  mc_jobq_stop(jobs);
  mc_segments_destroy(ss);
  mc_registry_destroy(reg);
  mc_pipeline_destroy(p);
  mc_jobq_destroy(jobs);
  mc_metadata_close(mds);
  mc_metadata_close(mdp);
  mc_config_free(cfg);
  return mc_check_exit_status();
}
