/* Segments and views on their own (core/src/segment.h), without an engine:
 * fake transports built here, a real p2p metadata pair on loopback (one
 * publishes a descriptor, the other's mc_segments fetches it) and a job
 * queue.  The view maps the peer's transports to local ones, routes create
 * endpoints and imports once and cache them, a range the view lacks
 * refetches once (and a refresh keeps endpoints whose blob is unchanged),
 * a change notice makes the next view refetch, and the last reference of a
 * view dropped with mc_view_put_async is freed on the job queue. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_test_util.h"
#include "segment.h"

typedef struct fake {
  _Atomic int connects, disconnects, imports, releases;
  char last_blob[16];
  pthread_t releaser; /* thread of the last release_mem */
} fake;

static fake fakes[3];

static int f_connect(void *ctx, const char *peer_name, const void *blob, size_t len, void **ep) {
  fake *f = ctx;
  atomic_fetch_add(&f->connects, 1);
  snprintf(f->last_blob, sizeof f->last_blob, "%.*s", (int)len, (const char *)blob);
  *ep = f;
  return 0;
}
static int f_disconnect(void *ctx, void *ep) {
  atomic_fetch_add(&((fake *)ctx)->disconnects, 1);
  return 0;
}
static int f_import(void *ctx, void *ep, uint64_t addr, uint64_t len, const void *key,
                    size_t klen, void **rm) {
  atomic_fetch_add(&((fake *)ctx)->imports, 1);
  *rm = (void *)(uintptr_t)addr;
  return 0;
}
static int f_release(void *ctx, void *rm) {
  fake *f = ctx;
  f->releaser = pthread_self();
  atomic_fetch_add(&f->releases, 1);
  return 0;
}

static mc_logger lg;
static mc_tset set;
static mc_plugin plugins[3];
static mc_transport tr[3];

static void setup(void) {
  lg.level = mc_log_env_level();
  set.log = &lg;
  set.n = 3;
  for (int i = 0; i < 3; i++) {
    snprintf(plugins[i].name, sizeof plugins[i].name, "fake%d", i);
    mc_transport_ops *o = &plugins[i].ops;
    o->connect = f_connect;
    o->disconnect = f_disconnect;
    o->import_mem = f_import;
    o->release_mem = f_release;
    tr[i].set = &set;
    tr[i].plugin = &plugins[i];
    tr[i].ops = o;
    tr[i].ctx = &fakes[i];
    tr[i].index = i;
    pthread_mutex_init(&tr[i].ctl_lock, NULL);
    set.t[i] = &tr[i];
  }
}

/* Publishes name's descriptor: transports fake1 then fake0 (the peer's
 * order differs from ours), nbuf buffers of 4 KiB at 0x10000 * (i + 1)
 * with a key for fake0 only. */
static void publish(mc_metadata *md, const char *name, uint64_t version, uint32_t nbuf,
                    const char *blob0) {
  mc_desc_transport t[2] = {{"fake1", 2, (uint8_t *)"B1"},
                            {"fake0", (uint32_t)strlen(blob0), (uint8_t *)blob0}};
  mc_desc_key keys[4];
  mc_desc_buffer b[4];
  memset(b, 0, sizeof b);
  for (uint32_t i = 0; i < nbuf; i++) {
    keys[i] = (mc_desc_key){.transport = 1, .len = 1, .bytes = {7}};
    b[i].addr = 0x10000ull * (i + 1);
    b[i].len = 4096;
    b[i].kind = MC_MEM_CPU;
    snprintf(b[i].location, sizeof b[i].location, "cpu:0");
    b[i].nkeys = 1;
    b[i].keys = &keys[i];
  }
  mc_seg_desc d = {.version = version, .ntransports = 2, .transports = t,
                   .nbuffers = nbuf, .buffers = b};
  snprintf(d.name, sizeof d.name, "%s", name);
  snprintf(d.host_id, sizeof d.host_id, "peer-host");
  char *json = NULL;
  size_t len = 0;
  CHECK_MSG(mc_desc_encode(&d, &json, &len) == 0, "encode");
  CHECK_MSG(mc_metadata_publish(md, name, json, len) == 0, "publish");
  free(json);
}

static mc_metadata *open_md(char *name) {
  mc_metadata_args a = {.url = "p2p", .listen = "127.0.0.1:0", .timeout_ms = 2000,
                        .log = &lg};
  mc_metadata *md = NULL;
  char err[256];
  int rc = mc_metadata_open(&a, &md, err, sizeof err);
  CHECK_MSG(rc == 0, "metadata: %s", err);
  if (md)
    mc_metadata_local_name(md, name, MC_NAME_MAX);
  return md;
}

