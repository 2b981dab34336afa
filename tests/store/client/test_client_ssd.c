/* The SSD tier, end to end: a holder process (`mc-store --ssd-offload-dir
 * DIR mount 4M`) contributes 4 MiB of memory and an SSD tier; this process
 * (clients without memory of their own) fills the memory past the
 * eviction watermark.  The least recently used object is offloaded (the
 * master queues it, the holder copies it into its tier file, the memory is
 * freed), then read back byte for byte from the disk replica; a reader
 * with promotion_on_hit puts it back into memory and the next get is
 * served from memory; removal frees the disk range and the holder punches
 * the file space out.  Run with the tier mapped (any transport) and, when
 * the nvmeof plugin is built, registered as a file (MC_STORE_SSD_MODE=file:
 * the holder refuses to start otherwise). */
#include "ssd_util.h"

#include <fcntl.h>
#include <signal.h>

#include "mooncake/errors.h"

enum { VSZ = 1 << 20, NOBJ = 8 };

/* Put that waits out NO_AVAILABLE_HANDLE while offloads free memory. */
static void put_retry(mc_store *s, const char *key, const void *v, size_t n) {
  uint64_t t0 = fx_ms();
  int rc;
  while ((rc = mc_store_put(s, key, v, n, NULL)) == MC_STORE_NO_AVAILABLE_HANDLE &&
         fx_ms() - t0 < 15000)
    usleep(50000);
  CHECK_MSG(rc == 0, "put %s: %s: %s", key, mc_store_errname(rc), mc_store_last_error());
}

/* One run with the holder's tier in mode ("mmap": the file mapped and
 * registered as memory; "file": registered with mc_register_file and moved
 * by the nvmeof plugin, read by peers through the tcp transport's file
 * serving). */
