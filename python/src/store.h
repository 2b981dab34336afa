/* store.h - what the files of the mooncake._store extension share (the C
 * half of mooncake.store; python/mooncake/store.py is the other half).
 *
 * Locking: a handle is used without the GIL by every call that reaches the
 * master or moves data; `busy` counts such calls (changed with the GIL
 * held), and close() waits for it to reach 0 before destroying the
 * handle, so a close from another thread never frees it under a call. */
#ifndef MCPY_STORE_H
#define MCPY_STORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "mooncake/store.h"

typedef struct mcpy_store {
  PyObject_HEAD
  mc_store *st;
  int busy;
  PyObject *weakrefs;
} mcpy_store;

extern PyTypeObject mcpy_store_type;
extern PyTypeObject mcpy_bufhandle_type;

/* A ReplicateConfig (any object with its attributes) as the C struct. */
typedef struct mcpy_rcfg {
  mc_store_replicate_config c;
  const char *names[MC_STORE_MAX_PREFERRED];
  PyObject *keep[MC_STORE_MAX_PREFERRED]; /* the str objects of names */
  int used;                               /* 0: None was given (NULL config) */
} mcpy_rcfg;

/* store_config.c: reads replica_num, with_soft_pin, with_hard_pin,
 * preferred_segment, preferred_segments and soft_pin_action; -1 with a
 * Python exception on a wrong type or value. */
int mcpy_rcfg_from(PyObject *o, mcpy_rcfg *out);
void mcpy_rcfg_release(mcpy_rcfg *r);
/* The struct to pass: NULL for None. */
const mc_store_replicate_config *mcpy_rcfg_ptr(const mcpy_rcfg *r);

/* A list of keys: UTF-8 pointers valid while *keep (a new reference) lives. */
int mcpy_keys(PyObject *seq, const char ***keys, Py_ssize_t *n, PyObject **keep);

/* store_buffer.c: a BufferHandle owning p (from mc_store_get_alloc). */
PyObject *mcpy_bufhandle_new(void *p, size_t size);

/* store_type.c: RuntimeError unless set up; 0 when it is. */
int mcpy_store_need(mcpy_store *self);
void mcpy_store_warn(const char *what, const char *key, int64_t rc);

/* Runs stmt without the GIL on a live handle (st_ in scope). */
#define MCPY_STORE_CALL(self, stmt)                                           \
  do {                                                                        \
    mc_store *st_ = (self)->st;                                               \
    (self)->busy++;                                                           \
    Py_BEGIN_ALLOW_THREADS                                                    \
    stmt;                                                                     \
    Py_END_ALLOW_THREADS                                                      \
    (self)->busy--;                                                           \
  } while (0)

extern PyMethodDef mcpy_store_type_methods[];
extern PyMethodDef mcpy_store_ops_methods[];

#endif
