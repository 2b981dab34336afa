/* The master's SSD tier state machine, in-process (no background threads:
 * every eviction and expiry is called here, so the order is exact): disk
 * segments are never chosen by puts nor counted as memory; eviction queues
 * an offload task for the disk segment's owner only; done records the disk
 * replica and frees the memory, failed and timed-out tasks keep the object
 * in memory; a freed disk range is not reusable until its trim is
 * acknowledged; PromoteStart is version-checked; removal, upsert and
 * unmount drop disk replicas; --enable_offload=false refuses disk mounts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "master.h"

#define KB 1024ull
static const uint8_t A[16] = {1}, B[16] = {2}, SM[16] = {11}, SD[16] = {12};

static mcs_master *m;

static void put(const char *key, uint64_t size) {
  mcs_rep_out out[MCS_MAX_REPLICAS];
  int n = 0;
  mcs_put_cfg cfg = {.replica_num = 1};
  CHECK_EQ_INT(mcs_put_start(m, A, key, strlen(key), size, &cfg, 0, out, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(out[0].disk, 0);
  CHECK_STR(out[0].seg->name, "mem");
  mcs_reps_release(out, n);
  CHECK_EQ_INT(mcs_put_end(m, A, key, strlen(key)), 0);
}

/* Counts of key's memory and disk replicas (-1, -1 when not readable);
 * the version into *ver. */
static void tiers(const char *key, int *mem, int *disk, uint64_t *ver) {
  mcs_rep_out out[MCS_MAX_REPLICAS];
  int n = 0;
  uint64_t v = 0;
  *mem = *disk = -1;
  if (mcs_get_replicas_v(m, key, strlen(key), out, &n, &v) != 0)
    return;
  *mem = *disk = 0;
  for (int i = 0; i < n; i++)
    out[i].disk ? (*disk)++ : (*mem)++;
  if (ver)
    *ver = v;
  mcs_reps_release(out, n);
  usleep(3000); /* the 1 ms lease ends */
}

typedef struct sync_out {
  mcs_task_out t[16];
  mcs_trim_out r[16];
  int nt, nr;
} sync_out;

static void sync_(const uint8_t *cid, const uint64_t *done, size_t nd, const uint64_t *failed,
                  size_t nf, const uint64_t *trimmed, size_t ntr, sync_out *o) {
  CHECK_EQ_INT(mcs_offload_sync(m, cid, done, nd, failed, nf, trimmed, ntr, 16, o->t, &o->nt,
                                o->r, &o->nr),
               0);
}

static void release(sync_out *o) {
  mcs_task_out_release(o->t, o->nt);
  mcs_trim_out_release(o->r, o->nr);
}

