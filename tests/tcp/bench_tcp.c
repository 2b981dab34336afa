/* bench_tcp.c - loopback throughput of the TCP plugin against a raw socket.
 *
 *   bench_tcp <path/to/mc-transport-tcp.so> [total_MiB] [slice_KiB]
 *
 * Baseline: one TCP connection streaming 1 MiB send()s into a reader that
 * recv()s into a buffer.  Plugin: two contexts in this process, WRITE and
 * READ of 1 MiB blocks (split into slice_KiB slices over the rails), kept
 * in flight.  Prints GB/s and the ratio to the baseline. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_test_host.h"

#define BLOCK ((size_t)1 << 20)
#define WINDOW 64 /* MiB of the buffer reused cyclically */

typedef struct raw_arg {
  int fd;
  size_t total;
  uint8_t *buf;
} raw_arg;

static void *raw_reader(void *v) {
  raw_arg *a = v;
  size_t got = 0;
  while (got < a->total) {
    ssize_t k = recv(a->fd, a->buf + (got % (WINDOW * BLOCK - BLOCK)), BLOCK, 0);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  return NULL;
}

static double raw_stream(size_t total, uint8_t *src, uint8_t *dst) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  CHECK_MSG(!bind(l, (struct sockaddr *)&sa, sizeof sa) && !listen(l, 1) &&
           !getsockname(l, (struct sockaddr *)&sa, &sl), "listen");
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK_MSG(!connect(c, (struct sockaddr *)&sa, sizeof sa), "connect");
  int s = accept(l, NULL, NULL);
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  raw_arg a = {s, total, dst};
  pthread_t th;
  int64_t t0 = th_now_ms();
  pthread_create(&th, NULL, raw_reader, &a);
  for (size_t sent = 0; sent < total; sent += BLOCK) {
    size_t off = (sent / BLOCK) % (WINDOW - 1) * BLOCK, k = 0;
    while (k < BLOCK) {
      ssize_t n = send(c, src + off + k, BLOCK - k, 0);
      CHECK_MSG(n > 0, "send");
      k += (size_t)n;
    }
  }
  pthread_join(th, NULL);
  int64_t ms = th_now_ms() - t0;
  close(c);
  close(s);
  close(l);
  return (double)total / 1e6 / (double)(ms ? ms : 1);
}

static double plugin_run(const mc_transport_ops *ops, th_host *h, void *ctx, void *ep,
                         void *lmem, uint8_t *lbuf, void *rmem, uint8_t *rbuf, uint32_t op,
                         size_t total, size_t slice, uint32_t nrails, uint64_t *token) {
  uint32_t per_block = (uint32_t)(BLOCK / slice), nblocks = (uint32_t)(total / BLOCK);
  uint32_t n = per_block * nblocks;
  mc_slice *s = calloc(n, sizeof *s);
  uint64_t t0 = *token;
  for (uint32_t i = 0; i < n; i++) {
    size_t off = ((size_t)i * slice) % ((WINDOW - 1) * BLOCK);
    s[i] = (mc_slice){t0 + i, op, i % nrails, lmem, (uint64_t)(uintptr_t)lbuf + off, rmem,
                      (uint64_t)(uintptr_t)rbuf + off, slice};
  }
  *token += n;
  int64_t start = th_now_ms();
  uint32_t done = 0;
  while (done < n) {
    uint32_t acc = 0;
    ops->submit(ctx, ep, s + done, n - done, &acc);
    done += acc;
    if (done < n) {
      /* Wait for some completions instead of spinning. */
      pthread_mutex_lock(&h->lock);
      uint64_t seen = h->done;
      while (h->done == seen)
        pthread_cond_wait(&h->cond, &h->lock);
      pthread_mutex_unlock(&h->lock);
    }
  }
  CHECK_MSG(th_wait(h, t0, n, 120000) == 0, "transfers hung");
  int64_t ms = th_now_ms() - start;
  for (uint32_t i = 0; i < n; i++)
    CHECK_MSG(h->status[t0 + i] == 0, "slice failed: %d", h->status[t0 + i]);
  free(s);
  return (double)total / 1e6 / (double)(ms ? ms : 1);
}

