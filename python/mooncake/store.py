"""mooncake.store: MooncakeDistributedStore, ReplicateConfig, SoftPinAction.

The Python half of the store binding: the setup forms (upstream's
positional arguments, a dict, a JSON config file, or the MOONCAKE_*
environment variables), ReplicateConfig and SoftPinAction, and the tensor
helpers.  Every call that reaches the master or moves data is in the C
extension mooncake._store (libmooncake-store), with the GIL released.
"""
import enum
import json
import os

from mooncake import _store
from mooncake._store import BufferHandle  # noqa: F401  (re-exported)

__all__ = ["MooncakeDistributedStore", "ReplicateConfig", "SoftPinAction", "BufferHandle",
           "bind_to_numa_node"]


class SoftPinAction(enum.IntEnum):
    """What an upsert does to the object's soft pin (as upstream)."""
    PRESERVE = 0  # keep with_soft_pin as the config says
    ENABLE = 1    # soft-pin the new value
    DISABLE = 2   # do not soft-pin it


class ReplicateConfig:
    """Placement of one put: replica count, pins, preferred segments."""

    def __init__(self, replica_num=1, with_soft_pin=False, with_hard_pin=False,
                 preferred_segment="", preferred_segments=None,
                 prefer_alloc_in_same_node=False, soft_pin_action=SoftPinAction.PRESERVE):
        self.replica_num = replica_num
        self.with_soft_pin = with_soft_pin
        self.with_hard_pin = with_hard_pin
        self.preferred_segment = preferred_segment
        self.preferred_segments = list(preferred_segments or [])
        # Placement by NUMA node is not modelled by mooncake-c's master; kept
        # so code setting it runs unchanged.
        self.prefer_alloc_in_same_node = prefer_alloc_in_same_node
        self.soft_pin_action = soft_pin_action

    def __repr__(self):
        return (f"ReplicateConfig(replica_num={self.replica_num}, "
                f"with_soft_pin={self.with_soft_pin}, with_hard_pin={self.with_hard_pin}, "
                f"preferred_segment={self.preferred_segment!r}, "
                f"preferred_segments={self.preferred_segments!r}, "
                f"soft_pin_action={SoftPinAction(self.soft_pin_action).name})")

    __str__ = __repr__


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
          "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def _size(value, what):
    """An int, or a string like '3.125GB' / '512 MiB' (binary units)."""
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip().lower()
    num = text.rstrip("kmgtib ")
    unit = text[len(num):].strip()
    if unit not in _UNITS or not num:
        raise ValueError(f"{what}: expected a size like 1GB or 4096, got {value!r}")
    return int(float(num) * _UNITS[unit])


def _from_mapping(cfg, where):
    """Upstream's config keys (and the setup() argument names) -> setup kwargs."""
    def pick(*names, default=None):
        for n in names:
            if n in cfg and cfg[n] is not None:
                return cfg[n]
        return default

    master = pick("master_server_addr", "master_server_address")
    if not master:
        raise ValueError(f"{where}: master_server_address is required")
    return {
        "local_hostname": pick("local_hostname", default="localhost"),
        "metadata_server": pick("metadata_server", default="P2PHANDSHAKE"),
        "global_segment_size": _size(pick("global_segment_size", default=3355443200),
                                     f"{where}: global_segment_size"),
        "local_buffer_size": _size(pick("local_buffer_size", default=1 << 30),
                                   f"{where}: local_buffer_size"),
        "protocol": pick("protocol", default="tcp"),
        "rdma_devices": pick("rdma_devices", "device_name", default=""),
        "master_server_addr": master,
    }


def _from_file(path):
    with open(path) as f:
        try:
            cfg = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {e.lineno}: {e.msg}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return _from_mapping(cfg, path)


def _from_env():
    """MOONCAKE_CONFIG_PATH (a JSON file), else the MOONCAKE_* variables."""
    path = os.environ.get("MOONCAKE_CONFIG_PATH")
    if path:
        return _from_file(path)
    env = os.environ
    if not env.get("MOONCAKE_MASTER"):
        raise ValueError("setup() without arguments needs MOONCAKE_CONFIG_PATH or "
                         "MOONCAKE_MASTER")
    return _from_mapping({
        "master_server_address": env.get("MOONCAKE_MASTER"),
        "metadata_server": env.get("MOONCAKE_TE_META_DATA_SERVER"),
        "protocol": env.get("MOONCAKE_PROTOCOL"),
        "device_name": env.get("MOONCAKE_DEVICE"),
        "local_hostname": env.get("MOONCAKE_LOCAL_HOSTNAME"),
        "global_segment_size": env.get("MOONCAKE_GLOBAL_SEGMENT_SIZE"),
        "local_buffer_size": env.get("MOONCAKE_LOCAL_BUFFER_SIZE"),
    }, "MOONCAKE_* environment")


