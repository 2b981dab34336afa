/* The store handle: setup (engine, global segment, staging buffer, master
 * connection, mount), the ping thread that remounts after a master restart,
 * and teardown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "sc.h"

#define SC_DEFAULT_STAGE (16u << 20)
#define SC_MAX_SLOT (4u << 20)
#define SC_PING_MS 1000
/* Pings failing in a row before the channel is rebuilt (a restarted
 * master can leave gRPC's subchannel stuck; see rpc.h). */
#define SC_PING_RESET 3

static int read_token(mc_store *s, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return sc_fail(MC_STORE_INVALID_PARAMS, "token_file %s: %s", path, strerror(errno));
  size_t n = fread(s->token, 1, sizeof s->token - 1, f);
  int more = fgetc(f) != EOF;
  fclose(f);
  while (n && (s->token[n - 1] == '\n' || s->token[n - 1] == '\r'))
    n--;
  if (more || !n)
    return sc_fail(MC_STORE_INVALID_PARAMS, "token_file %s: %s", path,
                   n ? "longer than 256 bytes" : "empty");
  s->token[n] = 0;
  s->token_len = n;
  return 0;
}

static int make_engine(mc_store *s, const mc_store_config *c) {
  char listen[MC_NAME_MAX];
  const char *host = c->local_hostname && *c->local_hostname ? c->local_hostname : "127.0.0.1";
  /* "host" gets an ephemeral port; "host:port" (not an IPv6 literal)
   * keeps its port. */
  const char *colon = strrchr(host, ':');
  if (colon && !strchr(host, ']') && colon == strchr(host, ':')) {
    snprintf(listen, sizeof listen, "%s", host);
    snprintf(s->hostname, sizeof s->hostname, "%.*s", (int)(colon - host), host);
  } else {
    snprintf(listen, sizeof listen, "%s:0", host);
    snprintf(s->hostname, sizeof s->hostname, "%s", host);
  }
  const char *md = c->metadata && *c->metadata ? c->metadata : "p2p";
  if (!strcmp(md, "P2PHANDSHAKE"))
    md = "p2p";
  const char *proto = c->protocol && *c->protocol ? c->protocol : "tcp";
  snprintf(s->protocol, sizeof s->protocol, "%s", proto);
  mc_engine_opts o = {.struct_size = sizeof o, .listen = listen, .metadata = md};
  char errbuf[512] = "";
  int rc = MC_ENOENT;
  /* tcp with shm beside it for same-host peers; tcp alone when the shm
   * plugin is not there or does not start. */
  const char *env = getenv("MC_STORE_TRANSPORTS");
  if (env && *env) {
    o.transports = env;
    rc = mc_engine_create_ex(&o, &s->engine, errbuf, sizeof errbuf);
    if (rc)
      return sc_fail(rc == MC_EINVAL ? MC_STORE_INVALID_PARAMS : MC_STORE_TRANSFER_FAIL,
                     "create: transfer engine (MC_STORE_TRANSPORTS=%s): %s", env, errbuf);
  } else if (!strcmp(proto, "tcp")) {
    /* An SSD tier owner loads nvmeof too, which moves its tier file's
     * bytes (mc_register_file); without that plugin the tier falls back
     * to a mapping of the file (sc_ssd.c). */
    if (c->ssd_offload_dir && *c->ssd_offload_dir) {
      o.transports = "tcp,shm,nvmeof";
      rc = mc_engine_create_ex(&o, &s->engine, errbuf, sizeof errbuf);
    }
    if (rc) {
      o.transports = "tcp,shm";
      rc = mc_engine_create_ex(&o, &s->engine, errbuf, sizeof errbuf);
    }
  }
  if (rc) {
    o.transports = proto;
    rc = mc_engine_create_ex(&o, &s->engine, errbuf, sizeof errbuf);
  }
  if (rc)
    return sc_fail(rc == MC_EINVAL ? MC_STORE_INVALID_PARAMS : MC_STORE_TRANSFER_FAIL,
                   "create: transfer engine (%s, listen %s, metadata %s): %s", proto, listen,
                   md, errbuf);
  snprintf(s->seg_name, sizeof s->seg_name, "%s", mc_engine_segment_name(s->engine));
  return 0;
}

