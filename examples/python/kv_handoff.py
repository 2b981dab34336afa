#!/usr/bin/env python3
"""Prefill -> decode KV-cache hand-off in the shape SGLang's Mooncake
disaggregation uses, on mooncake.engine.

  decode  (a child process, --role decode): initializes a TransferEngine
          (P2PHANDSHAKE), registers its paged KV pool (K and V of every
          layer) with one batch_register_memory, and tells prefill its
          session id ("host:rpc_port"), the pool's base addresses and, per
          request ("room"), the pages it reserved for it.  SGLang sends the
          same through its ZMQ bootstrap server; here a pipe stands in.
  prefill (this process): "computes" the KV of each room into its own
          pool, writes the pages layer by layer with
          batch_transfer_sync_write, the last layer with batch_transfer_sync
          carrying a TransferNotify(room, "done").
  decode  polls get_notifies() and, per room announced done, checks its
          pages hold exactly what prefill computed.

Run:  python3 examples/python/kv_handoff.py [--metadata P2PHANDSHAKE|etcd://h:p|http://h:p/metadata]
(from a build tree: PYTHONPATH=build/python).  Exit status 0 when every
room arrived intact.
"""
import argparse
import hashlib
import json
import subprocess
import sys
import time

import numpy as np

from mooncake.engine import TransferEngine, TransferNotify, TransferOpcode

LAYERS, PAGES, PAGE_BYTES = 4, 64, 16 << 10
ROOMS = {1001: 5, 1002: 9}  # room -> pages of its prompt


def kv_pool():
    """One buffer per (layer, K|V): PAGES pages of PAGE_BYTES each."""
    return [np.zeros(PAGES * PAGE_BYTES, dtype=np.uint8) for _ in range(2 * LAYERS)]


def computed_kv(room, buf_index, page):
    """What prefill 'computes' for one page (deterministic, so decode can check)."""
    seed = room * 1000003 + buf_index * 1009 + page
    return ((np.arange(PAGE_BYTES, dtype=np.uint64) * 2654435761 + seed) >> 5).astype(np.uint8)


def engine(metadata, hostname):
    eng = TransferEngine()
    rc = eng.initialize(hostname, metadata, "tcp", "")
    if rc != 0:
        sys.exit(f"initialize({hostname}, {metadata}) failed: {rc}")
    if metadata == "P2PHANDSHAKE":
        return eng, f"{hostname}:{eng.get_rpc_port()}"
    return eng, hostname


def decode(metadata, hostname):
    eng, session_id = engine(metadata, hostname)
    pool = kv_pool()
    ptrs = [b.ctypes.data for b in pool]
    assert eng.batch_register_memory(ptrs, [b.nbytes for b in pool]) == 0
    # Reserve pages per room (not contiguous, as a paged allocator gives).
    free = list(range(PAGES))[::-1]
    dst_pages = {room: [free.pop(3 * i % len(free)) for i in range(n)]
                 for room, n in ROOMS.items()}
    print(json.dumps({"session_id": session_id, "kv_ptrs": ptrs,
                      "dst_pages": dst_pages}), flush=True)
    done, verdict = set(), {}
    deadline = time.monotonic() + 60
    while len(done) < len(ROOMS) and time.monotonic() < deadline:
        for n in eng.get_notifies():
            if n.msg != "done":
                continue
            room = int(n.name)
            ok = all((pool[b][p * PAGE_BYTES:(p + 1) * PAGE_BYTES] ==
                      computed_kv(room, b, i)).all()
                     for b in range(2 * LAYERS) for i, p in enumerate(dst_pages[room]))
            verdict[room] = ok
            done.add(room)
        time.sleep(0.002)
    print(json.dumps({"verdict": verdict}), flush=True)
    assert eng.batch_unregister_memory(ptrs) == 0
    return 0 if len(done) == len(ROOMS) and all(verdict.values()) else 1


def prefill(metadata, hostname, decode_hostname):
    child = subprocess.Popen([sys.executable, __file__, "--role", "decode",
                              "--metadata", metadata, "--hostname", decode_hostname],
                             stdout=subprocess.PIPE, text=True)
    hello = json.loads(child.stdout.readline())
    eng, _ = engine(metadata, hostname)
    pool = kv_pool()
    src_ptrs = [b.ctypes.data for b in pool]
    assert eng.batch_register_memory(src_ptrs, [b.nbytes for b in pool]) == 0
    session, dst_ptrs = hello["session_id"], hello["kv_ptrs"]
    t0 = time.perf_counter()
    moved = 0
    for room_s, pages in hello["dst_pages"].items():
        room = int(room_s)
        # Prefill's own pages for the room: 0..n-1, filled with its KV.
        for b in range(2 * LAYERS):
            for i in range(len(pages)):
                pool[b][i * PAGE_BYTES:(i + 1) * PAGE_BYTES] = computed_kv(room, b, i)
        for layer in range(LAYERS):
            src, dst = [], []
            for b in (2 * layer, 2 * layer + 1):  # K then V of the layer
                src += [src_ptrs[b] + i * PAGE_BYTES for i in range(len(pages))]
                dst += [dst_ptrs[b] + p * PAGE_BYTES for p in pages]
            lens = [PAGE_BYTES] * len(src)
            if layer < LAYERS - 1:
                rc = eng.batch_transfer_sync_write(session, src, dst, lens)
            else:
                # The last layer carries the notification: it is delivered
                # once these writes (and so all before them) have landed.
                rc = eng.batch_transfer_sync(session, src, dst, lens, TransferOpcode.Write,
                                             TransferNotify(str(room), "done"))
            if rc != 0:
                child.kill()
                sys.exit(f"room {room} layer {layer}: transfer failed ({rc})")
            moved += sum(lens)
    dt = time.perf_counter() - t0
    verdict = json.loads(child.stdout.readline())["verdict"]
    rc = child.wait(timeout=60)
    ok = rc == 0 and all(verdict.values()) and len(verdict) == len(ROOMS)
    print(f"kv_handoff: {len(ROOMS)} rooms, {moved} bytes in {dt * 1e3:.1f} ms; "
          f"decode verdict {verdict}: {'OK' if ok else 'FAILED'}")
    assert eng.batch_unregister_memory(src_ptrs) == 0
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="prefill -> decode KV hand-off")
    ap.add_argument("--role", choices=["prefill", "decode"], default="prefill")
    ap.add_argument("--metadata", default="P2PHANDSHAKE")
    ap.add_argument("--hostname", default="127.0.0.1", help="this engine's local_hostname")
    ap.add_argument("--decode-hostname", default=None)
    a = ap.parse_args()
    if a.role == "decode":
        return decode(a.metadata, a.hostname)
    if a.metadata == "P2PHANDSHAKE":
        return prefill(a.metadata, a.hostname, a.decode_hostname or a.hostname)
    # With a store, local_hostname is the segment's name: upstream code
    # passes "ip:port" strings, unique per engine (the port is only a name
    # here: descriptors live in the store, not behind a listener).
    import os
    return prefill(a.metadata, f"{a.hostname}:{os.getpid()}",
                   a.decode_hostname or f"{a.hostname}:{os.getpid() + 100000}")


if __name__ == "__main__":
    sys.exit(main())