int main(void) {
  mcs_master_config cfg;
  mcs_config_defaults(&cfg);
  cfg.enable_offload = 0;
  CHECK_EQ_INT(mcs_master_create(&cfg, &m), 0);
  CHECK_EQ_INT(mcs_mount_ex(m, B, SD, "b", "h", "tcp", 1ull << 40, 4096 * KB, 1),
               MCSTORE__ERROR_CODE__NOT_SUPPORTED);
  mcs_master_destroy(m);

  mcs_config_defaults(&cfg);
  cfg.default_kv_lease_ttl_ms = 1;
  cfg.offload_task_timeout_ms = 50;
  CHECK_EQ_INT(mcs_master_create(&cfg, &m), 0);
  CHECK_EQ_INT(mcs_mount_ex(m, A, SM, "mem", "h", "tcp", 1ull << 30, 1024 * KB, 0), 0);
  CHECK_EQ_INT(mcs_mount_ex(m, B, SD, "b", "h", "tcp", 1ull << 40, 4096 * KB, 1), 0);
  CHECK_EQ_U64(atomic_load(&m->capacity), 1024 * KB);
  CHECK_EQ_U64(atomic_load(&m->disk_capacity), 4096 * KB);
  CHECK_EQ_U64(mcs_largest_segment(m), 1024 * KB);

  /* A put never lands on the disk segment, even when it is preferred. */
  const char *pref[] = {"b"};
  mcs_put_cfg pc = {.replica_num = 2, .preferred = pref, .npreferred = 1};
  mcs_rep_out out[MCS_MAX_REPLICAS];
  int n = 0, mem, disk;
  CHECK_EQ_INT(mcs_put_start(m, A, "p", 1, 64 * KB, &pc, 0, out, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_STR(out[0].seg->name, "mem");
  mcs_reps_release(out, n);
  CHECK_EQ_INT(mcs_put_revoke(m, A, "p", 1), 0);

  for (int i = 0; i < 4; i++) {
    char k[8];
    snprintf(k, sizeof k, "k%d", i);
    put(k, 256 * KB);
  }
  CHECK_EQ_U64(mcs_used(m), 1024 * KB);

  /* Eviction queues k0 (least recently used) for B; nothing is freed yet
   * and k0 stays readable from memory. */
  CHECK_EQ_U64(mcs_evict(m, 256 * KB), 0);
  CHECK_EQ_U64(atomic_load(&m->pending_offloads), 1);
  CHECK_EQ_U64(mcs_used_net(m), 768 * KB);
  tiers("k0", &mem, &disk, NULL);
  CHECK(mem == 1 && disk == 0);
  sync_out so;
  sync_(A, NULL, 0, NULL, 0, NULL, 0, &so); /* not A's disk segment */
  CHECK_EQ_INT(so.nt, 0);
  release(&so);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so);
  CHECK_EQ_INT(so.nt, 1);
  CHECK_STR(so.t[0].key, "k0");
  CHECK_EQ_INT(so.t[0].src.disk, 0);
  CHECK_EQ_INT(so.t[0].dst.disk, 1);
  CHECK_STR(so.t[0].dst.seg->name, "b");
  CHECK_EQ_U64(so.t[0].dst.size, 256 * KB);
  uint64_t id0 = so.t[0].id;
  release(&so);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so); /* handed out once */
  CHECK_EQ_INT(so.nt, 0);
  release(&so);
  sync_(A, &id0, 1, NULL, 0, NULL, 0, &so); /* only the owner reports it */
  release(&so);
  CHECK_EQ_U64(atomic_load(&m->pending_offloads), 1);
  sync_(B, &id0, 1, NULL, 0, NULL, 0, &so);
  release(&so);
  CHECK_EQ_U64(atomic_load(&m->pending_offloads), 0);
  CHECK_EQ_U64(atomic_load(&m->offloaded), 1);
  tiers("k0", &mem, &disk, NULL);
  CHECK(mem == 0 && disk == 1);
  CHECK_EQ_U64(mcs_used(m), 768 * KB);
  CHECK_EQ_U64(mcs_disk_used(m), 256 * KB);

  /* A failed copy keeps k1 in memory; its range comes back as a trim and
   * is reusable only once acknowledged. */
  CHECK_EQ_U64(mcs_evict(m, 256 * KB), 0);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so);
  CHECK_EQ_INT(so.nt, 1);
  CHECK_STR(so.t[0].key, "k1");
  uint64_t id1 = so.t[0].id;
  release(&so);
  CHECK_EQ_U64(mcs_disk_used(m), 512 * KB);
  sync_(B, NULL, 0, &id1, 1, NULL, 0, &so);
  CHECK_EQ_INT(so.nt, 0);
  CHECK_EQ_INT(so.nr, 1);
  CHECK_EQ_U64(so.r[0].size, 256 * KB);
  uint64_t trim1 = so.r[0].id;
  release(&so);
  tiers("k1", &mem, &disk, NULL);
  CHECK(mem == 1 && disk == 0);
  CHECK_EQ_U64(mcs_disk_used(m), 512 * KB); /* not before the ack */
  sync_(B, NULL, 0, NULL, 0, &trim1, 1, &so);
  release(&so);
  CHECK_EQ_U64(mcs_disk_used(m), 256 * KB);

  /* A task nobody reports is given up after the timeout. */
  CHECK_EQ_U64(mcs_evict(m, 256 * KB), 0);
  CHECK_EQ_U64(atomic_load(&m->pending_offloads), 1);
  usleep(60000);
  mcs_offload_expire(m);
  CHECK_EQ_U64(atomic_load(&m->pending_offloads), 0);
  CHECK_EQ_U64(mcs_used(m), 768 * KB);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so); /* the stale task is not handed out */
  CHECK_EQ_INT(so.nt, 0);
  CHECK_EQ_INT(so.nr, 1);
  uint64_t trim2 = so.r[0].id;
  release(&so);
  sync_(B, NULL, 0, NULL, 0, &trim2, 1, &so);
  release(&so);
  CHECK_EQ_U64(mcs_disk_used(m), 256 * KB);

  /* Promotion: refused for a stale version, then memory beside disk. */
  uint64_t ver = 0;
  tiers("k0", &mem, &disk, &ver);
  mcs_put_cfg one = {.replica_num = 1};
  CHECK_EQ_INT(mcs_promote_start(m, B, "k0", 2, ver + 1, &one, out, &n),
               MCSTORE__ERROR_CODE__INVALID_VERSION);
  CHECK_EQ_INT(mcs_promote_start(m, B, "k1", 2, 0, &one, out, &n),
               MCSTORE__ERROR_CODE__OBJECT_ALREADY_EXISTS); /* in memory */
  CHECK_EQ_INT(mcs_promote_start(m, B, "k0", 2, ver, &one, out, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(out[0].disk, 0);
  mcs_reps_release(out, n);
  CHECK_EQ_INT(mcs_put_end(m, B, "k0", 2), 0);
  tiers("k0", &mem, &disk, NULL);
  CHECK(mem == 1 && disk == 1);
  CHECK_EQ_INT(mcs_promote_start(m, B, "k0", 2, ver, &one, out, &n),
               MCSTORE__ERROR_CODE__OBJECT_ALREADY_EXISTS);

  /* Evicting an object with a disk replica drops its memory at once. */
  mcs_rep_out o1[MCS_MAX_REPLICAS];
  int n1 = 0;
  CHECK_EQ_INT(mcs_get_replicas(m, "k1", 2, o1, &n1), 0); /* k1..k3 more recent */
  mcs_reps_release(o1, n1);
  CHECK_EQ_INT(mcs_get_replicas(m, "k2", 2, o1, &n1), 0);
  mcs_reps_release(o1, n1);
  CHECK_EQ_INT(mcs_get_replicas(m, "k3", 2, o1, &n1), 0);
  mcs_reps_release(o1, n1);
  usleep(3000);
  CHECK_EQ_U64(mcs_evict(m, 256 * KB), 256 * KB);
  tiers("k0", &mem, &disk, NULL);
  CHECK(mem == 0 && disk == 1);
  CHECK_EQ_U64(atomic_load(&m->pending_offloads), 0);

  /* Removal frees the disk range (through a trim). */
  CHECK_EQ_INT(mcs_remove(m, "k0", 2, 0), 0);
  tiers("k0", &mem, &disk, NULL);
  CHECK(mem == -1);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so);
  CHECK_EQ_INT(so.nr, 1);
  uint64_t trim3 = so.r[0].id;
  release(&so);
  sync_(B, NULL, 0, NULL, 0, &trim3, 1, &so);
  release(&so);
  CHECK_EQ_U64(mcs_disk_used(m), 0);

  /* Upsert of an offloaded object: the old disk copy goes. */
  CHECK_EQ_U64(mcs_evict(m, 256 * KB), 0);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so);
  CHECK_EQ_INT(so.nt, 1);
  char ukey[8];
  snprintf(ukey, sizeof ukey, "%s", so.t[0].key);
  uint64_t id2 = so.t[0].id;
  release(&so);
  sync_(B, &id2, 1, NULL, 0, NULL, 0, &so);
  release(&so);
  tiers(ukey, &mem, &disk, NULL);
  CHECK(mem == 0 && disk == 1);
  mcs_put_cfg uc = {.replica_num = 1};
  CHECK_EQ_INT(mcs_put_start(m, A, ukey, 2, 128 * KB, &uc, 1, out, &n), 0);
  mcs_reps_release(out, n);
  CHECK_EQ_INT(mcs_put_end(m, A, ukey, 2), 0);
  tiers(ukey, &mem, &disk, NULL);
  CHECK(mem == 1 && disk == 0);

  /* Offload once more, then B unmounts its tier: the object leaves with it. */
  CHECK_EQ_U64(mcs_evict(m, 256 * KB), 0);
  sync_(B, NULL, 0, NULL, 0, NULL, 0, &so);
  CHECK(so.nt >= 1);
  char gone[8];
  snprintf(gone, sizeof gone, "%s", so.t[0].key);
  uint64_t id3 = so.t[0].id;
  release(&so);
  sync_(B, &id3, 1, NULL, 0, NULL, 0, &so);
  release(&so);
  tiers(gone, &mem, &disk, NULL);
  CHECK(mem == 0 && disk == 1);
  CHECK_EQ_INT(mcs_unmount(m, B, SD), 0);
  tiers(gone, &mem, &disk, NULL);
  CHECK(mem == -1);
  CHECK_EQ_U64(atomic_load(&m->disk_capacity), 0);
  mcs_offload_expire(m); /* drops trims of the gone segment */
  mcs_master_destroy(m);
  printf("master offload state machine ok\n");
  return 0;
}
