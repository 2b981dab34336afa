/* bench_raw.c - the baseline of the rdma bench: the same soft device driven
 * by raw verbs with no plugin (one RC QP pair looped back in this process,
 * chains of `batch` RDMA WRITEs, the last one signaled, completions taken
 * from the completion channel as the plugin's CQ threads do),
 * measuring what posting and completing costs the calling thread before
 * any transport logic.  Over nnic NICs it stripes as the plugin bench
 * does (a chain per NIC per batch, one thread waiting on every CQ), so
 * the soft NICs' doorbell and wake-up costs are the same on both sides.  Verbs are reached through the plugin's own dlopen
 * table (rdma_verbs.c). */
#include "bench_raw.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rdma_verbs.h"

static uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int qp_up(rd_verbs *v, struct ibv_qp *qp, uint32_t dqpn, const union ibv_gid *dgid) {
  struct ibv_qp_attr a;
  memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  if (v->modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    return -1;
  memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = dqpn;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = *dgid;
  a.ah_attr.grh.sgid_index = 1;
  a.ah_attr.port_num = 1;
  if (v->modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN))
    return -1;
  memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_RTS;
  return v->modify_qp(qp, &a, IBV_QP_STATE);
}

typedef struct raw_nic {
  struct ibv_context *c;
  struct ibv_pd *pd;
  struct ibv_comp_channel *ch;
  struct ibv_cq *cq;
  struct ibv_qp *a, *b;
  struct ibv_mr *mr;
} raw_nic;

