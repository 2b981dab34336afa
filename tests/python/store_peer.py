"""A store client in its own process, driven by the tests (one JSON object
per line).  `python3 store_peer.py MASTER SEGMENT_BYTES`; prints
{"hostname"} once set up, then answers:
  {"op": "put", "key", "hex"}  {"op": "get", "key"} -> {"hex"}
  {"op": "quit"}
"""
import json
import sys

from mooncake.store import MooncakeDistributedStore


def main():
    master, seg = sys.argv[1], int(sys.argv[2])
    st = MooncakeDistributedStore()
    rc = st.setup("127.0.0.1", "P2PHANDSHAKE", seg, 4 << 20, "tcp", "", master)
    if rc != 0:
        print(json.dumps({"error": f"setup: {rc}"}), flush=True)
        return 1
    print(json.dumps({"hostname": st.get_hostname()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        if cmd["op"] == "put":
            reply = {"rc": st.put(cmd["key"], bytes.fromhex(cmd["hex"]))}
        elif cmd["op"] == "get":
            reply = {"hex": st.get(cmd["key"]).hex()}
        else:
            reply = {"error": "unknown op"}
        print(json.dumps(reply), flush=True)
    return st.close()


if __name__ == "__main__":
    sys.exit(main())
