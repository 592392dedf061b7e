"""What sockfake fixes in the stdlib's socketserver (issue 2, item 4), on real sockets.

Each test fails on the stdlib behaviour it replaces (or would hang, which the bounded
waits turn into a failure).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest
from helpers import (
    WAIT,
    connect,
    in_thread,
    needs_fork,
    needs_ipv6,
    needs_unix,
    recv_all,
    serving,
)

import sockfake as socketserver


class Upper(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(self.request.recv(100).upper())


def round_trip(address: Any, data: bytes = b"ping", family: int = socket.AF_INET) -> bytes:
    with connect(address, family) as client:
        client.sendall(data)
        return recv_all(client)


# --- server_close(timeout=) -------------------------------------------------------------


@pytest.mark.parametrize("mixin", ["ThreadingMixIn", "ThreadPoolMixIn"])
def test_server_close_with_timeout_drains_then_aborts(mixin: str) -> None:
    draining_started, drain_release, stuck_started = (threading.Event() for _ in range(3))
    close_started = threading.Event()
    stuck: dict[str, Any] = {}

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            first = self.request.recv(100)
            if first == b"short":
                draining_started.set()
                drain_release.wait(WAIT)
                self.request.sendall(b"drained")
            else:  # the stuck client: waits for a second message that never comes
                stuck["thread"] = threading.current_thread()
                stuck_started.set()
                stuck["second"] = self.request.recv(100)

    class CloseStarted:
        """Between the mix-in and TCPServer: the mix-in's close has begun (it closes the
        listening socket first, then drains)."""

        def server_close(self) -> None:
            close_started.set()
            super().server_close()  # type: ignore[misc]

    bases = (getattr(socketserver, mixin), CloseStarted, socketserver.TCPServer)
    server = type("Server", bases, {"max_workers": 4})(("127.0.0.1", 0), Handler)
    with serving(server):
        short, blocked = connect(server.server_address), connect(server.server_address)
        with short, blocked:
            short.sendall(b"short")
            blocked.sendall(b"hello")
            assert draining_started.wait(WAIT) and stuck_started.wait(WAIT)
            server.shutdown()
            # The drain must finish within the timeout or it is aborted too: 2 s leaves
            # a loaded machine ample time to wake the released handler.
            _, closing = in_thread(lambda: server.server_close(timeout=2.0))
            assert close_started.wait(WAIT)
            # Still waiting for the in-flight request, not returned or aborted at once.
            assert not closing["done"].wait(0.1), "server_close(timeout=) did not drain"
            drain_release.set()
            assert recv_all(short) == b"drained"
            assert closing["done"].wait(WAIT), "server_close(timeout=) did not abort"
            assert "error" not in closing
            assert stuck["second"] == b""  # the blocked recv was unwound
            assert not stuck["thread"].is_alive()


def test_server_close_without_timeout_waits_for_handlers() -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(WAIT)
            self.request.sendall(b"done")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow)
    with serving(server), connect(server.server_address) as client:
        assert entered.wait(WAIT)
        server.shutdown()
        _, closing = in_thread(server.server_close)
        assert not closing["done"].wait(0.1)
        release.set()
        assert closing["done"].wait(WAIT)
        assert recv_all(client) == b"done"


# --- thread pool ------------------------------------------------------------------------


def test_thread_pool_runs_process_request_thread_and_bounds_concurrency() -> None:
    lock = threading.Lock()
    state = {"active": 0, "most": 0, "queued": 0, "ran": 0}
    two_running, all_queued, release = threading.Event(), threading.Event(), threading.Event()
    clients = 6

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with lock:
                state["active"] += 1
                state["most"] = max(state["most"], state["active"])
                if state["active"] == 2:
                    two_running.set()
            release.wait(WAIT)
            with lock:
                state["active"] -= 1
            self.request.sendall(b"ok")

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 0  # a strict bound: slow requests stay on the pool

        def process_request(self, request: Any, client_address: Any) -> None:
            super().process_request(request, client_address)
            with lock:
                state["queued"] += 1
                if state["queued"] == clients:
                    all_queued.set()

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            with lock:
                state["ran"] += 1
            super().process_request_thread(request, client_address)

    server = Pool(("127.0.0.1", 0), Handler)
    with serving(server):
        sockets = [connect(server.server_address) for _ in range(clients)]
        try:
            assert two_running.wait(WAIT) and all_queued.wait(WAIT)
            # Six requests accepted, two running: a third must not start.
            threading.Event().wait(0.2)  # an observation window, not synchronisation
            with lock:
                assert state["active"] == 2
            release.set()
            assert [recv_all(s) for s in sockets] == [b"ok"] * clients
        finally:
            release.set()
            for s in sockets:
                s.close()
    assert state["most"] == 2
    assert state["ran"] == clients


class _Fatal(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


def _exiting_once(exc_type: type[BaseException]) -> type:
    """A handler whose first request raises ``exc_type``; later ones upper-case."""
    calls: list[None] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = self.request.recv(100)
            calls.append(None)
            if len(calls) == 1:
                raise exc_type
            self.request.sendall(data.upper())

    return Handler


@pytest.mark.parametrize(
    ("exc_type", "reported"), [(SystemExit, False), (KeyboardInterrupt, True)]
)
def test_thread_pool_worker_survives_system_exit_in_a_handler(
    exc_type: type[BaseException], reported: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 1

    with Pool(("127.0.0.1", 0), _exiting_once(exc_type)) as server:
        with connect(server.server_address) as first:
            first.sendall(b"one")
            server.handle_request()
            assert recv_all(first) == b""  # the failed request is closed
        # With one worker, a dead worker would leave this request queued forever.
        with connect(server.server_address) as second:
            second.sendall(b"two")
            server.handle_request()
            assert recv_all(second) == b"TWO"
        workers = list(vars(server)["_pool_state"].workers)
    assert len(workers) == 1
    assert not workers[0].is_alive()
    assert seen == ([exc_type] if reported else [])


def test_thread_pool_replaces_a_worker_killed_by_a_base_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    died = threading.Event()
    seen: list[type[BaseException]] = []

    def hook(args: Any) -> None:
        seen.append(args.exc_type)
        died.set()

    monkeypatch.setattr(threading, "excepthook", hook)

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 1

    with Pool(("127.0.0.1", 0), _exiting_once(_Fatal)) as server:
        with connect(server.server_address) as first:
            first.sendall(b"one")
            server.handle_request()
            assert recv_all(first) == b""
        # The worker has died (threading reported it, as for any thread).
        assert died.wait(WAIT)
        with connect(server.server_address) as second:
            second.sendall(b"two")
            server.handle_request()
            assert recv_all(second) == b"TWO"
        names = [worker.name for worker in vars(server)["_pool_state"].workers]
    assert seen == [_Fatal]
    assert names == ["Pool-worker-2"]


def test_thread_pool_workers_are_stopped_by_server_close() -> None:
    server = socketserver.ThreadPoolTCPServer(("127.0.0.1", 0), Upper)
    with serving(server):
        assert round_trip(server.server_address) == b"PING"
        workers = list(vars(server)["_pool_state"].workers)
        assert workers
    assert not any(worker.is_alive() for worker in workers)


# --- threads leave _threads -------------------------------------------------------------


def test_finished_handler_threads_leave_threads_without_server_close() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upper)
    with serving(server):
        for _ in range(5):
            assert round_trip(server.server_address) == b"PING"
        deadline = threading.Event()
        timer = threading.Timer(WAIT, deadline.set)
        timer.start()
        try:
            while len(server._threads) and not deadline.is_set():
                deadline.wait(0.005)
        finally:
            timer.cancel()
        assert len(server._threads) == 0


def test_server_close_joins_a_thread_that_left_threads_but_is_still_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread out of ``_threads`` but still reporting its exception is still joined."""
    reporting, reported = threading.Event(), []

    def slow_hook(args: Any) -> None:
        reporting.set()
        threading.Event().wait(0.2)  # widens the window; the join is what is tested
        reported.append(args.exc_type)

    monkeypatch.setattr(threading, "excepthook", slow_hook)

    class Exits(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            raise SystemExit

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Exits)
    try:
        with connect(server.server_address):
            server.handle_request()
        # The handler thread has left _threads (its request is done) ...
        assert reporting.wait(WAIT)
        assert len(server._threads) == 0
    finally:
        server.server_close()
    # ... and server_close() still waited for it, as the stdlib's does.
    assert reported == [SystemExit]


