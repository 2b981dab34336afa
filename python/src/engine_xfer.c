/* TransferEngine's transfers: the sync forms (one request or a batch,
 * optionally with a notification), the async forms returning a batch id,
 * get_batch_transfer_status, transfer_submit_write and
 * transfer_check_status.  Every wait runs without the GIL. */
#include "mcpy.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The parsed arguments of one transfer call. */
typedef struct xfer {
  const char *target;
  uint32_t op;
  uint64_t *bufs, *peers, *lens;
  Py_ssize_t n;
  uint64_t total;
  uint8_t msg[MC_NOTIFY_MAX];
  Py_ssize_t msg_len; /* -1: no notification */
} xfer;

static void xfer_free(xfer *x) {
  PyMem_Free(x->bufs);
  PyMem_Free(x->peers);
  PyMem_Free(x->lens);
}

/* Lists (batch forms) or single values into x; -1 with an exception. */
static int xfer_lists(xfer *x, PyObject *b, PyObject *p, PyObject *l) {
  Py_ssize_t nb, np, nl;
  if (mcpy_u64_seq(b, "buffers", &x->bufs, &nb) ||
      mcpy_u64_seq(p, "peer_buffer_addresses", &x->peers, &np) ||
      mcpy_u64_seq(l, "lengths", &x->lens, &nl))
    return -1;
  x->n = nb;
  if (nb != np || nb != nl) {
    /* upstream: logged, -1 */
    mcpy_warn("buffers, peer_buffer_addresses and lengths have different sizes "
              "(%zd, %zd, %zd)", nb, np, nl);
    x->n = -1;
  }
  return 0;
}

static int xfer_one(xfer *x, uintptr_t b, uintptr_t p, size_t l) {
  x->bufs = PyMem_Malloc(sizeof *x->bufs);
  x->peers = PyMem_Malloc(sizeof *x->peers);
  x->lens = PyMem_Malloc(sizeof *x->lens);
  if (!x->bufs || !x->peers || !x->lens) {
    PyErr_NoMemory();
    return -1;
  }
  x->bufs[0] = b;
  x->peers[0] = p;
  x->lens[0] = l;
  x->n = 1;
  return 0;
}

static int xfer_notify(xfer *x, PyObject *notify) {
  x->msg_len = -1;
  if (!notify || notify == Py_None)
    return 0;
  x->msg_len = mcpy_notify_pack(notify, x->msg, sizeof x->msg);
  return x->msg_len < 0 ? -1 : 0;
}

