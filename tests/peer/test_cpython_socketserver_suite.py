"""Code nobody here wrote: CPython's own socketserver tests, run on sockfake.

Two layers:

* ``test_cpython_socketserver_suite_passes_on_sockfake`` runs the interpreter's own
  ``Lib/test/test_socketserver.py``, unmodified, in a subprocess where
  ``sys.modules["socketserver"]`` is sockfake (skipped where the ``test`` package is
  not installed). One upstream test is left out: ``MiscTestCase.test_all`` checks the
  stdlib module's file against itself (every object whose ``__module__`` is
  ``"socketserver"`` is in ``__all__``); sockfake's classes live in
  ``sockfake.servers``, and ``test_all_lists_the_stdlib_names`` covers ``__all__``.
* The rest are the same scenarios rewritten for pytest, with ``import sockfake as
  socketserver`` as the only change in what they exercise, plus the subclassing
  patterns real code uses (manual bind/activate, overridden ``server_bind``, class-
  wide ``allow_reuse_address``, ``handle_request`` loops, shutdown from a handler).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, in_thread, needs_fork, open_fds

import sockfake as socketserver

HOST = "127.0.0.1"
TEST_STR = b"hello world\n"

# --- the interpreter's own suite ------------------------------------------------------

_RUN_UPSTREAM = r"""
import json, sys, unittest
import sockfake
sys.modules["socketserver"] = sockfake
import test.support
test.support.use_resources = ["network"]
from test import test_socketserver as upstream
assert upstream.socketserver is sockfake
suite = unittest.defaultTestLoader.loadTestsFromModule(upstream)
skip = {"test_all"}  # checks the stdlib module's own file; see this module's docstring

def flatten(s):
    for t in s:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t

tests = [t for t in flatten(suite) if t._testMethodName not in skip]
result = unittest.TestResult()
unittest.TestSuite(tests).run(result)
print(json.dumps({
    "run": result.testsRun,
    "failures": [[str(t), tb] for t, tb in result.failures + result.errors],
    "skipped": [str(t) for t, _ in result.skipped],
}))
"""


def _has_upstream_suite() -> bool:
    try:
        import test.test_socketserver  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _has_upstream_suite(), reason="the interpreter ships no test package")
def test_cpython_socketserver_suite_passes_on_sockfake(tmp_path: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_UPSTREAM],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the suite creates Unix sockets and TESTFN in the cwd
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"CPython {sys.version.split()[0]} test_socketserver on sockfake: "
          f"{outcome['run']} run, {len(outcome['skipped'])} skipped")
    assert outcome["failures"] == []
    assert outcome["run"] >= 25


# --- the same scenarios, ported -------------------------------------------------------


def _receive_line(sock: socket.socket) -> bytes:
    sock.settimeout(WAIT)
    buf = b""
    while not buf.endswith(b"\n"):
        data = sock.recv(100)
        if not data:
            break
        buf += data
    return buf


class _Paths:
    """Unix socket paths for one test, removed afterwards."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return os.path.join(self.directory, f"s{self.count}")


@pytest.fixture
def paths(unix_dir: str) -> _Paths:
    return _Paths(unix_dir)


def _stream_examine(family: int, addr: Any, paths: _Paths) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(addr)
        s.sendall(TEST_STR)
        assert _receive_line(s) == TEST_STR


def _dgram_examine(family: int, addr: Any, paths: _Paths) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        if family == getattr(socket, "AF_UNIX", None):
            s.bind(paths())
        s.settimeout(WAIT)
        s.sendto(TEST_STR, addr)
        assert _receive_line(s) == TEST_STR


@contextlib.contextmanager
def _foreign_child() -> Iterator[None]:
    """A child this test forked itself: the server must not reap it (bpo-1540386)."""
    pid = os.fork()
    if pid == 0:
        os._exit(72)
    try:
        yield
    finally:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 72


SERVER_CLASSES = [
    ("TCPServer", "stream"),
    ("ThreadingTCPServer", "stream"),
    ("ForkingTCPServer", "stream"),
    ("UnixStreamServer", "stream"),
    ("ThreadingUnixStreamServer", "stream"),
    ("ForkingUnixStreamServer", "stream"),
    ("UDPServer", "dgram"),
    ("ThreadingUDPServer", "dgram"),
    ("ForkingUDPServer", "dgram"),
    ("UnixDatagramServer", "dgram"),
    ("ThreadingUnixDatagramServer", "dgram"),
    ("ForkingUnixDatagramServer", "dgram"),
]