# --- datagram servers -------------------------------------------------------------------


def test_threading_udp_reply_in_flight_is_sent_before_the_socket_closes() -> None:
    entered, closing = threading.Event(), threading.Event()
    errors: list[Any] = []

    class Late(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            entered.set()
            closing.wait(WAIT)
            # Give a server that closes first every chance to do so (bounded).
            stop = threading.Event()
            for _ in range(50):
                if self.socket.fileno() == -1:
                    break
                stop.wait(0.005)
            self.wfile.write(b"late reply")

    class Server(socketserver.ThreadingUDPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])

    server = Server(("127.0.0.1", 0), Late)
    thread, _ = in_thread(server.serve_forever)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        try:
            client.sendto(b"hi", server.server_address)
            assert entered.wait(WAIT)
            server.shutdown()
            _, closed = in_thread(server.server_close)
            closing.set()
            assert closed["done"].wait(WAIT)
            assert client.recv(100) == b"late reply"
        finally:
            closing.set()
            server.server_close()
            thread.join(WAIT)
    assert errors == []
    assert server.fileno() == -1


@needs_unix
def test_unbound_unix_datagram_client_gets_no_crashing_reply(unix_dir: str) -> None:
    errors: list[Any] = []

    class Echo(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read().upper())

    class Server(socketserver.UnixDatagramServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])

    path = os.path.join(unix_dir, "srv")
    with Server(path, Echo) as server:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:
            unbound.sendto(b"anonymous", path)
            server.handle_request()
        assert errors == []
        # and the server still answers a bound client
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bound:
            bound.settimeout(WAIT)
            bound.bind(os.path.join(unix_dir, "cli"))
            bound.sendto(b"named", path)
            server.handle_request()
            assert bound.recv(100) == b"NAMED"


