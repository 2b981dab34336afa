/* The module mooncake._store: the C half of mooncake.store (the Store base
 * class and BufferHandle), over libmooncake-store's mooncake/store.h. */
#include "store.h"

static PyMethodDef all_methods[64];

static int join_methods(void) {
  PyMethodDef *parts[] = {mcpy_store_type_methods, mcpy_store_ops_methods};
  size_t k = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    for (PyMethodDef *m = parts[i]; m->ml_name; m++) {
      if (k + 1 >= sizeof all_methods / sizeof all_methods[0])
        return -1;
      all_methods[k++] = *m;
    }
  return 0;
}

static PyObject *mod_errname(PyObject *m, PyObject *arg) {
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred())
    return NULL;
  return PyUnicode_FromString(mc_store_errname((int)v));
}

static PyMethodDef mod_methods[] = {
    {"errname", (PyCFunction)mod_errname, METH_O,
     "errname(code) -> the ErrorCode name, e.g. 'OBJECT_NOT_FOUND'"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef store_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mooncake._store",
    .m_doc = "The C half of mooncake.store (import mooncake.store instead).",
    .m_size = -1,
    .m_methods = mod_methods,
};

PyMODINIT_FUNC PyInit__store(void); /* the entry point Python looks up */
PyMODINIT_FUNC PyInit__store(void) {
  if (join_methods())
    return NULL;
  mcpy_store_type.tp_methods = all_methods;
  if (PyType_Ready(&mcpy_store_type) < 0 || PyType_Ready(&mcpy_bufhandle_type) < 0)
    return NULL;
  PyObject *m = PyModule_Create(&store_module);
  if (!m)
    return NULL;
  if (PyModule_AddObjectRef(m, "Store", (PyObject *)&mcpy_store_type) ||
      PyModule_AddObjectRef(m, "BufferHandle", (PyObject *)&mcpy_bufhandle_type))
    goto fail;
  /* The ErrorCode values, by name (OBJECT_NOT_FOUND = -704, ...). */
#define MCPY_ADD_CODE_(name, value, text)                                      \
  if (PyModule_AddIntConstant(m, #name + 9, value))                           \
    goto fail;
  MC_STORE_ERROR_TABLE(MCPY_ADD_CODE_)
#undef MCPY_ADD_CODE_
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