_TENSOR_MAGIC = b"MCTENSR1"


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("this mooncake.store call needs torch (PyTorch), which is "
                          "not installed") from None
    return torch


def _encode(tensor):
    """A torch tensor or numpy array -> header + raw bytes."""
    import numpy as np
    kind = "numpy"
    if type(tensor).__module__.startswith("torch"):
        kind = "torch"
        arr = tensor.detach().cpu().contiguous()
        dtype = str(arr.dtype).replace("torch.", "")
        raw = arr.view(_torch().uint8).numpy().tobytes() if arr.numel() else b""
        shape = list(arr.shape)
    elif isinstance(tensor, np.ndarray):
        arr = np.ascontiguousarray(tensor)
        dtype, raw, shape = arr.dtype.str, arr.tobytes(), list(arr.shape)
    else:
        raise TypeError(f"expected a torch.Tensor or numpy.ndarray, not {type(tensor).__name__}")
    head = json.dumps({"kind": kind, "dtype": dtype, "shape": shape}).encode()
    return _TENSOR_MAGIC + len(head).to_bytes(4, "little") + head + raw


def _decode(blob):
    import numpy as np
    if len(blob) < 12 or blob[:8] != _TENSOR_MAGIC:
        return None
    n = int.from_bytes(blob[8:12], "little")
    head = json.loads(blob[12:12 + n])
    raw = memoryview(blob)[12 + n:]
    if head["kind"] == "numpy":
        return np.frombuffer(raw, dtype=np.dtype(head["dtype"])).reshape(head["shape"]).copy()
    torch = _torch()
    t = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if len(raw) else torch.empty(0, dtype=torch.uint8)
    return t.view(getattr(torch, head["dtype"])).reshape(head["shape"])


def bind_to_numa_node(node):
    """Runs the calling thread on the CPUs of NUMA node `node` (as upstream;
    memory placement follows first touch).  A node that does not exist is
    reported and ignored, as upstream does."""
    import warnings
    try:
        with open(f"/sys/devices/system/node/node{int(node)}/cpulist") as f:
            spec = f.read().strip()
    except OSError:
        warnings.warn(f"bind_to_numa_node: no NUMA node {node}; binding skipped")
        return
    cpus = set()
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    if cpus:
        os.sched_setaffinity(0, cpus)


def _tp_key(key, rank):
    return f"{key}_tp_{rank}"


def _split(tensor, parts, dim):
    if type(tensor).__module__.startswith("torch"):
        return list(tensor.chunk(parts, dim=dim))
    import numpy as np
    return np.array_split(tensor, parts, axis=dim)