# --- forking ----------------------------------------------------------------------------


@needs_fork
def test_forking_server_never_reaps_a_child_it_did_not_start() -> None:
    other = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    try:
        if hasattr(os, "waitid"):  # wait until it is a zombie, without reaping it
            os.waitid(os.P_PID, other.pid, os.WEXITED | os.WNOWAIT)
        server = type("Server", (socketserver.ForkingTCPServer,), {"max_children": 1})(
            ("127.0.0.1", 0), Upper
        )
        with serving(server, poll_interval=0.01):
            for _ in range(3):
                assert round_trip(server.server_address) == b"PING"
        assert not server.active_children
        assert other.wait(WAIT) == 7
    finally:
        if other.returncode is None:
            other.kill()
            other.wait(WAIT)


# --- accept errors ----------------------------------------------------------------------


def test_resource_accept_errors_go_to_the_hook_and_back_off() -> None:
    failing = threading.Event()
    failing.set()
    first_error = threading.Event()
    state = {"attempts": 0}
    hooked: list[int | None] = []

    class Server(socketserver.TCPServer):
        def get_request(self) -> Any:
            state["attempts"] += 1
            if failing.is_set():
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            return super().get_request()

        def handle_accept_error(self, error: OSError) -> None:
            hooked.append(error.errno)
            super().handle_accept_error(error)
            first_error.set()

    server = Server(("127.0.0.1", 0), Upper)
    with serving(server, poll_interval=0.01), connect(server.server_address) as client:
        # The pending connection keeps the listening socket readable. Once the loop has
        # met the error (however late a loaded machine starts it), measure a window.
        assert first_error.wait(WAIT), "the accept error never reached the hook"
        start = state["attempts"]
        threading.Event().wait(0.5)  # an observation window, not synchronisation
        attempts = state["attempts"] - start
        failing.clear()
        assert hooked and set(hooked) == {errno.EMFILE}
        assert attempts < 50, f"{attempts} accept attempts in 0.5 s: the loop spins"
        client.sendall(b"later")
        assert recv_all(client) == b"LATER"  # accepting resumes