static int timeout_ms(mcpy_engine *self, uint64_t bytes) {
  /* upstream: MC_TRANSFER_TIMEOUT plus 1 ns per byte (1 GB/s floor) */
  int64_t ns = self->timeout_ns + (int64_t)(bytes > INT64_MAX / 2 ? INT64_MAX / 2 : bytes);
  int64_t ms = ns / 1000000;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

static mc_request *make_reqs(const xfer *x, mc_segment *s) {
  mc_request *r = malloc((size_t)x->n * sizeof *r);
  if (!r)
    return NULL;
  for (Py_ssize_t i = 0; i < x->n; i++)
    r[i] = (mc_request){x->op, (void *)(uintptr_t)x->bufs[i], s, x->peers[i], x->lens[i]};
  return r;
}

/* Runs x to completion; 0 or MC_E*. */
static int run_sync(mcpy_engine *self, xfer *x) {
  if (x->n < 0)
    return MC_EINVAL;
  if (x->n == 0 && x->msg_len < 0)
    return 0;
  if (x->n > UINT32_MAX)
    return MC_EINVAL;
  if (x->msg_len >= 0 && (x->op != MC_OP_WRITE || x->n == 0)) {
    /* libmooncake sends a notification once writes land; it has no
     * stand-alone notify to send after a read. */
    mcpy_warn("a notification can follow writes only (not supported after reads)");
    return MC_ENOTSUP;
  }
  for (Py_ssize_t i = 0; i < x->n; i++)
    x->total += x->lens[i];
  mc_engine *eng = self->eng;
  int tmo = timeout_ms(self, x->total);
  mc_segment *s = NULL;
  int rc;
  self->busy++;
  Py_BEGIN_ALLOW_THREADS
  rc = mcpy_segment_open_nogil(eng, x->target, &s);
  mc_request *r = rc ? NULL : make_reqs(x, s);
  if (!rc && !r)
    rc = MC_ENOMEM;
  if (!rc && x->msg_len < 0) {
    rc = mc_transfer_sync(eng, r, (uint32_t)x->n, tmo);
  } else if (!rc) {
    mc_batch *b;
    rc = mc_batch_create(eng, (uint32_t)x->n, &b);
    if (!rc) {
      rc = mc_batch_submit_notify(b, r, (uint32_t)x->n, x->msg, (size_t)x->msg_len);
      if (!rc)
        rc = mc_batch_wait(b, tmo);
      mc_batch_destroy(b);
    }
  }
  free(r);
  Py_END_ALLOW_THREADS
  self->busy--;
  if (s) {
    if (!rc)
      mcpy_segment_cache(self, x->target, s);
    else if (mcpy_segment_failed(rc))
      mcpy_segment_forget(self, x->target);
    mc_segment_close(s);
  }
  return rc;
}

/* ---- batch ids ---- */

static mcpy_batch *batch_find(mcpy_engine *self, uint64_t id) {
  for (size_t i = 0; i < self->nbatches; i++)
    if (self->batches[i].id == id)
      return &self->batches[i];
  return NULL;
}

static void batch_drop(mcpy_engine *self, uint64_t id) {
  for (size_t i = 0; i < self->nbatches; i++)
    if (self->batches[i].id == id) {
      self->batches[i] = self->batches[--self->nbatches];
      return;
    }
}

/* Submits x as a batch kept by id; returns the id, or 0 with *rc set. */
static uint64_t run_async(mcpy_engine *self, xfer *x, int *rcp) {
  int rc = 0;
  if (x->n <= 0 || x->n > UINT32_MAX)
    rc = MC_EINVAL;
  if (!rc && self->nbatches == self->capbatches) {
    size_t cap = self->capbatches ? 2 * self->capbatches : 16;
    mcpy_batch *nb = PyMem_Realloc(self->batches, cap * sizeof *nb);
    if (!nb)
      rc = MC_ENOMEM;
    else {
      self->batches = nb;
      self->capbatches = cap;
    }
  }
  if (rc) {
    *rcp = rc;
    return 0;
  }
  for (Py_ssize_t i = 0; i < x->n; i++)
    x->total += x->lens[i];
  mc_engine *eng = self->eng;
  mc_segment *s = NULL;
  mc_batch *b = NULL;
  self->busy++;
  Py_BEGIN_ALLOW_THREADS
  rc = mcpy_segment_open_nogil(eng, x->target, &s);
  mc_request *r = rc ? NULL : make_reqs(x, s);
  if (!rc && !r)
    rc = MC_ENOMEM;
  if (!rc)
    rc = mc_batch_create(eng, (uint32_t)x->n, &b);
  if (!rc)
    rc = mc_batch_submit(b, r, (uint32_t)x->n);
  if (rc && b) {
    mc_batch_destroy(b);
    b = NULL;
  }
  free(r);
  Py_END_ALLOW_THREADS
  self->busy--;
  if (rc) {
    if (s) {
      if (mcpy_segment_failed(rc))
        mcpy_segment_forget(self, x->target);
      mc_segment_close(s);
    }
    *rcp = rc;
    return 0;
  }
  mcpy_segment_cache(self, x->target, s);
  mcpy_batch *e = &self->batches[self->nbatches++];
  *e = (mcpy_batch){.id = self->next_batch++, .b = b, .bytes = x->total,
                    .start_ns = mcpy_now_ns(), .seg = s};
  *rcp = 0;
  return e->id;
}

/* ---- argument parsing shared by the forms ---- */

#define SINGLE_KW "target_hostname", "buffer", "peer_buffer_address", "length"
#define BATCH_KW "target_hostname", "buffers", "peer_buffer_addresses", "lengths"

static int parse_single(xfer *x, PyObject *args, PyObject *kw, const char *fmt,
                        char **kwlist, PyObject **opt1, PyObject **opt2) {
  uintptr_t b, p;
  size_t l;
  const char *hint = "";
  int ok = opt2 ? PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &x->target,
                                              mcpy_conv_addr, &b, mcpy_conv_addr, &p,
                                              mcpy_conv_size, &l, mcpy_conv_opcode,
                                              &x->op, opt1, &hint)
                : PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &x->target,
                                              mcpy_conv_addr, &b, mcpy_conv_addr, &p,
                                              mcpy_conv_size, &l, &hint);
  /* transport_hint: accepted; the library picks the transport per peer
   * (upstream ignores it too outside its TENT engine). */
  (void)hint;
  return ok ? xfer_one(x, b, p, l) : -1;
}

