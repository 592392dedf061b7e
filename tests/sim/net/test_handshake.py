"""Only completed handshakes are accepted: a SYN makes a half-open connection (Linux's
SYN queue), the client's last ACK (or any segment, which carries one) moves it to the
accept queue, and a SYN-ACK is retransmitted until that ACK comes or the attempt
expires. The client's connect() returns on the SYN-ACK, as on Linux."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import db_and_app

from sockfake.sim import SimNetwork
from sockfake.sim.trace.packets import ACK, SYN, packets

LATENCY = 0.05  # one way: SYN at 0, SYN-ACK at 0.05, ACK sent at 0.1, arrives at 0.15


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    with db_and_app(LATENCY) as network:
        yield network


def _listener(net: SimNetwork, backlog: int = 128) -> Any:
    listener = net.host("db").socket()
    listener.bind(("0.0.0.0", 5432))
    listener.listen(backlog)
    return listener


def _connect_in_thread(net: SimNetwork, host: str = "app") -> tuple[threading.Thread, list[Any]]:
    """connect() from ``host`` in a thread of that host; the socket (and when connect()
    returned) lands in the list."""
    out: list[Any] = []

    def connect() -> None:
        sock = net.host(host).create_connection(("db", 5432), timeout=300)
        out.append((sock, net.time()))

    thread = net.host(host).thread(target=connect, daemon=True)
    thread.start()
    return thread, out


def _ack_lost(net: SimNetwork) -> tuple[Any, Any]:
    """A listener, and a client whose handshake's last ACK a partition took (app -> db
    cut while the SYN-ACK was on its way): the client is connected, the listener holds
    a half-open connection. Returns at 0.17 s."""
    listener = _listener(net)
    _, connected = _connect_in_thread(net)
    net.sleep(0.07)  # the SYN-ACK is on its way; the ACK is not sent yet
    net.partition("app", "db", oneway=True)
    net.sleep(0.1)
    client, connected_at = connected[0]
    assert connected_at == pytest.approx(0.1)  # the client believes it is connected
    assert len(listener.ep.syn_queue) == 1
    return listener, client


def _kinds(net: SimNetwork, *kinds: str) -> list[tuple[str, float]]:
    return [(event.kind, round(event.time, 6)) for event in net.trace if event.kind in kinds]


def test_accept_returns_one_way_after_connect_returns(net: SimNetwork) -> None:
    listener = _listener(net)
    _, connected = _connect_in_thread(net)
    conn, _ = listener.accept()
    assert connected[0][1] == pytest.approx(2 * LATENCY)  # connect(): SYN, SYN-ACK
    assert net.time() == pytest.approx(3 * LATENCY)  # accept(): and the ACK
    assert _kinds(net, "syn", "established", "queued") == [
        ("syn", 0.05), ("established", 0.1), ("queued", 0.15)]
    conn.close()
    connected[0][0].close()


def test_a_partition_that_holds_the_clients_ack_leaves_accept_waiting(
    net: SimNetwork,
) -> None:
    listener, client = _ack_lost(net)
    listener.settimeout(0.8)
    with pytest.raises(TimeoutError):
        listener.accept()
    with net.selector() as selector:  # nor is the listener readable
        selector.register(listener, 1)
        assert selector.select(0) == []
    # Healed, the SYN-ACK's retransmission (1 s after the first, at 1.05, and 2 s
    # later at 3.05) is answered with the ACK, which now gets through.
    net.heal()
    listener.settimeout(None)
    conn, _ = listener.accept()
    assert net.time() == pytest.approx(1.15)
    assert _kinds(net, "synack-retry") == [("synack-retry", 1.05)]
    client.sendall(b"hello")
    assert conn.recv(10) == b"hello"
    conn.close()
    client.close()


def test_a_segment_from_the_client_completes_the_handshake(net: SimNetwork) -> None:
    listener, client = _ack_lost(net)
    client.sendall(b"query")  # held by the partition (TCP retransmits it)
    net.sleep(0.1)
    net.heal()  # at 0.27: the data arrives at 0.32, before the SYN-ACK's retry at 1.05
    conn, _ = listener.accept()
    assert net.time() == pytest.approx(0.32)
    assert conn.recv(10) == b"query"
    assert _kinds(net, "synack-retry") == []
    conn.close()
    client.close()


def test_a_crash_of_the_client_between_syn_ack_and_ack_leaves_nothing_to_accept(
    net: SimNetwork,
) -> None:
    listener = _listener(net)
    _connect_in_thread(net)
    net.sleep(0.07)  # the SYN-ACK is on its way to app
    net.crash("app")
    listener.settimeout(100)
    with pytest.raises(TimeoutError):
        listener.accept()
    # SYN-ACK at 0.05, retransmitted at 1.05, 3.05, 7.05, 15.05 and 31.05 (all lost:
    # app is down), then the attempt expires at 63.05 and its descriptor goes back.
    assert _kinds(net, "synack-retry", "half-open-expired") == [
        ("synack-retry", 1.05), ("synack-retry", 3.05), ("synack-retry", 7.05),
        ("synack-retry", 15.05), ("synack-retry", 31.05), ("half-open-expired", 63.05)]
    assert listener.ep.syn_queue == []
    assert [s for s in net._descriptors.sockets() if s is not listener] == []
    listener.close()


def test_a_restarted_client_resets_the_half_open_connection(net: SimNetwork) -> None:
    listener = _listener(net)
    _connect_in_thread(net)
    net.sleep(0.07)
    net.crash("app")
    net.sleep(0.5)
    net.restart("app")
    # The SYN-ACK retransmitted at 1.05 reaches the rebooted app, which knows no such
    # connection: its reset (at 1.15) ends the half-open one.
    listener.settimeout(5)
    with pytest.raises(TimeoutError):
        listener.accept()
    assert listener.ep.syn_queue == []
    assert _kinds(net, "synack-retry", "half-open-expired") == [("synack-retry", 1.05)]
    listener.close()


def test_a_full_accept_queue_drops_the_ack_and_the_retransmitted_syn_ack_gets_it_in(
    net: SimNetwork,
) -> None:
    listener = _listener(net, backlog=0)  # Linux queues backlog + 1 = 1 connection
    _, first = _connect_in_thread(net)
    _, second = _connect_in_thread(net)
    net.sleep(0.2)
    # Both SYNs found the accept queue empty: both clients are connected; the second
    # ACK found it full and was dropped.
    assert [at for _, at in first + second] == [pytest.approx(0.1)] * 2
    assert _kinds(net, "queued", "ack-dropped") == [("queued", 0.15), ("ack-dropped", 0.15)]
    conn1, _ = listener.accept()
    conn2, _ = listener.accept()  # the SYN-ACK again at 1.05, its ACK in at 1.15
    assert net.time() == pytest.approx(1.15)
    for sock in (conn1, conn2, first[0][0], second[0][0], listener):
        sock.close()


def test_closing_the_listener_forgets_its_half_open_connections(net: SimNetwork) -> None:
    listener, client = _ack_lost(net)
    listener.close()
    net.heal()
    # Linux sends the client nothing; its next segment meets a closed socket.
    client.sendall(b"anyone?")
    client.settimeout(5)
    with pytest.raises(ConnectionResetError):
        client.recv(10)
    assert not net.kernel.has_pending_work()
    client.close()


def test_a_select_on_the_listener_wakes_only_when_the_handshake_completes(
    net: SimNetwork,
) -> None:
    listener = _listener(net)
    _connect_in_thread(net)
    with net.selector() as selector:
        selector.register(listener, 1)
        assert selector.select(10)
    assert net.time() == pytest.approx(3 * LATENCY)
    listener.setblocking(False)
    conn, _ = listener.accept()
    conn.close()
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_on_an_instant_link_the_handshake_completes_within_connect() -> None:
    with SimNetwork(seed=1) as net:
        listener = net.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = net.create_connection(listener.getsockname())
        conn, _ = listener.accept()  # no wait: queued before connect() returned
        assert net.time() == 0.0
        assert not net.kernel.has_pending_work()
        for sock in (conn, client, listener):
            sock.close()


# -- loss: handshake packets are lost to it, and a stream gives up (tcp_retries2) -----


def test_a_lossy_link_loses_syns_and_connect_times_out_after_linuxs_six_retries() -> None:
    with SimNetwork(seed=1, time_limit=3600, loss=1.0) as net:
        listener = net.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(TimeoutError):
            net.create_connection(listener.getsockname())
        # tcp_syn_retries = 6: SYNs at 0, 1, 3, 7, 15, 31 and 63 s, ETIMEDOUT at 127 s.
        assert net.time() == pytest.approx(127.0)
        lost = [event for event in net.trace if event.kind == "drop"]
        assert [round(event.time, 6) for event in lost] == [0, 1, 3, 7, 15, 31, 63]
        assert all(event.reason == "loss" for event in lost)
        listener.close()


def test_a_lost_syn_ack_is_sent_again_and_the_connection_completes(net: SimNetwork) -> None:
    listener = _listener(net)
    net.set_conditions("db", "app", both_ways=False, latency=LATENCY, loss=1.0)
    _, connected = _connect_in_thread(net)
    net.sleep(0.5)
    net.set_conditions("db", "app", both_ways=False, latency=LATENCY, loss=0.0)
    conn, _ = listener.accept()
    # The SYN-ACK at 0.05 was lost; the server sent it again at 1.05, the client's SYN
    # retry at 1 s found the connection half-open and drew one more at 1.05: the
    # first to arrive (1.1) connects the client, its ACK completes at 1.15.
    assert connected[0][1] == pytest.approx(1.1)
    assert net.time() == pytest.approx(1.15)
    assert _kinds(net, "synack-lost") == [("synack-lost", 0.05)]
    # The capture shows it: the first SYN-ACK dropped, then retransmitted ones.
    syn_acks = [p for p in packets(net.trace) if p.flags == SYN | ACK]
    assert [(round(p.time, 6), sorted(p.fates)) for p in syn_acks] == [
        (0.05, ["dropped"]), (1.05, ["retransmitted"]), (1.05, ["retransmitted"])]
    conn.close()
    connected[0][0].close()


def test_a_stream_whose_segment_is_always_lost_gives_up_after_tcp_retries2(
    net: SimNetwork,
) -> None:
    listener = _listener(net)
    _, connected = _connect_in_thread(net)
    net.sleep(0.07)  # the SYN went through; everything app sends from now on is lost
    net.set_conditions("app", "db", both_ways=False, latency=LATENCY, loss=1.0)
    net.sleep(0.1)
    client, _ = connected[0]
    assert _kinds(net, "ack-lost") == [("ack-lost", 0.1)]
    client.sendall(b"lost for good")
    client.settimeout(None)
    with pytest.raises(TimeoutError) as raised:
        client.recv(10)
    assert raised.value.errno == errno.ETIMEDOUT
    # Sent at 0.17; retransmission timeouts from 0.3 s (200 ms plus the round trip),
    # doubling up to 120 s: 15 retransmissions, then the last one's timeout, 993.3 s.
    assert net.time() == pytest.approx(0.17 + 993.3)
    losses = [event for event in net.trace if event.kind == "loss"]
    assert len(losses) == 16
    assert _kinds(net, "gave-up") == [("gave-up", round(net.time(), 6))]
    with pytest.raises(OSError):  # dead: EOF after the error, as after a reset
        client.send(b"more")
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):  # its handshake never completed
        listener.accept()
    client.close()
    listener.close()