int main(void) {
  mc_check_keep_going(1);
  setup();
  char pname[MC_NAME_MAX], self[MC_NAME_MAX];
  mc_metadata *mdp = open_md(pname), *mds = open_md(self);
  if (!mdp || !mds)
    return 1;
  publish(mdp, pname, 1, 1, "A0");
  mc_jobq *jobs = NULL;
  mc_jobq_create(&jobs);
  mc_jobq_start(jobs, NULL);
  mc_segments *ss = NULL;
  CHECK_MSG(mc_segments_create(&lg, "my-host", &ss) == 0, "create");
  mc_segments_attach(ss, &set, jobs, mds, "p2p");

  mc_segment *seg = NULL;
  CHECK_MSG(mc_segments_open(ss, pname, &seg) == 0, "open %s", pname);
  CHECK_MSG(mc_segments_open(ss, "", &seg) == MC_EINVAL, "empty name");
  if (!seg)
    return 1;
  CHECK_MSG(strcmp(mc_segment_name(seg), pname) == 0, "name");
  long rbuf = -1;
  int err = 0;
  mc_seg_view *v = mc_segment_view_for(seg, 0x10000 + 100, 200, &rbuf, &err);
  CHECK_MSG(v && rbuf == 0, "view_for: rbuf %ld err %d", rbuf, err);
  if (!v)
    return 1;
  CHECK_MSG(mc_view_desc_tidx(v, 0) == 1 && mc_view_desc_tidx(v, 1) == 0 &&
            mc_view_desc_tidx(v, 2) == -1, "transport mapping %d %d %d",
        mc_view_desc_tidx(v, 0), mc_view_desc_tidx(v, 1), mc_view_desc_tidx(v, 2));
  CHECK_MSG(!mc_view_same_host(v), "same host");
  CHECK_MSG(mc_view_desc(v)->version == 1, "version");

  /* Routes: created once, then cached; no key or no peer transport. */
  void *ep = NULL, *rm = NULL;
  CHECK_MSG(mc_view_route(v, &tr[0], rbuf, &ep, &rm) == 0, "route fake0");
  CHECK_MSG(ep == &fakes[0] && rm == (void *)0x10000, "route values");
  CHECK_MSG(mc_view_route(v, &tr[0], rbuf, &ep, &rm) == 0, "route again");
  CHECK_MSG(fakes[0].connects == 1 && fakes[0].imports == 1, "connect %d import %d",
        fakes[0].connects, fakes[0].imports);
  CHECK_MSG(strcmp(fakes[0].last_blob, "A0") == 0, "blob '%s'", fakes[0].last_blob);
  CHECK_MSG(mc_view_route(v, &tr[1], rbuf, &ep, &rm) == MC_ENOTSUP, "no key for fake1");
  CHECK_MSG(mc_view_route(v, &tr[2], rbuf, &ep, &rm) == MC_ENOTSUP, "peer lacks fake2");

  /* A range outside: refetched once, still absent. */
  CHECK_MSG(mc_segment_view_for(seg, 0x50000, 1, &rbuf, &err) == NULL && err == MC_ERANGE,
        "outside: err %d", err);
  /* The peer registered more: found after a refetch; the endpoint (same
   * blob) is kept, the old view lives until its last reference. */
  publish(mdp, pname, 2, 2, "A0");
  mc_seg_view *v2 = mc_segment_view_for(seg, 0x20000, 4096, &rbuf, &err);
  CHECK_MSG(v2 && rbuf == 1 && mc_view_desc(v2)->version == 2, "grown: err %d", err);
  CHECK_MSG(v2 && mc_view_route(v2, &tr[0], rbuf, &ep, &rm) == 0, "route in v2");
  CHECK_MSG(fakes[0].connects == 1 && fakes[0].imports == 2, "endpoint reused: %d connects",
        fakes[0].connects);
  mc_view_put(v); /* frees the first view: its import, not the shared endpoint */
  CHECK_MSG(fakes[0].releases == 1 && fakes[0].disconnects == 0, "release %d disconnect %d",
        fakes[0].releases, fakes[0].disconnects);

  /* A change notice: the next view refetches; a new blob, a new endpoint. */
  publish(mdp, pname, 3, 2, "A0new");
  mc_segments_on_change(ss, pname);
  mc_seg_view *v3 = mc_segment_view(seg);
  CHECK_MSG(v3 && mc_view_desc(v3)->version == 3, "refetched after the notice");
  CHECK_MSG(v3 && mc_view_route(v3, &tr[0], 0, &ep, &rm) == 0, "route in v3");
  CHECK_MSG(fakes[0].connects == 2 && strcmp(fakes[0].last_blob, "A0new") == 0,
        "new endpoint for a new blob: %d connects", fakes[0].connects);
  mc_view_put(v3);

  /* The last reference dropped "from a completion": freed on the queue. */
  mc_segment_close(seg); /* the segment's own reference goes */
  int r0 = atomic_load(&fakes[0].releases);
  mc_view_put_async(v2);
  for (int i = 0; i < 2000 && atomic_load(&fakes[0].releases) == r0; i++)
    usleep(1000);
  CHECK_MSG(atomic_load(&fakes[0].releases) == r0 + 1, "async put freed nothing");
  CHECK_MSG(!pthread_equal(fakes[0].releaser, pthread_self()), "freed on the caller's thread");

  mc_segments_destroy(ss);
  CHECK_MSG(atomic_load(&fakes[0].disconnects) == 2, "disconnects %d",
        atomic_load(&fakes[0].disconnects));
  mc_jobq_destroy(jobs);
  mc_metadata_close(mds);
  mc_metadata_close(mdp);
  if (!mc_check_failures())
    printf("segments: ok\n");
  return mc_check_exit_status();
}
