"""The stdlib's own users of socketserver run on sockfake, on real loopback sockets.

Two ways in, both tested with real clients (``http.client``, ``urllib``,
``xmlrpc.client``, ``curl``):

* mixing in: server classes built from sockfake bases, serving the stdlib's handler
  classes unchanged (``http.server``, ``xmlrpc.server``, ``wsgiref.simple_server``);
* standing in: inside ``sockfake.replace_socketserver()`` the stdlib modules are
  rebuilt on sockfake, so ``http.server.ThreadingHTTPServer`` *is* a sockfake server.
"""

from __future__ import annotations

import functools
import http.client
import http.server
import json
import logging
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import wsgiref.simple_server
import xmlrpc.client
import xmlrpc.server
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import WAIT, serving

import sockfake

HOST = "127.0.0.1"
CURL = shutil.which("curl")

# An opener that never consults proxy settings from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def url(server: Any, path: str = "/") -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def fetch(address: str, data: bytes | None = None) -> tuple[int, bytes]:
    with OPENER.open(address, data=data, timeout=WAIT) as response:
        return response.status, response.read()


def make_echo_handler(base: type) -> type:
    """An HTTP/1.1 handler on ``base`` (a BaseHTTPRequestHandler from either module)."""

    class EchoHandler(base):  # type: ignore[misc]
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._reply(f"GET {self.path}".encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self._reply(self.rfile.read(length).upper())

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return EchoHandler


class QuietSimpleHTTPHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# ---------------------------------------------------------------------------------------
# (a) Mixing in: server classes built from sockfake bases, stdlib handlers unchanged.
# ---------------------------------------------------------------------------------------


class SockfakeHTTPServer(sockfake.ThreadingTCPServer):
    """What ``http.server.ThreadingHTTPServer`` is, written on sockfake bases."""

    allow_reuse_address = True
    daemon_threads = True


class SockfakeXMLRPCServer(
    sockfake.ThreadingMixIn, sockfake.TCPServer, xmlrpc.server.SimpleXMLRPCDispatcher
):
    """``SimpleXMLRPCServer`` as the stdlib writes it, on sockfake bases (and threaded)."""

    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int]) -> None:
        self.logRequests = False
        xmlrpc.server.SimpleXMLRPCDispatcher.__init__(self, allow_none=True, encoding=None)
        sockfake.TCPServer.__init__(self, addr, xmlrpc.server.SimpleXMLRPCRequestHandler)


class SockfakeWSGIServer(sockfake.TCPServer):
    """The parts of ``WSGIServer`` that ``WSGIRequestHandler`` relies on, on sockfake."""

    application: Any = None

    def server_bind(self) -> None:
        super().server_bind()
        self.server_name = "localhost"
        self.server_port = self.server_address[1]
        wsgiref.simple_server.WSGIServer.setup_environ(self)  # type: ignore[arg-type]

    get_app = wsgiref.simple_server.WSGIServer.get_app
    set_app = wsgiref.simple_server.WSGIServer.set_app


class QuietWSGIRequestHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A tiny WSGI app that echoes the method, path and query, and any body."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    text = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ['QUERY_STRING']}"
    payload = text.encode() + (b" " + body if body else b"")
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def test_stdlib_http_handler_on_sockfake_threading_server() -> None:
    handler = make_echo_handler(http.server.BaseHTTPRequestHandler)
    server = SockfakeHTTPServer((HOST, 0), handler)
    with serving(server):
        assert fetch(url(server, "/ping")) == (200, b"GET /ping")
        assert fetch(url(server, "/"), data=b"shout") == (200, b"SHOUT")


def test_http_client_keeps_one_connection_alive_across_requests() -> None:
    handler = make_echo_handler(http.server.BaseHTTPRequestHandler)
    server = SockfakeHTTPServer((HOST, 0), handler)
    with serving(server):
        conn = http.client.HTTPConnection(HOST, server.server_address[1], timeout=WAIT)
        try:
            sockets = []
            for number in range(5):
                conn.request("POST", "/", body=f"request {number}".encode())
                sockets.append(conn.sock)
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, f"REQUEST {number}".encode())
            # One socket for all five: HTTP/1.1 keep-alive worked through our rfile/wfile
            # (a closed connection would make http.client open a new one).
            assert sockets[0] is not None
            assert all(sock is sockets[0] for sock in sockets)
            assert conn.sock is sockets[0]
        finally:
            conn.close()


