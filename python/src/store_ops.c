/* MooncakeDistributedStore's data calls: put/get and their batch, zero-copy,
 * upsert and range forms; queries and removal.  Return conventions as
 * upstream: 0 or a negative ErrorCode value; get() gives b"" for a missing
 * key; byte counts for get_into. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "mcpy.h" /* the address converters (conv.c) */

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) (PyCFunction)(void (*)(void))(f)

/* ---- copying puts ---- */

typedef int (*put_fn)(mc_store *, const char *, const void *, size_t,
                      const mc_store_replicate_config *);

static PyObject *put_common(mcpy_store *self, PyObject *args, PyObject *kw,
                            const char *fmt, put_fn fn, const char *what) {
  static char *kwlist[] = {"key", "value", "config", NULL};
  const char *key;
  Py_buffer v;
  PyObject *cfg = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &key, &v, &cfg))
    return NULL;
  mcpy_rcfg r;
  if (mcpy_store_need(self) || mcpy_rcfg_from(cfg, &r)) {
    PyBuffer_Release(&v);
    return NULL;
  }
  int rc;
  const mc_store_replicate_config *rp = mcpy_rcfg_ptr(&r);
  MCPY_STORE_CALL(self, rc = fn(st_, key, v.buf, (size_t)v.len, rp));
  mcpy_rcfg_release(&r);
  PyBuffer_Release(&v);
  return PyLong_FromLong(rc);
}

static PyObject *st_put(mcpy_store *self, PyObject *a, PyObject *k) {
  return put_common(self, a, k, "sy*|O:put", mc_store_put, "put");
}

static PyObject *st_upsert(mcpy_store *self, PyObject *a, PyObject *k) {
  return put_common(self, a, k, "sy*|O:upsert", mc_store_upsert, "upsert");
}

/* put_parts(key, *parts, config=None): the parts joined into one value. */
static PyObject *st_put_parts(mcpy_store *self, PyObject *args, PyObject *kw) {
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (n < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0))) {
    PyErr_SetString(PyExc_TypeError, "put_parts(key, *parts, config=None): key must be str");
    return NULL;
  }
  PyObject *cfg = kw ? PyDict_GetItemString(kw, "config") : NULL;
  if (kw && PyDict_GET_SIZE(kw) > (cfg ? 1 : 0)) {
    PyErr_SetString(PyExc_TypeError, "put_parts takes only config= as a keyword");
    return NULL;
  }
  PyObject *joined = PyByteArray_FromStringAndSize(NULL, 0);
  for (Py_ssize_t i = 1; joined && i < n; i++) {
    Py_buffer b;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, i), &b, PyBUF_SIMPLE)) {
      Py_CLEAR(joined);
      break;
    }
    Py_ssize_t at = PyByteArray_GET_SIZE(joined);
    if (PyByteArray_Resize(joined, at + b.len) == 0)
      memcpy(PyByteArray_AS_STRING(joined) + at, b.buf, (size_t)b.len);
    else
      Py_CLEAR(joined);
    PyBuffer_Release(&b);
  }
  if (!joined)
    return NULL;
  PyObject *a = Py_BuildValue("(OOO)", PyTuple_GET_ITEM(args, 0), joined,
                              cfg ? cfg : Py_None);
  Py_DECREF(joined);
  if (!a)
    return NULL;
  PyObject *r = st_put(self, a, NULL);
  Py_DECREF(a);
  return r;
}

