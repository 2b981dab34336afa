/* The store object: setup (upstream's positional form; store.py adds the
 * dict, file and environment forms), close, health_check, get_hostname. */
#include "store.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int mcpy_store_need(mcpy_store *self) {
  if (self->st)
    return 0;
  PyErr_SetString(PyExc_RuntimeError,
                  "MooncakeDistributedStore is not set up: call setup() first");
  return -1;
}

void mcpy_store_warn(const char *what, const char *key, int64_t rc) {
  fprintf(stderr, "mooncake.store: %s%s%s: %s (%lld): %s\n", what, key ? " " : "",
          key ? key : "", mc_store_errname((int)rc), (long long)rc, mc_store_last_error());
}

static PyObject *store_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  return type->tp_alloc(type, 0);
}

/* Waits (without the GIL) until no call uses the handle, then destroys it. */
static void store_close_handle(mcpy_store *self) {
  mc_store *st = self->st;
  if (!st)
    return;
  self->st = NULL; /* new calls now fail fast */
  while (self->busy > 0) {
    Py_BEGIN_ALLOW_THREADS
    usleep(1000);
    Py_END_ALLOW_THREADS
  }
  Py_BEGIN_ALLOW_THREADS
  mc_store_destroy(st);
  Py_END_ALLOW_THREADS
}

static void store_dealloc(mcpy_store *self) {
  if (self->weakrefs)
    PyObject_ClearWeakRefs((PyObject *)self);
  store_close_handle(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *store_setup(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"local_hostname", "metadata_server", "global_segment_size",
                           "local_buffer_size", "protocol", "rdma_devices",
                           "master_server_addr", "engine", "enable_ssd_offload",
                           "ssd_offload_path", NULL};
  const char *host, *md, *proto = "tcp", *dev = "", *master = "127.0.0.1:50051";
  const char *ssd_path = "";
  int ssd = 0;
  unsigned long long gseg = 16 << 20, lbuf = 16 << 20;
  PyObject *engine = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|KKzzzOpz:setup", kwlist, &host, &md, &gseg,
                                   &lbuf, &proto, &dev, &master, &engine, &ssd, &ssd_path))
    return NULL;
  if (self->st) {
    mcpy_store_warn("setup", "(already set up; close() first)",
                    MC_STORE_UNAVAILABLE_IN_CURRENT_STATUS);
    return PyLong_FromLong(MC_STORE_UNAVAILABLE_IN_CURRENT_STATUS);
  }
  if (engine != Py_None && PyErr_WarnEx(PyExc_RuntimeWarning,
                                        "mooncake-c: the store runs its own Transfer "
                                        "Engine; the engine argument is not shared",
                                        1) < 0)
    return NULL;
  mc_store_config c = {.struct_size = sizeof c,
                       .local_hostname = host,
                       .metadata = strcmp(md, "P2PHANDSHAKE") == 0 ? "p2p" : md,
                       .master = master ? master : "127.0.0.1:50051",
                       .global_segment_size = gseg,
                       .local_buffer_size = lbuf,
                       .protocol = proto && *proto ? proto : "tcp",
                       .device = dev && *dev ? dev : NULL,
                       /* upstream's names: the SSD tier in ssd_offload_path */
                       .ssd_offload_dir = ssd && ssd_path && *ssd_path ? ssd_path : NULL};
  if (ssd && (!ssd_path || !*ssd_path)) {
    mcpy_store_warn("setup", "(enable_ssd_offload needs ssd_offload_path)",
                    MC_STORE_INVALID_PARAMS);
    return PyLong_FromLong(MC_STORE_INVALID_PARAMS);
  }
  mc_store *st = NULL;
  int rc;
  self->busy++;
  Py_BEGIN_ALLOW_THREADS
  rc = mc_store_create(&c, &st);
  Py_END_ALLOW_THREADS
  self->busy--;
  if (rc) {
    mcpy_store_warn("setup", NULL, rc);
    return PyLong_FromLong(rc);
  }
  self->st = st;
  return PyLong_FromLong(0);
}

static PyObject *store_setup_dummy(mcpy_store *self, PyObject *args, PyObject *kw) {
  /* Upstream's dummy client talks to a local real client over a unix
   * socket; mooncake-c has no such split. */
  mcpy_store_warn("setup_dummy", "(no dummy client in mooncake-c: use setup)",
                  MC_STORE_NOT_SUPPORTED);
  return PyLong_FromLong(MC_STORE_NOT_SUPPORTED);
}

static PyObject *store_close(mcpy_store *self, PyObject *unused) {
  store_close_handle(self);
  return PyLong_FromLong(0);
}

static PyObject *store_health_check(mcpy_store *self, PyObject *unused) {
  if (mcpy_store_need(self))
    return NULL;
  int rc;
  MCPY_STORE_CALL(self, rc = mc_store_health_check(st_));
  return PyLong_FromLong(rc);
}

static PyObject *store_get_hostname(mcpy_store *self, PyObject *unused) {
  if (mcpy_store_need(self))
    return NULL;
  return PyUnicode_FromString(mc_store_segment_name(self->st));
}

static PyObject *store_enter(mcpy_store *self, PyObject *unused) {
  return Py_NewRef(self);
}

static PyObject *store_exit(mcpy_store *self, PyObject *args) {
  store_close_handle(self);
  Py_RETURN_FALSE;
}

PyMethodDef mcpy_store_type_methods[] = {
    {"setup", (PyCFunction)(void (*)(void))store_setup, METH_VARARGS | METH_KEYWORDS,
     "setup(local_hostname, metadata_server, global_segment_size=16MiB, "
     "local_buffer_size=16MiB, protocol='tcp', rdma_devices='', "
     "master_server_addr='127.0.0.1:50051', engine=None, enable_ssd_offload=False, "
     "ssd_offload_path='') -> 0 or an error code"},
    {"setup_dummy", (PyCFunction)(void (*)(void))store_setup_dummy,
     METH_VARARGS | METH_KEYWORDS, "not supported by mooncake-c (returns NOT_SUPPORTED)"},
    {"close", (PyCFunction)store_close, METH_NOARGS,
     "close() -> 0: unmounts this client's segment and disconnects"},
    {"health_check", (PyCFunction)store_health_check, METH_NOARGS,
     "health_check() -> 0 when the master answers"},
    {"get_hostname", (PyCFunction)store_get_hostname, METH_NOARGS,
     "get_hostname() -> this client's segment name (host:port)"},
    {"__enter__", (PyCFunction)store_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)store_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyTypeObject mcpy_store_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mooncake._store.Store",
    .tp_basicsize = sizeof(mcpy_store),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C half of mooncake.store.MooncakeDistributedStore.",
    .tp_new = store_new,
    .tp_dealloc = (destructor)store_dealloc,
    .tp_weaklistoffset = offsetof(mcpy_store, weakrefs),
};
