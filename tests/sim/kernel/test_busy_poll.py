"""Busy-polling loops (select(0), non-blocking recv) make progress in virtual time."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest

from sockfake.sim import SimDeadlockError, SimNetwork


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    network = SimNetwork(seed=11, latency=0.05)
    yield network
    network.close()


def test_non_blocking_recv_loop_sees_data_sent_later(net: SimNetwork) -> None:
    receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"late", receiver.getsockname())  # arrives after 50 ms of latency
    polls = 0
    data = b""
    while polls < 10_000:
        polls += 1
        try:
            data = receiver.recv(100)
            break
        except BlockingIOError:
            continue
    assert data == b"late"
    assert net.time() == pytest.approx(0.05)
    receiver.close()
    sender.close()


def test_select_zero_loop_sees_a_connection_arrive(net: SimNetwork) -> None:
    listener = net.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = net.socket()
    client.setblocking(False)
    assert client.connect_ex(listener.getsockname()) != 0  # in progress
    with net.selector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        ready = []
        for _ in range(10_000):
            ready = selector.select(0)
            if ready:
                break
    assert ready and ready[0][0].fileobj is listener
    conn, _ = listener.accept()
    for sock in (conn, client, listener):
        sock.close()


def test_spinning_with_nothing_scheduled_is_a_deadlock(net: SimNetwork) -> None:
    receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    with pytest.raises(SimDeadlockError, match="busy-polls"):
        for _ in range(10_000):
            try:
                receiver.recv(100)
            except BlockingIOError:
                continue
    receiver.close()