/* put_batch / upsert_batch(keys, values, config=None) -> 0 or first error */
static PyObject *batch_put_common(mcpy_store *self, PyObject *args, PyObject *kw,
                                  const char *fmt, int upsert) {
  static char *kwlist[] = {"keys", "values", "config", NULL};
  PyObject *ok, *ov, *cfg = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &ok, &ov, &cfg))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  const char **keys = NULL;
  Py_ssize_t n;
  PyObject *keep = NULL, *fv = NULL;
  Py_buffer *bufs = NULL;
  const void **vals = NULL;
  size_t *sizes = NULL;
  int *res = NULL;
  Py_ssize_t got = 0;
  PyObject *out = NULL;
  mcpy_rcfg r;
  memset(&r, 0, sizeof r);
  if (mcpy_keys(ok, &keys, &n, &keep) || mcpy_rcfg_from(cfg, &r))
    goto done;
  fv = PySequence_Fast(ov, "values must be a list of bytes-like objects");
  if (!fv)
    goto done;
  if (PySequence_Fast_GET_SIZE(fv) != n) {
    mcpy_store_warn(upsert ? "upsert_batch" : "put_batch", "(keys and values differ in length)",
                    MC_STORE_INVALID_PARAMS);
    out = PyLong_FromLong(MC_STORE_INVALID_PARAMS);
    goto done;
  }
  bufs = PyMem_Calloc((size_t)n + 1, sizeof *bufs);
  vals = PyMem_Calloc((size_t)n + 1, sizeof *vals);
  sizes = PyMem_Calloc((size_t)n + 1, sizeof *sizes);
  res = PyMem_Calloc((size_t)n + 1, sizeof *res);
  if (!bufs || !vals || !sizes || !res) {
    PyErr_NoMemory();
    goto done;
  }
  for (; got < n; got++) {
    if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fv, got), &bufs[got], PyBUF_SIMPLE))
      goto done;
    vals[got] = bufs[got].buf;
    sizes[got] = (size_t)bufs[got].len;
  }
  int rc = 0;
  const mc_store_replicate_config *rp = mcpy_rcfg_ptr(&r);
  if (!upsert) {
    MCPY_STORE_CALL(self, rc = n ? mc_store_batch_put(st_, keys, vals, sizes, (uint32_t)n,
                                                      rp, res)
                                 : 0);
  } else {
    /* the C API has no batch upsert: one call per key */
    MCPY_STORE_CALL(self, for (Py_ssize_t i = 0; i < n; i++) {
      res[i] = mc_store_upsert(st_, keys[i], vals[i], sizes[i], rp);
      if (res[i] && !rc)
        rc = res[i];
    });
  }
  out = PyLong_FromLong(rc);
done:
  for (Py_ssize_t i = 0; bufs && i < got; i++)
    PyBuffer_Release(&bufs[i]);
  PyMem_Free(bufs);
  PyMem_Free((void *)vals);
  PyMem_Free(sizes);
  PyMem_Free(res);
  PyMem_Free((void *)keys);
  mcpy_rcfg_release(&r);
  Py_XDECREF(fv);
  Py_XDECREF(keep);
  return out;
}

static PyObject *st_put_batch(mcpy_store *self, PyObject *a, PyObject *k) {
  return batch_put_common(self, a, k, "OO|O:put_batch", 0);
}

static PyObject *st_upsert_batch(mcpy_store *self, PyObject *a, PyObject *k) {
  return batch_put_common(self, a, k, "OO|O:upsert_batch", 1);
}

/* ---- copying gets ---- */

/* Reads key into a library allocation: 0 with *p and *n set, or a negative code. */
static int get_alloc(mc_store *st, const char *key, void **p, size_t *n) {
  *p = NULL;
  *n = 0;
  return mc_store_get_alloc(st, key, p, n);
}

static PyObject *st_get(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"key", NULL};
  const char *key;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:get", kwlist, &key))
    return NULL;
  if (!self->st) {
    mcpy_store_warn("get", "(not set up)", MC_STORE_INVALID_PARAMS);
    return PyBytes_FromStringAndSize(NULL, 0);
  }
  void *p;
  size_t n;
  int rc;
  MCPY_STORE_CALL(self, rc = get_alloc(st_, key, &p, &n));
  if (rc) {
    if (rc != MC_STORE_OBJECT_NOT_FOUND)
      mcpy_store_warn("get", key, rc);
    return PyBytes_FromStringAndSize(NULL, 0); /* upstream: b"" */
  }
  PyObject *b = PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
  mc_store_free(p);
  return b;
}

