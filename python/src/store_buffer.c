/* BufferHandle: a value read by get_buffer / batch_get_buffer, owning the
 * library's allocation and exposing it through the buffer protocol
 * (memoryview(h), numpy.frombuffer(h), bytes(h)) without a copy; ptr()
 * and size() as upstream. */
#include "store.h"

typedef struct {
  PyObject_HEAD
  void *p;
  Py_ssize_t size;
  Py_ssize_t exports;
} bufhandle;

PyObject *mcpy_bufhandle_new(void *p, size_t size) {
  bufhandle *h = PyObject_New(bufhandle, &mcpy_bufhandle_type);
  if (!h) {
    mc_store_free(p);
    return NULL;
  }
  h->p = p;
  h->size = (Py_ssize_t)size;
  h->exports = 0;
  return (PyObject *)h;
}

static void bh_dealloc(bufhandle *h) {
  mc_store_free(h->p);
  PyObject_Free(h);
}

static int bh_getbuffer(bufhandle *h, Py_buffer *view, int flags) {
  int rc = PyBuffer_FillInfo(view, (PyObject *)h, h->p, h->size, 0, flags);
  if (rc == 0)
    h->exports++;
  return rc;
}

static void bh_releasebuffer(bufhandle *h, Py_buffer *view) { h->exports--; }

static PyObject *bh_ptr(bufhandle *h, PyObject *unused) { return PyLong_FromVoidPtr(h->p); }

static PyObject *bh_size(bufhandle *h, PyObject *unused) { return PyLong_FromSsize_t(h->size); }

static Py_ssize_t bh_len(bufhandle *h) { return h->size; }

static PyObject *bh_repr(bufhandle *h) {
  return PyUnicode_FromFormat("<BufferHandle ptr=%p size=%zd>", h->p, h->size);
}

static PyMethodDef bh_methods[] = {
    {"ptr", (PyCFunction)bh_ptr, METH_NOARGS, "ptr() -> address of the bytes"},
    {"size", (PyCFunction)bh_size, METH_NOARGS, "size() -> length in bytes"},
    {NULL, NULL, 0, NULL},
};

static PyBufferProcs bh_as_buffer = {
    .bf_getbuffer = (getbufferproc)bh_getbuffer,
    .bf_releasebuffer = (releasebufferproc)bh_releasebuffer,
};

static PySequenceMethods bh_as_seq = {.sq_length = (lenfunc)bh_len};

PyTypeObject mcpy_bufhandle_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mooncake.store.BufferHandle",
    .tp_basicsize = sizeof(bufhandle),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A value read from the store, held in memory of its own until "
              "this object goes (buffer protocol: no copy).",
    .tp_dealloc = (destructor)bh_dealloc,
    .tp_repr = (reprfunc)bh_repr,
    .tp_methods = bh_methods,
    .tp_as_buffer = &bh_as_buffer,
    .tp_as_sequence = &bh_as_seq,
};
