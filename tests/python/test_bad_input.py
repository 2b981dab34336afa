"""Bad input to mooncake.engine: Python exceptions for wrong types and
values the binding cannot take, negative codes where upstream returns
them (unknown segments, unregistered or freed memory, out-of-range
addresses, a dead peer), and never a crash."""
import numpy as np
import pytest

from mooncake.engine import TransferEngine, TransferNotify, Write


@pytest.fixture
def eng():
    e = TransferEngine()
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    return e


@pytest.fixture
def me(eng):
    return f"127.0.0.1:{eng.get_rpc_port()}"


def test_not_initialized():
    e = TransferEngine()
    for call in (lambda: e.get_rpc_port(),
                 lambda: e.register_memory(4096, 4096),
                 lambda: e.transfer_sync_write("x:1", 1, 2, 3),
                 lambda: e.get_notifies(),
                 lambda: e.allocate_managed_buffer(10)):
        with pytest.raises(RuntimeError, match="not initialized"):
            call()


def test_initialize_errors():
    e = TransferEngine()
    with pytest.raises(TypeError):
        e.initialize(1, "P2PHANDSHAKE", "tcp", "")
    with pytest.raises(TypeError):
        e.initialize("127.0.0.1", "P2PHANDSHAKE")
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "carrier-pigeon", "") < 0
    assert e.initialize("127.0.0.1", "redis://127.0.0.1:6379", "tcp", "") < 0
    assert e.initialize("127.0.0.1", "nosuch://x", "tcp", "") < 0
    assert e.initialize("", "P2PHANDSHAKE", "tcp", "") < 0
    # a failed initialize leaves it usable
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") < 0  # twice


def test_wrong_types(eng, me):
    with pytest.raises(TypeError):
        eng.register_memory("0x1000", 10)
    with pytest.raises(OverflowError):
        eng.register_memory(-1, 10)
    with pytest.raises(OverflowError):
        eng.register_memory(1 << 64, 10)
    with pytest.raises(TypeError):
        eng.transfer_sync_write(me, 1.5, 2, 3)
    with pytest.raises(TypeError):
        eng.batch_transfer_sync_write(me, 123, [1], [1])
    with pytest.raises(TypeError):
        eng.batch_transfer_sync_write(me, ["a"], [1], [1])
    with pytest.raises(TypeError):
        eng.batch_register_memory("abc", [1])
    with pytest.raises(OverflowError):
        eng.transfer_sync(me, 1, 2, 3, 7)  # opcode
    with pytest.raises(TypeError):
        eng.transfer_sync(me, 1, 2, 3, Write, notify="not a TransferNotify")
    with pytest.raises(TypeError):
        TransferNotify(1, "x")
    with pytest.raises(ValueError):
        eng.transfer_sync(me, 1, 2, 3, Write, TransferNotify("n", "x" * 5000))
    with pytest.raises(ValueError):
        eng.write_bytes_to_buffer(4096, b"abc", 10)  # more than given
    with pytest.raises(ValueError):
        eng.transfer_sync_write("a\0b", 1, 2, 3)


def test_bad_addresses_and_segments():
    # The engine is made here and dropped before the arrays (see the end).
    eng = TransferEngine()
    assert eng.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    me = f"127.0.0.1:{eng.get_rpc_port()}"
    a = np.zeros(1 << 16, dtype=np.uint8)
    assert eng.register_memory(a.ctypes.data, a.nbytes) == 0
    p = a.ctypes.data
    # mismatched lists: -1 as upstream
    assert eng.batch_transfer_sync_write(me, [p, p], [p], [1, 1]) < 0
    assert eng.batch_register_memory([p], [1, 2]) < 0
    assert eng.batch_transfer_async_write(me, [p], [p, p], [1]) == 0  # id 0: failed
    # unknown segments
    assert eng.transfer_sync_write("127.0.0.1:1", p, p, 8) < 0
    assert eng.transfer_sync_read("no-such-host.invalid:1", p, p, 8) < 0
    assert eng.batch_transfer_async_read("127.0.0.1:1", [p], [p], [8]) == 0
    assert eng.transfer_submit_write("127.0.0.1:1", p, p, 8) == -1
    assert eng.send_probe("127.0.0.1:1") < 0
    assert eng.get_first_buffer_address("127.0.0.1:1") == 0
    # remote range outside every registered buffer, local memory unregistered
    assert eng.transfer_sync_write(me, p, p + a.nbytes - 4, 64) < 0
    b = np.zeros(4096, dtype=np.uint8)
    assert eng.transfer_sync_write(me, b.ctypes.data, p, 64) < 0
    # freed (unregistered) memory is refused on both sides
    assert eng.register_memory(b.ctypes.data, b.nbytes) == 0
    assert eng.transfer_sync_write(me, b.ctypes.data, p, 64) == 0
    assert eng.unregister_memory(b.ctypes.data) == 0
    assert eng.transfer_sync_write(me, b.ctypes.data, p, 64) < 0
    assert eng.transfer_sync_write(me, p, b.ctypes.data, 64) < 0
    # unknown batch ids
    assert eng.get_batch_transfer_status([123456]) < 0
    assert eng.transfer_check_status(123456) == -1
    # unmapped memory through the byte helpers
    assert eng.write_bytes_to_buffer(8, b"abc", 3) < 0
    with pytest.raises(ValueError):
        eng.read_bytes_from_buffer(8, 16)
    assert eng.unregister_memory(p) == 0
    assert eng.unregister_memory(12345) < 0
    assert eng.batch_unregister_memory([p, p]) < 0
    # The engine goes before the arrays only to keep this test about bad
    # input; test_refused_write_then_free frees buffers under a live engine.
    del eng


