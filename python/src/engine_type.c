/* TransferEngine: the object, initialize / initialize_ext, the segment
 * cache and the calls about peers and this host (get_rpc_port,
 * get_notifies, send_probe, get_first_buffer_address, get_local_topology,
 * ...).  Memory calls are in engine_mem.c, transfers in engine_xfer.c. */
#include "mcpy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P2P_WORD "P2PHANDSHAKE"
#define DEFAULT_TIMEOUT_S 30 /* MC_TRANSFER_TIMEOUT's default, as upstream */
#define MIN_TIMEOUT_S 5      /* upstream clamps MC_TRANSFER_TIMEOUT to >= 5 */
#define SLAB_SIZE ((size_t)2 << 30) /* managed-buffer slab, as upstream */

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  mcpy_engine *self = (mcpy_engine *)type->tp_alloc(type, 0);
  if (!self)
    return NULL;
  long t = DEFAULT_TIMEOUT_S;
  const char *env = getenv("MC_TRANSFER_TIMEOUT");
  if (env && *env) {
    t = strtol(env, NULL, 10);
    if (t < MIN_TIMEOUT_S)
      t = MIN_TIMEOUT_S;
  }
  self->timeout_ns = (int64_t)t * 1000000000;
  self->next_batch = 1;
  self->rpc_port = -1;
  return (PyObject *)self;
}

static void engine_dealloc(mcpy_engine *self) {
  if (self->weakrefs)
    PyObject_ClearWeakRefs((PyObject *)self);
  /* Nothing else can reach the object now; tear down without the GIL
   * (destroying batches and the engine joins transport threads). */
  Py_BEGIN_ALLOW_THREADS
  for (size_t i = 0; i < self->nbatches; i++) {
    mc_batch_destroy(self->batches[i].b);
    mc_segment_close(self->batches[i].seg);
  }
  for (size_t i = 0; i < self->nsegs; i++)
    mc_segment_close(self->segs[i].seg);
  mc_engine_destroy(self->eng);
  if (self->have_alloc)
    mcpy_alloc_fini(&self->alloc);
  Py_END_ALLOW_THREADS
  PyMem_Free(self->batches);
  PyMem_Free(self->segs);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- the segment cache ---- */

static mcpy_seg *seg_find(mcpy_engine *self, const char *name) {
  for (size_t i = 0; i < self->nsegs; i++)
    if (strcmp(self->segs[i].name, name) == 0)
      return &self->segs[i];
  return NULL;
}

int mcpy_segment_cache(mcpy_engine *self, const char *name, mc_segment *seg) {
  if (seg_find(self, name))
    return 0;
  if (self->nsegs == self->capsegs) {
    size_t cap = self->capsegs ? 2 * self->capsegs : 8;
    mcpy_seg *n = PyMem_Realloc(self->segs, cap * sizeof *n);
    if (!n)
      return MC_ENOMEM;
    self->segs = n;
    self->capsegs = cap;
  }
  /* The cache's own reference: a cache hit in the library, no I/O. */
  mc_segment *ref;
  if (mc_segment_open(self->eng, name, &ref) != 0 || ref != seg) {
    if (ref && ref != seg)
      mc_segment_close(ref);
    return 0;
  }
  mcpy_seg *e = &self->segs[self->nsegs++];
  snprintf(e->name, sizeof e->name, "%s", name);
  e->seg = ref;
  return 0;
}

void mcpy_segment_forget(mcpy_engine *self, const char *name) {
  for (size_t i = 0; i < self->nsegs; i++)
    if (strcmp(self->segs[i].name, name) == 0) {
      mc_segment_close(self->segs[i].seg);
      self->segs[i] = self->segs[--self->nsegs];
      return;
    }
}

int mcpy_segment_open_nogil(mc_engine *eng, const char *name, mc_segment **out) {
  if (!name || !*name || strlen(name) >= MC_NAME_MAX)
    return MC_EINVAL;
  return mc_segment_open(eng, name, out);
}

int mcpy_segment_failed(int rc) {
  return rc == MC_EPEER || rc == MC_EPROTO || rc == MC_ENOENT;
}

/* ---- initialize ---- */

/* Upstream's protocol names -> this library's transport names. */
static const char *transport_of(const char *protocol) {
  static const char *const map[][2] = {
      {"tcp", "tcp"},       {"rdma", "rdma"},       {"efa", "efa"},
      {"nvlink", "nvlink"}, {"nvlink_intra", "nvlink"}, {"hip", "hip"},
      {"cxl", "shm"},       {"shm", "shm"},         {"nvmeof", "nvmeof"},
      {"ascend", "ascend"}, {"barex", "rdma"},      {"auto", "auto"},
      {"", "auto"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(protocol, map[i][0]) == 0)
      return map[i][1];
  return NULL;
}

/* host part of "host:port" / "[v6]:port" / "host"; *port = its port or 0. */
static int split_host(const char *s, char *host, size_t cap, int *port) {
  *port = 0;
  const char *colon = strrchr(s, ':');
  size_t n = strlen(s);
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end)
      return -1;
    n = (size_t)(end - s + 1);
    if (end[1] == ':')
      *port = atoi(end + 2);
  } else if (colon && strchr(s, ':') == colon) {
    n = (size_t)(colon - s);
    *port = atoi(colon + 1);
  }
  if (n == 0 || n >= cap)
    return -1;
  memcpy(host, s, n);
  host[n] = '\0';
  return 0;
}

