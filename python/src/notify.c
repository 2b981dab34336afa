/* TransferNotify and its wire form.
 *
 * Upstream's notification carries two strings, a name chosen by the sender
 * and a message; libmooncake's carries bytes and tags them with the
 * sender's segment name.  The binding packs (name, msg) into the bytes as
 *   "MCPYNTF1" | name length (2 bytes, little-endian) | name | msg
 * and unpacks that form on receipt.  A payload in any other form (a C
 * program's mc_batch_submit_notify) is delivered as name = the sender's
 * segment name, msg = the payload. */
#include "mcpy.h"

#include <string.h>

#include <structmember.h>

#define MAGIC "MCPYNTF1"
#define MAGIC_LEN 8

typedef struct {
  PyObject_HEAD
  PyObject *name;
  PyObject *msg;
} notify_obj;

static int notify_init(notify_obj *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", "msg", NULL};
  PyObject *name = NULL, *msg = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:TransferNotify", kwlist, &name,
                                   &msg))
    return -1;
  PyObject *both[2] = {name, msg};
  for (int i = 0; i < 2; i++)
    if (both[i] && !PyUnicode_Check(both[i]) && !PyBytes_Check(both[i])) {
      PyErr_Format(PyExc_TypeError, "TransferNotify %s must be str or bytes, not %.100s",
                   i ? "msg" : "name", Py_TYPE(both[i])->tp_name);
      return -1;
    }
  PyObject *empty = PyUnicode_FromString("");
  if (!empty)
    return -1;
  Py_XSETREF(self->name, name ? Py_NewRef(name) : Py_NewRef(empty));
  Py_XSETREF(self->msg, msg ? Py_NewRef(msg) : Py_NewRef(empty));
  Py_DECREF(empty);
  return 0;
}

static void notify_dealloc(notify_obj *self) {
  Py_XDECREF(self->name);
  Py_XDECREF(self->msg);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *notify_repr(notify_obj *self) {
  return PyUnicode_FromFormat("TransferNotify(name=%R, msg=%R)",
                              self->name ? self->name : Py_None,
                              self->msg ? self->msg : Py_None);
}

static PyMemberDef notify_members[] = {
    {"name", T_OBJECT, offsetof(notify_obj, name), 0, "the sender's name"},
    {"msg", T_OBJECT, offsetof(notify_obj, msg), 0, "the message"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject mcpy_notify_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mooncake.engine.TransferNotify",
    .tp_basicsize = sizeof(notify_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "TransferNotify(name='', msg=''): a notification sent after a "
              "batch of writes lands (transfer_sync / batch_transfer_sync with "
              "notify=) and received by get_notifies().",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)notify_init,
    .tp_dealloc = (destructor)notify_dealloc,
    .tp_repr = (reprfunc)notify_repr,
    .tp_members = notify_members,
};

/* str or bytes -> bytes view; ref in *keep. */
static int as_bytes(PyObject *o, const char *what, PyObject **keep,
                    const char **p, Py_ssize_t *n) {
  if (PyUnicode_Check(o)) {
    *keep = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
  } else if (PyBytes_Check(o)) {
    *keep = Py_NewRef(o);
  } else {
    PyErr_Format(PyExc_TypeError, "TransferNotify.%s must be str or bytes, not %.100s",
                 what, o ? Py_TYPE(o)->tp_name : "None");
    return -1;
  }
  if (!*keep)
    return -1;
  *p = PyBytes_AS_STRING(*keep);
  *n = PyBytes_GET_SIZE(*keep);
  return 0;
}

Py_ssize_t mcpy_notify_pack(PyObject *notify, uint8_t *buf, size_t cap) {
  if (!PyObject_TypeCheck(notify, &mcpy_notify_type)) {
    PyErr_Format(PyExc_TypeError, "notify must be a TransferNotify or None, not %.100s",
                 Py_TYPE(notify)->tp_name);
    return -1;
  }
  notify_obj *n = (notify_obj *)notify;
  PyObject *kn = NULL, *km = NULL;
  const char *name, *msg;
  Py_ssize_t nl, ml;
  Py_ssize_t total = -1;
  if (as_bytes(n->name, "name", &kn, &name, &nl) || as_bytes(n->msg, "msg", &km, &msg, &ml))
    goto out;
  if (nl > 0xffff || (size_t)(MAGIC_LEN + 2 + nl + ml) > cap) {
    PyErr_Format(PyExc_ValueError,
                 "TransferNotify too long: name and msg take %zd bytes, at most %zu fit",
                 nl + ml, cap - MAGIC_LEN - 2);
    goto out;
  }
  memcpy(buf, MAGIC, MAGIC_LEN);
  buf[MAGIC_LEN] = (uint8_t)(nl & 0xff);
  buf[MAGIC_LEN + 1] = (uint8_t)(nl >> 8);
  memcpy(buf + MAGIC_LEN + 2, name, (size_t)nl);
  memcpy(buf + MAGIC_LEN + 2 + nl, msg, (size_t)ml);
  total = MAGIC_LEN + 2 + nl + ml;
out:
  Py_XDECREF(kn);
  Py_XDECREF(km);
  return total;
}

static PyObject *text(const void *p, size_t n) {
  return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
}

PyObject *mcpy_notify_unpack(const mc_notification *n) {
  PyObject *name = NULL, *msg = NULL;
  size_t len = n->len <= MC_NOTIFY_MAX ? n->len : MC_NOTIFY_MAX;
  size_t nl = 0;
  if (len >= MAGIC_LEN + 2 && memcmp(n->msg, MAGIC, MAGIC_LEN) == 0)
    nl = n->msg[MAGIC_LEN] | (size_t)n->msg[MAGIC_LEN + 1] << 8;
  if (len >= MAGIC_LEN + 2 && memcmp(n->msg, MAGIC, MAGIC_LEN) == 0 &&
      MAGIC_LEN + 2 + nl <= len) {
    name = text(n->msg + MAGIC_LEN + 2, nl);
    msg = text(n->msg + MAGIC_LEN + 2 + nl, len - MAGIC_LEN - 2 - nl);
  } else {
    name = text(n->peer, strnlen(n->peer, sizeof n->peer));
    msg = text(n->msg, len);
  }
  if (!name || !msg) {
    Py_XDECREF(name);
    Py_XDECREF(msg);
    return NULL;
  }
  notify_obj *o = PyObject_New(notify_obj, &mcpy_notify_type);
  if (!o) {
    Py_DECREF(name);
    Py_DECREF(msg);
    return NULL;
  }
  o->name = name;
  o->msg = msg;
  return (PyObject *)o;
}