def test_peer_dies(peer_factory):
    eng = TransferEngine()
    assert eng.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    peer = peer_factory("P2PHANDSHAKE", "127.0.0.1")
    a = np.ones(1 << 20, dtype=np.uint8)
    assert eng.register_memory(a.ctypes.data, a.nbytes) == 0
    assert eng.transfer_sync_write(peer.segment, a.ctypes.data, peer.addr, a.nbytes) == 0
    bid = eng.batch_transfer_async_write(peer.segment, [a.ctypes.data], [peer.addr], [4096])
    assert bid > 0 and eng.get_batch_transfer_status([bid]) == 0
    peer.kill()
    assert eng.transfer_sync_write(peer.segment, a.ctypes.data, peer.addr, a.nbytes) < 0
    assert eng.batch_transfer_sync_read(peer.segment, [a.ctypes.data], [peer.addr], [64]) < 0
    assert eng.send_probe(peer.segment) < 0
    assert eng.unregister_memory(a.ctypes.data) == 0
    del eng


def test_refused_write_then_free():
    """A write the target refuses (its buffer unregistered) returns an error
    only once the transport stopped reading the local buffer: freeing it
    right after the call must be safe (an older tcp plugin kept sending from
    it; ASan caught the read of freed memory)."""
    eng, tgt = TransferEngine(), TransferEngine()
    assert eng.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    assert tgt.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    peer = f"127.0.0.1:{tgt.get_rpc_port()}"
    refused = 0
    for _ in range(20):
        a = np.ones(1 << 22, dtype=np.uint8)
        b = np.zeros(1 << 22, dtype=np.uint8)
        assert eng.register_memory(a.ctypes.data, a.nbytes) == 0
        assert tgt.register_memory(b.ctypes.data, b.nbytes) == 0
        assert eng.transfer_sync_write(peer, a.ctypes.data, b.ctypes.data, a.nbytes) == 0
        assert tgt.unregister_memory(b.ctypes.data) == 0
        refused += eng.transfer_sync_write(peer, a.ctypes.data, b.ctypes.data, a.nbytes) < 0
        assert eng.unregister_memory(a.ctypes.data) == 0
        del a, b  # freed (munmapped) while both engines live
    assert refused == 20
    del eng, tgt


def test_rpc_port_range(monkeypatch):
    """MC_MIN_RPC_PORT..MC_MAX_RPC_PORT (upstream's variables) bound the
    handshake listener's port; a taken port in the range is skipped."""
    import socket
    from conftest import free_port
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    monkeypatch.setenv("MC_MIN_RPC_PORT", str(port))
    monkeypatch.setenv("MC_MAX_RPC_PORT", str(port))
    e = TransferEngine()
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") < 0  # only a taken port
    other = free_port()
    lo, hi = min(port, other), max(port, other)
    if hi - lo > 64:  # keep the range small: the taken port is hit often
        lo, hi = other, other
    monkeypatch.setenv("MC_MIN_RPC_PORT", str(lo))
    monkeypatch.setenv("MC_MAX_RPC_PORT", str(hi))
    e = TransferEngine()
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    assert lo <= e.get_rpc_port() <= hi and e.get_rpc_port() != port
    monkeypatch.setenv("MC_MIN_RPC_PORT", "99999")
    assert TransferEngine().initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") < 0
    taken.close()
