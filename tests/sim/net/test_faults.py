"""Network faults, hosts and addresses, and misuse reported clearly."""

from __future__ import annotations

import concurrent.futures
import errno
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from helpers import EchoHandler, recv_exactly, serving

import sockfake as socketserver
from sockfake import SockfakeError
from sockfake.sim import GilbertElliott, LinkConditions, SimNetwork
from sockfake.sim.scenarios import (
    HalfCloseAndWait,
    ResetMidResponse,
    Slowloris,
    StalledReader,
    TrickleWriter,
)


@pytest.fixture
def two(net: SimNetwork) -> SimNetwork:
    net.add_host("a")
    net.add_host("b")
    return net


def udp_on(host: Any, port: int = 0) -> Any:
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    return sock


@contextmanager
def echo_from_a_to_b(two: SimNetwork) -> Iterator[tuple[Any, int]]:
    """An echo server on host b and a client on host a connected to it by name."""
    server = socketserver.ThreadingTCPServer(("0.0.0.0", 0), EchoHandler, network=two.host("b"))
    port = server.server_address[1]
    with serving(server), two.host("a").create_connection(("b", port)) as client:
        yield client, port


def received(net: SimNetwork, sock: socket.socket) -> list[bytes]:
    net.sleep(5.0)
    sock.setblocking(False)
    got = []
    for _ in range(1000):
        try:
            got.append(sock.recv(100))
        except BlockingIOError:
            return got
    return got


# -- hosts, names, ports -------------------------------------------------------------


def test_hosts_have_addresses_and_names_that_resolve_inside_the_network(two: SimNetwork) -> None:
    a, b = two.host("a"), two.host("b")
    assert a.ipv4 == ["10.0.0.2"] and b.ipv4 == ["10.0.0.3"]
    server = socketserver.ThreadingTCPServer(("0.0.0.0", 0), EchoHandler, network=b)
    port = server.server_address[1]
    with serving(server):
        for target in ("b", "10.0.0.3"):
            with a.create_connection((target, port)) as client:
                assert client.getpeername() == ("10.0.0.3", port)
                assert client.getsockname()[0] == "10.0.0.2"
                client.sendall(b"hi")
                assert recv_exactly(client, 2) == b"hi"


def test_ipv6_between_hosts(two: SimNetwork) -> None:
    b = two.host("b")
    server = socketserver.ThreadingTCPServer(("::", 0), EchoHandler, network=b)
    port = server.server_address[1]
    with serving(server), two.host("a").create_connection((b.ipv6[0], port)) as client:
        assert client.family == socket.AF_INET6
        assert client.getpeername() == (b.ipv6[0], port, 0, 0)
        client.sendall(b"six")
        assert recv_exactly(client, 3) == b"six"


def test_loopback_is_per_host(two: SimNetwork) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), EchoHandler, network=two.host("b"))
    with pytest.raises(ConnectionRefusedError):
        two.host("a").create_connection(server.server_address)
    server.server_close()


def test_unknown_host_name_is_a_gaierror(net: SimNetwork) -> None:
    with pytest.raises(socket.gaierror):
        net.create_connection(("nowhere", 80))


def test_unknown_host_object_is_a_clear_error(net: SimNetwork) -> None:
    with pytest.raises(SockfakeError, match="unknown host 'ghost'") as info:
        net.host("ghost")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="ghost"):
        net.partition("local", "ghost")


def test_address_with_no_host_is_unreachable(net: SimNetwork) -> None:
    with pytest.raises(OSError) as info:
        net.create_connection(("10.9.9.9", 80))
    assert info.value.errno == errno.ENETUNREACH


