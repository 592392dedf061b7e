"""Host-local IPC (Unix sockets, ``socketpair()``) crosses no link; loopback TCP/UDP do.

A Unix socket or a socket pair is instant and never held, partitioned, lost or reset by
a host going down, whatever the links' conditions. TCP and UDP over 127.0.0.1 keep the
loopback link's conditions and faults. asyncio's wake-ups ride a socket pair, so an
executor's result reaches the loop at once on a slow or held loopback.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import needs_unix

from sockfake.sim import SimNetwork

pytestmark = needs_unix

LATENCY = 0.05


@pytest.fixture
def slow() -> Iterator[SimNetwork]:
    """A network whose every link, loopback included, takes 50 ms each way."""
    network = SimNetwork(seed=5, latency=LATENCY, time_limit=3600)
    try:
        yield network
    finally:
        network.close()


def _unix_pair(net: SimNetwork, path: str = "/run/ipc.sock") -> tuple[socket.socket, ...]:
    listener = net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    client = net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    server, _ = listener.accept()
    return listener, client, server  # type: ignore[return-value]


def _tcp_pair(net: SimNetwork) -> tuple[socket.socket, ...]:
    listener = net.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = net.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server  # type: ignore[return-value]


def _round_trip(client: socket.socket, server: socket.socket) -> None:
    client.sendall(b"ping")
    assert server.recv(10) == b"ping"
    server.sendall(b"pong")
    assert client.recv(10) == b"pong"


def _close(*socks: Any) -> None:
    for sock in socks:
        sock.close()


# -- no latency ----------------------------------------------------------------------


def test_unix_stream_connect_and_round_trip_take_no_time_on_a_slow_loopback(
    slow: SimNetwork,
) -> None:
    socks = _unix_pair(slow)
    _round_trip(*socks[1:])
    assert slow.time() == 0.0
    _close(*socks)


def test_tcp_over_loopback_keeps_the_loopback_latency(slow: SimNetwork) -> None:
    socks = _tcp_pair(slow)
    # SYN, its answer (connect() returns), then the ACK that accept() waits for.
    assert slow.time() == pytest.approx(3 * LATENCY)
    _round_trip(*socks[1:])
    assert slow.time() == pytest.approx(5 * LATENCY)
    _close(*socks)


def test_unix_datagrams_take_no_time_and_loopback_udp_keeps_its_latency(
    slow: SimNetwork,
) -> None:
    a = slow.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = slow.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.bind("/run/a.sock")
    b.bind("/run/b.sock")
    a.sendto(b"unix", "/run/b.sock")
    assert b.recv(10) == b"unix"
    assert slow.time() == 0.0
    u, v = slow.socket(socket.AF_INET, socket.SOCK_DGRAM), slow.socket(socket.AF_INET,
                                                                        socket.SOCK_DGRAM)
    v.bind(("127.0.0.1", 0))
    u.sendto(b"udp", v.getsockname())
    assert v.recv(10) == b"udp"
    assert slow.time() == pytest.approx(LATENCY)
    _close(a, b, u, v)


def test_a_socketpair_takes_no_time_on_a_slow_loopback(slow: SimNetwork) -> None:
    with slow.intercept():
        a, b = socket.socketpair()
    with a, b:
        _round_trip(a, b)
    assert slow.time() == 0.0


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["AF_INET", "AF_INET6"])
def test_an_inet_socketpair_is_host_local_too(slow: SimNetwork, family: int) -> None:
    """``socketpair(AF_INET)`` (CPython's fallback where there is no AF_UNIX) is built
    over loopback, yet crosses no link: no latency, never held, partitioned or reset."""
    with slow.intercept():
        a, b = socket.socketpair(family)
    with a, b:
        assert a.family == family
        assert slow.time() == 0.0  # its handshake took no round trip either
        _round_trip(a, b)
        slow.hold("local", "local")
        _round_trip(a, b)
        slow.release("local", "local")
        slow.partition("local", "local")
        _round_trip(a, b)
        slow.heal()
        slow.host_down("local")
        _round_trip(a, b)
    assert slow.time() == 0.0


# -- faults do not reach it ----------------------------------------------------------


def test_hold_and_partition_of_the_loopback_cut_tcp_but_not_unix_sockets(
    net: SimNetwork,
) -> None:
    unix = _unix_pair(net)
    tcp = _tcp_pair(net)
    with net.intercept():
        pair = socket.socketpair()
    for fault in ("hold", "partition"):
        getattr(net, fault)("local", "local")
        _round_trip(*unix[1:])
        _round_trip(*pair)
        tcp[1].sendall(b"held")
        with net.selector() as selector:
            selector.register(tcp[2], 1)
            assert selector.select(5.0) == []  # nothing gets through on the cut link
        net.release("local", "local") if fault == "hold" else net.heal()
        assert tcp[2].recv(10) == b"held"
    _close(*unix, *tcp, *pair)


def test_a_new_unix_connection_gets_through_a_partitioned_loopback(net: SimNetwork) -> None:
    net.partition("local", "local")
    socks = _unix_pair(net)
    _round_trip(*socks[1:])
    assert net.time() == 0.0
    _close(*socks)


def test_loss_never_drops_a_unix_datagram() -> None:
    with SimNetwork(seed=2, loss=1.0) as net:
        a = net.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b = net.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.bind("/run/a.sock")
        b.bind("/run/b.sock")
        for number in range(20):
            a.sendto(b"%d" % number, "/run/b.sock")
        assert [b.recv(10) for _ in range(20)] == [b"%d" % n for n in range(20)]
        assert not [event for event in net.trace if event.kind == "drop"]
        _close(a, b)


def test_a_host_going_down_resets_its_tcp_but_not_its_unix_connections(
    net: SimNetwork,
) -> None:
    unix = _unix_pair(net)
    tcp = _tcp_pair(net)
    net.host_down("local")
    _round_trip(*unix[1:])
    with pytest.raises(ConnectionResetError):
        tcp[1].recv(10)
    net.host_up("local")
    _close(*unix, *tcp)


# -- asyncio's wake-ups --------------------------------------------------------------


def _executor_round_trips(count: int) -> list[float]:
    """``count`` run_in_executor calls; the virtual time each took."""

    def work(number: int) -> int:
        return number * 2

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        took = []
        for number in range(count):
            start = loop.time()
            assert await loop.run_in_executor(None, work, number) == number * 2
            took.append(loop.time() - start)
        return took

    return asyncio.run(main())


def test_run_in_executor_costs_no_link_latency(slow: SimNetwork) -> None:
    with slow.intercept():
        took = _executor_round_trips(5)
    assert took == [0.0] * 5
    assert slow.time() == 0.0


def test_run_in_executor_completes_while_the_loopback_is_held(net: SimNetwork) -> None:
    net.hold("local", "local")
    with net.intercept():
        took = _executor_round_trips(3)
    assert took == [0.0] * 3
    net.release("local", "local")


def test_call_soon_threadsafe_from_a_thread_wakes_the_loop_at_once(slow: SimNetwork) -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def from_thread() -> None:
            slow.sleep(1.0)
            loop.call_soon_threadsafe(woken.set)

        thread = threading.Thread(target=from_thread)
        thread.start()
        await asyncio.wait_for(woken.wait(), 10)
        thread.join()
        return loop.time()

    with slow.intercept():
        woke_at = asyncio.run(main())
    assert woke_at - 1000.0 == pytest.approx(1.0)  # MONOTONIC_BASE + the thread's 1 s


# -- the rest of a run is unchanged -----------------------------------------------------

# The digest of this run before host-local IPC left the links (commit 96e0142): a run
# that uses no Unix socket and no socket pair is the same event for event. Re-taken when
# the ephemeral ports moved from 32768 to 61000 (issue 21): with the old range this run
# still gives the old digest, ba8d0ff55946dcd9f1c85811e2fd239c80598a2810158f9e9293aff55e0a1f30.
# Re-taken when the digest became one of raw events (the bounded trace, issue 25): it
# was aa072533998df7fddd7f4c675b21ebf9ffc4428e65d15b3cd60d3fd90adb72f5 of event texts.
# Re-taken when the link's loss reached stream segments (retransmitted) and streams got
# Nagle's algorithm and delayed ACKs (issue 23): it was
# aba26f0bb7ec4e55bf5179af94512de45edd925b5101292ef193c17c7c037e83.
# Re-taken when accept() began to wait for the handshake's last ACK (the SYN queue,
# issue 23): it was 67c787327073d42c4f2ce472c89af0ab6829afddd5ae1099c4467fedd9a65977;
# and when the link's loss reached the handshake's packets (SYN, SYN-ACK, ACK): it was
# aedd81eaebfa9b170df034f73fb0ea6c2ad3d58cbba610c3e7b02e789c2ac4f5.
_DIGEST_BEFORE = "2b50f4e86285fbc38bb73fc9d63f51def7e0b0c738afccd31f91d83e351b47ba"


def _network_only_run() -> str:
    net = SimNetwork(seed=7, latency=0.01, jitter=0.005, loss=0.2, chunk=7)
    try:
        db = net.add_host("db")
        listener = db.socket()
        listener.bind(("0.0.0.0", 5432))
        listener.listen()
        tcp = _tcp_pair(net)
        remote = net.create_connection(("db", 5432))
        accepted, _ = listener.accept()
        for client, server in ((tcp[1], tcp[2]), (remote, accepted)):
            client.sendall(b"x" * 100)
            received = b""
            while len(received) < 100:
                received += server.recv(100)
        udp = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink = db.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("0.0.0.0", 53))
        for number in range(20):
            udp.sendto(b"%d" % number, ("db", 53))
        net.hold("local", "db")
        remote.sendall(b"held")
        net.sleep(1.0)
        net.release("local", "db")
        net.sleep(1.0)
        _close(*tcp, remote, accepted, listener, udp, sink)
        return net.trace.digest()
    finally:
        net.close()


def test_a_run_without_local_ipc_has_the_digest_it_had_before() -> None:
    assert _network_only_run() == _DIGEST_BEFORE
