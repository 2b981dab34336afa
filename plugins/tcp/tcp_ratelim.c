/* tcp_ratelim.c - one warning a second, with a count of the rest. */
#include "tcp_ratelim.h"

#include <stdint.h>
#include <time.h>

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tcp_ratelim_allow(tcp_ratelim *rl, unsigned long *suppressed) {
  long long now = mono_ms();
  long long last = atomic_load(&rl->last_ms);
  /* last_ms == 0 is "never": the first line always passes. */
  if ((last == 0 || now - last >= 1000) &&
      atomic_compare_exchange_strong(&rl->last_ms, &last, now ? now : 1)) {
    *suppressed = atomic_exchange(&rl->suppressed, 0);
    return 1;
  }
  atomic_fetch_add(&rl->suppressed, 1);
  return 0;
}
