"""cheroot, unmodified, serving a WSGI app on the simulation (it sets FD_CLOEXEC with fcntl)."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

import pytest

from sockfake.sim import SimNetwork

wsgi = pytest.importorskip("cheroot.wsgi", reason="cheroot is not installed (the test extra)")


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["PATH_INFO"].encode(), b" ", body]



def test_cheroot_serves_a_wsgi_app_and_stops(inet: SimNetwork) -> None:
    server = wsgi.Server(("127.0.0.1", 8080), _app, numthreads=2)
    server.prepare()  # binds, listens, and sets FD_CLOEXEC (fcntl) on the socket
    thread = threading.Thread(target=server.serve)
    thread.start()
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/a", timeout=5) as reply:
            assert reply.read() == b"GET /a "
        request = urllib.request.Request("http://127.0.0.1:8080/b", data=b"body", method="POST")
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.read() == b"POST /b body"
    finally:
        server.stop()
        thread.join()
    assert not thread.is_alive()
