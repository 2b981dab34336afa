/* An application built from the installed files alone (pkg-config mooncake):
 * prints the library's version and checks the header-only error table. */
#include <stdio.h>
#include <string.h>

#include <mooncake/engine.h>

int main(int argc, char **argv) {
  const char *v = mc_version();
  if (!v || !*v) {
    fputs("mc_version() returned nothing\n", stderr);
    return 1;
  }
  if (argc > 1 && strcmp(v, argv[1]) != 0) {
    fprintf(stderr, "mc_version() = '%s', expected '%s'\n", v, argv[1]);
    return 1;
  }
  /* errors.h is header-only: no library symbol behind these. */
  if (strcmp(mc_errname(MC_EINVAL), "MC_EINVAL") != 0 || !*mc_strerror(MC_EINVAL)) {
    fputs("mc_errname/mc_strerror disagree with errors.h\n", stderr);
    return 1;
  }
  /* A documented call that needs no running engine: NULL is a no-op. */
  mc_engine_destroy(NULL);
  printf("%s\n", v);
  return 0;
}
