/* Order statistics of the simulator's samples. */
#ifndef MC_SIM_STATS_H
#define MC_SIM_STATS_H

#include <stddef.h>

/* The Q-quantile (0..1, nearest rank) of V[N]; sorts V.  0 for N 0. */
double sim_quantile(double *v, size_t n, double q);
/* Mean of the largest ceil(FRAC * N) of V[N] (at least one); reorders V. */
double sim_top_mean(double *v, size_t n, double frac);

#endif
