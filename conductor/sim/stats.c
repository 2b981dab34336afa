/* See stats.h. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double sim_quantile(double *v, size_t n, double q) {
  if (!n)
    return 0;
  qsort(v, n, sizeof *v, cmp);
  size_t k = (size_t)ceil(q * (double)n);
  if (k < 1)
    k = 1;
  if (k > n)
    k = n;
  return v[k - 1];
}

double sim_top_mean(double *v, size_t n, double frac) {
  if (!n)
    return 0;
  qsort(v, n, sizeof *v, cmp);
  size_t k = (size_t)ceil(frac * (double)n);
  if (k < 1)
    k = 1;
  double s = 0;
  for (size_t i = n - k; i < n; i++)
    s += v[i];
  return s / (double)k;
}
