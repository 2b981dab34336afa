"""Fixtures of the mooncake.engine tests: a real etcd (and a real
mooncake-metadata-server) on free loopback ports, and peer processes
(peer.py) with engines of their own."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def die_with_parent():
    """preexec_fn: the child is killed when this process dies, even by a
    signal (an ASan abort) that skips the fixtures' teardown."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            time.sleep(0.1)
    return None


@pytest.fixture(scope="session")
def etcd_url():
    """etcd://127.0.0.1:PORT of an etcd started for this session."""
    exe = os.environ.get("MC_TEST_ETCD") or shutil.which("etcd")
    if not exe:
        pytest.skip("etcd not found (install etcd-server)")
    tmp = tempfile.mkdtemp(prefix="mcpy-etcd-")
    cport, pport = free_port(), free_port()
    curl, purl = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
    log = open(os.path.join(tmp, "etcd.log"), "w")
    proc = subprocess.Popen(
        [exe, "--name", "m0", "--data-dir", os.path.join(tmp, "m0"),
         "--listen-client-urls", curl, "--advertise-client-urls", curl,
         "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
         "--initial-cluster", f"m0={purl}", "--log-level", "warn"],
        stdout=log, stderr=log, preexec_fn=die_with_parent)
    try:
        if wait_http(curl + "/health", 20) != 200:
            pytest.fail("etcd did not become healthy; see " + log.name)
        yield f"etcd://127.0.0.1:{cport}"
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def http_url():
    """http://127.0.0.1:PORT/metadata of a mooncake-metadata-server."""
    exe = os.environ.get("MC_TEST_METADATA_SERVER")
    if not exe or not os.path.exists(exe):
        pytest.skip("mooncake-metadata-server not built in this configuration")
    port = free_port()
    proc = subprocess.Popen([exe, "--listen", f"127.0.0.1:{port}", "--path", "/metadata"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    try:
        if wait_http(f"http://127.0.0.1:{port}/metadata?key=probe", 20) is None:
            pytest.fail("mooncake-metadata-server did not start")
        yield f"http://127.0.0.1:{port}/metadata"
    finally:
        proc.kill()
        proc.wait()


class Peer:
    """peer.py in its own process; call() sends one command."""

    def __init__(self, metadata, hostname, size):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "peer.py"), metadata, hostname, str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent)
        hello = self._read(60)
        if "error" in hello:
            self.close()
            raise RuntimeError("peer: " + hello["error"])
        self.segment, self.addr, self.len = hello["segment"], hello["addr"], hello["len"]
        self.rpc_port = hello["rpc_port"]

    def _read(self, timeout):
        # The peer answers every command; a dead peer gives EOF, not a hang.
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("peer did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer exited ({self.proc.wait()})")
        return json.loads(line)

    def call(self, timeout=60, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["p2p", "etcd", "http"])
def metadata(request):
    """(metadata_server string, a function naming a fresh local_hostname)."""
    if request.param == "p2p":
        return "P2PHANDSHAKE", lambda: "127.0.0.1"
    url = request.getfixturevalue("etcd_url" if request.param == "etcd" else "http_url")
    # With a store the segment is named by local_hostname itself; upstream
    # code passes "ip:port" strings, unique per engine.
    return url, lambda: f"127.0.0.1:{free_port()}"


@pytest.fixture
def peer_factory():
    peers = []

    def make(metadata_server, hostname, size=8 << 20):
        p = Peer(metadata_server, hostname, size)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()