int main(int argc, char **argv) {
  CHECK_MSG(argc >= 2, "usage: %s plugin.so [total_MiB] [slice_KiB]", argv[0]);
  size_t total = (argc > 2 ? (size_t)atoi(argv[2]) : 2048) * BLOCK;
  size_t slice = (argc > 3 ? (size_t)atoi(argv[3]) : 1024) << 10;
  CHECK_MSG(slice >= 4096 && slice <= BLOCK && BLOCK % slice == 0, "slice must divide 1 MiB");
  uint32_t nslices = (uint32_t)(total / slice);
  CHECK_MSG(nslices < TH_MAX_TOKENS / 2, "too many slices for the tracker; raise slice size");
  uint8_t *a = malloc(WINDOW * BLOCK), *b = malloc(WINDOW * BLOCK);
  memset(a, 1, WINDOW * BLOCK);
  memset(b, 2, WINDOW * BLOCK);

  double raw = raw_stream(total, a, b);
  printf("raw socket stream:   %.2f GB/s\n", raw);

  void *dl;
  const mc_transport_ops *ops = th_load(argv[1], &dl);
  th_host *ha = calloc(1, sizeof *ha), *hb = calloc(1, sizeof *hb);
  th_host_init(ha, "bench-a:1", getenv("MC_TCP_BENCH_PARAMS"));
  th_host_init(hb, "bench-b:2", getenv("MC_TCP_BENCH_PARAMS"));
  mc_init_args ia = {sizeof ia, "bench-a:1", "127.0.0.1", "bench"};
  mc_init_args ib = {sizeof ib, "bench-b:2", "127.0.0.1", "bench"};
  void *ca, *cb;
  CHECK_MSG(!ops->init(&ha->api, &ia, &ca) && !ops->init(&hb->api, &ib, &cb), "init");
  uint8_t desc[MC_DESC_MAX], rk[MC_RKEY_MAX], rk2[MC_RKEY_MAX];
  size_t dlen = sizeof desc, rkl = sizeof rk, rkl2 = sizeof rk2;
  mc_mem_desc da = {(uint64_t)(uintptr_t)a, WINDOW * BLOCK, MC_MEM_CPU, -1, "cpu:0"};
  mc_mem_desc db = {(uint64_t)(uintptr_t)b, WINDOW * BLOCK, MC_MEM_CPU, -1, "cpu:0"};
  void *ma, *mb, *ep, *rm;
  uint32_t nrails = 0;
  ops->query_rails(cb, NULL, &nrails);
  CHECK_MSG(!ops->local_desc(ca, desc, &dlen) && !ops->register_mem(ca, &da, &ma, rk, &rkl) &&
           !ops->register_mem(cb, &db, &mb, rk2, &rkl2) &&
           !ops->connect(cb, "bench-a:1", desc, dlen, &ep) &&
           !ops->import_mem(cb, ep, da.addr, da.len, rk, rkl, &rm), "setup");
  uint64_t token = 0;
  /* Warm up the connections. */
  plugin_run(ops, hb, cb, ep, mb, b, rm, a, MC_OP_WRITE, 64 * BLOCK, slice, nrails, &token);
  token = 0;
  memset(hb->count, 0, sizeof hb->count);
  double w = plugin_run(ops, hb, cb, ep, mb, b, rm, a, MC_OP_WRITE, total, slice, nrails, &token);
  double r = plugin_run(ops, hb, cb, ep, mb, b, rm, a, MC_OP_READ, total, slice, nrails, &token);
  printf("plugin write:        %.2f GB/s (%.0f%% of raw), %zu KiB slices, %u rails\n", w,
         100 * w / raw, slice >> 10, nrails);
  printf("plugin read:         %.2f GB/s (%.0f%% of raw)\n", r, 100 * r / raw);
  ops->fini(cb);
  ops->fini(ca);
  dlclose(dl);
  th_host_fini(ha);
  th_host_fini(hb);
  free(ha);
  free(hb);
  free(a);
  free(b);
  return 0;
}
