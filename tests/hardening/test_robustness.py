"""Bad input and faults on real sockets: clear errors, the server keeps serving, no leaks.

Loopback (127.0.0.1, ::1) and short /tmp Unix paths only. Leaks are measured as the set
of open descriptors (``/proc/self/fd``) and live threads before and after.
"""

from __future__ import annotations

import errno
import gc
import os
import queue
import random
import resource
import socket
import socketserver
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from helpers import WAIT, connect, descriptor_targets, needs_ipv6, recv_all, serving

import sockfake

HOST = "127.0.0.1"
HAS_PROC_FD = os.path.isdir("/proc/self/fd")
needs_proc_fd = pytest.mark.skipif(not HAS_PROC_FD, reason="needs /proc/self/fd")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def open_descriptors() -> set[tuple[int, str]]:
    """The process's open descriptors, each with what it points at."""
    return set(descriptor_targets().items())


class Snapshot:
    """Descriptors and threads now; ``assert_no_leaks()`` checks nothing new is left."""

    def __init__(self) -> None:
        gc.collect()
        self.fds = open_descriptors()
        self.threads = set(threading.enumerate())

    def new_threads(self) -> list[threading.Thread]:
        """Threads started since, after a bounded wait for them to finish."""
        deadline = time.monotonic() + WAIT
        for thread in threading.enumerate():
            if thread not in self.threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threading.enumerate() if t not in self.threads and t.is_alive()]

    def assert_no_leaks(self) -> None:
        assert self.new_threads() == []
        gc.collect()
        assert open_descriptors() - self.fds == set()


