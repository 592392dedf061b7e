"""TLS on the simulated network: real OpenSSL over MemoryBIO, records on simulated streams."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import HTTPServer, JSONHandler, accepts, running

from sockfake.sim import SimNetwork

DATA = Path(__file__).resolve().parent / "data"
CERT = str(DATA / "localhost.crt")  # self-signed, CN and SAN localhost / 127.0.0.1
KEY_AND_CERT = str(DATA / "localhost.pem")


class VersionHandler(JSONHandler):
    def do_GET(self) -> None:
        self._reply({"path": self.path, "version": self.connection.version()})


def _https_server(handler: Any = VersionHandler) -> Any:
    server = HTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(KEY_AND_CERT)
    server.socket = context.wrap_socket(server.socket, server_side=True)  # the stdlib recipe
    return server


@pytest.fixture(params=[{}, {"latency": 0.02, "chunk": 50}], ids=["perfect", "slow-chunked"])
def tnet(request: pytest.FixtureRequest) -> Any:
    with SimNetwork(seed=2, time_limit=3600, **request.param) as network, network.intercept():
        yield network


def test_https_with_http_client_keep_alive(tnet: SimNetwork) -> None:
    with running(_https_server()) as server:
        context = ssl.create_default_context(cafile=CERT)
        conn = http.client.HTTPSConnection(
            "localhost", server.server_address[1], context=context, timeout=30
        )
        for path in ("/a", "/b"):
            conn.request("GET", path)
            assert json.loads(conn.getresponse().read()) == {"path": path, "version": "TLSv1.3"}
        assert isinstance(conn.sock, socket.socket)
        assert conn.sock.getpeercert()["subject"] == ((("commonName", "localhost"),),)  # type: ignore[attr-defined]
        conn.close()
    assert accepts(tnet) == 1


def test_https_with_requests_and_urlopen(tnet: SimNetwork) -> None:
    with running(_https_server()) as server:
        url = f"https://localhost:{server.server_address[1]}/r"
        assert requests.get(url, verify=CERT, timeout=30).json()["path"] == "/r"
        context = ssl.create_default_context(cafile=CERT)
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            assert json.loads(response.read())["version"] == "TLSv1.3"


def test_certificate_verification_is_real(tnet: SimNetwork) -> None:
    with running(_https_server()) as server:
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            requests.get(f"https://localhost:{server.server_address[1]}/", timeout=30)
        context = ssl.create_default_context(cafile=CERT)
        with socket.create_connection(server.server_address) as raw, pytest.raises(
            ssl.SSLCertVerificationError, match="Hostname mismatch"
        ):
            context.wrap_socket(raw, server_hostname="other.example")


def test_wrap_then_connect_alpn_and_unwrap(inet: SimNetwork) -> None:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(KEY_AND_CERT)
    server_context.set_alpn_protocols(["h2", "http/1.1"])
    listener = socket.create_server(("127.0.0.1", 0))
    tls_listener = server_context.wrap_socket(listener, server_side=True)
    assert listener.fileno() == -1  # detached, as the real wrap_socket does
    seen: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = tls_listener.accept()
        seen["alpn"] = conn.selected_alpn_protocol()
        seen["data"] = conn.recv(100)
        conn.sendall(b"pong")
        plain = conn.unwrap()
        seen["after"] = plain.recv(100)
        plain.close()

    thread = threading.Thread(target=serve)
    thread.start()
    context = ssl.create_default_context(cafile=CERT)
    context.set_alpn_protocols(["http/1.1"])
    client = context.wrap_socket(socket.socket(), server_hostname="localhost")
    client.connect(tls_listener.getsockname())
    assert client.version() == "TLSv1.3" and client.cipher() is not None
    client.sendall(b"ping")
    assert client.recv(100) == b"pong"
    plain = client.unwrap()
    assert plain is client  # as the real unwrap(): the same object, now plain
    plain.sendall(b"clear text")
    thread.join()
    plain.close()
    tls_listener.close()
    assert seen == {"alpn": "http/1.1", "data": b"ping", "after": b"clear text"}
    assert isinstance(client, ssl.SSLSocket) and isinstance(client, socket.socket)
