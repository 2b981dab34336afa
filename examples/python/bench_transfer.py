#!/usr/bin/env python3
"""Throughput of mooncake.engine's batch_transfer_sync_write beside the C
bench (mc-transfer-bench) in the same run, against the same target.

One mc-transfer-bench target process serves a buffer over tcp.  For each
block size, the C initiator (mc-transfer-bench --mode initiator) and this
process's TransferEngine each write batches of --batch-size blocks to it
for --duration seconds, one thread each, in turns (C, Python, C, Python,
... --rounds times).  Printed per block size: the best round of each,
GB/s (10^9 bytes/s), p50/p99 per-batch round trip in microseconds, the
initiator's CPU% (100 = one core); the ratio Python/C of the best rounds
and the median ratio of back-to-back pairs (robust to a host whose load
drifts during the run).

  python3 examples/python/bench_transfer.py --c-bench build/examples/mc-transfer-bench
  (PYTHONPATH=build/python from a build tree; nothing to set once installed)
"""
import argparse
import ctypes
import json
import mmap
import os
import subprocess
import sys
import time

from mooncake.engine import TransferEngine


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def start_target(c_bench, total, transport):
    p = subprocess.Popen([c_bench, "--mode", "target", "--listen", "127.0.0.1:0",
                          "--transport", transport, "--total-size", str(total)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = {}
    for line in p.stdout:
        k, _, v = line.strip().partition(" ")
        if k == "READY":
            break
        info[k] = v
    if "SEGMENT" not in info:
        p.kill()
        sys.exit("bench: the target did not start")
    addr, length = info["BUFFER"].split()
    return p, info["SEGMENT"], info["CONTROL"], int(addr, 16), int(length)


def run_c(c_bench, segment, control, block, batch, duration, transport):
    out = subprocess.run([c_bench, "--mode", "initiator", "--segment", segment,
                          "--control", control, "--transport", transport, "--op", "write",
                          "--block-size", str(block), "--batch-size", str(batch),
                          "--threads", "1", "--duration", str(duration), "--json",
                          "--quiet"], capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        sys.exit("bench: mc-transfer-bench initiator failed: " + out.stderr.strip())
    for line in out.stdout.splitlines():
        o = json.loads(line)
        if o.get("kind") == "mooncake":
            return {"gbps": o["gb_per_s"], "p50": o["lat_p50_us"], "p99": o["lat_p99_us"],
                    "cpu": o["cpu_pct"]}
    sys.exit("bench: no result from mc-transfer-bench: " + out.stdout)


def run_py(segment, local, span, remote, block, batch, duration, transport):
    # A fresh engine per round, as each C round is a fresh process: neither
    # side gets connections warmed up by an earlier round.
    eng = TransferEngine()
    if eng.initialize("127.0.0.1", "P2PHANDSHAKE", transport, "") != 0:
        sys.exit("bench: initialize failed")
    if eng.register_memory(local, span) != 0:
        sys.exit("bench: register_memory failed")
    if eng.send_probe(segment) != 0:  # the descriptor, as the C side opens it first
        sys.exit("bench: the target's segment cannot be opened")
    bufs = [local + i * block for i in range(batch)]
    peers = [remote + i * block for i in range(batch)]
    lens = [block] * batch
    lat = []
    t0 = time.perf_counter()
    c0 = os.times()
    end = t0 + duration
    now = t0
    while now < end:
        rc = eng.batch_transfer_sync_write(segment, bufs, peers, lens)
        t = time.perf_counter()
        if rc != 0:
            sys.exit(f"bench: batch_transfer_sync_write returned {rc}")
        lat.append(t - now)
        now = t
    c1 = os.times()
    eng.unregister_memory(local)
    elapsed = now - t0
    lat.sort()
    cpu = (c1.user - c0.user + c1.system - c0.system) / elapsed * 100
    return {"gbps": len(lat) * batch * block / elapsed / 1e9,
            "p50": lat[len(lat) // 2] * 1e6, "p99": lat[min(len(lat) - 1, len(lat) * 99 // 100)] * 1e6,
            "cpu": cpu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--c-bench", default="mc-transfer-bench", help="path of mc-transfer-bench")
    ap.add_argument("--block-sizes", default="64K,1M")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--transport", default="tcp")
    ap.add_argument("--json", action="store_true", help="one JSON object per block size")
    a = ap.parse_args()
    blocks = [parse_size(s) for s in a.block_sizes.split(",")]
    span = max(blocks) * a.batch_size
    tgt, segment, control, raddr, rlen = start_target(a.c_bench, max(span, 64 << 20),
                                                      a.transport)
    try:
        # 2 MiB-aligned anonymous memory, as the C bench's default pool
        local = mmap.mmap(-1, span + (2 << 20))
        local.write(b"\x5a" * len(local))  # touched, as the C bench's buffers
        base = ctypes.addressof(ctypes.c_char.from_buffer(local))
        base = (base + (2 << 20) - 1) & ~((2 << 20) - 1)
        if not a.json:
            print(f"{'block':>7} {'who':>6} {'GB/s':>7} {'p50_us':>8} {'p99_us':>8} "
                  f"{'cpu%':>6}")
        for block in blocks:
            best = {"c": None, "py": None}
            dur = max(a.duration, 0.1)
            paired = []  # Python/C of back-to-back rounds: robust to load drift
            for _ in range(max(1, a.rounds)):
                c = run_c(a.c_bench, segment, control, block, a.batch_size, dur, a.transport)
                p = run_py(segment, base, span, raddr, block, a.batch_size, dur,
                           a.transport)
                paired.append(p["gbps"] / c["gbps"] if c["gbps"] else 0.0)
                if not best["c"] or c["gbps"] > best["c"]["gbps"]:
                    best["c"] = c
                if not best["py"] or p["gbps"] > best["py"]["gbps"]:
                    best["py"] = p
            ratio = best["py"]["gbps"] / best["c"]["gbps"] if best["c"]["gbps"] else 0.0
            median = sorted(paired)[len(paired) // 2]
            if a.json:
                print(json.dumps({"block": block, "batch": a.batch_size, "c": best["c"],
                                  "python": best["py"], "ratio": ratio,
                                  "median_round_ratio": median}))
            else:
                for who in ("c", "py"):
                    r = best[who]
                    print(f"{block >> 10:>6}K {('C' if who == 'c' else 'Python'):>6} "
                          f"{r['gbps']:7.3f} {r['p50']:8.1f} {r['p99']:8.1f} {r['cpu']:6.1f}")
                print(f"{block >> 10:>6}K  ratio Python/C = {ratio:.3f} (best of each); "
                      f"median of {len(paired)} paired rounds {median:.3f}")
    finally:
        tgt.stdin.close()
        try:
            tgt.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tgt.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