/* Touches every page of [p, p+len) now, so that the first put into the
 * segment (written by a peer's transport) takes no page faults. */
static void prefault(void *p, size_t len) {
#ifdef MADV_POPULATE_WRITE
  if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
    return;
#endif
  for (size_t off = 0; off < len; off += 4096)
    ((volatile char *)p)[off] = 0;
}

static int make_memory(mc_store *s, uint64_t seg_size, uint64_t stage_size) {
  if (seg_size) {
    s->seg_size = (seg_size + 4095) & ~(uint64_t)4095;
    /* Plain memory by default: peers on this host reach it through the shm
     * transport's process_vm path, others through tcp.  The shm pool
     * (mc_alloc_shared) on request only: every peer that imports it maps
     * and prefaults the whole pool, which for a large segment costs more
     * than it saves. */
    const char *sh = getenv("MC_STORE_SHARED_SEGMENT");
    if (sh && !strcmp(sh, "1") &&
        mc_alloc_shared(s->engine, s->seg_size, NULL, &s->seg_base) == 0) {
      s->seg_shared = 1;
    } else {
      if (posix_memalign(&s->seg_base, 2u << 20, s->seg_size)) {
        s->seg_base = NULL;
        return sc_fail(MC_STORE_INTERNAL_ERROR, "create: no memory for a %llu-byte segment",
                       (unsigned long long)s->seg_size);
      }
      prefault(s->seg_base, s->seg_size);
      int rc = mc_register(s->engine, s->seg_base, s->seg_size, NULL);
      if (rc) {
        free(s->seg_base);
        s->seg_base = NULL;
        return sc_fail(sc_from_mc(rc, 1), "create: register the segment: %s",
                       mc_errname(rc));
      }
    }
  }
  s->stage_size = stage_size ? stage_size : SC_DEFAULT_STAGE;
  s->stage_size = (s->stage_size + 4095) & ~(uint64_t)4095;
  uint64_t n = s->stage_size / SC_MAX_SLOT;
  s->nslots = n < 1 ? 1 : n > 64 ? 64 : (uint32_t)n;
  s->slot_size = (s->stage_size / s->nslots) & ~(uint64_t)4095;
  s->slot_free = s->nslots == 64 ? ~0ull : (1ull << s->nslots) - 1;
  if (posix_memalign(&s->stage, 4096, s->stage_size)) {
    s->stage = NULL;
    return sc_fail(MC_STORE_INTERNAL_ERROR, "create: no memory for the staging buffer");
  }
  int rc = mc_register(s->engine, s->stage, s->stage_size, NULL);
  if (rc) {
    free(s->stage);
    s->stage = NULL;
    return sc_fail(sc_from_mc(rc, 1), "create: register the staging buffer: %s",
                   mc_errname(rc));
  }
  return 0;
}

static void *pinger(void *arg) {
  mc_store *s = arg;
  int failed = 0;
  pthread_mutex_lock(&s->ping_mu);
  while (!s->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += SC_PING_MS / 1000;
    pthread_cond_timedwait(&s->ping_cv, &s->ping_mu, &ts);
    if (s->stop)
      break;
    pthread_mutex_unlock(&s->ping_mu);
    int need = 0;
    int rc = scm_ping(s, &need);
    if (rc == MC_STORE_RPC_FAIL || rc == MC_STORE_RPC_TIMEOUT) {
      if (++failed % SC_PING_RESET == 0)
        scm_reset(s);
    } else {
      failed = 0;
    }
    if (!rc && need && (s->ssd_mode ? sc_ssd_remount(s) : scm_mount(s, 1)) == 0)
      atomic_fetch_add(&s->remounts, 1);
    pthread_mutex_lock(&s->ping_mu);
  }
  pthread_mutex_unlock(&s->ping_mu);
  return NULL;
}

