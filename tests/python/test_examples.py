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
    assert float(lines[0].split("=")[1]) > 0, out