static void scenario(const char *mode) {
  CHECK(setenv("MC_STORE_SSD_MODE", mode, 1) == 0);
  char dir[256];
  ssd_mkdtemp(dir, sizeof dir, "ssd");
  fx_master m;
  fx_master_start(&m, "--default_kv_lease_ttl=300ms", NULL);
  const char *extra[] = {"--ssd-offload-dir", dir, "--ssd-offload-size", "64M", NULL};
  char holder[MC_STORE_NAME_MAX];
  pid_t hp = fx_holder_start_ex(&m, 4u << 20, holder, sizeof holder, extra);
  mc_store *s = fx_client(&m, 0);

  mc_store_tier_stats t = ssd_stats(s);
  CHECK_EQ_U64(t.disk_capacity, 64ull << 20);
  CHECK_EQ_U64(t.disk_used, 0);
  CHECK_EQ_INT(ssd_files(dir, NULL, 0, NULL), 1);
  CHECK_EQ_INT(t.ssd_mode, 0); /* this reader has no tier of its own */

  /* NOBJ objects of 1 MiB through 4 MiB of memory: the first ones must
   * end up on the SSD tier, never lost. */
  char *v = malloc(VSZ), *g = malloc(VSZ);
  CHECK(v && g);
  char key[32];
  for (int i = 0; i < NOBJ; i++) {
    snprintf(key, sizeof key, "obj-%d", i);
    fx_fill(v, VSZ, 100u + (uint64_t)i);
    put_retry(s, key, v, VSZ);
  }
  /* Wait until the oldest is offloaded (its memory replica gone). */
  uint64_t t0 = fx_ms();
  while ((t = ssd_stats(s)).offloaded_objects < 1 && fx_ms() - t0 < 15000)
    usleep(50000);
  CHECK_MSG(t.offloaded_objects >= 1, "nothing offloaded (%llu pending)",
            (unsigned long long)t.pending_offloads);
  uint32_t mem = 9, disk = 9;
  CHECK_EQ_INT(mc_store_replica_tiers(s, "obj-0", &mem, &disk), 0);
  CHECK_EQ_INT(mem, 0);
  CHECK_EQ_INT(disk, 1);
  CHECK(t.disk_used >= VSZ);
  char path[4200];
  unsigned long long bytes = 0;
  CHECK_EQ_INT(ssd_files(dir, path, sizeof path, &bytes), 1);
  CHECK_MSG(bytes >= VSZ, "the tier file %s holds %llu bytes, not the object", path, bytes);

  /* Every object reads back byte for byte, from memory or from disk. */
  uint64_t disk_reads0 = ssd_stats(s).reads_disk;
  for (int i = 0; i < NOBJ; i++) {
    snprintf(key, sizeof key, "obj-%d", i);
    fx_fill(v, VSZ, 100u + (uint64_t)i);
    memset(g, 0, VSZ);
    int64_t n = mc_store_get(s, key, g, VSZ);
    CHECK_MSG(n == VSZ, "get %s: %lld %s", key, (long long)n, mc_store_last_error());
    CHECK_MSG(fx_hash(g, VSZ) == fx_hash(v, VSZ), "%s differs after eviction", key);
  }
  t = ssd_stats(s);
  CHECK(t.reads_disk > disk_reads0);
  /* A plain reader does not promote: obj-0 is still on disk only. */
  CHECK_EQ_INT(mc_store_replica_tiers(s, "obj-0", &mem, &disk), 0);
  CHECK_EQ_INT(mem, 0);
  CHECK_EQ_INT(t.promotions, 0);

  /* Make room, then promotion_on_hit: the get comes from disk and puts
   * the object back into memory; the next get comes from memory. */
  for (int i = 1; i < NOBJ; i++) {
    snprintf(key, sizeof key, "obj-%d", i);
    CHECK_EQ_INT(mc_store_remove(s, key, 1), 0);
    CHECK_EQ_INT(mc_store_get(s, key, g, VSZ), MC_STORE_OBJECT_NOT_FOUND);
  }
  usleep(400000); /* the removed objects' memory is freed when their leases end */
  mc_store_config pc = {.struct_size = sizeof pc, .master = m.addr, .promotion_on_hit = 1};
  mc_store *p = NULL;
  CHECK_EQ_INT(mc_store_create(&pc, &p), 0);
  fx_fill(v, VSZ, 100u);
  memset(g, 0, VSZ);
  CHECK_EQ_INT(mc_store_get(p, "obj-0", g, VSZ), VSZ);
  CHECK(fx_hash(g, VSZ) == fx_hash(v, VSZ));
  t = ssd_stats(p);
  CHECK_EQ_U64(t.reads_disk, 1);
  CHECK_EQ_U64(t.promotions, 1);
  CHECK_EQ_INT(mc_store_replica_tiers(p, "obj-0", &mem, &disk), 0);
  CHECK_EQ_INT(mem, 1);
  CHECK_EQ_INT(disk, 1); /* kept: evicting it again costs no copy */
  memset(g, 0, VSZ);
  CHECK_EQ_INT(mc_store_get(p, "obj-0", g, VSZ), VSZ);
  CHECK(fx_hash(g, VSZ) == fx_hash(v, VSZ));
  t = ssd_stats(p);
  CHECK_EQ_U64(t.reads_memory, 1);
  CHECK_EQ_U64(t.reads_disk, 1);
  CHECK_EQ_U64(t.promotions, 1);

  /* Removal: the disk range is freed (after the holder released the file
   * space) and the object is gone. */
  usleep(400000); /* the read leases end */
  CHECK_EQ_INT(mc_store_remove(p, "obj-0", 0), 0);
  CHECK_EQ_INT(mc_store_get(p, "obj-0", g, VSZ), MC_STORE_OBJECT_NOT_FOUND);
  CHECK_EQ_INT(mc_store_exist(p, "obj-0"), 0);
  t0 = fx_ms();
  while ((t = ssd_stats(s)).disk_used != 0 && fx_ms() - t0 < 10000)
    usleep(50000);
  CHECK_EQ_U64(t.disk_used, 0);
  CHECK_EQ_U64(t.pending_offloads, 0);
  CHECK_EQ_INT(ssd_files(dir, path, sizeof path, &bytes), 1);
  if (punch_works(dir))
    CHECK_MSG(bytes < VSZ, "removed objects still take %llu bytes of %s", bytes, path);
  else
    printf("note: %s does not release punched holes; file space not checked\n", dir);

  /* A put after all that lands in memory and reads back. */
  fx_fill(v, VSZ, 7);
  CHECK_EQ_INT(mc_store_put(s, "again", v, VSZ, NULL), 0);
  CHECK_EQ_INT(mc_store_get(s, "again", g, VSZ), VSZ);
  CHECK(fx_hash(g, VSZ) == fx_hash(v, VSZ));

  mc_store_destroy(p);
  mc_store_destroy(s);
  /* The holder leaves cleanly: its tier file goes with it. */
  fx_holder_kill(hp, SIGTERM);
  CHECK_EQ_INT(ssd_files(dir, NULL, 0, NULL), 0);
  fx_master_stop(&m, SIGTERM);
  free(v);
  free(g);
  ssd_rm_rf(dir);
  printf("ssd tier (%s): offload, read back, promotion, removal ok\n", mode);
}

int main(void) {
  scenario("mmap");
  const char *pp = getenv("MC_PLUGIN_PATH");
  char so[4200];
  snprintf(so, sizeof so, "%s/mc-transport-nvmeof.so", pp ? pp : "");
  if (pp && access(so, R_OK) == 0)
    scenario("file");
  else
    printf("note: no nvmeof plugin in MC_PLUGIN_PATH: the file-registered tier is not run\n");
  return 0;
}
