"""Datagram faults on the simulated network: loss, bursts, duplication, reordering..."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from helpers import serving

import sockfake as socketserver
from sockfake.sim import GilbertElliott, LinkConditions, SimNetwork


def pair(net: SimNetwork) -> tuple[Any, Any]:
    receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return sender, receiver


def drain(net: SimNetwork, sock: socket.socket, limit: int = 100_000) -> list[bytes]:
    """Everything that arrives within 10 virtual seconds."""
    net.sleep(10.0)
    sock.setblocking(False)
    got = []
    for _ in range(limit):
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            break
    sock.setblocking(True)
    return got


def blast(net: SimNetwork, count: int, **conditions: Any) -> list[int]:
    """Send ``count`` numbered datagrams across the loopback; the numbers that arrived."""
    net.set_conditions(**conditions)
    sender, receiver = pair(net)
    arrived: list[int] = []
    for number in range(count):
        sender.sendto(number.to_bytes(4, "big"), receiver.getsockname())
        if number % 500 == 499:
            arrived += [int.from_bytes(d, "big") for d in drain(net, receiver)]
    arrived += [int.from_bytes(d, "big") for d in drain(net, receiver)]
    sender.close()
    receiver.close()
    return arrived


def test_perfect_link_delivers_every_datagram_in_order(net: SimNetwork) -> None:
    assert blast(net, 300) == list(range(300))


@pytest.mark.parametrize("loss", [0.1, 0.3, 0.5])
def test_independent_loss_rate_is_close_to_the_parameter(net: SimNetwork, loss: float) -> None:
    arrived = blast(net, 2000, loss=loss)
    assert abs((1 - len(arrived) / 2000) - loss) < 0.04
    assert arrived == sorted(arrived)  # losses, no reordering


def _lost_runs(arrived: list[int], count: int) -> list[int]:
    got = set(arrived)
    runs, current = [], 0
    for number in range(count):
        if number in got:
            if current:
                runs.append(current)
            current = 0
        else:
            current += 1
    if current:
        runs.append(current)
    return runs


def test_gilbert_elliott_loss_comes_in_bursts_at_the_stationary_rate(net: SimNetwork) -> None:
    chain = GilbertElliott(p=0.05, r=0.25)  # bad 1/6 of the time, bursts of ~4
    arrived = blast(net, 2000, burst_loss=chain)
    rate = 1 - len(arrived) / 2000
    assert abs(rate - 0.05 / 0.30) < 0.05
    runs = _lost_runs(arrived, 2000)
    assert sum(runs) / len(runs) > 2.5


def test_independent_loss_at_the_same_rate_has_short_runs() -> None:
    with SimNetwork(seed=2) as net:
        arrived = blast(net, 2000, loss=1 / 6)
    runs = _lost_runs(arrived, 2000)
    assert sum(runs) / len(runs) < 1.5


def test_duplication_delivers_copies(net: SimNetwork) -> None:
    arrived = blast(net, 2000, duplicate=0.25)
    assert sorted(set(arrived)) == list(range(2000))
    assert abs((len(arrived) - 2000) / 2000 - 0.25) < 0.04


def test_reordering_lets_some_datagrams_overtake_others(net: SimNetwork) -> None:
    arrived = blast(net, 500, latency=0.1, reorder=0.2)
    assert sorted(arrived) == list(range(500))
    assert arrived != sorted(arrived)


def test_jitter_reorders_datagrams_too(net: SimNetwork) -> None:
    arrived = blast(net, 200, latency=0.01, jitter=0.05)
    assert sorted(arrived) == list(range(200))
    assert arrived != sorted(arrived)


def test_corruption_flips_exactly_one_bit(net: SimNetwork) -> None:
    net.set_conditions(corrupt=1.0)
    sender, receiver = pair(net)
    payload = bytes(64)
    for _ in range(20):
        sender.sendto(payload, receiver.getsockname())
        data = receiver.recv(100)
        assert len(data) == len(payload)
        flipped = sum(bin(a ^ b).count("1") for a, b in zip(data, payload, strict=True))
        assert flipped == 1
    sender.close()
    receiver.close()


def test_recv_truncates_a_datagram_to_the_buffer_size(net: SimNetwork) -> None:
    sender, receiver = pair(net)
    sender.sendto(b"0123456789", receiver.getsockname())
    sender.sendto(b"next", receiver.getsockname())
    assert receiver.recv(4) == b"0123"  # the rest of that datagram is gone
    assert receiver.recv(100) == b"next"
    sender.close()
    receiver.close()


def test_udp_server_sees_datagrams_truncated_at_max_packet_size(net: SimNetwork) -> None:
    sizes: list[int] = []

    class Handler(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            sizes.append(len(self.packet))

    server = socketserver.UDPServer(("127.0.0.1", 0), Handler, network=net)
    server.max_packet_size = 1000
    with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"x" * 3000, server.server_address)
        server.handle_request()
    server.server_close()
    assert sizes == [1000]


def test_oversized_datagram_is_refused_with_emsgsize(net: SimNetwork) -> None:
    sender, receiver = pair(net)
    with pytest.raises(OSError) as info:
        sender.sendto(b"x" * 70_000, receiver.getsockname())
    assert info.value.errno == 90  # EMSGSIZE
    sender.close()
    receiver.close()


def test_conditions_changed_mid_test_apply_to_what_is_sent_afterwards(net: SimNetwork) -> None:
    net.set_conditions(latency=1.0)
    sender, receiver = pair(net)
    for number in range(50):
        sender.sendto(bytes([number]), receiver.getsockname())
    # Those 50 are in flight; total loss from now on does not touch them.
    net.set_conditions(loss=1.0)
    for number in range(50, 100):
        sender.sendto(bytes([number]), receiver.getsockname())
    assert [d[0] for d in drain(net, receiver)] == list(range(50))
    net.set_conditions(conditions=LinkConditions())
    sender.sendto(b"\xff", receiver.getsockname())
    assert receiver.recv(1) == b"\xff"
    sender.close()
    receiver.close()


def test_a_full_receive_buffer_drops_datagrams(net: SimNetwork) -> None:
    sender, receiver = pair(net)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1000)
    for _ in range(20):
        sender.sendto(b"x" * 100, receiver.getsockname())
    assert len(drain(net, receiver)) == 10
    sender.close()
    receiver.close()


def test_udp_echo_server_under_loss_with_retries_in_virtual_time() -> None:
    with SimNetwork(seed=4, loss=0.3, latency=0.01) as net:
        server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), _Echo, network=net)
        answered = 0
        with serving(server), net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(1.0)
            for number in range(50):
                message = str(number).encode()
                for _attempt in range(50):
                    client.sendto(message, server.server_address)
                    try:
                        reply = client.recv(100)
                        while reply != message:  # a late answer to an earlier try
                            reply = client.recv(100)
                    except TimeoutError:
                        continue
                    answered += 1
                    break
        assert answered == 50
        assert net.time() > 10  # about half the exchanges needed a 1 s retry


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def test_a_wildcard_bound_socket_answers_from_its_hosts_address(net: SimNetwork) -> None:
    far = net.add_host("far")
    server = far.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", 0))
    client = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(("far", server.getsockname()[1]))
    assert client.getsockname()[0] == "10.0.0.1"
    client.send(b"ping")
    data, source = server.recvfrom(10)
    assert source == client.getsockname()
    server.sendto(b"pong", source)
    assert client.recvfrom(10) == (b"pong", ("10.0.0.2", server.getsockname()[1]))
    server.close()
    client.close()


def test_a_socket_sending_again_after_connect_leaves_from_its_new_address(
    net: SimNetwork,
) -> None:
    # sendto() remembers the last datagram's route: connect() pins the wildcard-bound
    # socket's source address, and the next datagram to the same address object must
    # leave from there, not from the route remembered before.
    far = net.add_host("far")
    local = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local.bind(("127.0.0.1", 0))
    remote = far.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote.bind(("0.0.0.0", 0))
    client = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("0.0.0.0", 0))
    to_local = local.getsockname()
    client.sendto(b"one", to_local)
    assert local.recvfrom(10) == (b"one", ("127.0.0.1", client.getsockname()[1]))
    client.connect(("far", remote.getsockname()[1]))
    assert client.getsockname()[0] == "10.0.0.1"
    client.sendto(b"two", to_local)
    assert local.recvfrom(10) == (b"two", ("10.0.0.1", client.getsockname()[1]))
    for sock in (local, remote, client):
        sock.close()