@pytest.mark.parametrize(("name", "kind"), SERVER_CLASSES, ids=[n for n, _ in SERVER_CLASSES])
def test_run_server(name: str, kind: str, paths: _Paths) -> None:
    if "Unix" in name and not hasattr(socket, "AF_UNIX"):
        pytest.skip("no AF_UNIX")
    if "Forking" in name and not hasattr(os, "fork"):
        pytest.skip("no fork")
    svrcls = getattr(socketserver, name)
    hdlrbase = (
        socketserver.StreamRequestHandler if kind == "stream"
        else socketserver.DatagramRequestHandler
    )  # fmt: skip

    class MyServer(svrcls):  # type: ignore[misc, valid-type]
        def handle_error(self, request: Any, client_address: Any) -> None:
            self.close_request(request)
            raise

    class MyHandler(hdlrbase):  # type: ignore[misc, valid-type]
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    addr: Any = (HOST, 0) if svrcls.address_family == socket.AF_INET else paths()
    examine = _stream_examine if kind == "stream" else _dgram_examine
    child = _foreign_child() if "Forking" in name and kind == "stream" else contextlib.nullcontext()
    with child:
        server = MyServer(addr, MyHandler)
        assert server.server_address == server.socket.getsockname()
        t = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        t.start()
        for _ in range(3):
            examine(svrcls.address_family, server.server_address, paths)
        server.shutdown()
        t.join(WAIT)
        assert not t.is_alive()
        server.server_close()
    assert server.socket.fileno() == -1
    if isinstance(server, socketserver.ForkingMixIn):
        # server_close() waits until every child completed (bpo-31151).
        assert not server.active_children


def test_shutdown_always_stops_another_threads_serve_forever() -> None:
    pairs = []
    for _ in range(20):
        s = socketserver.TCPServer((HOST, 0), socketserver.StreamRequestHandler)
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        pairs.append((t, s))
    for t, s in pairs:
        t.start()
        s.shutdown()
    for t, s in pairs:
        t.join(WAIT)
        assert not t.is_alive()
        s.server_close()


def test_close_immediately() -> None:
    class MyServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
        pass

    server = MyServer((HOST, 0), lambda: None)
    server.server_close()


def test_tcpserver_bind_leak() -> None:
    before = open_fds()
    for _ in range(1024):
        with pytest.raises(OverflowError):
            socketserver.TCPServer((HOST, -1), socketserver.StreamRequestHandler)
    assert open_fds() == before


def test_context_manager() -> None:
    with socketserver.TCPServer((HOST, 0), socketserver.StreamRequestHandler) as server:
        pass
    assert server.socket.fileno() == -1


# --- handler errors: handle_error for Exception, not for SystemExit -------------------


def _error_servers() -> tuple[list[str], type, type]:
    """CPython's BaseErrorTestServer and ThreadingErrorTestServer, and their shared log."""
    log: list[str] = []

    class BadHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            log.append("Handler called")
            raise self.server.exception("Test error")

    class BaseErrorTestServer(socketserver.TCPServer):
        def __init__(self, exception: type[BaseException]) -> None:
            self.exception = exception
            super().__init__((HOST, 0), BadHandler)
            with socket.create_connection(self.server_address):
                pass
            try:
                self.handle_request()
            finally:
                self.server_close()
            self.wait_done()

        def handle_error(self, request: Any, client_address: Any) -> None:
            log.append("Error handled")

        def wait_done(self) -> None:
            pass

    class ThreadingErrorTestServer(socketserver.ThreadingMixIn, BaseErrorTestServer):
        def __init__(self, *pos: Any, **kw: Any) -> None:
            self.done = threading.Event()
            super().__init__(*pos, **kw)

        def shutdown_request(self, *pos: Any, **kw: Any) -> None:
            super().shutdown_request(*pos, **kw)
            self.done.set()

        def wait_done(self) -> None:
            assert self.done.wait(WAIT)

    return log, BaseErrorTestServer, ThreadingErrorTestServer


def test_sync_handled() -> None:
    log, sync, _ = _error_servers()
    sync(ValueError)
    assert log == ["Handler called", "Error handled"]


def test_sync_not_handled() -> None:
    log, sync, _ = _error_servers()
    with pytest.raises(SystemExit):
        sync(SystemExit)
    assert log == ["Handler called"]


