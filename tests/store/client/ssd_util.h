/* Helpers of the SSD tier tests: a temporary directory, the tier files in
 * it, polling the master's tier figures. */
#ifndef MC_TESTS_STORE_SSD_UTIL_H
#define MC_TESTS_STORE_SSD_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_fixture.h"

/* A fresh directory under $TMPDIR (or /tmp) into dir. */
static inline void ssd_mkdtemp(char *dir, size_t len, const char *tag) {
  const char *t = getenv("TMPDIR");
  snprintf(dir, len, "%s/mc-%s-XXXXXX", t && *t ? t : "/tmp", tag);
  CHECK_MSG(mkdtemp(dir) != NULL, "mkdtemp %s", dir);
}

static inline int ssd_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static inline void ssd_rm_rf(const char *dir) {
  nftw(dir, ssd_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The tier files (mc-ssd-*.tier) in dir: their count; the path of one
 * (the last seen) into path and its allocated bytes into *blocks. */
static inline int ssd_files(const char *dir, char *path, size_t len, unsigned long long *bytes) {
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "mc-ssd-", 7) && strstr(e->d_name, ".tier")) {
      n++;
      if (path) {
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat st;
        CHECK(stat(path, &st) == 0);
        if (bytes)
          *bytes = (unsigned long long)st.st_blocks * 512ull;
      }
    }
  closedir(d);
  return n;
}

static inline mc_store_tier_stats ssd_stats(mc_store *s) {
  mc_store_tier_stats t = {.struct_size = sizeof t};
  CHECK_EQ_INT(mc_store_tier_stats_get(s, &t), 0);
  return t;
}

/* Whether the filesystem of dir releases space for a punched hole. */
static inline int punch_works(const char *dir) {
  char p[4200];
  snprintf(p, sizeof p, "%s/probe", dir);
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  char buf[65536];
  memset(buf, 7, sizeof buf);
  int ok = write(fd, buf, sizeof buf) == (ssize_t)sizeof buf && fsync(fd) == 0 &&
           fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, sizeof buf) == 0;
  struct stat st;
  ok = ok && fstat(fd, &st) == 0 && st.st_blocks == 0;
  close(fd);
  unlink(p);
  return ok;
}

#endif
