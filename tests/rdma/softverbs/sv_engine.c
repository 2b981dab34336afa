/* sv_engine.c - libsoftverbs's "NIC": the per-context DMA engine thread
 * that executes queued work requests into the peer process, checking what
 * the target NIC would check (sv.h), and the CQ / async event plumbing. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sv.h"

void sv_cq_push(sv_cq *c, const struct ibv_wc *wc) {
  pthread_mutex_lock(&c->lock);
  if (c->n == c->cap) {
    /* A real CQ overruns here: counted so tests can assert it never does. */
    atomic_fetch_add(&sv_g.me->cq_overruns, 1);
    pthread_mutex_unlock(&c->lock);
    return;
  }
  c->ring[(c->head + c->n) % c->cap] = *wc;
  c->n++;
  int fire = c->armed && c->cq.channel;
  c->armed = 0;
  pthread_mutex_unlock(&c->lock);
  if (fire) {
    struct ibv_cq *p = &c->cq;
    ssize_t w = write(c->cq.channel->refcnt, &p, sizeof p); /* the write end */
    (void)w;
  }
}

void sv_async(sv_ctx *c, enum ibv_event_type t, void *elem, int port) {
  struct ibv_async_event ev;
  memset(&ev, 0, sizeof ev);
  ev.event_type = t;
  if (t == IBV_EVENT_PORT_ACTIVE || t == IBV_EVENT_PORT_ERR || t == IBV_EVENT_GID_CHANGE)
    ev.element.port_num = port;
  else if (t == IBV_EVENT_QP_FATAL)
    ev.element.qp = elem;
  ssize_t w = write(c->pipe_async[1], &ev, sizeof ev);
  (void)w;
}

static void set_qp_state(sv_qp *q, enum ibv_qp_state s) {
  q->qp.state = s;
  atomic_store(&sv_g.me->qp[q->idx].state, (uint32_t)s);
}

int sv_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad) {
  sv_qp *q = (sv_qp *)ibqp;
  sv_ctx *c = (sv_ctx *)ibqp->context;
  int rc = 0;
  pthread_mutex_lock(&c->lock);
  for (; wr; wr = wr->next) {
    if (q->qp.state != IBV_QPS_RTS && q->qp.state != IBV_QPS_ERR &&
        q->qp.state != IBV_QPS_SQD) {
      rc = EINVAL;
      break;
    }
    if (wr->num_sge < 0 || wr->num_sge > SV_MAX_SGE ||
        (wr->opcode != IBV_WR_RDMA_WRITE && wr->opcode != IBV_WR_RDMA_READ &&
         wr->opcode != IBV_WR_SEND)) {
      rc = EINVAL;
      break;
    }
    if (q->n == q->cap) {
      rc = ENOMEM;
      break;
    }
    sv_wqe *e = &q->sq[(q->head + q->n) % q->cap];
    e->wr_id = wr->wr_id;
    e->opcode = wr->opcode;
    e->flags = wr->send_flags;
    e->remote_addr = wr->wr.rdma.remote_addr;
    e->rkey = wr->wr.rdma.rkey;
    e->nsge = (uint32_t)wr->num_sge;
    memcpy(e->sge, wr->sg_list, sizeof(struct ibv_sge) * (size_t)wr->num_sge);
    q->n++;
  }
  if (rc && bad)
    *bad = wr;
  /* The doorbell: wake the engine only when it sleeps, and after letting
   * go of the lock it needs (the emulation's cost, kept small: the caller
   * pays it where a NIC would take an MMIO write). */
  int wake = c->sleeping;
  pthread_mutex_unlock(&c->lock);
  atomic_fetch_add_explicit(&sv_g.posts, 1, memory_order_relaxed);
  if (wake)
    pthread_cond_signal(&c->cond);
  return rc;
}

static int range_ok(uint64_t a, uint64_t l, uint64_t base, uint64_t blen) {
  return a >= base && l <= blen && a - base <= blen - l;
}

/* Not a real status: a SEND found no receive posted (an RNR NAK); the
 * engine puts the WR back and retries it 1 ms later, as a NIC with
 * rnr_retry 7 does forever. */
#define SV_RNR ((enum ibv_wc_status)0x7fff)

/* A SEND: the target QP's oldest posted receive takes the payload (checked
 * against the target's MR like a NIC would), and a receive completion is
 * queued for the target's engine. */