int mc_store_create(const mc_store_config *cfg, mc_store **out) {
  if (!cfg || !out)
    return sc_fail(MC_STORE_INVALID_PARAMS, "create: NULL %s", cfg ? "out" : "config");
  mc_store_config c = {0};
  size_t sz = cfg->struct_size ? cfg->struct_size : sizeof c;
  memcpy(&c, cfg, sz < sizeof c ? sz : sizeof c);
  mc_store *s = calloc(1, sizeof *s);
  if (!s)
    return sc_fail(MC_STORE_INTERNAL_ERROR, "create: out of memory");
  s->ssd_fd = -1;
  pthread_mutex_init(&s->ssd_mu, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->slot_mu, NULL);
  pthread_cond_init(&s->slot_cv, NULL);
  pthread_mutex_init(&s->ping_mu, NULL);
  pthread_cond_init(&s->ping_cv, NULL);
  s->rpc_timeout_ms = c.rpc_timeout_ms > 0 ? c.rpc_timeout_ms : 5000;
  s->xfer_timeout_ms = 30000;
  int rc = 0;
  const char *tf = c.token_file ? c.token_file : getenv("MC_STORE_TOKEN_FILE");
  if (tf && *tf)
    rc = read_token(s, tf);
  if (!rc && (getrandom(s->client_id, 16, 0) != 16 || getrandom(s->segment_id, 16, 0) != 16))
    rc = sc_fail(MC_STORE_INTERNAL_ERROR, "create: getrandom: %s", strerror(errno));
  if (!rc)
    rc = scm_open(s, c.master && *c.master ? c.master : "127.0.0.1:50051");
  if (!rc)
    rc = make_engine(s, &c);
  if (!rc)
    rc = make_memory(s, c.global_segment_size, c.local_buffer_size);
  s->promote_on_hit = c.promotion_on_hit != 0;
  if (!rc && c.ssd_offload_dir && *c.ssd_offload_dir)
    rc = sc_ssd_open(s, c.ssd_offload_dir, c.ssd_offload_size);
  /* The first call tells whether the master is there at all. */
  if (!rc) {
    int need;
    rc = scm_ping(s, &need);
  }
  if (!rc && s->seg_base)
    rc = scm_mount(s, 0);
  if (!rc && s->ssd_mode)
    rc = scm_mount_disk(s);
  if (!rc && s->ssd_mode)
    rc = sc_ssd_start(s);
  if (!rc) {
    if (pthread_create(&s->pinger, NULL, pinger, s))
      rc = sc_fail(MC_STORE_INTERNAL_ERROR, "create: cannot start the ping thread");
    else
      s->pinger_started = 1;
  }
  if (rc) {
    mc_store_destroy(s); /* leaves the last error line as it is */
    return rc;
  }
  *out = s;
  return 0;
}

void mc_store_destroy(mc_store *s) {
  if (!s)
    return;
  sc_ssd_stop(s);
  if (s->pinger_started) {
    pthread_mutex_lock(&s->ping_mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->ping_cv);
    pthread_mutex_unlock(&s->ping_mu);
    pthread_join(s->pinger, NULL);
    /* Only a handle that mounted (it pinged) unmounts.  The SSD tier
     * goes with it: the master drops the disk replicas there. */
    if (s->seg_base)
      scm_unmount(s);
    if (s->ssd_mode)
      scm_unmount_disk(s);
  }
  if (s->engine) {
    sc_ssd_close(s);
    sc_segs_close(s);
    if (s->seg_base) {
      if (s->seg_shared) {
        mc_free_shared(s->engine, s->seg_base);
      } else {
        mc_unregister(s->engine, s->seg_base);
        free(s->seg_base);
      }
    }
    if (s->stage) {
      mc_unregister(s->engine, s->stage);
      free(s->stage);
    }
    mc_engine_destroy(s->engine);
  }
  scm_close(s);
  free(s->bufs);
  pthread_mutex_destroy(&s->ssd_mu);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->slot_mu);
  pthread_cond_destroy(&s->slot_cv);
  pthread_mutex_destroy(&s->ping_mu);
  pthread_cond_destroy(&s->ping_cv);
  free(s);
}

