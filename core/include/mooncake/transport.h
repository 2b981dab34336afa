/* mooncake/transport.h - the transport plugin ABI, version 1.3.
 *
 * This header is the whole contract between libmooncake (the "core") and a
 * transport plugin.  A plugin includes this header (and errors.h) only, never
 * links libmooncake, and exports exactly one symbol per ABI major it
 * implements:
 *
 *     const mc_transport_ops *mc_transport_plugin_v1(void);
 *
 * The entry point returns a pointer to the plugin's own `static const` table.
 * It must be cheap and free of side effects: no threads, no vendor library
 * loaded, no device opened.  Tools (mc-info) call it on hosts without the
 * hardware.  Everything expensive happens in init().
 *
 * Versioning.  Every table starts with {abi_major, abi_minor, struct_size}.
 * A minor version only appends members at the end; the core copies
 * min(struct_size, sizeof) bytes into a zeroed table, so members a plugin
 * does not know read as NULL/0.  A breaking change introduces
 * mc_transport_plugin_v2 and the core adapts older tables, so old plugins keep
 * loading.  The core refuses (MC_EABI) a table whose major differs from the
 * entry point's, whose struct_size is smaller than MC_TRANSPORT_OPS_V1_MIN_SIZE,
 * whose name differs from the file name (mc-transport-<name>.so) or whose
 * mandatory members are NULL.
 *
 * Ownership.  No memory crosses the .so boundary: every output buffer is the
 * caller's, with an in/out length; MC_ENOSPC reports the size needed.  Opaque
 * handles (ctx, mem, ep, rmem) belong to the plugin and are only passed back
 * to it.
 *
 * Blobs.  The endpoint descriptor (local_desc) and per-buffer remote keys
 * (register_mem) are opaque to the core, published in the segment descriptor
 * and travel over the network to peers, whose plugin parses them in connect()
 * and import_mem().  They must carry the plugin's own format version and be
 * parsed defensively: they come from untrusted peers.  The core caps them at
 * MC_DESC_MAX and MC_RKEY_MAX bytes.
 *
 * Threads.  Control calls (init, fini, query_rails, local_desc, register_mem,
 * deregister_mem, connect, disconnect, import_mem, release_mem, send_notify)
 * are serialized per ctx by the core.  submit() and progress() are called
 * from the core's submitting threads and its progress worker; they may run
 * concurrently with each other and with control calls, but concurrently with
 * another submit() on the same ctx only when the plugin sets MC_CAP_MT_SUBMIT
 * (otherwise the core serializes submit calls).  submit() never blocks.
 *
 * Completions.  Every slice accepted by submit() is completed exactly once,
 * through mc_host_api.complete, whatever happens (success, error, cancel,
 * peer death, fini).  complete() may be called from a plugin thread, from
 * progress(), or from inside submit(); the core never calls back into the
 * plugin from it, so the plugin may hold its own locks while calling it.
 *
 * Errors.  Every int-returning member returns 0 or a negative MC_E* code.  A
 * plugin that cannot run on this host (no device, vendor library missing)
 * fails init() with MC_ENODEV or MC_ENOTSUP after logging one line saying
 * why.  The engine then fails to start if the configuration named that
 * transport, unless it marked it optional (or asked for "auto").
 *
 * The duties this header leaves implicit (target-side access checks,
 * revocation, what fini and disconnect release, ...) are spelled out in the
 * plugin author's guide, docs/plugin-guide.md, installed under
 * share/doc/mooncake/.
 *
 * History (every minor only appends; see "Versioning"):
 *   1.0  the first version.
 *   1.1  mc_param_info gains min and max (the range of an INT or SIZE
 *        key); mc_transport_ops gains param_info_size, the stride of the
 *        plugin's params array, so the core reads a 1.0 plugin's shorter
 *        entries correctly; mc_host_api gains config_get_size,
 *        config_get_int and config_get_bool.
 *   1.2  the control channel: mc_host_api gains ctrl_call and
 *        mc_transport_ops gains ctrl_handle, a request/reply exchange
 *        between the same transport in two engines, carried by the core
 *        over the engine's authenticated handshake listener (queue-pair
 *        numbers and similar per-connection setup).
 *   1.3  device memory and files: mc_transport_ops gains query_mem (a
 *        plugin classifies memory registered without a location, e.g. a
 *        CUDA pointer); mc_mem_desc gains path, file_offset and flags for
 *        MC_MEM_FILE ranges (mc_register_file).
 */
