/* tcp_test_peer.c - see tcp_test_peer.h. */
#include "tcp_test_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tp_up(const mc_transport_ops *ops, tp_peer *p, const char *name, const char *params,
           const uint8_t *desc,
           size_t dlen, const uint8_t *rkey, size_t rklen, uint64_t rbase) {
  th_host_init(&p->h, name, params);
  mc_init_args a = {sizeof a, name, "127.0.0.1", "test"};
  CHECK_MSG(ops->init(&p->h.api, &a, &p->ctx) == 0, "init %s", name);
  p->buf = calloc(1, 2 * TP_REGION);
  CHECK_MSG(p->buf != NULL, "calloc");
  mc_mem_desc d = {(uint64_t)(uintptr_t)p->buf, 2 * TP_REGION, MC_MEM_CPU, -1, "cpu:0"};
  uint8_t rk[MC_RKEY_MAX];
  size_t rkl = sizeof rk;
  CHECK_MSG(ops->register_mem(p->ctx, &d, &p->lmem, rk, &rkl) == 0, "register");
  CHECK_MSG(ops->connect(p->ctx, "target:1", desc, dlen, &p->ep) == 0, "connect");
  CHECK_MSG(ops->import_mem(p->ctx, p->ep, rbase, TP_REGION, rkey, rklen, &p->rmem) == 0,
            "import");
}

/* One round: write a fresh pattern, read it back, compare.  Returns the
 * number of failed slices plus 1 for wrong data. */
int tp_round_trip(const mc_transport_ops *ops, tp_peer *p, uint64_t rbase, uint32_t seed) {
  for (size_t i = 0; i < TP_REGION; i++)
    p->buf[i] = (uint8_t)(seed * 17u + i * 7u + (i >> 11));
  memset(p->buf + TP_REGION, 0, TP_REGION);
  int errors = 0;
  for (int phase = 0; phase < 2; phase++) {
    mc_slice s[TP_NBLK];
    uint64_t t0 = p->token;
    for (uint32_t i = 0; i < TP_NBLK; i++)
      s[i] = (mc_slice){t0 + i, phase ? MC_OP_READ : MC_OP_WRITE, i, p->lmem,
                        (uint64_t)(uintptr_t)p->buf + (phase ? TP_REGION : 0) + i * TP_BLOCK,
                        p->rmem, rbase + i * TP_BLOCK, TP_BLOCK};
    p->token += TP_NBLK;
    uint32_t acc = 0;
    CHECK_MSG(ops->submit(p->ctx, p->ep, s, TP_NBLK, &acc) == 0 && acc == TP_NBLK, "submit");
    if (th_wait(&p->h, t0, TP_NBLK, 10000))
      return errors + (int)TP_NBLK;
    for (uint32_t i = 0; i < TP_NBLK; i++)
      if (p->h.status[t0 + i]) {
        fprintf(stderr, "slice status %d\n", p->h.status[t0 + i]);
        errors++;
      }
  }
  return errors + (memcmp(p->buf, p->buf + TP_REGION, TP_REGION) != 0);
}