/* get_batch (bytes) and batch_get_buffer (BufferHandle/None). */
static PyObject *get_many(mcpy_store *self, PyObject *args, PyObject *kw, const char *fmt,
                          int handles) {
  static char *kwlist[] = {"keys", NULL};
  PyObject *ok;
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &ok))
    return NULL;
  const char **keys;
  Py_ssize_t n;
  PyObject *keep;
  if (mcpy_keys(ok, &keys, &n, &keep))
    return NULL;
  void **p = PyMem_Calloc((size_t)n + 1, sizeof *p);
  size_t *sz = PyMem_Calloc((size_t)n + 1, sizeof *sz);
  int *rc = PyMem_Calloc((size_t)n + 1, sizeof *rc);
  PyObject *list = NULL;
  if (!p || !sz || !rc) {
    PyErr_NoMemory();
    goto done;
  }
  if (self->st) {
    MCPY_STORE_CALL(self, for (Py_ssize_t i = 0; i < n; i++)
                              rc[i] = get_alloc(st_, keys[i], &p[i], &sz[i]));
  } else {
    for (Py_ssize_t i = 0; i < n; i++)
      rc[i] = MC_STORE_INVALID_PARAMS;
  }
  list = PyList_New(n);
  for (Py_ssize_t i = 0; list && i < n; i++) {
    PyObject *o;
    if (rc[i])
      o = handles ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(NULL, 0);
    else if (handles) {
      o = mcpy_bufhandle_new(p[i], sz[i]);
      p[i] = NULL; /* owned by the handle now */
    } else
      o = PyBytes_FromStringAndSize(p[i], (Py_ssize_t)sz[i]);
    if (!o)
      Py_CLEAR(list);
    else
      PyList_SET_ITEM(list, i, o);
  }
done:
  for (Py_ssize_t i = 0; p && i < n; i++)
    mc_store_free(p[i]);
  PyMem_Free(p);
  PyMem_Free(sz);
  PyMem_Free(rc);
  PyMem_Free((void *)keys);
  Py_DECREF(keep);
  return list;
}

static PyObject *st_get_batch(mcpy_store *self, PyObject *a, PyObject *k) {
  return get_many(self, a, k, "O:get_batch", 0);
}

static PyObject *st_batch_get_buffer(mcpy_store *self, PyObject *a, PyObject *k) {
  if (mcpy_store_need(self))
    return NULL;
  return get_many(self, a, k, "O:batch_get_buffer", 1);
}

static PyObject *st_get_buffer(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"key", NULL};
  const char *key;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:get_buffer", kwlist, &key))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  void *p;
  size_t n;
  int rc;
  MCPY_STORE_CALL(self, rc = get_alloc(st_, key, &p, &n));
  if (rc)
    Py_RETURN_NONE;
  return mcpy_bufhandle_new(p, n);
}

/* ---- zero-copy ---- */

static PyObject *st_register_buffer(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"buffer_ptr", "size", NULL};
  uintptr_t p;
  size_t n;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&:register_buffer", kwlist, mcpy_conv_addr,
                                   &p, mcpy_conv_size, &n))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int rc;
  MCPY_STORE_CALL(self, rc = mc_store_register_buffer(st_, (void *)p, n));
  return PyLong_FromLong(rc);
}

static PyObject *st_unregister_buffer(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"buffer_ptr", NULL};
  uintptr_t p;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&:unregister_buffer", kwlist, mcpy_conv_addr,
                                   &p))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int rc;
  MCPY_STORE_CALL(self, rc = mc_store_unregister_buffer(st_, (void *)p));
  return PyLong_FromLong(rc);
}

typedef int (*put_from_fn)(mc_store *, const char *, const void *, size_t,
                           const mc_store_replicate_config *);

