"""A second Python process with its own TransferEngine, driven by the
tests over stdin/stdout, one JSON object per line.

Started as `python3 peer.py METADATA_SERVER LOCAL_HOSTNAME SIZE`; prints
{"segment", "addr", "len", "rpc_port"} once ready, then answers:
  {"op": "fill", "off", "len", "seed"}     fills its buffer with a pattern
  {"op": "digest", "off", "len"}           sha256 of a range of its buffer
  {"op": "notifies", "want", "wait"}    waits for `want` notifications
  {"op": "write_to", "target", "remote", "off", "len"}  writes to a peer
  {"op": "quit"}
"""
import hashlib
import json
import sys
import time

import numpy as np

from mooncake.engine import TransferEngine


def pattern(n, seed):
    return ((np.arange(n, dtype=np.uint64) * 2654435761 + seed) >> 7).astype(np.uint8)


def main():
    metadata, hostname, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    eng = TransferEngine()
    rc = eng.initialize(hostname, metadata, "tcp", "")
    if rc != 0:
        print(json.dumps({"error": f"initialize: {rc}"}), flush=True)
        return 1
    buf = np.zeros(size, dtype=np.uint8)
    addr = buf.ctypes.data
    rc = eng.register_memory(addr, size)
    if rc != 0:
        print(json.dumps({"error": f"register_memory: {rc}"}), flush=True)
        return 1
    if metadata == "P2PHANDSHAKE":
        segment = f"{hostname}:{eng.get_rpc_port()}"
    else:
        segment = hostname
    print(json.dumps({"segment": segment, "addr": addr, "len": size,
                      "rpc_port": eng.get_rpc_port()}), flush=True)
    got = []
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        if op == "fill":
            o, n = cmd["off"], cmd["len"]
            buf[o:o + n] = pattern(n, cmd["seed"])
            reply = {"ok": True}
        elif op == "digest":
            o, n = cmd["off"], cmd["len"]
            reply = {"sha": hashlib.sha256(buf[o:o + n].tobytes()).hexdigest()}
        elif op == "notifies":
            deadline = time.monotonic() + cmd["wait"]
            while len(got) < cmd["want"] and time.monotonic() < deadline:
                got += [[n.name, n.msg] for n in eng.get_notifies()]
                time.sleep(0.005)
            reply = {"notifies": got}
            got = []
        elif op == "write_to":
            o, n = cmd["off"], cmd["len"]
            rc = eng.transfer_sync_write(cmd["target"], addr + o, cmd["remote"], n)
            reply = {"rc": rc}
        else:
            reply = {"error": f"unknown op {op}"}
        print(json.dumps(reply), flush=True)
    eng.unregister_memory(addr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