static PyObject *single_sync(mcpy_engine *self, PyObject *args, PyObject *kw,
                             uint32_t op, const char *fmt) {
  static char *kwlist[] = {SINGLE_KW, "transport_hint", NULL};
  xfer x = {.op = op, .msg_len = -1};
  PyObject *res = NULL;
  if (parse_single(&x, args, kw, fmt, kwlist, NULL, NULL) == 0 && !mcpy_need_engine(self))
    res = PyLong_FromLong(run_sync(self, &x));
  xfer_free(&x);
  return res;
}

static PyObject *engine_transfer_sync_write(mcpy_engine *self, PyObject *a, PyObject *k) {
  return single_sync(self, a, k, MC_OP_WRITE, "sO&O&O&|s:transfer_sync_write");
}

static PyObject *engine_transfer_sync_read(mcpy_engine *self, PyObject *a, PyObject *k) {
  return single_sync(self, a, k, MC_OP_READ, "sO&O&O&|s:transfer_sync_read");
}

static PyObject *engine_transfer_sync(mcpy_engine *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {SINGLE_KW, "opcode", "notify", "transport_hint", NULL};
  xfer x = {.msg_len = -1};
  PyObject *notify = Py_None, *res = NULL;
  PyObject *dummy = NULL;
  if (parse_single(&x, args, kw, "sO&O&O&O&|Os:transfer_sync", kwlist, &notify, &dummy) ==
          0 &&
      !mcpy_need_engine(self) && xfer_notify(&x, notify) == 0)
    res = PyLong_FromLong(run_sync(self, &x));
  xfer_free(&x);
  return res;
}

static int parse_batch(xfer *x, PyObject *args, PyObject *kw, const char *fmt,
                       char **kwlist, int with_op, PyObject **notify) {
  PyObject *b, *p, *l;
  const char *hint = "";
  int ok;
  if (with_op && notify)
    ok = PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &x->target, &b, &p, &l,
                                     mcpy_conv_opcode, &x->op, notify, &hint);
  else if (with_op)
    ok = PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &x->target, &b, &p, &l,
                                     mcpy_conv_opcode, &x->op, &hint);
  else
    ok = PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &x->target, &b, &p, &l,
                                     &hint);
  (void)hint;
  return ok ? xfer_lists(x, b, p, l) : -1;
}

static PyObject *batch_sync(mcpy_engine *self, PyObject *args, PyObject *kw, uint32_t op,
                            const char *fmt) {
  static char *kwlist[] = {BATCH_KW, "transport_hint", NULL};
  xfer x = {.op = op, .msg_len = -1};
  PyObject *res = NULL;
  if (parse_batch(&x, args, kw, fmt, kwlist, 0, NULL) == 0 && !mcpy_need_engine(self))
    res = PyLong_FromLong(run_sync(self, &x));
  xfer_free(&x);
  return res;
}

static PyObject *engine_batch_transfer_sync_write(mcpy_engine *self, PyObject *a,
                                                  PyObject *k) {
  return batch_sync(self, a, k, MC_OP_WRITE, "sOOO|s:batch_transfer_sync_write");
}

static PyObject *engine_batch_transfer_sync_read(mcpy_engine *self, PyObject *a,
                                                 PyObject *k) {
  return batch_sync(self, a, k, MC_OP_READ, "sOOO|s:batch_transfer_sync_read");
}

static PyObject *engine_batch_transfer_sync(mcpy_engine *self, PyObject *args,
                                            PyObject *kw) {
  static char *kwlist[] = {BATCH_KW, "opcode", "notify", "transport_hint", NULL};
  xfer x = {.msg_len = -1};
  PyObject *notify = Py_None, *res = NULL;
  if (parse_batch(&x, args, kw, "sOOOO&|Os:batch_transfer_sync", kwlist, 1, &notify) == 0 &&
      !mcpy_need_engine(self) && xfer_notify(&x, notify) == 0)
    res = PyLong_FromLong(run_sync(self, &x));
  xfer_free(&x);
  return res;
}

