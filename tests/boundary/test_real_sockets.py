"""Every way a simulated thread could reach a real socket is refused, by name, or lands
in the simulation; the real listener on 127.0.0.1 receives nothing."""

from __future__ import annotations

import _socket
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from boundary_listener import RealListener

from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork
from sockfake.sim.intercept.dispatch import REAL

RealSocket: type[socket.socket] = REAL["socket"]  # as `from socket import socket` has it


@pytest.fixture
def made_before() -> Iterator[socket.socket]:
    """A real TCP socket made before the simulation."""
    sock = RealSocket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        yield sock
    finally:
        sock.close()


def test_the_patched_names_give_the_simulation(quiet_listener: RealListener) -> None:
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(ConnectionRefusedError):  # nothing listens in the simulation
            socket.create_connection(quiet_listener.address, timeout=5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", quiet_listener.udp_address)  # into the simulation
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(quiet_listener.address)


C_LEVEL: dict[str, tuple[str, Callable[[socket.socket, RealListener], object]]] = {
    "socket.SocketType()": (r"_socket.socket\(\)", lambda _, __: socket.SocketType()),
    "_socket.socket()": (r"_socket.socket\(\)", lambda _, __: _socket.socket()),
    "the real class captured at import": (
        r"socket.socket\(\)",
        lambda _, __: RealSocket(socket.AF_INET, socket.SOCK_STREAM),
    ),
    "its Python connect": (r"socket.socket.connect\(\)", lambda s, lst: s.connect(lst.address)),
    "_socket.socket.connect(s, ...)": (
        r"connect\(\) through the C socket type",
        lambda s, lst: _socket.socket.connect(s, lst.address),
    ),
    "super(socket.socket, s).connect(...)": (
        r"connect\(\) through the C socket type",
        lambda s, lst: super(RealSocket, s).connect(lst.address),
    ),
    "_socket.socket.connect_ex(s, ...)": (
        r"connect\(\) through the C socket type",
        lambda s, lst: _socket.socket.connect_ex(s, lst.address),
    ),
    "_socket.socket.bind(s, ...)": (
        r"bind\(\) through the C socket type",
        lambda s, _: _socket.socket.bind(s, ("127.0.0.1", 0)),
    ),
}


@pytest.mark.parametrize("way", sorted(C_LEVEL))
def test_a_real_socket_is_refused_at_every_level(
    way: str, made_before: socket.socket, quiet_listener: RealListener
) -> None:
    pattern, call = C_LEVEL[way]
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(SockfakeRuntimeError, match=pattern) as refused:
            call(made_before, quiet_listener)
    assert "never touches the real network" in str(refused.value)


def test_a_real_datagram_socket_is_refused_through_the_c_type(
    quiet_listener: RealListener,
) -> None:
    udp = RealSocket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with SimNetwork(seed=1) as net, net.intercept():
            with pytest.raises(SockfakeRuntimeError, match=r"sendto\(\) through the C"):
                _socket.socket.sendto(udp, b"x", quiet_listener.udp_address)
            with pytest.raises(SockfakeRuntimeError, match=r"sendmsg\(\) through the C"):
                _socket.socket.sendmsg(udp, [b"x"], [], 0, quiet_listener.udp_address)
    finally:
        udp.close()


def test_a_handler_thread_is_refused_too(
    made_before: socket.socket, quiet_listener: RealListener
) -> None:
    errors: list[BaseException] = []

    def handler() -> None:
        try:
            _socket.socket.connect(made_before, quiet_listener.address)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    with SimNetwork(seed=1) as net, net.intercept():
        thread = threading.Thread(target=handler)
        thread.start()
        thread.join()
    assert [type(e) for e in errors] == [SockfakeRuntimeError]


def test_real_sockets_outside_the_simulation_are_left_alone(real_listener: RealListener) -> None:
    # The same C-level calls from a thread outside the simulation, while it is
    # intercepted, reach the real listener: the hook refuses only simulated threads.
    results: list[BaseException | None] = []

    def outside() -> None:
        sock = socket.SocketType(socket.AF_INET, socket.SOCK_STREAM)
        try:
            _socket.socket.connect(sock, real_listener.address)
            _socket.socket.sendall(sock, b"x")
            results.append(None)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            results.append(exc)
        finally:
            sock.close()

    from sockfake.sim.kernel.thread_hooks import _original_start

    with SimNetwork(seed=1) as net, net.intercept():
        thread = threading.Thread(target=outside)
        _original_start(thread)
        thread.join(30)
    real_listener.finish()
    assert results == [None]
    assert (real_listener.accepted, real_listener.received) == (1, 1)
