/* The module mooncake.engine: TransferEngine, TransferNotify and the
 * TransferOpcode enum (Read = 0, Write = 1, also as module attributes and
 * TransferEngine.TransferOpcode, as upstream exports them). */
#include "mcpy.h"

PyObject *mcpy_opcode_enum;

/* The three method tables, joined: each file keeps its own. */
static PyMethodDef all_methods[64];

static int join_methods(void) {
  PyMethodDef *parts[] = {mcpy_engine_type_methods, mcpy_engine_mem_methods,
                          mcpy_engine_xfer_methods};
  size_t k = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    for (PyMethodDef *m = parts[i]; m->ml_name; m++) {
      if (k + 1 >= sizeof all_methods / sizeof all_methods[0])
        return -1;
      all_methods[k++] = *m;
    }
  return 0;
}

static PyObject *make_opcode_enum(void) {
  PyObject *enum_mod = PyImport_ImportModule("enum");
  if (!enum_mod)
    return NULL;
  PyObject *intenum = PyObject_GetAttrString(enum_mod, "IntEnum");
  PyObject *args = Py_BuildValue("(s{s:i,s:i})", "TransferOpcode", "Read", MC_OP_READ,
                                 "Write", MC_OP_WRITE);
  PyObject *kw = Py_BuildValue("{s:s}", "module", "mooncake.engine");
  PyObject *cls = intenum && args && kw ? PyObject_Call(intenum, args, kw) : NULL;
  Py_XDECREF(kw);
  Py_XDECREF(args);
  Py_XDECREF(intenum);
  Py_DECREF(enum_mod);
  return cls;
}

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mooncake.engine",
    .m_doc = "mooncake-c's Transfer Engine: upstream Mooncake's "
             "mooncake.engine API over libmooncake.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit_engine(void); /* the entry point Python looks up */
PyMODINIT_FUNC PyInit_engine(void) {
  if (join_methods())
    return NULL;
  mcpy_engine_type.tp_methods = all_methods;
  if (PyType_Ready(&mcpy_engine_type) < 0 || PyType_Ready(&mcpy_notify_type) < 0)
    return NULL;
  PyObject *m = PyModule_Create(&engine_module);
  if (!m)
    return NULL;
  if (!mcpy_opcode_enum)
    mcpy_opcode_enum = make_opcode_enum();
  if (!mcpy_opcode_enum)
    goto fail;
  if (PyModule_AddObjectRef(m, "TransferEngine", (PyObject *)&mcpy_engine_type) ||
      PyModule_AddObjectRef(m, "TransferNotify", (PyObject *)&mcpy_notify_type) ||
      PyModule_AddObjectRef(m, "TransferOpcode", mcpy_opcode_enum) ||
      PyDict_SetItemString(mcpy_engine_type.tp_dict, "TransferOpcode", mcpy_opcode_enum))
    goto fail;
  PyType_Modified(&mcpy_engine_type);
  const char *names[] = {"Read", "Write"};
  for (int i = 0; i < 2; i++) {
    PyObject *v = PyObject_GetAttrString(mcpy_opcode_enum, names[i]);
    if (!v || PyModule_AddObject(m, names[i], v)) {
      Py_XDECREF(v);
      goto fail;
    }
  }
  /* Upstream's build flags: no device-memory transport exists here. */
  const char *flags[] = {"SUPPORT_EFA", "SUPPORT_HIP", "SUPPORT_MNNVL",
                         "SUPPORT_INTRA_NVLINK", "SUPPORT_CUDA"};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (PyModule_AddObjectRef(m, flags[i], Py_False))
      goto fail;
  if (PyModule_AddStringConstant(m, "__version__", mc_version()))
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