def test_simple_http_request_handler_serves_files_and_404s(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello from disk\n")
    handler = functools.partial(QuietSimpleHTTPHandler, directory=str(tmp_path))
    server = SockfakeHTTPServer((HOST, 0), handler)
    with serving(server):
        assert fetch(url(server, "/hello.txt")) == (200, b"hello from disk\n")
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch(url(server, "/nope.txt"))
        assert missing.value.code == 404
        missing.value.close()
        # The error did not disturb the server.
        assert fetch(url(server, "/hello.txt")) == (200, b"hello from disk\n")


def test_concurrent_urllib_clients_on_sockfake_http_server() -> None:
    handler = make_echo_handler(http.server.BaseHTTPRequestHandler)
    server = SockfakeHTTPServer((HOST, 0), handler)
    with serving(server):
        with ThreadPoolExecutor(max_workers=8) as pool:
            bodies = [f"client {n}".encode() for n in range(40)]
            results = list(pool.map(lambda b: fetch(url(server), data=b), bodies))
        assert results == [(200, body.upper()) for body in bodies]


def test_stdlib_xmlrpc_dispatcher_on_sockfake_server() -> None:
    server = SockfakeXMLRPCServer((HOST, 0))
    server.register_function(lambda a, b: a + b, "add")
    server.register_introspection_functions()
    with serving(server):
        with xmlrpc.client.ServerProxy(url(server), allow_none=True) as proxy:
            assert proxy.add(2, 3) == 5
            assert proxy.add("sock", "fake") == "sockfake"
            assert "add" in proxy.system.listMethods()  # type: ignore[operator]


def test_stdlib_wsgi_request_handler_on_sockfake_server() -> None:
    server = SockfakeWSGIServer((HOST, 0), QuietWSGIRequestHandler)
    server.set_app(hello_app)  # type: ignore[misc]
    with serving(server):
        assert fetch(url(server, "/wsgi?x=1")) == (200, b"GET /wsgi x=1")
        assert fetch(url(server, "/up"), data=b"body") == (200, b"POST /up  body")


# ---------------------------------------------------------------------------------------
# (b) Standing in: replace_socketserver() rebuilds the stdlib modules on sockfake.
# ---------------------------------------------------------------------------------------


@pytest.fixture
def mods() -> Iterator[dict[str, Any]]:
    with sockfake.replace_socketserver() as rebuilt:
        yield rebuilt


def test_rebuilt_servers_are_sockfake_servers(mods: dict[str, Any]) -> None:
    import socketserver as inside

    assert inside is sockfake
    assert issubclass(mods["http.server"].HTTPServer, sockfake.TCPServer)
    assert issubclass(mods["http.server"].ThreadingHTTPServer, sockfake.ThreadingMixIn)
    assert issubclass(mods["http.server"].BaseHTTPRequestHandler, sockfake.StreamRequestHandler)
    assert issubclass(mods["xmlrpc.server"].SimpleXMLRPCServer, sockfake.TCPServer)
    assert issubclass(mods["wsgiref.simple_server"].WSGIServer, sockfake.TCPServer)
    # The rebuilt modules see each other, not the originals.
    assert issubclass(mods["wsgiref.simple_server"].WSGIServer, mods["http.server"].HTTPServer)
    assert not issubclass(mods["http.server"].HTTPServer, socketserver.TCPServer)


def test_threading_http_server_with_http_client_and_urllib(mods: dict[str, Any]) -> None:
    hs = mods["http.server"]
    handler = make_echo_handler(hs.BaseHTTPRequestHandler)
    server = hs.ThreadingHTTPServer((HOST, 0), handler)
    with serving(server):
        assert isinstance(server, sockfake.ThreadingMixIn)
        assert isinstance(server, sockfake.TCPServer)
        # HTTPServer.server_bind ran:
        assert server.server_port == server.server_address[1]  # type: ignore[attr-defined]

        conn = http.client.HTTPConnection(HOST, server.server_port, timeout=WAIT)  # type: ignore[attr-defined]
        try:
            conn.request("GET", "/via-http-client")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"GET /via-http-client")
            conn.request("POST", "/", body=b"again on the same connection")
            response = conn.getresponse()
            assert response.read() == b"AGAIN ON THE SAME CONNECTION"
        finally:
            conn.close()

        assert fetch(url(server, "/via-urllib")) == (200, b"GET /via-urllib")