#ifndef MOONCAKE_TRANSPORT_H
#define MOONCAKE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MC_TRANSPORT_ABI_MAJOR 1
#define MC_TRANSPORT_ABI_MINOR 3

/* Name of the entry symbol for ABI major 1. */
#define MC_TRANSPORT_ENTRY_V1 "mc_transport_plugin_v1"

/* Size caps the core enforces on blobs and names. */
#define MC_DESC_MAX 4096       /* endpoint descriptor returned by local_desc */
#define MC_RKEY_MAX 256        /* remote key returned by register_mem */
#define MC_NOTIFY_MAX 4096     /* notification payload */
#define MC_NAME_MAX 256        /* segment names, incl. the terminating NUL */
#define MC_RAIL_NAME_MAX 64    /* rail names, incl. NUL */
#define MC_CTRL_MAX 4096       /* control channel request or reply (1.2) */

/* Memory kinds (bitmask).  A registered buffer has exactly one kind. */
enum mc_mem_kind {
  MC_MEM_CPU = 1u << 0,  /* host DRAM, CXL memory */
  MC_MEM_CUDA = 1u << 1, /* NVIDIA device memory */
  MC_MEM_HIP = 1u << 2,  /* AMD device memory */
  MC_MEM_NPU = 1u << 3,  /* Ascend device memory */
  MC_MEM_FILE = 1u << 4, /* file or block device range (NVMe-oF) */
};

/* Capability flags (bitmask) in mc_transport_ops.caps. */
enum mc_transport_cap {
  MC_CAP_READ = 1u << 0,        /* one-sided read of remote memory */
  MC_CAP_WRITE = 1u << 1,       /* one-sided write into remote memory */
  MC_CAP_NOTIFY = 1u << 2,      /* send_notify is implemented */
  MC_CAP_INTRA_NODE = 1u << 3,  /* can reach peers on the same host */
  MC_CAP_INTER_NODE = 1u << 4,  /* can reach peers on other hosts */
  MC_CAP_CANCEL = 1u << 5,      /* cancel() does more than nothing */
  MC_CAP_MT_SUBMIT = 1u << 6,   /* submit may run concurrently on one ctx */
  MC_CAP_OWN_THREADS = 1u << 7, /* completes without progress() */
};

/* Transfer direction of a slice, seen from the initiator. */
enum mc_op {
  MC_OP_READ = 0,  /* remote -> local */
  MC_OP_WRITE = 1, /* local -> remote */
};

/* Log levels for mc_host_api.log; same scale as MC_LOG_LEVEL. */
enum mc_log_level {
  MC_LOG_ERROR = 0,
  MC_LOG_WARN = 1,
  MC_LOG_INFO = 2,
  MC_LOG_DEBUG = 3,
  MC_LOG_TRACE = 4,
};

/* Types of documented per-transport YAML keys. */
enum mc_param_type {
  MC_PARAM_END = 0, /* terminates a params array */
  MC_PARAM_BOOL,
  MC_PARAM_INT,
  MC_PARAM_SIZE, /* integer with optional K/M/G suffix */
  MC_PARAM_STRING,
};

/* One documented YAML key under transports.<name> (also settable as
 * MC_TRANSPORT_<NAME>_<KEY>).  A plugin's `params` array ends with an entry
 * whose type is MC_PARAM_END.  The core rejects keys not listed here (with
 * file and line, or the variable's name) and checks every value's type and
 * range before init(), so config_get() only ever returns well-typed text
 * and the typed getters never fail on a value.
 *
 * Since 1.1 the entries are read with the stride the plugin declares in
 * mc_transport_ops.param_info_size; a 1.0 plugin's entries (without min and
 * max) are read as MC_PARAM_INFO_V1_SIZE bytes each. */
typedef struct mc_param_info {
  uint32_t type;            /* enum mc_param_type */
  const char *name;         /* key, [a-z0-9_]+, e.g. "connections" */
  const char *default_text; /* default as YAML text; the typed getters
                               return it when the key is unset */
  const char *help;         /* one line */
  /* ---- 1.1 ---- */
  int64_t min, max; /* INT and SIZE: the accepted range, inclusive; both 0
                       means no range beyond the type's (SIZE: >= 0) */
} mc_param_info;

