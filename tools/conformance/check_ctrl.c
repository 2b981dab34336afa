/* The control channel (ABI 1.2): a plugin's ctrl_handle under hostile
 * requests.  The core hands ctrl_handle whatever a peer sent (1..
 * MC_CTRL_MAX bytes, past the cluster token check, but a peer may be buggy
 * or compromised), from listener threads, concurrently and outside the
 * control calls' serialization.  So: random bytes of every size from 0 to
 * MC_CTRL_MAX, directly and through the fake host's loopback ctrl_call
 * (fake_host.c: the core's argument checks and reply handling), with
 * reply buffers too small; four threads at once; the answer is 0 with at
 * most MC_CTRL_MAX bytes written, or a negative MC_E* code, and never a
 * byte past the buffer.  The data path must still work afterwards
 * (loopback.data runs again). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

#define GUARD 64
#define ROUNDS 1500

static uint32_t rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

typedef struct ctrl_run {
  const plugin *p;
  tctx *t;
  uint32_t seed;
  int rounds;
  /* results */
  int bad_rc, overrun, too_long, answered;
  int bad_rc_value;
} ctrl_run;

/* A valid MC_E* code: negative and one errors.h names. */
static int known_code(int rc) {
  return rc < 0 && strcmp(mc_errname(rc), "MC_E?") != 0 &&
         strncmp(mc_errname(rc), "MC_E", 4) == 0;
}

static void *ctrl_hammer(void *arg) {
  ctrl_run *r = arg;
  uint8_t *req = malloc(MC_CTRL_MAX);
  uint8_t *resp = malloc(MC_CTRL_MAX + GUARD);
  if (!req || !resp) {
    free(req);
    free(resp);
    r->bad_rc++;
    return NULL;
  }
  for (int i = 0; i < r->rounds; i++) {
    /* Sizes 0, 1 and MC_CTRL_MAX every time round, random ones between. */
    size_t len = i % 16 == 0   ? 0
                 : i % 16 == 1 ? 1
                 : i % 16 == 2 ? MC_CTRL_MAX
                               : 1 + rnd(&r->seed) % MC_CTRL_MAX;
    for (size_t j = 0; j < len; j++)
      req[j] = (uint8_t)rnd(&r->seed);
    /* Some requests look like text: plugins often parse that. */
    if (i % 7 == 3 && len > 4)
      memcpy(req, "ping", 4);
    memset(resp, 0xa5, MC_CTRL_MAX + GUARD);
    size_t rl = MC_CTRL_MAX;
    int rc;
    if (i % 2 == 0) {
      rc = r->p->ops->ctrl_handle(r->t->ctx, "conf-hostile:9", req, len, resp, &rl);
      if (rc == 0 && rl > MC_CTRL_MAX)
        r->too_long++;
    } else {
      /* Through the loopback; a small buffer now and then. */
      size_t cap = i % 5 == 1 ? rnd(&r->seed) % 16 : MC_CTRL_MAX;
      rl = cap;
      rc = r->t->host.api.ctrl_call(r->t->host.api.host, "conf-hostile:9", req, len, resp, &rl,
                                    1000);
      if (len == 0 && rc != MC_EINVAL)
        r->bad_rc++, r->bad_rc_value = rc; /* the host refuses an empty request */
      if (rc == MC_ENOSPC && rl <= cap)
        r->bad_rc++, r->bad_rc_value = rc;
      if (rc == 0 && rl > cap)
        r->too_long++;
    }
    if (rc == 0)
      r->answered++;
    else if (!known_code(rc) && rc != MC_ENOSPC) {
      r->bad_rc++;
      r->bad_rc_value = rc;
    }
    for (size_t j = MC_CTRL_MAX; j < MC_CTRL_MAX + GUARD; j++)
      if (resp[j] != 0xa5) {
        r->overrun++;
        break;
      }
  }
  free(req);
  free(resp);
  return NULL;
}

void check_ctrl(pair *x) {
  const plugin *p = x->p;
  if (!p->ops->ctrl_handle) {
    skip("ctrl.hostile", "no ctrl_handle (the plugin does not use the ABI 1.2 control channel)");
    /* The loopback still answers, MC_ENOTSUP, as the core would. */
    size_t rl = 8;
    uint8_t b[8];
    int rc = x->a->host.api.ctrl_call(x->a->host.api.host, "conf-b:2", "x", 1, b, &rl, 100);
    if (rc != MC_ENOTSUP)
      fail("ctrl.none", "loopback ctrl_call without ctrl_handle gave %s", mc_errname(rc));
    return;
  }
  ctrl_run one = {.p = p, .t = x->a, .seed = 0x1234567u, .rounds = ROUNDS};
  ctrl_hammer(&one);
  if (one.bad_rc || one.overrun || one.too_long)
    fail("ctrl.hostile",
         "%d bad return codes (last %d), %d replies written past the buffer, %d claimed "
         "longer than allowed, of %d requests",
         one.bad_rc, one.bad_rc_value, one.overrun, one.too_long, ROUNDS);
  else
    pass("ctrl.hostile", "%d random requests of 0..%d bytes: %d answered, the rest refused with "
         "MC_E* codes, nothing written out of bounds", ROUNDS, MC_CTRL_MAX, one.answered);

  ctrl_run r[4];
  pthread_t th[4];
  int started = 0;
  for (int i = 0; i < 4; i++) {
    r[i] = (ctrl_run){.p = p, .t = i % 2 ? x->b : x->a, .seed = 0x9e3779b9u * (uint32_t)(i + 1),
                      .rounds = ROUNDS / 4};
    if (pthread_create(&th[i], NULL, ctrl_hammer, &r[i]) == 0)
      started++;
    else
      break;
  }
  int bad = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    bad += r[i].bad_rc + r[i].overrun + r[i].too_long;
  }
  uint64_t viol = x->a->host.ctrl_violations + x->b->host.ctrl_violations;
  if (started < 4)
    fail("ctrl.concurrent", "could not start the threads");
  else if (bad || viol)
    fail("ctrl.concurrent", "%d bad answers, %llu replies past MC_CTRL_MAX", bad,
         (unsigned long long)viol);
  else
    pass("ctrl.concurrent", "4 threads on two contexts at once, every answer well-formed");

  /* The data path after the storm: a write, checked byte for byte. */
  int first = 0;
  fill_pattern(x->bbuf, 65536, 0xc7);
  memset(x->abuf, 0, 65536);
  int rc = xfer(x, MC_OP_WRITE, 0, 0, 65536, 8192, &first);
  if (rc)
    fail("ctrl.after", "a transfer after the ctrl requests failed: %s", mc_errname(first ? first : rc));
  else if (memcmp(x->abuf, x->bbuf, 65536) != 0)
    fail("ctrl.after", "a transfer after the ctrl requests moved the wrong bytes");
  else
    pass("ctrl.after", "a 64 KiB write verified after the ctrl requests");
}