static PyObject *put_from_common(mcpy_store *self, PyObject *args, PyObject *kw,
                                 const char *fmt, put_from_fn fn) {
  static char *kwlist[] = {"key", "buffer_ptr", "size", "config", NULL};
  const char *key;
  uintptr_t p;
  size_t n;
  PyObject *cfg = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &key, mcpy_conv_addr, &p,
                                   mcpy_conv_size, &n, &cfg))
    return NULL;
  mcpy_rcfg r;
  if (mcpy_store_need(self) || mcpy_rcfg_from(cfg, &r))
    return NULL;
  int rc;
  const mc_store_replicate_config *rp = mcpy_rcfg_ptr(&r);
  MCPY_STORE_CALL(self, rc = fn(st_, key, (const void *)p, n, rp));
  mcpy_rcfg_release(&r);
  return PyLong_FromLong(rc);
}

static PyObject *st_put_from(mcpy_store *self, PyObject *a, PyObject *k) {
  return put_from_common(self, a, k, "sO&O&|O:put_from", mc_store_put_from);
}

static PyObject *st_upsert_from(mcpy_store *self, PyObject *a, PyObject *k) {
  return put_from_common(self, a, k, "sO&O&|O:upsert_from", mc_store_upsert_from);
}

static PyObject *st_get_into(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"key", "buffer_ptr", "size", NULL};
  const char *key;
  uintptr_t p;
  size_t n;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "sO&O&:get_into", kwlist, &key, mcpy_conv_addr,
                                   &p, mcpy_conv_size, &n))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int64_t rc;
  MCPY_STORE_CALL(self, rc = mc_store_get_into(st_, key, (void *)p, n));
  return PyLong_FromLongLong(rc);
}

/* The lists of the batch zero-copy forms. */
typedef struct zlists {
  const char **keys;
  PyObject *keep;
  uint64_t *ptrs, *sizes;
  Py_ssize_t n;
} zlists;

static void zl_free(zlists *z) {
  PyMem_Free((void *)z->keys);
  PyMem_Free(z->ptrs);
  PyMem_Free(z->sizes);
  Py_XDECREF(z->keep);
}

/* 1: ok, 0: exception set, -1: lengths differ (INVALID_PARAMS) */
static int zl_parse(zlists *z, PyObject *k, PyObject *p, PyObject *s) {
  memset(z, 0, sizeof *z);
  Py_ssize_t np, ns;
  if (mcpy_keys(k, &z->keys, &z->n, &z->keep) ||
      mcpy_u64_seq(p, "buffer_ptrs", &z->ptrs, &np) || mcpy_u64_seq(s, "sizes", &z->sizes, &ns))
    return 0;
  return np == z->n && ns == z->n && z->n <= UINT32_MAX ? 1 : -1;
}

static PyObject *int_list(const int64_t *v, Py_ssize_t n) {
  PyObject *l = PyList_New(n);
  for (Py_ssize_t i = 0; l && i < n; i++) {
    PyObject *o = PyLong_FromLongLong(v[i]);
    if (!o)
      Py_CLEAR(l);
    else
      PyList_SET_ITEM(l, i, o);
  }
  return l;
}

static PyObject *filled_list(Py_ssize_t n, int64_t code) {
  PyObject *l = PyList_New(n);
  for (Py_ssize_t i = 0; l && i < n; i++)
    PyList_SET_ITEM(l, i, PyLong_FromLongLong(code));
  return l;
}