class QuietErrors:
    """Record handler errors instead of printing tracebacks (the test checks them)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        vars(self).setdefault("errors", []).append(sys.exc_info()[1])


class QuietTCPServer(QuietErrors, sockfake.TCPServer):
    pass


class QuietThreadingTCPServer(QuietErrors, sockfake.ThreadingTCPServer):
    pass


class QuietThreadPoolTCPServer(QuietErrors, sockfake.ThreadPoolTCPServer):
    max_workers = 8


TCP_SERVERS = [QuietTCPServer, QuietThreadingTCPServer, QuietThreadPoolTCPServer]


class LineEcho(sockfake.StreamRequestHandler):
    """Upper-cases each line; ``boom`` makes the handler raise."""

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return
            if line == b"boom\n":
                raise ValueError("boom requested")
            self.wfile.write(line.upper())


def echo_once(address: Any, line: bytes = b"still serving\n") -> bytes:
    """One well-behaved client: a line out, the reply back."""
    with connect(address) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER (1, 0): the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# The abusive clients. Each one finishes on its own; none reads what it does not need.


def reset_immediately(address: Any) -> None:
    _reset(connect(address))


def connect_and_close(address: Any) -> None:
    connect(address).close()


def half_close(address: Any) -> None:
    # Half-closing is legitimate: the reply must still arrive.
    with connect(address) as sock:
        sock.sendall(b"half closed\n")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b"HALF CLOSED\n"


def send_garbage(address: Any, seed: int = 0) -> None:
    garbage = random.Random(seed).randbytes(4096)
    with connect(address) as sock:
        sock.sendall(garbage)  # closes with the echo unread: the server may see a reset


def partial_line_then_reset(address: Any) -> None:
    sock = connect(address)
    sock.sendall(b"a request that never ends")
    _reset(sock)


def vanish_mid_request(address: Any) -> None:
    with connect(address) as sock:
        sock.sendall(b"half a req")  # and gone, without the newline


ABUSES: list[Callable[[Any], None]] = [
    reset_immediately,
    connect_and_close,
    half_close,
    send_garbage,
    partial_line_then_reset,
    vanish_mid_request,
]


# ---------------------------------------------------------------------------------------
# Invalid addresses and families: the stdlib's own errors, and nothing left open
# ---------------------------------------------------------------------------------------

BAD_INET_ADDRESSES = [
    pytest.param(("999.1.1.1", 0), socket.gaierror, id="invalid-ipv4"),
    pytest.param((HOST, 70000), OverflowError, id="port-70000"),
    pytest.param((HOST, 65536), OverflowError, id="port-65536"),
    pytest.param((HOST, -1), OverflowError, id="port-negative"),
    pytest.param((HOST, "80"), TypeError, id="port-str"),
    pytest.param((HOST,), TypeError, id="no-port"),
    pytest.param((HOST, 0, 0), TypeError, id="triple"),
    pytest.param("127.0.0.1:80", TypeError, id="string"),
    pytest.param(None, TypeError, id="none"),
]


@needs_proc_fd
@pytest.mark.parametrize("kind", ["TCPServer", "UDPServer"])
@pytest.mark.parametrize(("address", "expected"), BAD_INET_ADDRESSES)
def test_bad_inet_address_raises_what_the_stdlib_raises(
    kind: str, address: Any, expected: type[BaseException]
) -> None:
    snapshot = Snapshot()
    with pytest.raises(expected) as ours:
        getattr(sockfake, kind)(address, sockfake.BaseRequestHandler)
    with pytest.raises(expected) as theirs:
        getattr(socketserver, kind)(address, socketserver.BaseRequestHandler)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)
    snapshot.assert_no_leaks()  # the half-built server closed its socket


@needs_ipv6
@pytest.mark.parametrize("kind", ["TCPServer", "UDPServer"])
def test_ipv6_port_out_of_range_raises_overflow_error(kind: str) -> None:
    # The IPv6 literal selects AF_INET6 (a sockfake fix); the port check is the socket's.
    with pytest.raises(OverflowError, match="0-65535"):
        getattr(sockfake, kind)(("::1", 70000), sockfake.BaseRequestHandler)


@needs_ipv6
def test_malformed_ipv6_literal_raises_gaierror() -> None:
    with pytest.raises(socket.gaierror):
        sockfake.TCPServer(("::zz", 0), sockfake.BaseRequestHandler)


@needs_proc_fd
@pytest.mark.parametrize(
    ("address", "expected", "message"),
    [
        pytest.param("/tmp/" + "x" * 200, OSError, "path too long", id="too-long"),
        pytest.param("/nonexistent-dir/sock", FileNotFoundError, "No such file", id="no-dir"),
        pytest.param((HOST, 0), TypeError, "bytes-like", id="inet-address"),
        pytest.param(5, TypeError, "bytes-like", id="int"),
    ],
)
def test_bad_unix_address_raises_what_the_stdlib_raises(
    address: Any, expected: type[BaseException], message: str
) -> None:
    snapshot = Snapshot()
    with pytest.raises(expected, match=message) as ours:
        sockfake.UnixStreamServer(address, sockfake.BaseRequestHandler)
    with pytest.raises(expected) as theirs:
        socketserver.UnixStreamServer(address, socketserver.BaseRequestHandler)
    assert type(ours.value) is type(theirs.value)
    snapshot.assert_no_leaks()


@needs_proc_fd
@pytest.mark.parametrize("base", [sockfake.TCPServer, sockfake.UDPServer])
def test_unknown_address_family_raises_oserror(base: type) -> None:
    odd = type("OddFamilyServer", (base,), {"address_family": 12345})
    snapshot = Snapshot()
    with pytest.raises(OSError) as raised:
        odd((HOST, 0), sockfake.BaseRequestHandler)
    assert raised.value.errno == errno.EAFNOSUPPORT
    snapshot.assert_no_leaks()


# ---------------------------------------------------------------------------------------
# Handlers that raise and clients that misbehave: the server keeps serving
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("server_class", TCP_SERVERS)
def test_handler_that_raises_does_not_stop_the_server(server_class: type) -> None:
    server = server_class((HOST, 0), LineEcho)
    with serving(server):
        assert echo_once(server.server_address, b"boom\n") == b""  # closed on error
        assert echo_once(server.server_address) == b"STILL SERVING\n"
        assert echo_once(server.server_address, b"boom\n") == b""
        assert echo_once(server.server_address, b"again\n") == b"AGAIN\n"
    errors = server.errors
    assert len(errors) == 2
    assert all(isinstance(e, ValueError) and str(e) == "boom requested" for e in errors)


@pytest.mark.parametrize("abuse", ABUSES)
@pytest.mark.parametrize("server_class", TCP_SERVERS)
def test_abusive_client_does_not_stop_the_server(
    server_class: type, abuse: Callable[[Any], None]
) -> None:
    server = server_class((HOST, 0), LineEcho)
    with serving(server):
        for _ in range(3):
            abuse(server.server_address)
            assert echo_once(server.server_address) == b"STILL SERVING\n"
    # Whatever went wrong was a network error on that client's connection.
    assert all(isinstance(e, OSError) for e in vars(server).get("errors", []))


def test_half_closed_client_gets_every_reply() -> None:
    lines = [f"line {n}\n".encode() for n in range(100)]
    server = QuietThreadingTCPServer((HOST, 0), LineEcho)
    with serving(server):
        with connect(server.server_address) as sock:
            sock.sendall(b"".join(lines))
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"".join(lines).upper()


def test_stalled_client_does_not_block_a_threading_server() -> None:
    server = QuietThreadingTCPServer((HOST, 0), LineEcho)
    with serving(server):
        with connect(server.server_address) as stalled:
            stalled.sendall(b"never finished")
            assert echo_once(server.server_address) == b"STILL SERVING\n"
            # The stalled client's handler is still waiting; closing releases it.


def test_request_timeout_drops_a_stalled_client_on_a_synchronous_server() -> None:
    class TimingOut(QuietTCPServer):
        request_timeout = 0.2

    server = TimingOut((HOST, 0), LineEcho)
    with serving(server):
        with connect(server.server_address) as stalled:
            stalled.sendall(b"never finished")
            # The one serving thread is stuck on the stalled client until it times out.
            assert echo_once(server.server_address) == b"STILL SERVING\n"
            assert recv_all(stalled) == b""  # the server gave up on it
    assert [type(e) for e in server.errors] == [TimeoutError]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Leaks: 1,000 abusive clients, 1,024 failed binds
# ---------------------------------------------------------------------------------------


@needs_proc_fd
@pytest.mark.parametrize("server_class", [QuietThreadingTCPServer, QuietThreadPoolTCPServer])
def test_1000_abusive_clients_leak_no_descriptor_and_no_thread(server_class: type) -> None:
    snapshot = Snapshot()
    server = server_class((HOST, 0), LineEcho)
    with serving(server):
        address = server.server_address

        def abuse(number: int) -> None:
            ABUSES[number % len(ABUSES)](address)

        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="abuser") as clients:
            list(clients.map(abuse, range(1000)))
        assert echo_once(address) == b"STILL SERVING\n"
    assert len(getattr(server, "_threads", ())) == 0
    assert all(isinstance(e, OSError) for e in vars(server).get("errors", []))
    snapshot.assert_no_leaks()


def _holder(kind: str, directory: str) -> Any:
    if kind == "unix":
        return sockfake.UnixStreamServer(os.path.join(directory, "s"), LineEcho)
    if kind == "udp":
        return sockfake.UDPServer((HOST, 0), sockfake.DatagramRequestHandler)
    return sockfake.TCPServer((HOST, 0), LineEcho)


@needs_proc_fd
@pytest.mark.parametrize("kind", ["tcp", "udp", "unix"])
def test_1024_failed_binds_leak_nothing(kind: str, unix_dir: str) -> None:
    holder = _holder(kind, unix_dir)
    try:
        server_class = type(holder)
        snapshot = Snapshot()
        for _ in range(1024):
            with pytest.raises(OSError) as raised:
                server_class(holder.server_address, holder.RequestHandlerClass)
            assert raised.value.errno == errno.EADDRINUSE
        snapshot.assert_no_leaks()
        assert holder.fileno() >= 0  # the server that owns the address is untouched
    finally:
        holder.server_close()


# ---------------------------------------------------------------------------------------
# Garbage and oversized datagrams
# ---------------------------------------------------------------------------------------


class PacketReport(sockfake.DatagramRequestHandler):
    """Replies with the size and CRC of the packet it saw; ``int:N`` replies N + 1."""

    def handle(self) -> None:
        if self.packet.startswith(b"int:"):
            self.wfile.write(str(int(self.packet[4:]) + 1).encode())  # garbage raises
            return
        self.wfile.write(b"%d:%d" % (len(self.packet), zlib.crc32(self.packet)))


class QuietUDPServer(QuietErrors, sockfake.UDPServer):
    pass


class QuietThreadingUDPServer(QuietErrors, sockfake.ThreadingUDPServer):
    pass


class QuietThreadPoolUDPServer(QuietErrors, sockfake.ThreadPoolUDPServer):
    max_workers = 4


UDP_SERVERS = [QuietUDPServer, QuietThreadingUDPServer, QuietThreadPoolUDPServer]


def exchange(client: socket.socket, address: Any, datagram: bytes) -> bytes:
    client.sendto(datagram, address)
    reply, _ = client.recvfrom(65536)
    return reply


@pytest.fixture
def udp_client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        client.bind((HOST, 0))
        yield client


def report(packet: bytes) -> bytes:
    return b"%d:%d" % (len(packet), zlib.crc32(packet))


@pytest.mark.parametrize("server_class", UDP_SERVERS)
def test_oversized_datagram_is_truncated_to_max_packet_size(
    server_class: type, udp_client: socket.socket
) -> None:
    big = random.Random(65000).randbytes(65000)
    server = server_class((HOST, 0), PacketReport)
    with serving(server):
        assert server.max_packet_size == 8192
        assert exchange(udp_client, server.server_address, big) == report(big[:8192])
        assert exchange(udp_client, server.server_address, b"small") == report(b"small")


@pytest.mark.parametrize("server_class", UDP_SERVERS)
def test_garbage_datagrams_are_handled_and_the_server_keeps_serving(
    server_class: type, udp_client: socket.socket
) -> None:
    rng = random.Random(2)
    server = server_class((HOST, 0), PacketReport)
    with serving(server):
        address = server.server_address
        assert exchange(udp_client, address, b"") == report(b"")  # empty datagram
        for _ in range(200):
            packet = rng.randbytes(rng.randrange(1, 9000))
            if packet.startswith(b"int:"):
                continue
            assert exchange(udp_client, address, packet) == report(packet[:8192])
        # A handler that chokes on garbage: the error is handled, the (empty) reply sent.
        assert exchange(udp_client, address, b"int:\xff\xfe") == b""
        assert exchange(udp_client, address, b"int:41") == b"42"
    assert [type(e) for e in server.errors] == [ValueError]


# ---------------------------------------------------------------------------------------
# Descriptor exhaustion: back off, no busy loop, serve once descriptors return
# ---------------------------------------------------------------------------------------

EXHAUSTION_SCRIPT = textwrap.dedent(
    """
    import errno, resource, socket, sys, threading, time
    import sockfake

    class Handler(sockfake.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    class Server(sockfake.ThreadingTCPServer):
        accept_errors = 0

        def handle_accept_error(self, error):
            if error.errno == errno.EMFILE:
                type(self).accept_errors += 1
            super().handle_accept_error(error)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    server = Server(("127.0.0.1", 0), Handler)
    serve = threading.Thread(target=server.serve_forever, daemon=True)
    serve.start()
    # Prove the loop runs (its wake-up pipe exists), then wait until the handler
    # thread has closed its connection so that no descriptor frees up later.
    with socket.create_connection(server.server_address, timeout=10) as probe:
        probe.sendall(b"probe\\n")
        assert probe.makefile("rb").readline() == b"PROBE\\n"
    for thread in list(server._threads):
        thread.join(10)

    hog = []
    try:
        while True:
            hog.append(open("/dev/null", "rb"))
    except OSError as exc:
        assert exc.errno == errno.EMFILE, exc
    print("exhausted", server.server_address[1], flush=True)

    assert sys.stdin.readline() == "measure\\n"  # a client is waiting in the backlog
    cpu = time.process_time()
    time.sleep(1.0)
    cpu = time.process_time() - cpu
    print("cpu", cpu, Server.accept_errors, flush=True)

    for f in hog:
        f.close()
    print("freed", flush=True)
    assert sys.stdin.readline() == "stop\\n"
    server.shutdown()
    server.server_close()
    print("done", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_NOFILE"), reason="no RLIMIT_NOFILE")
def test_descriptor_exhaustion_costs_no_busy_loop() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", EXHAUSTION_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None and child.stdin is not None
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in child.stdout],  # type: ignore[func-returns-value, union-attr]
        daemon=True,
    )
    reader.start()

    def expect(word: str) -> list[str]:
        try:
            line = lines.get(timeout=WAIT)
        except queue.Empty:
            child.kill()
            pytest.fail(f"child said nothing, expected {word!r}: {child.stderr.read()}")  # type: ignore[union-attr]
        fields = line.split()
        assert fields and fields[0] == word, line
        return fields[1:]

    def tell(line: str) -> None:
        child.stdin.write(line + "\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]

    try:
        (port,) = expect("exhausted")
        with socket.create_connection((HOST, int(port)), timeout=WAIT) as pending:
            pending.sendall(b"pending\n")
            tell("measure")
            cpu, accept_errors = expect("cpu")
            assert int(accept_errors) >= 1, "the server never hit EMFILE"
            assert float(cpu) < 0.1, f"{float(cpu):.3f} s of CPU in 1 s while exhausted"
            expect("freed")
            # Descriptors are back: the client that waited is served.
            assert pending.makefile("rb").readline() == b"PENDING\n"
        tell("stop")
        expect("done")
        assert child.wait(WAIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(WAIT)
        reader.join(WAIT)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()
