/* softverbs.c - libsoftverbs's verbs entry points: device list, context
 * with its ops table (so <infiniband/verbs.h>'s inline ibv_post_send,
 * ibv_poll_cq and ibv_req_notify_cq reach us), PD, MR, CQ, completion
 * channel, QP state machine, port and GID queries, async events; plus the
 * test controls of softverbs.h.  See sv.h for the model. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "softverbs.h"
#include "sv.h"

#undef ibv_reg_mr
#undef ibv_query_port

#define SV_EXPORT __attribute__((visibility("default")))

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

static int ready(void) {
  pthread_once(&once, sv_global_init);
  return sv_g.ok;
}

SV_EXPORT struct ibv_device **ibv_get_device_list(int *num);
SV_EXPORT struct ibv_device **ibv_get_device_list(int *num) {
  if (!ready()) {
    errno = ENOSYS;
    return NULL;
  }
  struct ibv_device **l = calloc((size_t)sv_g.nnic + 1, sizeof *l);
  if (!l)
    return NULL;
  for (int i = 0; i < sv_g.nnic; i++)
    l[i] = &sv_g.dev[i];
  if (num)
    *num = sv_g.nnic;
  return l;
}

SV_EXPORT void ibv_free_device_list(struct ibv_device **list);
SV_EXPORT void ibv_free_device_list(struct ibv_device **list) { free(list); }

SV_EXPORT const char *ibv_get_device_name(struct ibv_device *d);
SV_EXPORT const char *ibv_get_device_name(struct ibv_device *d) { return d->name; }

static int poll_cq(struct ibv_cq *ibcq, int num, struct ibv_wc *wc) {
  sv_cq *c = (sv_cq *)ibcq;
  int k = 0;
  pthread_mutex_lock(&c->lock);
  while (k < num && c->n) {
    wc[k++] = c->ring[c->head];
    c->head = (c->head + 1) % c->cap;
    c->n--;
  }
  pthread_mutex_unlock(&c->lock);
  return k;
}

static int req_notify(struct ibv_cq *ibcq, int solicited) {
  (void)solicited;
  sv_cq *c = (sv_cq *)ibcq;
  pthread_mutex_lock(&c->lock);
  c->armed = 1;
  pthread_mutex_unlock(&c->lock);
  return 0;
}

/* Receives go to the QP's shared queue, where a peer's SEND finds them. */
static int post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad) {
  sv_qp *q = (sv_qp *)ibqp;
  sv_qp_ent *e = &sv_g.me->qp[q->idx];
  for (; wr; wr = wr->next) {
    uint32_t t = atomic_load(&e->rq_tail);
    if (q->qp.state == IBV_QPS_RESET || wr->num_sge != 1 ||
        t - atomic_load(&e->rq_head) >= SV_RQ) {
      *bad = wr;
      return q->qp.state == IBV_QPS_RESET || wr->num_sge != 1 ? EINVAL : ENOMEM;
    }
    e->rq[t % SV_RQ] = (sv_rq_ent){wr->wr_id, wr->sg_list[0].addr, wr->sg_list[0].length,
                                   wr->sg_list[0].lkey};
    atomic_store(&e->rq_tail, t + 1);
  }
  return 0;
}

