"""The examples of examples/python/ run as a user runs them, to success."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "examples", "python")


def run(args, timeout=120):
    p = subprocess.run([sys.executable] + args, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.mark.parametrize("md", ["p2p", "etcd", "http"])
def test_kv_handoff(md, request):
    server = "P2PHANDSHAKE" if md == "p2p" else request.getfixturevalue(
        "etcd_url" if md == "etcd" else "http_url")
    out = run([os.path.join(EXAMPLES, "kv_handoff.py"), "--metadata", server])
    assert "OK" in out and "'1001': True" in out and "'1002': True" in out, out


def test_bench_runs_beside_the_c_bench():
    c_bench = os.environ.get("MC_TEST_TRANSFER_BENCH")
    if not c_bench:
        pytest.skip("mc-transfer-bench path not given (MC_TEST_TRANSFER_BENCH)")
    out = run([os.path.join(EXAMPLES, "bench_transfer.py"), "--c-bench", c_bench,
               "--duration", "0.3", "--rounds", "1", "--block-sizes", "64K"])
    lines = [l for l in out.splitlines() if "ratio Python/C" in l]
    assert len(lines) == 1, out
    import re
    m = re.search(r"ratio Python/C = ([0-9.]+) .* median of 1 paired rounds ([0-9.]+)", lines[0])
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, out


def test_store_walkthrough():
    try:
        import mooncake.store  # noqa: F401
    except ImportError:
        pytest.skip("mooncake.store not built (needs the store client)")
    exe = os.environ.get("MC_TEST_STORE_MASTER")
    if not exe:
        pytest.skip("mooncake-master not built in this configuration")
    from conftest import die_with_parent, free_port
    port = free_port()
    m = subprocess.Popen([exe, f"--rpc_port={port}", "--rpc_address=127.0.0.1",
                          "--enable_metric_reporting=false"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=die_with_parent)
    try:
        import socket
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        out = run([os.path.join(EXAMPLES, "store_walkthrough.py"), "--master",
                   f"127.0.0.1:{port}"])
        assert "store walk-through: OK" in out, out
    finally:
        m.kill()
        m.wait()
