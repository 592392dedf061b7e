"""waitress, unmodified, serving a WSGI app: GET, POST JSON and a streamed response,
with ``requests``, ``httpx`` and ``urllib3``, on both networks, under latency and
re-chunking, across a partition, and the same digest for the same seed.

waitress wakes its loop through an ``os.pipe()`` (its trigger); under interception a
simulated thread's ``os.pipe()`` is a simulated socket pair, and ``os.dup``/``os.read``/
``os.write``/``os.close`` on it work, so waitress needs no set-up. ``Waitress`` below
only gives its server the ``serve_forever``/``shutdown`` surface the fixtures'
``server_factory=`` drives. The simulated TCP is reliable (loss applies to datagrams):
loss is exercised by the DNS tests (``test_dnslib.py``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from compat_clients import CLIENTS, need  # type: ignore[import-not-found]

from sockfake.testing import open_testbed

waitress_server = need("waitress.server")

CHUNKS = 20


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
            for number in range(CHUNKS):
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


def exercise(srv: Any, client: Any) -> None:
    """GET, POST JSON and a streamed response, each checked in full."""
    assert client.get(srv.url + "hello/world", timeout=10) == (200, "hello world")
    status, body = client.post_json(srv.url + "json", {"b": [1, 2], "a": "x"}, timeout=10)
    assert (status, body) == (200, {"received": {"b": [1, 2], "a": "x"}, "keys": ["a", "b"]})
    assert client.lines(srv.url + "stream", timeout=10) == [
        f"chunk {number}" for number in range(CHUNKS)
    ]


@pytest.mark.sockfake(network="both")
def test_get_post_json_and_a_stream(tcp_server: Any, client: Any) -> None:
    srv = start(tcp_server)
    exercise(srv, client)


@pytest.mark.sockfake(latency=0.05, jitter=0.02, chunk=7)
def test_under_latency_and_rechunking(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    srv = start(tcp_server)
    exercise(srv, client)
    # Three requests, each at least a round trip of 2 x 50 ms, the stream 20 x 10 ms.
    assert sockfake_network.time() >= 3 * 0.1 + CHUNKS * 0.01 - 1e-9


def test_a_partition_refuses_then_heals(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    srv = start(tcp_server, host="web")
    sockfake_network.partition("local", "web")
    before = sockfake_network.time()
    with pytest.raises(client.errors):
        client.get(srv.url + "hello/cut", timeout=2)
    assert sockfake_network.time() - before >= 2  # the client's own timeout, virtual
    sockfake_network.heal()
    assert client.get(srv.url + "hello/again", timeout=10) == (200, "hello again")


def test_a_stream_survives_a_partition_shorter_than_its_timeout(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    srv = start(tcp_server, host="web")
    cut = threading.Timer(0.35, sockfake_network.partition, ("local", "web"))
    mend = threading.Timer(3.0, sockfake_network.heal)
    cut.start()
    mend.start()
    try:
        lines = client.lines(srv.url + "stream?pause=0.1", timeout=10)
    finally:
        cut.join()
        mend.join()
    assert lines == [f"chunk {number}" for number in range(CHUNKS)]
    assert sockfake_network.time() >= 3.0  # the rest waited for the heal


def run_once(seed: int, client_name: str) -> str:
    with open_testbed(seed=seed, latency=0.01, jitter=0.005) as bed:
        srv = start(bed.tcp_server)
        client = CLIENTS[client_name]()
        try:
            exercise(srv, client)
        finally:
            client.close()
    return str(bed.network.digest())


@pytest.mark.parametrize("client_name", sorted(CLIENTS))
def test_the_same_seed_gives_the_same_digest(client_name: str) -> None:
    first = run_once(5, client_name)
    assert run_once(5, client_name) == first
    assert run_once(6, client_name) != first  # the digest does see the jitter's seed