SV_EXPORT struct ibv_context *ibv_open_device(struct ibv_device *d);
SV_EXPORT struct ibv_context *ibv_open_device(struct ibv_device *d) {
  if (!ready())
    return NULL;
  int nic = (int)(d - sv_g.dev);
  if (nic < 0 || nic >= sv_g.nnic || atomic_load(&sv_g.me->nic[nic].dead)) {
    errno = ENODEV;
    return NULL;
  }
  sv_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  if (pipe2(c->pipe_async, O_CLOEXEC)) {
    free(c);
    return NULL;
  }
  c->nic = nic;
  c->ctx.device = d;
  c->ctx.ops.poll_cq = poll_cq;
  c->ctx.ops.req_notify_cq = req_notify;
  c->ctx.ops.post_send = sv_post_send;
  c->ctx.ops.post_recv = post_recv;
  c->ctx.cmd_fd = -1;
  c->ctx.async_fd = c->pipe_async[0];
  c->ctx.num_comp_vectors = 1;
  pthread_mutex_init(&c->ctx.mutex, NULL);
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->seen_qp_err = atomic_load(&sv_g.me->nic[nic].qp_err);
  c->seen_down = atomic_load(&sv_g.me->nic[nic].port_down);
  c->seen_gid = atomic_load(&sv_g.me->nic[nic].gid_gen);
  if (pthread_create(&c->engine, NULL, sv_engine_main, c)) {
    close(c->pipe_async[0]);
    close(c->pipe_async[1]);
    free(c);
    return NULL;
  }
  pthread_setname_np(c->engine, "sv-engine");
  return &c->ctx;
}

SV_EXPORT int ibv_close_device(struct ibv_context *ctx);
SV_EXPORT int ibv_close_device(struct ibv_context *ctx) {
  sv_ctx *c = (sv_ctx *)ctx;
  pthread_mutex_lock(&c->lock);
  c->stop = 1;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  pthread_join(c->engine, NULL);
  close(c->pipe_async[0]);
  close(c->pipe_async[1]);
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->ctx.mutex);
  free(c);
  return 0;
}

SV_EXPORT int ibv_query_device(struct ibv_context *ctx, struct ibv_device_attr *a);
SV_EXPORT int ibv_query_device(struct ibv_context *ctx, struct ibv_device_attr *a) {
  sv_ctx *c = (sv_ctx *)ctx;
  memset(a, 0, sizeof *a);
  snprintf(a->fw_ver, sizeof a->fw_ver, "softverbs-1");
  a->max_mr_size = sv_g.cfg[c->nic].max_mr_size;
  a->max_qp = SV_QPS;
  a->max_qp_wr = 16384;
  a->max_sge = SV_MAX_SGE;
  a->max_cq = 1024;
  a->max_cqe = 1 << 20;
  a->max_mr = SV_MRS;
  a->max_pd = 1024;
  a->max_qp_rd_atom = 16;
  a->max_qp_init_rd_atom = 16;
  a->phys_port_cnt = 1;
  return 0;
}

SV_EXPORT int ibv_query_port(struct ibv_context *ctx, uint8_t port,
                             struct _compat_ibv_port_attr *out);
SV_EXPORT int ibv_query_port(struct ibv_context *ctx, uint8_t port,
                             struct _compat_ibv_port_attr *out) {
  sv_ctx *c = (sv_ctx *)ctx;
  if (port != 1)
    return EINVAL;
  /* The compat struct is struct ibv_port_attr up to link_layer. */
  struct ibv_port_attr *a = (struct ibv_port_attr *)(void *)out;
  sv_nic_ent *n = &sv_g.me->nic[c->nic];
  int up = !atomic_load(&n->dead) && !atomic_load(&n->port_down);
  a->state = up ? IBV_PORT_ACTIVE : IBV_PORT_DOWN;
  a->max_mtu = IBV_MTU_4096;
  a->active_mtu = sv_g.cfg[c->nic].mtu;
  a->gid_tbl_len = sv_g.cfg[c->nic].link_ib ? 1 : 2;
  a->max_msg_sz = 1u << 31;
  a->pkey_tbl_len = 1;
  a->lid = sv_g.cfg[c->nic].link_ib ? (uint16_t)(1 + sv_g.slot * 16 + c->nic) : 0;
  a->active_width = 2; /* 4x */
  a->active_speed = 64; /* HDR: 4x 50 Gb/s = 200 Gb/s */
  a->phys_state = up ? 5 : 3;
  a->link_layer = sv_g.cfg[c->nic].link_ib ? IBV_LINK_LAYER_INFINIBAND : IBV_LINK_LAYER_ETHERNET;
  return 0;
}