/* batch_put_from / batch_upsert_from -> a code per key */
static PyObject *batch_from_common(mcpy_store *self, PyObject *args, PyObject *kw,
                                   const char *fmt, int upsert) {
  static char *kwlist[] = {"keys", "buffer_ptrs", "sizes", "config", NULL};
  PyObject *k, *p, *s, *cfg = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &k, &p, &s, &cfg))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  zlists z;
  int ok = zl_parse(&z, k, p, s);
  mcpy_rcfg r;
  memset(&r, 0, sizeof r);
  PyObject *out = NULL;
  if (ok == -1) {
    out = filled_list(z.n, MC_STORE_INVALID_PARAMS);
  } else if (ok == 1 && mcpy_rcfg_from(cfg, &r) == 0) {
    int *res = PyMem_Calloc((size_t)z.n + 1, sizeof *res);
    int64_t *r64 = PyMem_Calloc((size_t)z.n + 1, sizeof *r64);
    const void **ptrs = PyMem_Calloc((size_t)z.n + 1, sizeof *ptrs);
    size_t *sizes = PyMem_Calloc((size_t)z.n + 1, sizeof *sizes);
    if (res && r64 && ptrs && sizes) {
      for (Py_ssize_t i = 0; i < z.n; i++) {
        ptrs[i] = (const void *)(uintptr_t)z.ptrs[i];
        sizes[i] = (size_t)z.sizes[i];
      }
      const mc_store_replicate_config *rp = mcpy_rcfg_ptr(&r);
      if (!upsert) {
        MCPY_STORE_CALL(self, if (z.n) mc_store_batch_put_from(st_, z.keys, ptrs, sizes,
                                                               (uint32_t)z.n, rp, res));
      } else {
        MCPY_STORE_CALL(self, for (Py_ssize_t i = 0; i < z.n; i++) res[i] =
                                  mc_store_upsert_from(st_, z.keys[i], ptrs[i], sizes[i], rp));
      }
      for (Py_ssize_t i = 0; i < z.n; i++)
        r64[i] = res[i];
      out = int_list(r64, z.n);
    } else {
      PyErr_NoMemory();
    }
    PyMem_Free(res);
    PyMem_Free(r64);
    PyMem_Free((void *)ptrs);
    PyMem_Free(sizes);
  }
  mcpy_rcfg_release(&r);
  zl_free(&z);
  return out;
}

static PyObject *st_batch_put_from(mcpy_store *self, PyObject *a, PyObject *k) {
  return batch_from_common(self, a, k, "OOO|O:batch_put_from", 0);
}

static PyObject *st_batch_upsert_from(mcpy_store *self, PyObject *a, PyObject *k) {
  return batch_from_common(self, a, k, "OOO|O:batch_upsert_from", 1);
}

static PyObject *st_batch_get_into(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"keys", "buffer_ptrs", "sizes", NULL};
  PyObject *k, *p, *s;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:batch_get_into", kwlist, &k, &p, &s))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  zlists z;
  int ok = zl_parse(&z, k, p, s);
  PyObject *out = NULL;
  if (ok == -1) {
    out = filled_list(z.n, MC_STORE_INVALID_PARAMS);
  } else if (ok == 1) {
    int64_t *res = PyMem_Calloc((size_t)z.n + 1, sizeof *res);
    void **ptrs = PyMem_Calloc((size_t)z.n + 1, sizeof *ptrs);
    size_t *sizes = PyMem_Calloc((size_t)z.n + 1, sizeof *sizes);
    if (res && ptrs && sizes) {
      for (Py_ssize_t i = 0; i < z.n; i++) {
        ptrs[i] = (void *)(uintptr_t)z.ptrs[i];
        sizes[i] = (size_t)z.sizes[i];
      }
      MCPY_STORE_CALL(self, if (z.n) mc_store_batch_get_into(st_, z.keys, ptrs, sizes,
                                                             (uint32_t)z.n, res));
      out = int_list(res, z.n);
    } else {
      PyErr_NoMemory();
    }
    PyMem_Free(res);
    PyMem_Free(ptrs);
    PyMem_Free(sizes);
  }
  zl_free(&z);
  return out;
}

/* get_into_ranges(buffer_ptrs, all_keys, all_dst_offsets, all_src_offsets,
 * all_sizes) -> results[buffer][key][range]: bytes read, or the negative
 * code of the key's read for each of its ranges.  Upstream's shape: per
 * destination buffer, per key, per range. */