/* Size of a 1.0 mc_param_info entry. */
#define MC_PARAM_INFO_V1_SIZE offsetof(mc_param_info, min)

/* A rail: one independent path out of this host (a NIC port, a link, a
 * connection group).  Filled by query_rails. */
typedef struct mc_rail_info {
  char name[MC_RAIL_NAME_MAX]; /* stable, unique within the transport: "mlx5_0", "conn0" */
  int32_t numa_node;           /* -1 when unknown */
  uint32_t pci_bus_id;         /* domain<<16|bus<<8|dev<<3|fn, 0 when none */
  uint64_t bandwidth_mbps;     /* nominal, 0 when unknown */
  uint32_t flags;              /* reserved, 0 */
} mc_rail_info;

/* Flags of an MC_MEM_FILE range (mc_mem_desc.flags, 1.3). */
enum mc_mem_flag {
  MC_MEM_F_READ_ONLY = 1u << 0, /* the range may be read, never written */
};

/* A buffer to register (register_mem).  The core guarantees len > 0 and that
 * [addr, addr+len) stays valid until deregister_mem returns.
 *
 * MC_MEM_FILE (1.3): the buffer is the byte range [file_offset, +len) of
 * the file or block device `path`.  addr is then an address the core
 * reserved for the range (never accessible memory: never dereference it);
 * byte addr+i of the buffer is byte file_offset+i of the file, in slices
 * on either side.  Read path, file_offset and flags only when the host
 * table given to init has abi_minor >= 3; an older core never registers
 * MC_MEM_FILE. */
typedef struct mc_mem_desc {
  uint64_t addr;
  uint64_t len;
  uint32_t kind;        /* one enum mc_mem_kind bit */
  int32_t device;       /* NUMA node for CPU, device ordinal for GPU/NPU, -1 unknown */
  const char *location; /* "cpu:0", "cuda:3", "file"; valid during the call only */
  /* ---- 1.3 ---- */
  const char *path;     /* MC_MEM_FILE: file or block device; NULL otherwise.
                           Valid during the call only. */
  uint64_t file_offset; /* MC_MEM_FILE: file offset of the byte at addr */
  uint32_t flags;       /* MC_MEM_FILE: enum mc_mem_flag bits; 0 otherwise */
} mc_mem_desc;

/* Arguments of init(); valid during the call only. */
typedef struct mc_init_args {
  uint32_t struct_size;     /* sizeof(mc_init_args) as the core knows it */
  const char *segment_name; /* this engine's segment name ("host:port") */
  const char *listen_host;  /* address to bind listeners to ("0.0.0.0", "127.0.0.1") */
  const char *host_id;      /* identity of this host (boot id) for same-host checks */
} mc_init_args;

/* One slice of a request, built by the core.  The plugin copies what it
 * needs during submit(); the array is not valid after submit returns. */
typedef struct mc_slice {
  uint64_t token;       /* opaque core id, echoed in complete() */
  uint32_t op;          /* enum mc_op */
  uint32_t rail;        /* index into the rails of query_rails to use */
  void *local_mem;      /* register_mem handle covering [local_addr, +len) */
  uint64_t local_addr;  /* initiator address */
  void *remote_mem;     /* import_mem handle covering [remote_addr, +len) */
  uint64_t remote_addr; /* target address, inside the imported range */
  uint64_t len;         /* > 0 */
} mc_slice;

/* Services the core hands to a plugin in init().  The table and `host` stay
 * valid until fini() returns.  Every function is thread-safe. */
typedef struct mc_host_api {
  uint32_t abi_major, abi_minor, struct_size;
  void *host; /* pass back as first argument */

  /* Writes one log line (no trailing newline needed) tagged with the plugin's
   * name.  Cheap to call; check log_enabled first on hot paths. */
  void (*log)(void *host, int level, const char *fmt, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 3, 4)))
