#!/usr/bin/env python3
"""A walk through mooncake.store.MooncakeDistributedStore, as upstream code
uses it: two clients of one mooncake-master, each contributing memory to
the pool; one writes, the other reads.

  python3 examples/python/store_walkthrough.py --master 127.0.0.1:50051
(from a build tree: PYTHONPATH=build/python; start the master first:
 build/store/master/mooncake-master --rpc_port=50051)
Exit status 0 when every step checked out.
"""
import argparse
import sys

import numpy as np

from mooncake.store import MooncakeDistributedStore, ReplicateConfig


def client(master, segment_mib):
    st = MooncakeDistributedStore()
    rc = st.setup("127.0.0.1", "P2PHANDSHAKE", segment_mib << 20, 16 << 20, "tcp", "", master)
    if rc != 0:
        sys.exit(f"setup failed: {rc} (is mooncake-master running at {master}?)")
    return st


def main():
    ap = argparse.ArgumentParser(description="Mooncake Store walk-through")
    ap.add_argument("--master", default="127.0.0.1:50051")
    a = ap.parse_args()
    writer, reader = client(a.master, 64), client(a.master, 64)
    print("clients:", writer.get_hostname(), reader.get_hostname())

    # 1. copying put/get: bytes in, bytes out; a missing key reads as b""
    assert writer.put("demo/hello", b"hello, mooncake") == 0
    assert reader.get("demo/hello") == b"hello, mooncake"
    assert reader.get("demo/missing") == b""
    print("put/get: ok; get_size =", reader.get_size("demo/hello"))

    # 2. two replicas, the first on the reader's own segment (local reads)
    cfg = ReplicateConfig()
    cfg.replica_num = 2
    cfg.preferred_segment = reader.get_hostname()
    assert writer.put("demo/replicated", b"x" * 100_000, cfg) == 0
    assert reader.get("demo/replicated") == b"x" * 100_000
    print("replicated put: ok")

    # 3. batches
    keys = [f"demo/layer{i}" for i in range(8)]
    vals = [bytes([i]) * 4096 for i in range(8)]
    assert writer.put_batch(keys, vals) == 0
    assert reader.get_batch(keys) == vals
    assert reader.batch_is_exist(keys + ["demo/none"]) == [1] * 8 + [0]
    print("put_batch/get_batch: ok")

    # 4. zero copy: registered numpy buffers straight to and from the pool
    kv = np.arange(1 << 20, dtype=np.uint8)
    out = np.zeros_like(kv)
    assert writer.register_buffer(kv.ctypes.data, kv.nbytes) == 0
    assert reader.register_buffer(out.ctypes.data, out.nbytes) == 0
    assert writer.put_from("demo/kv", kv.ctypes.data, kv.nbytes) == 0
    assert reader.get_into("demo/kv", out.ctypes.data, out.nbytes) == kv.nbytes
    assert (out == kv).all()
    h = reader.get_buffer("demo/kv")  # library memory, no copy into Python
    assert np.frombuffer(h, dtype=np.uint8)[12345] == kv[12345]
    print("put_from/get_into/get_buffer: ok")

    # 5. replace and remove
    assert writer.upsert("demo/hello", b"hello again") == 0
    assert reader.get("demo/hello") == b"hello again"
    removed = writer.remove_by_regex("^demo/", True)
    print("upsert: ok; removed", removed, "keys")
    assert reader.is_exist("demo/hello") == 0
    assert writer.unregister_buffer(kv.ctypes.data) == 0
    assert reader.unregister_buffer(out.ctypes.data) == 0
    writer.close()
    reader.close()
    print("store walk-through: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