static int do_initialize(mcpy_engine *self, const char *local_hostname,
                         const char *metadata_server, const char *protocol,
                         const char *device_name, const char *metadata_type) {
  if (self->eng || self->initializing) {
    mcpy_warn("initialize: this TransferEngine is already initialized");
    return MC_EBUSY;
  }
  const char *transports = transport_of(protocol);
  if (!transports) {
    mcpy_warn("initialize: unknown protocol '%s' (expected tcp, rdma, efa, "
              "nvlink, hip, cxl, shm, nvmeof, ascend)", protocol);
    return MC_EINVAL;
  }
  /* The metadata URL: P2PHANDSHAKE, scheme://..., or a bare host:port
   * of metadata_type (etcd by default), as upstream builds it. */
  char url[1024];
  int p2p = strcmp(metadata_server, P2P_WORD) == 0;
  if (p2p)
    snprintf(url, sizeof url, "p2p");
  else if (strstr(metadata_server, "://"))
    snprintf(url, sizeof url, "%s", metadata_server);
  else
    snprintf(url, sizeof url, "%s://%s", *metadata_type ? metadata_type : "etcd",
             metadata_server);
  if (strncmp(url, "redis://", 8) == 0) {
    mcpy_warn("initialize: redis:// metadata is not supported by mooncake-c "
              "(use P2PHANDSHAKE, etcd:// or http://)");
    return MC_ENOTSUP;
  }
  char host[MC_NAME_MAX], listen[MC_NAME_MAX + 8];
  int port = 0;
  if (split_host(local_hostname, host, sizeof host, &port)) {
    mcpy_warn("initialize: local_hostname '%s': expected host or host:port",
              local_hostname);
    return MC_EINVAL;
  }
  /* The handshake listener's port: any free one (the kernel's choice);
   * local_hostname's own with MC_LEGACY_RPC_PORT_BINDING; or, as upstream,
   * a random free one in [MC_MIN_RPC_PORT, MC_MAX_RPC_PORT] when either is
   * set (a firewall may open only that range). */
  const char *legacy = getenv("MC_LEGACY_RPC_PORT_BINDING");
  const char *lo_s = getenv("MC_MIN_RPC_PORT"), *hi_s = getenv("MC_MAX_RPC_PORT");
  int ranged = p2p && !(legacy && *legacy) && ((lo_s && *lo_s) || (hi_s && *hi_s));
  long lo = lo_s && *lo_s ? strtol(lo_s, NULL, 10) : 15000;
  long hi = hi_s && *hi_s ? strtol(hi_s, NULL, 10) : 17000;
  if (ranged && (lo < 1024 || hi > 65535 || lo > hi)) {
    mcpy_warn("initialize: MC_MIN_RPC_PORT..MC_MAX_RPC_PORT must be a range "
              "within 1024..65535, got %ld..%ld", lo, hi);
    return MC_EINVAL;
  }
  (void)device_name; /* see the report: no rail filter in mc_engine_opts */
  mc_engine *eng = NULL;
  int rc = MC_EEXIST;
  unsigned seed = (unsigned)(mcpy_now_ns() ^ (int64_t)getpid());
  self->initializing = 1;
  /* Each try binds for real, so a port taken meanwhile is simply skipped. */
  for (int attempt = 0; rc == MC_EEXIST && attempt < (ranged ? 64 : 1); attempt++) {
    long p = ranged ? lo + (long)(rand_r(&seed) % (unsigned)(hi - lo + 1))
                    : legacy && *legacy ? port : 0;
    snprintf(listen, sizeof listen, "%s:%ld", host, p);
    mc_engine_opts o = {.struct_size = sizeof o,
                        .metadata = url,
                        .transports = transports,
                        .listen = listen,
                        /* P2P: the segment is the listener's host:port. */
                        .segment_name = p2p ? NULL : local_hostname};
    Py_BEGIN_ALLOW_THREADS
    rc = mc_engine_create(&o, &eng);
    Py_END_ALLOW_THREADS
  }
  self->initializing = 0;
  if (rc)
    return rc;
  self->eng = eng;
  if (p2p) {
    const char *name = mc_engine_segment_name(eng);
    const char *c = strrchr(name, ':');
    self->rpc_port = c ? atoi(c + 1) : 0;
  } else {
    /* No handshake listener: descriptors live in the store. */
    self->rpc_port = port;
  }
  mcpy_alloc_init(&self->alloc, eng, SLAB_SIZE);
  self->have_alloc = 1;
  return 0;
}