static PyObject *batch_async(mcpy_engine *self, PyObject *args, PyObject *kw, uint32_t op,
                             const char *fmt, int with_op) {
  static char *kwlist[] = {BATCH_KW, "transport_hint", NULL};
  static char *kwlist_op[] = {BATCH_KW, "opcode", "transport_hint", NULL};
  xfer x = {.op = op, .msg_len = -1};
  PyObject *res = NULL;
  if (parse_batch(&x, args, kw, fmt, with_op ? kwlist_op : kwlist, with_op, NULL) == 0 &&
      !mcpy_need_engine(self)) {
    int rc;
    uint64_t id = run_async(self, &x, &rc);
    if (rc)
      mcpy_warn("batch_transfer_async to %s: %s", x.target, mc_strerror(rc));
    res = PyLong_FromUnsignedLongLong(id); /* 0 on failure, as upstream */
  }
  xfer_free(&x);
  return res;
}

static PyObject *engine_batch_transfer_async_write(mcpy_engine *self, PyObject *a,
                                                   PyObject *k) {
  return batch_async(self, a, k, MC_OP_WRITE, "sOOO|s:batch_transfer_async_write", 0);
}

static PyObject *engine_batch_transfer_async_read(mcpy_engine *self, PyObject *a,
                                                  PyObject *k) {
  return batch_async(self, a, k, MC_OP_READ, "sOOO|s:batch_transfer_async_read", 0);
}

static PyObject *engine_batch_transfer_async(mcpy_engine *self, PyObject *a, PyObject *k) {
  return batch_async(self, a, k, 0, "sOOOO&|s:batch_transfer_async", 1);
}

static PyObject *engine_transfer_submit_write(mcpy_engine *self, PyObject *args,
                                              PyObject *kw) {
  static char *kwlist[] = {SINGLE_KW, "transport_hint", NULL};
  xfer x = {.op = MC_OP_WRITE, .msg_len = -1};
  PyObject *res = NULL;
  if (parse_single(&x, args, kw, "sO&O&O&|s:transfer_submit_write", kwlist, NULL, NULL) ==
          0 &&
      !mcpy_need_engine(self)) {
    int rc;
    uint64_t id = run_async(self, &x, &rc);
    if (rc)
      mcpy_warn("transfer_submit_write to %s: %s", x.target, mc_strerror(rc));
    res = rc ? PyLong_FromLong(-1) : PyLong_FromUnsignedLongLong(id);
  }
  xfer_free(&x);
  return res;
}

/* Destroys the batches (without the GIL; waits for transports to let go). */
static void destroy_batches(mcpy_batch *v, size_t n) {
  Py_BEGIN_ALLOW_THREADS
  for (size_t i = 0; i < n; i++) {
    mc_batch_destroy(v[i].b);
    mc_segment_close(v[i].seg);
  }
  Py_END_ALLOW_THREADS
}

static PyObject *engine_get_batch_transfer_status(mcpy_engine *self, PyObject *args,
                                                  PyObject *kw) {
  static char *kwlist[] = {"batch_ids", NULL};
  PyObject *o;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:get_batch_transfer_status", kwlist, &o))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  uint64_t *ids;
  Py_ssize_t n;
  if (mcpy_u64_seq(o, "batch_ids", &ids, &n))
    return NULL;
  /* Take the batches out of the table: after this call every listed id is
   * gone, completed or not, as upstream frees them. */
  mcpy_batch *v = PyMem_Calloc((size_t)(n ? n : 1), sizeof *v);
  if (!v) {
    PyMem_Free(ids);
    return PyErr_NoMemory();
  }
  size_t k = 0;
  int rc = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    mcpy_batch *b = batch_find(self, ids[i]);
    if (!b || b->busy) {
      mcpy_warn("get_batch_transfer_status: batch id %llu is %s",
                (unsigned long long)ids[i], b ? "being waited on" : "unknown");
      rc = b ? MC_EBUSY : MC_ENOENT;
      continue;
    }
    v[k++] = *b;
    batch_drop(self, ids[i]);
  }
  PyMem_Free(ids);
  int64_t timeout = self->timeout_ns;
  Py_BEGIN_ALLOW_THREADS
  for (size_t i = 0; i < k && !rc; i++) {
    int64_t deadline = v[i].start_ns + timeout + (int64_t)v[i].bytes;
    int64_t left = (deadline - mcpy_now_ns()) / 1000000;
    rc = mc_batch_wait(v[i].b, left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left);
  }
  Py_END_ALLOW_THREADS
  destroy_batches(v, k);
  PyMem_Free(v);
  return PyLong_FromLong(rc);
}

