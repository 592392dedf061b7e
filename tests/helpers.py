"""Helpers shared by every test: servers in a thread, echo handlers, bounded reads.

A uniquely named module (not ``conftest``) so that test modules can import it
(``tests/`` is on ``sys.path`` through ``tests/conftest.py``). Everything here works
on both networks: on the simulated one, threads started here join the simulation
and waits are virtual.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

import sockfake as socketserver
from sockfake.network import REAL_NETWORK

# Long enough for a loaded CI machine, short enough that a hang shows up quickly.
WAIT = 5.0


def ipv6_available() -> bool:
    """True if this machine can bind ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="IPv6 loopback unavailable")
needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")


@contextlib.contextmanager
def serving(server: Any, poll_interval: float = 0.5) -> Iterator[threading.Thread]:
    """Run ``server.serve_forever`` in a thread; always stop, close and join it."""
    thread = threading.Thread(
        target=server.serve_forever, args=(poll_interval,), name="serve_forever", daemon=True
    )
    thread.start()
    try:
        yield thread
    finally:
        try:
            server.shutdown()
        finally:
            server.server_close()
            thread.join(WAIT)
    assert not thread.is_alive(), "serve_forever did not stop"


def serve_in_thread(server: Any, poll_interval: float = 0.5) -> threading.Thread:
    """Start ``server.serve_forever`` in a (non-daemon) thread; ``stop_serving`` ends it.

    On the simulated network the thread joins the simulation and the join is virtual.
    """
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,))
    thread.start()
    return thread


def stop_serving(server: Any, thread: threading.Thread, timeout: float | None = None) -> None:
    """Shut down, close (with ``timeout`` if given) and join a ``serve_in_thread`` server."""
    server.shutdown()
    if timeout is None:
        server.server_close()
    else:
        server.server_close(timeout=timeout)
    thread.join()


def wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Wait (real time, bounded) until ``condition()`` holds: synchronise on what the
    server shows, not on a guess of how long it takes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.002)


