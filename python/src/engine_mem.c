/* TransferEngine's memory calls: (batch_)(un)register_memory, the managed
 * buffers, and write_bytes_to_buffer / read_bytes_from_buffer. */
#include "mcpy.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* "*" (upstream's wildcard) or None: let the library detect it. */
static const char *location_arg(const char *loc) {
  return !loc || strcmp(loc, "*") == 0 || !*loc ? NULL : loc;
}

static PyObject *engine_register_memory(mcpy_engine *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"buffer_addr", "capacity", "location", NULL};
  uintptr_t addr;
  size_t len;
  const char *loc = "*";
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&|z:register_memory", kwlist,
                                   mcpy_conv_addr, &addr, mcpy_conv_size, &len, &loc))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  if (!addr || !len) {
    mcpy_warn("register_memory: address and capacity must be non-zero");
    return PyLong_FromLong(MC_EINVAL);
  }
  int rc;
  mc_engine *eng = self->eng;
  loc = location_arg(loc);
  Py_BEGIN_ALLOW_THREADS
  rc = mc_register(eng, (void *)addr, len, loc);
  Py_END_ALLOW_THREADS
  return PyLong_FromLong(rc);
}

static PyObject *engine_unregister_memory(mcpy_engine *self, PyObject *args,
                                          PyObject *kw) {
  static char *kwlist[] = {"buffer_addr", NULL};
  uintptr_t addr;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&:unregister_memory", kwlist,
                                   mcpy_conv_addr, &addr))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  int rc;
  mc_engine *eng = self->eng;
  Py_BEGIN_ALLOW_THREADS
  rc = mc_unregister(eng, (void *)addr);
  Py_END_ALLOW_THREADS
  return PyLong_FromLong(rc);
}

static PyObject *engine_batch_register_memory(mcpy_engine *self, PyObject *args,
                                              PyObject *kw) {
  static char *kwlist[] = {"buffer_addresses", "capacities", "location", NULL};
  PyObject *oa, *ol;
  const char *loc = "*";
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|z:batch_register_memory", kwlist, &oa,
                                   &ol, &loc))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  uint64_t *a = NULL, *l = NULL;
  Py_ssize_t na, nl;
  if (mcpy_u64_seq(oa, "buffer_addresses", &a, &na))
    return NULL;
  if (mcpy_u64_seq(ol, "capacities", &l, &nl)) {
    PyMem_Free(a);
    return NULL;
  }
  int rc = 0;
  if (na != nl || na > UINT32_MAX) {
    mcpy_warn("batch_register_memory: %zd addresses but %zd capacities", na, nl);
    rc = MC_EINVAL;
  }
  mc_region *r = NULL;
  if (!rc && na) {
    r = PyMem_Calloc((size_t)na, sizeof *r);
    if (!r)
      rc = MC_ENOMEM;
  }
  if (!rc && na) {
    loc = location_arg(loc);
    for (Py_ssize_t i = 0; i < na; i++)
      r[i] = (mc_region){(void *)(uintptr_t)a[i], (size_t)l[i], loc};
    uint32_t failed = 0;
    mc_engine *eng = self->eng;
    Py_BEGIN_ALLOW_THREADS
    rc = mc_register_batch(eng, r, (uint32_t)na, &failed);
    Py_END_ALLOW_THREADS
    if (rc)
      mcpy_warn("batch_register_memory: buffer %u: %s", failed, mc_strerror(rc));
  }
  PyMem_Free(r);
  PyMem_Free(a);
  PyMem_Free(l);
  return PyLong_FromLong(rc);
}

static PyObject *engine_batch_unregister_memory(mcpy_engine *self, PyObject *args,
                                                PyObject *kw) {
  static char *kwlist[] = {"buffer_addresses", NULL};
  PyObject *oa;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:batch_unregister_memory", kwlist, &oa))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  uint64_t *a;
  Py_ssize_t na;
  if (mcpy_u64_seq(oa, "buffer_addresses", &a, &na))
    return NULL;
  int rc = 0;
  if (na > UINT32_MAX)
    rc = MC_EINVAL;
  void **p = NULL;
  if (!rc && na && !(p = PyMem_Calloc((size_t)na, sizeof *p)))
    rc = MC_ENOMEM;
  if (!rc && na) {
    for (Py_ssize_t i = 0; i < na; i++)
      p[i] = (void *)(uintptr_t)a[i];
    uint32_t failed = 0;
    mc_engine *eng = self->eng;
    Py_BEGIN_ALLOW_THREADS
    rc = mc_unregister_batch(eng, p, (uint32_t)na, &failed);
    Py_END_ALLOW_THREADS
    if (rc)
      mcpy_warn("batch_unregister_memory: address %u: %s", failed, mc_strerror(rc));
  }
  PyMem_Free(p);
  PyMem_Free(a);
  return PyLong_FromLong(rc);
}

static PyObject *engine_allocate_managed_buffer(mcpy_engine *self, PyObject *args,
                                                PyObject *kw) {
  static char *kwlist[] = {"length", NULL};
  size_t len;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&:allocate_managed_buffer", kwlist,
                                   mcpy_conv_size, &len))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  uintptr_t p;
  Py_BEGIN_ALLOW_THREADS
  p = mcpy_alloc_get(&self->alloc, len);
  Py_END_ALLOW_THREADS
  return PyLong_FromSize_t(p); /* 0 on failure, as upstream */
}