def test_threading_handled() -> None:
    log, _, threaded = _error_servers()
    threaded(ValueError)
    assert log == ["Handler called", "Error handled"]


def test_threading_not_handled(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    log, _, threaded = _error_servers()
    threaded(SystemExit)
    assert log == ["Handler called"]
    # server_close() joined the handler thread, so its exception has been reported.
    assert seen == [SystemExit]


@needs_fork
@pytest.mark.parametrize(("exc", "handled"), [(ValueError, True), (SystemExit, False)])
def test_forking_error_handling(exc: type[BaseException], handled: bool, tmp_path: Any) -> None:
    """The child writes the log (a file: it is another process)."""
    logfile = tmp_path / "log"

    class BadHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with open(logfile, "a") as log:
                log.write("Handler called\n")
            raise exc("Test error")

    class Server(socketserver.ForkingMixIn, socketserver.TCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            with open(logfile, "a") as log:
                log.write("Error handled\n")

    with Server((HOST, 0), BadHandler) as server:
        with socket.create_connection(server.server_address):
            pass
        server.handle_request()
    # server_close() waited for the child.
    assert logfile.read_text() == "Handler called\n" + "Error handled\n" * handled


# --- _SocketWriter ---------------------------------------------------------------------


def test_socket_writer_basics() -> None:
    seen: dict[str, Any] = {}

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            seen["wfile"] = self.wfile
            seen["wfile_fileno"] = self.wfile.fileno()
            seen["request_fileno"] = self.request.fileno()

    with socketserver.TCPServer((HOST, 0), Handler) as server:
        with socket.socket(server.address_family, socket.SOCK_STREAM) as s:
            s.connect(server.server_address)
        server.handle_request()
    assert isinstance(seen["wfile"], io.BufferedIOBase)
    assert seen["wfile_fileno"] == seen["request_fileno"]


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="no pthread_kill")
def test_socket_writer_write_is_immediate_and_survives_signals() -> None:
    """wfile.write() sends at once and is not cut short by a signal (EINTR)."""
    big = 16 * 1024 * 1024
    seen: dict[str, Any] = {}

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            seen["sent1"] = self.wfile.write(b"write data\n")
            seen["received"] = self.rfile.readline()
            seen["sent2"] = self.wfile.write(b"\0" * big)

    interrupted = threading.Event()
    original = signal.signal(signal.SIGUSR1, lambda *args: interrupted.set())
    main_thread = threading.get_ident()
    try:
        with socketserver.TCPServer((HOST, 0), Handler) as server:

            def client() -> tuple[bytes, int]:
                with socket.create_connection(server.server_address, WAIT) as s:
                    with s.makefile("rb") as reader:
                        first = reader.readline()
                        s.sendall(b"client response\n")
                        reader.read(100)
                        # The server is now blocked in send(): interrupt it, bounded.
                        for _ in range(int(WAIT * 10)):
                            signal.pthread_kill(main_thread, signal.SIGUSR1)
                            if interrupted.wait(0.1):
                                break
                        return first, len(reader.read())

            thread, outcome = in_thread(client)
            server.handle_request()
            thread.join(WAIT)
    finally:
        signal.signal(signal.SIGUSR1, original)
    assert "error" not in outcome, outcome.get("error")
    first, rest = outcome["result"]
    assert first == b"write data\n" and seen["sent1"] == len(first)
    assert seen["received"] == b"client response\n"
    assert seen["sent2"] == big
    assert rest == big - 100


# --- MiscTestCase --------------------------------------------------------------------


def test_shutdown_request_called_if_verify_request_false() -> None:
    class MyServer(socketserver.TCPServer):
        shutdown_called = 0

        def verify_request(self, request: Any, client_address: Any) -> bool:
            return False

        def shutdown_request(self, request: Any) -> None:
            self.shutdown_called += 1
            socketserver.TCPServer.shutdown_request(self, request)

    with MyServer((HOST, 0), socketserver.StreamRequestHandler) as server:
        socket.create_connection(server.server_address).close()
        server.handle_request()
        assert server.shutdown_called == 1


def test_threads_reaped() -> None:
    class MyServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
        pass

    with MyServer((HOST, 0), socketserver.StreamRequestHandler) as server:
        for _ in range(10):
            with socket.create_connection(server.server_address):
                server.handle_request()
        assert len(server._threads) < 10


# --- subclassing patterns found in the wild --------------------------------------------


class _Upper(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(self.request.recv(100).upper())


def _round_trip(address: Any, data: bytes = b"ping") -> bytes:
    with socket.create_connection(address, WAIT) as client:
        client.sendall(data)
        return client.recv(100)


def test_init_override_with_manual_bind_and_activate() -> None:
    class Server(socketserver.TCPServer):
        def __init__(self, address: Any, handler: Any) -> None:
            socketserver.TCPServer.__init__(self, address, handler, bind_and_activate=False)
            self.allow_reuse_address = True
            self.server_bind()
            self.server_activate()

    with Server((HOST, 0), _Upper) as server:
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert server.server_address[1] != 0
        with socket.create_connection(server.server_address, WAIT) as client:
            client.sendall(b"manual")
            server.handle_request()
            assert client.recv(100) == b"MANUAL"


def test_server_bind_override_sets_options_before_binding() -> None:
    class Server(socketserver.TCPServer):
        def server_bind(self) -> None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            socketserver.TCPServer.server_bind(self)
            self.bound_name = f"{self.server_address[0]}:{self.server_address[1]}"

    with Server((HOST, 0), _Upper) as server:
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert server.bound_name == f"{HOST}:{server.server_address[1]}"


def test_class_wide_allow_reuse_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """``socketserver.TCPServer.allow_reuse_address = True`` reaches every subclass."""
    monkeypatch.setattr(socketserver.TCPServer, "allow_reuse_address", True)
    with socketserver.ThreadingTCPServer((HOST, 0), _Upper) as tcp:
        assert tcp.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    with socketserver.UDPServer((HOST, 0), _Upper) as udp:
        # UDPServer sets its own allow_reuse_address = False, as in the stdlib.
        assert not udp.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)


def test_handle_request_loop_with_timeout() -> None:
    class Server(socketserver.TCPServer):
        timeout = 0.01
        timeouts = 0

        def handle_timeout(self) -> None:
            self.timeouts += 1

    with Server((HOST, 0), _Upper) as server:
        for _ in range(3):
            server.handle_request()
        assert server.timeouts == 3
        with socket.create_connection(server.server_address, WAIT) as client:
            client.sendall(b"late")
            server.handle_request()
            assert client.recv(100) == b"LATE"
        assert server.timeouts == 3


def test_serve_forever_in_the_main_thread_shutdown_from_a_handler_thread() -> None:
    class StopHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"bye")
            self.server.shutdown()

    fired = threading.Event()

    def watchdog_stop() -> None:
        fired.set()
        server.shutdown()

    with socketserver.ThreadingTCPServer((HOST, 0), StopHandler) as server:
        thread, outcome = in_thread(lambda: _round_trip(server.server_address), "client")
        # A watchdog so a regression fails instead of hanging: it only fires on failure.
        watchdog = threading.Timer(WAIT, watchdog_stop)
        watchdog.start()
        try:
            server.serve_forever(poll_interval=WAIT)
        finally:
            watchdog.cancel()
        assert not fired.is_set(), "the handler's shutdown() did not stop serve_forever"
        assert outcome["done"].wait(WAIT)
        assert outcome.get("result") == b"bye"


@pytest.mark.parametrize("setting", ["daemon_threads", "block_on_close_false"])
def test_server_close_does_not_wait_for_untracked_handler_threads(setting: str) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    class Blocking(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(WAIT)
            finished.set()

    class Server(socketserver.ThreadingTCPServer):
        if setting == "daemon_threads":
            daemon_threads = True
        else:
            block_on_close = False

    server = Server((HOST, 0), Blocking)
    try:
        with socket.create_connection(server.server_address, WAIT):
            server.handle_request()
            assert entered.wait(WAIT)
            assert len(server._threads) == 0
            server.server_close()  # returns although the handler is still blocked
            # A close that joined the handler would have waited out its WAIT.
            assert not finished.is_set(), "server_close() waited for the handler thread"
    finally:
        release.set()
        server.server_close()


def test_udp_max_packet_size_subclass() -> None:
    class Server(socketserver.UDPServer):
        max_packet_size = 4

    class Echo(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read())

    with Server((HOST, 0), Echo) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(WAIT)
            client.sendto(b"abcdefgh", server.server_address)
            server.handle_request()
            assert client.recv(100) == b"abcd"
