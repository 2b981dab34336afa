/* mooncake/engine.h - the Transfer Engine API.
 *
 * An engine exposes this process's registered memory as a *segment* named
 * "host:port" (its handshake listener, by default) and moves bytes between
 * local memory and any segment it can open, through the transport plugins it
 * loaded.  Several engines per process are allowed; all functions are
 * thread-safe unless stated otherwise.
 *
 * Typical use:
 *   mc_engine *e; mc_engine_create(NULL, &e);           // MC_CONFIG or defaults
 *   mc_register(e, buf, len, NULL);
 *   mc_segment *s; mc_segment_open(e, "10.0.0.2:17777", &s);
 *   mc_request r = { MC_OP_READ, buf, s, remote_addr, len };
 *   mc_transfer_sync(e, &r, 1, 5000);
 */
#ifndef MOONCAKE_ENGINE_H
#define MOONCAKE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/errors.h"
#include "mooncake/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions libmooncake exports.  The library is built with
 * hidden visibility and a version script (MOONCAKE_0), so exactly the
 * functions documented in its public headers are exported. */
#ifndef MC_API
#if defined(__GNUC__)
#define MC_API __attribute__((visibility("default")))
#else
#define MC_API
#endif
#endif

typedef struct mc_engine mc_engine;
typedef struct mc_segment mc_segment;
typedef struct mc_batch mc_batch;

/* Options for mc_engine_create.  Zero/NULL members take the value from the
 * YAML file (config_path, else $MC_CONFIG), then the MC_* env vars, then the
 * built-in defaults.  Set struct_size = sizeof(mc_engine_opts) (0 means the
 * size of this version); the engine reads only that many bytes, so members
 * appended in later versions are never read from an older caller. */
typedef struct mc_engine_opts {
  uint32_t struct_size;
  const char *config_path;  /* YAML file; NULL: $MC_CONFIG, or none */
  const char *segment_name; /* default: the handshake listener's host:port */
  const char *listen;       /* "host:port" of the handshake listener; port 0 = any */
  const char *metadata;     /* "p2p" (default), "etcd://h:p[,h:p]", "http://h:p/path" */
  const char *transports;   /* comma-separated names, or "auto" */
  const char *plugin_path;  /* colon-separated dirs/.so files, searched after $MC_PLUGIN_PATH */
} mc_engine_opts;

/* Creates an engine: reads the config, loads the configured transports,
 * starts the metadata backend and publishes an empty segment.  On error
 * returns MC_E* (MC_EINVAL for a bad value, wherever it was set; MC_ENOENT
 * for a file or plugin that is not there) with a one-line explanation
 * naming the file:line and key, the MC_* variable, the mc_engine_opts
 * member or the plugin path at fault, and why.  That line is logged once
 * at error level (shown whatever MC_LOG_LEVEL says), is this thread's
 * mc_last_error() afterwards, and is copied into errbuf (when non-NULL)
 * by the _ex form.  *out is untouched on error.
 *
 * A transport the configuration names must start: if its plugin is
 * missing or refused, or its init fails (no device: MC_ENODEV), creation
 * fails naming it, unless the configuration marks it optional
 * (transports.<name>.optional: true, or MC_TRANSPORT_<NAME>_OPTIONAL=1);
 * with `transports: auto` every plugin found is optional. */
MC_API int mc_engine_create(const mc_engine_opts *opts, mc_engine **out);
MC_API int mc_engine_create_ex(const mc_engine_opts *opts, mc_engine **out,
                        char *errbuf, size_t errlen);
/* Shorthand: all settings from the YAML file at path. */
MC_API int mc_engine_create_from_file(const char *path, mc_engine **out);

/* Destroys the engine: unpublishes the segment, stops the transports
 * (joining their threads) and unloads the plugins.  Destroy batches and
 * close segments first.  Transfers still in flight are canceled: queued
 * and retrying slices at once, slices inside a transport by its fini, so
 * nothing runs and no callback arrives after destroy returns (a batch left
 * undestroyed then must not be used any more).  NULL is a no-op. */
MC_API void mc_engine_destroy(mc_engine *engine);

/* This engine's segment name; valid until destroy. */
MC_API const char *mc_engine_segment_name(const mc_engine *engine);