#endif
      ;
  /* Nonzero when `level` would be written. */
  int (*log_enabled)(void *host, int level);

  /* Looks up `key` in this plugin's own YAML subtree (transports.<name>),
   * env overrides applied.  On success *val points to the value text, valid
   * until fini.  Returns MC_ENOENT when unset (use the default). */
  int (*config_get)(void *host, const char *key, const char **val);

  /* Reports the completion of an accepted slice: status is 0 or MC_E*;
   * bytes is how many bytes were moved (len on success); vendor_err is the
   * plugin's native code or 0.  Exactly once per accepted slice.  Never
   * re-enters the plugin. */
  void (*complete)(void *host, uint64_t token, int status, uint64_t bytes,
                   int32_t vendor_err);

  /* Delivers a notification received from peer segment `peer` (the name the
   * initiator announced, verified by the plugin's handshake).  msg is copied
   * before return.  Target side of send_notify. */
  void (*notify_recv)(void *host, const char *peer, const void *msg, size_t len);

  /* ---- 1.1: present when abi_minor >= 1 (or struct_size covers them) ----
   * Typed reads of this plugin's keys.  The value is the configured one
   * (YAML, then MC_TRANSPORT_<NAME>_<KEY>), else the param's default_text.
   * The core validated both against the param's type and range before
   * init(), so these fail only on the caller's mistakes: MC_EINVAL when
   * `key` is not one of the plugin's params or has another type, MC_ENOENT
   * when it is unset and has no default_text. */

  /* A MC_PARAM_SIZE key, in bytes ("64K" -> 65536). */
  int (*config_get_size)(void *host, const char *key, uint64_t *out);
  /* A MC_PARAM_INT key. */
  int (*config_get_int)(void *host, const char *key, int64_t *out);
  /* A MC_PARAM_BOOL key: 1 or 0. */
  int (*config_get_bool)(void *host, const char *key, int *out);

  /* ---- 1.2: present when abi_minor >= 2 (check with MC_HOST_HAS) ----
   * The control channel.  Sends `req` (1..MC_CTRL_MAX bytes) to the same
   * transport (same name) in the engine serving peer segment `peer`, whose
   * ctrl_handle answers it, and waits up to timeout_ms for the reply.  The
   * core carries it over the engines' handshake listeners, authenticated
   * with the cluster token like every handshake request, so the target
   * knows which segment asked; it works with every metadata backend.
   * resp and resp_len: the caller's buffer and its capacity on entry, the
   * reply's length on return (MC_ENOSPC, *resp_len = size needed, when the
   * reply does not fit).  timeout_ms 0: the engine's own timeout.  A peer
   * listener that answers BUSY is retried with back-off within the
   * timeout.  Returns 0, the negative MC_E* the peer's ctrl_handle
   * returned, or: MC_ENOENT (no such segment), MC_EPEER (its engine
   * unreachable or gone), MC_ENOTSUP (that engine has no such transport,
   * it has no ctrl_handle, or the engine predates 1.2), MC_EACCES (token
   * refused), MC_ETIMEDOUT, MC_EINVAL (req_len 0 or above MC_CTRL_MAX, a
   * NULL argument); a failure also sets the calling thread's
   * mc_last_error() text.  Blocking: call it from connect() or a plugin
   * thread, never from submit(), progress() or while holding a lock that
   * ctrl_handle takes.  docs/plugin-guide.md, section 11, has the
   * details. */
  int (*ctrl_call)(void *host, const char *peer, const void *req,
                   size_t req_len, void *resp, size_t *resp_len,
                   uint32_t timeout_ms);
} mc_host_api;

/* True when host table h (handed to init) has member m: a plugin built
 * against a newer header checks this before calling an appended member,
 * e.g. MC_HOST_HAS(host, config_get_size). */
#define MC_HOST_HAS(h, m)                                                      \
  ((h)->struct_size >= offsetof(mc_host_api, m) + sizeof((h)->m) && (h)->m)