def test_rebuilt_simple_http_request_handler_serves_a_directory(
    mods: dict[str, Any], tmp_path: Path
) -> None:
    hs = mods["http.server"]
    (tmp_path / "index.html").write_bytes(b"<p>sockfake</p>")

    class Quiet(hs.SimpleHTTPRequestHandler):  # type: ignore[misc, name-defined]
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = hs.ThreadingHTTPServer((HOST, 0), handler)
    with serving(server):
        assert fetch(url(server, "/")) == (200, b"<p>sockfake</p>")


def test_simple_xmlrpc_server_with_server_proxy(mods: dict[str, Any]) -> None:
    xs = mods["xmlrpc.server"]
    server = xs.SimpleXMLRPCServer((HOST, 0), logRequests=False, allow_none=True)
    assert isinstance(server, sockfake.TCPServer)

    def divide(a: float, b: float) -> float:
        return a / b

    server.register_function(divide)  # type: ignore[attr-defined]
    server.register_function(pow)  # type: ignore[attr-defined]
    with serving(server):
        with xmlrpc.client.ServerProxy(url(server), allow_none=True) as proxy:
            assert proxy.pow(2, 10) == 1024
            assert proxy.divide(9, 3) == 3.0
            with pytest.raises(xmlrpc.client.Fault) as fault:
                proxy.divide(1, 0)
            assert "ZeroDivisionError" in fault.value.faultString
            # A fault in one call does not disturb the next.
            assert proxy.pow(3, 3) == 27


def test_wsgiref_make_server_with_urllib(mods: dict[str, Any]) -> None:
    ws = mods["wsgiref.simple_server"]

    class Quiet(ws.WSGIRequestHandler):  # type: ignore[misc, name-defined]
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ws.make_server(HOST, 0, hello_app, handler_class=Quiet)
    assert isinstance(server, sockfake.TCPServer)
    with serving(server):
        assert fetch(url(server, "/a/b?q=2")) == (200, b"GET /a/b q=2")
        assert fetch(url(server, "/post"), data=b"payload") == (200, b"POST /post  payload")


