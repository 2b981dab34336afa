"""mooncake.store.MooncakeDistributedStore against a real mooncake-master
started on a free port, with client processes of its own (store_peer.py)
contributing memory and reading what this one wrote."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

store = pytest.importorskip("mooncake.store",
                            reason="mooncake.store not built (needs the store client)")
from mooncake.store import (MooncakeDistributedStore, ReplicateConfig,  # noqa: E402
                            SoftPinAction)

from conftest import die_with_parent, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_FOUND, EXISTS, LEASED, INVALID = -704, -705, -706, -600


@pytest.fixture(scope="module")
def master():
    exe = os.environ.get("MC_TEST_STORE_MASTER")
    if not exe or not os.path.exists(exe):
        pytest.skip("mooncake-master not built in this configuration")
    port = free_port()
    p = subprocess.Popen([exe, f"--rpc_port={port}", "--rpc_address=127.0.0.1",
                          "--enable_metric_reporting=false"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=die_with_parent)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert p.poll() is None, "mooncake-master exited"
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    p.kill()
    p.wait()


class StorePeer:
    def __init__(self, master, seg=32 << 20):
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "store_peer.py"),
                                   master, str(seg)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  preexec_fn=die_with_parent)
        hello = json.loads(self.p.stdout.readline() or '{"error": "exited"}')
        assert "error" not in hello, hello
        self.hostname = hello["hostname"]

    def call(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.write('{"op": "quit"}\n')
        self.p.stdin.close()
        assert self.p.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def peers(master):
    ps = [StorePeer(master), StorePeer(master)]
    yield ps
    for p in ps:
        p.close()


@pytest.fixture
def st(master, peers):
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 16 << 20, 8 << 20, "tcp", "", master) == 0
    yield s
    s.remove_all(True)
    assert s.close() == 0


def test_put_get_across_processes(st, peers):
    data = os.urandom(300_000)
    assert st.put("k/one", data) == 0
    assert peers[0].call(op="get", key="k/one")["hex"] == data.hex()
    assert peers[1].call(op="put", key="k/two", hex=b"from a peer".hex())["rc"] == 0
    assert st.get("k/two") == b"from a peer"
    assert st.get_size("k/one") == len(data)
    assert st.is_exist("k/one") == 1 and st.is_exist("nope") == 0
    assert st.get("nope") == b""
    assert st.get_size("nope") == NOT_FOUND
    assert st.put("k/one", b"again") == EXISTS
    # a get grants a read lease: a plain remove waits for it, force does not
    assert st.remove("k/one") == LEASED
    assert st.remove("k/one", True) == 0 and st.remove("k/one") == NOT_FOUND
    assert peers[0].call(op="get", key="k/one")["hex"] == ""
    assert st.health_check() == 0
    assert ":" in st.get_hostname()


def test_batches_and_upsert(st):
    keys = [f"b/{i}" for i in range(10)]
    vals = [bytes([i]) * (1000 * (i + 1)) for i in range(10)]
    assert st.put_batch(keys, vals) == 0
    assert st.get_batch(keys + ["b/missing"]) == vals + [b""]
    assert st.batch_is_exist(keys[:2] + ["b/missing"]) == [1, 1, 0]
    assert st.upsert("b/0", b"new value") == 0
    assert st.get("b/0") == b"new value"
    assert st.upsert_batch(keys[:2], [b"x", b"y"]) == 0
    assert st.get_batch(keys[:2]) == [b"x", b"y"]
    assert st.put_parts("b/parts", b"ab", bytearray(b"cd"), memoryview(b"ef")) == 0
    assert st.get("b/parts") == b"abcdef"
    assert st.remove_by_regex("^b/[0-4]$") == 0  # all read: leased
    assert st.remove_by_regex("^b/[0-4]$", True) == 5
    assert st.batch_remove(["b/5", "b/missing"], True) == [0, NOT_FOUND]
    assert st.remove_all(True) >= 4
    assert st.get_batch(keys) == [b""] * 10


def test_zero_copy(st):
    src = np.frombuffer(os.urandom(1 << 20), dtype=np.uint8).copy()
    dst = np.zeros(1 << 20, dtype=np.uint8)
    assert st.register_buffer(src.ctypes.data, src.nbytes) == 0
    assert st.register_buffer(dst.ctypes.data, dst.nbytes) == 0
    assert st.put_from("z/a", src.ctypes.data, 4096) == 0
    assert st.get_into("z/a", dst.ctypes.data, dst.nbytes) == 4096
    assert (dst[:4096] == src[:4096]).all()
    keys = ["z/b", "z/c"]
    assert st.batch_put_from(keys, [src.ctypes.data + 4096, src.ctypes.data + 8192],
                             [4096, 100]) == [0, 0]
    assert st.batch_get_into(keys + ["z/none"], [dst.ctypes.data, dst.ctypes.data + 4096,
                                                 dst.ctypes.data + 8192],
                             [4096, 4096, 10]) == [4096, 100, NOT_FOUND]
    assert (dst[:4096] == src[4096:8192]).all()
    # ranges of one object into places of a registered buffer
    res = st.get_into_ranges([dst.ctypes.data], [["z/b"]], [[[0, 1000]]], [[[10, 2000]]],
                             [[[5, 7]]])
    assert res == [[[5, 7]]]
    assert (dst[0:5] == src[4096 + 10:4096 + 15]).all()
    assert (dst[1000:1007] == src[4096 + 2000:4096 + 2007]).all()
    assert st.upsert_from("z/a", src.ctypes.data + 100, 50) == 0
    assert st.get("z/a") == src[100:150].tobytes()
    assert st.batch_upsert_from(["z/a"], [src.ctypes.data], [10]) == [0]
    # zero-copy reads of the library's memory
    h = st.get_buffer("z/b")
    assert len(h) == h.size() == 4096 and h.ptr() != 0
    assert bytes(memoryview(h)) == src[4096:8192].tobytes()
    assert (np.frombuffer(h, dtype=np.uint8) == src[4096:8192]).all()
    hs = st.batch_get_buffer(["z/c", "z/none"])
    assert bytes(hs[0]) == src[8192:8292].tobytes() and hs[1] is None
    assert st.get_buffer("z/none") is None
    # unregistered memory is refused, not read
    other = np.zeros(64, dtype=np.uint8)
    assert st.put_from("z/x", other.ctypes.data, 64) < 0
    assert st.get_into("z/a", other.ctypes.data, 64) < 0
    assert st.unregister_buffer(src.ctypes.data) == 0
    assert st.unregister_buffer(src.ctypes.data) < 0
    assert st.put_from("z/x", src.ctypes.data, 64) < 0  # freed registration
    assert st.unregister_buffer(dst.ctypes.data) == 0


def test_replicate_config(st, peers):
    cfg = ReplicateConfig()
    cfg.replica_num = 2
    cfg.preferred_segment = peers[0].hostname
    assert st.put("r/two", b"twice", cfg) == 0
    assert peers[1].call(op="get", key="r/two")["hex"] == b"twice".hex()
    pin = ReplicateConfig(with_soft_pin=True, soft_pin_action=SoftPinAction.ENABLE)
    assert st.upsert("r/two", b"pinned", pin) == 0
    assert st.get("r/two") == b"pinned"
    with pytest.raises(ValueError):
        st.put("r/bad", b"x", ReplicateConfig(replica_num=0))
    with pytest.raises(TypeError):
        st.put("r/bad", b"x", ReplicateConfig(preferred_segments=[1]))
    assert "replica_num=2" in str(cfg)


def test_tensors(st):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert st.put_tensor("t/a", a) == 0
    b = st.get_tensor("t/a")
    assert b.dtype == a.dtype and b.shape == a.shape and (a == b).all()
    assert st.batch_put_tensor(["t/b"], [a[0]]) == [0]
    assert (st.batch_get_tensor(["t/b", "t/none"])[0] == a[0]).all()
    assert st.get_tensor("t/none") is None
    with pytest.raises(TypeError):
        st.put_tensor("t/c", [1, 2, 3])
    try:
        import torch  # noqa: F401
    except ImportError:
        # a value written from a torch tensor needs torch to be read back
        head = json.dumps({"kind": "torch", "dtype": "float32", "shape": [1]}).encode()
        blob = b"MCTENSR1" + len(head).to_bytes(4, "little") + head + b"\0" * 4
        assert st.put("t/torch", blob) == 0
        with pytest.raises(ImportError, match="torch"):
            st.get_tensor("t/torch")


def test_setup_forms(master, peers, tmp_path):
    # pure clients (no segment of their own): the value lives on the peers'
    # segments, so it outlives each client's close()
    cfg = {"local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE",
           "global_segment_size": 0, "local_buffer_size": "4MB",
           "protocol": "tcp", "device_name": "", "master_server_address": master}
    s = MooncakeDistributedStore()
    assert s.setup(cfg) == 0
    assert s.put("f/dict", b"1") == 0
    assert s.setup(cfg) < 0  # already set up
    assert s.close() == 0 and s.close() == 0
    path = tmp_path / "mooncake.json"
    path.write_text(json.dumps(cfg))
    s = MooncakeDistributedStore()
    assert s.setup(str(path)) == 0
    assert s.get("f/dict") == b"1"
    s.close()
    # the environment form, in a process of its own
    env = dict(os.environ, MOONCAKE_MASTER=master, MOONCAKE_LOCAL_HOSTNAME="127.0.0.1",
               MOONCAKE_GLOBAL_SEGMENT_SIZE="0", MOONCAKE_LOCAL_BUFFER_SIZE="4 MiB")
    env.pop("MOONCAKE_CONFIG_PATH", None)
    code = ("from mooncake.store import MooncakeDistributedStore as S\n"
            "s = S(); assert s.setup() == 0; assert s.get('f/dict') == b'1'; s.close()")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    env = dict(env, MOONCAKE_CONFIG_PATH=str(path))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    bad = tmp_path / "bad.json"
    bad.write_text('{"master_server_address": ')
    with pytest.raises(ValueError, match="bad.json: line 1"):
        MooncakeDistributedStore().setup(str(bad))
    with pytest.raises(ValueError, match="master_server_address"):
        MooncakeDistributedStore().setup({"local_hostname": "127.0.0.1"})
    s = MooncakeDistributedStore()
    assert s.setup(cfg) == 0
    assert s.remove("f/dict", True) == 0
    s.close()


def test_bad_input(master):
    s = MooncakeDistributedStore()
    with pytest.raises(RuntimeError, match="not set up"):
        s.put("k", b"v")
    assert s.get("k") == b""
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "",
                   "127.0.0.1:1") < 0  # no master there
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "", master) == 0
    with pytest.raises(TypeError):
        s.put(1, b"v")
    with pytest.raises(TypeError):
        s.put("k", 12)
    with pytest.raises(TypeError):
        s.get_batch("not-a-list")
    with pytest.raises(OverflowError):
        s.put_from("k", -1, 10)
    assert s.put("", b"v") < 0
    assert s.put("k" * 5000, b"v") < 0
    assert s.put("k", b"") < 0
    assert s.put_batch(["a", "b"], [b"1"]) == INVALID
    assert s.batch_get_into(["a"], [1, 2], [1]) == [INVALID]
    assert s.remove_by_regex("(") < 0
    assert s.setup_dummy(1, 1, "x") < 0
    s.close()
    with pytest.raises(RuntimeError):
        s.get_size("k")


def test_multi_buffers_tp_and_numa(st):
    a = np.frombuffer(os.urandom(3000), dtype=np.uint8).copy()
    b = np.zeros(3000, dtype=np.uint8)
    assert st.register_buffer(b.ctypes.data, b.nbytes) == 0
    p = a.ctypes.data
    assert st.batch_put_from_multi_buffers(["m/1"], [[p, p + 1000]], [[100, 200]]) == [0]
    assert st.get("m/1") == a[:100].tobytes() + a[1000:1200].tobytes()
    # scattered back into two places of a registered buffer, no copy
    assert st.batch_get_into_multi_buffers(["m/1", "m/none"],
                                           [[b.ctypes.data + 2000, b.ctypes.data], [b.ctypes.data]],
                                           [[100, 200], [10]]) == [300, NOT_FOUND]
    assert (b[2000:2100] == a[:100]).all() and (b[:200] == a[1000:1200]).all()
    assert st.put_from_with_metadata("m/2", p, p + 10, 20, 5) == 0
    assert st.get("m/2") == a[10:15].tobytes() + a[:20].tobytes()
    assert st.unregister_buffer(b.ctypes.data) == 0
    t = np.arange(12, dtype=np.int64).reshape(4, 3)
    assert st.put_tensor_with_tp("m/t", t, tp_size=2) == 0
    assert (st.get_tensor_with_tp("m/t", tp_rank=1, tp_size=2) == t[2:]).all()
    assert (st.batch_get_tensor_with_tp(["m/t"], tp_rank=0, tp_size=2)[0] == t[:2]).all()
    from mooncake.store import bind_to_numa_node
    before = os.sched_getaffinity(0)
    bind_to_numa_node(0)
    assert os.sched_getaffinity(0) <= before
    os.sched_setaffinity(0, before)
    with pytest.warns(UserWarning):
        bind_to_numa_node(4095)


def test_ssd_offload_setup(master, tmp_path):
    """setup's enable_ssd_offload / ssd_offload_path (upstream's names): a
    client with an SSD tier mounts it (the pool's tier capacity grows),
    a bad path is refused with INVALID_PARAMS."""
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "", master, None,
                   True, str(tmp_path / "missing")) == INVALID
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "", master, None,
                   True, "") == INVALID
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "", master,
                   enable_ssd_offload=True, ssd_offload_path=str(tmp_path)) == 0
    tiers = [p for p in os.listdir(tmp_path) if p.startswith("mc-ssd-")]
    assert len(tiers) == 1
    s.close()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("mc-ssd-")]
