"""Servers for the interception tests: the stdlib's own HTTP handler on sockfake."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import sockfake


class JSONHandler(BaseHTTPRequestHandler):
    """GET answers the path; POST echoes the JSON body with a key added. HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"

    def _reply(self, payload: Any, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply({"path": self.path, "client": list(self.client_address)})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = json.loads(self.rfile.read(length))
        data["seen"] = True
        self._reply(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HTTPServer(sockfake.ThreadingTCPServer):
    """``http.server.ThreadingHTTPServer`` in one line, on sockfake."""

    daemon_threads = True


@contextmanager
def serving(server: Any) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, name="serve")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def accepts(net: Any) -> int:
    """How many connections the simulated network's listeners accepted so far."""
    return sum(1 for event in net.trace if event[2] == "accept")
