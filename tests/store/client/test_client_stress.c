/* Stress, bounded to about 30 s: 4 client processes, each with a segment,
 * mixed put/get/remove of values with two replicas whose bytes derive from
 * the key (so any reader can check them), for STRESS_SECS; one client is
 * killed with SIGKILL mid-run.  Every value read must match its key
 * (corrupted = 0); after the run every committed, not removed object -
 * the dead client's included - must still be readable and intact
 * (lost = 0).  Counts are printed. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc_fixture.h"

#define STRESS_SECS 20
#define KILL_AT_MS 5000
enum { NW = 4, VICTIM = 3, MAXLIVE = 40, MAXV = 256 << 10 };

/* Value size and seed of a key "w<id>-<seq>". */
static size_t key_size(int id, int seq) {
  return 1 + (size_t)(((uint64_t)id * 7919u + (uint64_t)seq * 104729u) % MAXV);
}

static void send_line(int fd, char tag, const char *key) {
  char line[64];
  int n = snprintf(line, sizeof line, "%c %s\n", tag, key);
  CHECK(write(fd, line, (size_t)n) == n);
}

typedef struct counts {
  long puts, put_fail, gets, get_ok, get_gone, corrupted, lost, removes;
} counts;

static void worker(const char *addr, int id, int out, int go) {
  mc_store_config c = {.struct_size = sizeof c, .master = addr,
                       .global_segment_size = 48u << 20};
  mc_store *s;
  int rc = mc_store_create(&c, &s);
  CHECK_MSG(rc == 0, "worker %d: %s", id, mc_store_last_error());
  /* Start together, every segment mounted: with fewer segments than
   * replicas the master may evict to make room for the second one. */
  send_line(out, 'M', "-");
  char g0;
  CHECK(read(go, &g0, 1) == 1);
  char *v = malloc(MAXV), *g = malloc(MAXV);
  CHECK(v && g);
  int live[MAXLIVE], nlive = 0, seq = 0;
  counts k = {0};
  unsigned rnd = (unsigned)id * 2654435761u + 1;
  uint64_t end = fx_ms() + STRESS_SECS * 1000;
  char key[48];
  mc_store_replicate_config two = {.replica_num = 2};
  while (fx_ms() < end) {
    rnd = rnd * 1103515245u + 12345u;
    int op = (int)((rnd >> 16) % 10);
    if (op < 5 && nlive < MAXLIVE) { /* put */
      snprintf(key, sizeof key, "w%d-%d", id, seq);
      size_t n = key_size(id, seq);
      fx_fill(v, n, (uint64_t)id * 1000003u + (uint64_t)seq);
      k.puts++;
      if (mc_store_put(s, key, v, n, &two) == 0) {
        send_line(out, 'C', key);
        live[nlive++] = seq;
      } else {
        k.put_fail++;
      }
      seq++;
    } else if (op < 8 && nlive) { /* get one of ours */
      int sq = live[(rnd >> 8) % (unsigned)nlive];
      snprintf(key, sizeof key, "w%d-%d", id, sq);
      size_t n = key_size(id, sq);
      k.gets++;
      int64_t got = mc_store_get(s, key, g, MAXV);
      if (got >= 0) {
        fx_fill(v, n, (uint64_t)id * 1000003u + (uint64_t)sq);
        if ((size_t)got != n || memcmp(g, v, n)) {
          k.corrupted++;
          fprintf(stderr, "worker %d: %s read %lld bytes, not the value written\n", id, key,
                  (long long)got);
        } else {
          k.get_ok++;
        }
      } else if (got == MC_STORE_OBJECT_NOT_FOUND) {
        k.lost++; /* ours, committed and not removed */
        if (k.lost == 1)
          fprintf(stderr, "worker %d: %s lost at %llu ms before the end\n", id, key,
                  (unsigned long long)(end - fx_ms()));
      } else {
        k.get_gone++; /* transient: e.g. both replicas busy with a dead peer */
      }
    } else if (nlive) { /* remove one of ours */
      int i = (int)((rnd >> 8) % (unsigned)nlive);
      snprintf(key, sizeof key, "w%d-%d", id, live[i]);
      send_line(out, 'R', key);
      int rrc = mc_store_remove(s, key, 0);
      if (rrc == 0) {
        send_line(out, 'X', key);
        live[i] = live[--nlive];
        k.removes++;
      } else {
        send_line(out, 'C', key); /* still there (a reader's lease) */
        if (rrc != MC_STORE_OBJECT_HAS_LEASE) {
          k.lost++;
          fprintf(stderr, "worker %d: remove %s: %s\n", id, key, mc_store_last_error());
        }
      }
    }
  }
  char line[256];
  int n = snprintf(line, sizeof line, "N %ld %ld %ld %ld %ld %ld %ld %ld\n", k.puts, k.put_fail,
                   k.gets, k.get_ok, k.get_gone, k.corrupted, k.lost, k.removes);
  CHECK(write(out, line, (size_t)n) == n);
  /* Keep serving this segment until the parent has verified everything
   * (it closes the pipe). */
  while (read(go, &g0, 1) > 0)
    ;
  mc_store_destroy(s);
  free(v);
  free(g);
  _exit(0);
}