def test_other_accept_errors_are_ignored_without_backoff() -> None:
    state = {"failures": 3}
    hooked: list[int | None] = []

    class Server(socketserver.TCPServer):
        def get_request(self) -> Any:
            if state["failures"]:
                state["failures"] -= 1
                raise OSError(errno.ECONNABORTED, "aborted")
            return super().get_request()

        def handle_accept_error(self, error: OSError) -> None:
            hooked.append(error.errno)
            super().handle_accept_error(error)

    with Server(("127.0.0.1", 0), Upper) as server:
        with connect(server.server_address) as client:
            client.sendall(b"x")
            for _ in range(3):
                server.handle_request()
                # No pause is scheduled: the next accept comes at once.
                assert server._BaseServer__accept_backoff == 0.0  # type: ignore[attr-defined]
            server.handle_request()
            assert recv_all(client) == b"X"
    assert hooked == [errno.ECONNABORTED] * 3


# --- addresses and sockets --------------------------------------------------------------


def test_request_queue_size_is_somaxconn() -> None:
    assert socketserver.TCPServer.request_queue_size == socket.SOMAXCONN
    with socketserver.TCPServer(("127.0.0.1", 0), Upper) as server:
        assert server.request_queue_size == socket.SOMAXCONN


@needs_ipv6
@pytest.mark.parametrize("server_class", ["TCPServer", "ThreadingTCPServer"])
def test_an_ipv6_literal_selects_af_inet6(server_class: str) -> None:
    server = getattr(socketserver, server_class)(("::1", 0), Upper)
    assert server.address_family == socket.AF_INET6
    assert server.socket.family == socket.AF_INET6
    with serving(server):
        assert round_trip(server.server_address[:2], family=socket.AF_INET6) == b"PING"
    # the class attribute is untouched
    assert getattr(socketserver, server_class).address_family == socket.AF_INET


@needs_ipv6
def test_an_ipv6_literal_selects_af_inet6_for_udp() -> None:
    class Echo(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read().upper())

    with socketserver.UDPServer(("::1", 0), Echo) as server:
        assert server.socket.family == socket.AF_INET6
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.settimeout(WAIT)
            client.sendto(b"six", server.server_address[:2])
            server.handle_request()
            assert client.recv(100) == b"SIX"


@needs_ipv6
def test_dual_stack_accepts_ipv4_on_an_ipv6_socket() -> None:
    server_cls = type("Dual", (socketserver.TCPServer,), {"dual_stack": True})
    server = server_cls(("::", 0), Upper)
    port = server.server_address[1]
    with serving(server):
        assert round_trip(("127.0.0.1", port)) == b"PING"
        assert round_trip(("::1", port), family=socket.AF_INET6) == b"PING"


@needs_ipv6
def test_without_dual_stack_ipv6_sockets_keep_the_stdlib_v6only_setting() -> None:
    # Runs on every system: the stdlib leaves IPV6_V6ONLY at the system default
    # (net.ipv6.bindv6only), and so must sockfake without dual_stack.
    import socketserver as stdlib

    stdlib_v6 = type("V6", (stdlib.TCPServer,), {"address_family": socket.AF_INET6})
    with stdlib_v6(("::", 0), stdlib.BaseRequestHandler) as theirs:
        expected = theirs.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    with socketserver.TCPServer(("::", 0), Upper) as server:
        v6only = server.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        assert v6only == expected
        if v6only:
            with pytest.raises(ConnectionRefusedError):
                connect(("127.0.0.1", server.server_address[1]))
        else:
            with serving(server):
                assert round_trip(("127.0.0.1", server.server_address[1])) == b"PING"


def _stale_socket_file(path: str, kind: int = socket.SOCK_STREAM) -> None:
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(path)
    sock.close()  # the file stays behind


@needs_unix
@pytest.mark.parametrize(
    ("server_class", "kind"),
    [("UnixStreamServer", socket.SOCK_STREAM), ("UnixDatagramServer", socket.SOCK_DGRAM)],
)
def test_remove_stale_socket_unlinks_a_path_nobody_listens_on(
    unix_dir: str, server_class: str, kind: int
) -> None:
    path = os.path.join(unix_dir, "stale")
    _stale_socket_file(path, kind)
    base = getattr(socketserver, server_class)
    with pytest.raises(OSError) as raised:
        base(path, socketserver.BaseRequestHandler)
    assert raised.value.errno == errno.EADDRINUSE
    server_cls = type("Server", (base,), {"remove_stale_socket": True})
    with server_cls(path, socketserver.BaseRequestHandler) as server:
        assert server.server_address == path


