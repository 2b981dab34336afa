/* Runs a libFuzzer target without libFuzzer: every file of the seed corpus
 * directory (argv[1]), then argv[2] deterministic mutations of those seeds
 * (bit flips, truncations, byte insertions, splices).  Any crash, sanitizer
 * report or hang (meson's timeout) fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seed {
  uint8_t *data;
  size_t len;
} seed;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int load_seeds(const char *dir, seed **out, size_t *n) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "fuzz driver: cannot open corpus %s\n", dir);
    return -1;
  }
  struct dirent *e;
  size_t cap = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f)
      continue;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > (1 << 20)) {
      fclose(f);
      continue;
    }
    uint8_t *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
      free(buf);
      fclose(f);
      continue;
    }
    fclose(f);
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      *out = realloc(*out, cap * sizeof **out);
    }
    (*out)[(*n)++] = (seed){buf, (size_t)len};
  }
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CORPUS_DIR ITERATIONS\n", argv[0]);
    return 2;
  }
  seed *seeds = NULL;
  size_t nseeds = 0;
  if (load_seeds(argv[1], &seeds, &nseeds) || nseeds == 0) {
    fprintf(stderr, "fuzz driver: no seeds in %s\n", argv[1]);
    return 1;
  }
  for (size_t i = 0; i < nseeds; i++)
    LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);
  long iters = atol(argv[2]);
  uint8_t *buf = malloc(1 << 21);
  for (long it = 0; it < iters; it++) {
    const seed *s = &seeds[rng() % nseeds];
    size_t len = s->len;
    memcpy(buf, s->data, len);
    int nmut = 1 + (int)(rng() % 8);
    for (int m = 0; m < nmut; m++) {
      switch (rng() % 5) {
      case 0: /* flip a bit */
        if (len)
          buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
        break;
      case 1: /* set an interesting byte */
        if (len) {
          static const uint8_t vals[] = {0, 0xff, 0x7f, 0x80, '"', ':', '{', '\n', '-', '\\'};
          buf[rng() % len] = vals[rng() % sizeof vals];
        }
        break;
      case 2: /* truncate */
        if (len)
          len = rng() % len;
        break;
      case 3: /* insert a random byte */
        if (len < (1 << 20)) {
          size_t pos = len ? rng() % (len + 1) : 0;
          memmove(buf + pos + 1, buf + pos, len - pos);
          buf[pos] = (uint8_t)rng();
          len++;
        }
        break;
      case 4: { /* splice in a chunk of another seed */
        const seed *o = &seeds[rng() % nseeds];
        if (o->len && len) {
          size_t from = rng() % o->len, to = rng() % len;
          size_t n = 1 + rng() % 64;
          if (from + n > o->len)
            n = o->len - from;
          if (to + n > len)
            n = len - to;
          memcpy(buf + to, o->data + from, n);
        }
        break;
      }
      }
    }
    LLVMFuzzerTestOneInput(buf, len);
  }
  free(buf);
  for (size_t i = 0; i < nseeds; i++)
    free(seeds[i].data);
  free(seeds);
  printf("fuzz driver: %zu seeds, %ld mutations, no failure\n", nseeds, iters);
  return 0;
}