/* Registers [addr, addr+len) with every loaded transport that can serve its
 * memory kind and republishes the segment, so peers (also those that opened
 * the segment earlier) can reach it.  location: "cpu:N", "cuda:N", "hip:N",
 * "npu:N", or NULL to detect: a loaded plugin with query_mem (ABI 1.3)
 * recognizes device memory, else it is host memory on its pages' NUMA
 * node.  MC_EEXIST if it overlaps a registered buffer; MC_ENOTSUP
 * if no loaded transport serves that kind; the metadata backend's error
 * (MC_EPEER, MC_ETIMEDOUT, MC_EACCES) if the segment could not be
 * republished.  On any error nothing stays registered. */
MC_API int mc_register(mc_engine *engine, void *addr, size_t len, const char *location);

/* One buffer of mc_register_batch. */
typedef struct mc_region {
  void *addr;
  size_t len;
  const char *location; /* as mc_register's; NULL to detect */
} mc_region;

/* Registers n buffers as mc_register would, and republishes the segment
 * once: what a serving engine registering every layer of its KV cache
 * wants (one descriptor update, not n growing ones).  All or nothing: on
 * error none of them stays registered, and *failed (if non-NULL) is the
 * index of the region at fault, or n when republishing failed. */
MC_API int mc_register_batch(mc_engine *engine, const mc_region *regions, uint32_t n,
                      uint32_t *failed);

/* Unregisters the buffer that starts at addr and republishes the segment.
 * MC_EBUSY while local transfers use it; MC_ENOENT if not registered. */
MC_API int mc_unregister(mc_engine *engine, void *addr);

/* Unregisters the buffers starting at addrs[0..n) and republishes once.
 * All or nothing: MC_ENOENT, MC_EBUSY or MC_EINVAL (NULL, or an address
 * listed twice) for addrs[*failed] and none is unregistered. */
MC_API int mc_unregister_batch(mc_engine *engine, void *const *addrs, uint32_t n,
                        uint32_t *failed);

/* Flags of mc_register_file. */
#define MC_FILE_READ_ONLY 1u /* open read-only; writes into it fail MC_EACCES */

/* Registers bytes [offset, offset+len) of the file or block device at path
 * as part of this engine's segment (memory kind MC_MEM_FILE), for the
 * transports that move data to and from files (nvmeof, and tcp serving
 * peers that cannot reach the file themselves).  len 0 means up to the
 * file's end.  *addr receives an address standing for the range's first
 * byte: the engine reserves len bytes of address space for it (never
 * accessible memory, it costs no RAM), so requests name file byte
 * offset+i as *addr+i, as the local side (mc_request.local) or as the
 * remote address peers see in the segment, and mc_unregister(engine,
 * *addr) removes it.  Returns MC_ENOENT (no such path), MC_EACCES (cannot
 * be opened as asked), MC_EINVAL (a bad argument, or len 0 at or past the
 * end), MC_ENOTSUP (no loaded transport serves files), each with the path
 * and the reason in mc_last_error(). */
MC_API int mc_register_file(mc_engine *engine, const char *path, uint64_t offset,
                            uint64_t len, uint32_t flags, void **addr);

/* Allocates len bytes of memory that a loaded transport can share with peers
 * on the same host without copies through the kernel (the shm transport's
 * memfd / CXL-DAX pool), and registers it like mc_register.  location as
 * there (NULL: "cpu:0").  MC_ENOTSUP when no loaded transport offers such
 * memory.  Free with mc_free_shared. */
MC_API int mc_alloc_shared(mc_engine *engine, size_t len, const char *location,
                    void **addr);

/* Unregisters and frees an mc_alloc_shared allocation. MC_EBUSY as
 * mc_unregister. */
MC_API int mc_free_shared(mc_engine *engine, void *addr);

/* Opens a segment by name (for the p2p backend, the peer's "host:port"),
 * fetching its descriptor through metadata; handles are cached and counted,
 * so opening the same name twice returns the same handle.  The local
 * engine's own name is valid (loopback).  MC_ENOENT if unknown, MC_EPEER if
 * unreachable, MC_EPROTO if the descriptor is malformed or the address is
 * not a mooncake listener, MC_ETIMEDOUT if the peer stays silent, MC_EACCES
 * if it refused our cluster token; mc_last_error() then
 * says what the peer did. */