static enum ibv_wc_status exec_send(sv_qp *q, sv_slot *t, sv_qp_ent *tq, struct iovec *liov,
                                    uint32_t nsge, uint64_t total, uint64_t *bytes) {
  (void)q;
  uint32_t h = atomic_load(&tq->rq_head);
  if (h == atomic_load(&tq->rq_tail))
    return SV_RNR; /* receiver not ready: the engine retries later */
  sv_rq_ent r = tq->rq[h % SV_RQ];
  uint32_t idx = r.lkey >> 12;
  if (idx >= SV_MRS || total > r.len)
    return IBV_WC_REM_INV_REQ_ERR;
  sv_mr_ent *m = &t->mr[idx];
  atomic_fetch_add(&m->users, 1);
  enum ibv_wc_status st = IBV_WC_SUCCESS;
  if (atomic_load(&m->live) != 1 || m->key != r.lkey || m->pd != tq->pd ||
      !(m->access & IBV_ACCESS_LOCAL_WRITE) || !range_ok(r.addr, total, m->iova, m->len)) {
    st = IBV_WC_REM_ACCESS_ERR;
  } else if (total) {
    struct iovec riov = {(void *)(uintptr_t)(m->addr + (r.addr - m->iova)), total};
    ssize_t w = process_vm_writev(q->peer_pid, liov, nsge, &riov, 1, 0);
    if (w != (ssize_t)total)
      st = w < 0 && errno == ESRCH ? IBV_WC_RETRY_EXC_ERR : IBV_WC_REM_ACCESS_ERR;
  }
  atomic_fetch_sub(&m->users, 1);
  if (st != IBV_WC_SUCCESS)
    return st;
  atomic_store(&tq->rq_head, h + 1);
  uint32_t ct = atomic_load(&tq->rc_tail);
  tq->rc[ct % SV_RQ] = (sv_rc_ent){r.wr_id, (uint32_t)total, IBV_WC_SUCCESS};
  atomic_store(&tq->rc_tail, ct + 1);
  *bytes = total;
  return IBV_WC_SUCCESS;
}

/* Moves receive completions peers queued for this context's QPs into
 * their receive CQs (c->lock held).  1 when any was moved. */
static int deliver_recvs(sv_ctx *c) {
  int moved = 0;
  for (sv_qp *q = c->qps; q; q = q->next) {
    sv_qp_ent *e = &sv_g.me->qp[q->idx];
    uint32_t h = atomic_load(&e->rc_head);
    while (h != atomic_load(&e->rc_tail) && q->qp.recv_cq) {
      struct ibv_wc wc;
      memset(&wc, 0, sizeof wc);
      wc.wr_id = e->rc[h % SV_RQ].wr_id;
      wc.byte_len = e->rc[h % SV_RQ].byte_len;
      wc.status = (enum ibv_wc_status)e->rc[h % SV_RQ].status;
      wc.opcode = IBV_WC_RECV;
      wc.qp_num = q->qp.qp_num;
      sv_cq_push((sv_cq *)q->qp.recv_cq, &wc);
      atomic_store(&e->rc_head, ++h);
      moved = 1;
    }
  }
  return moved;
}

