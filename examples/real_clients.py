"""Real clients on the simulated network: the stdlib's ``http.client`` and ``requests``
talk to a ``BaseHTTPRequestHandler`` whose ``time.sleep(30)`` costs nothing.

Run it with ``python examples/real_clients.py`` (it needs ``requests``): it prints both
replies and the virtual time (60.4... s) in a few real milliseconds.
``tests/intercept/test_real_clients_example.py`` runs it.
"""

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import requests  # any client built on the stdlib's socket module

import sockfake
from sockfake.sim import SimNetwork


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(30)  # virtual: costs nothing
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


with SimNetwork(seed=1, latency=0.05) as net, net.intercept():
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever).start()
    port = server.server_address[1]
    conn = http.client.HTTPConnection("localhost", port, timeout=60)
    conn.request("GET", "/a")
    print(json.loads(conn.getresponse().read()))  # {'path': '/a'}
    conn.close()  # server_close() waits for handlers; this one serves a kept-alive connection
    print(requests.get(f"http://localhost:{port}/b", timeout=60).json())  # {'path': '/b'}
    print(net.time())  # 60.4..., in a few milliseconds
    server.shutdown()
    server.server_close()
