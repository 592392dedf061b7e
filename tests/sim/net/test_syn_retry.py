"""The SYN retransmission timer lives exactly as long as the connection attempt."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from sockfake.sim import SimNetwork


@pytest.fixture
def two() -> Iterator[SimNetwork]:
    network = SimNetwork(seed=3)
    network.add_host("server")
    try:
        yield network
    finally:
        network.close()


def _listener(net: SimNetwork, host: str = "local") -> socket.socket:
    sock = net.host(host).socket()
    sock.bind(("0.0.0.0", 8000) if host != "local" else ("127.0.0.1", 0))
    sock.listen()
    return sock  # type: ignore[return-value]


def test_a_zero_latency_connect_leaves_no_timer_behind(net: SimNetwork) -> None:
    listener = _listener(net)
    client = net.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    # The handshake completed within connect(): nothing is left for the clock.
    assert not net.kernel.has_pending_work()
    # So a timed wait on nothing ends at its own deadline, not at a SYN retry's +1 s.
    with net.selector() as selector:
        assert selector.select(5.0) == []
    jumps = [event for event in net.trace if event.kind == "jump"]
    assert [event.time for event in jumps] == [pytest.approx(5.0)]
    for sock in (conn, client, listener):
        sock.close()


def test_a_zero_latency_refused_connect_leaves_no_timer_behind(net: SimNetwork) -> None:
    with net.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", 9))
    assert not net.kernel.has_pending_work()


def test_a_connect_on_a_slow_link_stops_its_timer_once_established() -> None:
    net = SimNetwork(seed=3, latency=0.05)
    try:
        listener = _listener(net)
        client = net.create_connection(listener.getsockname())
        assert net.time() == pytest.approx(0.1)
        assert client.ep.syn_retry is None
        # The server's SYN-ACK timer stops when the client's ACK arrives, one way later.
        conn, _ = listener.accept()
        assert net.time() == pytest.approx(0.15)
        assert not net.kernel.has_pending_work()
        conn.close()
        client.close()
        listener.close()
    finally:
        net.close()


def test_syn_is_retransmitted_while_the_link_is_cut_and_gets_through_after(
    two: SimNetwork,
) -> None:
    listener = _listener(two, "server")
    two.partition("local", "server")

    def heal_later() -> None:
        two.sleep(2.5)
        two.heal()

    healer = threading.Thread(target=heal_later)
    healer.start()
    # SYNs at 0 (lost), 1 (lost) and 3 s: the third gets through.
    client = two.create_connection(("server", 8000), timeout=30)
    assert two.time() == pytest.approx(3.0)
    retries = [event.time for event in two.trace if event.kind == "retry"]
    assert retries == pytest.approx([1.0, 3.0])
    healer.join()
    assert not two.kernel.has_pending_work()
    conn, _ = listener.accept()
    for sock in (conn, client, listener):
        sock.close()
