"""``SSLContext.wrap_socket`` under interception takes what CPython takes, and leaves what
CPython leaves: the wrapped socket detached (its calls fail with EBADF)."""

from __future__ import annotations

import errno
import socket
import socketserver
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from sockfake.sim import SimNetwork

DATA = Path(__file__).resolve().parent / "data"
CERT = str(DATA / "localhost.crt")  # self-signed, CN and SAN localhost / 127.0.0.1
KEY_AND_CERT = str(DATA / "localhost.pem")


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(KEY_AND_CERT)
    return context


def _client_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=CERT)


def test_the_wrapped_socket_is_detached_and_fails_with_ebadf(inet: SimNetwork) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    raw = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        tls = _client_context().wrap_socket(raw, server_hostname="localhost",
                                            do_handshake_on_connect=False)
        assert raw.fileno() == -1
        for call in (lambda: raw.shutdown(socket.SHUT_WR), lambda: raw.recv(1),
                     lambda: raw.send(b"x")):
            with pytest.raises(OSError) as raised:
                call()
            assert raised.value.errno == errno.EBADF
        raw.close()  # closing the detached object is harmless, as on CPython
        tls.close()
    finally:
        conn.close()
        listener.close()


class _UpperHandler(socketserver.StreamRequestHandler):
    """Wraps its request itself; the server then shuts down the detached original."""

    context: ssl.SSLContext

    def setup(self) -> None:
        self.request = self.context.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())

    def finish(self) -> None:
        super().finish()
        self.request.close()


def test_a_stdlib_server_that_wraps_per_request_keeps_serving(inet: SimNetwork) -> None:
    handler: Any = type("Handler", (_UpperHandler,), {"context": _server_context()})
    server = socketserver.TCPServer(("127.0.0.1", 0), handler)  # one request at a time
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            for _ in range(3):
                server.handle_request()  # shutdown_request() on the detached original
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    serving = threading.Thread(target=serve)
    serving.start()
    address: Any = server.server_address
    replies = []
    try:
        for word in (b"one", b"two", b"three"):
            with socket.create_connection(address) as raw, \
                    _client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(word + b"\n")
                replies.append(tls.makefile("rb").readline())
    finally:
        serving.join()
        server.server_close()
    assert errors == []  # shutdown_request()'s OSError was caught, as on the OS
    assert replies == [b"ONE\n", b"TWO\n", b"THREE\n"]


class _Delegating:
    """A socket-like object around a socket (as gevent's or a framework's wrapper)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_a_socket_like_wrapper_around_a_simulated_socket_is_accepted(inet: SimNetwork
                                                                     ) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    server_context = _server_context()
    echoed: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            echoed.append(tls.recv(100))
            tls.sendall(echoed[-1])

    thread = threading.Thread(target=serve)
    thread.start()
    raw = socket.create_connection(listener.getsockname())
    raw.settimeout(30)
    wrapper = _Delegating(raw)
    with _client_context().wrap_socket(wrapper, server_hostname="localhost") as tls:  # type: ignore[arg-type]
        assert tls.gettimeout() == 30  # the wrapped socket's timeout, as CPython keeps it
        tls.sendall(b"hello")
        assert tls.recv(100) == b"hello"
        assert tls.version() == "TLSv1.3"
    thread.join()
    listener.close()
    assert raw.fileno() == -1  # detached through the wrapper, as CPython does
    assert echoed == [b"hello"]


def test_wrapping_a_closed_socket_is_ebadf_as_cpython(inet: SimNetwork) -> None:
    sock = socket.socket()
    sock.close()
    with pytest.raises(OSError) as raised:
        _client_context().wrap_socket(sock, server_hostname="localhost")
    assert raised.value.errno == errno.EBADF