SV_EXPORT int ibv_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid);
SV_EXPORT int ibv_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid) {
  sv_ctx *c = (sv_ctx *)ctx;
  int n = sv_g.cfg[c->nic].link_ib ? 1 : 2;
  if (port != 1 || index < 0 || index >= n)
    return EINVAL;
  return sv_gid_for(sv_g.slot, c->nic, index == 1, gid);
}

SV_EXPORT int _ibv_query_gid_ex(struct ibv_context *ctx, uint32_t port, uint32_t index,
                                struct ibv_gid_entry *e, uint32_t flags, size_t sz);
SV_EXPORT int _ibv_query_gid_ex(struct ibv_context *ctx, uint32_t port, uint32_t index,
                                struct ibv_gid_entry *e, uint32_t flags, size_t sz) {
  (void)flags;
  sv_ctx *c = (sv_ctx *)ctx;
  if (sz < sizeof *e)
    return EINVAL;
  int rc = ibv_query_gid(ctx, (uint8_t)port, (int)index, &e->gid);
  if (rc)
    return rc;
  e->gid_index = index;
  e->port_num = port;
  e->gid_type = sv_g.cfg[c->nic].link_ib ? IBV_GID_TYPE_IB
                : index == 1                ? IBV_GID_TYPE_ROCE_V2
                                            : IBV_GID_TYPE_ROCE_V1;
  e->ndev_ifindex = 0;
  return 0;
}

SV_EXPORT struct ibv_pd *ibv_alloc_pd(struct ibv_context *ctx);
SV_EXPORT struct ibv_pd *ibv_alloc_pd(struct ibv_context *ctx) {
  struct ibv_pd *pd = calloc(1, sizeof *pd);
  if (!pd)
    return NULL;
  pd->context = ctx;
  pd->handle = atomic_fetch_add(&sv_g.me->next_pd, 1) + 1;
  return pd;
}

SV_EXPORT int ibv_dealloc_pd(struct ibv_pd *pd);
SV_EXPORT int ibv_dealloc_pd(struct ibv_pd *pd) {
  free(pd);
  return 0;
}

/* An MR over [addr, +len) of this process that WRs address as
 * [iova, +len). */
static struct ibv_mr *mr_new(struct ibv_pd *pd, void *addr, size_t len, uint64_t iova,
                             int access, void *map, size_t map_len) {
  sv_ctx *c = (sv_ctx *)pd->context;
  if (len == 0 || len > sv_g.cfg[c->nic].max_mr_size) {
    errno = EINVAL;
    return NULL;
  }
  struct ibv_mr *mr = calloc(1, sizeof *mr);
  if (!mr)
    return NULL;
  pthread_mutex_lock(&tab_lock);
  int idx = -1;
  for (int i = 1; i < SV_MRS; i++)
    if (atomic_load(&sv_g.me->mr[i].live) == 0 && atomic_load(&sv_g.me->mr[i].users) == 0) {
      idx = i;
      break;
    }
  if (idx < 0) {
    pthread_mutex_unlock(&tab_lock);
    free(mr);
    errno = ENOMEM;
    return NULL;
  }
  sv_mr_ent *e = &sv_g.me->mr[idx];
  /* A fresh tag per registration: an old key never works again. */
  uint32_t tag = atomic_fetch_add(&sv_g.me->next_tag, 2654435761u) & 0xfffu;
  e->key = ((uint32_t)idx << 12) | tag;
  e->pd = pd->handle;
  e->access = (uint32_t)access;
  e->addr = (uintptr_t)addr;
  e->len = len;
  e->iova = iova;
  e->map = (uintptr_t)map;
  e->map_len = map_len;
  atomic_store(&e->live, 1);
  pthread_mutex_unlock(&tab_lock);
  mr->context = pd->context;
  mr->pd = pd;
  mr->addr = (void *)(uintptr_t)iova;
  mr->length = len;
  mr->handle = (uint32_t)idx;
  mr->lkey = mr->rkey = e->key;
  return mr;
}