def test_ephemeral_ports_are_distinct_and_above_the_linux_range(net: SimNetwork) -> None:
    socks = [net.socket() for _ in range(5)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    assert len(set(ports)) == 5
    assert all(61000 <= port <= 65535 for port in ports)  # outside Linux's 32768-60999
    for sock in socks:
        sock.close()


def test_second_bind_of_a_tcp_port_is_eaddrinuse(net: SimNetwork) -> None:
    first = net.socket()
    first.bind(("127.0.0.1", 0))
    second = net.socket()
    with pytest.raises(OSError) as info:
        second.bind(first.getsockname())
    assert info.value.errno == errno.EADDRINUSE
    udp = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(first.getsockname())  # another protocol: its own port space
    for sock in (first, second, udp):
        sock.close()


def test_unix_path_in_use_is_eaddrinuse_until_its_file_is_removed(net: SimNetwork) -> None:
    first = net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.bind("/run/app.sock")
    second = net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        second.bind("/run/app.sock")
    assert info.value.errno == errno.EADDRINUSE
    first.close()
    second.close()
    third = net.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as info:  # as on Linux, the file outlives the socket
        third.bind("/run/app.sock")
    assert info.value.errno == errno.EADDRINUSE
    with net.intercept():
        os.unlink("/run/app.sock")  # the simulated file, not a real one
    third.bind("/run/app.sock")
    third.close()


# -- partitions, hold, heal --------------------------------------------------------------


def test_two_way_partition_drops_datagrams_both_ways_until_healed(two: SimNetwork) -> None:
    a, b = two.host("a"), two.host("b")
    sa, sb = udp_on(a, 5000), udp_on(b, 5000)
    two.partition("a", "b")
    sa.sendto(b"a->b", ("b", 5000))
    sb.sendto(b"b->a", ("a", 5000))
    assert received(two, sa) == [] and received(two, sb) == []
    two.heal()
    sa.sendto(b"a->b", ("b", 5000))
    sb.sendto(b"b->a", ("a", 5000))
    assert received(two, sb) == [b"a->b"] and received(two, sa) == [b"b->a"]
    sa.close()
    sb.close()


def test_one_way_partition_cuts_one_direction_only(two: SimNetwork) -> None:
    sa, sb = udp_on(two.host("a"), 5000), udp_on(two.host("b"), 5000)
    two.partition("a", "b", oneway=True)
    sa.sendto(b"a->b", ("b", 5000))
    sb.sendto(b"b->a", ("a", 5000))
    assert received(two, sb) == []
    assert received(two, sa) == [b"b->a"]
    sa.close()
    sb.close()


def test_partition_delays_a_stream_until_heal_without_losing_bytes(two: SimNetwork) -> None:
    with echo_from_a_to_b(two) as (client, _port):
        two.partition("a", "b")
        client.sendall(b"during the partition")
        client.settimeout(30)
        with pytest.raises(TimeoutError):
            client.recv(100)

        def heal_later() -> None:
            two.sleep(10)
            two.heal("a", "b")

        healer = threading.Thread(target=heal_later)
        healer.start()
        client.settimeout(None)
        assert recv_exactly(client, 20) == b"during the partition"
        assert two.time() == pytest.approx(40.0)
        healer.join()


def test_connect_across_a_partition_retries_then_times_out(two: SimNetwork) -> None:
    b = two.host("b")
    listener = b.socket()
    listener.bind(("0.0.0.0", 80))
    listener.listen()
    two.partition("a", "b")
    with pytest.raises(TimeoutError):
        two.host("a").create_connection(("b", 80))
    assert two.time() == pytest.approx(127.0)
    listener.close()


def test_hold_and_release(two: SimNetwork) -> None:
    sa, sb = udp_on(two.host("a"), 5000), udp_on(two.host("b"), 5000)
    two.hold("a", "b")
    for number in range(3):
        sa.sendto(bytes([number]), ("b", 5000))
    assert received(two, sb) == []
    two.release("a", "b")
    assert received(two, sb) == [b"\x00", b"\x01", b"\x02"]
    sa.close()
    sb.close()


def test_hold_delays_stream_data_until_release(two: SimNetwork) -> None:
    with echo_from_a_to_b(two) as (client, _port):
        two.hold("b", "a")
        client.sendall(b"held reply")
        client.settimeout(5)
        with pytest.raises(TimeoutError):
            client.recv(100)
        two.release("b", "a")
        assert recv_exactly(client, 10) == b"held reply"


# -- host down / up ------------------------------------------------------------------------


def test_host_down_resets_its_connections_and_host_up_serves_again(two: SimNetwork) -> None:
    b = two.host("b")
    server = socketserver.ThreadingTCPServer(("0.0.0.0", 0), EchoHandler, network=b)
    port = server.server_address[1]
    with serving(server):
        client = two.host("a").create_connection(("b", port))
        client.sendall(b"one")
        assert recv_exactly(client, 3) == b"one"
        two.host_down("b")
        with pytest.raises(ConnectionResetError):
            client.recv(10)
        client.close()
        with pytest.raises(TimeoutError):
            two.host("a").create_connection(("b", port), timeout=5)
        two.host_up("b")
        # The server's listener survived the outage: it answers again.
        with two.host("a").create_connection(("b", port)) as client:
            client.sendall(b"two")
            assert recv_exactly(client, 3) == b"two"


def test_host_down_resets_the_connections_it_started(two: SimNetwork) -> None:
    with echo_from_a_to_b(two) as (client, _port):
        two.host_down("a")
        with pytest.raises(ConnectionResetError):
            client.recv(10)
        two.host_up("a")


def test_host_down_drops_datagrams_to_it(two: SimNetwork) -> None:
    sa, sb = udp_on(two.host("a"), 5000), udp_on(two.host("b"), 5000)
    two.host_down("b")
    sa.sendto(b"lost", ("b", 5000))
    two.host_up("b")
    assert received(two, sb) == []
    sa.close()
    sb.close()


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"loss": 1.5}, "loss"),
        ({"loss": -0.1}, "loss"),
        ({"duplicate": 2}, "duplicate"),
        ({"reorder": float("nan")}, "reorder"),
        ({"corrupt": -1}, "corrupt"),
        ({"latency": -0.01}, "latency"),
        ({"jitter": -1}, "jitter"),
        ({"bandwidth": -5}, "bandwidth"),
        ({"bandwidth": 0}, "bandwidth"),
        ({"chunk": 0}, "chunk"),
    ],
)
def test_bad_link_conditions_are_value_errors_naming_the_field(
    kwargs: dict[str, object], name: str
) -> None:
    with pytest.raises(SockfakeError, match=name) as info:
        LinkConditions(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match=name):
        SimNetwork(seed=1, **kwargs)  # type: ignore[arg-type]