static PyObject *st_get_into_ranges(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"buffer_ptrs", "all_keys", "all_dst_offsets", "all_src_offsets",
                           "all_sizes", NULL};
  PyObject *ob, *ok, *od, *os, *oz;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO:get_into_ranges", kwlist, &ob, &ok, &od,
                                   &os, &oz))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  uint64_t *bases = NULL;
  Py_ssize_t nb;
  if (mcpy_u64_seq(ob, "buffer_ptrs", &bases, &nb))
    return NULL;
  PyObject *fk = NULL, *fd = NULL, *fs = NULL, *fz = NULL, *out = PyList_New(0);
  fk = PySequence_Fast(ok, "all_keys must be a list per buffer");
  fd = fk ? PySequence_Fast(od, "all_dst_offsets must be a list per buffer") : NULL;
  fs = fd ? PySequence_Fast(os, "all_src_offsets must be a list per buffer") : NULL;
  fz = fs ? PySequence_Fast(oz, "all_sizes must be a list per buffer") : NULL;
  if (!fz || !out)
    goto fail;
  if (PySequence_Fast_GET_SIZE(fk) != nb || PySequence_Fast_GET_SIZE(fd) != nb ||
      PySequence_Fast_GET_SIZE(fs) != nb || PySequence_Fast_GET_SIZE(fz) != nb) {
    PyErr_SetString(PyExc_ValueError, "get_into_ranges: the five lists differ in length");
    goto fail;
  }
  for (Py_ssize_t b = 0; b < nb; b++) {
    const char **keys;
    Py_ssize_t nk;
    PyObject *keep;
    if (mcpy_keys(PySequence_Fast_GET_ITEM(fk, b), &keys, &nk, &keep))
      goto fail;
    PyObject *kd = PySequence_Fast(PySequence_Fast_GET_ITEM(fd, b), "dst offsets per key");
    PyObject *ks = kd ? PySequence_Fast(PySequence_Fast_GET_ITEM(fs, b), "src offsets per key")
                      : NULL;
    PyObject *kz = ks ? PySequence_Fast(PySequence_Fast_GET_ITEM(fz, b), "sizes per key")
                      : NULL;
    PyObject *per_buf = kz ? PyList_New(0) : NULL;
    int bad = !per_buf;
    if (!bad && (PySequence_Fast_GET_SIZE(kd) != nk || PySequence_Fast_GET_SIZE(ks) != nk ||
                 PySequence_Fast_GET_SIZE(kz) != nk)) {
      PyErr_SetString(PyExc_ValueError, "get_into_ranges: keys and offsets differ in length");
      bad = 1;
    }
    for (Py_ssize_t i = 0; !bad && i < nk; i++) {
      uint64_t *dst = NULL, *src = NULL, *len = NULL;
      Py_ssize_t n1, n2, n3;
      bad = mcpy_u64_seq(PySequence_Fast_GET_ITEM(kd, i), "dst offsets", &dst, &n1) ||
            mcpy_u64_seq(PySequence_Fast_GET_ITEM(ks, i), "src offsets", &src, &n2) ||
            mcpy_u64_seq(PySequence_Fast_GET_ITEM(kz, i), "sizes", &len, &n3);
      if (!bad && (n1 != n2 || n1 != n3 || n1 > UINT32_MAX)) {
        PyErr_SetString(PyExc_ValueError, "get_into_ranges: offsets and sizes differ in length");
        bad = 1;
      }
      mc_store_range *rg = bad ? NULL : PyMem_Calloc((size_t)n1 + 1, sizeof *rg);
      if (!bad && !rg) {
        PyErr_NoMemory();
        bad = 1;
      }
      int64_t rc = 0;
      if (!bad) {
        for (Py_ssize_t j = 0; j < n1; j++)
          rg[j] = (mc_store_range){src[j], len[j], (void *)(uintptr_t)(bases[b] + dst[j])};
        const char *key = keys[i];
        MCPY_STORE_CALL(self, rc = n1 ? mc_store_get_into_ranges(st_, key, rg, (uint32_t)n1)
                                      : 0);
      }
      PyObject *per_key = bad ? NULL : PyList_New(n1);
      for (Py_ssize_t j = 0; per_key && j < n1; j++)
        PyList_SET_ITEM(per_key, j, PyLong_FromLongLong(rc < 0 ? rc : (int64_t)len[j]));
      if (!bad && (!per_key || PyList_Append(per_buf, per_key)))
        bad = 1;
      Py_XDECREF(per_key);
      PyMem_Free(rg);
      PyMem_Free(dst);
      PyMem_Free(src);
      PyMem_Free(len);
    }
    if (!bad && PyList_Append(out, per_buf))
      bad = 1;
    Py_XDECREF(per_buf);
    Py_XDECREF(kd);
    Py_XDECREF(ks);
    Py_XDECREF(kz);
    PyMem_Free((void *)keys);
    Py_DECREF(keep);
    if (bad)
      goto fail;
  }
  PyMem_Free(bases);
  Py_DECREF(fk);
  Py_DECREF(fd);
  Py_DECREF(fs);
  Py_DECREF(fz);
  return out;
