/* mcpy.h - what the files of the mooncake.engine extension share.
 *
 * Locking: the tables of an engine object (open segments, batches) are
 * read and written only with the GIL held; every call into libmooncake that
 * can block runs with the GIL released, on local copies of what it needs.
 * A batch being waited on without the GIL is marked busy, so a second
 * thread cannot free it under the first. */
#ifndef MCPY_H
#define MCPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "managed_alloc.h"
#include "mooncake/engine.h"

/* A segment opened by the engine object, cached by name as upstream does. */
typedef struct mcpy_seg {
  char name[MC_NAME_MAX];
  mc_segment *seg;
} mcpy_seg;

/* A batch handed to Python by id (upstream hands out raw pointers; an id
 * lets a wrong or stale id give -1 instead of a crash). */
typedef struct mcpy_batch {
  uint64_t id;
  mc_batch *b;
  uint64_t bytes;   /* requested, for the timeout */
  int64_t start_ns; /* submission time */
  mc_segment *seg;  /* the batch's own reference to its target */
  int busy;         /* waited on without the GIL */
} mcpy_batch;

typedef struct mcpy_engine {
  PyObject_HEAD
  mc_engine *eng;
  int rpc_port;       /* the handshake listener's port (P2PHANDSHAKE) */
  int64_t timeout_ns; /* MC_TRANSFER_TIMEOUT, per transfer, + 1 ns/byte */
  int initializing;   /* initialize() runs without the GIL */
  int busy;           /* calls running without the GIL */
  mcpy_seg *segs;
  size_t nsegs, capsegs;
  mcpy_batch *batches;
  size_t nbatches, capbatches;
  uint64_t next_batch;
  int have_alloc;
  mcpy_alloc alloc;
  PyObject *weakrefs;
} mcpy_engine;

extern PyTypeObject mcpy_engine_type;
extern PyTypeObject mcpy_notify_type;
extern PyObject *mcpy_opcode_enum; /* TransferOpcode (an IntEnum) */

/* ---- conv.c: argument converters (PyArg_Parse "O&") ---- */
/* A Python int 0..UINTPTR_MAX into uintptr_t (TypeError / OverflowError). */
int mcpy_conv_addr(PyObject *o, void *out);
/* A Python int 0..SIZE_MAX into size_t. */
int mcpy_conv_size(PyObject *o, void *out);
/* A sequence of such ints: *out malloc'd (free with PyMem_Free), *n items.
 * what names the argument in the error. */
int mcpy_u64_seq(PyObject *seq, const char *what, uint64_t **out, Py_ssize_t *n);
/* An opcode: TransferOpcode member or int 0 (READ) / 1 (WRITE). */
int mcpy_conv_opcode(PyObject *o, void *out);
/* Monotonic nanoseconds. */
int64_t mcpy_now_ns(void);
/* Raises RuntimeError unless the engine is initialized; 0 when it is. */
int mcpy_need_engine(mcpy_engine *self);
/* Writes "mooncake: <text>" to stderr: the reason behind a negative code
 * returned where upstream also returns a bare code. */
void mcpy_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- notify.c ---- */
/* Packs a TransferNotify (name, msg) into one notification payload;
 * returns its length, or -1 with a Python exception set. */
Py_ssize_t mcpy_notify_pack(PyObject *notify, uint8_t *buf, size_t cap);
/* A TransferNotify from a received notification. */
PyObject *mcpy_notify_unpack(const mc_notification *n);

/* ---- engine_type.c: the segment cache ----
 * A call opens its target with mcpy_segment_open_nogil (a reference of
 * its own: a cache hit in the library once the engine object caches the
 * name) and closes it when done; the engine object keeps one more
 * reference per name, so descriptors are fetched once, as upstream. */
int mcpy_segment_open_nogil(mc_engine *eng, const char *name, mc_segment **out);
/* With the GIL: keeps a reference to seg under name (no I/O). */
int mcpy_segment_cache(mcpy_engine *self, const char *name, mc_segment *seg);
/* With the GIL: drops the cached reference after the peer failed, so the
 * next call fetches its descriptor again (a restarted peer). */
void mcpy_segment_forget(mcpy_engine *self, const char *name);
/* Whether rc means the peer or its descriptor failed. */
int mcpy_segment_failed(int rc);

/* ---- the method tables of each file ---- */
extern PyMethodDef mcpy_engine_type_methods[];
extern PyMethodDef mcpy_engine_mem_methods[];
extern PyMethodDef mcpy_engine_xfer_methods[];

/* ---- topology_json.c ---- */
/* Upstream's get_local_topology() text for eng: {"cpu:N": [[preferred
 * rails], [other rails]], ...}, rails named "<transport>:<rail>".  A
 * malloc'd string, or NULL on allocation failure.  Blocks briefly. */
char *mcpy_topology_json(mc_engine *eng, const char *device_filter);

#endif
