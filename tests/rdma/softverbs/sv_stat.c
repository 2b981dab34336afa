/* sv_stat - prints the per-NIC counters libsoftverbs keeps in a fabric
 * file, for every slot that moved bytes (a process that has exited
 * included): "slot S pid P nic N bytes B wrs W".  With --balance PCT, exits
 * 1 unless, in every such slot, the NICs that moved bytes moved within
 * PCT% of each other, and prints how many NICs carried traffic.
 *   sv_stat FABRIC [--balance PCT] [--min-nics N] [--max-nics N] */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sv.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FABRIC [--balance PCT] [--min-nics N] [--max-nics N]\n", argv[0]);
    return 2;
  }
  int pct = -1, min_nics = 0, max_nics = SV_NICS;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--balance"))
      pct = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--min-nics"))
      min_nics = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--max-nics"))
      max_nics = atoi(argv[i + 1]);
  }
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) {
    perror(argv[1]);
    return 2;
  }
  const sv_fabric *f = mmap(NULL, sizeof *f, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (f == MAP_FAILED)
    return 2;
  int bad = 0, seen = 0;
  for (int s = 0; s < SV_SLOTS; s++) {
    uint64_t mn = UINT64_MAX, mx = 0;
    int used = 0;
    for (int n = 0; n < SV_NICS; n++) {
      uint64_t b = atomic_load(&f->slot[s].nic[n].bytes);
      if (!b)
        continue;
      printf("slot %d pid %d nic %d bytes %" PRIu64 " wrs %" PRIu64 "\n", s,
             (int)atomic_load(&f->slot[s].pid), n, b, (uint64_t)atomic_load(&f->slot[s].nic[n].wrs));
      used++;
      mn = b < mn ? b : mn;
      mx = b > mx ? b : mx;
    }
    if (!used)
      continue;
    seen++;
    printf("slot %d: %d NICs carried traffic, spread %.1f%%\n", s, used,
           100.0 * (double)(mx - mn) / (double)mn);
    if (pct >= 0 && (mx - mn) * 100 > mn * (uint64_t)pct)
      bad = 1;
    if (used < min_nics || used > max_nics)
      bad = 1;
  }
  return bad || (pct >= 0 && !seen) ? 1 : 0;
}
