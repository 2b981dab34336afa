/* ReplicateConfig objects -> mc_store_replicate_config, and key lists. */
#include "store.h"

#include <string.h>

/* soft_pin_action values (mooncake.store.SoftPinAction, as upstream). */
enum { PIN_PRESERVE = 0, PIN_ENABLE = 1, PIN_DISABLE = 2 };

static int attr_long(PyObject *o, const char *name, long dflt, long *out) {
  PyObject *v = PyObject_GetAttrString(o, name);
  if (!v) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
      return -1;
    PyErr_Clear();
    *out = dflt;
    return 0;
  }
  if (!PyLong_Check(v)) { /* bool is an int */
    PyErr_Format(PyExc_TypeError, "ReplicateConfig.%s must be an int, not %.100s", name,
                 Py_TYPE(v)->tp_name);
    Py_DECREF(v);
    return -1;
  }
  *out = PyLong_AsLong(v);
  Py_DECREF(v);
  return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int add_name(mcpy_rcfg *r, PyObject *s) {
  if (!PyUnicode_Check(s)) {
    PyErr_Format(PyExc_TypeError, "preferred segments must be str, not %.100s",
                 Py_TYPE(s)->tp_name);
    return -1;
  }
  if (PyUnicode_GET_LENGTH(s) == 0)
    return 0;
  if (r->c.preferred_count >= MC_STORE_MAX_PREFERRED) {
    PyErr_Format(PyExc_ValueError, "at most %d preferred segments", MC_STORE_MAX_PREFERRED);
    return -1;
  }
  const char *u = PyUnicode_AsUTF8(s);
  if (!u)
    return -1;
  r->keep[r->c.preferred_count] = Py_NewRef(s);
  r->names[r->c.preferred_count++] = u;
  return 0;
}

int mcpy_rcfg_from(PyObject *o, mcpy_rcfg *r) {
  memset(r, 0, sizeof *r);
  if (!o || o == Py_None)
    return 0;
  r->used = 1;
  long replicas, soft, hard, action;
  if (attr_long(o, "replica_num", 1, &replicas) || attr_long(o, "with_soft_pin", 0, &soft) ||
      attr_long(o, "with_hard_pin", 0, &hard) ||
      attr_long(o, "soft_pin_action", PIN_PRESERVE, &action))
    return -1;
  if (replicas < 1 || replicas > MC_STORE_MAX_REPLICAS) {
    PyErr_Format(PyExc_ValueError, "ReplicateConfig.replica_num must be 1..%d, not %ld",
                 MC_STORE_MAX_REPLICAS, replicas);
    return -1;
  }
  if (action < PIN_PRESERVE || action > PIN_DISABLE) {
    PyErr_Format(PyExc_ValueError, "ReplicateConfig.soft_pin_action: unknown value %ld",
                 action);
    return -1;
  }
  r->c.replica_num = (uint32_t)replicas;
  r->c.with_soft_pin = action == PIN_ENABLE ? 1 : action == PIN_DISABLE ? 0 : soft != 0;
  r->c.with_hard_pin = hard != 0;
  /* preferred_segment first (upstream's single form), then the list. */
  PyObject *one = PyObject_GetAttrString(o, "preferred_segment");
  if (!one && PyErr_ExceptionMatches(PyExc_AttributeError))
    PyErr_Clear();
  else if (!one || (one != Py_None && add_name(r, one))) {
    Py_XDECREF(one);
    mcpy_rcfg_release(r);
    return -1;
  }
  Py_XDECREF(one);
  PyObject *list = PyObject_GetAttrString(o, "preferred_segments");
  if (!list && PyErr_ExceptionMatches(PyExc_AttributeError)) {
    PyErr_Clear();
  } else if (!list) {
    mcpy_rcfg_release(r);
    return -1;
  } else if (list != Py_None) {
    PyObject *fast = PySequence_Fast(list, "ReplicateConfig.preferred_segments must be a list");
    for (Py_ssize_t i = 0; fast && i < PySequence_Fast_GET_SIZE(fast); i++)
      if (add_name(r, PySequence_Fast_GET_ITEM(fast, i))) {
        Py_CLEAR(fast);
        break;
      }
    if (!fast) {
      Py_DECREF(list);
      mcpy_rcfg_release(r);
      return -1;
    }
    Py_DECREF(fast);
  }
  Py_XDECREF(list);
  r->c.preferred_segments = r->c.preferred_count ? r->names : NULL;
  return 0;
}

void mcpy_rcfg_release(mcpy_rcfg *r) {
  for (uint32_t i = 0; i < r->c.preferred_count; i++)
    Py_CLEAR(r->keep[i]);
  r->c.preferred_count = 0;
}

const mc_store_replicate_config *mcpy_rcfg_ptr(const mcpy_rcfg *r) {
  return r->used ? &r->c : NULL;
}

int mcpy_keys(PyObject *seq, const char ***keys, Py_ssize_t *n, PyObject **keep) {
  if (PyUnicode_Check(seq) || PyBytes_Check(seq)) {
    PyErr_SetString(PyExc_TypeError, "keys must be a list of str, not a single string");
    return -1;
  }
  PyObject *fast = PySequence_Fast(seq, "keys must be a list of str");
  if (!fast)
    return -1;
  Py_ssize_t k = PySequence_Fast_GET_SIZE(fast);
  const char **v = PyMem_Malloc((size_t)(k ? k : 1) * sizeof *v);
  if (!v) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < k; i++) {
    PyObject *s = PySequence_Fast_GET_ITEM(fast, i);
    Py_ssize_t len;
    if (!PyUnicode_Check(s)) {
      PyErr_Format(PyExc_TypeError, "keys must be str, not %.100s", Py_TYPE(s)->tp_name);
      v[i] = NULL;
    } else {
      v[i] = PyUnicode_AsUTF8AndSize(s, &len);
      if (v[i] && (size_t)len != strlen(v[i])) {
        PyErr_SetString(PyExc_ValueError, "a key contains a NUL character");
        v[i] = NULL;
      }
    }
    if (!v[i]) {
      PyMem_Free(v);
      Py_DECREF(fast);
      return -1;
    }
  }
  *keys = v;
  *n = k;
  *keep = fast;
  return 0;
}
