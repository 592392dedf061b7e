"""200 concurrent clients: nothing lost, nothing corrupted, on the real network and the sim."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import sockfake
from sockfake.network import REAL_NETWORK
from sockfake.sim import SimNetwork

CLIENTS = 200


class EchoAll(sockfake.StreamRequestHandler):
    """Reads the whole request (until the client half-closes), sends it back."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


def payloads(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(1, 16 * 1024)) for _ in range(CLIENTS)]


@pytest.fixture(params=["real", "sim"])
def network(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "real":
        yield REAL_NETWORK
        return
    net = SimNetwork(seed=17, latency=0.002, jitter=0.001, chunk=4000)
    yield net
    net.close()


@pytest.mark.parametrize(
    "server_class", [sockfake.ThreadingTCPServer, sockfake.ThreadPoolTCPServer]
)
def test_two_hundred_concurrent_clients_get_exactly_their_bytes_back(
    network: Any, server_class: type
) -> None:
    server = server_class(("127.0.0.1", 0), EchoAll, network=network)
    serving = network.thread(target=server.serve_forever, args=(0.5,), daemon=True)
    serving.start()
    sent = payloads(seed=5)
    received: dict[int, bytes] = {}
    errors: list[BaseException] = []
    go = network.event()
    connected = [0]
    count_lock = network.lock()

    def client(number: int) -> None:
        try:
            with network.create_connection(server.server_address, timeout=30) as conn:
                with count_lock:
                    connected[0] += 1
                    if connected[0] == CLIENTS:
                        go.set()
                assert go.wait(30)  # every client connected before any sends
                conn.sendall(sent[number])
                conn.shutdown(socket.SHUT_WR)
                chunks = []
                while True:  # bounded: EOF or the 30 s socket timeout
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                received[number] = b"".join(chunks)
        except BaseException as exc:  # reported below, with the client's number
            errors.append(exc)

    clients = [
        network.thread(target=client, args=(n,), name=f"client-{n}", daemon=True)
        for n in range(CLIENTS)
    ]
    try:
        for each in clients:
            each.start()
        for each in clients:
            each.join(60)
    finally:
        server.shutdown()
        server.server_close()
        serving.join(10)
    assert not errors, errors[:3]
    assert sorted(received) == list(range(CLIENTS))
    mismatched = [n for n in range(CLIENTS) if received[n] != sent[n]]
    assert not mismatched, f"{len(mismatched)} clients got other bytes back"