SV_EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access);
SV_EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access) {
  return mr_new(pd, addr, len, (uintptr_t)addr, access, NULL, 0);
}

/* A dma-buf MR: [offset, +length) of the buffer behind fd, addressed by
 * WRs as [iova, +length).  The soft NIC reaches the pages through its own
 * mapping of the fd (as a NIC reaches them through the exporter's pages,
 * never through the registering process's virtual address). */
SV_EXPORT struct ibv_mr *ibv_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t offset, size_t length,
                                           uint64_t iova, int fd, int access);
SV_EXPORT struct ibv_mr *ibv_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t offset, size_t length,
                                           uint64_t iova, int fd, int access) {
  struct stat st;
  /* The fake CUDA driver's dma-buf of a range inside an allocation is the
   * allocation's memfd opened afresh at the range's offset (a memfd cannot
   * start mid-file): the buffer starts at the fd's file position. */
  off_t pos = fd >= 0 ? lseek(fd, 0, SEEK_CUR) : -1;
  if (pos > 0)
    offset += (uint64_t)pos;
  if (length == 0 || fd < 0 || fstat(fd, &st) ||
      (S_ISREG(st.st_mode) && (offset > (uint64_t)st.st_size ||
                               length > (uint64_t)st.st_size - offset))) {
    errno = EINVAL;
    return NULL;
  }
  uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), mo = offset & ~(pg - 1), delta = offset - mo;
  void *map = mmap(NULL, length + delta, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)mo);
  if (map == MAP_FAILED)
    return NULL;
  struct ibv_mr *mr = mr_new(pd, (uint8_t *)map + delta, length, iova, access, map,
                             length + delta);
  if (!mr) {
    int e = errno;
    munmap(map, length + delta);
    errno = e;
  }
  return mr;
}

SV_EXPORT int ibv_dereg_mr(struct ibv_mr *mr);
SV_EXPORT int ibv_dereg_mr(struct ibv_mr *mr) {
  sv_mr_ent *e = &sv_g.me->mr[mr->handle];
  atomic_store(&e->live, 2);
  /* Like a NIC: no access to the range once this returns.  Bounded, so a
   * peer killed in the middle of a copy cannot hang us. */
  for (int i = 0; i < 100000 && atomic_load(&e->users); i++)
    usleep(10);
  if (e->map_len)
    munmap((void *)(uintptr_t)e->map, e->map_len);
  e->map = e->map_len = 0;
  atomic_store(&e->live, 0);
  free(mr);
  return 0;
}

SV_EXPORT struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *ctx);
SV_EXPORT struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *ctx) {
  struct ibv_comp_channel *ch = calloc(1, sizeof *ch);
  int p[2];
  if (!ch || pipe2(p, O_CLOEXEC)) {
    free(ch);
    return NULL;
  }
  ch->context = ctx;
  ch->fd = p[0];
  ch->refcnt = p[1]; /* the write end, kept in the unused refcnt field */
  return ch;
}

SV_EXPORT int ibv_destroy_comp_channel(struct ibv_comp_channel *ch);
SV_EXPORT int ibv_destroy_comp_channel(struct ibv_comp_channel *ch) {
  close(ch->fd);
  close(ch->refcnt);
  free(ch);
  return 0;
}

SV_EXPORT struct ibv_cq *ibv_create_cq(struct ibv_context *ctx, int cqe, void *cq_ctx,
                                       struct ibv_comp_channel *ch, int vec);
SV_EXPORT struct ibv_cq *ibv_create_cq(struct ibv_context *ctx, int cqe, void *cq_ctx,
                                       struct ibv_comp_channel *ch, int vec) {
  (void)vec;
  if (cqe <= 0 || cqe > (1 << 20)) {
    errno = EINVAL;
    return NULL;
  }
  sv_cq *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->ring = calloc((size_t)cqe, sizeof *c->ring);
  if (!c->ring) {
    free(c);
    return NULL;
  }
  c->cap = (uint32_t)cqe;
  pthread_mutex_init(&c->lock, NULL);
  c->cq.context = ctx;
  c->cq.channel = ch;
  c->cq.cq_context = cq_ctx;
  c->cq.cqe = cqe;
  return &c->cq;
}