def test_bad_gilbert_elliott_parameters(net: SimNetwork) -> None:
    with pytest.raises(ValueError, match=r"GilbertElliott\.p"):
        GilbertElliott(p=1.2)
    with pytest.raises(TypeError, match="burst_loss"):
        net.set_conditions(burst_loss=0.3)


def test_wrong_type_and_unknown_condition_are_type_errors(net: SimNetwork) -> None:
    with pytest.raises(SockfakeError, match="loss") as info:
        LinkConditions(loss="high")  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    with pytest.raises(TypeError, match="lossiness"):
        net.set_conditions(lossiness=0.5)
    with pytest.raises(TypeError, match="seed"):
        SimNetwork(seed="one")  # type: ignore[arg-type]


def test_bad_conditions_leave_the_old_ones_in_place(net: SimNetwork) -> None:
    net.set_conditions(loss=0.2)
    with pytest.raises(ValueError):
        net.set_conditions(loss=3)
    assert net.default_conditions.loss == 0.2


def test_socket_used_from_a_thread_outside_the_network() -> None:
    # A pool created (and its one worker started) before the network exists: its
    # thread is not part of the simulation.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(int).result()
        with SimNetwork(seed=1) as net:
            sock = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
            future = pool.submit(sock.bind, ("127.0.0.1", 0))
            error = future.exception()
            assert isinstance(error, SockfakeError) and isinstance(error, RuntimeError)
            assert "not part of this simulated network" in str(error)
            assert "ThreadPoolExecutor" in str(error)  # names the thread
            sock.close()


def test_network_used_after_close_is_a_clear_error() -> None:
    net = SimNetwork(seed=1)
    sock = net.socket()
    net.close()
    for use in (lambda: sock.recv(1), lambda: net.socket(), lambda: net.sleep(1)):
        with pytest.raises(SockfakeError, match="closed") as info:
            use()
        assert isinstance(info.value, RuntimeError)
    sock.close()  # closing is always allowed
    net.close()  # idempotent


def _scenario(cls: Any, **kwargs: Any) -> Any:
    def make(net: SimNetwork) -> Any:
        args: dict[str, Any] = {"network": net, "address": ("127.0.0.1", 1)}
        if cls in (TrickleWriter,):
            args["data"] = b"x"
        elif cls is not Slowloris:
            args["request"] = b"x"
        args.update(kwargs)
        return cls(**args)

    return make


@pytest.mark.parametrize(
    ("use", "kind", "name"),
    [
        (lambda net: SimNetwork(seed=1, stall_timeout=-1), ValueError, "stall_timeout"),
        (lambda net: SimNetwork(seed=1, stall_timeout="x"), TypeError, "stall_timeout"),  # type: ignore[arg-type]
        (lambda net: SimNetwork(seed=1, time_limit="x"), TypeError, "time_limit"),  # type: ignore[arg-type]
        (lambda net: SimNetwork(seed=1, trace_limit=0), ValueError, "trace_limit"),
        (lambda net: SimNetwork(seed=1, conditions="x"), TypeError, "conditions"),  # type: ignore[arg-type]
        (lambda net: net.add_host("h", ipv4=123), TypeError, "ipv4"),
        (lambda net: net.host(3), TypeError, "host"),
        (lambda net: net.partition(1, 2), TypeError, "host"),
        (lambda net: net.set_conditions(conditions="x"), TypeError, "conditions"),
        (lambda net: net.heal("local"), TypeError, "heal"),
        (lambda net: net.sleep("x"), TypeError, "sleep"),
        (lambda net: net.sleep(float("nan")), ValueError, "sleep"),
        (lambda net: net.queue("x"), TypeError, "maxsize"),
        (_scenario(TrickleWriter, chunk="x"), TypeError, "chunk"),
        (_scenario(TrickleWriter, data="text"), TypeError, "data"),
        (_scenario(TrickleWriter, network=None), TypeError, "SimNetwork"),
        (_scenario(StalledReader, read_limit="x"), TypeError, "read_limit"),
        (_scenario(ResetMidResponse, after=-1), ValueError, "after"),
        (_scenario(HalfCloseAndWait, request="text"), TypeError, "request"),
        (_scenario(Slowloris, connections="x"), TypeError, "connections"),
    ],
)
def test_bad_arguments_to_entry_points_are_clear_sockfake_errors(
    net: SimNetwork, use: Any, kind: type[Exception], name: str
) -> None:
    with pytest.raises(SockfakeError, match=name) as info:
        use(net)
    assert isinstance(info.value, kind)