/* The parent's record of every key: state per key. */
typedef struct rec {
  char key[24];
  char state; /* 'C' committed, 'R' remove begun, 'X' removed */
} rec;

static rec *recs;
static size_t nrecs, caprecs;

static rec *find(const char *key, int add) {
  for (size_t i = nrecs; i-- > 0;)
    if (!strcmp(recs[i].key, key))
      return &recs[i];
  if (!add)
    return NULL;
  if (nrecs == caprecs) {
    caprecs = caprecs ? 2 * caprecs : 1024;
    recs = realloc(recs, caprecs * sizeof *recs);
    CHECK(recs);
  }
  snprintf(recs[nrecs].key, sizeof recs[nrecs].key, "%s", key);
  return &recs[nrecs++];
}

int main(void) {
  fx_master m;
  /* The default client_ttl (10 s): on this loaded machine a shorter one
   * would expire live clients whose ping thread starved.  Short leases:
   * the space of a removed object stays reserved while a reader holds a
   * lease, and with 10 s leases the pool would fill and evict. */
  fx_master_start(&m, "--default_kv_lease_ttl=200", NULL);
  int fds[NW], gos[NW];
  pid_t pids[NW];
  for (int i = 0; i < NW; i++) {
    int p[2], q[2];
    CHECK(pipe(p) == 0 && pipe(q) == 0);
    fflush(NULL);
    pids[i] = fork();
    CHECK(pids[i] >= 0);
    if (pids[i] == 0) {
      close(p[0]);
      close(q[1]);
      for (int j = 0; j < i; j++) { /* the earlier workers' pipe ends */
        close(fds[j]);
        close(gos[j]);
      }
      worker(m.addr, i, p[1], q[0]);
    }
    close(p[1]);
    close(q[0]);
    fds[i] = p[0];
    gos[i] = q[1];
  }
  for (int i = 0; i < NW; i++) {
    char line[8];
    CHECK(read(fds[i], line, 4) == 4 && line[0] == 'M');
  }
  for (int i = 0; i < NW; i++)
    CHECK(write(gos[i], "g", 1) == 1);
  counts tot = {0};
  char buf[NW][4096];
  size_t have[NW] = {0};
  int open_fds = NW, killed = 0;
  uint64_t t0 = fx_ms();
  while (open_fds) {
    if (!killed && fx_ms() - t0 >= KILL_AT_MS) {
      kill(pids[VICTIM], SIGKILL);
      killed = 1;
      printf("killed client %d (pid %d) at %d ms\n", VICTIM, (int)pids[VICTIM], KILL_AT_MS);
    }
    struct pollfd pf[NW];
    for (int i = 0; i < NW; i++)
      pf[i] = (struct pollfd){fds[i], POLLIN, 0};
    poll(pf, NW, 100);
    for (int i = 0; i < NW; i++) {
      if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
        continue;
      ssize_t r = read(fds[i], buf[i] + have[i], sizeof buf[i] - have[i] - 1);
      if (r <= 0) {
        close(fds[i]);
        fds[i] = -1;
        open_fds--;
        pf[i].fd = -1;
        continue;
      }
      have[i] += (size_t)r;
      char *nl, *start = buf[i];
      while ((nl = memchr(start, '\n', have[i] - (size_t)(start - buf[i])))) {
        *nl = 0;
        if (start[0] == 'N') {
          close(fds[i]); /* this worker is done; it waits for us */
          fds[i] = -1;
          open_fds--;
          counts k;
          CHECK(sscanf(start + 2, "%ld %ld %ld %ld %ld %ld %ld %ld", &k.puts, &k.put_fail, &k.gets,
                       &k.get_ok, &k.get_gone, &k.corrupted, &k.lost, &k.removes) == 8);
          tot.puts += k.puts, tot.put_fail += k.put_fail, tot.gets += k.gets;
          tot.get_ok += k.get_ok, tot.get_gone += k.get_gone, tot.corrupted += k.corrupted;
          tot.lost += k.lost, tot.removes += k.removes;
          break;
        } else {
          rec *rc = find(start + 2, start[0] == 'C' || start[0] == 'R');
          if (rc)
            rc->state = start[0];
        }
        start = nl + 1;
      }
      have[i] -= (size_t)(start - buf[i]);
      memmove(buf[i], start, have[i]);
    }
  }

  /* Verify every committed, not removed object from a fresh client, once
   * the master has expired the dead one. */
  mc_store *s = fx_client(&m, 0);
  mc_store_stats st;
  uint64_t deadline = fx_ms() + 20000;
  do {
    CHECK_EQ_INT(mc_store_stats_get(s, &st), 0);
    if (st.expired_clients >= 1)
      break;
    usleep(200000);
  } while (fx_ms() < deadline);
  CHECK(st.expired_clients >= 1);
  long committed = 0, verified = 0, lost = 0, corrupted = 0, uncertain = 0, removed = 0;
  char *v = malloc(MAXV), *g = malloc(MAXV);
  CHECK(v && g);
  for (size_t i = 0; i < nrecs; i++) {
    committed++;
    if (recs[i].state == 'X') {
      removed++;
      continue;
    }
    if (recs[i].state == 'R') {
      uncertain++; /* remove in flight when its client died */
      continue;
    }
    int id, sq;
    CHECK(sscanf(recs[i].key, "w%d-%d", &id, &sq) == 2);
    size_t n = key_size(id, sq);
    int64_t got;
    int tries = 0;
    do /* no data by contract when the short lease ran out: read again */
      got = mc_store_get(s, recs[i].key, g, MAXV);
    while (got == MC_STORE_LEASE_EXPIRED && ++tries < 10);
    if (got < 0) {
      lost++;
      fprintf(stderr, "lost %s: %s\n", recs[i].key, mc_store_last_error());
      continue;
    }
    fx_fill(v, n, (uint64_t)id * 1000003u + (uint64_t)sq);
    if ((size_t)got != n || memcmp(g, v, n))
      corrupted++;
    else
      verified++;
  }
  printf("workers: %ld puts (%ld refused), %ld gets (%ld ok, %ld transient errors), "
         "%ld removes, %ld corrupted, %ld lost during the run\n",
         tot.puts, tot.put_fail, tot.gets, tot.get_ok, tot.get_gone, tot.removes, tot.corrupted,
         tot.lost);
  printf("after the run: %ld committed, %ld removed, %ld uncertain, %ld verified, "
         "%ld corrupted, %ld lost; %llu client(s) expired, %llu objects evicted\n",
         committed, removed, uncertain, verified, corrupted, lost,
         (unsigned long long)st.expired_clients, (unsigned long long)st.evicted_objects);
  CHECK_EQ_INT(tot.corrupted + corrupted, 0);
  CHECK_EQ_INT(tot.lost + lost, 0);
  CHECK(verified > 0 && tot.get_ok > 0);
  mc_store_destroy(s);
  int bad_exit = 0;
  for (int i = 0; i < NW; i++) {
    close(gos[i]);
    int wst;
    waitpid(pids[i], &wst, 0);
    if (i != VICTIM && !(WIFEXITED(wst) && WEXITSTATUS(wst) == 0))
      bad_exit++;
  }
  CHECK_EQ_INT(bad_exit, 0);
  free(v);
  free(g);
  free(recs);
  fx_master_stop(&m, SIGTERM);
  return 0;
}