SV_EXPORT int ibv_destroy_cq(struct ibv_cq *cq);
SV_EXPORT int ibv_destroy_cq(struct ibv_cq *cq) {
  sv_cq *c = (sv_cq *)cq;
  pthread_mutex_destroy(&c->lock);
  free(c->ring);
  free(c);
  return 0;
}

SV_EXPORT int ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_ctx);
SV_EXPORT int ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_ctx) {
  struct ibv_cq *p;
  if (read(ch->fd, &p, sizeof p) != (ssize_t)sizeof p)
    return -1;
  *cq = p;
  *cq_ctx = p->cq_context;
  return 0;
}

SV_EXPORT void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int n);
SV_EXPORT void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int n) {
  (void)cq;
  (void)n;
}

SV_EXPORT struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *a);
SV_EXPORT struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *a) {
  sv_ctx *c = (sv_ctx *)pd->context;
  if (a->qp_type != IBV_QPT_RC || !a->send_cq || a->cap.max_send_wr == 0 ||
      a->cap.max_send_wr > 16384 || a->cap.max_send_sge > SV_MAX_SGE ||
      a->cap.max_recv_wr > SV_RQ) {
    errno = EINVAL;
    return NULL;
  }
  sv_qp *q = calloc(1, sizeof *q);
  if (!q)
    return NULL;
  q->sq = calloc(a->cap.max_send_wr, sizeof *q->sq);
  if (!q->sq) {
    free(q);
    return NULL;
  }
  pthread_mutex_lock(&tab_lock);
  int idx = -1;
  for (int i = 0; i < SV_QPS; i++)
    if (!sv_g.me->qp[i].used) {
      idx = i;
      break;
    }
  if (idx >= 0) {
    sv_g.me->qp[idx].used = 1;
    sv_g.me->qp[idx].pd = pd->handle;
    sv_g.me->qp[idx].nic = (uint32_t)c->nic;
    sv_g.me->qp[idx].access = 0;
    sv_g.me->qp[idx].peer_gen = ~0u;
    atomic_store(&sv_g.me->qp[idx].rq_head, 0);
    atomic_store(&sv_g.me->qp[idx].rq_tail, 0);
    atomic_store(&sv_g.me->qp[idx].rc_head, 0);
    atomic_store(&sv_g.me->qp[idx].rc_tail, 0);
    atomic_store(&sv_g.me->qp[idx].state, IBV_QPS_RESET);
  }
  pthread_mutex_unlock(&tab_lock);
  if (idx < 0) {
    free(q->sq);
    free(q);
    errno = ENOMEM;
    return NULL;
  }
  q->idx = idx;
  q->nic = c->nic;
  q->cap = a->cap.max_send_wr;
  q->qp.context = pd->context;
  q->qp.qp_context = a->qp_context;
  q->qp.pd = pd;
  q->qp.send_cq = a->send_cq;
  q->qp.recv_cq = a->recv_cq;
  q->qp.qp_num = (uint32_t)idx + 1;
  q->qp.state = IBV_QPS_RESET;
  q->qp.qp_type = IBV_QPT_RC;
  pthread_mutex_lock(&c->lock);
  q->next = c->qps;
  c->qps = q;
  pthread_mutex_unlock(&c->lock);
  return &q->qp;
}

