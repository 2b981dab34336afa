/* tcp_test_peer.h - a legitimate initiator for the tcp tests that put a
 * target under stress: one plugin context with a registered buffer, its
 * endpoint to the target and the target's imported region, and a verified
 * write-then-read round trip. */
#ifndef MC_TCP_TEST_PEER_H
#define MC_TCP_TEST_PEER_H

#include "tcp_test_host.h"

#define TP_BLOCK ((size_t)256 << 10)
#define TP_NBLK 4u
#define TP_REGION (TP_BLOCK * TP_NBLK) /* bytes of the target per round trip */

typedef struct tp_peer {
  th_host h;
  void *ctx, *ep, *rmem, *lmem;
  uint8_t *buf; /* [0, TP_REGION) written, [TP_REGION, 2x) read back */
  uint64_t token;
} tp_peer;

/* Initialises p as plugin context `name` (host params "k=v;..."), connects
 * it to the target "target:1" (descriptor desc) and imports the target's
 * [rbase, +TP_REGION) with rkey.  Exits the test on failure. */
void tp_up(const mc_transport_ops *ops, tp_peer *p, const char *name, const char *params,
           const uint8_t *desc, size_t dlen, const uint8_t *rkey, size_t rklen,
           uint64_t rbase);

/* Writes a pattern derived from seed to [rbase, +TP_REGION) in TP_NBLK
 * slices, reads it back and compares.  Returns the failed slices, plus 1
 * when the data read back differs; 0 is success. */
int tp_round_trip(const mc_transport_ops *ops, tp_peer *p, uint64_t rbase, uint32_t seed);

#endif