class MooncakeDistributedStore(_store.Store):
    """A client of a Mooncake Store (mooncake-master): upstream's method
    names, argument orders and return conventions."""

    def setup(self, *args, **kwargs):
        """setup(local_hostname, metadata_server, global_segment_size,
        local_buffer_size, protocol, rdma_devices, master_server_addr,
        engine=None); or setup(dict); or setup("config.json"); or setup()
        reading MOONCAKE_CONFIG_PATH / MOONCAKE_MASTER & co."""
        if not args and not kwargs:
            return super().setup(**_from_env())
        if len(args) == 1 and not kwargs:
            if isinstance(args[0], dict):
                return super().setup(**_from_mapping(args[0], "setup(dict)"))
            if isinstance(args[0], (str, os.PathLike)) and str(args[0]).endswith(".json"):
                return super().setup(**_from_file(args[0]))
        return super().setup(*args, **kwargs)

    # ---- tensor helpers (numpy arrays, or torch tensors when torch is there) ----

    def put_tensor(self, key, tensor):
        return self.put(key, _encode(tensor))

    def pub_tensor(self, key, tensor, config=None):
        return self.put(key, _encode(tensor), config)

    def get_tensor(self, key):
        blob = self.get(key)
        return _decode(blob) if blob else None

    def batch_put_tensor(self, keys, tensors_list):
        return [self.put_tensor(k, t) for k, t in zip(keys, tensors_list)]

    def batch_pub_tensor(self, keys, tensors_list, config=None):
        return [self.pub_tensor(k, t, config) for k, t in zip(keys, tensors_list)]

    def batch_get_tensor(self, keys):
        return [_decode(b) if b else None for b in self.get_batch(keys)]

    # Tensor parallelism, as upstream: shard i of key is stored as key_tp_i.
    def put_tensor_with_tp(self, key, tensor, tp_rank=0, tp_size=1, split_dim=0):
        if tp_size <= 1:
            return self.put_tensor(key, tensor)
        for i, part in enumerate(_split(tensor, tp_size, split_dim)):
            rc = self.put_tensor(_tp_key(key, i), part)
            if rc != 0:
                return rc
        return 0

    def pub_tensor_with_tp(self, key, tensor, config=None, tp_rank=0, tp_size=1,
                           split_dim=0):
        if tp_size <= 1:
            return self.pub_tensor(key, tensor, config)
        for i, part in enumerate(_split(tensor, tp_size, split_dim)):
            rc = self.pub_tensor(_tp_key(key, i), part, config)
            if rc != 0:
                return rc
        return 0

    def get_tensor_with_tp(self, key, tp_rank=0, tp_size=1, split_dim=0):
        return self.get_tensor(key if tp_size <= 1 else _tp_key(key, tp_rank))

    def batch_put_tensor_with_tp(self, base_keys, tensors_list, tp_rank=0, tp_size=1,
                                 split_dim=0):
        return [self.put_tensor_with_tp(k, t, tp_rank, tp_size, split_dim)
                for k, t in zip(base_keys, tensors_list)]

    def batch_get_tensor_with_tp(self, base_keys, tp_rank=0, tp_size=1):
        keys = base_keys if tp_size <= 1 else [_tp_key(k, tp_rank) for k in base_keys]
        return self.batch_get_tensor(keys)

    # ---- several buffers per key ----

    def batch_get_into_multi_buffers(self, keys, all_buffer_ptrs, all_sizes,
                                     prefer_alloc_in_same_node=False):
        """Scatters each value over its registered buffers in order, without
        a copy (one get_into_ranges per key).  A code or byte count per key."""
        if not (len(keys) == len(all_buffer_ptrs) == len(all_sizes)):
            return [_store.INVALID_PARAMS] * len(keys)
        out = []
        for key, ptrs, sizes in zip(keys, all_buffer_ptrs, all_sizes):
            if len(ptrs) != len(sizes):
                out.append(_store.INVALID_PARAMS)
                continue
            offs, at = [], 0
            for n in sizes:
                offs.append(at)
                at += n
            res = self.get_into_ranges([0], [[key]], [[list(ptrs)]], [[offs]],
                                       [[list(sizes)]])[0][0]
            bad = [r for r in res if r < 0]
            out.append(bad[0] if bad else sum(res))
        return out

    def batch_put_from_multi_buffers(self, keys, all_buffer_ptrs, all_sizes, config=None):
        """Stores each key's buffers, concatenated, as its value.  (The C API
        puts one contiguous range per key, so the pieces are gathered by a
        copy first.)  A code per key."""
        import ctypes
        if not (len(keys) == len(all_buffer_ptrs) == len(all_sizes)):
            return [_store.INVALID_PARAMS] * len(keys)
        vals = []
        for ptrs, sizes in zip(all_buffer_ptrs, all_sizes):
            if len(ptrs) != len(sizes):
                return [_store.INVALID_PARAMS] * len(keys)
            vals.append(b"".join(ctypes.string_at(p, n) for p, n in zip(ptrs, sizes)))
        return [self.put(k, v, config) for k, v in zip(keys, vals)]

    def put_from_with_metadata(self, key, buffer_ptr, metadata_buffer_ptr, size,
                               metadata_size, config=None):
        """Stores metadata then data as one value (gathered by a copy)."""
        import ctypes
        return self.put(key, ctypes.string_at(metadata_buffer_ptr, metadata_size) +
                        ctypes.string_at(buffer_ptr, size), config)
