/* softverbs.h - the test-only controls of libsoftverbs (fault injection and
 * counters).  Tests dlopen libsoftverbs.so (the same copy the plugin loads)
 * and look these up with dlsym; the verbs entry points are in verbs.h. */
#ifndef SOFTVERBS_H
#define SOFTVERBS_H

#include <stdint.h>

enum softverbs_fault {
  SOFTVERBS_NIC_DEAD = 1, /* the NIC dies: WRs fail, IBV_EVENT_DEVICE_FATAL */
  SOFTVERBS_PORT_DOWN,    /* link down: WRs fail, IBV_EVENT_PORT_ERR */
  SOFTVERBS_PORT_UP,      /* link back: IBV_EVENT_PORT_ACTIVE */
  SOFTVERBS_WC_ERR,       /* the next `arg` WRs complete in error */
  SOFTVERBS_QP_ERR,       /* every QP of the NIC forced to ERR, QP_FATAL */
  SOFTVERBS_NIC_REVIVE,   /* undo NIC_DEAD */
  SOFTVERBS_STALL,        /* the NIC stops executing WRs (lost packets):
                             only a QP moved to ERR gets its WRs back */
  SOFTVERBS_UNSTALL,      /* undo STALL */
  SOFTVERBS_GID_CHANGE,   /* the port's GIDs change (new generation):
                             IBV_EVENT_GID_CHANGE; QPs connected with an
                             old GID (either end) lose their packets */
};

/* Injects a fault into NIC `nic` of this process.  0, or -1 (unknown NIC,
 * library not initialized). */
typedef int (*softverbs_fault_fn)(const char *nic, int fault, uint32_t arg);
/* Bytes moved by NIC `nic` of this process as initiator. */
typedef uint64_t (*softverbs_nic_bytes_fn)(const char *nic);
/* QPs that exist on NIC `nic` of this process (created, not destroyed). */
typedef uint32_t (*softverbs_nic_qps_fn)(const char *nic);
/* ibv_post_send calls in this process (each one a doorbell). */
typedef uint64_t (*softverbs_posts_fn)(void);
/* CPU time spent by this process's soft NIC engines (to be subtracted from
 * the process's CPU time when measuring the plugin's own cost). */
typedef uint64_t (*softverbs_engine_cpu_fn)(void);
/* Times a CQ overran in this process (a plugin bug if nonzero). */
typedef uint64_t (*softverbs_cq_overruns_fn)(void);

#endif