/* The transport operations table.  "Mandatory" members must be non-NULL. */
typedef struct mc_transport_ops {
  uint32_t abi_major;   /* MC_TRANSPORT_ABI_MAJOR the plugin was built for */
  uint32_t abi_minor;   /* MC_TRANSPORT_ABI_MINOR the plugin was built for */
  uint32_t struct_size; /* sizeof(mc_transport_ops) the plugin was built with */

  const char *name;    /* mandatory; equals <name> in mc-transport-<name>.so */
  const char *version; /* mandatory; the plugin's own version string */
  uint64_t caps;       /* enum mc_transport_cap bits */
  uint32_t local_mem_kinds;  /* kinds it can move from/to on the initiator */
  uint32_t remote_mem_kinds; /* kinds it can reach on the target */
  const mc_param_info *params; /* documented YAML keys; NULL = none accepted */

  /* mandatory.  Creates a context: opens devices, starts workers, binds
   * listeners.  Called once per engine, from the engine's creating thread.
   * MC_ENODEV/MC_ENOTSUP (after a log line) when the host cannot run it. */
  int (*init)(const mc_host_api *host, const mc_init_args *args, void **ctx);

  /* mandatory.  Destroys ctx: fails every pending slice (MC_ECANCELED)
   * through complete(), joins every plugin thread, frees everything.  No
   * callback is made after it returns.  Endpoints, imports and registrations
   * not yet released are released by fini. */
  int (*fini)(void *ctx);

  /* mandatory.  Lists rails: *n is the capacity of `out` on entry and the
   * number of rails on return (MC_ENOSPC if larger than the capacity).  At
   * least one rail.  The list does not change while ctx lives. */
  int (*query_rails)(void *ctx, mc_rail_info *out, uint32_t *n);

  /* mandatory.  Writes the endpoint descriptor peers pass to connect()
   * (address, port, GIDs...) into buf; *len in/out, MC_ENOSPC with the size
   * needed.  Stable while ctx lives. */
  int (*local_desc)(void *ctx, void *buf, size_t *len);

  /* mandatory.  Registers [desc->addr, +desc->len) for remote access and
   * local use.  Writes the remote key peers pass to import_mem into rkey
   * (*rkey_len in/out, MC_ENOSPC).  *mem is the local handle used in slices.
   * MC_ENOTSUP when the plugin cannot serve desc->kind. */
  int (*register_mem)(void *ctx, const mc_mem_desc *desc, void **mem,
                      void *rkey, size_t *rkey_len);

  /* mandatory.  Revokes a registration: on return no peer can reach the
   * range any more and no plugin thread touches it.  The core only calls it
   * when no local slice using `mem` is in flight. */
  int (*deregister_mem)(void *ctx, void *mem);

  /* mandatory.  Prepares an endpoint to peer segment `peer` whose descriptor
   * blob is (desc, len).  May be lazy (actual connections made on first
   * submit).  MC_EPROTO for a malformed blob, MC_EPEER if unreachable. */
  int (*connect)(void *ctx, const char *peer, const void *desc, size_t len,
                 void **ep);

  /* mandatory.  Releases ep; slices still in flight on it complete with
   * MC_ECANCELED or their real status before it returns. */
  int (*disconnect)(void *ctx, void *ep);

  /* mandatory.  Imports the peer's buffer [base, +len) with its remote key,
   * returning a handle used as mc_slice.remote_mem.  MC_EPROTO for a
   * malformed key.  MC_ENODEV: this host cannot reach that buffer through
   * this transport at all (a file on another host); the core then carries
   * requests for it with the next candidate transport and does not ask
   * again for that descriptor. */
  int (*import_mem)(void *ctx, void *ep, uint64_t base, uint64_t len,
                    const void *rkey, size_t rkey_len, void **rmem);

  /* mandatory.  Releases an import; no slice using it is in flight. */
  int (*release_mem)(void *ctx, void *rmem);

  /* mandatory.  Queues n slices on ep.  *accepted is set to how many (a
   * prefix of the array) were taken; fewer than n is back-pressure, and the
   * core resubmits the rest later.  Never blocks.  Returns an error only if
   * nothing could be accepted for a reason other than back-pressure
   * (MC_EPEER: endpoint dead); MC_EAGAIN with *accepted == 0 is pure
   * back-pressure. */
  int (*submit)(void *ctx, void *ep, const mc_slice *slices, uint32_t n,
                uint32_t *accepted);

  /* Drives completions for at most `budget` slices; returns how many were
   * completed (>= 0) or MC_E*.  NULL iff caps has MC_CAP_OWN_THREADS. */
  int (*progress)(void *ctx, uint32_t budget);

  /* Optional.  Best-effort cancel of a slice by token; its completion is
   * still reported (MC_ECANCELED or its real status).  Called from any
   * thread. */
  int (*cancel)(void *ctx, uint64_t token);

  /* Sends a small message (<= MC_NOTIFY_MAX) to the peer of ep, ordered after
   * every slice on ep already completed successfully; delivered there via
   * notify_recv.  Mandatory iff caps has MC_CAP_NOTIFY. */
  int (*send_notify)(void *ctx, void *ep, const void *msg, size_t len);

  /* Optional.  Static text for a vendor code from complete(). */
  const char *(*vendor_strerror)(void *ctx, int32_t vendor_err);

  /* Optional.  Allocates len bytes that this transport can share with peers
   * without copies through the kernel (a memfd/DAX pool mapped by peers on
   * the same host).  The core registers the result like any buffer; the
   * plugin recognizes its own allocations in register_mem.  location as in
   * mc_mem_desc.  MC_ENOTSUP when the transport has no such memory. */
  int (*alloc_mem)(void *ctx, uint64_t len, const char *location, void **addr);

  /* Optional (mandatory with alloc_mem).  Frees an alloc_mem allocation
   * after the core deregistered it. */
  int (*free_mem)(void *ctx, void *addr, uint64_t len);

  /* Optional.  The slice size this transport moves best, in bytes (0: no
   * preference).  The engine cuts requests it carries into slices of this
   * size unless the configuration sets slice_size explicitly.  A
   * byte-stream transport wants large slices (fewer frames and wake-ups);
   * a verbs-style one wants them near its NIC's sweet spot. */
  uint64_t slice_size;

  /* ---- 1.1 ---- */
  /* sizeof(mc_param_info) the plugin was built with: the stride of its
   * params array.  Set it to sizeof(mc_param_info); 0 reads as
   * MC_PARAM_INFO_V1_SIZE (a 1.0 plugin).  A table whose abi_minor is 1 or
   * more and that has params must set it: its entries are longer than 1.0
   * ones, so the core refuses it (MC_EABI) rather than misread them. */
  uint32_t param_info_size;

  /* ---- 1.2 ---- */
  /* Optional.  Target side of mc_host_api.ctrl_call: answers `req` from the
   * same transport in peer segment `peer` (the name the initiator
   * announced, vouched for by the cluster token).  Writes the reply into
   * resp (*resp_len: MC_CTRL_MAX on entry, bytes written on return; 0 is a
   * valid empty reply).  Returns 0 or a negative MC_E*, which the caller's
   * ctrl_call returns.  Called from a core listener thread and NOT
   * serialized with control calls (a peer's connect may be calling in
   * while this engine's connect to that peer calls out: simultaneous
   * open), so the plugin locks what it touches.  Must answer promptly
   * (it holds a listener worker): no waiting on the network.  The request
   * comes off the network: parse it defensively.  NULL: calls to this
   * transport get MC_ENOTSUP. */
  int (*ctrl_handle)(void *ctx, const char *peer, const void *req,
                     size_t req_len, void *resp, size_t *resp_len);

  /* ---- 1.3 ---- */
  /* Optional.  Classifies memory: when mc_register is given no location,
   * the core asks each loaded plugin that has query_mem, in rank order,
   * whether [addr, +len) is memory its runtime knows (a cuMemAlloc'd
   * pointer is MC_MEM_CUDA on its device ordinal).  Sets *kind to one
   * enum mc_mem_kind bit and *device to the ordinal, and returns 0; returns
   * MC_ENOENT when the range is not such memory (ordinary host memory, which
   * the core then locates on its NUMA node itself), MC_EINVAL when only
   * part of the range is.  Serialized with control calls; cheap (one
   * driver query), never blocking on the network. */
  int (*query_mem)(void *ctx, uint64_t addr, uint64_t len, uint32_t *kind,
                   int32_t *device);
} mc_transport_ops;

/* The v1 members every plugin must provide (up to vendor_strerror). */
#define MC_TRANSPORT_OPS_V1_MIN_SIZE                                           \
  (offsetof(mc_transport_ops, vendor_strerror) +                               \
   sizeof(((mc_transport_ops *)0)->vendor_strerror))

/* Entry point type.  Plugins define it with default visibility, e.g.
 *   MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void)
 *   { return &my_ops; }                                                     */
typedef const mc_transport_ops *(*mc_transport_entry_v1_fn)(void);

#if defined(__GNUC__)
#define MC_TRANSPORT_EXPORT __attribute__((visibility("default")))
#else
#define MC_TRANSPORT_EXPORT
#endif

/* The entry point a plugin defines (declared here so plugins get the
 * prototype and the default visibility from the header). */
MC_TRANSPORT_EXPORT const mc_transport_ops *mc_transport_plugin_v1(void);

#ifdef __cplusplus
}
#endif
#endif