static PyObject *engine_free_managed_buffer(mcpy_engine *self, PyObject *args,
                                            PyObject *kw) {
  static char *kwlist[] = {"buffer_addr", "length", NULL};
  uintptr_t addr;
  size_t len;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&:free_managed_buffer", kwlist,
                                   mcpy_conv_addr, &addr, mcpy_conv_size, &len))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = mcpy_alloc_put(&self->alloc, addr, len);
  Py_END_ALLOW_THREADS
  if (rc)
    mcpy_warn("free_managed_buffer(0x%lx, %zu): %s", (unsigned long)addr, len,
              rc == MC_ENOENT ? "not a live managed buffer" : "length of another size class");
  return PyLong_FromLong(rc);
}

/* Copies n bytes within this process; an unmapped address gives -1
 * (EFAULT) instead of a crash: the kernel does the copy, as it does for a
 * peer's process_vm_readv.  Falls back to memcpy where the call is
 * refused (seccomp). */
static int safe_copy(void *dst, const void *src, size_t n, int to_dst_checked) {
  if (n == 0)
    return 0;
  struct iovec local = {.iov_base = to_dst_checked ? (void *)src : dst, .iov_len = n};
  struct iovec remote = {.iov_base = to_dst_checked ? dst : (void *)src, .iov_len = n};
  ssize_t r = to_dst_checked ? process_vm_writev(getpid(), &local, 1, &remote, 1, 0)
                             : process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (r == (ssize_t)n)
    return 0;
  if (r < 0 && (errno == ENOSYS || errno == EPERM)) {
    memcpy(dst, src, n);
    return 0;
  }
  return -1;
}

static PyObject *engine_write_bytes_to_buffer(mcpy_engine *self, PyObject *args,
                                              PyObject *kw) {
  static char *kwlist[] = {"dest_address", "src_ptr", "length", NULL};
  uintptr_t dst;
  Py_buffer src;
  size_t len;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&s*O&:write_bytes_to_buffer", kwlist,
                                   mcpy_conv_addr, &dst, &src, mcpy_conv_size, &len))
    return NULL;
  if (len > (size_t)src.len) {
    PyErr_Format(PyExc_ValueError, "write_bytes_to_buffer: length %zu exceeds the "
                 "%zd bytes given", len, src.len);
    PyBuffer_Release(&src);
    return NULL;
  }
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = safe_copy((void *)dst, src.buf, len, 1);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&src);
  if (rc)
    mcpy_warn("write_bytes_to_buffer: [0x%lx, +%zu) is not writable memory",
              (unsigned long)dst, len);
  return PyLong_FromLong(rc ? MC_ERANGE : 0);
}

static PyObject *engine_read_bytes_from_buffer(mcpy_engine *self, PyObject *args,
                                               PyObject *kw) {
  static char *kwlist[] = {"source_address", "length", NULL};
  uintptr_t src;
  size_t len;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&:read_bytes_from_buffer", kwlist,
                                   mcpy_conv_addr, &src, mcpy_conv_size, &len))
    return NULL;
  if (len > PY_SSIZE_T_MAX)
    return PyErr_NoMemory();
  PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
  if (!out)
    return NULL;
  int rc;
  char *dst = PyBytes_AS_STRING(out);
  Py_BEGIN_ALLOW_THREADS
  rc = safe_copy(dst, (const void *)src, len, 0);
  Py_END_ALLOW_THREADS
  if (rc) {
    Py_DECREF(out);
    PyErr_Format(PyExc_ValueError,
                 "read_bytes_from_buffer: [%p, +%zu) is not readable memory",
                 (void *)src, len);
    return NULL;
  }
  return out;
}

PyMethodDef mcpy_engine_mem_methods[] = {
    {"register_memory", (PyCFunction)(void (*)(void))engine_register_memory,
     METH_VARARGS | METH_KEYWORDS,
     "register_memory(buffer_addr, capacity, location='*') -> int"},
    {"unregister_memory", (PyCFunction)(void (*)(void))engine_unregister_memory,
     METH_VARARGS | METH_KEYWORDS, "unregister_memory(buffer_addr) -> int"},
    {"batch_register_memory", (PyCFunction)(void (*)(void))engine_batch_register_memory,
     METH_VARARGS | METH_KEYWORDS,
     "batch_register_memory(buffer_addresses, capacities, location='*') -> int"},
    {"batch_unregister_memory",
     (PyCFunction)(void (*)(void))engine_batch_unregister_memory,
     METH_VARARGS | METH_KEYWORDS, "batch_unregister_memory(buffer_addresses) -> int"},
    {"allocate_managed_buffer",
     (PyCFunction)(void (*)(void))engine_allocate_managed_buffer,
     METH_VARARGS | METH_KEYWORDS,
     "allocate_managed_buffer(length) -> address of registered memory, 0 on failure"},
    {"free_managed_buffer", (PyCFunction)(void (*)(void))engine_free_managed_buffer,
     METH_VARARGS | METH_KEYWORDS, "free_managed_buffer(buffer_addr, length) -> int"},
    {"write_bytes_to_buffer", (PyCFunction)(void (*)(void))engine_write_bytes_to_buffer,
     METH_VARARGS | METH_KEYWORDS,
     "write_bytes_to_buffer(dest_address, src_ptr, length) -> int"},
    {"read_bytes_from_buffer",
     (PyCFunction)(void (*)(void))engine_read_bytes_from_buffer,
     METH_VARARGS | METH_KEYWORDS, "read_bytes_from_buffer(source_address, length) -> bytes"},
    {NULL, NULL, 0, NULL},
};