/* Executes one WQE of q; returns the WC status. */
static enum ibv_wc_status exec_wqe(sv_ctx *c, sv_qp *q, const sv_wqe *e, uint64_t *bytes) {
  sv_nic_ent *mine = &sv_g.me->nic[c->nic];
  if (q->qp.state != IBV_QPS_RTS)
    return IBV_WC_WR_FLUSH_ERR;
  if (atomic_load(&mine->dead) || atomic_load(&mine->port_down))
    return IBV_WC_RETRY_EXC_ERR;
  uint32_t inj = atomic_load(&mine->wc_err);
  while (inj && !atomic_compare_exchange_weak(&mine->wc_err, &inj, inj - 1))
    ;
  if (inj)
    return IBV_WC_GENERAL_ERR;
  /* Local SGEs: live MR of this QP's PD, inside it, writable for READ. */
  struct iovec liov[SV_MAX_SGE];
  uint64_t total = 0;
  uint32_t pd = ((struct ibv_pd *)q->qp.pd)->handle;
  for (uint32_t i = 0; i < e->nsge; i++) {
    uint32_t k = e->sge[i].lkey, idx = k >> 12;
    if (idx >= SV_MRS)
      return IBV_WC_LOC_PROT_ERR;
    sv_mr_ent *m = &sv_g.me->mr[idx];
    if (atomic_load(&m->live) != 1 || m->key != k || m->pd != pd ||
        !range_ok(e->sge[i].addr, e->sge[i].length, m->iova, m->len) ||
        (e->opcode == IBV_WR_RDMA_READ && !(m->access & IBV_ACCESS_LOCAL_WRITE)))
      return IBV_WC_LOC_PROT_ERR;
    liov[i].iov_base = (void *)(uintptr_t)(m->addr + (e->sge[i].addr - m->iova));
    liov[i].iov_len = e->sge[i].length;
    total += e->sge[i].length;
  }
  /* The target: its process, NIC, QP and MR, as its NIC would check. */
  sv_slot *t = &sv_g.fab->slot[q->peer_slot];
  if (atomic_load(&t->pid) != q->peer_pid || kill(q->peer_pid, 0) < 0)
    return IBV_WC_RETRY_EXC_ERR;
  if (q->peer_qpn == 0 || q->peer_qpn > SV_QPS)
    return IBV_WC_RETRY_EXC_ERR;
  sv_qp_ent *tq = &t->qp[q->peer_qpn - 1];
  uint32_t ts = atomic_load(&tq->state);
  if (ts != IBV_QPS_RTR && ts != IBV_QPS_RTS)
    return IBV_WC_RETRY_EXC_ERR;
  if (atomic_load(&t->nic[tq->nic].dead) || atomic_load(&t->nic[tq->nic].port_down))
    return IBV_WC_RETRY_EXC_ERR;
  /* Packets above the receiving port's MTU are dropped: the sender retries
   * until it gives up.  This is what an MTU not negotiated down does. */
  if (q->path_mtu > t->nic[tq->nic].mtu)
    return IBV_WC_RETRY_EXC_ERR;
  /* A GID changed since the QP was connected: packets go to an address
   * that is gone, or answers to ours are lost. */
  uint32_t mygen = atomic_load(&sv_g.me->nic[q->nic].gid_gen);
  if (q->global && (atomic_load(&t->nic[tq->nic].gid_gen) != q->peer_gen || mygen != q->my_gen ||
                    (tq->peer_gen != ~0u && tq->peer_gen != mygen)))
    return IBV_WC_RETRY_EXC_ERR;
  if (e->opcode == IBV_WR_SEND)
    return exec_send(q, t, tq, liov, e->nsge, total, bytes);
  uint32_t need = e->opcode == IBV_WR_RDMA_WRITE ? IBV_ACCESS_REMOTE_WRITE : IBV_ACCESS_REMOTE_READ;
  if (!(tq->access & need))
    return IBV_WC_REM_ACCESS_ERR;
  uint32_t ridx = e->rkey >> 12;
  if (ridx >= SV_MRS)
    return IBV_WC_REM_ACCESS_ERR;
  sv_mr_ent *rm = &t->mr[ridx];
  atomic_fetch_add(&rm->users, 1);
  enum ibv_wc_status st = IBV_WC_SUCCESS;
  if (atomic_load(&rm->live) != 1 || rm->key != e->rkey || rm->pd != tq->pd ||
      !(rm->access & need) || !range_ok(e->remote_addr, total, rm->iova, rm->len)) {
    st = IBV_WC_REM_ACCESS_ERR;
  } else if (total) {
    struct iovec riov = {(void *)(uintptr_t)(rm->addr + (e->remote_addr - rm->iova)), total};
    ssize_t r = e->opcode == IBV_WR_RDMA_WRITE
                    ? process_vm_writev(q->peer_pid, liov, e->nsge, &riov, 1, 0)
                    : process_vm_readv(q->peer_pid, liov, e->nsge, &riov, 1, 0);
    if (r < 0 && errno == ESRCH)
      st = IBV_WC_RETRY_EXC_ERR;
    else if (r != (ssize_t)total)
      st = IBV_WC_REM_ACCESS_ERR;
  }
  atomic_fetch_sub(&rm->users, 1);
  if (st == IBV_WC_SUCCESS) {
    atomic_fetch_add(&mine->bytes, total);
    *bytes = total;
  }
  return st;
}

/* Faults requested through the shared slot, turned into what a NIC does:
 * QPs to ERR and async events. */