SV_EXPORT int ibv_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *a, int mask);
SV_EXPORT int ibv_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *a, int mask) {
  sv_qp *q = (sv_qp *)ibqp;
  sv_ctx *c = (sv_ctx *)ibqp->context;
  if (!(mask & IBV_QP_STATE))
    return 0;
  enum ibv_qp_state cur = q->qp.state, to = a->qp_state;
  int ok = to == IBV_QPS_RESET || to == IBV_QPS_ERR ||
           (cur == IBV_QPS_RESET && to == IBV_QPS_INIT) ||
           (cur == IBV_QPS_INIT && to == IBV_QPS_INIT) ||
           (cur == IBV_QPS_INIT && to == IBV_QPS_RTR) ||
           (cur == IBV_QPS_RTR && to == IBV_QPS_RTS);
  if (!ok)
    return EINVAL;
  sv_qp_ent *e = &sv_g.me->qp[q->idx];
  if (to == IBV_QPS_INIT) {
    if ((mask & IBV_QP_PORT) && a->port_num != 1)
      return EINVAL;
    if (mask & IBV_QP_ACCESS_FLAGS)
      e->access = a->qp_access_flags;
  }
  if (to == IBV_QPS_RTR) {
    if (!(mask & IBV_QP_AV) || !(mask & IBV_QP_DEST_QPN) || !(mask & IBV_QP_PATH_MTU))
      return EINVAL;
    int slot, nic;
    uint32_t gen = 0;
    if (a->ah_attr.is_global) {
      if (sv_gid_decode(&a->ah_attr.grh.dgid, &slot, &nic, &gen))
        return EINVAL;
    } else {
      if (a->ah_attr.dlid == 0)
        return EINVAL;
      slot = (a->ah_attr.dlid - 1) / 16;
      nic = (a->ah_attr.dlid - 1) % 16;
      if (slot >= SV_SLOTS || nic >= SV_NICS)
        return EINVAL;
    }
    if (a->path_mtu > sv_g.cfg[c->nic].mtu)
      return EINVAL; /* a NIC refuses an MTU above its port's */
    q->peer_slot = slot;
    q->peer_pid = atomic_load(&sv_g.fab->slot[slot].pid);
    q->peer_qpn = a->dest_qp_num;
    q->path_mtu = (uint32_t)a->path_mtu;
    q->global = a->ah_attr.is_global;
    q->peer_gen = gen;
    q->my_gen = atomic_load(&sv_g.me->nic[c->nic].gid_gen);
    sv_g.me->qp[q->idx].peer_gen = q->global ? gen : ~0u;
  }
  pthread_mutex_lock(&c->lock);
  if (to == IBV_QPS_RESET) {
    q->head = q->n = 0; /* a reset drops queued WQEs without completions */
    atomic_store(&e->rq_head, 0);
    atomic_store(&e->rq_tail, 0);
    atomic_store(&e->rc_head, 0);
    atomic_store(&e->rc_tail, 0);
  }
  q->qp.state = to;
  atomic_store(&e->state, (uint32_t)to);
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  return 0;
}

