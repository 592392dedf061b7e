"""What the compat tests ask of every HTTP server they drive (werkzeug, waitress): the
requests, and the scenarios under latency, loss, a partition and a seed, each given a
``start(tcp_server, **placement)`` that starts the server under test.

The app each server runs answers ``/hello/<name>``, ``POST /json`` (the body back,
with its keys sorted) and ``/stream?pause=S`` (``CHUNKS`` lines, one every ``S``
seconds, virtual on the simulation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from compat_clients import CLIENTS  # type: ignore[import-not-found]

from sockfake.testing import open_testbed

CHUNKS = 20

Start = Callable[..., Any]


def exercise(srv: Any, client: Any, timeout: float = 10) -> None:
    """GET, POST JSON and a streamed response, each checked in full."""
    assert client.get(srv.url + "hello/world", timeout=timeout) == (200, "hello world")
    status, body = client.post_json(srv.url + "json", {"b": [1, 2], "a": "x"},
                                    timeout=timeout)
    assert (status, body) == (200, {"received": {"b": [1, 2], "a": "x"}, "keys": ["a", "b"]})
    assert client.lines(srv.url + "stream", timeout=timeout) == [
        f"chunk {number}" for number in range(CHUNKS)
    ]


def under_latency(start: Start, tcp_server: Any, client: Any, network: Any) -> None:
    """Run under the marker's 50 ms latency: the time the requests took shows it."""
    srv = start(tcp_server)
    exercise(srv, client)
    # Three requests, each at least a round trip of 2 x 50 ms, the stream 20 x 10 ms.
    assert network.time() >= 3 * 0.1 + CHUNKS * 0.01 - 1e-9


def under_loss(start: Start, tcp_server: Any, client: Any, network: Any) -> None:
    """Run across a link that loses 20 % of its packets: TCP retransmits what the link
    took, so every request is answered in full, only later (the trace shows the losses)."""
    srv = start(tcp_server, host="web")
    network.set_conditions("local", "web", latency=0.005, loss=0.2)
    # A connect() whose SYN or SYN-ACK is lost waits Linux's 1, 2, 4 ... s: a client
    # timeout of 10 s would end some seeds' connects (as on Linux); 120 virtual s
    # outlasts six lost tries. (The tests pin their seed too: the same run each time.)
    exercise(srv, client, timeout=120)
    lost = [event for event in network.trace.events if event.kind == "loss"]
    assert lost, "the link took nothing: the test did not exercise loss"
    # A lost segment waits at least TCP's minimum retransmission timeout (200 ms).
    assert network.time() >= 0.2


def a_partition_refuses_then_heals(start: Start, tcp_server: Any, client: Any,
                                   network: Any) -> None:
    srv = start(tcp_server, host="web")
    network.partition("local", "web")
    before = network.time()
    with pytest.raises(client.errors):
        client.get(srv.url + "hello/cut", timeout=2)
    assert network.time() - before >= 2  # the client's own timeout, virtual
    network.heal()
    assert client.get(srv.url + "hello/again", timeout=10) == (200, "hello again")


def a_stream_survives_a_short_partition(start: Start, tcp_server: Any, client: Any,
                                        network: Any) -> None:
    srv = start(tcp_server, host="web")
    cut = threading.Timer(0.35, network.partition, ("local", "web"))
    mend = threading.Timer(3.0, network.heal)
    cut.start()
    mend.start()
    try:
        lines = client.lines(srv.url + "stream?pause=0.1", timeout=10)
    finally:
        cut.join()
        mend.join()
    assert lines == [f"chunk {number}" for number in range(CHUNKS)]
    assert network.time() >= 3.0  # the rest waited for the heal


def digest_of_a_run(start: Start, seed: int, client_name: str) -> str:
    with open_testbed(seed=seed, latency=0.01, jitter=0.005) as bed:
        srv = start(bed.tcp_server)
        client = CLIENTS[client_name]()
        try:
            exercise(srv, client)
        finally:
            client.close()
    return str(bed.network.digest())


def the_same_seed_gives_the_same_digest(start: Start, client_name: str) -> None:
    first = digest_of_a_run(start, 5, client_name)
    assert digest_of_a_run(start, 5, client_name) == first
    assert digest_of_a_run(start, 6, client_name) != first  # the digest sees the jitter's seed