fail:
  PyMem_Free(bases);
  Py_XDECREF(fk);
  Py_XDECREF(fd);
  Py_XDECREF(fs);
  Py_XDECREF(fz);
  Py_XDECREF(out);
  return NULL;
}

/* ---- queries and removal ---- */

static PyObject *st_is_exist(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"key", NULL};
  const char *key;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:is_exist", kwlist, &key))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int rc;
  MCPY_STORE_CALL(self, rc = mc_store_exist(st_, key));
  return PyLong_FromLong(rc);
}

static PyObject *st_batch_is_exist(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"keys", NULL};
  PyObject *ok;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:batch_is_exist", kwlist, &ok))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  const char **keys;
  Py_ssize_t n;
  PyObject *keep, *out = NULL;
  if (mcpy_keys(ok, &keys, &n, &keep))
    return NULL;
  int *res = PyMem_Calloc((size_t)n + 1, sizeof *res);
  int64_t *r64 = PyMem_Calloc((size_t)n + 1, sizeof *r64);
  if (res && r64) {
    int rc = 0;
    MCPY_STORE_CALL(self, rc = n ? mc_store_batch_exist(st_, keys, (uint32_t)n, res) : 0);
    for (Py_ssize_t i = 0; i < n; i++)
      r64[i] = rc ? rc : res[i];
    out = int_list(r64, n);
  } else {
    PyErr_NoMemory();
  }
  PyMem_Free(res);
  PyMem_Free(r64);
  PyMem_Free((void *)keys);
  Py_DECREF(keep);
  return out;
}

static PyObject *st_get_size(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"key", NULL};
  const char *key;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:get_size", kwlist, &key))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int64_t rc;
  MCPY_STORE_CALL(self, rc = mc_store_get_size(st_, key));
  return PyLong_FromLongLong(rc);
}

static PyObject *st_remove(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"key", "force", NULL};
  const char *key;
  int force = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s|p:remove", kwlist, &key, &force))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int rc;
  MCPY_STORE_CALL(self, rc = mc_store_remove(st_, key, force));
  return PyLong_FromLong(rc);
}

static PyObject *st_batch_remove(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"keys", "force", NULL};
  PyObject *ok;
  int force = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:batch_remove", kwlist, &ok, &force))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  const char **keys;
  Py_ssize_t n;
  PyObject *keep, *out = NULL;
  if (mcpy_keys(ok, &keys, &n, &keep))
    return NULL;
  int64_t *res = PyMem_Calloc((size_t)n + 1, sizeof *res);
  if (res) {
    MCPY_STORE_CALL(self, for (Py_ssize_t i = 0; i < n; i++) res[i] =
                              mc_store_remove(st_, keys[i], force));
    out = int_list(res, n);
  } else {
    PyErr_NoMemory();
  }
  PyMem_Free(res);
  PyMem_Free((void *)keys);
  Py_DECREF(keep);
  return out;
}