static int nic_up(rd_verbs *v, struct ibv_device *d, uint32_t batch, uint8_t *buf, size_t blen,
                  raw_nic *n) {
  n->c = v->open_device(d);
  n->pd = n->c ? v->alloc_pd(n->c) : NULL;
  n->ch = n->pd ? v->create_comp_channel(n->c) : NULL;
  n->cq = n->ch ? v->create_cq(n->c, 4096, NULL, n->ch, 0) : NULL;
  if (!n->cq)
    return -1;
  struct ibv_qp_init_attr ia;
  memset(&ia, 0, sizeof ia);
  ia.send_cq = ia.recv_cq = n->cq;
  ia.cap.max_send_wr = batch;
  ia.cap.max_recv_wr = 1;
  ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
  ia.qp_type = IBV_QPT_RC;
  n->a = v->create_qp(n->pd, &ia);
  n->b = v->create_qp(n->pd, &ia);
  n->mr = v->reg_mr(n->pd, buf, blen, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  union ibv_gid gid;
  if (!n->a || !n->b || !n->mr || v->query_gid(n->c, 1, 1, &gid) ||
      qp_up(v, n->a, n->b->qp_num, &gid) || qp_up(v, n->b, n->a->qp_num, &gid))
    return -1;
  return 0;
}

static void nic_down(rd_verbs *v, raw_nic *n) {
  if (n->mr)
    v->dereg_mr(n->mr);
  if (n->a)
    v->destroy_qp(n->a);
  if (n->b)
    v->destroy_qp(n->b);
  if (n->cq)
    v->destroy_cq(n->cq);
  if (n->ch)
    v->destroy_comp_channel(n->ch);
  if (n->pd)
    v->dealloc_pd(n->pd);
  if (n->c)
    v->close_device(n->c);
}

/* Waits for one completion on each of the nnic CQs, event driven as the
 * plugin's CQ threads are (no spinning): poll, arm, poll, then sleep on
 * the channels of the CQs still waited for.  0 or -1. */
static int wait_all(rd_verbs *v, raw_nic *nics, uint32_t nnic) {
  uint32_t left = nnic;
  uint8_t done[RAW_MAX_NICS] = {0};
  while (left) {
    for (uint32_t i = 0; i < nnic; i++) {
      struct ibv_wc wc;
      int got = done[i] ? 0 : ibv_poll_cq(nics[i].cq, 1, &wc);
      if (got < 0 || (got && wc.status != IBV_WC_SUCCESS))
        return -1;
      if (got) {
        done[i] = 1;
        left--;
      }
    }
    if (!left)
      break;
    int any = 0;
    for (uint32_t i = 0; i < nnic; i++) {
      struct ibv_wc wc;
      if (done[i])
        continue;
      ibv_req_notify_cq(nics[i].cq, 0);
      int got = ibv_poll_cq(nics[i].cq, 1, &wc);
      if (got < 0 || (got && wc.status != IBV_WC_SUCCESS))
        return -1;
      if (got) {
        done[i] = 1;
        left--;
        any = 1;
      }
    }
    if (any || !left)
      continue;
    struct pollfd pfd[RAW_MAX_NICS];
    for (uint32_t i = 0; i < nnic; i++)
      pfd[i] = (struct pollfd){done[i] ? -1 : nics[i].ch->fd, POLLIN, 0};
    if (poll(pfd, nnic, 1000) < 0)
      return -1;
    for (uint32_t i = 0; i < nnic; i++)
      if (pfd[i].revents & POLLIN) {
        struct ibv_cq *ecq;
        void *ectx;
        if (v->get_cq_event(nics[i].ch, &ecq, &ectx) == 0)
          v->ack_cq_events(ecq, 1);
      }
  }
  return 0;
}

int bench_raw(const char *lib, uint32_t nslices, uint32_t batch, uint32_t len, uint32_t nnic,
              uint64_t (*engine_cpu)(void), bench_result *out) {
  rd_verbs v;
  char err[256];
  if (rd_verbs_load(&v, lib, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  int n = 0;
  struct ibv_device **l = v.get_device_list(&n);
  if (!l || n < 1 || nnic < 1 || nnic > RAW_MAX_NICS || (uint32_t)n < nnic || batch % nnic) {
    if (l)
      v.free_device_list(l);
    return -1;
  }
  raw_nic nics[RAW_MAX_NICS];
  memset(nics, 0, sizeof nics);
  uint8_t *buf = calloc(2, (size_t)batch * len);
  int rc = buf ? 0 : -1;
  for (uint32_t i = 0; i < nnic && !rc; i++)
    rc = nic_up(&v, l[i], batch, buf, 2ull * batch * len, &nics[i]);
  v.free_device_list(l);
  struct ibv_send_wr *wr = calloc(batch, sizeof *wr);
  struct ibv_sge *sg = calloc(batch, sizeof *sg);
  uint64_t *lat = calloc(nslices / batch + 1, sizeof *lat);
  if (!wr || !sg || !lat)
    rc = -1;
  out->post_ns = 0;
  uint64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), eng0 = engine_cpu(),
           w0 = now_ns(CLOCK_MONOTONIC);
  uint32_t nb = 0, per = batch / nnic;
  for (uint32_t done = 0; done < nslices && !rc; done += batch) {
    uint64_t t = now_ns(CLOCK_MONOTONIC);
    /* The same striping as the plugin bench: slice i on NIC i % nnic, one
     * chain per NIC, its last WR signaled. */
    for (uint32_t k = 0; k < nnic && !rc; k++) {
      uint64_t p0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
      struct ibv_send_wr *c = &wr[k * per];
      for (uint32_t j = 0; j < per; j++) {
        uint32_t i = j * nnic + k;
        sg[k * per + j] = (struct ibv_sge){(uintptr_t)buf + (uint64_t)i * len, len,
                                           nics[k].mr->lkey};
        memset(&c[j], 0, sizeof c[j]);
        c[j].wr_id = i;
        c[j].sg_list = &sg[k * per + j];
        c[j].num_sge = 1;
        c[j].opcode = IBV_WR_RDMA_WRITE;
        c[j].send_flags = j + 1 == per ? IBV_SEND_SIGNALED : 0;
        c[j].wr.rdma.remote_addr = (uintptr_t)buf + (uint64_t)(batch + i) * len;
        c[j].wr.rdma.rkey = nics[k].mr->rkey;
        c[j].next = j + 1 < per ? &c[j + 1] : NULL;
      }
      struct ibv_send_wr *bad;
      if (ibv_post_send(nics[k].a, c, &bad))
        rc = -1;
      out->post_ns += now_ns(CLOCK_THREAD_CPUTIME_ID) - p0;
    }
    if (!rc)
      rc = wait_all(&v, nics, nnic);
    lat[nb++] = now_ns(CLOCK_MONOTONIC) - t;
  }
  out->wall_ns = now_ns(CLOCK_MONOTONIC) - w0;
  out->cpu_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0 - (engine_cpu() - eng0);
  out->slices = nslices;
  if (!rc)
    bench_percentiles(lat, nb, out);
  free(lat);
  free(wr);
  free(sg);
  for (uint32_t i = 0; i < nnic; i++)
    nic_down(&v, &nics[i]);
  free(buf);
  return rc;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

void bench_percentiles(uint64_t *lat, uint32_t n, bench_result *out) {
  if (!n)
    return;
  qsort(lat, n, sizeof *lat, cmp_u64);
  out->p50_ns = lat[n / 2];
  out->p99_ns = lat[(uint64_t)n * 99 / 100];
}
