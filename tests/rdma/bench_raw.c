/* bench_raw.c - the baseline of the rdma bench: the same soft device driven
 * by raw verbs with no plugin (one RC QP pair looped back in this process,
 * chains of `batch` RDMA WRITEs, the last one signaled, completions taken
 * from the completion channel as the plugin's CQ threads do),
 * measuring what posting and completing costs the calling thread before
 * any transport logic.  Verbs are reached through the plugin's own dlopen
 * table (rdma_verbs.c). */
#include "bench_raw.h"

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

int bench_raw(const char *lib, uint32_t nslices, uint32_t batch, uint32_t len,
              uint64_t (*engine_cpu)(void), bench_result *out) {
  rd_verbs v;
  char err[256];
  if (rd_verbs_load(&v, lib, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  int n = 0;
  struct ibv_device **l = v.get_device_list(&n);
  if (!l || n < 1)
    return -1;
  struct ibv_context *c = v.open_device(l[0]);
  v.free_device_list(l);
  struct ibv_pd *pd = c ? v.alloc_pd(c) : NULL;
  struct ibv_comp_channel *ch = pd ? v.create_comp_channel(c) : NULL;
  struct ibv_cq *cq = ch ? v.create_cq(c, 4096, NULL, ch, 0) : NULL;
  if (!cq)
    return -1;
  struct ibv_qp_init_attr ia;
  memset(&ia, 0, sizeof ia);
  ia.send_cq = ia.recv_cq = cq;
  ia.cap.max_send_wr = batch;
  ia.cap.max_recv_wr = 1;
  ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
  ia.qp_type = IBV_QPT_RC;
  struct ibv_qp *a = v.create_qp(pd, &ia), *b = v.create_qp(pd, &ia);
  union ibv_gid gid;
  uint8_t *buf = calloc(2, (size_t)batch * len);
  struct ibv_mr *mr = buf ? v.reg_mr(pd, buf, 2ull * batch * len,
                                     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE) : NULL;
  if (!a || !b || !mr || v.query_gid(c, 1, 1, &gid) || qp_up(&v, a, b->qp_num, &gid) ||
      qp_up(&v, b, a->qp_num, &gid))
    return -1;
  struct ibv_send_wr *wr = calloc(batch, sizeof *wr);
  struct ibv_sge *sg = calloc(batch, sizeof *sg);
  uint64_t *lat = calloc(nslices / batch + 1, sizeof *lat);
  out->post_ns = 0;
  uint64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), eng0 = engine_cpu(),
           w0 = now_ns(CLOCK_MONOTONIC);
  uint32_t nb = 0;
  for (uint32_t done = 0; done < nslices; done += batch) {
    uint64_t t = now_ns(CLOCK_MONOTONIC);
    uint64_t p0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    for (uint32_t i = 0; i < batch; i++) {
      sg[i] = (struct ibv_sge){(uintptr_t)buf + (uint64_t)i * len, len, mr->lkey};
      memset(&wr[i], 0, sizeof wr[i]);
      wr[i].wr_id = i;
      wr[i].sg_list = &sg[i];
      wr[i].num_sge = 1;
      wr[i].opcode = IBV_WR_RDMA_WRITE;
      wr[i].send_flags = i + 1 == batch ? IBV_SEND_SIGNALED : 0;
      wr[i].wr.rdma.remote_addr = (uintptr_t)buf + (uint64_t)(batch + i) * len;
      wr[i].wr.rdma.rkey = mr->rkey;
      wr[i].next = i + 1 < batch ? &wr[i + 1] : NULL;
    }
    out->post_ns += now_ns(CLOCK_THREAD_CPUTIME_ID) - p0; /* building the chain */
    struct ibv_send_wr *bad;
    uint64_t p1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    if (ibv_post_send(a, wr, &bad))
      return -1;
    out->post_ns += now_ns(CLOCK_THREAD_CPUTIME_ID) - p1;
    /* Event driven, as the plugin's CQ threads are (no spinning): arm,
     * poll once, then sleep on the channel. */
    struct ibv_wc wc;
    int got;
    while ((got = ibv_poll_cq(cq, 1, &wc)) == 0) {
      ibv_req_notify_cq(cq, 0);
      if ((got = ibv_poll_cq(cq, 1, &wc)) != 0)
        break;
      struct ibv_cq *ecq;
      void *ectx;
      if (v.get_cq_event(ch, &ecq, &ectx) == 0)
        v.ack_cq_events(ecq, 1);
    }
    if (got < 0 || wc.status != IBV_WC_SUCCESS)
      return -1;
    lat[nb++] = now_ns(CLOCK_MONOTONIC) - t;
  }
  out->wall_ns = now_ns(CLOCK_MONOTONIC) - w0;
  out->cpu_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0 - (engine_cpu() - eng0);
  out->slices = nslices;
  bench_percentiles(lat, nb, out);
  free(lat);
  free(wr);
  free(sg);
  v.dereg_mr(mr);
  free(buf);
  v.destroy_qp(a);
  v.destroy_qp(b);
  v.destroy_cq(cq);
  v.destroy_comp_channel(ch);
  v.dealloc_pd(pd);
  v.close_device(c);
  return 0;
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
