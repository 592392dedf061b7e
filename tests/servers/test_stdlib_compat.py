"""``import sockfake as socketserver`` behaves like the stdlib module.

Where behaviour is compared, the same scenario runs on the stdlib ``socketserver`` and on
sockfake, and the recorded results must be equal.
"""

from __future__ import annotations

import errno
import inspect
import io
import os
import socket
import socketserver as stdlib
import sys
import threading
from typing import Any

import pytest
from helpers import WAIT, connect, needs_fork, needs_unix, open_fds, recv_all, serving

import sockfake
import sockfake as socketserver

MODULES = [pytest.param(stdlib, id="stdlib"), pytest.param(sockfake, id="sockfake")]
STDLIB_CLASSES = [name for name in stdlib.__all__ if isinstance(getattr(stdlib, name), type)]
HOOKS = (
    "verify_request",
    "process_request",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_error",
    "handle_timeout",
)


# --- names, MROs, attributes ------------------------------------------------------------


# CPython 3.13's __all__ on a POSIX system; older versions list a subset (3.12 added the
# ForkingUnix* servers).
CPYTHON_313_ALL = [
    "BaseServer", "TCPServer", "UDPServer", "ThreadingUDPServer", "ThreadingTCPServer",
    "BaseRequestHandler", "StreamRequestHandler", "DatagramRequestHandler", "ThreadingMixIn",
    "ForkingUDPServer", "ForkingTCPServer", "ForkingMixIn", "UnixStreamServer",
    "UnixDatagramServer", "ThreadingUnixStreamServer", "ThreadingUnixDatagramServer",
    "ForkingUnixStreamServer", "ForkingUnixDatagramServer",
]  # fmt: skip


def test_all_lists_the_stdlib_names() -> None:
    assert set(stdlib.__all__) <= set(socketserver.__all__)
    if hasattr(os, "fork") and hasattr(socket, "AF_UNIX"):
        assert socketserver.__all__ == CPYTHON_313_ALL


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_mro_names_match_the_stdlib(name: str) -> None:
    ours = [cls.__name__ for cls in getattr(socketserver, name).__mro__]
    theirs = [cls.__name__ for cls in getattr(stdlib, name).__mro__]
    assert ours == theirs


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_every_stdlib_class_attribute_exists(name: str) -> None:
    missing = set(dir(getattr(stdlib, name))) - set(dir(getattr(socketserver, name)))
    assert not missing


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_stdlib_class_defaults_are_kept(name: str) -> None:
    ours, theirs = getattr(socketserver, name), getattr(stdlib, name)
    # request_queue_size is a documented difference (SOMAXCONN), tested elsewhere.
    skip = {"request_queue_size", "_threads"}
    for attr in dir(theirs):
        value = getattr(theirs, attr)
        if attr in skip or callable(value) or attr.startswith("__"):
            continue
        assert getattr(ours, attr) == value, attr


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_stdlib_call_signatures_are_accepted(name: str) -> None:
    """Every stdlib method's parameters appear, in order, at the head of ours."""
    ours, theirs = getattr(socketserver, name), getattr(stdlib, name)
    for attr in dir(theirs):
        std_method = getattr(theirs, attr)
        if (attr.startswith("__") and attr != "__init__") or not inspect.isfunction(std_method):
            continue
        std_params = list(inspect.signature(std_method).parameters.values())
        our_params = list(inspect.signature(getattr(ours, attr)).parameters.values())
        assert [p.name for p in our_params[: len(std_params)]] == [p.name for p in std_params]
        assert [p.kind for p in our_params[: len(std_params)]] == [p.kind for p in std_params]
        for extra in our_params[len(std_params) :]:
            assert extra.default is not inspect.Parameter.empty, (attr, extra.name)


@pytest.mark.parametrize(
    "name",
    ["_ServerSelector", "_SocketWriter", "_Threads", "_NoThreads", "BufferedIOBase", "time"],
)
def test_private_module_names_exist(name: str) -> None:
    assert hasattr(socketserver, name)