MC_API int mc_segment_open(mc_engine *engine, const char *name, mc_segment **out);

/* Drops one reference from mc_segment_open. */
MC_API void mc_segment_close(mc_segment *segment);

/* Refetches the segment's descriptor now (normally done on demand when a
 * request falls outside the buffers known for it). */
MC_API int mc_segment_refresh(mc_segment *segment);

/* One buffer of a segment, as its descriptor lists it. */
typedef struct mc_segment_buffer {
  uint64_t addr;     /* address in the segment owner's process */
  uint64_t len;      /* bytes */
  char location[32]; /* "cpu:0", "cuda:1", ... as registered */
} mc_segment_buffer;

/* Lists the buffers registered in the segment (its descriptor as last
 * fetched, refetched first when metadata said it changed), sorted by
 * address: *n in/out.  Fills min(*n, count) entries of out and sets *n to
 * the count; MC_ENOSPC when out was too small.  For peers that were not
 * told a buffer's address (the Python binding's get_first_buffer_address).
 * MC_EINVAL for NULL segment or n, or out NULL with *n > 0. */
MC_API int mc_segment_buffers(mc_segment *segment, mc_segment_buffer *out,
                              uint32_t *n);

/* One transfer.  local must lie in memory registered with this engine;
 * [remote, remote+len) in one buffer registered by the segment's engine. */
typedef struct mc_request {
  uint32_t op;          /* MC_OP_READ (remote -> local) or MC_OP_WRITE */
  void *local;          /* local address */
  mc_segment *segment;  /* target segment */
  uint64_t remote;      /* target address */
  uint64_t len;         /* bytes; 0 completes at once */
} mc_request;

enum mc_transfer_state {
  MC_XFER_WAITING = 0,   /* slot not used yet */
  MC_XFER_PENDING = 1,   /* slices in flight */
  MC_XFER_COMPLETED = 2, /* all bytes moved */
  MC_XFER_FAILED = 3,    /* a slice failed on every allowed retry */
  MC_XFER_TIMEOUT = 4,   /* a slice exceeded the transfer timeout */
  MC_XFER_CANCELED = 5,  /* batch destroyed or engine stopped */
  MC_XFER_INVALID = 6,   /* rejected before sending: bad address or segment */
};

typedef struct mc_transfer_status {
  uint32_t state;          /* enum mc_transfer_state */
  int32_t error;           /* MC_E* cause when FAILED/TIMEOUT/INVALID, else 0 */
  uint64_t bytes;          /* bytes confirmed transferred so far */
  int32_t vendor_error;    /* transport's native code of the cause, or 0 */
  char transport[32];      /* transport that carried (or last tried) it */
} mc_transfer_status;

/* A batch holds up to `capacity` requests, submitted in one or more calls.
 * One thread uses a batch at a time; different batches may be used from
 * different threads concurrently. */
MC_API int mc_batch_create(mc_engine *engine, uint32_t capacity, mc_batch **out);

/* Appends n requests and starts them.  Invalid requests are marked INVALID
 * (see mc_batch_status) and do not stop the others.  MC_ENOSPC if the batch
 * lacks n free slots. */
MC_API int mc_batch_submit(mc_batch *batch, const mc_request *reqs, uint32_t n);

/* As mc_batch_submit, and once every one of the n requests has COMPLETED,
 * delivers msg (<= MC_NOTIFY_MAX bytes) to the target segment, which polls it
 * with mc_notify_poll.  All n requests must be writes to one segment.  The
 * message is not sent if any request fails. */
MC_API int mc_batch_submit_notify(mc_batch *batch, const mc_request *reqs, uint32_t n,
                           const void *msg, size_t len);

/* Status of request i (0-based, in submission order). Lock-free. */
MC_API int mc_batch_status(mc_batch *batch, uint32_t i, mc_transfer_status *st);

/* Waits until every submitted request has left PENDING, or timeout_ms
 * passes (-1: forever).  Returns 0 when all COMPLETED, MC_ETIMEDOUT when
 * still pending, otherwise the error of the first request that did not
 * complete. */