static PyObject *engine_transfer_check_status(mcpy_engine *self, PyObject *args,
                                              PyObject *kw) {
  static char *kwlist[] = {"batch_id", NULL};
  unsigned long long id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "K:transfer_check_status", kwlist, &id))
    return NULL;
  if (mcpy_need_engine(self))
    return NULL;
  mcpy_batch *b = batch_find(self, id);
  if (!b)
    return PyLong_FromLong(-1);
  if (b->busy)
    return PyLong_FromLong(0);
  mc_transfer_status st;
  if (mc_batch_status(b->b, 0, &st) != 0)
    return PyLong_FromLong(-1);
  /* upstream: 1 completed, 0 running, -1 failed, -2 timed out */
  int r = 0, done = 0;
  switch (st.state) {
  case MC_XFER_COMPLETED:
    r = 1, done = 1;
    break;
  case MC_XFER_TIMEOUT:
    r = -2;
    break;
  case MC_XFER_WAITING:
  case MC_XFER_PENDING:
    if (mcpy_now_ns() - b->start_ns > self->timeout_ns + (int64_t)b->bytes)
      r = -2;
    break;
  default:
    r = -1, done = 1;
  }
  if (done) {
    mcpy_batch copy = *b;
    batch_drop(self, id);
    destroy_batches(&copy, 1);
  }
  return PyLong_FromLong(r);
}

#define M(name, doc)                                                            \
  {#name, (PyCFunction)(void (*)(void))engine_##name, METH_VARARGS | METH_KEYWORDS, doc}

PyMethodDef mcpy_engine_xfer_methods[] = {
    M(transfer_sync_write, "transfer_sync_write(target_hostname, buffer, "
                           "peer_buffer_address, length, transport_hint='') -> int"),
    M(transfer_sync_read, "transfer_sync_read(target_hostname, buffer, "
                          "peer_buffer_address, length, transport_hint='') -> int"),
    M(transfer_sync, "transfer_sync(target_hostname, buffer, peer_buffer_address, length, "
                     "opcode, notify=None, transport_hint='') -> int"),
    M(batch_transfer_sync_write, "batch_transfer_sync_write(target_hostname, buffers, "
                                 "peer_buffer_addresses, lengths, transport_hint='') -> int"),
    M(batch_transfer_sync_read, "batch_transfer_sync_read(target_hostname, buffers, "
                                "peer_buffer_addresses, lengths, transport_hint='') -> int"),
    M(batch_transfer_sync, "batch_transfer_sync(target_hostname, buffers, "
                           "peer_buffer_addresses, lengths, opcode, notify=None, "
                           "transport_hint='') -> int"),
    M(batch_transfer_async_write, "batch_transfer_async_write(target_hostname, buffers, "
                                  "peer_buffer_addresses, lengths, transport_hint='') -> "
                                  "batch id (0 on failure)"),
    M(batch_transfer_async_read, "batch_transfer_async_read(target_hostname, buffers, "
                                 "peer_buffer_addresses, lengths, transport_hint='') -> "
                                 "batch id (0 on failure)"),
    M(batch_transfer_async, "batch_transfer_async(target_hostname, buffers, "
                            "peer_buffer_addresses, lengths, opcode, transport_hint='') -> "
                            "batch id (0 on failure)"),
    M(get_batch_transfer_status, "get_batch_transfer_status(batch_ids) -> 0 when all "
                                 "completed; waits, then frees the ids"),
    M(transfer_submit_write, "transfer_submit_write(target_hostname, buffer, "
                             "peer_buffer_address, length, transport_hint='') -> batch id "
                             "(-1 on failure)"),
    M(transfer_check_status, "transfer_check_status(batch_id) -> 1 done, 0 running, "
                             "-1 failed, -2 timed out"),
    {NULL, NULL, 0, NULL},
};