static PyObject *st_remove_by_regex(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"regex_pattern", "force", NULL};
  const char *re;
  int force = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s|p:remove_by_regex", kwlist, &re, &force))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int64_t rc;
  MCPY_STORE_CALL(self, rc = mc_store_remove_by_regex(st_, re, force));
  return PyLong_FromLongLong(rc);
}

static PyObject *st_remove_all(mcpy_store *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"force", NULL};
  int force = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:remove_all", kwlist, &force))
    return NULL;
  if (mcpy_store_need(self))
    return NULL;
  int64_t rc;
  MCPY_STORE_CALL(self, rc = mc_store_remove_all(st_, force));
  return PyLong_FromLongLong(rc);
}

PyMethodDef mcpy_store_ops_methods[] = {
    {"put", FN(st_put), KW, "put(key, value, config=None) -> 0 or an error code"},
    {"upsert", FN(st_upsert), KW, "upsert(key, value, config=None) -> 0 or an error code"},
    {"put_parts", FN(st_put_parts), KW, "put_parts(key, *parts, config=None) -> int"},
    {"put_batch", FN(st_put_batch), KW, "put_batch(keys, values, config=None) -> int"},
    {"upsert_batch", FN(st_upsert_batch), KW, "upsert_batch(keys, values, config=None) -> int"},
    {"get", FN(st_get), KW, "get(key) -> bytes (b'' when missing)"},
    {"get_batch", FN(st_get_batch), KW, "get_batch(keys) -> list of bytes"},
    {"get_buffer", FN(st_get_buffer), KW, "get_buffer(key) -> BufferHandle or None"},
    {"batch_get_buffer", FN(st_batch_get_buffer), KW,
     "batch_get_buffer(keys) -> list of BufferHandle or None"},
    {"register_buffer", FN(st_register_buffer), KW, "register_buffer(buffer_ptr, size) -> int"},
    {"unregister_buffer", FN(st_unregister_buffer), KW, "unregister_buffer(buffer_ptr) -> int"},
    {"put_from", FN(st_put_from), KW, "put_from(key, buffer_ptr, size, config=None) -> int"},
    {"upsert_from", FN(st_upsert_from), KW,
     "upsert_from(key, buffer_ptr, size, config=None) -> int"},
    {"get_into", FN(st_get_into), KW, "get_into(key, buffer_ptr, size) -> bytes read or code"},
    {"batch_put_from", FN(st_batch_put_from), KW,
     "batch_put_from(keys, buffer_ptrs, sizes, config=None) -> list of codes"},
    {"batch_upsert_from", FN(st_batch_upsert_from), KW,
     "batch_upsert_from(keys, buffer_ptrs, sizes, config=None) -> list of codes"},
    {"batch_get_into", FN(st_batch_get_into), KW,
     "batch_get_into(keys, buffer_ptrs, sizes) -> list of bytes read or codes"},
    {"get_into_ranges", FN(st_get_into_ranges), KW,
     "get_into_ranges(buffer_ptrs, all_keys, all_dst_offsets, all_src_offsets, all_sizes)"},
    {"is_exist", FN(st_is_exist), KW, "is_exist(key) -> 1, 0 or a negative code"},
    {"batch_is_exist", FN(st_batch_is_exist), KW, "batch_is_exist(keys) -> list"},
    {"get_size", FN(st_get_size), KW, "get_size(key) -> bytes or a negative code"},
    {"remove", FN(st_remove), KW, "remove(key, force=False) -> int"},
    {"batch_remove", FN(st_batch_remove), KW, "batch_remove(keys, force=False) -> list"},
    {"remove_by_regex", FN(st_remove_by_regex), KW,
     "remove_by_regex(regex_pattern, force=False) -> count or a negative code"},
    {"remove_all", FN(st_remove_all), KW, "remove_all(force=False) -> count"},
    {NULL, NULL, 0, NULL},
};