static void check_faults(sv_ctx *c) {
  sv_nic_ent *n = &sv_g.me->nic[c->nic];
  uint32_t qe = atomic_load(&n->qp_err);
  if (qe != c->seen_qp_err) {
    c->seen_qp_err = qe;
    for (sv_qp *q = c->qps; q; q = q->next)
      if (q->qp.state != IBV_QPS_RESET && q->qp.state != IBV_QPS_ERR) {
        set_qp_state(q, IBV_QPS_ERR);
        sv_async(c, IBV_EVENT_QP_FATAL, q, 0);
      }
  }
  uint32_t down = atomic_load(&n->port_down);
  if (down != c->seen_down) {
    c->seen_down = down;
    sv_async(c, down ? IBV_EVENT_PORT_ERR : IBV_EVENT_PORT_ACTIVE, NULL, 1);
  }
  uint32_t gg = atomic_load(&n->gid_gen);
  if (gg != c->seen_gid) {
    c->seen_gid = gg;
    sv_async(c, IBV_EVENT_GID_CHANGE, NULL, 1);
  }
  uint32_t dead = atomic_load(&n->dead);
  if (dead && !c->seen_dead) {
    c->seen_dead = 1;
    sv_async(c, IBV_EVENT_DEVICE_FATAL, NULL, 0);
  }
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SV_BATCH 32

void *sv_engine_main(void *arg) {
  sv_ctx *c = arg;
  uint64_t cpu0 = thread_cpu_ns();
  pthread_mutex_lock(&c->lock);
  while (!c->stop) {
    check_faults(c);
    int recvd = deliver_recvs(c);
    int stalled = (int)atomic_load(&sv_g.me->nic[c->nic].stall);
    sv_qp *q = c->qps;
    uint64_t now = mono_ns();
    while (q && (q->n == 0 || (stalled && q->qp.state == IBV_QPS_RTS) ||
                 (q->rnr_until > now && q->qp.state == IBV_QPS_RTS)))
      q = q->next;
    if (!q) {
      uint64_t cpu1 = thread_cpu_ns();
      atomic_fetch_add(&sv_g.engine_cpu_ns, cpu1 - cpu0);
      cpu0 = cpu1;
      if (recvd)
        continue;
      struct timespec dl;
      clock_gettime(CLOCK_REALTIME, &dl);
      dl.tv_nsec += 1 * 1000000L; /* receive completions are polled */
      if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
      }
      c->sleeping = 1;
      pthread_cond_timedwait(&c->cond, &c->lock, &dl);
      c->sleeping = 0;
      continue;
    }
    /* Rotate so every QP gets its turn. */
    if (q != c->qps) {
      sv_qp **pp = &c->qps;
      while (*pp != q)
        pp = &(*pp)->next;
      *pp = q->next;
      q->next = c->qps;
      c->qps = q;
    }
    sv_wqe batch[SV_BATCH];
    uint32_t nb = 0;
    while (q->n && nb < SV_BATCH) {
      batch[nb++] = q->sq[q->head];
      q->head = (q->head + 1) % q->cap;
      q->n--;
    }
    c->busy = q; /* destroy_qp waits until the engine lets go of q */
    pthread_mutex_unlock(&c->lock);
    for (uint32_t i = 0; i < nb; i++) {
      uint64_t bytes = 0;
      enum ibv_wc_status st = exec_wqe(c, q, &batch[i], &bytes);
      if (st == SV_RNR) {
        /* Back to the front of the send queue, in order; try in 1 ms. */
        pthread_mutex_lock(&c->lock);
        for (uint32_t k = nb; k > i; k--) {
          q->head = (q->head + q->cap - 1) % q->cap;
          q->sq[q->head] = batch[k - 1];
          q->n++;
        }
        q->rnr_until = mono_ns() + 1000000u;
        pthread_mutex_unlock(&c->lock);
        break;
      }
      atomic_fetch_add(&sv_g.me->nic[c->nic].wrs, 1);
      if (st != IBV_WC_SUCCESS && st != IBV_WC_WR_FLUSH_ERR) {
        pthread_mutex_lock(&c->lock);
        if (q->qp.state == IBV_QPS_RTS)
          set_qp_state(q, IBV_QPS_ERR);
        pthread_mutex_unlock(&c->lock);
      }
      if (st != IBV_WC_SUCCESS || (batch[i].flags & IBV_SEND_SIGNALED)) {
        struct ibv_wc wc;
        memset(&wc, 0, sizeof wc);
        wc.wr_id = batch[i].wr_id;
        wc.status = st;
        wc.opcode = batch[i].opcode == IBV_WR_RDMA_WRITE ? IBV_WC_RDMA_WRITE
                    : batch[i].opcode == IBV_WR_SEND     ? IBV_WC_SEND
                                                         : IBV_WC_RDMA_READ;
        wc.byte_len = (uint32_t)bytes;
        wc.qp_num = q->qp.qp_num;
        wc.vendor_err = st == IBV_WC_SUCCESS ? 0 : 0x5000u + (uint32_t)st;
        sv_cq_push((sv_cq *)q->qp.send_cq, &wc);
      }
    }
    /* Account the engine's CPU after every batch, so a reader sees it
     * current (benches subtract it from the process's). */
    uint64_t cpu1 = thread_cpu_ns();
    atomic_fetch_add(&sv_g.engine_cpu_ns, cpu1 - cpu0);
    cpu0 = cpu1;
    pthread_mutex_lock(&c->lock);
    c->busy = NULL;
  }
  pthread_mutex_unlock(&c->lock);
  atomic_fetch_add(&sv_g.engine_cpu_ns, thread_cpu_ns() - cpu0);
  return NULL;
}
