/* rdma_verbs.c - see rdma_verbs.h. */
#include "rdma_verbs.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mooncake/errors.h"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Looks `name` up; a missing mandatory symbol fails the load. */
#define SYM(field, name, mandatory)                                            \
  do {                                                                         \
    void *p_ = dlsym(dl, name);                                                \
    if (!p_ && (mandatory)) {                                                  \
      snprintf(err, errlen, "%s: missing symbol %s", path, name);              \
      return MC_ENODEV;                                                        \
    }                                                                          \
    memcpy(&v->field, &p_, sizeof p_);                                         \
  } while (0)

int rd_verbs_load(rd_verbs *v, const char *path, char *err, size_t errlen) {
  memset(v, 0, sizeof *v);
  pthread_mutex_lock(&load_lock);
  /* RTLD_NODELETE: the library stays mapped for the process's life, as
   * libibverbs expects (its providers register themselves once). */
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  pthread_mutex_unlock(&load_lock);
  if (!dl) {
    const char *e = dlerror();
    snprintf(err, errlen, "cannot load %s: %s", path, e ? e : "unknown error");
    return MC_ENODEV;
  }
  v->dl = dl;
  SYM(get_device_list, "ibv_get_device_list", 1);
  SYM(free_device_list, "ibv_free_device_list", 1);
  SYM(get_device_name, "ibv_get_device_name", 1);
  SYM(open_device, "ibv_open_device", 1);
  SYM(close_device, "ibv_close_device", 1);
  SYM(query_device, "ibv_query_device", 1);
  SYM(query_port, "ibv_query_port", 1);
  SYM(query_gid, "ibv_query_gid", 1);
  SYM(query_gid_ex, "_ibv_query_gid_ex", 0);
  SYM(alloc_pd, "ibv_alloc_pd", 1);
  SYM(dealloc_pd, "ibv_dealloc_pd", 1);
  SYM(reg_mr, "ibv_reg_mr", 1);
  SYM(dereg_mr, "ibv_dereg_mr", 1);
  SYM(reg_dmabuf_mr, "ibv_reg_dmabuf_mr", 0);
  SYM(create_comp_channel, "ibv_create_comp_channel", 1);
  SYM(destroy_comp_channel, "ibv_destroy_comp_channel", 1);
  SYM(create_cq, "ibv_create_cq", 1);
  SYM(destroy_cq, "ibv_destroy_cq", 1);
  SYM(get_cq_event, "ibv_get_cq_event", 1);
  SYM(ack_cq_events, "ibv_ack_cq_events", 1);
  SYM(create_qp, "ibv_create_qp", 1);
  SYM(modify_qp, "ibv_modify_qp", 1);
  SYM(destroy_qp, "ibv_destroy_qp", 1);
  SYM(get_async_event, "ibv_get_async_event", 1);
  SYM(ack_async_event, "ibv_ack_async_event", 1);
  return 0;
}