def test_logging_config_listen_runs_on_sockfake(mods: dict[str, Any]) -> None:
    lc = mods["logging.config"]
    logger = logging.getLogger("sockfake.tests.listen")
    saved_level = logger.level
    logger.setLevel(logging.DEBUG)
    listener = lc.listen(0)
    listener.start()
    try:
        assert listener.ready.wait(WAIT)
        config = {
            "version": 1,
            "incremental": True,  # only levels change: the test process stays intact
            "loggers": {"sockfake.tests.listen": {"level": "ERROR"}},
        }
        data = json.dumps(config).encode()
        with socket.create_connection((HOST, listener.port), timeout=WAIT) as client:
            client.sendall(struct.pack(">L", len(data)) + data)
            # The server closes the connection once the handler has applied the config.
            # Waiting for that (not racing stopListening() against the accept loop,
            # which may see the stop flag before the connection) makes this deterministic.
            assert client.recv(1) == b""
    finally:
        lc.stopListening()
        listener.join(WAIT)
    try:
        assert not listener.is_alive()
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(saved_level)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_against_http_server_on_sockfake(mods: dict[str, Any]) -> None:
    assert CURL is not None
    hs = mods["http.server"]
    handler = make_echo_handler(hs.BaseHTTPRequestHandler)
    server = hs.ThreadingHTTPServer((HOST, 0), handler)
    with serving(server):
        base = [CURL, "--silent", "--show-error", "--noproxy", "*", "--max-time", "10"]
        got = subprocess.run(
            [*base, url(server, "/from-curl")], capture_output=True, timeout=30, check=True
        )
        assert got.stdout == b"GET /from-curl"
        posted = subprocess.run(
            [*base, "--data-binary", "curl body", url(server, "/")],
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert posted.stdout == b"CURL BODY"
        # Two URLs in one invocation: curl reuses the keep-alive connection.
        twice = subprocess.run(
            [*base, url(server, "/1"), url(server, "/2")],
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert twice.stdout == b"GET /1GET /2"


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_against_mixed_in_http_server(tmp_path: Path) -> None:
    assert CURL is not None
    (tmp_path / "file.txt").write_bytes(b"served by sockfake\n")
    handler = functools.partial(QuietSimpleHTTPHandler, directory=str(tmp_path))
    server = SockfakeHTTPServer((HOST, 0), handler)
    with serving(server):
        got = subprocess.run(
            [CURL, "-sS", "--noproxy", "*", "--max-time", "10", url(server, "/file.txt")],
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert got.stdout == b"served by sockfake\n"


# ---------------------------------------------------------------------------------------
# After the block everything is the stdlib again.
# ---------------------------------------------------------------------------------------


def test_modules_are_restored_after_the_block() -> None:
    before = {name: sys.modules[name] for name in ("socketserver", "http.server")}
    with sockfake.replace_socketserver() as rebuilt:
        assert sys.modules["socketserver"] is sockfake
        assert sys.modules["http.server"] is rebuilt["http.server"]
        assert rebuilt["http.server"] is not before["http.server"]
    assert sys.modules["socketserver"] is before["socketserver"]
    assert sys.modules["http.server"] is before["http.server"]
    import http as http_package
    import socketserver as after

    assert after is socketserver and after is not sockfake
    assert http_package.server is http.server
    assert http.server.HTTPServer.__mro__[1] is socketserver.TCPServer
    assert not issubclass(http.server.HTTPServer, sockfake.BaseServer)
    assert not issubclass(xmlrpc.server.SimpleXMLRPCServer, sockfake.BaseServer)
    assert not issubclass(wsgiref.simple_server.WSGIServer, sockfake.BaseServer)


def test_modules_are_restored_when_the_block_raises() -> None:
    before = sys.modules["http.server"]
    with pytest.raises(RuntimeError, match="inside"):
        with sockfake.replace_socketserver():
            raise RuntimeError("inside")
    assert sys.modules["socketserver"] is socketserver
    assert sys.modules["http.server"] is before


def test_restores_a_process_that_never_imported_them() -> None:
    # A fresh interpreter: nothing imported before the block, nothing left after it.
    script = """
import sys
import sockfake
assert "http.server" not in sys.modules, "precondition"
with sockfake.replace_socketserver() as mods:
    assert issubclass(mods["http.server"].HTTPServer, sockfake.TCPServer)
for name in ("socketserver", "http.server", "xmlrpc.server", "wsgiref.simple_server"):
    assert name not in sys.modules, name
import http.server, socketserver
assert socketserver is not sockfake
assert not issubclass(http.server.HTTPServer, sockfake.BaseServer)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_hybrid_left_by_a_module_not_rebuilt_is_refused_by_name(tmp_path: Any) -> None:
    """A rebuilt class deriving from the real socketserver through a module that was not
    rebuilt would fail at its first request: refused, naming the module to add."""
    (tmp_path / "hybrid_base.py").write_text(
        "import socketserver\nclass Base(socketserver.TCPServer):\n    pass\n")
    (tmp_path / "hybrid_top.py").write_text(
        "import socketserver, hybrid_base\n"
        "class Server(socketserver.ThreadingMixIn, hybrid_base.Base):\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import hybrid_base  # type: ignore[import-not-found]  # noqa: F401 - real-based

        with pytest.raises(sockfake.SockfakeRuntimeError) as caught, \
                sockfake.replace_socketserver("hybrid_top"):
            pass
        message = str(caught.value)
        assert "hybrid_top.Server still derives from the real socketserver.TCPServer" in message
        assert "Add 'hybrid_base'" in message
        assert sys.modules["socketserver"] is socketserver  # put back
        with sockfake.replace_socketserver("hybrid_base", "hybrid_top") as rebuilt:
            assert issubclass(rebuilt["hybrid_top"].Server, sockfake.TCPServer)
            assert not issubclass(rebuilt["hybrid_top"].Server, socketserver.TCPServer)
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("hybrid_base", "hybrid_top"):
            sys.modules.pop(name, None)
