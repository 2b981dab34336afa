/* rdma_verbs.h - libibverbs reached through dlopen and a table of the entry
 * points this plugin calls, so the plugin builds with the headers only,
 * loads on hosts without rdma-core and can say which library is missing.
 * The header's inline functions (ibv_post_send, ibv_poll_cq,
 * ibv_req_notify_cq) go through the context's ops table and need no
 * symbol; everything else is called through rd_verbs, never by name. */
#ifndef MC_RDMA_VERBS_H
#define MC_RDMA_VERBS_H

#include <infiniband/verbs.h>
#include <stddef.h>

typedef struct rd_verbs {
  void *dl;
  struct ibv_device **(*get_device_list)(int *n);
  void (*free_device_list)(struct ibv_device **l);
  const char *(*get_device_name)(struct ibv_device *d);
  struct ibv_context *(*open_device)(struct ibv_device *d);
  int (*close_device)(struct ibv_context *c);
  int (*query_device)(struct ibv_context *c, struct ibv_device_attr *a);
  int (*query_port)(struct ibv_context *c, uint8_t port, struct _compat_ibv_port_attr *a);
  int (*query_gid)(struct ibv_context *c, uint8_t port, int index, union ibv_gid *gid);
  /* Optional (rdma-core >= 32): GID type without sysfs. */
  int (*query_gid_ex)(struct ibv_context *c, uint32_t port, uint32_t index,
                      struct ibv_gid_entry *e, uint32_t flags, size_t sz);
  struct ibv_pd *(*alloc_pd)(struct ibv_context *c);
  int (*dealloc_pd)(struct ibv_pd *pd);
  struct ibv_mr *(*reg_mr)(struct ibv_pd *pd, void *addr, size_t len, int access);
  int (*dereg_mr)(struct ibv_mr *mr);
  /* Optional (rdma-core >= 34): device memory through a dma-buf fd. */
  struct ibv_mr *(*reg_dmabuf_mr)(struct ibv_pd *pd, uint64_t offset, size_t len, uint64_t iova,
                                  int fd, int access);
  struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *c);
  int (*destroy_comp_channel)(struct ibv_comp_channel *ch);
  struct ibv_cq *(*create_cq)(struct ibv_context *c, int cqe, void *cq_ctx,
                              struct ibv_comp_channel *ch, int vec);
  int (*destroy_cq)(struct ibv_cq *cq);
  int (*get_cq_event)(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_ctx);
  void (*ack_cq_events)(struct ibv_cq *cq, unsigned int n);
  struct ibv_qp *(*create_qp)(struct ibv_pd *pd, struct ibv_qp_init_attr *a);
  int (*modify_qp)(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask);
  int (*destroy_qp)(struct ibv_qp *qp);
  int (*get_async_event)(struct ibv_context *c, struct ibv_async_event *ev);
  void (*ack_async_event)(struct ibv_async_event *ev);
} rd_verbs;

/* Fills *v from the library at `path` (dlopen'ed once per process and kept:
 * libibverbs does not support being unloaded).  0, or MC_ENODEV with a
 * one-line reason naming the library in err. */
int rd_verbs_load(rd_verbs *v, const char *path, char *err, size_t errlen);

#endif