def test_instance_attributes_include_the_stdlib_ones() -> None:
    with stdlib.TCPServer(("127.0.0.1", 0), stdlib.BaseRequestHandler) as theirs:
        expected = set(vars(theirs))
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as ours:
        assert expected <= set(vars(ours))
        assert ours._BaseServer__shutdown_request is False  # type: ignore[attr-defined]
        assert "_handle_request_noblock" in dir(ours)


def test_threading_server_threads_support_len() -> None:
    assert len(socketserver.ThreadingTCPServer._threads) == 0
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo) as server:
        with connect(server.server_address) as client:
            client.sendall(b"x")
            server.handle_request()
            assert recv_all(client) == b"X"
        assert len(server._threads) in (0, 1)
    assert len(server._threads) == 0


# --- hook order, compared with the stdlib -----------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(self.request.recv(100).upper())


def _recording(base: type) -> Any:
    """``base`` with every hook (and server_close) appending its name to ``self.calls``."""

    class Recording(base):  # type: ignore[misc]
        verdict = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.calls: list[str] = []
            super().__init__(*args, **kwargs)

        def verify_request(self, request: Any, client_address: Any) -> bool:
            self.calls.append("verify_request")
            return self.verdict

        def server_close(self) -> None:
            super().server_close()
            self.calls.append("server_close")

    def recorder(name: str) -> Any:
        def hook(self: Any, *args: Any) -> Any:
            self.calls.append(name)
            return getattr(super(Recording, self), name)(*args)

        return hook

    for name in HOOKS[1:]:
        setattr(Recording, name, recorder(name))
    return Recording


def _handler(mod: Any, behaviour: str) -> type:
    class Handler(mod.BaseRequestHandler):  # type: ignore[misc]
        def handle(self) -> None:
            data = self.request.recv(100)
            if behaviour == "raise":
                raise ValueError("boom")
            if behaviour == "abort":
                raise _Abort
            self.request.sendall(data.upper())

    return Handler