static PyObject *engine_initialize(mcpy_engine *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"local_hostname", "metadata_server", "protocol",
                           "device_name", NULL};
  const char *h, *m, *p, *d = "";
  if (!PyArg_ParseTupleAndKeywords(args, kw, "sss|z:initialize", kwlist, &h, &m, &p, &d))
    return NULL;
  /* As upstream: scheme://rest keeps its scheme, a bare host:port is etcd. */
  return PyLong_FromLong(do_initialize(self, h, m, p, d ? d : "", "etcd"));
}

static PyObject *engine_initialize_ext(mcpy_engine *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"local_hostname", "metadata_server", "protocol",
                           "device_name", "metadata_type", NULL};
  const char *h, *m, *p, *d, *t;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "ssszs:initialize_ext", kwlist, &h, &m,
                                   &p, &d, &t))
    return NULL;
  return PyLong_FromLong(do_initialize(self, h, m, p, d ? d : "", t));
}

static PyObject *engine_get_rpc_port(mcpy_engine *self, PyObject *unused) {
  if (mcpy_need_engine(self))
    return NULL;
  return PyLong_FromLong(self->rpc_port);
}

/* ---- notifications, probes, peers ---- */

static PyObject *engine_get_notifies(mcpy_engine *self, PyObject *unused) {
  if (mcpy_need_engine(self))
    return NULL;
  enum { MAXN = 64 };
  mc_notification *buf = PyMem_Malloc(MAXN * sizeof *buf);
  if (!buf)
    return PyErr_NoMemory();
  PyObject *list = PyList_New(0);
  while (list) {
    int n;
    mc_engine *eng = self->eng;
    Py_BEGIN_ALLOW_THREADS
    n = mc_notify_poll(eng, buf, MAXN, 0);
    Py_END_ALLOW_THREADS
    if (n < 0) {
      mcpy_warn("get_notifies: %s", mc_strerror(n));
      break;
    }
    for (int i = 0; i < n && list; i++) {
      PyObject *o = mcpy_notify_unpack(&buf[i]);
      if (!o || PyList_Append(list, o)) {
        Py_CLEAR(list);
      }
      Py_XDECREF(o);
    }
    if (n < MAXN)
      break;
  }
  PyMem_Free(buf);
  return list;
}

/* Opens name (cached) without the GIL, then runs fn on it.  Returns rc. */
static int with_segment(mcpy_engine *self, const char *name,
                        int (*fn)(mc_segment *, void *), void *arg) {
  mc_segment *s = NULL;
  mc_engine *eng = self->eng;
  int rc;
  self->busy++;
  Py_BEGIN_ALLOW_THREADS
  rc = mcpy_segment_open_nogil(eng, name, &s);
  if (!rc && fn)
    rc = fn(s, arg);
  Py_END_ALLOW_THREADS
  self->busy--;
  if (s) {
    if (!rc)
      mcpy_segment_cache(self, name, s);
    else if (mcpy_segment_failed(rc))
      mcpy_segment_forget(self, name);
    mc_segment_close(s);
  }
  return rc;
}

static int probe_fn(mc_segment *s, void *arg) { return mc_segment_refresh(s); }

static PyObject *engine_send_probe(mcpy_engine *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"peer_server_name", NULL};
  const char *name;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:send_probe", kwlist, &name))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  /* Reachable = its descriptor can be fetched now (from the peer itself
   * with P2PHANDSHAKE, from the store otherwise). */
  return PyLong_FromLong(with_segment(self, name, probe_fn, NULL));
}

static PyObject *engine_warmup_efa_segment(mcpy_engine *self, PyObject *args,
                                           PyObject *kw) {
  static char *kwlist[] = {"segment_name", NULL};
  const char *name;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:warmup_efa_segment", kwlist, &name))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  /* Opening fetches the descriptor; connections are made on first use. */
  return PyLong_FromLong(with_segment(self, name, NULL, NULL));
}

static PyObject *engine_release_remote_segment(mcpy_engine *self, PyObject *args,
                                               PyObject *kw) {
  static char *kwlist[] = {"target_hostname", NULL};
  const char *name;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:release_remote_segment", kwlist, &name))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  int had = 0;
  for (size_t i = 0; i < self->nsegs; i++)
    had |= strcmp(self->segs[i].name, name) == 0;
  mcpy_segment_forget(self, name);
  return PyLong_FromLong(had);
}