@needs_unix
def test_remove_stale_socket_keeps_a_live_server_path(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "live")
    server_cls = type("Server", (socketserver.UnixStreamServer,), {"remove_stale_socket": True})
    with server_cls(path, Upper) as live:
        with pytest.raises(OSError) as raised:
            server_cls(path, Upper)
        assert raised.value.errno == errno.EADDRINUSE
        with serving(live):
            assert round_trip(path, family=socket.AF_UNIX) == b"PING"


@needs_unix
def test_remove_stale_socket_leaves_other_files_alone(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "regular")
    with open(path, "w") as handle:
        handle.write("not a socket")
    server_cls = type("Server", (socketserver.UnixStreamServer,), {"remove_stale_socket": True})
    with pytest.raises(OSError):
        server_cls(path, Upper)
    assert os.path.isfile(path)


@needs_unix
def test_remove_socket_on_close_removes_the_path(unix_dir: str) -> None:
    kept, removed = os.path.join(unix_dir, "kept"), os.path.join(unix_dir, "removed")
    socketserver.UnixStreamServer(kept, Upper).server_close()
    server_cls = type("Server", (socketserver.UnixStreamServer,), {"remove_socket_on_close": True})
    server_cls(removed, Upper).server_close()
    assert os.path.exists(kept)  # the stdlib default
    assert not os.path.exists(removed)


@needs_unix
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract namespace is Linux")
def test_unix_options_accept_an_abstract_address() -> None:
    server_cls = type(
        "Server",
        (socketserver.UnixStreamServer,),
        {"remove_stale_socket": True, "remove_socket_on_close": True},
    )
    name = f"\0sockfake-test-{os.getpid()}-{threading.get_ident()}"
    with server_cls(name, Upper) as server, serving(server):
        assert round_trip(name, family=socket.AF_UNIX) == b"PING"


def test_request_timeout_is_set_on_accepted_connections() -> None:
    seen: list[float | None] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            seen.append(self.request.gettimeout())

    server_cls = type("Server", (socketserver.TCPServer,), {"request_timeout": 2.5})
    for cls, expected in ((socketserver.TCPServer, None), (server_cls, 2.5)):
        with cls(("127.0.0.1", 0), Handler) as server:
            with connect(server.server_address):
                server.handle_request()
        assert seen.pop() == expected


def test_error_logger_receives_handler_errors_instead_of_stderr(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    class Failing(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            raise RuntimeError("handler failed")

    logger = logging.getLogger("sockfake.tests.real")
    server_cls = type("Server", (socketserver.TCPServer,), {"error_logger": logger})
    with caplog.at_level(logging.ERROR, logger=logger.name):
        with server_cls(("127.0.0.1", 0), Failing) as server:
            with connect(server.server_address) as client:
                server.handle_request()
                assert recv_all(client) == b""
    [record] = [r for r in caplog.records if r.name == logger.name]
    assert record.exc_info is not None and str(record.exc_info[1]) == "handler failed"
    assert "handler failed" not in capsys.readouterr().err


def test_without_error_logger_handler_errors_go_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Failing(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            raise RuntimeError("handler failed")

    with socketserver.TCPServer(("127.0.0.1", 0), Failing) as server:
        with connect(server.server_address):
            server.handle_request()
    err = capsys.readouterr().err
    assert "Exception occurred during processing of request from" in err
    assert "RuntimeError: handler failed" in err


@needs_fork
def test_forking_server_at_max_children_still_shuts_down_promptly() -> None:
    class Waiting(socketserver.StreamRequestHandler):
        timeout = WAIT  # a child that outlives its test exits on its own

        def handle(self) -> None:
            self.wfile.write(b"ready")
            self.rfile.read(1)  # until the client says "go" (the child shares the
            # client's descriptor, so closing the client would not end this read)

    server_cls = type("Server", (socketserver.ForkingTCPServer,), {"max_children": 1})
    server = server_cls(("127.0.0.1", 0), Waiting)
    thread, _ = in_thread(server.serve_forever)
    client = connect(server.server_address)
    try:
        assert client.recv(5) == b"ready"  # the one allowed child is busy
        assert server.shutdown(timeout=2) is True, "the loop waited for the child to exit"
    finally:
        client.sendall(b"g")
        client.close()
        server.shutdown()
        server.server_close()  # reaps the child
        thread.join(WAIT)
    assert not server.active_children
