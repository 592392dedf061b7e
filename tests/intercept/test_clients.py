"""Unmodified stdlib and third-party HTTP clients on the simulated network, under intercept()."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
import xmlrpc.client
from typing import Any

import pytest
import requests
from helpers import HTTPServer, JSONHandler, accepts, running

import sockfake
from sockfake.sim import SimNetwork

CONDITIONS: dict[str, dict[str, Any]] = {
    "perfect": {},
    "latency": {"latency": 0.05, "jitter": 0.01},
    "loss": {"loss": 0.3, "latency": 0.01},  # loss only hits datagrams: streams stay reliable
    "chunked": {"chunk": 7},
}


@pytest.fixture(params=sorted(CONDITIONS))
def cnet(request: pytest.FixtureRequest) -> Any:
    network = SimNetwork(seed=3, time_limit=3600, **CONDITIONS[request.param])
    try:
        with network.intercept():
            yield network
    finally:
        network.close()


def test_http_client_get_post_and_keep_alive(cnet: SimNetwork) -> None:
    with running(HTTPServer(("127.0.0.1", 0), JSONHandler)) as server:
        port = server.server_address[1]
        conn = http.client.HTTPConnection("localhost", port, timeout=30)
        conn.request("GET", "/hello")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["path"] == "/hello"
        conn.request(
            "POST", "/echo", body=json.dumps({"n": 1}), headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        assert json.loads(response.read()) == {"n": 1, "seen": True}
        conn.close()
    assert accepts(cnet) == 1  # both requests on one kept-alive connection


def test_urlopen(cnet: SimNetwork) -> None:
    with running(HTTPServer(("127.0.0.1", 0), JSONHandler)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/u?x=1"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())["path"] == "/u?x=1"
        request = urllib.request.Request(
            url, data=b'{"a": [1, 2]}', headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"a": [1, 2], "seen": True}


def test_requests_get_and_session_reuses_its_connection(cnet: SimNetwork) -> None:
    with running(HTTPServer(("127.0.0.1", 0), JSONHandler)) as server:
        base = f"http://localhost:{server.server_address[1]}"
        response = requests.get(base + "/one", timeout=30)
        assert response.status_code == 200 and response.json()["path"] == "/one"
        before = accepts(cnet)
        with requests.Session() as session:
            clients = set()
            for i in range(5):
                reply = session.post(base + "/p", json={"i": i}, timeout=30)
                assert reply.json() == {"i": i, "seen": True}
                clients.add(tuple(session.get(base + "/who", timeout=30).json()["client"]))
        assert accepts(cnet) - before == 1, "the session opened more than one connection"
        assert len(clients) == 1


def test_xmlrpc_server_proxy_against_simple_xmlrpc_server(cnet: SimNetwork) -> None:
    with sockfake.replace_socketserver("xmlrpc.server") as mods:
        server_cls = mods["xmlrpc.server"].SimpleXMLRPCServer
    # Built without network=: the default network dispatches to the simulation here.
    server = server_cls(("127.0.0.1", 0), logRequests=False, allow_none=True)
    assert server.network is not sockfake.REAL_NETWORK
    server.register_function(lambda a, b: a + b, "add")
    server.register_function(lambda: None, "nothing")
    with running(server):
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{server.server_address[1]}/")
        assert proxy.add(2, 3) == 5
        assert proxy.add("a", "b") == "ab"
        assert proxy.nothing() is None
        with pytest.raises(xmlrpc.client.Fault):
            proxy.missing()
        proxy("close")()


def test_http_server_from_replace_socketserver(net: SimNetwork) -> None:
    with sockfake.replace_socketserver("http.server") as mods:
        server_cls = mods["http.server"].ThreadingHTTPServer
    with net.intercept(), running(server_cls(("127.0.0.1", 0), JSONHandler)) as server:
        assert server.server_name == "localhost"  # getfqdn() on the simulated resolver
        with urllib.request.urlopen(f"http://localhost:{server.server_port}/x") as response:
            assert json.loads(response.read())["path"] == "/x"


def test_requests_across_a_partition_healed_later(net: SimNetwork) -> None:
    net.add_host("api")
    with net.intercept():
        server = HTTPServer(("api", 0), JSONHandler, network=net.host("api"))
        with running(server):
            port = server.server_address[1]
            net.partition("local", "api")
            healer = threading.Timer(20.0, net.heal)  # virtual seconds
            healer.start()
            started = net.time()
            response = requests.get(f"http://api:{port}/late", timeout=120)
            assert response.json()["path"] == "/late"
            assert net.time() - started >= 20.0  # the SYN waited out the partition
            healer.join()


def test_connect_timeout_in_virtual_time_during_a_partition(net: SimNetwork) -> None:
    net.add_host("api")
    with net.intercept():
        server = HTTPServer(("api", 0), JSONHandler, network=net.host("api"))
        with running(server):
            net.partition("local", "api")
            started = net.time()
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(f"http://api:{server.server_address[1]}/", timeout=5)
            # "api" resolves to an IPv4 and an IPv6 address: one 5 s attempt each.
            assert net.time() - started == pytest.approx(10.0)
            net.heal()


class _UpperUDP(sockfake.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


def test_a_plain_udp_client_retries_through_loss_in_virtual_time() -> None:
    """stdlib sockets, a 2 s retry timer, 30 % loss each way: every request answered."""
    import socket
    import time

    with SimNetwork(seed=4, loss=0.3, latency=0.02) as net, net.intercept():
        server = sockfake.ThreadingUDPServer(("127.0.0.1", 0), _UpperUDP)
        with running(server):
            retries = 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(2.0)
                for i in range(50):
                    request = f"ping {i}".encode()
                    while True:
                        client.sendto(request, server.server_address)
                        try:
                            reply, _ = client.recvfrom(100)
                        except TimeoutError:
                            retries += 1
                            continue
                        if reply == request.upper():
                            break
            assert retries > 5  # the loss was real
            assert net.time() >= 2.0 * retries
            assert time.monotonic() - 1000.0 == pytest.approx(net.time())


def test_wsgiref_simple_server_with_requests(net: SimNetwork) -> None:
    with sockfake.replace_socketserver("http.server", "wsgiref.simple_server") as mods:
        simple_server = mods["wsgiref.simple_server"]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.dumps({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"]})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body.encode()]

    class QuietHandler(simple_server.WSGIRequestHandler):  # type: ignore[misc, name-defined]
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with net.intercept():
        server = simple_server.make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        with running(server):
            reply = requests.get(f"http://127.0.0.1:{server.server_port}/wsgi", timeout=30)
            assert reply.json() == {"method": "GET", "path": "/wsgi"}