def in_thread(
    target: Callable[[], object], name: str = "helper", network: Any = None
) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``target`` in a daemon thread; its result or exception lands in the dict.

    ``outcome["done"]`` is an event of ``network`` (real by default), so waiting on it
    on the simulated network waits in virtual time.
    """
    outcome: dict[str, Any] = {}
    done = (network or REAL_NETWORK).event()
    outcome["done"] = done

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, outcome


def connect(address: Any, family: int = socket.AF_INET, network: Any = None) -> Any:
    """A blocking client socket with a timeout, connected to ``address`` (on ``network``)."""
    client = (network or REAL_NETWORK).socket(family, socket.SOCK_STREAM)
    client.settimeout(WAIT)
    try:
        client.connect(address)
    except BaseException:
        client.close()
        raise
    return client


def recv_all(sock: Any) -> bytes:
    """Read until the peer closes (bounded by the socket's timeout)."""
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def descriptor_targets() -> dict[int, str]:
    """This process's descriptors and what each points at, not counting a listing of
    /proc's own (this one's, or the stray-socket sampler's, which a real thread may
    hold at any moment while a simulation is intercepted)."""
    found: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile (a listing's own descriptor)
            continue
        if not target.startswith("/proc/"):
            found[int(name)] = target
    return found


def open_fds() -> int:
    """How many descriptors this process holds (``descriptor_targets``)."""
    return len(descriptor_targets())


class EchoHandler(socketserver.BaseRequestHandler):
    """Echo every byte until EOF."""

    def handle(self) -> None:
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class LineEchoHandler(socketserver.StreamRequestHandler):
    """Echo line by line, through makefile() buffering."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class UpperOnceHandler(socketserver.BaseRequestHandler):
    """Upper-case one ``recv()`` (up to 100 bytes) and send it back."""

    def handle(self) -> None:
        self.request.sendall(self.request.recv(100).upper())


class UpperLineHandler(socketserver.StreamRequestHandler):
    """Upper-case one line and send it back."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def round_trip(address: Any, data: bytes = b"ping", family: int = socket.AF_INET) -> bytes:
    """Send ``data`` on a new real connection; the reply, read until the server closes."""
    with connect(address, family) as client:
        client.sendall(data)
        return recv_all(client)


def line_round_trip(address: Any, payload: bytes = b"ping\n", timeout: float = WAIT) -> bytes:
    """Send one line on a new real TCP connection; the first line of the reply."""
    with socket.create_connection(address, timeout=timeout) as client:
        client.sendall(payload)
        return client.makefile("rb").readline()


class DatagramEchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def recv_exactly(sock: Any, size: int) -> bytes:
    """Read exactly ``size`` bytes (bounded: fails on EOF)."""
    chunks = []
    left = size
    while left:
        data = sock.recv(left)
        if not data:
            raise EOFError(f"EOF with {left} bytes still expected")
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


@contextlib.contextmanager
def running(server: Any, poll_interval: float = 0.5) -> Iterator[Any]:
    """``serving``, yielding the server itself (``with running(Server(...)) as server``)."""
    with serving(server, poll_interval):
        yield server


# -- the stdlib's own HTTP handler on sockfake (interception tests) ---------------------


class JSONHandler(BaseHTTPRequestHandler):
    """GET answers the path; POST echoes the JSON body with a key added. HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"

    def _reply(self, payload: Any, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply({"path": self.path, "client": list(self.client_address)})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = json.loads(self.rfile.read(length))
        data["seen"] = True
        self._reply(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HTTPServer(socketserver.ThreadingTCPServer):
    """``http.server.ThreadingHTTPServer`` in one line, on sockfake."""

    daemon_threads = True


def accepts(net: Any) -> int:
    """How many connections the simulated network's listeners accepted so far."""
    return sum(1 for event in net.trace if event.kind == "accept")


def echo_digest(*, prepare: Callable[[Any], object] | None = None, **network: Any) -> str:
    """The trace digest of a fixed run on ``SimNetwork(seed=3, **network)``: a threaded
    TCP echo (20 round trips) and 20 UDP datagrams, ``prepare(net)`` called first."""
    from sockfake.sim import SimNetwork

    net = SimNetwork(seed=3, **network)
    try:
        if prepare is not None:
            prepare(net)
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
        with running(server, poll_interval=0.1):
            with net.create_connection(server.server_address) as conn:
                for number in range(20):
                    conn.sendall(b"%d" % number)
                    conn.recv(64)
            with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    net.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                b.bind(("127.0.0.1", 0))
                for number in range(20):
                    a.sendto(b"%d" % number, b.getsockname())
                    assert b.recv(64) == b"%d" % number
        return net.digest()
    finally:
        net.close()


def run_printed(command: str, cwd: Any = None) -> subprocess.CompletedProcess[str]:
    """A printed reproduce command, run in a shell as a user would (this interpreter)."""
    shell = command.replace("python -m pytest", f"{shlex.quote(sys.executable)} -m pytest", 1)
    return subprocess.run(
        shell + " -p no:hypothesispytest", shell=True, cwd=cwd,
        capture_output=True, text=True, timeout=120,
    )


def digest_of(text: str) -> str:
    """The first trace digest a report shows."""
    found = re.search(r"trace digest ([0-9a-f]{64})", text)
    assert found is not None, text
    return found.group(1)


@contextlib.contextmanager
def db_and_app(latency: float) -> Iterator[Any]:
    """A simulated network with hosts ``db`` and ``app`` (and ``local``), links of
    ``latency``, an hour of virtual time; closed after."""
    from sockfake.sim import SimNetwork

    network = SimNetwork(seed=1, time_limit=3600, latency=latency)
    network.add_host("db")
    network.add_host("app")
    try:
        yield network
    finally:
        network.close()
