"""waitress, unmodified, serving a WSGI app: GET, POST JSON and a streamed response,
with ``requests``, ``httpx`` and ``urllib3``, on both networks, under latency and
re-chunking, under loss, across a partition, and the same digest for the same seed.

waitress wakes its loop through an ``os.pipe()`` (its trigger); under interception a
simulated thread's ``os.pipe()`` is a simulated socket pair, and ``os.dup``/``os.read``/
``os.write``/``os.close`` on it work, so waitress needs no set-up. ``Waitress`` below
only gives its server the ``serve_forever``/``shutdown`` surface the fixtures'
``server_factory=`` drives. Under loss the simulated TCP retransmits, as Linux's
does: the requests are answered whole, later.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import web_scenarios as web  # type: ignore[import-not-found]
from compat_clients import CLIENTS, need  # type: ignore[import-not-found]

waitress_server = need("waitress.server")


def app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path.startswith("/hello/"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"hello {path.removeprefix('/hello/')}".encode()]
    if path == "/json":
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"received": body, "keys": sorted(body)}).encode()]
    if path == "/stream":
        pause = float(environ.get("QUERY_STRING", "").partition("pause=")[2] or "0.01")

        def chunks() -> Any:
            for number in range(web.CHUNKS):
                time.sleep(pause)  # virtual on the simulation
                yield f"chunk {number}\n".encode()

        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


class Waitress:
    """waitress's own server, with the surface the fixtures drive."""

    def __init__(self, host: str, port: int) -> None:
        self.server = waitress_server.create_server(app, host=host, port=port, threads=4)
        self.server_address = (host, self.server.effective_port)
        self.stopped = threading.Event()

    def serve_forever(self) -> None:
        try:
            self.server.run()  # until its map of channels is empty
        finally:
            self.stopped.set()

    def shutdown(self) -> None:
        """Stop the workers, close every channel, wait for the loop to end."""
        self.server.task_dispatcher.shutdown()
        waitress_server.wasyncore.close_all(self.server._map)
        self.stopped.wait()

    def server_close(self) -> None:
        """Closed by shutdown()."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """waitress logs its own errors (the fixtures wrap this)."""


def start(tcp_server: Any, **placement: Any) -> Any:
    return tcp_server(server_factory=Waitress, **placement)


@pytest.mark.sockfake(network="both")
def test_get_post_json_and_a_stream(tcp_server: Any, client: Any) -> None:
    srv = start(tcp_server)
    web.exercise(srv, client)


@pytest.mark.sockfake(latency=0.05, jitter=0.02, chunk=7)
def test_under_latency_and_rechunking(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.under_latency(start, tcp_server, client, sockfake_network)


@pytest.mark.sockfake(seed=2)
def test_under_loss_every_request_is_answered_whole(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.under_loss(start, tcp_server, client, sockfake_network)


def test_a_partition_refuses_then_heals(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.a_partition_refuses_then_heals(start, tcp_server, client, sockfake_network)


def test_a_stream_survives_a_partition_shorter_than_its_timeout(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.a_stream_survives_a_short_partition(start, tcp_server, client, sockfake_network)


@pytest.mark.parametrize("client_name", sorted(CLIENTS))
def test_the_same_seed_gives_the_same_digest(client_name: str) -> None:
    web.the_same_seed_gives_the_same_digest(start, client_name)
