"""An HTTP handler, tested with real clients on the simulated network.

``BaseHTTPRequestHandler`` served by the stdlib's own ``ThreadingHTTPServer`` (rebuilt
on sockfake by the fixture), driven by ``requests`` and ``urllib`` unmodified: the
plugin runs every simulated test under ``net.intercept()``, so their sockets, the
handler's ``time.sleep`` and the server's threads are the simulation's. Latency and a
partition are one line each, and a minute of sleeping costs no real time.
"""

import http.server
import json
import time
import urllib.request

import pytest
import requests


class Inventory(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self):
        time.sleep(1)  # a slow backend: one virtual second
        self._reply(self.server.items.get(self.path.strip("/"), 0))

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        item = json.loads(self.rfile.read(length))
        self.server.items[item["name"]] = self.server.items.get(item["name"], 0) + item["count"]
        self._reply(self.server.items[item["name"]])

    def _reply(self, count):
        body = json.dumps({"count": count}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def inventory(tcp_server):
    return tcp_server(Inventory, server_class=http.server.ThreadingHTTPServer, items={})


@pytest.mark.sockfake(network="sim", latency=0.05)
def test_post_then_get_on_one_kept_alive_connection(inventory, sockfake_network):
    with requests.Session() as session:
        assert session.post(inventory.url, json={"name": "apples", "count": 3}).json() == {
            "count": 3
        }
        assert session.get(inventory.url + "apples").json() == {"count": 3}
    accepts = [e for e in sockfake_network.trace if e.kind == "accept"]
    assert len(accepts) == 1  # the session reused its connection
    assert sockfake_network.time() >= 1.2  # four 50 ms trips and a one-second backend


def test_urllib_sees_the_same_server(inventory):
    request = urllib.request.Request(
        inventory.url, data=json.dumps({"name": "pears", "count": 2}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.load(reply) == {"count": 2}


@pytest.mark.sockfake(network="sim")
def test_a_cut_link_times_the_client_out_in_virtual_time(inventory, sockfake_network):
    net = sockfake_network
    net.hold("local", "local")  # nothing on the loopback gets through until release
    before = net.time()
    with pytest.raises(requests.ConnectTimeout):
        requests.get(inventory.url + "apples", timeout=3)
    assert 3 <= net.time() - before < 4  # three virtual seconds, no real ones
    net.release("local", "local")
    assert requests.get(inventory.url + "apples", timeout=10).json() == {"count": 0}