SV_EXPORT int ibv_destroy_qp(struct ibv_qp *ibqp);
SV_EXPORT int ibv_destroy_qp(struct ibv_qp *ibqp) {
  sv_qp *q = (sv_qp *)ibqp;
  sv_ctx *c = (sv_ctx *)ibqp->context;
  pthread_mutex_lock(&c->lock);
  for (sv_qp **pp = &c->qps; *pp; pp = &(*pp)->next)
    if (*pp == q) {
      *pp = q->next;
      break;
    }
  while (c->busy == q) {
    pthread_mutex_unlock(&c->lock);
    usleep(50);
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  pthread_mutex_lock(&tab_lock);
  atomic_store(&sv_g.me->qp[q->idx].state, IBV_QPS_RESET);
  sv_g.me->qp[q->idx].used = 0;
  pthread_mutex_unlock(&tab_lock);
  free(q->sq);
  free(q);
  return 0;
}

SV_EXPORT int ibv_get_async_event(struct ibv_context *ctx, struct ibv_async_event *ev);
SV_EXPORT int ibv_get_async_event(struct ibv_context *ctx, struct ibv_async_event *ev) {
  if (read(ctx->async_fd, ev, sizeof *ev) != (ssize_t)sizeof *ev)
    return -1;
  return 0;
}

SV_EXPORT void ibv_ack_async_event(struct ibv_async_event *ev);
SV_EXPORT void ibv_ack_async_event(struct ibv_async_event *ev) { (void)ev; }

SV_EXPORT const char *ibv_wc_status_str(enum ibv_wc_status st);
SV_EXPORT const char *ibv_wc_status_str(enum ibv_wc_status st) {
  switch (st) {
  case IBV_WC_SUCCESS: return "success";
  case IBV_WC_LOC_PROT_ERR: return "local protection error";
  case IBV_WC_WR_FLUSH_ERR: return "Work Request Flushed Error";
  case IBV_WC_REM_ACCESS_ERR: return "remote access error";
  case IBV_WC_RETRY_EXC_ERR: return "transport retry counter exceeded";
  case IBV_WC_GENERAL_ERR: return "general error";
  case IBV_WC_RNR_RETRY_EXC_ERR: return "RNR retry counter exceeded";
  default: return "unknown";
  }
}

/* ---- test controls (softverbs.h) ---- */

static int nic_index(const char *name) {
  if (!ready() || !name)
    return -1;
  for (int i = 0; i < sv_g.nnic; i++)
    if (!strcmp(sv_g.cfg[i].name, name))
      return i;
  return -1;
}

SV_EXPORT int softverbs_fault(const char *nic, int fault, uint32_t arg);
SV_EXPORT int softverbs_fault(const char *nic, int fault, uint32_t arg) {
  int i = nic_index(nic);
  if (i < 0)
    return -1;
  sv_nic_ent *n = &sv_g.me->nic[i];
  switch (fault) {
  case SOFTVERBS_NIC_DEAD: atomic_store(&n->dead, 1); break;
  case SOFTVERBS_NIC_REVIVE: atomic_store(&n->dead, 0); break;
  case SOFTVERBS_PORT_DOWN: atomic_store(&n->port_down, 1); break;
  case SOFTVERBS_PORT_UP: atomic_store(&n->port_down, 0); break;
  case SOFTVERBS_WC_ERR: atomic_store(&n->wc_err, arg); break;
  case SOFTVERBS_QP_ERR: atomic_fetch_add(&n->qp_err, 1); break;
  case SOFTVERBS_STALL: atomic_store(&n->stall, 1); break;
  case SOFTVERBS_UNSTALL: atomic_store(&n->stall, 0); break;
  case SOFTVERBS_GID_CHANGE: atomic_fetch_add(&n->gid_gen, 1); break;
  default: return -1;
  }
  return 0;
}

SV_EXPORT uint64_t softverbs_nic_bytes(const char *nic);
SV_EXPORT uint64_t softverbs_nic_bytes(const char *nic) {
  int i = nic_index(nic);
  return i < 0 ? 0 : atomic_load(&sv_g.me->nic[i].bytes);
}

SV_EXPORT uint32_t softverbs_nic_qps(const char *nic);
SV_EXPORT uint32_t softverbs_nic_qps(const char *nic) {
  int i = nic_index(nic);
  uint32_t n = 0;
  if (i < 0)
    return 0;
  pthread_mutex_lock(&tab_lock);
  for (int k = 0; k < SV_QPS; k++)
    n += sv_g.me->qp[k].used && sv_g.me->qp[k].nic == (uint32_t)i;
  pthread_mutex_unlock(&tab_lock);
  return n;
}

SV_EXPORT uint64_t softverbs_posts(void);
SV_EXPORT uint64_t softverbs_posts(void) { return atomic_load(&sv_g.posts); }

SV_EXPORT uint64_t softverbs_engine_cpu_ns(void);
SV_EXPORT uint64_t softverbs_engine_cpu_ns(void) { return atomic_load(&sv_g.engine_cpu_ns); }

SV_EXPORT uint64_t softverbs_cq_overruns(void);
SV_EXPORT uint64_t softverbs_cq_overruns(void) {
  return ready() ? atomic_load(&sv_g.me->cq_overruns) : 0;
}