const char *mc_store_segment_name(const mc_store *s) { return s ? s->seg_name : ""; }

uint64_t mc_store_remount_count(const mc_store *s) {
  return s ? atomic_load(&((mc_store *)(uintptr_t)s)->remounts) : 0;
}

int mc_store_tier_stats_get(mc_store *s, mc_store_tier_stats *st) {
  if (!s || !st)
    return sc_fail(MC_STORE_INVALID_PARAMS, "tier_stats: NULL argument");
  mc_store_tier_stats t = {.struct_size = sizeof t};
  int rc = scm_tier_stats(s, &t);
  if (rc)
    return rc;
  t.reads_memory = atomic_load(&s->n_read_mem);
  t.reads_disk = atomic_load(&s->n_read_disk);
  t.promotions = atomic_load(&s->n_promoted);
  t.offloads_written = atomic_load(&s->n_offloaded);
  t.offloads_failed = atomic_load(&s->n_offload_failed);
  t.trims = atomic_load(&s->n_trimmed);
  t.ssd_mode = s->ssd_mode;
  size_t sz = st->struct_size ? st->struct_size : sizeof t;
  if (sz < sizeof(uint32_t))
    return sc_fail(MC_STORE_INVALID_PARAMS, "tier_stats: struct_size %zu too small", sz);
  memcpy((char *)st + sizeof(uint32_t), (char *)&t + sizeof(uint32_t),
         (sz < sizeof t ? sz : sizeof t) - sizeof(uint32_t));
  return 0;
}

int mc_store_health_check(mc_store *s) {
  if (!s)
    return sc_fail(MC_STORE_INVALID_PARAMS, "health_check: NULL store");
  int need;
  return scm_ping(s, &need);
}

int mc_store_stats_get(mc_store *s, mc_store_stats *st) {
  if (!s || !st)
    return sc_fail(MC_STORE_INVALID_PARAMS, "stats: NULL argument");
  return scm_stats(s, st);
}

int mc_store_register_buffer(mc_store *s, void *ptr, size_t size) {
  if (!s || !ptr || !size)
    return sc_fail(MC_STORE_INVALID_PARAMS, "register_buffer: NULL or empty buffer");
  int rc = mc_register(s->engine, ptr, size, NULL);
  if (rc)
    return sc_fail(sc_from_mc(rc, 1), "register_buffer %p+%zu: %s", ptr, size,
                   mc_errname(rc));
  pthread_mutex_lock(&s->mu);
  if (s->nbufs == s->capbufs) {
    uint32_t cap = s->capbufs ? 2 * s->capbufs : 8;
    sc_buf *n = realloc(s->bufs, cap * sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&s->mu);
      mc_unregister(s->engine, ptr);
      return sc_fail(MC_STORE_INTERNAL_ERROR, "register_buffer: out of memory");
    }
    s->bufs = n;
    s->capbufs = cap;
  }
  s->bufs[s->nbufs++] = (sc_buf){(uintptr_t)ptr, size};
  pthread_mutex_unlock(&s->mu);
  return 0;
}

int mc_store_unregister_buffer(mc_store *s, void *ptr) {
  if (!s || !ptr)
    return sc_fail(MC_STORE_INVALID_PARAMS, "unregister_buffer: NULL argument");
  pthread_mutex_lock(&s->mu);
  uint32_t i = 0;
  while (i < s->nbufs && s->bufs[i].base != (uintptr_t)ptr)
    i++;
  if (i == s->nbufs) {
    pthread_mutex_unlock(&s->mu);
    return sc_fail(MC_STORE_INVALID_PARAMS, "unregister_buffer %p: not registered", ptr);
  }
  int rc = mc_unregister(s->engine, ptr);
  if (!rc)
    s->bufs[i] = s->bufs[--s->nbufs];
  pthread_mutex_unlock(&s->mu);
  return rc ? sc_fail(sc_from_mc(rc, 1), "unregister_buffer %p: %s", ptr, mc_errname(rc)) : 0;
}