class _Abort(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


def _one_request(
    mod: Any, server_class: str, behaviour: str = "echo", verdict: bool = True
) -> tuple[list[str], bytes]:
    server = _recording(getattr(mod, server_class))(("127.0.0.1", 0), _handler(mod, behaviour))
    server.verdict = verdict
    try:
        with connect(server.server_address) as client:
            client.sendall(b"hi")
            try:
                server.handle_request()
            except _Abort:
                server.calls.append("raised")
            reply = recv_all(client)
    finally:
        server.server_close()
    return server.calls, reply


@pytest.mark.parametrize(
    ("behaviour", "verdict", "expected"),
    [
        ("echo", True, ["verify_request", "process_request", "finish_request",
                        "shutdown_request", "close_request", "server_close"]),
        ("raise", True, ["verify_request", "process_request", "finish_request",
                         "handle_error", "shutdown_request", "close_request", "server_close"]),
        ("abort", True, ["verify_request", "process_request", "finish_request",
                         "shutdown_request", "close_request", "raised", "server_close"]),
        ("echo", False, ["verify_request", "shutdown_request", "close_request",
                         "server_close"]),
    ],
    ids=["ok", "handler-raises", "handler-base-exception", "verify-false"],
)  # fmt: skip
def test_synchronous_hook_order_matches_the_stdlib(
    behaviour: str, verdict: bool, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = _one_request(stdlib, "TCPServer", behaviour, verdict)
    ours = _one_request(socketserver, "TCPServer", behaviour, verdict)
    assert ours == theirs
    assert ours[0] == expected
    assert ours[1] == (b"HI" if behaviour == "echo" and verdict else b"")


def test_threading_hook_order_matches_the_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    for behaviour in ("echo", "raise"):
        theirs = _one_request(stdlib, "ThreadingTCPServer", behaviour)
        ours = _one_request(socketserver, "ThreadingTCPServer", behaviour)
        assert ours == theirs


@needs_fork
def test_forking_parent_hook_order_matches_the_stdlib() -> None:
    theirs = _one_request(stdlib, "ForkingTCPServer")
    ours = _one_request(socketserver, "ForkingTCPServer")
    assert ours == theirs
    assert ours[0] == ["verify_request", "process_request", "close_request", "server_close"]
    assert ours[1] == b"HI"


@pytest.mark.parametrize("mod", MODULES)
def test_handle_error_runs_inside_the_except_block(mod: Any) -> None:
    class ReRaising(mod.TCPServer):  # type: ignore[misc]
        def handle_error(self, request: Any, client_address: Any) -> None:
            self.seen = sys.exc_info()[1]
            self.failed_request = request
            raise

    with ReRaising(("127.0.0.1", 0), _handler(mod, "raise")) as server:
        with connect(server.server_address) as client:
            client.sendall(b"hi")
            with pytest.raises(ValueError, match="boom") as raised:
                server.handle_request()
            server.failed_request.close()
    assert server.seen is raised.value


@pytest.mark.parametrize("mod", MODULES)
def test_base_exception_from_handler_propagates_and_closes_the_request(mod: Any) -> None:
    with mod.TCPServer(("127.0.0.1", 0), _handler(mod, "abort")) as server:
        with connect(server.server_address) as client:
            client.sendall(b"hi")
            with pytest.raises(_Abort):
                server.handle_request()
            assert recv_all(client) == b""


# --- construction and close -------------------------------------------------------------


@pytest.mark.parametrize("mod", MODULES)
def test_failed_bind_closes_the_server_and_reraises(mod: Any) -> None:
    closed = []

    class Server(mod.TCPServer):  # type: ignore[misc]
        def server_close(self) -> None:
            closed.append(True)
            super().server_close()

    with mod.TCPServer(("127.0.0.1", 0), mod.BaseRequestHandler) as taken:
        before = open_fds()
        with pytest.raises(OSError) as raised:
            Server(taken.server_address, mod.BaseRequestHandler)
        assert raised.value.errno == errno.EADDRINUSE
        assert closed == [True]
        assert open_fds() == before


@needs_unix
@pytest.mark.parametrize("mod", MODULES)
def test_address_family_is_read_from_the_instance_at_construction(mod: Any, unix_dir: str) -> None:
    class Server(mod.TCPServer):  # type: ignore[misc]
        def __init__(self, *args: Any) -> None:
            self.address_family = socket.AF_UNIX
            super().__init__(*args)

    path = os.path.join(unix_dir, "s")
    with Server(path, mod.BaseRequestHandler) as server:
        assert server.socket.family == socket.AF_UNIX
        assert server.server_address == path


@pytest.mark.parametrize("name", ["TCPServer", "UDPServer", "ThreadingTCPServer"])
def test_server_close_is_idempotent_and_leaves_fileno_minus_one(name: str) -> None:
    server = getattr(socketserver, name)(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    server.server_close()
    server.server_close()
    assert server.fileno() == -1


def test_a_closed_server_is_reusable_with_a_new_socket() -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), _Echo)
    server.server_close()
    server.socket = socket.socket(server.address_family, server.socket_type)
    server.server_address = ("127.0.0.1", 0)
    try:
        server.server_bind()
        server.server_activate()
        with serving(server), connect(server.server_address) as client:
            client.sendall(b"again")
            assert client.recv(100) == b"AGAIN"
    finally:
        server.server_close()


@needs_fork
def test_forking_active_children_is_empty_after_close() -> None:
    server = socketserver.ForkingTCPServer(("127.0.0.1", 0), _Echo)
    try:
        with connect(server.server_address) as client:
            client.sendall(b"x")
            server.handle_request()
            assert server.active_children
            assert recv_all(client) == b"X"
    finally:
        server.server_close()
    assert not server.active_children


# --- handle_request and its timeout -----------------------------------------------------


@pytest.mark.parametrize("where", ["server.timeout", "socket timeout"])
def test_handle_request_times_out_and_calls_handle_timeout(where: str) -> None:
    server = _recording(socketserver.TCPServer)(("127.0.0.1", 0), _Echo)
    try:
        if where == "server.timeout":
            server.timeout = 0.05
        else:
            server.socket.settimeout(0.05)
        server.handle_request()
    finally:
        server.server_close()
    assert server.calls == ["handle_timeout", "server_close"]


# --- request handlers -------------------------------------------------------------------


def _inspect_stream_handler(**attrs: Any) -> dict[str, Any]:
    """Serve one connection with a StreamRequestHandler configured by ``attrs``."""
    seen: dict[str, Any] = {}

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            seen["connection_is_request"] = self.connection is self.request
            seen["rfile"] = self.rfile
            seen["wfile"] = self.wfile
            seen["timeout"] = self.connection.gettimeout()
            seen["nodelay"] = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            self.wfile.write(self.rfile.readline().upper())

    for name, value in attrs.items():
        setattr(Handler, name, value)
    with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
        with connect(server.server_address) as client:
            client.sendall(b"line\n")
            server.handle_request()
            seen["reply"] = recv_all(client)
    return seen


def test_stream_handler_defaults() -> None:
    seen = _inspect_stream_handler()
    assert seen["connection_is_request"]
    assert isinstance(seen["rfile"], io.BufferedReader)
    assert isinstance(seen["wfile"], socketserver._SocketWriter)
    assert seen["timeout"] is None
    assert seen["nodelay"] == 0
    assert seen["reply"] == b"LINE\n"


def test_stream_handler_unbuffered_rfile_with_rbufsize_zero() -> None:
    seen = _inspect_stream_handler(rbufsize=0)
    assert isinstance(seen["rfile"], socket.SocketIO)
    assert seen["reply"] == b"LINE\n"


def test_stream_handler_buffered_wfile_is_flushed_in_finish() -> None:
    seen = _inspect_stream_handler(wbufsize=65536)
    assert isinstance(seen["wfile"], io.BufferedWriter)
    assert seen["wfile"].closed
    assert seen["reply"] == b"LINE\n"


def test_stream_handler_timeout_is_set_on_the_connection() -> None:
    assert _inspect_stream_handler(timeout=3.5)["timeout"] == 3.5


def test_stream_handler_disable_nagle_sets_tcp_nodelay() -> None:
    assert _inspect_stream_handler(disable_nagle_algorithm=True)["nodelay"] != 0


def test_socket_writer_is_an_unbuffered_binary_writer() -> None:
    left, right = socket.socketpair()
    with left, right:
        writer = socketserver._SocketWriter(left)
        assert writer.writable()
        assert writer.fileno() == left.fileno()
        assert writer.write(memoryview(b"abcd")[1:]) == 3
        assert right.recv(10) == b"bcd"


def test_datagram_handler_sets_packet_socket_rfile_wfile() -> None:
    seen: dict[str, Any] = {}

    class Handler(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            seen["packet"] = self.packet
            seen["socket"] = self.socket
            seen["rfile"] = self.rfile.read()
            self.wfile.write(b"reply to " + self.packet)

    with socketserver.UDPServer(("127.0.0.1", 0), Handler) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(WAIT)
            client.sendto(b"ping", server.server_address)
            server.handle_request()
            assert client.recv(100) == b"reply to ping"
        assert seen == {"packet": b"ping", "socket": server.socket, "rfile": b"ping"}


def test_handler_threads_are_plain_threading_threads() -> None:
    """Handler threads are plain ``threading.Thread`` objects, as code may inspect them."""
    names: list[str] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            names.append(type(threading.current_thread()).__name__)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        with connect(server.server_address):
            server.handle_request()
    assert names == ["Thread"]