MC_API int mc_batch_wait(mc_batch *batch, int timeout_ms);

/* Number of requests submitted so far. */
MC_API uint32_t mc_batch_size(const mc_batch *batch);

/* Cancels what is still in flight, waits for the transports to let go of
 * it, and frees the batch.  NULL is a no-op. */
MC_API void mc_batch_destroy(mc_batch *batch);

/* Runs n requests in a temporary batch and waits (timeout_ms, -1 forever).
 * Returns as mc_batch_wait. */
MC_API int mc_transfer_sync(mc_engine *engine, const mc_request *reqs, uint32_t n,
                     int timeout_ms);

/* A received notification. */
typedef struct mc_notification {
  char peer[MC_NAME_MAX]; /* sender's segment name */
  uint32_t len;
  uint8_t msg[MC_NOTIFY_MAX];
} mc_notification;

/* Copies up to max queued notifications into out, oldest first; returns how
 * many (0 when none) or MC_E*.  Non-blocking unless timeout_ms > 0, in which
 * case it waits up to that long for the first one. */
MC_API int mc_notify_poll(mc_engine *engine, mc_notification *out, uint32_t max,
                   int timeout_ms);

/* ---- introspection (mc-info) ---- */

enum mc_plugin_state {
  MC_PLUGIN_LOADED = 0,   /* loaded and initialized */
  MC_PLUGIN_SHADOWED = 1, /* a copy found earlier in the search path won */
  MC_PLUGIN_REFUSED = 2,  /* present but not usable; see reason */
  MC_PLUGIN_AVAILABLE = 3 /* found but not requested by the config */
};

typedef struct mc_plugin_info {
  uint32_t state;           /* enum mc_plugin_state */
  char name[64];
  char path[4096];          /* real path of the .so */
  char version[64];         /* plugin version, when known */
  uint32_t abi_major, abi_minor;
  uint64_t caps;
  uint32_t nrails;
  char reason[512];         /* why refused/shadowed; empty when loaded */
} mc_plugin_info;

/* Lists every plugin file the engine considered: *n in/out (MC_ENOSPC with
 * the count needed). */
MC_API int mc_engine_plugins(mc_engine *engine, mc_plugin_info *out, uint32_t *n);

/* Lists the metadata backend modules (mc-metadata-<name>.so: etcd, http)
 * this library finds, without an engine: each is MC_PLUGIN_AVAILABLE (it
 * loads and its table is valid; `version` then holds the URL schemes it
 * serves, e.g. "etcd://"), MC_PLUGIN_SHADOWED or MC_PLUGIN_REFUSED with the
 * reason (dlerror(), wrong ABI, name mismatch, ...).  Search path, first
 * match wins: $MC_METADATA_MODULE_PATH (colon-separated directories or
 * .so files), the build tree's modules (a library run from its build tree
 * only), $libdir/mooncake/metadata.  *n in/out (MC_ENOSPC with the count
 * needed); search_path (may be NULL) gets the path joined with ':'.  The
 * built-in p2p backend is not listed. */
MC_API int mc_metadata_modules(mc_plugin_info *out, uint32_t *n, char *search_path,
                               size_t len);

/* Lists the rails of loaded transport `name`: *n in/out. */
MC_API int mc_engine_rails(mc_engine *engine, const char *name, mc_rail_info *out,
                    uint32_t *n);

/* The directories and files searched for plugins, in order, ':'-joined. */
MC_API int mc_engine_plugin_search_path(mc_engine *engine, char *buf, size_t len);

/* Library version string, e.g. "0.1.0". */
MC_API const char *mc_version(void);

/* The one-line reason of the last mooncake call that failed on this
 * thread (today: engine creation, by any of the three calls, and
 * mc_segment_open when the metadata fetch fails), e.g.
 * "MC_SLICE_SIZE: expected a size like 64K ..., got 'banana'".  Like
 * errno it is per thread and only written on failure: successful calls
 * leave it as it was, so read it right after the call that failed.  ""
 * before any failure; never NULL.  Valid until the next failing call on
 * this thread. */
MC_API const char *mc_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
