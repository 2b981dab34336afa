/* Argument converters and small helpers of the extension. */
#include "mcpy.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int conv_u64(PyObject *o, uint64_t max, uint64_t *v, const char *what) {
  if (!PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return 0;
  }
  unsigned long long x = PyLong_AsUnsignedLongLong(o);
  if (x == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Clear();
    PyErr_Format(PyExc_OverflowError, "%s must be in 0..%llu", what,
                 (unsigned long long)max);
    return 0;
  }
  if (x > max) {
    PyErr_Format(PyExc_OverflowError, "%s must be in 0..%llu", what,
                 (unsigned long long)max);
    return 0;
  }
  *v = x;
  return 1;
}

int mcpy_conv_addr(PyObject *o, void *out) {
  uint64_t v;
  if (!conv_u64(o, UINTPTR_MAX, &v, "an address"))
    return 0;
  *(uintptr_t *)out = (uintptr_t)v;
  return 1;
}

int mcpy_conv_size(PyObject *o, void *out) {
  uint64_t v;
  if (!conv_u64(o, SIZE_MAX, &v, "a length"))
    return 0;
  *(size_t *)out = (size_t)v;
  return 1;
}

int mcpy_u64_seq(PyObject *seq, const char *what, uint64_t **out, Py_ssize_t *n) {
  if (PyUnicode_Check(seq) || PyBytes_Check(seq) || !PySequence_Check(seq)) {
    PyErr_Format(PyExc_TypeError, "%s must be a list of ints, not %.100s", what,
                 Py_TYPE(seq)->tp_name);
    return -1;
  }
  PyObject *fast = PySequence_Fast(seq, what);
  if (!fast)
    return -1;
  Py_ssize_t k = PySequence_Fast_GET_SIZE(fast);
  uint64_t *v = PyMem_Malloc((size_t)(k ? k : 1) * sizeof *v);
  if (!v) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  PyObject **items = PySequence_Fast_ITEMS(fast);
  for (Py_ssize_t i = 0; i < k; i++) {
    if (!conv_u64(items[i], UINT64_MAX, &v[i], what)) {
      PyMem_Free(v);
      Py_DECREF(fast);
      return -1;
    }
  }
  Py_DECREF(fast);
  *out = v;
  *n = k;
  return 0;
}

int mcpy_conv_opcode(PyObject *o, void *out) {
  uint64_t v;
  if (!conv_u64(o, 1, &v, "opcode (TransferOpcode.Read or .Write)"))
    return 0;
  *(uint32_t *)out = v == 0 ? MC_OP_READ : MC_OP_WRITE;
  return 1;
}

int64_t mcpy_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mcpy_need_engine(mcpy_engine *self) {
  if (self->eng && !self->initializing)
    return 0;
  PyErr_SetString(PyExc_RuntimeError,
                  "TransferEngine is not initialized: call initialize() first");
  return -1;
}

void mcpy_warn(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "mooncake: %s\n", buf);
}
