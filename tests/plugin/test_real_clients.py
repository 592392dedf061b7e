"""Real clients against the stdlib's own servers, on both networks, through the fixtures.

The same test bodies run on the real network and on the simulated one (intercepted by
the plugin): ``http.client``, ``urllib.request``, ``requests`` (a session reuses its
connection) and ``xmlrpc.client`` against ``BaseHTTPRequestHandler``,
``SimpleXMLRPCServer`` and a ``wsgiref`` app, unmodified.
"""

from __future__ import annotations

import http.client
import http.server
import json
import urllib.request
import xmlrpc.client
import xmlrpc.server
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import pytest
import requests
from helpers import JSONHandler

pytestmark = pytest.mark.sockfake(network="both")


class QuietXMLRPC(xmlrpc.server.SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietWSGI(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _http(tcp_server: Any) -> Any:
    return tcp_server(JSONHandler, server_class=http.server.ThreadingHTTPServer)


def test_http_client_get_post_json_and_keep_alive(tcp_server: Any) -> None:
    srv = _http(tcp_server)
    conn = http.client.HTTPConnection("127.0.0.1", srv.address[1], timeout=10)
    try:
        conn.request("GET", "/first")
        assert json.loads(conn.getresponse().read())["path"] == "/first"
        conn.request("POST", "/echo", body=json.dumps({"a": 1}),
                     headers={"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read()) == {"a": 1, "seen": True}
        local = conn.sock.getsockname()  # both requests went over this one connection
        conn.request("GET", "/third")
        conn.getresponse().read()
        assert conn.sock.getsockname() == local
    finally:
        conn.close()


def test_urlopen(tcp_server: Any) -> None:
    srv = _http(tcp_server)
    with urllib.request.urlopen(srv.url + "page", timeout=10) as reply:
        assert json.load(reply)["path"] == "/page"


def test_requests_session_reuses_its_connection(tcp_server: Any) -> None:
    srv = _http(tcp_server)
    with requests.Session() as session:
        clients = {tuple(session.get(srv.url + str(n), timeout=10).json()["client"])
                   for n in range(3)}
        assert session.post(srv.url, json={"b": 2}, timeout=10).json() == {"b": 2, "seen": True}
    assert len(clients) == 1  # one client address: one kept-alive connection


def test_xmlrpc_client_against_simple_xmlrpc_server(tcp_server: Any) -> None:
    srv = tcp_server(QuietXMLRPC, server_class=xmlrpc.server.SimpleXMLRPCServer,
                     allow_none=True)
    srv.server.register_function(lambda a, b: a + b, "add")
    with xmlrpc.client.ServerProxy(srv.url, allow_none=True) as proxy:
        assert proxy.add(2, 3) == 5
        assert proxy.add("sock", "fake") == "sockfake"


def test_wsgiref_app_with_requests(tcp_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = f"hello {environ['PATH_INFO']}".encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    srv = tcp_server(QuietWSGI, server_class=WSGIServer)
    srv.server.set_app(app)
    assert requests.get(srv.url + "wsgi", timeout=10).text == "hello /wsgi"