typedef struct {
  uint64_t addr;
} first_arg;

static int first_fn(mc_segment *s, void *arg) {
  mc_segment_buffer b;
  uint32_t n = 1;
  int rc = mc_segment_buffers(s, &b, &n);
  if (rc == MC_ENOSPC)
    rc = 0;
  ((first_arg *)arg)->addr = rc == 0 && n > 0 ? b.addr : 0;
  return rc;
}

static PyObject *engine_get_first_buffer_address(mcpy_engine *self, PyObject *args,
                                                 PyObject *kw) {
  static char *kwlist[] = {"segment_name", NULL};
  const char *name;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:get_first_buffer_address", kwlist, &name))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  first_arg a = {0};
  int rc = with_segment(self, name, first_fn, &a);
  if (rc)
    mcpy_warn("get_first_buffer_address(%s): %s", name, mc_strerror(rc));
  return PyLong_FromUnsignedLongLong(a.addr); /* 0 when none, as upstream */
}

static PyObject *engine_get_local_topology(mcpy_engine *self, PyObject *args,
                                           PyObject *kw) {
  static char *kwlist[] = {"device_name", NULL};
  const char *dev = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|z:get_local_topology", kwlist, &dev))
    return NULL;
  mc_engine *eng = self->initializing ? NULL : self->eng;
  char *json;
  Py_BEGIN_ALLOW_THREADS
  json = mcpy_topology_json(eng, dev);
  Py_END_ALLOW_THREADS
  if (!json)
    return PyErr_NoMemory();
  PyObject *r = PyUnicode_FromString(json);
  free(json);
  return r;
}

static PyObject *engine_get_engine_ptr(mcpy_engine *self, PyObject *unused) {
  return PyLong_FromVoidPtr(self->eng);
}

static PyObject *engine_get_engine(mcpy_engine *self, PyObject *unused) {
  if (mcpy_need_engine(self))
    return NULL;
  /* The mc_engine * for other C extensions (upstream returns its C++
   * engine object); valid while this TransferEngine lives. */
  return PyCapsule_New(self->eng, "mooncake.mc_engine", NULL);
}

PyMethodDef mcpy_engine_type_methods[] = {
    {"initialize", (PyCFunction)(void (*)(void))engine_initialize,
     METH_VARARGS | METH_KEYWORDS,
     "initialize(local_hostname, metadata_server, protocol, device_name) -> int"},
    {"initialize_ext", (PyCFunction)(void (*)(void))engine_initialize_ext,
     METH_VARARGS | METH_KEYWORDS,
     "initialize_ext(local_hostname, metadata_server, protocol, device_name, "
     "metadata_type) -> int"},
    {"get_rpc_port", (PyCFunction)engine_get_rpc_port, METH_NOARGS,
     "get_rpc_port() -> int: the P2P handshake listener's port"},
    {"get_notifies", (PyCFunction)engine_get_notifies, METH_NOARGS,
     "get_notifies() -> list of TransferNotify received since the last call"},
    {"send_probe", (PyCFunction)(void (*)(void))engine_send_probe,
     METH_VARARGS | METH_KEYWORDS, "send_probe(peer_server_name) -> 0 if reachable"},
    {"warmup_efa_segment", (PyCFunction)(void (*)(void))engine_warmup_efa_segment,
     METH_VARARGS | METH_KEYWORDS, "warmup_efa_segment(segment_name) -> int"},
    {"release_remote_segment",
     (PyCFunction)(void (*)(void))engine_release_remote_segment,
     METH_VARARGS | METH_KEYWORDS,
     "release_remote_segment(target_hostname) -> number of handles released"},
    {"get_first_buffer_address",
     (PyCFunction)(void (*)(void))engine_get_first_buffer_address,
     METH_VARARGS | METH_KEYWORDS,
     "get_first_buffer_address(segment_name) -> int (0 when it has none)"},
    {"get_local_topology", (PyCFunction)(void (*)(void))engine_get_local_topology,
     METH_VARARGS | METH_KEYWORDS, "get_local_topology(device_name=None) -> str (JSON)"},
    {"get_engine", (PyCFunction)engine_get_engine, METH_NOARGS,
     "get_engine() -> capsule 'mooncake.mc_engine'"},
    {"get_engine_ptr", (PyCFunction)engine_get_engine_ptr, METH_NOARGS,
     "get_engine_ptr() -> int address of the mc_engine"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject mcpy_engine_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mooncake.engine.TransferEngine",
    .tp_basicsize = sizeof(mcpy_engine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "TransferEngine(): moves bytes between registered memory of this "
              "process and of peers (mooncake-c's libmooncake).",
    .tp_new = engine_new,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_weaklistoffset = offsetof(mcpy_engine, weakrefs),
};
